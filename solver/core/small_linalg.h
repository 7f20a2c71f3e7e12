#ifndef MPC_SOLVER_CORE_SMALL_LINALG_H_
#define MPC_SOLVER_CORE_SMALL_LINALG_H_

// The dense linear algebra of one Riccati stage, written once for the solve and the backward pass,
// host and device. Matrices are row-major arrays; sizes are arguments (compile-time constants
// after inlining in the fixed-size specialisations). The operation order is part of the contract:
// the CPU and GPU results of one problem are compared bit for bit. Products are summed with fused
// multiply-adds (MultiplyAdd: one rounding, the same on every executor; the compilers' own
// contraction is off, see solver/CMakeLists.txt).

#include <cmath>

#include "solver/host_device.h"

namespace mpc::core {

template <typename S>
MPC_HOST_DEVICE inline bool IsFinite(S v) {
  using std::isfinite;
  return isfinite(v);
}

// c + a b rounded once: a fused multiply-add on every executor (an FMA instruction on the host's
// x86-64-v3 and on the device), so the same bits everywhere.
template <typename S>
MPC_HOST_DEVICE MPC_FORCE_INLINE S MultiplyAdd(S a, S b, S c) {
  using std::fma;
  return fma(a, b, c);
}

// L L' = Q for an (m, m) Q, the unblocked algorithm; only L's lower triangle is written and read,
// and its diagonal holds the reciprocals 1 / L_jj (every solve multiplies by them: one division
// per pivot instead of one per pivot and right-hand side). For m = 1 the one entry is 1 / Q
// instead, which the solve multiplies by once: no square root on the backward pass's dependent
// chain of a one-control model. False at the first pivot that is not > 0 (a NaN pivot
// included): Q is not (numerically) positive definite.
template <typename S>
MPC_HOST_DEVICE MPC_FORCE_INLINE bool CholeskyLower(const S* Q, S* L, int m) {
  using std::sqrt;
  if (m == 1) {
    if (!(Q[0] > S(0))) return false;
    L[0] = S(1) / Q[0];
    return true;
  }
  for (int j = 0; j < m; ++j) {
    S d = Q[j * m + j];
    for (int k = 0; k < j; ++k) d = MultiplyAdd(-L[j * m + k], L[j * m + k], d);
    if (!(d > S(0))) return false;
    const S inverse_ljj = S(1) / sqrt(d);
    L[j * m + j] = inverse_ljj;
    for (int i = j + 1; i < m; ++i) {
      S s = Q[i * m + j];
      for (int k = 0; k < j; ++k) s = MultiplyAdd(-L[i * m + k], L[j * m + k], s);
      L[i * m + j] = s * inverse_ljj;
    }
  }
  return true;
}

// rhs <- (L L')^-1 rhs for `width` columns of rhs whose rows lie `stride` apart, L from
// CholeskyLower (for m = 1: rhs times its 1 / Q). Every entry adds its products in the order of k
// whatever the width, so the same bits whether a caller solves one column at a time (width 1: each
// sum stays in a register) or all columns at once (the innermost loop along a row: vector lanes).
template <typename S>
MPC_HOST_DEVICE MPC_FORCE_INLINE void CholeskySolveColumnsInPlace(const S* L, int m, S* rhs,
                                                                  int stride, int width) {
  if (m == 1) {
    for (int c = 0; c < width; ++c) rhs[c] = rhs[c] * L[0];
    return;
  }
  for (int i = 0; i < m; ++i) {
    S* row = rhs + i * stride;
    for (int k = 0; k < i; ++k) {
      const S minus_l = -L[i * m + k];
      const S* done = rhs + k * stride;
      for (int c = 0; c < width; ++c) row[c] = MultiplyAdd(minus_l, done[c], row[c]);
    }
    for (int c = 0; c < width; ++c) row[c] = row[c] * L[i * m + i];
  }
  for (int i = m - 1; i >= 0; --i) {
    S* row = rhs + i * stride;
    for (int k = i + 1; k < m; ++k) {
      const S minus_l = -L[k * m + i];
      const S* done = rhs + k * stride;
      for (int c = 0; c < width; ++c) row[c] = MultiplyAdd(minus_l, done[c], row[c]);
    }
    for (int c = 0; c < width; ++c) row[c] = row[c] * L[i * m + i];
  }
}

// rhs <- (L L')^-1 rhs for the `cols` columns of an (m, cols) rhs, one column at a time: the
// device's order (a thread's sums in registers); a host kernel may take all columns at once.
template <typename S>
MPC_HOST_DEVICE MPC_FORCE_INLINE void CholeskySolveInPlace(const S* L, int m, S* rhs, int cols) {
  for (int c = 0; c < cols; ++c) CholeskySolveColumnsInPlace(L, m, rhs + c, cols, 1);
}

// out[j] += sum over l of col[l * stride] VA[l][j] for first <= j < n (VA (n, n)), each sum from
// zero in the order of l: a row of A'VA (col = a column of A, stride n) or of B'VA (a column of
// B, stride m). A CPU kernel may compute the entries j in vector lanes (same sums, same order).
struct AddColumnTimesMatrix {
  template <typename S>
  MPC_HOST_DEVICE MPC_FORCE_INLINE static void Run(const S* col, int stride, const S* VA, int n,
                                                   S* out, int first = 0) {
    for (int j = first; j < n; ++j) {
      S s = 0;
      for (int l = 0; l < n; ++l) s = MultiplyAdd(col[l * stride], VA[l * n + j], s);
      out[j] += s;
    }
  }
};

// The dynamics' part of the Q-function: with F = [A B] and the next stage's value function
// (V, v), Qxx += A'VA, qx += A'v, Qux += B'VA, Quu += B'VB, qu += B'v. A (n, n), B (n, m), V (n,
// n); VA (n, n) and VB (n, m) are scratch. The rows of A'VA and B'VA are ColumnProduct::Run's.
template <typename S, class ColumnProduct = AddColumnTimesMatrix>
MPC_HOST_DEVICE MPC_FORCE_INLINE void AddDynamicsToQ(const S* A, const S* B, const S* V, const S* v,
                                                     int n, int m, S* VA, S* VB, S* Qxx, S* Qux,
                                                     S* Quu, S* qx, S* qu) {
  // Row i of VA and VB summed in place along the rows of A and B: each entry still adds its
  // products in the order of l from zero, and the innermost loop (over j) vectorises.
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) VA[i * n + j] = 0;
    for (int j = 0; j < m; ++j) VB[i * m + j] = 0;
    for (int l = 0; l < n; ++l) {
      const S v_il = V[i * n + l];
      for (int j = 0; j < n; ++j) VA[i * n + j] = MultiplyAdd(v_il, A[l * n + j], VA[i * n + j]);
      for (int j = 0; j < m; ++j) VB[i * m + j] = MultiplyAdd(v_il, B[l * m + j], VB[i * m + j]);
    }
  }
  for (int i = 0; i < n; ++i) {
    ColumnProduct::Run(A + i, n, VA, n, Qxx + i * n);
    S s = 0;
    for (int l = 0; l < n; ++l) s = MultiplyAdd(A[l * n + i], v[l], s);
    qx[i] += s;
  }
  for (int i = 0; i < m; ++i) {
    ColumnProduct::Run(B + i, m, VA, n, Qux + i * n);
    for (int j = 0; j < m; ++j) {
      S s = 0;
      for (int l = 0; l < n; ++l) s = MultiplyAdd(B[l * m + i], VB[l * m + j], s);
      Quu[i * m + j] += s;
    }
    S s = 0;
    for (int l = 0; l < n; ++l) s = MultiplyAdd(B[l * m + i], v[l], s);
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

// The value function of a stage from its Q-function and gains (any K, k: the box QP's pinned
// gains too): V = sym(Qxx + Qux'K + K'Qux + K'Quu K), v = qx + Qux'k + K'(qu + Quu k). QuuK
// (m, n) and tmp (m) are scratch.
template <typename S>
MPC_HOST_DEVICE MPC_FORCE_INLINE void ValueFunctionOfGains(const S* Qxx, const S* Qux, const S* Quu,
                                                           const S* qx, const S* qu, const S* K,
                                                           const S* k, int n, int m, S* QuuK,
                                                           S* tmp, S* V, S* v) {
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      S s = 0;
      for (int l = 0; l < m; ++l) s = MultiplyAdd(Quu[i * m + l], K[l * n + j], s);
      QuuK[i * n + j] = s;
    }
  }
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      S ktqux_ij = 0, ktqux_ji = 0, kquuk = 0;
      for (int l = 0; l < m; ++l) {
        ktqux_ij = MultiplyAdd(Qux[l * n + i], K[l * n + j], ktqux_ij);
        ktqux_ji = MultiplyAdd(Qux[l * n + j], K[l * n + i], ktqux_ji);
        kquuk = MultiplyAdd(K[l * n + i], QuuK[l * n + j], kquuk);
      }
      V[i * n + j] = Qxx[i * n + j] + ktqux_ij + ktqux_ji + kquuk;
    }
  }
  Symmetrize<S>(V, n);
  for (int i = 0; i < m; ++i) {
    S s = 0;
    for (int l = 0; l < m; ++l) s = MultiplyAdd(Quu[i * m + l], k[l], s);
    tmp[i] = qu[i] + s;
  }
  for (int i = 0; i < n; ++i) {
    S a = 0, c = 0;
    for (int l = 0; l < m; ++l) {
      a = MultiplyAdd(Qux[l * n + i], k[l], a);
      c = MultiplyAdd(K[l * n + i], tmp[l], c);
    }
    v[i] = qx[i] + a + c;
  }
}

