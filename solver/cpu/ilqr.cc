#include "solver/cpu/ilqr.h"

#include "solver/cpu/ilqr_solver.h"

namespace mpc {

std::unique_ptr<ShapeSolver> MakeShapeSolver(const ProblemShape& shape) {
  if (shape.dynamics == DynamicsKind::kLinear) return MakeLinearShapeSolver(shape, true);
  return MakeModelShapeSolver(shape, true);
}

std::unique_ptr<ShapeSolver> MakeDynamicSizeShapeSolver(const ProblemShape& shape) {
  if (shape.dynamics == DynamicsKind::kLinear) return MakeLinearShapeSolver(shape, false);
  return MakeModelShapeSolver(shape, false);
}

Solution SolveProblem(const Problem& problem) {
  Solution solution;
  MakeShapeSolver(problem.shape)->Solve(problem, &solution);
  return solution;
}

}  // namespace mpc
