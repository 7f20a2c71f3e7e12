#ifndef MPC_SOLVER_CPU_DENSE_KERNELS_H_
#define MPC_SOLVER_CPU_DENSE_KERNELS_H_

// The core's Riccati kernels (core/small_linalg.h, LoopKernels' interface) for a CPU worker:
// Eigen's packed, vectorised products for the shapes the device never runs (state or control
// dimension above the generic device capacities), the core's own loops otherwise, so every shape
// the device runs gives the CPU the device's bits (in double, AddDynamicsToQ's products A'VA and
// B'VA a row at a time in vector lanes: the core's sums in the core's order); and the
// linearisation of a built-in model four steps at a time (LaneLinearization). Host only.

#include <Eigen/Core>
#include <cmath>
#include <cstring>
#include <type_traits>

#if defined(__FMA__)
#include <immintrin.h>
#endif

#include "solver/core/dispatch.h"
#include "solver/core/small_linalg.h"
#include "solver/cpu/model_lanes.h"

namespace mpc {

// How a CPU worker differentiates a built-in model's dynamics (the core's
// Kernels::kLinearizesInLanes and the *InLanes functions: the Jacobians, and in the backward pass
// df/dp and the second derivatives): kLinearizationLanes steps per evaluation of the model's
// dual-number Step (cpu/model_lanes.h), in double at compile-time sizes; one step at a time
// otherwise.
struct LaneLinearization {
  static constexpr int kLinearizationLanes = kModelLanes;
  template <typename S, class Dynamics, int NX, int NU>
  static constexpr bool kLinearizesInLanes =
      std::is_same_v<S, double> && !Dynamics::kIsLinear && !Dynamics::kIsGraph &&
      !Dynamics::kIsGraphTape && NX != core::kDynamic && NU != core::kDynamic;

  template <class Model>
  static void StepJacobiansInLanes(const double* x, const double* u, const double* p, TimeStep dt,
                                   int count, double* const* A, double* const* B) {
    mpc::StepJacobiansInLanes<Model>(x, u, p, dt, count, A, B);
  }

  template <class Model>
  static void StepParamJacobianInLanes(const double* x, const double* u, const double* p,
                                       TimeStep dt, int count, double* next, double* const* P) {
    mpc::StepParamJacobianInLanes<Model>(x, u, p, dt, count, next, P);
  }

  template <class Model>
  static void StepMixedDirectionalInLanes(const double* x, const double* u, const double* p,
                                          TimeStep dt, const double* lambda, const double* dx,
                                          const double* du, int count, double* const* out) {
    mpc::StepMixedDirectionalInLanes<Model>(x, u, p, dt, lambda, dx, du, count, out);
  }

  template <class Model, bool kMixed>
  static void StepSecondDerivativesInLanes(const double* x, const double* u, const double* p,
                                           TimeStep dt, const double* lambda, int count,
                                           double* const* out) {
    mpc::StepSecondDerivativesInLanes<Model, kMixed>(x, u, p, dt, lambda, count, out);
  }
};

struct DenseKernels : LaneLinearization {
  static constexpr bool kPacksLargeShapes = true;
  static constexpr bool UsesPackedProducts(int n, int m) {
    return n > core::kGenericMaxStateDim || m > core::kGenericMaxControlDim;
  }

  // A stage's cost part of Q for the packed shapes: the blocks of C (n+m, n+m), row-major, and
  // q = C tau + c in vector lanes (the core's loops sum each row in one dependent chain). Like
  // them it reads the lower-left block for both Cux and Cxu.
  template <typename S>
  static void PackedCostToQ(const S* C, const S* c, const S* x, const S* u, int n, int m, S* Qxx,
                            S* Qux, S* Quu, S* qx, S* qu) {
    const int nt = n + m;
    const ConstMatrix<S> cost(C, nt, nt);
    const ConstVector<S> state(x, n), control(u, m);
    Matrix<S>(Qxx, n, n) = cost.topLeftCorner(n, n);
    Matrix<S>(Qux, m, n) = cost.bottomLeftCorner(m, n);
    Matrix<S>(Quu, m, m) = cost.bottomRightCorner(m, m);
    Vector<S> gradient_x(qx, n), gradient_u(qu, m);
    gradient_x = ConstVector<S>(c, n);
    gradient_x.noalias() += cost.topLeftCorner(n, n) * state;
    gradient_x.noalias() += cost.bottomLeftCorner(m, n).transpose() * control;
    gradient_u = ConstVector<S>(c + n, m);
    gradient_u.noalias() += cost.bottomLeftCorner(m, n) * state;
    gradient_u.noalias() += cost.bottomRightCorner(m, m) * control;
  }

  // x_next = A x + B u (+ f) for the packed shapes, F = [A B] (n, n+m) row-major, f (n) or null.
  template <typename S>
  static void PackedLinearStep(const S* F, const S* f, const S* x, const S* u, int n, int m,
                               S* x_next) {
    const ConstMatrix<S> transition(F, n, n + m);
    Vector<S> next(x_next, n);
    next.noalias() = transition.leftCols(n) * ConstVector<S>(x, n);
    next.noalias() += transition.rightCols(m) * ConstVector<S>(u, m);
    if (f != nullptr) next += ConstVector<S>(f, n);
  }

