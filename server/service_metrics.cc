#include "server/service_metrics.h"

#include <string>

#include "common/build_info.h"
#include "prometheus/family.h"

namespace mpc {
namespace {

// Upper bounds, sorted (prometheus-cpp requires it). Latencies span a cheap solve over loopback
// (tens of microseconds) to a large batch (seconds).
const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* const buckets = new prometheus::Histogram::BucketBoundaries{
      25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3,
      25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1.0,  2.5,    5.0,  10.0};
  return *buckets;
}

const prometheus::Histogram::BucketBoundaries& BatchSizeBuckets() {
  static const auto* const buckets = new prometheus::Histogram::BucketBoundaries{
      1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536};
  return *buckets;
}

const prometheus::Histogram::BucketBoundaries& IterationBuckets() {
  static const auto* const buckets = new prometheus::Histogram::BucketBoundaries{
      1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, 10000};
  return *buckets;
}

int KindIndex(JobKind kind) { return kind == JobKind::kSolve ? 0 : 1; }

// gRPC's names for the canonical codes (the label values of mpcd_requests_total).
const char* CodeName(int code) {
  static constexpr const char* kNames[] = {"OK",
                                           "CANCELLED",
                                           "UNKNOWN",
                                           "INVALID_ARGUMENT",
                                           "DEADLINE_EXCEEDED",
                                           "NOT_FOUND",
                                           "ALREADY_EXISTS",
                                           "PERMISSION_DENIED",
                                           "RESOURCE_EXHAUSTED",
                                           "FAILED_PRECONDITION",
                                           "ABORTED",
                                           "OUT_OF_RANGE",
                                           "UNIMPLEMENTED",
                                           "INTERNAL",
                                           "UNAVAILABLE",
                                           "DATA_LOSS",
                                           "UNAUTHENTICATED"};
  return kNames[code];
}

}  // namespace

const char* RpcMethodName(RpcMethod method) {
  switch (method) {
    case RpcMethod::kSolve:
      return "Solve";
    case RpcMethod::kBackward:
      return "Backward";
    case RpcMethod::kListModels:
      return "ListModels";
    case RpcMethod::kControl:
      return "Control";
  }
  return "unknown";
}

ServiceMetrics::ServiceMetrics(absl::string_view backend)
    : registry_(std::make_shared<prometheus::Registry>()) {
  const std::string backend_name(backend);
  auto& requests = prometheus::BuildCounter()
                       .Name("mpcd_requests_total")
                       .Help("RPCs answered, by method and gRPC status code.")
                       .Register(*registry_);
  auto& request_duration = prometheus::BuildHistogram()
                               .Name("mpcd_request_duration_seconds")
                               .Help(
                                   "End-to-end RPC latency in the server: handler entry to "
                                   "Finish, by method.")
                               .Register(*registry_);
  auto& inflight_requests = prometheus::BuildGauge()
                                .Name("mpcd_inflight_requests")
                                .Help("RPCs accepted and not yet answered, by method.")
                                .Register(*registry_);
  auto& cancelled_requests = prometheus::BuildCounter()
                                 .Name("mpcd_cancelled_requests_total")
                                 .Help(
                                     "RPCs cancelled by the client (or by their deadline) "
                                     "before they were answered, by method.")
                                 .Register(*registry_);
  refused_client_certificates_ =
      &prometheus::BuildCounter()
           .Name("mpcd_refused_client_certificates_total")
           .Help(
               "Calls refused UNAUTHENTICATED by mutual TLS for their client certificate (none, "
               "untrusted, expired or not for clients), before reaching any service.")
           .Register(*registry_)
           .Add({});
  for (int m = 0; m < kRpcMethodCount; ++m) {
    const std::string method = RpcMethodName(static_cast<RpcMethod>(m));
    cancelled_requests_[m] = &cancelled_requests.Add({{"method", method}});
    for (int code = 0; code < kCodeCount; ++code) {
      requests_[m][code] = &requests.Add({{"method", method}, {"code", CodeName(code)}});
    }
    request_duration_[m] = &request_duration.Add({{"method", method}}, LatencyBuckets());
    inflight_requests_[m] = &inflight_requests.Add({{"method", method}});
  }

  auto& queue_duration = prometheus::BuildHistogram()
                             .Name("mpcd_queue_duration_seconds")
                             .Help(
                                 "Per problem: time in the batcher's queue, enqueue to launch "
                                 "(or to drop), by kind (solve, backward).")
                             .Register(*registry_);
  auto& solve_duration = prometheus::BuildHistogram()
                             .Name("mpcd_solve_duration_seconds")
                             .Help("Per backend launch: wall time, by kind (solve, backward).")
                             .Labels({{"backend", backend_name}})
                             .Register(*registry_);
  auto& batch_size = prometheus::BuildHistogram()
                         .Name("mpcd_batch_size")
                         .Help("Per backend launch: problems in it, by kind (solve, backward).")
                         .Labels({{"backend", backend_name}})
                         .Register(*registry_);
  for (JobKind kind : {JobKind::kSolve, JobKind::kBackward}) {
    const int k = KindIndex(kind);
    queue_duration_[k] = &queue_duration.Add({{"kind", JobKindName(kind)}}, LatencyBuckets());
    solve_duration_[k] = &solve_duration.Add({{"kind", JobKindName(kind)}}, LatencyBuckets());
    batch_size_[k] = &batch_size.Add({{"kind", JobKindName(kind)}}, BatchSizeBuckets());
  }

  iterations_ = &prometheus::BuildHistogram()
                     .Name("mpcd_solver_iterations")
                     .Help("Per solved problem: iLQR iterations run.")
                     .Register(*registry_)
                     .Add({}, IterationBuckets());

  auto& solutions = prometheus::BuildCounter()
                        .Name("mpcd_solutions_total")
                        .Help("Solved problems by SolveStatus.")
                        .Register(*registry_);
  static constexpr const char* kSolveStatuses[kSolveStatusCount] = {
      "converged", "max_iterations", "linesearch_failed", "not_finite", "deadline", "infeasible"};
  for (int s = 0; s < kSolveStatusCount; ++s) {
    solutions_[s] = &solutions.Add({{"status", kSolveStatuses[s]}});
  }
  auto& gradients = prometheus::BuildCounter()
                        .Name("mpcd_gradients_total")
                        .Help("Backward problems by GradientStatus.")
                        .Register(*registry_);
  static constexpr const char* kGradientStatuses[kGradientStatusCount] = {
      "ok", "ill_conditioned", "regularized", "not_finite", "not_solution"};
  for (int s = 0; s < kGradientStatusCount; ++s) {
    gradients_[s] = &gradients.Add({{"status", kGradientStatuses[s]}});
  }

  queued_problems_ = &prometheus::BuildGauge()
                          .Name("mpcd_queued_problems")
                          .Help("Problems waiting in the batcher's queues.")
                          .Register(*registry_)
                          .Add({});
  inflight_problems_ = &prometheus::BuildGauge()
                            .Name("mpcd_inflight_problems")
                            .Help("Problems inside a backend launch.")
                            .Register(*registry_)
                            .Add({});
  session_bytes_ = &prometheus::BuildGauge()
                        .Name("mpcd_session_bytes")
                        .Help("Bytes held by open Control sessions (against --max_session_bytes).")
                        .Register(*registry_)
                        .Add({});
  retained_solve_bytes_ =
      &prometheus::BuildGauge()
           .Name("mpcd_retained_solve_bytes")
           .Help("Bytes of the Solves kept for their Backward (against --retained_solve_bytes).")
           .Register(*registry_)
           .Add({});
  auto& dropped = prometheus::BuildCounter()
                      .Name("mpcd_dropped_problems_total")
                      .Help(
                          "Problems answered without a launch, by reason (queue_full, "
                          "stopping, deadline, cancelled).")
                      .Register(*registry_);
  static constexpr const char* kReasons[kDropReasonCount] = {"queue_full", "stopping", "deadline",
                                                             "cancelled"};
  for (int r = 0; r < kDropReasonCount; ++r) dropped_[r] = &dropped.Add({{"reason", kReasons[r]}});

  prometheus::BuildGauge()
      .Name("mpcd_backend_info")
      .Help("1 for the solver backend this server uses.")
      .Register(*registry_)
      .Add({{"backend", backend_name}})
      .Set(1);
  prometheus::BuildGauge()
      .Name("mpcd_build_info")
      .Help("1, labeled with the mpcd version and the git revision it was built from.")
      .Register(*registry_)
      .Add({{"version", kBuildVersion}, {"revision", kBuildRevision}})
      .Set(1);
}

