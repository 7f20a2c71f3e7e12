#ifndef MPC_SOLVER_CORE_IMPLICIT_BACKWARD_H_
#define MPC_SOLVER_CORE_IMPLICIT_BACKWARD_H_

// The implicit backward pass (vector-Jacobian product) and the solution's Jacobians of one problem
// (DESIGN §4), written once: what one CUDA thread runs (solver/cuda/backward_kernels.cuh) and what
// a CPU worker runs. All three GradientModes: the dynamics linearised at the given point as the
// solve linearises them (StepWithJacobians, model_derivatives.h), the active set
// (|u - bound| <= kActiveSetTolerance), the costates and residuals, in kExact on a model the
// dynamics' curvature in every stage's Hessian, one Riccati factorisation of the pinned LQR with
// Levenberg-Marquardt retries (its factors stored), that LQR solved for each right-hand side (the
// cotangent; or one per column of a Jacobian), and the gradient formulas.

#include <cmath>
#include <type_traits>

#include "solver/core/batch_view.h"
#include "solver/core/ilqr.h"
#include "solver/core/regularization.h"
#include "solver/core/scratch.h"
#include "solver/core/small_linalg.h"
#include "solver/host_device.h"
#include "solver/models/model_derivatives.h"

namespace mpc::core {

// A control within this of a bound is pinned (solver/gradients.h kActiveSetTolerance).
constexpr double kDeviceActiveSetTolerance = 1e-8;
// Above this estimated condition number of a stage's Quu (free controls) the result is flagged
// GradientStatus::kIllConditioned.
constexpr double kDeviceIllConditioned = 1e12;

// GCC 12 at -O3 does not see that the run-time sizes n, m equal NX, NU in the fixed-size
// specialisations, and reports the small local arrays as maybe-uninitialized or indexed out of
// bounds in loops it cannot reach (as in ilqr_device.h); known false positives there.
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Warray-bounds"
#endif

// One problem's backward pass. Construct, then Run(); everything it needs is in the view. NX, NU,
// Layout, Kernels and the arena as for ProblemSolver (ilqr.h).
template <typename S, class Dynamics, int NX, int NU, bool kFixedSize = true,
          class Layout = Interleaved, class Kernels = LoopKernels>
class ProblemBackward : private ProblemSizes<NX, NU, kFixedSize && NX != kDynamic> {
  // State, control and tau sizes (named as in the math, like NX and NU).
  using Sizes = ProblemSizes<NX, NU, kFixedSize && NX != kDynamic>;
  using Sizes::m;
  using Sizes::n;
  using Sizes::nt;

 public:
  MPC_HOST_DEVICE ProblemBackward(const BackwardBatchView<S>& view, int b,
                                  ScratchArena<S>* arena = nullptr)
      : Sizes(view.problem.state_dim, view.problem.control_dim),
        view_(view),
        in_(view.problem),
        b_(b),
        T_(view.problem.horizon),
        settings_(view.settings[b]),
        arena_(arena) {}

  MPC_HOST_DEVICE void Run() {
    BackwardResult& out = view_.results[b_];
    ZeroGradient();
    out.regularization = 0.0;
    out.condition_estimate = 0.0;
    out.active_controls = 0;
    out.status = kDeviceGradientOk;
    if (!Load(&out)) {
      out.status = kDeviceGradientNotFinite;
      return;
    }
    if (!Factorize(&out)) return;
    if (!SolveLqr({RhsKind::kCotangent, 0})) {
      out.status = kDeviceGradientNotFinite;
      return;
    }
    AssembleGradient();
  }

  // The Jacobians of the solution (view.jacobians says which): column j of d tau / d x_init and
  // column k of d tau / d params are the pinned LQR's solutions for those right-hand sides, from
  // one factorisation. A point or result that is not finite leaves zeros and kNotFinite.
  MPC_HOST_DEVICE void RunJacobians() {
    BackwardResult& out = view_.results[b_];
    out.regularization = 0.0;
    out.condition_estimate = 0.0;
    out.active_controls = 0;
    out.status = kDeviceGradientOk;
    const JacobianSettings& want = view_.jacobians;
    const bool params = want.params && !Dynamics::kIsLinear;
    const int np = Dynamics::kParamDim;
    for (int e = 0; e < (want.x_init ? T_ * nt * n : 0); ++e) At(view_.jac_x_init, e) = 0;
    for (int e = 0; e < (params ? T_ * nt * np : 0); ++e) At(view_.jac_params, e) = 0;
    if (!Load(&out)) {
      out.status = kDeviceGradientNotFinite;
      return;
    }
    if (params && settings_.mode != kDeviceModeDefault && !LoadSecondOrder<SecondOrder::kMixed>()) {
      out.status = kDeviceGradientNotFinite;
      return;
    }
    if (!Factorize(&out)) return;
    bool finite = true;
    for (int j = 0; want.x_init && j < n; ++j) {
      finite = SolveLqr({RhsKind::kInitialState, j}) && finite;
      WriteColumn(view_.jac_x_init, j, n);
    }
    for (int k = 0; params && k < np; ++k) {
      finite = SolveLqr({RhsKind::kParameter, k}) && finite;
      WriteColumn(view_.jac_params, k, np);
    }
    if (!finite) {
      out.status = kDeviceGradientNotFinite;
      for (int e = 0; e < (want.x_init ? T_ * nt * n : 0); ++e) At(view_.jac_x_init, e) = 0;
      for (int e = 0; e < (params ? T_ * nt * np : 0); ++e) At(view_.jac_params, e) = 0;
    }
  }

