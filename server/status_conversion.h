#ifndef MPC_SERVER_STATUS_CONVERSION_H_
#define MPC_SERVER_STATUS_CONVERSION_H_

// The one place absl::Status becomes grpc::Status. The canonical codes are the same numbers in both
// (google/rpc/code.proto), so the conversion is a cast of the code plus the message.

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"

namespace mpc {

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

}  // namespace mpc

#endif  // MPC_SERVER_STATUS_CONVERSION_H_
