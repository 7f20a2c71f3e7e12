#ifndef MPC_SOLVER_MODELS_MODEL_DERIVATIVES_H_
#define MPC_SOLVER_MODELS_MODEL_DERIVATIVES_H_

#include "solver/dual.h"
#include "solver/host_device.h"
#include "solver/hyper_dual.h"
#include "solver/models/integrators.h"

namespace mpc {

// How a Jacobian is stored: column-major (Eigen's default: the CPU solver) or row-major (the
// device code, solver/cuda/).
enum class MatrixOrder { kColumnMajor, kRowMajor };

// Every function below differentiates the model's discrete step for `dt` (ModelStep, integrators.h:
// a continuous-time model's integrator included) by dual numbers.

// x_next = f(x, u; p) and its Jacobians by forward-mode AD in one model evaluation with n+m
// tangents, in scalar S (double; float in the device code; four points in lanes on the CPU,
// solver/cpu/model_lanes.h) with parameters of scalar P (S, or double beside the lanes).
// x: (n); u: (m); p: (kParamDim); x_next: (n); A: (n, n) and B: (n, m), both stored in kOrder.
template <class Model, MatrixOrder kOrder = MatrixOrder::kColumnMajor, typename S, typename P>
MPC_HOST_DEVICE MPC_FLATTEN void StepWithJacobians(const S* x, const S* u, const P* p, TimeStep dt,
                                                   S* x_next, S* A, S* B) {
  constexpr int n = Model::kStateDim;
  constexpr int m = Model::kControlDim;
  constexpr bool row_major = kOrder == MatrixOrder::kRowMajor;
  using D = Dual<S, n + m>;
  D xd[n], ud[m], out[n];
  // Seeded in place: a Variable built apart and copied in is written in pieces and read back
  // whole, which stalls store forwarding on every seed.
  for (int i = 0; i < n; ++i) SeedVariable(x[i], i, &xd[i]);
  for (int j = 0; j < m; ++j) SeedVariable(u[j], n + j, &ud[j]);
  ModelStep<Model>(xd, ud, p, dt, out);
  for (int i = 0; i < n; ++i) {
    x_next[i] = out[i].v;
    for (int j = 0; j < n; ++j) A[row_major ? i * n + j : j * n + i] = out[i].d[j];
    for (int j = 0; j < m; ++j) B[row_major ? i * m + j : j * n + i] = out[i].d[n + j];
  }
}

// d x_next / d p by forward-mode AD, in scalar S (double; float in the device backward).
// x: (n); u: (m); p: (kParamDim); P: (n, kParamDim) column-major.
template <class Model, typename S>
MPC_HOST_DEVICE void StepParamJacobian(const S* x, const S* u, const S* p, TimeStep dt, S* x_next,
                                       S* P) {
  constexpr int n = Model::kStateDim;
  constexpr int m = Model::kControlDim;
  constexpr int np = Model::kParamDim;
  using D = Dual<S, np>;
  D xd[n], ud[m], pd[np], out[n];
  for (int i = 0; i < n; ++i) xd[i] = D(x[i]);
  for (int j = 0; j < m; ++j) ud[j] = D(u[j]);
  for (int k = 0; k < np; ++k) pd[k] = D::Variable(p[k], k);
  ModelStep<Model>(xd, ud, pd, dt, out);
  for (int i = 0; i < n; ++i) {
    x_next[i] = out[i].v;
    for (int k = 0; k < np; ++k) P[k * n + i] = out[i].d[k];
  }
}

// g = (d2 phi / d p d tau) dtau with phi(tau, p) = lambda' f(x, u; p): (p), the mixed second
// derivative block applied to one direction dtau = [dx; du], in scalar S. Outer tangents over p, a
// single inner tangent along dtau (forward over forward): what a vector-Jacobian product needs, at
// a fraction of the full block's cost. Shared by the CPU and device backward passes. x, dx, lambda:
// (n); u, du: (m); p: (kParamDim); g: (kParamDim).
template <class Model, typename S>
MPC_HOST_DEVICE void StepMixedDirectional(const S* x, const S* u, const S* p, TimeStep dt,
                                          const S* lambda, const S* dx, const S* du, S* g) {
  constexpr int n = Model::kStateDim;
  constexpr int m = Model::kControlDim;
  constexpr int np = Model::kParamDim;
  using Inner = Dual<S, 1>;
  using Outer = Dual<Inner, np>;
  Outer xd[n], ud[m], pd[np], out[n];
  for (int i = 0; i < n; ++i) {
    Inner v(x[i]);
    v.d[0] = dx[i];
    xd[i] = Outer(v);
  }
  for (int j = 0; j < m; ++j) {
    Inner v(u[j]);
    v.d[0] = du[j];
    ud[j] = Outer(v);
  }
  for (int k = 0; k < np; ++k) pd[k] = Outer::Variable(Inner(p[k]), k);
  ModelStep<Model>(xd, ud, pd, dt, out);
  for (int k = 0; k < np; ++k) {
    S s = 0;
    for (int i = 0; i < n; ++i) s += lambda[i] * out[i].d[k].d[0];
    g[k] = s;
  }
}

// Second derivatives of phi(tau, p) = lambda' f(x, u; p), tau = [x; u], in scalar S.

// Htt = d2 phi / d tau^2: (n+m, n+m) row-major, by second-order forward AD (HyperDual: every
// second derivative of every output formed once, in one model evaluation; parameters plain S).
template <class Model, typename S>
MPC_HOST_DEVICE void StepTauHessian(const S* x, const S* u, const S* p, TimeStep dt,
                                    const S* lambda, S* Htt) {
  constexpr int n = Model::kStateDim;
  constexpr int m = Model::kControlDim;
  constexpr int nt = n + m;
  using H = HyperDual<S, nt>;
  H xd[n], ud[m], out[n];
  for (int i = 0; i < n; ++i) xd[i] = H::Variable(x[i], i);
  for (int j = 0; j < m; ++j) ud[j] = H::Variable(u[j], n + j);
  ModelStep<Model>(xd, ud, p, dt, out);
  int e = 0;
  for (int a = 0; a < nt; ++a) {
    for (int b = a; b < nt; ++b, ++e) {
      S s = 0;
      for (int i = 0; i < n; ++i) s += lambda[i] * out[i].h[e];
      Htt[a * nt + b] = s;
      Htt[b * nt + a] = s;
    }
  }
}

// Htp = d2 phi / d tau d p: (n+m, kParamDim) row-major, by forward-over-forward AD (nested duals:
// outer tangents over p, inner over tau; a nested evaluation costs the product of the two tangent
// counts). The parameters are of the nested type, carrying the outer tangents.
template <class Model, typename S>
MPC_HOST_DEVICE void StepMixedSecondDerivatives(const S* x, const S* u, const S* p, TimeStep dt,
                                                const S* lambda, S* Htp) {
  constexpr int n = Model::kStateDim;
  constexpr int m = Model::kControlDim;
  constexpr int np = Model::kParamDim;
  constexpr int nt = n + m;
  using Inner = Dual<S, nt>;
  using Outer = Dual<Inner, np>;
  Outer xd[n], ud[m], pd[np], out[n];
  for (int i = 0; i < n; ++i) xd[i] = Outer(Inner::Variable(x[i], i));
  for (int j = 0; j < m; ++j) ud[j] = Outer(Inner::Variable(u[j], n + j));
  for (int k = 0; k < np; ++k) pd[k] = Outer::Variable(Inner(p[k]), k);
  ModelStep<Model>(xd, ud, pd, dt, out);
  for (int a = 0; a < nt; ++a) {
    for (int k = 0; k < np; ++k) {
      S s = 0;
      for (int i = 0; i < n; ++i) s += lambda[i] * out[i].d[k].d[a];
      Htp[a * np + k] = s;
    }
  }
}

}  // namespace mpc

#endif  // MPC_SOLVER_MODELS_MODEL_DERIVATIVES_H_