 private:
  MPC_HOST_DEVICE static S Abs(S v) { return v < S(0) ? -v : v; }
  // max(a, b) that keeps a NaN b (a NaN residual must be seen).
  MPC_HOST_DEVICE static S MaxKeepNan(S a, S b) { return b <= a ? a : b; }

  MPC_HOST_DEVICE S& At(S* array, int e) const {
    return array[Layout::Index(e, view_.problem.batch, b_)];
  }
  MPC_HOST_DEVICE S At(const S* array, int e) const {
    return array[Layout::Index(e, view_.problem.batch, b_)];
  }

  // The problem's data at step t (layout: ilqr_batch_view.h; C is already symmetrised).
  MPC_HOST_DEVICE int CostBase(int t) const { return (in_.cost_slices > 1 ? t : 0) * nt * nt; }
  MPC_HOST_DEVICE S C(int t, int i, int j) const {
    return At(in_.cost_quadratic, CostBase(t) + i * nt + j);
  }
  // The pinned LQR's Hessian at step t: the cost's C_t plus, in kExact on a model, the dynamics'
  // curvature lambda_{t+1}' d2f/dtau2 (written by Load).
  MPC_HOST_DEVICE S H(int t, int i, int j) const {
    if constexpr (!Dynamics::kIsLinear) {
      if (settings_.mode == kDeviceModeExact && t + 1 < T_) {
        return C(t, i, j) + At(view_.curvature, (t * nt + i) * nt + j);
      }
    }
    return C(t, i, j);
  }
  MPC_HOST_DEVICE S c(int t, int i) const {
    return At(in_.cost_linear, (in_.linear_slices > 1 ? t : 0) * nt + i);
  }
  MPC_HOST_DEVICE S Lower(int t, int j) const {
    return At(in_.u_lower, (in_.bound_slices > 1 ? t : 0) * m + j);
  }
  MPC_HOST_DEVICE S Upper(int t, int j) const {
    return At(in_.u_upper, (in_.bound_slices > 1 ? t : 0) * m + j);
  }
  // tau_t[i] = [x_t; u_t][i] of the point, and of the LQR's solution.
  MPC_HOST_DEVICE S Tau(int t, int i) const {
    return i < n ? At(view_.x, t * n + i) : At(view_.u, t * m + i - n);
  }
  MPC_HOST_DEVICE S DeltaTau(int t, int i) const {
    return i < n ? At(view_.dx, t * n + i) : At(view_.du, t * m + i - n);
  }

  // A_t (n, n) and B_t (n, m), row-major: the problem's for linear dynamics, else the scratch
  // written by Load.
  MPC_HOST_DEVICE void LoadJacobians(int t, S* A, S* B) const {
    if constexpr (Dynamics::kIsLinear) {
      const int base = (in_.transition_slices > 1 ? t : 0) * n * nt;
      for (int i = 0; i < n; ++i) {
        for (int j = 0; j < n; ++j) A[i * n + j] = At(in_.transition, base + i * nt + j);
        for (int j = 0; j < m; ++j) B[i * m + j] = At(in_.transition, base + i * nt + n + j);
      }
    } else {
      for (int e = 0; e < n * n; ++e) A[e] = At(view_.A, t * n * n + e);
      for (int e = 0; e < n * m; ++e) B[e] = At(view_.B, t * n * m + e);
    }
  }

  MPC_HOST_DEVICE void ZeroGradient() {
    for (int i = 0; i < n; ++i) At(view_.grad_x_init, i) = 0;
    for (int e = 0; e < in_.cost_slices * nt * nt; ++e) At(view_.grad_cost_quadratic, e) = 0;
    for (int e = 0; e < in_.linear_slices * nt; ++e) At(view_.grad_cost_linear, e) = 0;
    if constexpr (Dynamics::kIsLinear) {
      for (int e = 0; e < in_.transition_slices * n * nt; ++e) At(view_.grad_transition, e) = 0;
      for (int e = 0; e < view_.offset_gradient_slices * n; ++e) At(view_.grad_offset, e) = 0;
    } else {
      for (int k = 0; k < ParamDim(); ++k) At(view_.grad_params, k) = 0;
    }
    if constexpr (kMayHaveCostGraph<S, Layout>) {
      if (in_.cost_graph != nullptr) {
        const int p = in_.cost_graph->program().param_dim;
        for (int k = 0; k < p; ++k) view_.grad_cost_params[k] = 0;
      }
    }
  }

