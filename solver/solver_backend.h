#ifndef MPC_SOLVER_SOLVER_BACKEND_H_
#define MPC_SOLVER_SOLVER_BACKEND_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "solver/problem.h"

namespace mpc {

// Solves batches of problems. Implementations: CpuBackend (cpu/cpu_backend.h), CudaBackend.
class SolverBackend {
 public:
  virtual ~SolverBackend() = default;

  // "cpu" | "cuda"; used as a metrics label.
  virtual absl::string_view name() const = 0;

  // Solves problems[i] into *solutions[i] (resized as needed). Problems may differ in shape and options;
  // each is solved on its own, so its result is bitwise the same alone or in any batch. Problems must
  // have passed ValidateProblemSizes and ValidateProblem. Returns non-OK only if the whole batch could
  // not run; per-problem failures are data (Solution::status).
  virtual absl::Status SolveBatch(absl::Span<const Problem* const> problems,
                                  absl::Span<Solution* const> solutions) = 0;
};

}  // namespace mpc

#endif  // MPC_SOLVER_SOLVER_BACKEND_H_