  // The quadratic stage cost x'(Cxx x / 2 + cx) + u'(Cux x + Cuu u / 2 + cu) for the packed
  // shapes (the core's form: the lower-left block for both cross terms), its rows' dot products
  // in vector lanes.
  template <typename S>
  static S PackedStageCost(const S* C, const S* c, const S* x, const S* u, int n, int m) {
    const int nt = n + m;
    const ConstMatrix<S> cost(C, nt, nt);
    const ConstVector<S> state(x, n), control(u, m);
    S total = 0;
    for (int i = 0; i < n; ++i) {
      total += x[i] * (S(0.5) * cost.row(i).head(n).dot(state) + c[i]);
    }
    for (int i = 0; i < m; ++i) {
      const auto row = cost.row(n + i);
      total += u[i] * (row.head(n).dot(state) + S(0.5) * row.tail(m).dot(control) + c[n + i]);
    }
    return total;
  }

  // Inlined into the solver, so that in its fixed-size specialisations n and m are constants:
  // the test folds and the core's loops run with constant bounds (as on the device).
  template <typename S>
  MPC_FORCE_INLINE static void AddDynamicsToQ(const S* A, const S* B, const S* V, const S* v, int n,
                                              int m, S* VA, S* VB, S* Qxx, S* Qux, S* Quu, S* qx,
                                              S* qu) {
    if (UsesPackedProducts(n, m)) {
      PackedAddDynamicsToQ(A, B, V, v, n, m, VA, VB, Qxx, Qux, Quu, qx, qu);
    } else if constexpr (std::is_same_v<S, double>) {
      core::AddDynamicsToQ<S, LaneColumnTimesMatrix>(A, B, V, v, n, m, VA, VB, Qxx, Qux, Quu, qx,
                                                     qu);
    } else {
      core::AddDynamicsToQ<S>(A, B, V, v, n, m, VA, VB, Qxx, Qux, Quu, qx, qu);
    }
  }

  template <typename S>
  MPC_FORCE_INLINE static void ValueFunctionOfGains(const S* Qxx, const S* Qux, const S* Quu,
                                                    const S* qx, const S* qu, const S* K,
                                                    const S* k, int n, int m, S* QuuK, S* tmp, S* V,
                                                    S* v) {
    if (UsesPackedProducts(n, m)) {
      PackedValueFunctionOfGains(Qxx, Qux, Quu, qx, qu, K, k, n, m, QuuK, tmp, V, v);
    } else {
      core::ValueFunctionOfGains<S>(Qxx, Qux, Quu, qx, qu, K, k, n, m, QuuK, tmp, V, v);
    }
  }

  // All columns at once (the innermost loop along a row, in vector lanes) for the packed shapes'
  // many columns (the gains K of n > 16, or m > 8); one column at a time for the small ones, where
  // the solver measured faster so (linear n8 m4 ran 2-4% slower all at once; docs/benchmarks.md
  // §1). The same bits either way.
  template <typename S>
  MPC_FORCE_INLINE static void CholeskySolveInPlace(const S* L, int m, S* rhs, int cols) {
    if (UsesPackedProducts(cols, m)) {
      core::CholeskySolveColumnsInPlace<S>(L, m, rhs, cols, cols);
    } else {
      core::CholeskySolveInPlace<S>(L, m, rhs, cols);
    }
  }

  template <typename S>
  MPC_FORCE_INLINE static void ValueFunctionOfMinimisers(const S* Qxx, const S* Qux, const S* qx,
                                                         const S* K, const S* k, int n, int m, S* V,
                                                         S* v) {
    if (UsesPackedProducts(n, m)) {
      PackedValueFunctionOfMinimisers(Qxx, Qux, qx, K, k, n, m, V, v);
    } else {
      core::ValueFunctionOfMinimisers<S>(Qxx, Qux, qx, K, k, n, m, V, v);
    }
  }

 private:
  // Four and two doubles in AVX and SSE registers (GCC's vector extensions): lane j computes
  // exactly the scalar expression of entry j, so the results are the core loops' bits.
  using Lanes4 = double __attribute__((vector_size(32)));
  using Lanes2 = double __attribute__((vector_size(16)));
  template <class L>
  MPC_FORCE_INLINE static L LoadLanes(const double* p) {
    L r;
    std::memcpy(&r, p, sizeof(L));
    return r;
  }
  template <class L>
  MPC_FORCE_INLINE static void StoreLanes(double* p, L r) {
    std::memcpy(p, &r, sizeof(L));
  }

  // c + a b in every lane, each rounded once: core::MultiplyAdd lane by lane.
  template <class L>
  MPC_FORCE_INLINE static L MultiplyAddLanes(double a, L b, L c) {
#if defined(__FMA__)
    if constexpr (std::is_same_v<L, Lanes4>) {
      return _mm256_fmadd_pd(_mm256_set1_pd(a), b, c);
    } else {
      return _mm_fmadd_pd(_mm_set1_pd(a), b, c);
    }
#else
    L r;
    for (int i = 0; i < static_cast<int>(sizeof(L) / sizeof(double)); ++i) {
      r[i] = std::fma(a, b[i], c[i]);
    }
    return r;
#endif
  }