  // A stage cost graph (CPU workers only, like graph dynamics): whether the problem has one.
  MPC_HOST_DEVICE bool HasCostGraph() const {
    if constexpr (kMayHaveCostGraph<S, Layout>) {
      return in_.cost_graph != nullptr;
    } else {
      return false;
    }
  }

  // The cost graph's exact quadratisation at the point into C_t, c_t (C_t = H_t, c_t = g_t - H_t
  // tau_t, no projection: the implicit function theorem needs the true Hessian), read by every
  // step after this one as a quadratic cost's would be.
  MPC_HOST_DEVICE void QuadratiseCostGraph() {
    if constexpr (kMayHaveCostGraph<S, Layout>) {
      ScratchScope<S> scope(arena_);
      LocalArray<S, NX> x(arena_, n);
      LocalArray<S, NU> u(arena_, m);
      for (int t = 0; t < T_; ++t) {
        for (int i = 0; i < n; ++i) x[i] = At(view_.x, t * n + i);
        for (int j = 0; j < m; ++j) u[j] = At(view_.u, t * m + j);
        S* H = in_.cost_hessian + t * nt * nt;
        S* c = in_.cost_gradient + t * nt;
        in_.cost_graph->CostDerivatives(x, u, n, in_.cost_params, c, H);
        for (int i = 0; i < nt; ++i) {
          S s = 0;
          for (int j = 0; j < n; ++j) s += H[i * nt + j] * x[j];
          for (int j = 0; j < m; ++j) s += H[i * nt + n + j] * u[j];
          c[i] -= s;
        }
      }
    }
  }

  // dL/dtheta_c = -sum_t d2l/dtheta dtau . dtau_t (theta_c enters only through the cost's
  // gradient, as c does): one forward-over-reverse sweep of the graph per step.
  MPC_HOST_DEVICE void AssembleCostParamGradient() {
    if constexpr (kMayHaveCostGraph<S, Layout>) {
      ScratchScope<S> scope(arena_);
      LocalArray<S, NX> x(arena_, n), dx(arena_, n);
      LocalArray<S, NU> u(arena_, m), du(arena_, m);
      for (int t = 0; t < T_; ++t) {
        for (int i = 0; i < n; ++i) {
          x[i] = At(view_.x, t * n + i);
          dx[i] = At(view_.dx, t * n + i);
        }
        for (int j = 0; j < m; ++j) {
          u[j] = At(view_.u, t * m + j);
          du[j] = At(view_.du, t * m + j);
        }
        in_.cost_graph->SubtractCostParamGradient(x, u, n, in_.cost_params, dx, du,
                                                  view_.grad_cost_params);
      }
    }
  }

  // The dynamics' parameter count: a model's, or the graph's (known at run time).
  MPC_HOST_DEVICE int ParamDim() const {
    if constexpr (Dynamics::kIsGraph) {
      return in_.graph->program().param_dim;
    } else {
      return Dynamics::kParamDim;
    }
  }

  // Stores the linearisation A_t (n, n), B_t (n, m) of step t; clears *finite on a NaN or Inf.
  MPC_HOST_DEVICE void StoreJacobians(int t, const S* A, const S* B, bool* finite) const {
    for (int e = 0; e < n * n; ++e) {
      At(view_.A, t * n * n + e) = A[e];
      *finite = *finite && IsFinite(A[e]);
    }
    for (int e = 0; e < n * m; ++e) {
      At(view_.B, t * n * m + e) = B[e];
      *finite = *finite && IsFinite(B[e]);
    }
  }

