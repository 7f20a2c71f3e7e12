#ifndef MPC_SERVER_STATUS_CONVERSION_H_
#define MPC_SERVER_STATUS_CONVERSION_H_

// The one place absl::Status becomes grpc::Status. The canonical codes are the same numbers in both
// (google/rpc/code.proto), so the conversion is a cast of the code plus the message, and the
// status's payloads become the google.rpc.Status details of the answer (proto/error_details.h:
// BadRequest for INVALID_ARGUMENT, RetryInfo for UNAVAILABLE).

#include <grpcpp/support/status.h>

#include <cstddef>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "proto/error_details.h"

namespace mpc {

// Messages travel in an HTTP/2 header and may quote what a client sent: longer ones are cut so
// that no request can make the answer's header large (a client refuses oversized headers).
inline constexpr std::size_t kMaxErrorMessageBytes = 512;

inline std::string BoundedMessage(absl::string_view message) {
  if (message.size() <= kMaxErrorMessageBytes) return std::string(message);
  return absl::StrCat(message.substr(0, kMaxErrorMessageBytes), "... (",
                      message.size() - kMaxErrorMessageBytes, " more bytes)");
}

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  std::string message = BoundedMessage(status.message());
  const std::string details = ToRichStatus(status, message).SerializeAsString();
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::move(message), details);
}

}  // namespace mpc

#endif  // MPC_SERVER_STATUS_CONVERSION_H_
