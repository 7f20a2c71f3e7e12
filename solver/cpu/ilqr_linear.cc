#include "solver/cpu/ilqr_solver.h"

namespace mpc {

std::unique_ptr<ShapeSolver> MakeLinearShapeSolver(const ProblemShape& shape, bool fixed_size) {
  using ilqr_internal::IlqrSolver;
  using ilqr_internal::kDyn;
  using ilqr_internal::LinearDynamics;
  // Compile-time sizes pay off for small systems; each adds build time, so only the benchmarked
  // shape is specialised and everything else takes the dynamic-size path.
  if (fixed_size && shape.state_dim == 8 && shape.control_dim == 4) {
    return std::make_unique<IlqrSolver<LinearDynamics, 8, 4>>(shape);
  }
  return std::make_unique<IlqrSolver<LinearDynamics, kDyn, kDyn>>(shape);
}

}  // namespace mpc