  // The dynamics linearised at the point (and df/dp), the active set, the costates
  // lambda_t = C_{t,x:} tau_t + c_{t,x} + A_t' lambda_{t+1} and the residuals. Returns false when a
  // derivative or residual is not finite (the caller reports kNotFinite with a zero gradient).
  MPC_HOST_DEVICE bool Load(BackwardResult* out) {
    if (HasCostGraph()) QuadratiseCostGraph();
    ScratchScope<S> scope(arena_);
    bool finite = true;
    S dynamics_residual = 0;
    for (int i = 0; i < n; ++i) {
      dynamics_residual = MaxKeepNan(dynamics_residual, Abs(At(view_.x, i) - At(in_.x_init, i)));
    }
    LocalArray<S, NX> x(arena_, n), next(arena_, n), lambda(arena_, n), lambda_next(arena_, n);
    LocalArray<S, NU> u(arena_, m);
    LocalArray<S, NX * NX> A(arena_, n * n);
    LocalArray<S, NX * NU> B(arena_, n * m);
    for (int t = 0; t + 1 < T_; ++t) {
      for (int i = 0; i < n; ++i) x[i] = At(view_.x, t * n + i);
      for (int j = 0; j < m; ++j) u[j] = At(view_.u, t * m + j);
      if constexpr (Dynamics::kIsLinear) {
        LoadJacobians(t, A, B);
        const int offset_base = (in_.offset_slices > 1 ? t : 0) * n;
        for (int i = 0; i < n; ++i) {
          S s = 0;
          for (int j = 0; j < n; ++j) s += A[i * n + j] * x[j];
          for (int j = 0; j < m; ++j) s += B[i * m + j] * u[j];
          if (in_.offset_slices > 0) s += At(in_.offset, offset_base + i);
          next[i] = s;
        }
      } else if constexpr (Dynamics::kIsGraph) {
        // No df/dtheta here: AssembleGradient takes its product with dlambda by reverse sweeps.
        in_.graph->StepWithJacobians(x, u, in_.params, settings_.dt, next, A, B);
        StoreJacobians(t, A, B, &finite);
      } else {
        using Model = typename Dynamics::ModelType;
        constexpr int p = Dynamics::kParamDim;
        S params[p] = {}, P[NX * p] = {}, unused[NX] = {};
        for (int k = 0; k < p; ++k) params[k] = At(in_.params, k);
        StepWithJacobians<Model, MatrixOrder::kRowMajor, S>(x, u, params, settings_.dt, next, A, B);
        StepParamJacobian<Model, S>(x, u, params, settings_.dt, unused, P);
        StoreJacobians(t, A, B, &finite);
        for (int e = 0; e < n * p; ++e) {
          At(view_.P, t * n * p + e) = P[e];
          finite = finite && IsFinite(P[e]);
        }
      }
      for (int i = 0; i < n; ++i) {
        dynamics_residual =
            MaxKeepNan(dynamics_residual, Abs(next[i] - At(view_.x, (t + 1) * n + i)));
      }
    }
    if constexpr (Dynamics::kIsLinear) {
      for (int e = 0; e < in_.transition_slices * n * nt; ++e) {
        finite = finite && IsFinite(At(in_.transition, e));
      }
    }

    // Active set: mpc.pytorch's rule, either bound within the tolerance.
    int active = 0;
    for (int t = 0; t < T_; ++t) {
      for (int j = 0; j < m; ++j) {
        bool pinned = false;
        if (settings_.has_bounds != 0) {
          const S v = At(view_.u, t * m + j);
          pinned = Abs(v - Lower(t, j)) <= S(kDeviceActiveSetTolerance) ||
                   Abs(v - Upper(t, j)) <= S(kDeviceActiveSetTolerance);
        }
        At(view_.free, t * m + j) = pinned ? S(0) : S(1);
        if (pinned) ++active;
      }
    }

    // Costates, and the stationarity of the free controls (zero at an optimum).
    S stationarity_residual = 0;
    for (int t = T_ - 1; t >= 0; --t) {
      for (int i = 0; i < n; ++i) x[i] = At(view_.x, t * n + i);
      for (int j = 0; j < m; ++j) u[j] = At(view_.u, t * m + j);
      if (t + 1 < T_) LoadJacobians(t, A, B);
      for (int i = 0; i < n; ++i) {
        S s = 0;
        for (int j = 0; j < n; ++j) s += C(t, i, j) * x[j];
        for (int j = 0; j < m; ++j) s += C(t, n + j, i) * u[j];
        s += c(t, i);
        if (t + 1 < T_) {
          for (int l = 0; l < n; ++l) s += A[l * n + i] * lambda_next[l];
        }
        lambda[i] = s;
        finite = finite && IsFinite(s);
      }
      for (int i = 0; i < m; ++i) {
        S s = 0;
        for (int j = 0; j < n; ++j) s += C(t, n + i, j) * x[j];
        for (int j = 0; j < m; ++j) s += C(t, n + i, n + j) * u[j];
        s += c(t, n + i);
        if (t + 1 < T_) {
          for (int l = 0; l < n; ++l) s += B[l * m + i] * lambda_next[l];
        }
        if (At(view_.free, t * m + i) != S(0)) {
          stationarity_residual = MaxKeepNan(stationarity_residual, Abs(s));
        }
      }
      for (int i = 0; i < n; ++i) {
        At(view_.lambda, t * n + i) = lambda[i];
        lambda_next[i] = lambda[i];
      }
      for (int i = 0; i < nt; ++i) {
        for (int j = 0; j < nt; ++j) finite = finite && IsFinite(C(t, i, j));
      }
    }
    if constexpr (!Dynamics::kIsLinear) {
      if (settings_.mode == kDeviceModeExact) {
        finite = LoadSecondOrder<SecondOrder::kCurvature>() && finite;
      }
    }
    out->stationarity_residual = stationarity_residual;
    out->dynamics_residual = dynamics_residual;
    out->active_controls = active;
    return finite && IsFinite(stationarity_residual) && IsFinite(dynamics_residual);
  }

