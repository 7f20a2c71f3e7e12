#ifndef MPC_SERVER_REFLECTION_V1_H_
#define MPC_SERVER_REFLECTION_V1_H_

// grpc.reflection.v1.ServerReflection beside the v1alpha one Debian's libgrpc++_reflection (gRPC
// 1.51) registers: newer tools (grpcurl >= 1.8.8, Postman, grpc-java 1.57+) ask v1 first. It
// answers as v1alpha does, from the protobuf descriptors compiled into the server: the services it
// was given, and the files (with every file they import) that define a file name, a symbol or an
// extension. Unknown names get error_response NOT_FOUND; the stream stays open.

#include <string>
#include <vector>

#include "grpc/reflection/v1/reflection.grpc.pb.h"

namespace mpc {

class ReflectionV1Service final : public grpc::reflection::v1::ServerReflection::CallbackService {
 public:
  // `services`: the full names list_services reports (every service the server registers).
  explicit ReflectionV1Service(std::vector<std::string> services);

  grpc::ServerBidiReactor<grpc::reflection::v1::ServerReflectionRequest,
                          grpc::reflection::v1::ServerReflectionResponse>*
  ServerReflectionInfo(grpc::CallbackServerContext* context) override;

  // The answer to one request (the reactor's step; public for tests).
  grpc::reflection::v1::ServerReflectionResponse Answer(
      const grpc::reflection::v1::ServerReflectionRequest& request) const;

 private:
  const std::vector<std::string> services_;
};

}  // namespace mpc

#endif  // MPC_SERVER_REFLECTION_V1_H_
