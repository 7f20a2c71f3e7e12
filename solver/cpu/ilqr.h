#ifndef MPC_SOLVER_CPU_ILQR_H_
#define MPC_SOLVER_CPU_ILQR_H_

#include <memory>

#include "solver/problem.h"

namespace mpc {

// Box-constrained iLQR (DESIGN §3) for problems of one shape, on the calling thread. The workspace
// is allocated at construction; Solve allocates nothing when `solution` is already sized
// (Solution::Resize), so a ShapeSolver is meant to be kept and reused.
class ShapeSolver {
 public:
  virtual ~ShapeSolver() = default;
  virtual const ProblemShape& shape() const = 0;
  // `problem.shape` must equal shape(); the problem must be valid (ValidateProblem*).
  virtual void Solve(const Problem& problem, Solution* solution) = 0;
};

// A solver specialised at compile time for common sizes (pendulum, cartpole, small linear systems)
// with a dynamic-size fallback.
std::unique_ptr<ShapeSolver> MakeShapeSolver(const ProblemShape& shape);

// Always the dynamic-size implementation (for tests that compare it with the specialised ones).
std::unique_ptr<ShapeSolver> MakeDynamicSizeShapeSolver(const ProblemShape& shape);

// As MakeShapeSolver, but rolling a sampling problem's samples and the line search's trials out
// one at a time in double, as the GPU does (MakeShapeSolver's rolls several out at once, with
// libmvec's sin and cos): for the tests that compare the device layout on the host with the CPU
// bitwise, and the lanes with one at a time.
std::unique_ptr<ShapeSolver> MakeOneSampleAtATimeShapeSolver(const ProblemShape& shape);

// Convenience for tests and tools: a fresh solver, one problem.
Solution SolveProblem(const Problem& problem);

}  // namespace mpc

#endif  // MPC_SOLVER_CPU_ILQR_H_