  // The second derivatives of phi_t = lambda_{t+1}' f(x_t, u_t; p) at every step into the view:
  // kCurvature, d2phi/dtau2 (kExact's part of H_t); kMixed, d2phi/dtau dp (M_t, the parameter
  // columns' linear terms beyond kDefault). False when one is not finite.
  enum class SecondOrder { kCurvature, kMixed };
  template <SecondOrder kBlock>
  MPC_HOST_DEVICE bool LoadSecondOrder() {
    if constexpr (Dynamics::kIsLinear) {
      return true;
    } else if constexpr (Dynamics::kIsGraph && kBlock == SecondOrder::kMixed) {
      return false;  // a graph's d tau/d params is not computed (validation refuses it)
    } else {
      constexpr int kCols = kBlock == SecondOrder::kCurvature ? NX + NU : Dynamics::kParamDim;
      const int size = nt * (kBlock == SecondOrder::kCurvature ? nt : Dynamics::kParamDim);
      S* const out = kBlock == SecondOrder::kCurvature ? view_.curvature : view_.mixed;
      ScratchScope<S> scope(arena_);
      LocalArray<S, NX> x(arena_, n), lambda(arena_, n);
      LocalArray<S, NU> u(arena_, m);
      LocalArray<S, (NX + NU) * kCols> block(arena_, size);
      bool finite = true;
      for (int t = 0; t + 1 < T_; ++t) {
        for (int i = 0; i < n; ++i) {
          x[i] = At(view_.x, t * n + i);
          lambda[i] = At(view_.lambda, (t + 1) * n + i);
        }
        for (int j = 0; j < m; ++j) u[j] = At(view_.u, t * m + j);
        SecondOrderAt<kBlock>(x, u, lambda, block);
        for (int e = 0; e < size; ++e) {
          At(out, t * size + e) = block[e];
          finite = finite && IsFinite(block[e]);
        }
      }
      return finite;
    }
  }

  // One step's block at (x, u) with costate lambda: nested duals of a model's Step, or, for a
  // graph's curvature, n+m forward-over-reverse sweeps of the graph.
  template <SecondOrder kBlock>
  MPC_HOST_DEVICE void SecondOrderAt(const S* x, const S* u, const S* lambda, S* block) const {
    if constexpr (Dynamics::kIsGraph) {
      static_assert(std::is_same_v<Layout, Contiguous>, "graphs run on CPU workers only");
      in_.graph->LambdaHessian(x, u, in_.params, settings_.dt, lambda, block);
    } else {
      using Model = typename Dynamics::ModelType;
      constexpr int p = Dynamics::kParamDim;
      S params[p] = {};
      for (int k = 0; k < p; ++k) params[k] = At(in_.params, k);
      if constexpr (kBlock == SecondOrder::kCurvature) {
        StepTauHessian<Model>(x, u, params, settings_.dt, lambda, block);
      } else {
        StepMixedSecondDerivatives<Model>(x, u, params, settings_.dt, lambda, block);
      }
    }
  }

  // Riccati factorisation of the pinned LQR, retried with growing mu I on the free controls' Quu
  // until every stage is positive definite; writes the regularisation, conditioning and status.
  MPC_HOST_DEVICE bool Factorize(BackwardResult* out) {
    S reg = 0;
    S condition = 0;
    while (!FactorizeOnce(reg, &condition)) {
      reg = reg == S(0) ? S(kMinRegularization) : reg * S(kRegularizationFactor);
      if (reg > S(kMaxRegularization)) {
        out->status = kDeviceGradientNotFinite;
        out->regularization = reg;
        return false;
      }
    }
    out->regularization = reg;
    out->condition_estimate = condition;
    if (reg > S(0)) {
      out->status = kDeviceGradientRegularized;
    } else if (!(condition <= S(kDeviceIllConditioned))) {
      out->status = kDeviceGradientIllConditioned;
    }
    return true;
  }

