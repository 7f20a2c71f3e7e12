#ifndef MPC_SERVER_MPC_SERVICE_H_
#define MPC_SERVER_MPC_SERVICE_H_

// mpcd.v1.MpcService over gRPC's callback API (DESIGN §5). A handler validates and converts the
// request on the gRPC thread, turns every problem into a SolveJob and submits them to the batcher;
// it never blocks. With a token configured, a call without it is answered UNAUTHENTICATED first
// thing: it is neither validated nor queued. The batcher's completion of a request's last job fills
// the response and calls Finish, from the scheduler thread.

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "mpcd/v1/mpcd.grpc.pb.h"
#include "proto/proto_conversion.h"
#include "server/admission.h"
#include "server/call_log.h"
#include "server/call_tracker.h"
#include "server/dynamic_batcher.h"
#include "server/logger.h"
#include "server/retained_solves.h"
#include "server/security.h"
#include "server/service_metrics.h"
#include "server/session_budget.h"

namespace mpc {

struct ServiceOptions {
  RequestLimits limits;
  // Largest T * (n+m)^2 of one problem (see ServerConfig::max_problem_size).
  std::int64_t max_problem_size = std::int64_t{1} << 22;
  // Largest request message in bytes (ServerConfig::max_message_bytes).
  std::int64_t max_message_bytes = 64 << 20;
  // Largest answer and work of one request (ServerConfig::admission).
  AdmissionLimits admission;
  // Bytes all open Control sessions may hold together (ServerConfig::max_session_bytes).
  std::int64_t max_session_bytes = std::int64_t{256} << 20;
  // Bytes the Solves kept for their Backward may hold together
  // (ServerConfig::retained_solve_bytes).
  std::int64_t retained_solve_bytes = std::int64_t{256} << 20;
  // Reported in every response ("cpu" | "cuda").
  std::string backend_name = "cpu";
  // Every call must carry "authorization: Bearer <auth_token>"; "" = no check.
  std::string auth_token;
  // Where each answered request is logged (server/call_log.h); null = nowhere. Must outlive the
  // service.
  const Logger* logger = nullptr;
};

class MpcService final : public mpcd::v1::MpcService::CallbackService {
 public:
  // `batcher` and `metrics` must outlive the gRPC server this service is registered with.
  MpcService(const ServiceOptions& options, DynamicBatcher* batcher, ServiceMetrics* metrics);

  grpc::ServerUnaryReactor* Solve(grpc::CallbackServerContext* context,
                                  const mpcd::v1::SolveRequest* request,
                                  mpcd::v1::SolveResponse* response) override;
  grpc::ServerUnaryReactor* Backward(grpc::CallbackServerContext* context,
                                     const mpcd::v1::BackwardRequest* request,
                                     mpcd::v1::BackwardResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const mpcd::v1::ListModelsRequest* request,
                                       mpcd::v1::ListModelsResponse* response) override;
  grpc::ServerBidiReactor<mpcd::v1::ControlRequest, mpcd::v1::ControlResponse>* Control(
      grpc::CallbackServerContext* context) override;

  // From now on every new call is answered UNAVAILABLE at once (clients retry elsewhere); calls
  // already accepted are answered normally.
  void StartDraining() { calls_.StartDraining(); }
  // Waits until every accepted call is answered; false on timeout.
  bool AwaitIdle(absl::Duration timeout) { return calls_.AwaitIdle(timeout); }

 private:
  // OK when the call carries the token (if one is required) and was counted as started; else the
  // status to refuse it with (UNAUTHENTICATED, or UNAVAILABLE while draining).
  absl::Status Admit(const grpc::CallbackServerContext& context);

  const ServiceOptions options_;
  DynamicBatcher* const batcher_;
  ServiceMetrics* const metrics_;
  const BearerTokenCheck auth_;
  CallTracker calls_;
  SessionBudget sessions_;
  RetainedSolves retained_;
};

}  // namespace mpc

#endif  // MPC_SERVER_MPC_SERVICE_H_
