#ifndef MPC_SERVER_STATUS_CONVERSION_H_
#define MPC_SERVER_STATUS_CONVERSION_H_

// The one place absl::Status becomes grpc::Status. The canonical codes are the same numbers in both
// (google/rpc/code.proto), so the conversion is a cast of the code plus the message.

#include <grpcpp/support/status.h>

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

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
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      BoundedMessage(status.message()));
}

}  // namespace mpc

#endif  // MPC_SERVER_STATUS_CONVERSION_H_