  // One Riccati pass of the pinned LQR with Hessian H_t (V_t, K_t with pinned rows zero, L_t of
  // Quu with pinned rows and columns replaced by the identity). Stores K_t, L_t, Qux_t and V_t:
  // every right-hand side is then solved by SolveLqr without factorising again. The linear terms
  // of AddDynamicsToQ and the value function are not used here (zero v, scratch qx, qu, k).
  MPC_HOST_DEVICE bool FactorizeOnce(S reg, S* condition) {
    ScratchScope<S> scope(arena_);
    LocalArray<S, NX * NX> A(arena_, n * n), VA(arena_, n * n), V(arena_, n * n),
        Qxx(arena_, n * n);
    LocalArray<S, NX * NU> B(arena_, n * m), VB(arena_, n * m), Qux(arena_, m * n),
        K(arena_, m * n);
    LocalArray<S, NU * NU> Quu(arena_, m * m), L(arena_, m * m);
    LocalArray<S, NX> zero(arena_, n), v(arena_, n), qx(arena_, n);
    LocalArray<S, NU> qu(arena_, m), k(arena_, m);
    *condition = 0;
    for (int t = T_ - 1; t >= 0; --t) {
      for (int i = 0; i < n; ++i) {
        for (int j = 0; j < n; ++j) Qxx[i * n + j] = H(t, i, j);
      }
      for (int i = 0; i < m; ++i) {
        for (int j = 0; j < n; ++j) Qux[i * n + j] = H(t, n + i, j);
        for (int j = 0; j < m; ++j) Quu[i * m + j] = H(t, n + i, n + j);
      }
      if (t + 1 < T_) {
        LoadJacobians(t, A, B);
        Kernels::template AddDynamicsToQ<S>(A, B, V, zero, n, m, VA, VB, Qxx, Qux, Quu, qx, qu);
      }
      for (int i = 0; i < m; ++i) {
        if (At(view_.free, t * m + i) == S(0)) {
          for (int j = 0; j < m; ++j) {
            Quu[i * m + j] = 0;
            Quu[j * m + i] = 0;
          }
          Quu[i * m + i] = 1;
          for (int j = 0; j < n; ++j) Qux[i * n + j] = 0;
        } else {
          Quu[i * m + i] += reg;
        }
      }
      for (int e = 0; e < m * m; ++e) L[e] = 0;
      if (!CholeskyLower<S>(Quu, L, m)) return false;
      S lo = static_cast<S>(HUGE_VAL), hi = 0;
      for (int i = 0; i < m; ++i) {
        if (At(view_.free, t * m + i) == S(0)) continue;
        lo = L[i * m + i] < lo ? L[i * m + i] : lo;
        hi = L[i * m + i] > hi ? L[i * m + i] : hi;
      }
      if (hi > S(0)) {
        const S ratio = (hi / lo) * (hi / lo);
        if (ratio > *condition) *condition = ratio;
      }
      for (int e = 0; e < m * n; ++e) K[e] = -Qux[e];
      CholeskySolveInPlace<S>(L, m, K, n);
      Kernels::template ValueFunctionOfMinimisers<S>(Qxx, Qux, qx, K, k, n, m, V, v);
      bool finite = true;
      for (int e = 0; e < n * n; ++e) {
        finite = finite && IsFinite(V[e]);
        At(view_.V, t * n * n + e) = V[e];
      }
      for (int e = 0; e < m * n; ++e) {
        finite = finite && IsFinite(K[e]);
        At(view_.K, t * m * n + e) = K[e];
        At(view_.Qux, t * m * n + e) = Qux[e];
      }
      if (!finite) return false;
      for (int e = 0; e < m * m; ++e) At(view_.L, t * m * m + e) = L[e];
    }
    return true;
  }

  // The right-hand sides of the pinned LQR: the cotangent's (linear term g = -dL/dtau, dx_0 = 0,
  // no offsets), column `index` of d tau / d x_init (dx_0 = e_index) and column `index` of
  // d tau / d params (offsets h_t = df/dp_index and, beyond kDefault, g_t = M_t e_index).
  enum class RhsKind { kCotangent, kInitialState, kParameter };
  struct Rhs {
    RhsKind kind;
    int index;
  };

  MPC_HOST_DEVICE S LinearTerm(const Rhs& rhs, int t, int i) const {
    switch (rhs.kind) {
      case RhsKind::kCotangent:
        return i < n ? -At(view_.dl_dx, t * n + i) : -At(view_.dl_du, t * m + i - n);
      case RhsKind::kParameter:
        if (settings_.mode == kDeviceModeDefault || t + 1 >= T_) return 0;
        return At(view_.mixed, (t * nt + i) * Dynamics::kParamDim + rhs.index);
      default:
        return 0;
    }
  }
  MPC_HOST_DEVICE bool HasOffsets(const Rhs& rhs) const { return rhs.kind == RhsKind::kParameter; }
  MPC_HOST_DEVICE S Offset(const Rhs& rhs, int t, int i) const {
    return At(view_.P, (t * Dynamics::kParamDim + rhs.index) * n + i);
  }
  MPC_HOST_DEVICE S InitialState(const Rhs& rhs, int i) const {
    return rhs.kind == RhsKind::kInitialState && i == rhs.index ? S(1) : S(0);
  }

