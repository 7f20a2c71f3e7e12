#ifndef MPC_SOLVER_MODELS_PENDULUM_H_
#define MPC_SOLVER_MODELS_PENDULUM_H_

#include <cmath>

#include "solver/dual.h"
#include "solver/host_device.h"

namespace mpc {

// mpc.pytorch's PendulumDx(simple=True): state [cos th, sin th, dth], control torque, th = 0
// upright. Semi-implicit Euler on th = atan2(sin th, cos th), torque clamped inside the dynamics.
struct PendulumModel {
  static constexpr const char* kName = "pendulum";
  static constexpr int kStateDim = 3;
  static constexpr int kControlDim = 1;
  static constexpr int kParamDim = 3;
  static constexpr bool kContinuous = false;  // Step is its own discrete update
  static constexpr double kDefaultDt = 0.05;
  static constexpr const char* kParamNames[kParamDim] = {"g", "m", "l"};
  static constexpr double kDefaultParams[kParamDim] = {10.0, 1.0, 1.0};
  static constexpr const char* kStateNames[kStateDim] = {"cos_th", "sin_th", "dth"};
  static constexpr const char* kControlNames[kControlDim] = {"torque"};
  static constexpr double kMaxTorque = 2.0;

  // x, x_next: (3); u: (1); p: (3) = [g, m, l]; dt in seconds.
  // T is the state/control scalar, P the parameter scalar (plain double when only state and control
  // derivatives are wanted, so parameters carry no dead tangents).
  template <typename T, typename P>
  MPC_HOST_DEVICE static void Step(const T* x, const T* u, const P* p, double dt, T* x_next) {
    using std::atan2;
    using std::cos;
    using std::sin;
    const P& g = p[0];
    const P& m = p[1];
    const P& l = p[2];
    const T torque = Clamp(u[0], -kMaxTorque, kMaxTorque);
    const T& cos_th = x[0];
    const T& sin_th = x[1];
    const T& dth = x[2];
    const T th = atan2(sin_th, cos_th);
    // Accelerations use the raw sin component, as mpc.pytorch does.
    const T new_dth = dth + dt * ((-3.0 * g / (2.0 * l)) * (-sin_th) + 3.0 * torque / (m * l * l));
    const T new_th = th + new_dth * dt;
    SinCos(new_th, &x_next[1], &x_next[0]);
    x_next[2] = new_dth;
  }
};

}  // namespace mpc

#endif  // MPC_SOLVER_MODELS_PENDULUM_H_
