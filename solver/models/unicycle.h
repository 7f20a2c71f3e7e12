#ifndef MPC_SOLVER_MODELS_UNICYCLE_H_
#define MPC_SOLVER_MODELS_UNICYCLE_H_

#include <cmath>

#include "solver/dual.h"
#include "solver/host_device.h"

namespace mpc {

// A differential-drive robot: state [x, y, th], control [v, omega] (forward speed, turn rate),
// scaled by learnable actuator gains. Explicit Euler.
struct UnicycleModel {
  static constexpr const char* kName = "unicycle";
  static constexpr int kStateDim = 3;
  static constexpr int kControlDim = 2;
  static constexpr int kParamDim = 2;
  static constexpr bool kContinuous = false;  // Step is its own discrete update
  static constexpr double kDefaultDt = 0.1;
  static constexpr const char* kParamNames[kParamDim] = {"speed_gain", "turn_gain"};
  static constexpr double kDefaultParams[kParamDim] = {1.0, 1.0};
  static constexpr const char* kStateNames[kStateDim] = {"x", "y", "th"};
  static constexpr const char* kControlNames[kControlDim] = {"v", "omega"};

  template <typename T, typename P>
  MPC_HOST_DEVICE static void Step(const T* x, const T* u, const P* p, double dt, T* x_next) {
    using std::cos;
    using std::sin;
    const T v = p[0] * u[0];
    const T omega = p[1] * u[1];
    x_next[0] = x[0] + dt * v * cos(x[2]);
    x_next[1] = x[1] + dt * v * sin(x[2]);
    x_next[2] = x[2] + dt * omega;
  }
};

}  // namespace mpc

#endif  // MPC_SOLVER_MODELS_UNICYCLE_H_