// The value function when K, k are the exact minimisers of the Q-function (Quu K = -Qux,
// Quu k = -qu): V = sym(Qxx + Qux'K), v = qx + Qux'k.
template <typename S>
MPC_HOST_DEVICE MPC_FORCE_INLINE void ValueFunctionOfMinimisers(const S* Qxx, const S* Qux,
                                                                const S* qx, const S* K, const S* k,
                                                                int n, int m, S* V, S* v) {
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      S s = Qxx[i * n + j];
      for (int l = 0; l < m; ++l) s = MultiplyAdd(Qux[l * n + i], K[l * n + j], s);
      V[i * n + j] = s;
    }
    S s = qx[i];
    for (int l = 0; l < m; ++l) s = MultiplyAdd(Qux[l * n + i], k[l], s);
    v[i] = s;
  }
  Symmetrize<S>(V, n);
}

// The O(n^3) steps of a Riccati stage, as the solvers call them (their Kernels parameter): the
// loops above, on every executor. A host-only alternative with the same interface
// (cpu/dense_kernels.h) uses packed products for shapes too large for the device.
struct LoopKernels {
  // The core differentiates a model one step per evaluation (a host's kernels may take several at
  // once: cpu/dense_kernels.h).
  static constexpr int kLinearizationLanes = 1;
  template <typename S, class Dynamics, int NX, int NU>
  static constexpr bool kLinearizesInLanes = false;
  // Whether some shapes take packed kernels that read a stage's cost in place (a host's:
  // cpu/dense_kernels.h's PackedCostToQ).
  static constexpr bool kPacksLargeShapes = false;

