#include "solver/cpu/implicit_backward_solver.h"
#include "solver/models/cartpole.h"
#include "solver/models/pendulum.h"

namespace mpc {

std::unique_ptr<ShapeBackward> MakeModelShapeBackward(const ProblemShape& shape, bool fixed_size) {
  using backward_internal::ImplicitBackwardSolver;
  using backward_internal::kDyn;
  using backward_internal::ModelDynamics;
  switch (shape.dynamics) {
    case DynamicsKind::kPendulum:
      if (fixed_size) {
        return std::make_unique<ImplicitBackwardSolver<ModelDynamics<PendulumModel>, 3, 1>>(shape);
      }
      return std::make_unique<ImplicitBackwardSolver<ModelDynamics<PendulumModel>, kDyn, kDyn>>(
          shape);
    case DynamicsKind::kCartpole:
      if (fixed_size) {
        return std::make_unique<ImplicitBackwardSolver<ModelDynamics<CartpoleModel>, 5, 1>>(shape);
      }
      return std::make_unique<ImplicitBackwardSolver<ModelDynamics<CartpoleModel>, kDyn, kDyn>>(
          shape);
    case DynamicsKind::kLinear:
      break;
  }
  return nullptr;
}

}  // namespace mpc
