#ifndef MPC_SERVER_RETAINED_SOLVES_H_
#define MPC_SERVER_RETAINED_SOLVES_H_

// Solves kept for their Backward (SolveRequest.retain_for_backward): each as the part of a
// BackwardRequest its client would otherwise send back (horizon, problems, template, batched and
// the solutions) and its problems as the Solve converted them (so that the Backward does not
// convert them again), under a random name, within a byte budget (--retained_solve_bytes), the
// least recently used given up first. Thread-safe.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "mpcd/v1/mpcd.pb.h"
#include "server/service_metrics.h"
#include "solver/lru_map.h"
#include "solver/problem.h"

namespace mpc {

// What a retained Solve keeps.
struct RetainedSolve {
  mpcd::v1::BackwardRequest part;  // RetainedSolves::BackwardPart
  std::vector<Problem> problems;   // the Solve's, through AsBackwardProblem
};

// A Backward request with the retained Solve it names merged in.
struct ResolvedBackward {
  // Null when the request names no retained Solve (use it as it is); else the merged request.
  std::unique_ptr<mpcd::v1::BackwardRequest> merged;
  // The merged request's problems, converted (null when it names none).
  std::shared_ptr<const RetainedSolve> retained;
};

class RetainedSolves {
 public:
  // `metrics` (may be null) gets the bytes held after every change.
  RetainedSolves(std::int64_t capacity_bytes, ServiceMetrics* metrics)
      : by_name_(capacity_bytes), metrics_(metrics) {}

  // The part of a BackwardRequest that `request` and its answer make (its solutions from
  // `response`, stacked or one per problem as answered).
  static mpcd::v1::BackwardRequest BackwardPart(const mpcd::v1::SolveRequest& request,
                                                const mpcd::v1::SolveResponse& response);

  // The bytes a retained Solve counts against the budget.
  static std::int64_t BytesOf(const RetainedSolve& retained);

  // The name `part` and `problems` (the Solve's converted problems, any options) are kept under,
  // or "" when they alone are over the budget.
  std::string Retain(mpcd::v1::BackwardRequest part, std::vector<Problem> problems);

  // Nothing when `request` names no retained solve; else the request with the retained part
  // merged in and the retained problems. INVALID_ARGUMENT when it names one and also carries part
  // of it, FAILED_PRECONDITION when this server does not hold it; both name retained_solve.
  absl::StatusOr<ResolvedBackward> Resolve(const mpcd::v1::BackwardRequest& request);

 private:
  mutable absl::Mutex mu_;
  LruMap<RetainedSolve> by_name_ ABSL_GUARDED_BY(mu_);
  absl::BitGen random_ ABSL_GUARDED_BY(mu_);
  ServiceMetrics* const metrics_;
};

}  // namespace mpc

#endif  // MPC_SERVER_RETAINED_SOLVES_H_
