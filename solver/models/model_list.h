#ifndef MPC_SOLVER_MODELS_MODEL_LIST_H_
#define MPC_SOLVER_MODELS_MODEL_LIST_H_

// THE list of built-in models (DESIGN §11). A model is its header (model.h says what it holds) and
// one entry in BuiltinModelList below; the registry (ListModels, validation, defaults), the
// dispatch of the CPU and CUDA backends to compile-time sizes and the typed model tests are all
// generated from this list. Plain C++ (no absl, no std containers): nvcc compiles it.

#include "solver/models/cartpole.h"
#include "solver/models/cartpole_continuous.h"
#include "solver/models/double_integrator.h"
#include "solver/models/kinematic_bicycle.h"
#include "solver/models/model.h"
#include "solver/models/pendulum.h"
#include "solver/models/quadrotor.h"
#include "solver/models/unicycle.h"
#include "solver/problem_shape.h"

namespace mpc {

using BuiltinModelList =
    ModelList<PendulumModel, CartpoleModel, DoubleIntegratorModel, UnicycleModel,
              KinematicBicycleModel, QuadrotorModel, CartpoleContinuousModel>;

// The dynamics identity of `Model`: its place in the list.
template <class Model>
constexpr DynamicsId ModelId() {
  constexpr int kIndex = IndexInList<Model>(BuiltinModelList{});
  static_assert(kIndex >= 0, "the model is not in BuiltinModelList");
  return DynamicsId::Builtin(kIndex);
}

// Calls fn.template operator()<Model>() for every model of the list, in order.
template <class Fn>
void ForEachBuiltinModel(Fn&& fn) {
  ForEachInList(BuiltinModelList{}, fn);
}

// Calls fn.template operator()<Model>() for the model `id` names; false when it names none (linear
// dynamics, or an index outside the list).
template <class Fn>
bool VisitBuiltinModel(DynamicsId id, Fn&& fn) {
  return VisitInList(BuiltinModelList{}, id.model, fn);
}

}  // namespace mpc

#endif  // MPC_SOLVER_MODELS_MODEL_LIST_H_
