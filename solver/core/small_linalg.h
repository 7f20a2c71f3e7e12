#ifndef MPC_SOLVER_CORE_SMALL_LINALG_H_
#define MPC_SOLVER_CORE_SMALL_LINALG_H_

// The dense linear algebra of one Riccati stage, written once for the solve and the backward pass,
// host and device. Matrices are row-major arrays; sizes are arguments (compile-time constants
// after inlining in the fixed-size specialisations). The operation order is part of the contract:
// the CPU and GPU results of one problem are compared bit for bit.

#include <cmath>

#include "solver/host_device.h"

namespace mpc::core {

template <typename S>
MPC_HOST_DEVICE inline bool IsFinite(S v) {
  using std::isfinite;
  return isfinite(v);
}

// L L' = Q for an (m, m) Q, the unblocked algorithm; only L's lower triangle is written and read.
// False at the first pivot that is not > 0 (a NaN pivot included): Q is not (numerically)
// positive definite.
template <typename S>
MPC_HOST_DEVICE MPC_FORCE_INLINE bool CholeskyLower(const S* Q, S* L, int m) {
  using std::sqrt;
  for (int j = 0; j < m; ++j) {
    S d = Q[j * m + j];
    for (int k = 0; k < j; ++k) d -= L[j * m + k] * L[j * m + k];
    if (!(d > S(0))) return false;
    const S ljj = sqrt(d);
    L[j * m + j] = ljj;
    for (int i = j + 1; i < m; ++i) {
      S s = Q[i * m + j];
      for (int k = 0; k < j; ++k) s -= L[i * m + k] * L[j * m + k];
      L[i * m + j] = s / ljj;
    }
  }
  return true;
}

// rhs <- (L L')^-1 rhs for the `cols` columns of an (m, cols) rhs, L from CholeskyLower.
template <typename S>
MPC_HOST_DEVICE MPC_FORCE_INLINE void CholeskySolveInPlace(const S* L, int m, S* rhs, int cols) {
  for (int c = 0; c < cols; ++c) {
    for (int i = 0; i < m; ++i) {
      S s = rhs[i * cols + c];
      for (int k = 0; k < i; ++k) s -= L[i * m + k] * rhs[k * cols + c];
      rhs[i * cols + c] = s / L[i * m + i];
    }
    for (int i = m - 1; i >= 0; --i) {
      S s = rhs[i * cols + c];
      for (int k = i + 1; k < m; ++k) s -= L[k * m + i] * rhs[k * cols + c];
      rhs[i * cols + c] = s / L[i * m + i];
    }
  }
}

// out = -(L L')^-1 rhs for an (m, cols) rhs.
template <typename S>
MPC_HOST_DEVICE MPC_FORCE_INLINE void CholeskySolveNegated(const S* L, int m, const S* rhs, S* out,
                                                           int cols) {
  for (int e = 0; e < m * cols; ++e) out[e] = -rhs[e];
  CholeskySolveInPlace(L, m, out, cols);
}

// The dynamics' part of the Q-function: with F = [A B] and the next stage's value function
// (V, v), Qxx += A'VA, qx += A'v, Qux += B'VA, Quu += B'VB, qu += B'v. A (n, n), B (n, m), V (n,
// n); VA (n, n) and VB (n, m) are scratch.
template <typename S>
MPC_HOST_DEVICE MPC_FORCE_INLINE void AddDynamicsToQ(const S* A, const S* B, const S* V, const S* v,
                                                     int n, int m, S* VA, S* VB, S* Qxx, S* Qux,
                                                     S* Quu, S* qx, S* qu) {
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      S s = 0;
      for (int l = 0; l < n; ++l) s += V[i * n + l] * A[l * n + j];
      VA[i * n + j] = s;
    }
    for (int j = 0; j < m; ++j) {
      S s = 0;
      for (int l = 0; l < n; ++l) s += V[i * n + l] * B[l * m + j];
      VB[i * m + j] = s;
    }
  }
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      S s = 0;
      for (int l = 0; l < n; ++l) s += A[l * n + i] * VA[l * n + j];
      Qxx[i * n + j] += s;
    }
    S s = 0;
    for (int l = 0; l < n; ++l) s += A[l * n + i] * v[l];
    qx[i] += s;
  }
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      S s = 0;
      for (int l = 0; l < n; ++l) s += B[l * m + i] * VA[l * n + j];
      Qux[i * n + j] += s;
    }
    for (int j = 0; j < m; ++j) {
      S s = 0;
      for (int l = 0; l < n; ++l) s += B[l * m + i] * VB[l * m + j];
      Quu[i * m + j] += s;
    }
    S s = 0;
    for (int l = 0; l < n; ++l) s += B[l * m + i] * v[l];
    qu[i] += s;
  }
}

// V <- (V + V') / 2 for an (n, n) V.
template <typename S>
MPC_HOST_DEVICE MPC_FORCE_INLINE void Symmetrize(S* V, int n) {
  for (int i = 0; i < n; ++i) {
    for (int j = i; j < n; ++j) {
      const S s = S(0.5) * (V[i * n + j] + V[j * n + i]);
      V[i * n + j] = s;
      V[j * n + i] = s;
    }
  }
}

}  // namespace mpc::core

#endif  // MPC_SOLVER_CORE_SMALL_LINALG_H_
