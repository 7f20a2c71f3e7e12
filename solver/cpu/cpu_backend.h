#ifndef MPC_SOLVER_CPU_CPU_BACKEND_H_
#define MPC_SOLVER_CPU_CPU_BACKEND_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "solver/cpu/ilqr.h"
#include "solver/cpu/implicit_backward.h"
#include "solver/cpu/thread_pool.h"
#include "solver/cpu/workspace_cache.h"
#include "solver/solver_backend.h"

namespace mpc {

struct CpuBackendOptions {
  int threads = 0;  // worker threads; 0 = one per hardware thread
  // Workspaces each worker keeps (per direction: solves, backward passes), one per problem shape;
  // the least recently used is freed beyond this. >= 1.
  int max_cached_shapes = 16;
  // Bytes of workspaces kept between launches over every worker and both directions (by
  // WorkspaceBytes); a workspace larger than a worker's share is freed after each use.
  std::int64_t max_workspace_bytes = std::int64_t{256} << 20;
  // Launches that may run at once (each on its caller's thread plus the shared workers); 0 = as
  // many as threads.
  int max_concurrent_launches = 0;
};

// SolverBackend on CPU threads: a fixed pool splits each batch and serves several launches at once
// in turn (ThreadPool), so a long launch does not hold back short ones. Every worker keeps one
// workspace per problem shape (one for solves, one for backward passes), allocated on first use and
// reused, so steady-state solves and backward passes allocate nothing; the caches are bounded in
// shapes and in bytes, so memory stays bounded whatever shapes arrive.
class CpuBackend final : public SolverBackend {
 public:
  static absl::StatusOr<std::unique_ptr<CpuBackend>> Create(const CpuBackendOptions& options);

  absl::string_view name() const override { return "cpu"; }
  int max_concurrent_launches() const override { return pool_->slots() - pool_->size() + 1; }
  absl::Status SolveBatch(absl::Span<const Problem* const> problems,
                          absl::Span<Solution* const> solutions) override;
  absl::Status BackwardBatch(absl::Span<const BackwardProblem* const> problems,
                             absl::Span<ProblemGradient* const> gradients) override;

  // The Jacobians problems[i].options ask for, of solutions[i] already solved elsewhere (the CUDA
  // backend's device solves), split over the pool (ComputeRequestedJacobians). SolveBatch computes
  // them itself.
  void ComputeJacobians(absl::Span<const Problem* const> problems,
                        absl::Span<Solution* const> solutions);

  int threads() const { return pool_->size(); }
  // Solve workspaces held now, over all workers (for tests and memory accounting; call between
  // launches).
  int cached_solve_workspaces() const;
  // Bytes of cached workspaces (both directions) by WorkspaceBytes, between launches.
  std::size_t cached_workspace_bytes() const;

 private:
  struct WorkerCaches {
    WorkerCaches(int capacity, std::size_t max_bytes);
    WorkspaceCache<ShapeSolver> solvers;
    WorkspaceCache<ShapeBackward> backward;
  };

  CpuBackend(std::unique_ptr<ThreadPool> pool, int max_cached_shapes,
             std::int64_t max_workspace_bytes);

  std::unique_ptr<ThreadPool> pool_;
  // One per pool slot; the call running in slot w touches only workers_[w].
  std::vector<WorkerCaches> workers_;
};

}  // namespace mpc

#endif  // MPC_SOLVER_CPU_CPU_BACKEND_H_
