#ifndef MPC_SOLVER_MODELS_DOUBLE_INTEGRATOR_H_
#define MPC_SOLVER_MODELS_DOUBLE_INTEGRATOR_H_

#include "solver/host_device.h"

namespace mpc {

// A point mass in the plane: state [x, y, vx, vy], control acceleration command [ax, ay], with
// linear drag. Semi-implicit Euler: v' = v + dt (u / mass - drag v), p' = p + dt v'.
struct DoubleIntegratorModel {
  static constexpr const char* kName = "double_integrator";
  static constexpr int kStateDim = 4;
  static constexpr int kControlDim = 2;
  static constexpr int kParamDim = 2;
  static constexpr bool kContinuous = false;  // Step is its own discrete update
  static constexpr double kDefaultDt = 0.1;
  static constexpr const char* kParamNames[kParamDim] = {"mass", "drag"};
  static constexpr double kDefaultParams[kParamDim] = {1.0, 0.0};
  static constexpr const char* kStateNames[kStateDim] = {"x", "y", "vx", "vy"};
  static constexpr const char* kControlNames[kControlDim] = {"ax", "ay"};

  template <typename T, typename P>
  MPC_HOST_DEVICE static void Step(const T* x, const T* u, const P* p, double dt, T* x_next) {
    const P& mass = p[0];
    const P& drag = p[1];
    const T vx = x[2] + dt * (u[0] / mass - drag * x[2]);
    const T vy = x[3] + dt * (u[1] / mass - drag * x[3]);
    x_next[0] = x[0] + dt * vx;
    x_next[1] = x[1] + dt * vy;
    x_next[2] = vx;
    x_next[3] = vy;
  }
};

}  // namespace mpc

#endif  // MPC_SOLVER_MODELS_DOUBLE_INTEGRATOR_H_