  // The pinned LQR for one right-hand side with the stored factors: its backward sweep (k_t), its
  // closed loop (du_t = k_t + K_t dx_t, dx_{t+1} = A_t dx_t + B_t du_t + h_t) into dx, du and, for
  // the cotangent, its multipliers mu_t = g_x + H_{t,xx} dx_t + H_{t,ux}' du_t + A_t' mu_{t+1}
  // (mpc.pytorch's dlambda). Returns false when any of them is not finite.
  MPC_HOST_DEVICE bool SolveLqr(const Rhs& rhs) {
    ScratchScope<S> scope(arena_);
    LocalArray<S, NX * NX> A(arena_, n * n);
    LocalArray<S, NX * NU> B(arena_, n * m);
    LocalArray<S, NX> v(arena_, n), w(arena_, n), qx(arena_, n), dx(arena_, n), next(arena_, n),
        mu(arena_, n), mu_next(arena_, n);
    LocalArray<S, NU> qu(arena_, m), k(arena_, m), du(arena_, m);
    LocalArray<S, NU * NU> L(arena_, m * m);
    const bool offsets = HasOffsets(rhs);
    for (int t = T_ - 1; t >= 0; --t) {
      for (int i = 0; i < n; ++i) qx[i] = LinearTerm(rhs, t, i);
      for (int i = 0; i < m; ++i) qu[i] = LinearTerm(rhs, t, n + i);
      if (t + 1 < T_) {
        LoadJacobians(t, A, B);
        // w = v_{t+1} + V_{t+1} h_t: the next value function's gradient where the step lands.
        for (int i = 0; i < n; ++i) {
          S s = v[i];
          if (offsets) {
            for (int j = 0; j < n; ++j) {
              s += At(view_.V, ((t + 1) * n + i) * n + j) * Offset(rhs, t, j);
            }
          }
          w[i] = s;
        }
        for (int i = 0; i < n; ++i) {
          S s = 0;
          for (int l = 0; l < n; ++l) s += A[l * n + i] * w[l];
          qx[i] += s;
        }
        for (int i = 0; i < m; ++i) {
          S s = 0;
          for (int l = 0; l < n; ++l) s += B[l * m + i] * w[l];
          qu[i] += s;
        }
      }
      for (int i = 0; i < m; ++i) {
        if (At(view_.free, t * m + i) == S(0)) qu[i] = 0;
        k[i] = -qu[i];
      }
      for (int e = 0; e < m * m; ++e) L[e] = At(view_.L, t * m * m + e);
      CholeskySolveInPlace<S>(L, m, k, 1);
      for (int i = 0; i < n; ++i) {
        S s = qx[i];
        for (int l = 0; l < m; ++l) s += At(view_.Qux, (t * m + l) * n + i) * k[l];
        v[i] = s;
      }
      for (int i = 0; i < m; ++i) At(view_.k, t * m + i) = k[i];
    }
    bool finite = true;
    for (int i = 0; i < n; ++i) dx[i] = InitialState(rhs, i);
    for (int t = 0; t < T_; ++t) {
      for (int i = 0; i < n; ++i) At(view_.dx, t * n + i) = dx[i];
      for (int j = 0; j < m; ++j) {
        S s = At(view_.k, t * m + j);
        for (int i = 0; i < n; ++i) s += At(view_.K, (t * m + j) * n + i) * dx[i];
        du[j] = s;
        At(view_.du, t * m + j) = s;
        finite = finite && IsFinite(s);
      }
      for (int i = 0; i < n; ++i) finite = finite && IsFinite(dx[i]);
      if (t + 1 < T_) {
        LoadJacobians(t, A, B);
        for (int i = 0; i < n; ++i) {
          S s = 0;
          for (int j = 0; j < n; ++j) s += A[i * n + j] * dx[j];
          for (int j = 0; j < m; ++j) s += B[i * m + j] * du[j];
          if (offsets) s += Offset(rhs, t, i);
          next[i] = s;
        }
        for (int i = 0; i < n; ++i) dx[i] = next[i];
      }
    }
    if (rhs.kind != RhsKind::kCotangent) return finite;
    for (int t = T_ - 1; t >= 0; --t) {
      if (t + 1 < T_) LoadJacobians(t, A, B);
      for (int i = 0; i < n; ++i) {
        S s = -At(view_.dl_dx, t * n + i);
        for (int j = 0; j < n; ++j) s += H(t, i, j) * At(view_.dx, t * n + j);
        for (int j = 0; j < m; ++j) s += H(t, n + j, i) * At(view_.du, t * m + j);
        if (t + 1 < T_) {
          for (int l = 0; l < n; ++l) s += A[l * n + i] * mu_next[l];
        }
        mu[i] = s;
        finite = finite && IsFinite(s);
      }
      for (int i = 0; i < n; ++i) {
        At(view_.mu, t * n + i) = mu[i];
        mu_next[i] = mu[i];
      }
    }
    return finite;
  }

  // out[(t * (n+m) + i) * cols + col] = dtau_t[i] of the last SolveLqr.
  MPC_HOST_DEVICE void WriteColumn(S* out, int col, int cols) {
    for (int t = 0; t < T_; ++t) {
      for (int i = 0; i < nt; ++i) At(out, (t * nt + i) * cols + col) = DeltaTau(t, i);
    }
  }

