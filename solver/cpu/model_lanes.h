#ifndef MPC_SOLVER_CPU_MODEL_LANES_H_
#define MPC_SOLVER_CPU_MODEL_LANES_H_

// A built-in model's step derivatives at up to four points at once: the forward-mode AD of
// models/model_derivatives.h (first and second order) in DoubleLanes, lane k at point k, so one
// evaluation of the model's dual-number Step and one call of each vector transcendental serve four
// time steps of a trajectory. The dual arithmetic is lane by lane the scalar's; sin, cos and atan2
// are libmvec's (their last bits may differ from the scalar libm's). Each lane's result depends on
// its own point only, and the unused lanes repeat the last point. Host only.

#include "solver/cpu/double_lanes.h"
#include "solver/models/model_derivatives.h"

namespace mpc {

inline constexpr int kModelLanes = DoubleLanes::kLanes;

// Lanes i of points (count, dim): lane k holds points[k][i], the unused lanes the last point's.
inline DoubleLanes GatherLanes(const double* points, int dim, int count, int i) {
  double lanes[kModelLanes];
  for (int k = 0; k < kModelLanes; ++k) lanes[k] = points[(k < count ? k : count - 1) * dim + i];
  return DoubleLanes::Load(lanes);
}

// A[k] = df/dx (n, n) and B[k] = df/du (n, m), row-major, at (x_k, u_k) for k < count
// (1 <= count <= kModelLanes): StepWithJacobians. x: (count, n); u: (count, m); p: (kParamDim).
template <class Model>
void StepJacobiansInLanes(const double* x, const double* u, const double* p, TimeStep dt, int count,
                          double* const* A, double* const* B) {
  constexpr int n = Model::kStateDim;
  constexpr int m = Model::kControlDim;
  DoubleLanes xl[n], ul[m], next[n], Al[n * n], Bl[n * m];
  for (int i = 0; i < n; ++i) xl[i] = GatherLanes(x, n, count, i);
  for (int j = 0; j < m; ++j) ul[j] = GatherLanes(u, m, count, j);
  StepWithJacobians<Model, MatrixOrder::kRowMajor, DoubleLanes>(xl, ul, p, dt, next, Al, Bl);
  for (int k = 0; k < count; ++k) {
    for (int e = 0; e < n * n; ++e) A[k][e] = Al[e][k];
    for (int e = 0; e < n * m; ++e) B[k][e] = Bl[e][k];
  }
}

// next (count, n) = f(x_k, u_k) and P[k] = df/dp (n, kParamDim), column-major, at the same points
// as StepJacobiansInLanes: StepParamJacobian.
template <class Model>
void StepParamJacobianInLanes(const double* x, const double* u, const double* p, TimeStep dt,
                              int count, double* next, double* const* P) {
  constexpr int n = Model::kStateDim;
  constexpr int m = Model::kControlDim;
  constexpr int np = Model::kParamDim;
  DoubleLanes xl[n], ul[m], pl[np], nextl[n], Pl[n * np];
  for (int i = 0; i < n; ++i) xl[i] = GatherLanes(x, n, count, i);
  for (int j = 0; j < m; ++j) ul[j] = GatherLanes(u, m, count, j);
  for (int q = 0; q < np; ++q) pl[q] = DoubleLanes(p[q]);
  StepParamJacobian<Model, DoubleLanes>(xl, ul, pl, dt, nextl, Pl);
  for (int k = 0; k < count; ++k) {
    for (int i = 0; i < n; ++i) next[k * n + i] = nextl[i][k];
    for (int e = 0; e < n * np; ++e) P[k][e] = Pl[e][k];
  }
}

// The second-order functions of model_derivatives.h at up to four points, lane k at point k:
// out[k] = StepMixedDirectional (kParamDim), StepTauHessian ((n+m, n+m)) or
// StepMixedSecondDerivatives ((n+m, kParamDim)) at (x_k, u_k) with lambda_k (and, for the
// directional one, the direction dx_k, du_k). x, lambda, dx: (count, n); u, du: (count, m).
template <class Model>
void StepMixedDirectionalInLanes(const double* x, const double* u, const double* p, TimeStep dt,
                                 const double* lambda, const double* dx, const double* du,
                                 int count, double* const* out) {
  constexpr int n = Model::kStateDim;
  constexpr int m = Model::kControlDim;
  constexpr int np = Model::kParamDim;
  DoubleLanes xl[n], ul[m], pl[np], lambdal[n], dxl[n], dul[m], g[np];
  for (int i = 0; i < n; ++i) {
    xl[i] = GatherLanes(x, n, count, i);
    lambdal[i] = GatherLanes(lambda, n, count, i);
    dxl[i] = GatherLanes(dx, n, count, i);
  }
  for (int j = 0; j < m; ++j) {
    ul[j] = GatherLanes(u, m, count, j);
    dul[j] = GatherLanes(du, m, count, j);
  }
  for (int q = 0; q < np; ++q) pl[q] = DoubleLanes(p[q]);
  StepMixedDirectional<Model, DoubleLanes>(xl, ul, pl, dt, lambdal, dxl, dul, g);
  for (int k = 0; k < count; ++k) {
    for (int q = 0; q < np; ++q) out[k][q] = g[q][k];
  }
}

// StepTauHessian (kMixed = false) or StepMixedSecondDerivatives (kMixed = true) in lanes.
template <class Model, bool kMixed>
void StepSecondDerivativesInLanes(const double* x, const double* u, const double* p, TimeStep dt,
                                  const double* lambda, int count, double* const* out) {
  constexpr int n = Model::kStateDim;
  constexpr int m = Model::kControlDim;
  constexpr int np = Model::kParamDim;
  constexpr int kSize = (n + m) * (kMixed ? np : n + m);
  DoubleLanes xl[n], ul[m], pl[np], lambdal[n], block[kSize];
  for (int i = 0; i < n; ++i) {
    xl[i] = GatherLanes(x, n, count, i);
    lambdal[i] = GatherLanes(lambda, n, count, i);
  }
  for (int j = 0; j < m; ++j) ul[j] = GatherLanes(u, m, count, j);
  for (int q = 0; q < np; ++q) pl[q] = DoubleLanes(p[q]);
  if constexpr (kMixed) {
    StepMixedSecondDerivatives<Model, DoubleLanes>(xl, ul, pl, dt, lambdal, block);
  } else {
    StepTauHessian<Model, DoubleLanes>(xl, ul, pl, dt, lambdal, block);
  }
  for (int k = 0; k < count; ++k) {
    for (int e = 0; e < kSize; ++e) out[k][e] = block[e][k];
  }
}

}  // namespace mpc

#endif  // MPC_SOLVER_CPU_MODEL_LANES_H_
