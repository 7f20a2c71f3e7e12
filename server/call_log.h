#ifndef MPC_SERVER_CALL_LOG_H_
#define MPC_SERVER_CALL_LOG_H_

// The accounting of one request from its start to its answer: the metrics (ServiceMetrics) and the
// log line (Logger), under one request id. A unary call is one request; a Control stream is one
// request per step, all under the stream's id.
//
// How an answer is logged:
//   OK                               debug    "request answered"
//   CANCELLED                        info     "request cancelled" (the client left)
//   INTERNAL, UNKNOWN, DATA_LOSS     error    "request failed", with the reason
//   any other code                   warning  "request refused", with the reason
// Each line carries request_id, method, code, duration_ms and peer.

#include <grpcpp/server_context.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/logger.h"
#include "server/service_metrics.h"

namespace mpc {

// The metadata key a client may set to choose its request id, and in which mpcd returns it.
inline constexpr char kRequestIdKey[] = "x-request-id";
inline constexpr std::size_t kMaxRequestIdLength = 64;

// The client's id when it is 1-64 characters of [A-Za-z0-9._:-]; otherwise a new random one (16
// hexadecimal digits). A client's id is never trusted further than that: it is only logged.
std::string ChooseRequestId(absl::string_view from_client);

class CallLog {
 public:
  // Chooses the request id and returns it to the client in the initial metadata ("x-request-id").
  // `logger` may be null: then nothing is logged.
  CallLog(RpcMethod method, grpc::CallbackServerContext* context, ServiceMetrics* metrics,
          const Logger* logger);

  // A request begins (for Control: a step): counted, and its latency measured from now.
  void Started();
  // It was answered with `status`: counted and logged, with `extra` fields after the common ones.
  void Finished(const absl::Status& status, absl::Span<const LogField> extra = {}) const;
  RpcMethod method() const { return method_; }
  const std::string& request_id() const { return request_id_; }

 private:
  const RpcMethod method_;
  const std::string request_id_;
  const std::string peer_;
  ServiceMetrics* const metrics_;
  const Logger* const logger_;
  absl::Time start_ = absl::Now();
};

}  // namespace mpc

#endif  // MPC_SERVER_CALL_LOG_H_
