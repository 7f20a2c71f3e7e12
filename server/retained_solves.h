#ifndef MPC_SERVER_RETAINED_SOLVES_H_
#define MPC_SERVER_RETAINED_SOLVES_H_

// Solves kept for their Backward (SolveRequest.retain_for_backward): each as the part of a
// BackwardRequest its client would otherwise send back (horizon, problems, template, batched and
// the solutions), under a random name, within a byte budget (--retained_solve_bytes), the least
// recently used given up first. Thread-safe.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "mpcd/v1/mpcd.pb.h"
#include "server/service_metrics.h"
#include "solver/lru_map.h"

namespace mpc {

class RetainedSolves {
 public:
  // `metrics` (may be null) gets the bytes held after every change.
  RetainedSolves(std::int64_t capacity_bytes, ServiceMetrics* metrics)
      : by_name_(capacity_bytes), metrics_(metrics) {}

  // The part of a BackwardRequest that `request` and its answer make (its solutions from
  // `response`, stacked or one per problem as answered).
  static mpcd::v1::BackwardRequest BackwardPart(const mpcd::v1::SolveRequest& request,
                                                const mpcd::v1::SolveResponse& response);

  // The name `retained` is kept under, or "" when it alone is over the budget.
  std::string Retain(mpcd::v1::BackwardRequest retained);

  // `request` itself when it names no retained solve (null: use it as it is); else the request
  // with the retained part merged in. INVALID_ARGUMENT when it names one and also carries part of
  // it, FAILED_PRECONDITION when this server does not hold it; both name retained_solve.
  absl::StatusOr<std::unique_ptr<mpcd::v1::BackwardRequest>> Resolve(
      const mpcd::v1::BackwardRequest& request);

 private:
  mutable absl::Mutex mu_;
  LruMap<mpcd::v1::BackwardRequest> by_name_ ABSL_GUARDED_BY(mu_);
  absl::BitGen random_ ABSL_GUARDED_BY(mu_);
  ServiceMetrics* const metrics_;
};

}  // namespace mpc

#endif  // MPC_SERVER_RETAINED_SOLVES_H_