void ServiceMetrics::RequestStarted(RpcMethod method) {
  inflight_requests_[static_cast<int>(method)]->Increment();
}

void ServiceMetrics::RequestFinished(RpcMethod method, absl::StatusCode code,
                                     absl::Duration latency) {
  const int m = static_cast<int>(method);
  int c = static_cast<int>(code);
  if (c < 0 || c >= kCodeCount) c = static_cast<int>(absl::StatusCode::kUnknown);
  requests_[m][c]->Increment();
  request_duration_[m]->Observe(absl::ToDoubleSeconds(latency));
  inflight_requests_[m]->Decrement();
}

void ServiceMetrics::RequestCancelled(RpcMethod method) {
  cancelled_requests_[static_cast<int>(method)]->Increment();
}

void ServiceMetrics::ClientCertificateRefused() { refused_client_certificates_->Increment(); }

void ServiceMetrics::AddQueuedProblems(int delta) { queued_problems_->Increment(delta); }

void ServiceMetrics::AddInflightProblems(int delta) { inflight_problems_->Increment(delta); }

void ServiceMetrics::AddSessionBytes(std::int64_t delta) {
  session_bytes_->Increment(static_cast<double>(delta));
}

void ServiceMetrics::SetRetainedSolveBytes(std::int64_t bytes) {
  retained_solve_bytes_->Set(static_cast<double>(bytes));
}

void ServiceMetrics::RecordQueueTime(JobKind kind, absl::Duration wait) {
  queue_duration_[KindIndex(kind)]->Observe(absl::ToDoubleSeconds(wait));
}

void ServiceMetrics::RecordLaunch(JobKind kind, int batch_size, absl::Duration duration) {
  solve_duration_[KindIndex(kind)]->Observe(absl::ToDoubleSeconds(duration));
  batch_size_[KindIndex(kind)]->Observe(batch_size);
}

void ServiceMetrics::RecordSolution(const Solution& solution) {
  iterations_->Observe(solution.iterations);
  const int s = static_cast<int>(solution.status);
  if (s >= 0 && s < kSolveStatusCount) solutions_[s]->Increment();
}

void ServiceMetrics::RecordGradient(const ProblemGradient& gradient) {
  const int s = static_cast<int>(gradient.status);
  if (s >= 0 && s < kGradientStatusCount) gradients_[s]->Increment();
}

void ServiceMetrics::RecordDropped(DropReason reason, int problems) {
  dropped_[static_cast<int>(reason)]->Increment(problems);
}

}  // namespace mpc
