#ifndef MPC_PROTO_ERROR_DETAILS_H_
#define MPC_PROTO_ERROR_DETAILS_H_

// gRPC's rich error model (google.rpc.Status in the grpc-status-details-bin trailer) over
// absl::Status payloads. Code that finds an error attaches its details to the absl::Status as a
// payload keyed by the detail's type URL; ToRichStatus turns the payloads into google.rpc.Status
// details (the server's side), FromRichStatus turns them back (the client's side).
//
// Every INVALID_ARGUMENT carries a google.rpc.BadRequest (one FieldViolation per broken field, at
// most kMaxFieldViolations) and every UNAVAILABLE a google.rpc.RetryInfo: attached where the error
// is found, or made by ToRichStatus from the message and kDefaultRetryDelay.

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace mpc {

inline constexpr char kBadRequestTypeUrl[] = "type.googleapis.com/google.rpc.BadRequest";
inline constexpr char kRetryInfoTypeUrl[] = "type.googleapis.com/google.rpc.RetryInfo";

// The details travel in an HTTP/2 trailer, and clients refuse metadata over 8 KiB by default:
// at most this many violations, each description cut to kMaxViolationBytes.
inline constexpr std::size_t kMaxFieldViolations = 16;
inline constexpr std::size_t kMaxViolationBytes = 200;

// How long a client should wait before retrying an UNAVAILABLE call (a full queue drains in about
// this long) unless the error says otherwise.
inline constexpr absl::Duration kDefaultRetryDelay = absl::Milliseconds(100);

// "problems[1].x_init: expected shape (5), got (4)" -> field "problems[1].x_init", description
// "expected shape (5), got (4)". A message that does not start with a field path ("name:" with
// no space in the name) gives field "" and the whole message.
google::rpc::BadRequest::FieldViolation ToFieldViolation(absl::string_view message);

// INVALID_ARGUMENT for `violations` (each an error naming its field, as ToProblem's are, or an
// INVALID_ARGUMENT already carrying a BadRequest; not empty), as Violations::ToStatus makes it.
absl::Status InvalidArgumentWithViolations(absl::Span<const absl::Status> violations);

// INVALID_ARGUMENT for several violations of one part of a request (`violations` not empty):
// the first one's message as it is and a BadRequest naming each. Violations::Add takes such a
// status apart again, so one problem's violations join its request's.
absl::Status AllViolations(absl::Span<const absl::Status> violations);

// The violations of a request's independent parts (its problems), gathered so that one answer
// names all of them (up to kMaxFieldViolations) instead of only the first.
class Violations {
 public:
  // Records `status` (an INVALID_ARGUMENT naming its field, or one with a BadRequest: each of its
  // field violations). False once kMaxFieldViolations are recorded: the caller stops looking, and
  // ToStatus says "at least".
  bool Add(const absl::Status& status);
  bool empty() const { return found_.empty(); }
  // INVALID_ARGUMENT with the first recorded message, the count of the others and a BadRequest
  // naming every one (not empty).
  absl::Status ToStatus() const;

 private:
  std::string first_message_;
  std::vector<google::rpc::BadRequest::FieldViolation> found_;
  bool truncated_ = false;
};

// `status` with a RetryInfo payload asking the client to wait `delay` before retrying.
absl::Status WithRetryDelay(absl::Status status, absl::Duration delay);

// The google.rpc.Status of `status` (not OK): code, `message`, and one detail per payload plus the
// default BadRequest / RetryInfo described above.
google::rpc::Status ToRichStatus(const absl::Status& status, absl::string_view message);

// The absl::Status of a gRPC error: `code`, `message` and, when `details` (the trailer's bytes)
// parse as a google.rpc.Status, each of its details as a payload.
absl::Status FromRichStatus(absl::StatusCode code, absl::string_view message,
                            absl::string_view details);

// The details of an error, decoded (nullopt when it carries none).
std::optional<google::rpc::BadRequest> BadRequestOf(const absl::Status& status);
std::optional<google::rpc::RetryInfo> RetryInfoOf(const absl::Status& status);

}  // namespace mpc

#endif  // MPC_PROTO_ERROR_DETAILS_H_
