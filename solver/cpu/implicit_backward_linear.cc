#include "solver/cpu/implicit_backward_solver.h"

namespace mpc {

std::unique_ptr<ShapeBackward> MakeLinearShapeBackward(const ProblemShape& shape, bool fixed_size) {
  using backward_internal::ImplicitBackwardSolver;
  using backward_internal::kDyn;
  using backward_internal::LinearDynamics;
  // As for the forward solver: only the benchmarked shape is specialised.
  if (fixed_size && shape.state_dim == 8 && shape.control_dim == 4) {
    return std::make_unique<ImplicitBackwardSolver<LinearDynamics, 8, 4>>(shape);
  }
  return std::make_unique<ImplicitBackwardSolver<LinearDynamics, kDyn, kDyn>>(shape);
}

}  // namespace mpc
