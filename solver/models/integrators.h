#ifndef MPC_SOLVER_MODELS_INTEGRATORS_H_
#define MPC_SOLVER_MODELS_INTEGRATORS_H_

// How continuous-time dynamics dx/dt = f(x, u; p) become the discrete step x_next = F(x, u; p) the
// solver runs (DESIGN §11): explicit Runge-Kutta methods, each a Butcher tableau, all run by one
// templated routine (IntegrateStep). Written over the scalar type like the models themselves, so
// the dual numbers of model_derivatives.h differentiate the integrator with the model inside it:
// the Jacobians, parameter Jacobians and second derivatives are those of F, not of f. A graph's
// integrator (solver/graph/integrated_graph.h) chains the graph's own derivatives through the same
// tableaux. Plain C++: nvcc compiles it.

#include <cstdint>

#include "solver/host_device.h"

namespace mpc {

// The integrator a problem's dynamics step runs; the values travel in ProblemSettings.
enum class Integrator : std::int32_t {
  // The dynamics' own: a discrete-time model's Step, or a continuous-time model's default.
  kDefault = 0,
  kEuler = 1,     // x + h f(x)
  kMidpoint = 2,  // x + h f(x + h/2 f(x))
  kRk4 = 3,       // the classical fourth-order Runge-Kutta method
};

// The names on the wire (ModelDynamics.integrator, GraphDynamics.integrator), kDefault excluded.
// Null for kDefault.
MPC_HOST_DEVICE constexpr const char* IntegratorName(Integrator integrator) {
  switch (integrator) {
    case Integrator::kEuler:
      return "euler";
    case Integrator::kMidpoint:
      return "midpoint";
    case Integrator::kRk4:
      return "rk4";
    default:
      return nullptr;
  }
}

// The time discretisation of one problem's dynamics: the step in seconds and how it is taken.
struct TimeStep {
  double seconds = 0.0;
  Integrator integrator = Integrator::kDefault;

  TimeStep() = default;
  // A plain dt takes the dynamics' own integrator: what a discrete-time model's Step has always
  // been called with, so callers that never choose an integrator keep passing a number.
  MPC_HOST_DEVICE constexpr TimeStep(double dt)  // NOLINT(google-explicit-constructor)
      : seconds(dt) {}
  MPC_HOST_DEVICE constexpr TimeStep(double dt, Integrator method)
      : seconds(dt), integrator(method) {}
};

// An explicit Runge-Kutta method: stage s evaluates f at x + h sum_{j<s} a[s][j] k_j; the step is
// x + h sum_s b[s] k_s.
struct ButcherTableau {
  static constexpr int kMaxStages = 4;
  int stages;
  double a[kMaxStages][kMaxStages];
  double b[kMaxStages];
};

// kDefault must be resolved before (a continuous-time model's default, or a graph's).
MPC_HOST_DEVICE constexpr ButcherTableau TableauOf(Integrator integrator) {
  switch (integrator) {
    case Integrator::kMidpoint:
      return {2, {{0, 0, 0, 0}, {0.5, 0, 0, 0}, {}, {}}, {0, 1, 0, 0}};
    case Integrator::kRk4:
      return {4,
              {{0, 0, 0, 0}, {0.5, 0, 0, 0}, {0, 0.5, 0, 0}, {0, 0, 1, 0}},
              {1.0 / 6, 1.0 / 3, 1.0 / 3, 1.0 / 6}};
    default:  // kEuler
      return {1, {{0, 0, 0, 0}, {}, {}, {}}, {1, 0, 0, 0}};
  }
}

// x_next (n) = one step of `integrator` over h seconds of dx/dt = rhs(y, k) (k = f(y)), from x (n).
// T is any scalar of model_derivatives.h (nested duals included); rhs is called once per stage.
// Zero tableau entries are skipped, so the arithmetic (and with it every derivative) is exactly
// the method's: Euler is x + h f(x) to the last bit.
template <int n, typename T, class Rhs>
MPC_HOST_DEVICE void IntegrateStep(Integrator integrator, double h, const T* x, const Rhs& rhs,
                                   T* x_next) {
  const ButcherTableau tableau = TableauOf(integrator);
  T k[ButcherTableau::kMaxStages][n];
  T y[n];
  for (int s = 0; s < tableau.stages; ++s) {
    for (int i = 0; i < n; ++i) {
      y[i] = x[i];
      for (int j = 0; j < s; ++j) {
        if (tableau.a[s][j] != 0.0) y[i] += (h * tableau.a[s][j]) * k[j][i];
      }
    }
    rhs(static_cast<const T*>(y), k[s]);
  }
  for (int i = 0; i < n; ++i) {
    T sum = x[i];
    for (int s = 0; s < tableau.stages; ++s) {
      if (tableau.b[s] != 0.0) sum += (h * tableau.b[s]) * k[s][i];
    }
    x_next[i] = sum;
  }
}

// dx/dt = Model::Derivative(x, u; p) at fixed u and p: IntegrateStep's right-hand side.
template <class Model, typename T, typename P>
struct ModelDerivative {
  const T* u;
  const P* p;
  MPC_HOST_DEVICE void operator()(const T* x, T* dxdt) const { Model::Derivative(x, u, p, dxdt); }
};

// The model's discrete step x_next = F(x, u; p) for `step`: a discrete-time model's own Step; a
// continuous-time model's Derivative integrated by step.integrator (kDefault: the model's default).
// x, x_next: (n); u: (m); p: (kParamDim). The one place the solver, its derivatives and the tests
// step a built-in model.
template <class Model, typename T, typename P>
MPC_HOST_DEVICE void ModelStep(const T* x, const T* u, const P* p, TimeStep step, T* x_next) {
  if constexpr (Model::kContinuous) {
    const Integrator integrator =
        step.integrator == Integrator::kDefault ? Model::kDefaultIntegrator : step.integrator;
    IntegrateStep<Model::kStateDim>(integrator, step.seconds, x, ModelDerivative<Model, T, P>{u, p},
                                    x_next);
  } else {
    Model::Step(x, u, p, step.seconds, x_next);
  }
}

}  // namespace mpc

#endif  // MPC_SOLVER_MODELS_INTEGRATORS_H_
