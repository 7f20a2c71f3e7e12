#ifndef MPC_SOLVER_SOLVER_BACKEND_H_
#define MPC_SOLVER_SOLVER_BACKEND_H_

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "solver/gradients.h"
#include "solver/problem.h"

namespace mpc {

// Solves batches of problems. Implementations: CpuBackend (cpu/cpu_backend.h), CudaBackend.
class SolverBackend {
 public:
  virtual ~SolverBackend() = default;

  // "cpu" | "cuda"; used as a metrics label.
  virtual absl::string_view name() const = 0;

  // How many SolveBatch/BackwardBatch calls may run at once from different threads. 1 = calls
  // must be serialised by the caller.
  virtual int max_concurrent_launches() const { return 1; }

  // Solves problems[i] into *solutions[i] (resized as needed). Problems may differ in shape and
  // options; each is solved on its own, so its result is bitwise the same alone or in any batch.
  // Problems must have passed ValidateProblemSizes and ValidateProblem. Returns non-OK only if the
  // whole batch could not run; per-problem failures are data (Solution::status).
  virtual absl::Status SolveBatch(absl::Span<const Problem* const> problems,
                                  absl::Span<Solution* const> solutions) = 0;

  // Vector-Jacobian products (DESIGN §4): dL/d(inputs) of problems[i] into *gradients[i] (resized
  // as needed), each on its own, one backend call per batch. Problems must have passed
  // ValidateBackwardProblem (and their Problem the problem validations). Returns non-OK only if the
  // whole batch could not run; per-problem trouble is data (ProblemGradient::status). The default
  // is for backends without gradients.
  virtual absl::Status BackwardBatch(absl::Span<const BackwardProblem* const> problems,
                                     absl::Span<ProblemGradient* const> gradients) {
    (void)problems;
    (void)gradients;
    return absl::UnimplementedError(
        absl::StrCat("Backward: the ", name(), " backend has no gradients yet"));
  }
};

}  // namespace mpc

#endif  // MPC_SOLVER_SOLVER_BACKEND_H_
