#ifndef MPC_SOLVER_MODELS_MODEL_H_
#define MPC_SOLVER_MODELS_MODEL_H_

// What a built-in model is: a struct (one header under solver/models/) with
//   kName                      its name on the wire (Dynamics.model)
//   kStateDim, kControlDim     n and m
//   kParamDim                  how many parameters theta it takes (>= 1: learnable)
//   kDefaultDt                 its time step in seconds when a request gives none
//   kParamNames, kDefaultParams, kStateNames, kControlNames   arrays of those sizes
//   kContinuous                false: discrete-time, the model is its update rule
//       template <typename T, typename P> MPC_HOST_DEVICE static void Step(
//           const T* x, const T* u, const P* p, double dt, T* x_next)
//                              true: continuous-time, the model is its ODE
//       template <typename T, typename P> MPC_HOST_DEVICE static void Derivative(
//           const T* x, const T* u, const P* p, T* dxdt)
//       with kDefaultIntegrator (integrators.h), used when a request names none
// Step or Derivative is written once over the scalar types (double, float, dual numbers for
// derivatives; P is the parameters' scalar), runs on host and device, and is differentiated by
// forward-mode AD (model_derivatives.h) through ModelStep (integrators.h), which runs a
// continuous-time model's integrator. The model is listed in model_list.h; nothing else names it.
//
// Below: the compile-time list machinery (plain C++, nvcc compiles it).

#include <concepts>
#include <type_traits>

namespace mpc {

template <class Model>
concept BuiltinModel = requires {
  { Model::kName } -> std::convertible_to<const char*>;
  requires Model::kStateDim >
  0 && Model::kControlDim > 0 && Model::kParamDim > 0;
  requires sizeof(Model::kParamNames) / sizeof(Model::kParamNames[0]) == Model::kParamDim;
  requires sizeof(Model::kDefaultParams) / sizeof(Model::kDefaultParams[0]) == Model::kParamDim;
  requires sizeof(Model::kStateNames) / sizeof(Model::kStateNames[0]) == Model::kStateDim;
  requires sizeof(Model::kControlNames) / sizeof(Model::kControlNames[0]) == Model::kControlDim;
  { Model::kDefaultDt } -> std::convertible_to<double>;
  { Model::kContinuous } -> std::convertible_to<bool>;
  requires(!Model::kContinuous) || requires { Model::kDefaultIntegrator; };
};

template <BuiltinModel... Models>
struct ModelList {
  static constexpr int kSize = sizeof...(Models);
};

// The index of Model in the list (a compile error when it is not listed).
template <class Model, class... Models>
constexpr int IndexInList(ModelList<Models...>) {
  int index = 0, found = -1;
  ((found = (found < 0 && std::is_same_v<Model, Models>) ? index : found, ++index), ...);
  return found;
}

template <class Fn, class... Models>
void ForEachInList(ModelList<Models...>, Fn& fn) {
  (fn.template operator()<Models>(), ...);
}

template <class Fn, class... Models>
bool VisitInList(ModelList<Models...>, int index, Fn& fn) {
  int i = 0;
  bool visited = false;
  ((i++ == index ? (fn.template operator()<Models>(), visited = true) : false), ...);
  return visited;
}

}  // namespace mpc

#endif  // MPC_SOLVER_MODELS_MODEL_H_
