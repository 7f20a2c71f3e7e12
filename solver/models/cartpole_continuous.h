#ifndef MPC_SOLVER_MODELS_CARTPOLE_CONTINUOUS_H_
#define MPC_SOLVER_MODELS_CARTPOLE_CONTINUOUS_H_

#include "solver/dual.h"
#include "solver/host_device.h"
#include "solver/models/cartpole.h"
#include "solver/models/integrators.h"

namespace mpc {

// The cartpole's ODE (the accelerations of mpc.pytorch's CartpoleDx, CartpoleModel::Accelerations,
// without its Euler step), continuous-time with RK4 by default. State [x, dx, th, dth] with th = 0
// upright (a plain angle: no cos/sin pair is needed without a discrete wrap); control force (N),
// unclamped (use the problem's bounds).
struct CartpoleContinuousModel {
  static constexpr const char* kName = "cartpole_continuous";
  static constexpr int kStateDim = 4;
  static constexpr int kControlDim = 1;
  static constexpr int kParamDim = 4;
  static constexpr bool kContinuous = true;
  static constexpr Integrator kDefaultIntegrator = Integrator::kRk4;
  static constexpr double kDefaultDt = 0.05;
  static constexpr const char* kParamNames[kParamDim] = {"gravity", "masscart", "masspole",
                                                         "length"};
  static constexpr double kDefaultParams[kParamDim] = {9.8, 1.0, 0.1, 0.5};
  static constexpr const char* kStateNames[kStateDim] = {"x", "dx", "th", "dth"};
  static constexpr const char* kControlNames[kControlDim] = {"force"};

  // x, dxdt: (4); u: (1); p: (4) = [gravity, masscart, masspole, length].
  template <typename T, typename P>
  MPC_HOST_DEVICE static void Derivative(const T* x, const T* u, const P* p, T* dxdt) {
    T sin_th, cos_th;
    SinCos(x[2], &sin_th, &cos_th);
    dxdt[0] = x[1];
    dxdt[2] = x[3];
    CartpoleModel::Accelerations(u[0], cos_th, sin_th, x[3], p, &dxdt[1], &dxdt[3]);
  }
};

}  // namespace mpc

#endif  // MPC_SOLVER_MODELS_CARTPOLE_CONTINUOUS_H_
