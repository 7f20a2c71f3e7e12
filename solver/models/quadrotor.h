#ifndef MPC_SOLVER_MODELS_QUADROTOR_H_
#define MPC_SOLVER_MODELS_QUADROTOR_H_

#include <cmath>

#include "solver/dual.h"
#include "solver/host_device.h"
#include "solver/models/integrators.h"

namespace mpc {

// A rigid-body quadrotor, continuous-time (RK4 by default). State: world position [x, y, z] (m,
// z up), attitude as ZYX Euler angles [roll, pitch, yaw] (rad), world velocity [vx, vy, vz] (m/s),
// body rates [p, q, r] (rad/s). Control: collective thrust along the body z axis (N), roll and
// pitch differential thrusts (N; the torque is the arm length times it) and yaw torque (N m).
// Linear drag on the velocity; gravity 9.81 m/s^2 along -z. Hover: thrust = mass * 9.81.
struct QuadrotorModel {
  static constexpr const char* kName = "quadrotor";
  static constexpr int kStateDim = 12;
  static constexpr int kControlDim = 4;
  static constexpr int kParamDim = 6;
  static constexpr bool kContinuous = true;
  static constexpr Integrator kDefaultIntegrator = Integrator::kRk4;
  static constexpr double kDefaultDt = 0.05;
  static constexpr double kGravity = 9.81;
  static constexpr const char* kParamNames[kParamDim] = {"mass",       "inertia_xx", "inertia_yy",
                                                         "inertia_zz", "arm_length", "drag"};
  static constexpr double kDefaultParams[kParamDim] = {1.0, 0.01, 0.01, 0.02, 0.2, 0.1};
  static constexpr const char* kStateNames[kStateDim] = {"x",  "y",  "z",  "roll", "pitch", "yaw",
                                                         "vx", "vy", "vz", "p",    "q",     "r"};
  static constexpr const char* kControlNames[kControlDim] = {"thrust", "roll_thrust",
                                                             "pitch_thrust", "yaw_torque"};

  // x, dxdt: (12); u: (4); p: (6) = [mass, inertia_xx, inertia_yy, inertia_zz, arm_length, drag].
  template <typename T, typename P>
  MPC_HOST_DEVICE static void Derivative(const T* x, const T* u, const P* p, T* dxdt) {
    using std::cos;
    using std::sin;
    const P& mass = p[0];
    const P& ixx = p[1];
    const P& iyy = p[2];
    const P& izz = p[3];
    const P& arm = p[4];
    const P& drag = p[5];
    T s_roll, c_roll, s_pitch, c_pitch, s_yaw, c_yaw;
    SinCos(x[3], &s_roll, &c_roll);
    SinCos(x[4], &s_pitch, &c_pitch);
    SinCos(x[5], &s_yaw, &c_yaw);
    const T& rate_p = x[9];
    const T& rate_q = x[10];
    const T& rate_r = x[11];
    for (int i = 0; i < 3; ++i) dxdt[i] = x[6 + i];
    // Euler angle rates from body rates (ZYX convention).
    const T tan_pitch = s_pitch / c_pitch;
    dxdt[3] = rate_p + (s_roll * rate_q + c_roll * rate_r) * tan_pitch;
    dxdt[4] = c_roll * rate_q - s_roll * rate_r;
    dxdt[5] = (s_roll * rate_q + c_roll * rate_r) / c_pitch;
    // The body z axis in the world (third column of R = Rz(yaw) Ry(pitch) Rx(roll)).
    const T zx = c_yaw * s_pitch * c_roll + s_yaw * s_roll;
    const T zy = s_yaw * s_pitch * c_roll - c_yaw * s_roll;
    const T zz = c_pitch * c_roll;
    const T thrust_per_mass = u[0] / mass;
    dxdt[6] = thrust_per_mass * zx - drag * x[6] / mass;
    dxdt[7] = thrust_per_mass * zy - drag * x[7] / mass;
    dxdt[8] = thrust_per_mass * zz - drag * x[8] / mass - kGravity;
    // Euler's equations for a diagonal inertia: I dw/dt = tau - w x I w.
    dxdt[9] = (arm * u[1] + (iyy - izz) * rate_q * rate_r) / ixx;
    dxdt[10] = (arm * u[2] + (izz - ixx) * rate_p * rate_r) / iyy;
    dxdt[11] = (u[3] + (ixx - iyy) * rate_p * rate_q) / izz;
  }
};

}  // namespace mpc

#endif  // MPC_SOLVER_MODELS_QUADROTOR_H_