  template <typename S>
  MPC_HOST_DEVICE MPC_FORCE_INLINE static void AddDynamicsToQ(const S* A, const S* B, const S* V,
                                                              const S* v, int n, int m, S* VA,
                                                              S* VB, S* Qxx, S* Qux, S* Quu, S* qx,
                                                              S* qu) {
    core::AddDynamicsToQ<S>(A, B, V, v, n, m, VA, VB, Qxx, Qux, Quu, qx, qu);
  }
  template <typename S>
  MPC_HOST_DEVICE MPC_FORCE_INLINE static void ValueFunctionOfGains(const S* Qxx, const S* Qux,
                                                                    const S* Quu, const S* qx,
                                                                    const S* qu, const S* K,
                                                                    const S* k, int n, int m,
                                                                    S* QuuK, S* tmp, S* V, S* v) {
    core::ValueFunctionOfGains<S>(Qxx, Qux, Quu, qx, qu, K, k, n, m, QuuK, tmp, V, v);
  }
  template <typename S>
  MPC_HOST_DEVICE MPC_FORCE_INLINE static void ValueFunctionOfMinimisers(const S* Qxx, const S* Qux,
                                                                         const S* qx, const S* K,
                                                                         const S* k, int n, int m,
                                                                         S* V, S* v) {
    core::ValueFunctionOfMinimisers<S>(Qxx, Qux, qx, K, k, n, m, V, v);
  }
  // rhs <- (L L')^-1 rhs, rhs (m, cols).
  template <typename S>
  MPC_HOST_DEVICE MPC_FORCE_INLINE static void CholeskySolveInPlace(const S* L, int m, S* rhs,
                                                                    int cols) {
    core::CholeskySolveInPlace<S>(L, m, rhs, cols);
  }
};

}  // namespace mpc::core

#endif  // MPC_SOLVER_CORE_SMALL_LINALG_H_
