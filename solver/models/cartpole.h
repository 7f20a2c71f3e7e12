#ifndef MPC_SOLVER_MODELS_CARTPOLE_H_
#define MPC_SOLVER_MODELS_CARTPOLE_H_

#include <cmath>

#include "solver/dual.h"
#include "solver/host_device.h"

namespace mpc {

// mpc.pytorch's CartpoleDx: state [x, dx, cos th, sin th, dth], control force, th = 0 upright.
// Explicit Euler on (x, dx, th, dth) with th = atan2(sin th, cos th), force clamped inside.
struct CartpoleModel {
  static constexpr const char* kName = "cartpole";
  static constexpr int kStateDim = 5;
  static constexpr int kControlDim = 1;
  static constexpr int kParamDim = 4;
  static constexpr bool kContinuous = false;  // Step is its own discrete update
  static constexpr double kDefaultDt = 0.05;
  static constexpr const char* kParamNames[kParamDim] = {"gravity", "masscart", "masspole",
                                                         "length"};
  static constexpr double kDefaultParams[kParamDim] = {9.8, 1.0, 0.1, 0.5};
  static constexpr const char* kStateNames[kStateDim] = {"x", "dx", "cos_th", "sin_th", "dth"};
  static constexpr const char* kControlNames[kControlDim] = {"force"};
  static constexpr double kForceMag = 100.0;

  // x, x_next: (5); u: (1); p: (4) = [gravity, masscart, masspole, length]; dt in seconds.
  // T is the state/control scalar, P the parameter scalar (plain double when only state and control
  // derivatives are wanted, so parameters carry no dead tangents).
  template <typename T, typename P>
  MPC_HOST_DEVICE static void Step(const T* x, const T* u, const P* p, double dt, T* x_next) {
    using std::atan2;
    const T force = Clamp(u[0], -kForceMag, kForceMag);
    const T& pos = x[0];
    const T& vel = x[1];
    const T& cos_th = x[2];
    const T& sin_th = x[3];
    const T& dth = x[4];
    const T th = atan2(sin_th, cos_th);
    T x_acc, th_acc;
    Accelerations(force, cos_th, sin_th, dth, p, &x_acc, &th_acc);
    const T new_th = th + dt * dth;
    x_next[0] = pos + dt * vel;
    x_next[1] = vel + dt * x_acc;
    SinCos(new_th, &x_next[3], &x_next[2]);
    x_next[4] = dth + dt * th_acc;
  }

  // The cart's and the pole's accelerations (m/s^2, rad/s^2) under `force` (N) at the pole angle
  // given by its cosine and sine and angular velocity dth (rad/s): the physics the discrete and the
  // continuous-time cartpole (cartpole_continuous.h) share. p: (4) as for Step.
  template <typename T, typename P>
  MPC_HOST_DEVICE static void Accelerations(const T& force, const T& cos_th, const T& sin_th,
                                            const T& dth, const P* p, T* x_acc, T* th_acc) {
    const P& gravity = p[0];
    const P& masscart = p[1];
    const P& masspole = p[2];
    const P& length = p[3];
    const P total_mass = masspole + masscart;
    const P polemass_length = masspole * length;
    const T cart_in = (force + polemass_length * dth * dth * sin_th) / total_mass;
    *th_acc = (gravity * sin_th - cos_th * cart_in) /
              (length * (4.0 / 3.0 - masspole * cos_th * cos_th / total_mass));
    *x_acc = cart_in - polemass_length * *th_acc * cos_th / total_mass;
  }
};

}  // namespace mpc

#endif  // MPC_SOLVER_MODELS_CARTPOLE_H_