  // core::AddColumnTimesMatrix (a row of A'VA or B'VA) four or two entries j at once: the same
  // sums in the same order (the core's dot products down A's columns do not vectorise).
  struct LaneColumnTimesMatrix {
    MPC_FORCE_INLINE static void Run(const double* col, int stride, const double* VA, int n,
                                     double* out) {
      int j = 0;
      for (; j + 4 <= n; j += 4) {
        Lanes4 acc = {0.0, 0.0, 0.0, 0.0};
        for (int l = 0; l < n; ++l) {
          acc = MultiplyAddLanes(col[l * stride], LoadLanes<Lanes4>(VA + l * n + j), acc);
        }
        StoreLanes(out + j, LoadLanes<Lanes4>(out + j) + acc);
      }
      for (; j + 2 <= n; j += 2) {
        Lanes2 acc = {0.0, 0.0};
        for (int l = 0; l < n; ++l) {
          acc = MultiplyAddLanes(col[l * stride], LoadLanes<Lanes2>(VA + l * n + j), acc);
        }
        StoreLanes(out + j, LoadLanes<Lanes2>(out + j) + acc);
      }
      core::AddColumnTimesMatrix::Run(col, stride, VA, n, out, j);
    }
  };

  template <typename S>
  static void PackedAddDynamicsToQ(const S* A, const S* B, const S* V, const S* v, int n, int m,
                                   S* VA, S* VB, S* Qxx, S* Qux, S* Quu, S* qx, S* qu) {
    const ConstMatrix<S> a(A, n, n), b(B, n, m), value(V, n, n);
    const ConstVector<S> value_gradient(v, n);
    Matrix<S> va(VA, n, n), vb(VB, n, m);
    va.noalias() = value * a;
    vb.noalias() = value * b;
    Matrix<S>(Qxx, n, n).noalias() += a.transpose() * va;
    Matrix<S>(Qux, m, n).noalias() += b.transpose() * va;
    Matrix<S>(Quu, m, m).noalias() += b.transpose() * vb;
    Vector<S>(qx, n).noalias() += a.transpose() * value_gradient;
    Vector<S>(qu, m).noalias() += b.transpose() * value_gradient;
  }

  template <typename S>
  static void PackedValueFunctionOfGains(const S* Qxx, const S* Qux, const S* Quu, const S* qx,
                                         const S* qu, const S* K, const S* k, int n, int m, S* QuuK,
                                         S* tmp, S* V, S* v) {
    const ConstMatrix<S> qux(Qux, m, n), quu(Quu, m, m), gain(K, m, n);
    const ConstVector<S> feedforward(k, m);
    Matrix<S> weighted(QuuK, m, n), value(V, n, n);
    // sym(Qux'K + K'Qux + K'Quu K) = sym((2 Qux + Quu K)'K), as sym(X') = sym(X): one product of
    // depth m where the core's loops take three.
    weighted.noalias() = quu * gain;
    weighted += S(2) * qux;
    value = ConstMatrix<S>(Qxx, n, n);
    value.noalias() += weighted.transpose() * gain;
    core::Symmetrize<S>(V, n);
    Vector<S> shifted(tmp, m);
    shifted = ConstVector<S>(qu, m);
    shifted.noalias() += quu * feedforward;
    Vector<S> value_gradient(v, n);
    value_gradient = ConstVector<S>(qx, n);
    value_gradient.noalias() += qux.transpose() * feedforward;
    value_gradient.noalias() += gain.transpose() * shifted;
  }

  template <typename S>
  static void PackedValueFunctionOfMinimisers(const S* Qxx, const S* Qux, const S* qx, const S* K,
                                              const S* k, int n, int m, S* V, S* v) {
    const ConstMatrix<S> qux(Qux, m, n);
    Matrix<S> value(V, n, n);
    value = ConstMatrix<S>(Qxx, n, n);
    value.noalias() += qux.transpose() * ConstMatrix<S>(K, m, n);
    Vector<S> value_gradient(v, n);
    value_gradient = ConstVector<S>(qx, n);
    value_gradient.noalias() += qux.transpose() * ConstVector<S>(k, m);
    core::Symmetrize<S>(V, n);
  }

  template <typename S>
  using RowMajor = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  template <typename S>
  using Matrix = Eigen::Map<RowMajor<S>>;
  template <typename S>
  using ConstMatrix = Eigen::Map<const RowMajor<S>>;
  template <typename S>
  using Vector = Eigen::Map<Eigen::Matrix<S, Eigen::Dynamic, 1>>;
  template <typename S>
  using ConstVector = Eigen::Map<const Eigen::Matrix<S, Eigen::Dynamic, 1>>;
};

}  // namespace mpc

#endif  // MPC_SOLVER_CPU_DENSE_KERNELS_H_
