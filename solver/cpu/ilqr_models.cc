#include "solver/cpu/ilqr_solver.h"
#include "solver/models/cartpole.h"
#include "solver/models/pendulum.h"

namespace mpc {

std::unique_ptr<ShapeSolver> MakeModelShapeSolver(const ProblemShape& shape, bool fixed_size) {
  using ilqr_internal::IlqrSolver;
  using ilqr_internal::kDyn;
  using ilqr_internal::ModelDynamics;
  switch (shape.dynamics) {
    case DynamicsKind::kPendulum:
      if (fixed_size) return std::make_unique<IlqrSolver<ModelDynamics<PendulumModel>, 3, 1>>(shape);
      return std::make_unique<IlqrSolver<ModelDynamics<PendulumModel>, kDyn, kDyn>>(shape);
    case DynamicsKind::kCartpole:
      if (fixed_size) return std::make_unique<IlqrSolver<ModelDynamics<CartpoleModel>, 5, 1>>(shape);
      return std::make_unique<IlqrSolver<ModelDynamics<CartpoleModel>, kDyn, kDyn>>(shape);
    case DynamicsKind::kLinear:
      break;
  }
  return nullptr;
}

}  // namespace mpc
