#include "solver/cpu/cpu_backend.h"

#include <algorithm>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "solver/cpu/ilqr.h"
#include "solver/cpu/implicit_backward.h"
#include "solver/solution_jacobians.h"

namespace mpc {

absl::StatusOr<std::unique_ptr<CpuBackend>> CpuBackend::Create(const CpuBackendOptions& options) {
  if (options.threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat("threads: must be >= 0, got ", options.threads));
  }
  int threads = options.threads;
  if (threads == 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (options.max_cached_shapes < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_cached_shapes: must be >= 1, got ", options.max_cached_shapes));
  }
  if (options.max_workspace_bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_workspace_bytes: must be >= 0, got ", options.max_workspace_bytes));
  }
  if (options.max_concurrent_launches < 0) {
    return absl::InvalidArgumentError(absl::StrCat("max_concurrent_launches: must be >= 0, got ",
                                                   options.max_concurrent_launches));
  }
  const int launches =
      options.max_concurrent_launches == 0 ? threads : options.max_concurrent_launches;
  return std::unique_ptr<CpuBackend>(new CpuBackend(std::make_unique<ThreadPool>(threads, launches),
                                                    options.max_cached_shapes,
                                                    options.max_workspace_bytes));
}

CpuBackend::WorkerCaches::WorkerCaches(int capacity, std::size_t max_bytes)
    : solvers(capacity, &MakeShapeSolver, max_bytes),
      backward(capacity, &MakeShapeBackward, max_bytes) {}

CpuBackend::CpuBackend(std::unique_ptr<ThreadPool> pool, int max_cached_shapes,
                       std::int64_t max_workspace_bytes)
    : pool_(std::move(pool)) {
  // Every slot's two caches get an equal share of the bound.
  const std::size_t share = static_cast<std::size_t>(max_workspace_bytes) /
                            (2 * static_cast<std::size_t>(pool_->slots()));
  workers_.reserve(static_cast<std::size_t>(pool_->slots()));
  for (int w = 0; w < pool_->slots(); ++w) workers_.emplace_back(max_cached_shapes, share);
}

int CpuBackend::cached_solve_workspaces() const {
  int total = 0;
  for (const WorkerCaches& worker : workers_) total += worker.solvers.size();
  return total;
}

std::size_t CpuBackend::cached_workspace_bytes() const {
  std::size_t total = 0;
  for (const WorkerCaches& worker : workers_) {
    total += worker.solvers.bytes() + worker.backward.bytes();
  }
  return total;
}

absl::Status CpuBackend::SolveBatch(absl::Span<const Problem* const> problems,
                                    absl::Span<Solution* const> solutions) {
  if (problems.size() != solutions.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SolveBatch: ", problems.size(), " problems but ", solutions.size(), " solutions"));
  }
  pool_->ParallelFor(static_cast<int>(problems.size()), [&](int worker, int i) {
    const Problem& problem = *problems[i];
    WorkspaceCache<ShapeSolver>& cache = workers_[worker].solvers;
    cache.Get(problem.shape).Solve(problem, solutions[i]);
    cache.ReleaseUncached();
    ComputeRequestedJacobians(problem, solutions[i]);
  });
  return absl::OkStatus();
}

void CpuBackend::ComputeJacobians(absl::Span<const Problem* const> problems,
                                  absl::Span<Solution* const> solutions) {
  const int count = static_cast<int>(std::min(problems.size(), solutions.size()));
  bool any = false;
  for (int i = 0; i < count; ++i) {
    const SolverOptions& options = problems[i]->options;
    any = any || options.compute_x_init_jacobian || options.compute_params_jacobian;
  }
  if (!any) {  // only empties stale arrays: not worth waking the pool
    for (int i = 0; i < count; ++i) ComputeRequestedJacobians(*problems[i], solutions[i]);
    return;
  }
  pool_->ParallelFor(
      count, [&](int /*worker*/, int i) { ComputeRequestedJacobians(*problems[i], solutions[i]); });
}

absl::Status CpuBackend::BackwardBatch(absl::Span<const BackwardProblem* const> problems,
                                       absl::Span<ProblemGradient* const> gradients) {
  if (absl::Status status = ValidateBackwardBatch(problems, gradients.size()); !status.ok()) {
    return status;
  }
  pool_->ParallelFor(static_cast<int>(problems.size()), [&](int worker, int i) {
    const BackwardProblem& problem = *problems[i];
    if (StopRequestedBefore(problem)) {
      gradients[i]->status = GradientStatus::kStopped;
      return;
    }
    WorkspaceCache<ShapeBackward>& cache = workers_[worker].backward;
    cache.Get(problem.problem->shape).Backward(problem, gradients[i]);
    cache.ReleaseUncached();
    MarkUnlessSolution(*problem.problem, problem.x, problem.u, gradients[i]);
  });
  return absl::OkStatus();
}

}  // namespace mpc
