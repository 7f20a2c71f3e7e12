#ifndef MPC_SOLVER_MODELS_KINEMATIC_BICYCLE_H_
#define MPC_SOLVER_MODELS_KINEMATIC_BICYCLE_H_

#include <cmath>

#include "solver/dual.h"
#include "solver/host_device.h"

namespace mpc {

// The kinematic bicycle about the rear axle (a car at low speed): state [x, y, th, v], control
// [acceleration, steering angle]; the wheelbase is the parameter. Explicit Euler:
// th' = th + dt v tan(steer) / wheelbase.
struct KinematicBicycleModel {
  static constexpr const char* kName = "kinematic_bicycle";
  static constexpr int kStateDim = 4;
  static constexpr int kControlDim = 2;
  static constexpr int kParamDim = 1;
  static constexpr bool kContinuous = false;  // Step is its own discrete update
  static constexpr double kDefaultDt = 0.1;
  static constexpr const char* kParamNames[kParamDim] = {"wheelbase"};
  static constexpr double kDefaultParams[kParamDim] = {2.5};
  static constexpr const char* kStateNames[kStateDim] = {"x", "y", "th", "v"};
  static constexpr const char* kControlNames[kControlDim] = {"acceleration", "steering"};

  template <typename T, typename P>
  MPC_HOST_DEVICE static void Step(const T* x, const T* u, const P* p, double dt, T* x_next) {
    using std::cos;
    using std::sin;
    const P& wheelbase = p[0];
    const T& th = x[2];
    const T& v = x[3];
    x_next[0] = x[0] + dt * v * cos(th);
    x_next[1] = x[1] + dt * v * sin(th);
    x_next[2] = th + dt * v * (sin(u[1]) / cos(u[1])) / wheelbase;
    x_next[3] = v + dt * u[0];
  }
};

}  // namespace mpc

#endif  // MPC_SOLVER_MODELS_KINEMATIC_BICYCLE_H_
