#ifndef MPC_SOLVER_CPU_CPU_BACKEND_H_
#define MPC_SOLVER_CPU_CPU_BACKEND_H_

#include <memory>

#include "absl/status/statusor.h"
#include "solver/cpu/thread_pool.h"
#include "solver/solver_backend.h"

namespace mpc {

struct CpuBackendOptions {
  int threads = 0;  // worker threads; 0 = one per hardware thread
};

// SolverBackend on CPU threads: a fixed pool splits each batch; every worker keeps one workspace
// per problem shape (one for solves, one for backward passes), allocated on first use and reused,
// so steady-state solves and backward passes allocate nothing.
class CpuBackend final : public SolverBackend {
 public:
  static absl::StatusOr<std::unique_ptr<CpuBackend>> Create(const CpuBackendOptions& options);

  absl::string_view name() const override { return "cpu"; }
  absl::Status SolveBatch(absl::Span<const Problem* const> problems,
                          absl::Span<Solution* const> solutions) override;
  absl::Status BackwardBatch(absl::Span<const BackwardProblem* const> problems,
                             absl::Span<ProblemGradient* const> gradients) override;

  int threads() const { return pool_->size(); }

 private:
  explicit CpuBackend(std::unique_ptr<ThreadPool> pool);

  std::unique_ptr<ThreadPool> pool_;
};

}  // namespace mpc

#endif  // MPC_SOLVER_CPU_CPU_BACKEND_H_
