#ifndef MPC_SOLVER_MODELS_MODEL_DERIVATIVES_H_
#define MPC_SOLVER_MODELS_MODEL_DERIVATIVES_H_

#include "solver/dual.h"
#include "solver/host_device.h"

namespace mpc {

// x_next = f(x, u; p) and its Jacobians by forward-mode AD in one model evaluation with n+m tangents.
// x: (n); u: (m); p: (kParamDim); x_next: (n); A: (n, n) and B: (n, m), both column-major.
template <class Model>
MPC_HOST_DEVICE void StepWithJacobians(const double* x, const double* u, const double* p, double dt,
                                       double* x_next, double* A, double* B) {
  constexpr int n = Model::kStateDim;
  constexpr int m = Model::kControlDim;
  using D = Dual<double, n + m>;
  D xd[n], ud[m], out[n];
  for (int i = 0; i < n; ++i) xd[i] = D::Variable(x[i], i);
  for (int j = 0; j < m; ++j) ud[j] = D::Variable(u[j], n + j);
  Model::Step(xd, ud, p, dt, out);
  for (int i = 0; i < n; ++i) {
    x_next[i] = out[i].v;
    for (int j = 0; j < n; ++j) A[j * n + i] = out[i].d[j];
    for (int j = 0; j < m; ++j) B[j * n + i] = out[i].d[n + j];
  }
}

// d x_next / d p by forward-mode AD. x: (n); u: (m); p: (kParamDim); P: (n, kParamDim) column-major.
template <class Model>
MPC_HOST_DEVICE void StepParamJacobian(const double* x, const double* u, const double* p, double dt,
                                       double* x_next, double* P) {
  constexpr int n = Model::kStateDim;
  constexpr int m = Model::kControlDim;
  constexpr int np = Model::kParamDim;
  using D = Dual<double, np>;
  D xd[n], ud[m], pd[np], out[n];
  for (int i = 0; i < n; ++i) xd[i] = D(x[i]);
  for (int j = 0; j < m; ++j) ud[j] = D(u[j]);
  for (int k = 0; k < np; ++k) pd[k] = D::Variable(p[k], k);
  Model::Step(xd, ud, pd, dt, out);
  for (int i = 0; i < n; ++i) {
    x_next[i] = out[i].v;
    for (int k = 0; k < np; ++k) P[k * n + i] = out[i].d[k];
  }
}

}  // namespace mpc

#endif  // MPC_SOLVER_MODELS_MODEL_DERIVATIVES_H_
