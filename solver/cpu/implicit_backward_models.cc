#include "solver/cpu/implicit_backward_solver.h"
#include "solver/models/model_list.h"

namespace mpc {

std::unique_ptr<ShapeBackward> MakeModelShapeBackward(const ProblemShape& shape, bool fixed_size) {
  using backward_internal::ImplicitBackwardSolver;
  using backward_internal::kDyn;
  std::unique_ptr<ShapeBackward> backward;
  VisitBuiltinModel(shape.dynamics, [&]<class Model>() {
    if (fixed_size) {
      backward = std::make_unique<
          ImplicitBackwardSolver<ModelDynamics<Model>, Model::kStateDim, Model::kControlDim>>(
          shape);
    } else {
      backward = std::make_unique<ImplicitBackwardSolver<ModelDynamics<Model>, kDyn, kDyn>>(shape);
    }
  });
  return backward;
}

}  // namespace mpc
