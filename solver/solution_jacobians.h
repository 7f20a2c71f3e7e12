#ifndef MPC_SOLVER_SOLUTION_JACOBIANS_H_
#define MPC_SOLVER_SOLUTION_JACOBIANS_H_

// The Jacobians a Solve may ask for (SolverOptions::compute_x_init_jacobian /
// compute_params_jacobian), computed in one place for every backend: a backend calls this per
// problem inside its launch, right after the solve, so the work counts as solve time and never runs
// on the dynamic batcher's thread. Turning a Solution into a response only copies them.

#include "solver/problem.h"

namespace mpc {

// Fills solution->x_init_jacobian (T, n+m, n), ->params_jacobian (T, n+m, p) and
// ->jacobian_diagnostics as problem.options asks, at the solution's (x, u), in
// options.jacobian_mode (implicit differentiation: ComputeSolutionJacobians in
// cpu/implicit_backward.h). The params Jacobian is computed for model dynamics only. A solution
// that is not finite, or whose Jacobians could not be computed, gets zeros and kNotFinite. With no
// Jacobian asked for, the arrays are emptied and the diagnostics reset.
void ComputeRequestedJacobians(const Problem& problem, Solution* solution);

}  // namespace mpc

#endif  // MPC_SOLVER_SOLUTION_JACOBIANS_H_
