#include "solver/cpu/ilqr.h"

#include "solver/cpu/core_executor.h"

namespace mpc {

std::unique_ptr<ShapeSolver> MakeShapeSolver(const ProblemShape& shape) {
  return MakeCoreShapeSolver(shape, CoreSizes::kSpecialised);
}

std::unique_ptr<ShapeSolver> MakeDynamicSizeShapeSolver(const ProblemShape& shape) {
  return MakeCoreShapeSolver(shape, CoreSizes::kRunTime);
}

std::unique_ptr<ShapeSolver> MakeOneSampleAtATimeShapeSolver(const ProblemShape& shape) {
  return MakeCoreShapeSolver(shape, CoreSizes::kSpecialised, SampleRollouts::kOneByOne);
}

Solution SolveProblem(const Problem& problem) {
  Solution solution;
  MakeShapeSolver(problem.shape)->Solve(problem, &solution);
  return solution;
}

}  // namespace mpc
