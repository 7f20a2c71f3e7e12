#ifndef MPC_SERVER_SERVICE_METRICS_H_
#define MPC_SERVER_SERVICE_METRICS_H_

// Prometheus metrics of the service (DESIGN §8). One ServiceMetrics is built at startup and passed
// by pointer to the service and the batcher (no singleton). Every family is registered once and
// every labeled child added up front, so recording is a few atomic operations; label values come
// from small fixed sets (method, code, kind, status, reason). main owns the Exposer that serves
// registry() on /metrics.
//
// Families (times in seconds):
//   mpcd_requests_total{method,code}              RPCs answered, by gRPC status code name
//   mpcd_request_duration_seconds{method}         end to end, handler entry to Finish
//   mpcd_inflight_requests{method}                RPCs accepted and not yet answered
//   mpcd_cancelled_requests_total{method}         RPCs the client cancelled (or whose deadline
//                                                 passed) before they were answered
//   mpcd_refused_client_certificates_total        mutual TLS: calls refused UNAUTHENTICATED for
//                                                 their connection's certificate, before any
//                                                 service (so not in mpcd_requests_total)
//   mpcd_queue_duration_seconds{kind}             per problem: enqueue to launch (or drop)
//   mpcd_solve_duration_seconds{kind,backend}     per backend launch: its wall time
//   mpcd_batch_size{kind,backend}                 per backend launch: its problems
//   mpcd_solver_iterations                        per solved problem: iLQR iterations
//   mpcd_solutions_total{status}                  per solved problem: converged, max_iterations,
//   ... mpcd_gradients_total{status}                  per backward problem: ok, ill_conditioned,
//   ... mpcd_queued_problems                          problems waiting in the batcher
//   mpcd_inflight_problems                        problems inside a backend launch
//   mpcd_session_bytes                            bytes held by open Control sessions
//   mpcd_retained_solve_bytes                     bytes of the Solves kept for their Backward
//   mpcd_dropped_problems_total{reason}           queue_full, stopping, deadline, cancelled
//   mpcd_backend_info{backend}                    1 for the backend in use
//   mpcd_build_info{version,revision}             1, with the version and git revision built

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/solve_job.h"
#include "solver/gradients.h"
#include "solver/problem.h"

namespace mpc {

// A Control session counts one request per step (per ControlRequest answered), not per stream.
enum class RpcMethod : std::uint8_t { kSolve, kBackward, kListModels, kControl };
inline constexpr int kRpcMethodCount = 4;
const char* RpcMethodName(RpcMethod method);  // "Solve", "Backward", "ListModels", "Control"

// Why a problem was answered without being launched.
enum class DropReason : std::uint8_t { kQueueFull, kStopping, kDeadline, kCancelled };
inline constexpr int kDropReasonCount = 4;

class ServiceMetrics {
 public:
  // `backend` labels the launch families ("cpu" | "cuda").
  explicit ServiceMetrics(absl::string_view backend);
  ServiceMetrics(const ServiceMetrics&) = delete;
  ServiceMetrics& operator=(const ServiceMetrics&) = delete;

  // What the Exposer serves.
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  // An RPC was accepted / answered with `code` after `latency`.
  void RequestStarted(RpcMethod method);
  void RequestFinished(RpcMethod method, absl::StatusCode code, absl::Duration latency);
  // gRPC reported the call cancelled (client gone or deadline passed) before it was answered.
  void RequestCancelled(RpcMethod method);
  // Mutual TLS refused a call for its client certificate (any service, health included).
  void ClientCertificateRefused();

  void AddQueuedProblems(int delta);
  void AddInflightProblems(int delta);
  void AddSessionBytes(std::int64_t delta);
  void SetRetainedSolveBytes(std::int64_t bytes);
  void RecordQueueTime(JobKind kind, absl::Duration wait);
  void RecordLaunch(JobKind kind, int batch_size, absl::Duration duration);
  void RecordSolution(const Solution& solution);
  void RecordGradient(const ProblemGradient& gradient);
  void RecordDropped(DropReason reason, int problems);

 private:
  static constexpr int kCodeCount = 17;  // google.rpc.Code 0..16
  static constexpr int kJobKindCount = 2;
  static constexpr int kSolveStatusCount = 6;
  static constexpr int kGradientStatusCount = 5;

  std::shared_ptr<prometheus::Registry> registry_;
  std::array<std::array<prometheus::Counter*, kCodeCount>, kRpcMethodCount> requests_{};
  std::array<prometheus::Histogram*, kRpcMethodCount> request_duration_{};
  std::array<prometheus::Gauge*, kRpcMethodCount> inflight_requests_{};
  std::array<prometheus::Counter*, kRpcMethodCount> cancelled_requests_{};
  prometheus::Counter* refused_client_certificates_ = nullptr;
  std::array<prometheus::Histogram*, kJobKindCount> queue_duration_{};
  std::array<prometheus::Histogram*, kJobKindCount> solve_duration_{};
  std::array<prometheus::Histogram*, kJobKindCount> batch_size_{};
  prometheus::Histogram* iterations_ = nullptr;
  std::array<prometheus::Counter*, kSolveStatusCount> solutions_{};
  std::array<prometheus::Counter*, kGradientStatusCount> gradients_{};
  prometheus::Gauge* queued_problems_ = nullptr;
  prometheus::Gauge* inflight_problems_ = nullptr;
  prometheus::Gauge* session_bytes_ = nullptr;
  prometheus::Gauge* retained_solve_bytes_ = nullptr;
  std::array<prometheus::Counter*, kDropReasonCount> dropped_{};
};

}  // namespace mpc

#endif  // MPC_SERVER_SERVICE_METRICS_H_