  // The gradient formulas (docs/gradients.md) from dtau = (dx, du), dlambda = mu and the
  // point, accumulated over t in order into outputs with one slice (zeroed by Run).
  MPC_HOST_DEVICE void AssembleGradient() {
    for (int i = 0; i < n; ++i) At(view_.grad_x_init, i) = -At(view_.mu, i);
    for (int t = 0; t < T_; ++t) {
      const int dC = (in_.cost_slices > 1 ? t : 0) * nt * nt;
      const int dc = (in_.linear_slices > 1 ? t : 0) * nt;
      for (int i = 0; i < nt; ++i) {
        const S tau_i = Tau(t, i);
        const S dtau_i = DeltaTau(t, i);
        At(view_.grad_cost_linear, dc + i) -= dtau_i;
        for (int j = 0; j < nt; ++j) {
          const S tau_j = Tau(t, j);
          const S dtau_j = DeltaTau(t, j);
          At(view_.grad_cost_quadratic, dC + i * nt + j) -=
              S(0.5) * (dtau_i * tau_j + tau_i * dtau_j);
        }
      }
    }
    if constexpr (Dynamics::kIsLinear) {
      for (int t = 0; t + 1 < T_; ++t) {
        const int dF = (in_.transition_slices > 1 ? t : 0) * n * nt;
        const int df = (view_.offset_gradient_slices > 1 ? t : 0) * n;
        for (int i = 0; i < n; ++i) {
          const S dlam = At(view_.mu, (t + 1) * n + i);
          const S lam = At(view_.lambda, (t + 1) * n + i);
          At(view_.grad_offset, df + i) -= dlam;
          for (int j = 0; j < nt; ++j) {
            At(view_.grad_transition, dF + i * nt + j) -= dlam * Tau(t, j) + lam * DeltaTau(t, j);
          }
        }
      }
    } else if constexpr (Dynamics::kIsGraph) {
      AssembleGraphParamGradient();
    } else {
      // dL/dp = -sum_t (df/dp' dlambda_{t+1} + M_t' dtau_t); M_t = 0 in mpc.pytorch's definition.
      using Model = typename Dynamics::ModelType;
      constexpr int p = Dynamics::kParamDim;
      S params[p] = {};
      for (int k = 0; k < p; ++k) params[k] = At(in_.params, k);
      S x[NX] = {}, u[NU] = {}, lambda[NX] = {}, dx[NX] = {}, du[NU] = {}, mixed[p] = {};
      for (int t = 0; t + 1 < T_; ++t) {
        if (settings_.mode != kDeviceModeDefault) {
          for (int i = 0; i < n; ++i) {
            x[i] = At(view_.x, t * n + i);
            dx[i] = At(view_.dx, t * n + i);
            lambda[i] = At(view_.lambda, (t + 1) * n + i);
          }
          for (int j = 0; j < m; ++j) {
            u[j] = At(view_.u, t * m + j);
            du[j] = At(view_.du, t * m + j);
          }
          StepMixedDirectional<Model>(x, u, params, settings_.dt, lambda, dx, du, mixed);
        }
        for (int k = 0; k < p; ++k) {
          S s = 0;
          for (int i = 0; i < n; ++i) {
            s += At(view_.P, t * n * p + k * n + i) * At(view_.mu, (t + 1) * n + i);
          }
          if (settings_.mode != kDeviceModeDefault) s += mixed[k];
          At(view_.grad_params, k) -= s;
        }
      }
    }
    if (HasCostGraph()) AssembleCostParamGradient();
  }

  // The model branch's formula for a graph: dL/dtheta = -sum_t (df/dtheta' dlambda_{t+1} +
  // M_t' dtau_t), each step's products by one reverse sweep of the graph (and one dual sweep for
  // M_t' dtau_t outside kDefault), whatever the number of parameters.
  void AssembleGraphParamGradient() {
    static_assert(std::is_same_v<Layout, Contiguous>, "graphs run on CPU workers only");
    ScratchScope<S> scope(arena_);
    LocalArray<S, NX> x(arena_, n), dx(arena_, n), lambda(arena_, n), mu(arena_, n);
    LocalArray<S, NU> u(arena_, m), du(arena_, m);
    const bool full_chain = settings_.mode != kDeviceModeDefault;
    for (int t = 0; t + 1 < T_; ++t) {
      for (int i = 0; i < n; ++i) {
        x[i] = At(view_.x, t * n + i);
        dx[i] = At(view_.dx, t * n + i);
        lambda[i] = At(view_.lambda, (t + 1) * n + i);
        mu[i] = At(view_.mu, (t + 1) * n + i);
      }
      for (int j = 0; j < m; ++j) {
        u[j] = At(view_.u, t * m + j);
        du[j] = At(view_.du, t * m + j);
      }
      in_.graph->SubtractParamGradient(x, u, in_.params, settings_.dt, mu,
                                       full_chain ? static_cast<const S*>(lambda) : nullptr, dx, du,
                                       view_.grad_params);
    }
  }

  const BackwardBatchView<S>& view_;
  const IlqrBatchView<S>& in_;
  const int b_;
  const int T_;
  const BackwardSettings settings_;
  ScratchArena<S>* const arena_;  // null with compile-time sizes
};

#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#pragma GCC diagnostic pop
#endif

}  // namespace mpc::core

#endif  // MPC_SOLVER_CORE_IMPLICIT_BACKWARD_H_
