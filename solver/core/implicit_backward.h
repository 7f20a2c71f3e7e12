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
#include "solver/core/problem_data.h"
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
// A stage constraint row held as an equality is weakly active when its multiplier is at most this
// times 1 + the largest multiplier; an inactive row is nearly active when its residual is within
// this many active tolerances of the bound.
constexpr double kDeviceWeakMultiplier = 1e-6;
constexpr double kDeviceNearlyActiveFactor = 100.0;
// An active row whose Schur complement diagonal is below this times 1 + the largest is dependent
// on the pinned controls and x_0 (no direction moves it): it is held with a zero multiplier.
constexpr double kDeviceDependentRow = 1e-12;
// When the pinned LQR with the active rows free is not positive definite (EXACT on a model: the
// dynamics' curvature off the constraints' surface), its Hessian first gets the penalty
// rho sum_r G_r' G_r / |G_r|^2 over the active rows, rho = (1 + max |H|) x kDevicePenaltyGrowth^j
// for j = 0 .. kDevicePenaltySteps - 1 (the first that factorises); only then the mu shift.
constexpr double kDevicePenaltyGrowth = 10.0;
constexpr int kDevicePenaltySteps = 9;
// Gradients through stage constraints in this compilation: the host's (CPU workers, and the CUDA
// backend's CPU pool, which gets every constrained problem: packing.cc DeviceSupportsBackward).
// The device pass leaves them out: instantiated in every backward kernel they multiplied nvcc's
// time for backward_launch_*.cu several times over for code no kernel runs.
#if defined(__CUDA_ARCH__)
constexpr bool kConstraintGradients = false;
#else
constexpr bool kConstraintGradients = true;
#endif

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
        arena_(arena),
        k_(view.problem.constraint_rows),
        has_rows_(view.settings[b].has_constraints != 0 && view.problem.constraint_rows > 0) {}

  MPC_HOST_DEVICE void Run() {
    BackwardResult& out = view_.results[b_];
    ZeroGradient();
    out.regularization = 0.0;
    out.condition_estimate = 0.0;
    out.active_controls = 0;
    out.active_constraints = 0;
    out.weakly_active_constraints = 0;
    out.status = kDeviceGradientOk;
    if (!Load(&out)) {
      out.status = kDeviceGradientNotFinite;
      return;
    }
    if constexpr (kConstraintGradients) {
      if (!LoadConstraints(&out) || !FactorizeForRhs(&out)) return;
    } else if (!Factorize(&out)) {
      return;
    }
    if (!SolveConstrainedLqr({RhsKind::kCotangent, 0})) {
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
    out.active_constraints = 0;
    out.weakly_active_constraints = 0;
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
    if constexpr (kConstraintGradients) {
      if (!LoadConstraints(&out)) return;
    }
    if (params && settings_.mode != kDeviceModeDefault && !LoadSecondOrder<SecondOrder::kMixed>()) {
      out.status = kDeviceGradientNotFinite;
      return;
    }
    if constexpr (kConstraintGradients) {
      if (!FactorizeForRhs(&out)) return;
    } else if (!Factorize(&out)) {
      return;
    }
    bool finite = true;
    for (int j = 0; want.x_init && j < n; ++j) {
      finite = SolveConstrainedLqr({RhsKind::kInitialState, j}) && finite;
      WriteColumn(view_.jac_x_init, j, n);
    }
    for (int k = 0; params && k < np; ++k) {
      finite = SolveConstrainedLqr({RhsKind::kParameter, k}) && finite;
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
  MPC_HOST_DEVICE int CostBase(int t) const { return SliceOf(in_.cost_slices, t) * nt * nt; }
  MPC_HOST_DEVICE S C(int t, int i, int j) const {
    return At(in_.cost_quadratic, CostBase(t) + i * nt + j);
  }
  // The pinned LQR's Hessian at step t: the cost's C_t plus, in kExact on a model, the dynamics'
  // curvature lambda_{t+1}' d2f/dtau2 (written by Load).
  // With smoothed constraints, also their penalty sum_r w_r G_r' G_r (SmoothingWeights), and
  // likewise the active rows' penalty when Factorize needs it (FactorizeWithRowPenalty).
  MPC_HOST_DEVICE S H(int t, int i, int j) const {
    S h = LagrangianHessian(t, i, j);
    if constexpr (kConstraintGradients) {
      if (constraint_curvature_on_ && !curvature_off_) h += ConstraintCurvature(t, i, j);
      if (smoothing_on_ || penalty_on_) return h + RowWeightHessian(t, i, j);
    }
    return h;
  }
  MPC_HOST_DEVICE S LagrangianHessian(int t, int i, int j) const {
    if constexpr (!Dynamics::kIsLinear) {
      if (settings_.mode == kDeviceModeExact && t + 1 < T_ && !curvature_off_) {
        return C(t, i, j) + At(view_.curvature, (t * nt + i) * nt + j);
      }
    }
    return C(t, i, j);
  }
  MPC_HOST_DEVICE S RowWeightHessian(int t, int i, int j) const {
    S s = 0;
    for (int r = 0; r < k_; ++r) s += At(view_.row_weight, t * k_ + r) * G(t, r, i) * G(t, r, j);
    return s;
  }

  // Row r of step t's stage constraint G_t tau_t <= h_t as packed (state bounds first): entry e of
  // G, its residual G tau - h at the point, and G dtau for the LQR's solution.
  MPC_HOST_DEVICE int Row(int t, int r) const { return SliceOf(in_.constraint_slices, t) * k_ + r; }
  MPC_HOST_DEVICE S G(int t, int r, int e) const {
    return At(in_.constraint_G, Row(t, r) * nt + e);
  }
  MPC_HOST_DEVICE S RowResidual(int t, int r) const {
    S s = 0;
    for (int e = 0; e < nt; ++e) s += G(t, r, e) * Tau(t, e);
    return s - At(in_.constraint_h, Row(t, r));
  }
  MPC_HOST_DEVICE S RowTimesStep(int t, int r) const {
    S s = 0;
    for (int e = 0; e < nt; ++e) s += G(t, r, e) * DeltaTau(t, e);
    return s;
  }
  // A zero row (a state bound at t = 0 or an infinite one, a batch's padding) never acts.
  MPC_HOST_DEVICE bool IsZeroRow(int t, int r) const {
    for (int e = 0; e < nt; ++e) {
      if (G(t, r, e) != S(0)) return false;
    }
    return true;
  }
  // The step t and row r of active row `index` (ActiveRows' order).
  MPC_HOST_DEVICE int ActiveStep(int index) const {
    return static_cast<int>(At(view_.active_rows, index)) / k_;
  }
  MPC_HOST_DEVICE int ActiveRow(int index) const {
    return static_cast<int>(At(view_.active_rows, index)) % k_;
  }
  MPC_HOST_DEVICE S c(int t, int i) const {
    return At(in_.cost_linear, SliceOf(in_.linear_slices, t) * nt + i);
  }
  MPC_HOST_DEVICE S Lower(int t, int j) const {
    return At(in_.u_lower, SliceOf(in_.bound_slices, t) * m + j);
  }
  MPC_HOST_DEVICE S Upper(int t, int j) const {
    return At(in_.u_upper, SliceOf(in_.bound_slices, t) * m + j);
  }
  // tau_t[i] = [x_t; u_t][i] of the point, and of the LQR's solution.
  MPC_HOST_DEVICE S Tau(int t, int i) const {
    return i < n ? At(view_.x, t * n + i) : At(view_.u, t * m + i - n);
  }
  MPC_HOST_DEVICE S DeltaTau(int t, int i) const {
    return i < n ? At(view_.dx, t * n + i) : At(view_.du, t * m + i - n);
  }

  // Step t's A_t and B_t (StepLinearizations): in place on a CPU worker.
  MPC_HOST_DEVICE StepLinearizations<S, Layout, Dynamics::kIsLinear, NX, NU, kFixedSize>
  Linearizations() const {
    return {view_.A, view_.B, in_.transition, in_.transition_slices, view_.problem.batch, b_, n, m};
  }

  MPC_HOST_DEVICE void ZeroGradient() {
    for (int i = 0; i < n; ++i) At(view_.grad_x_init, i) = 0;
    for (int e = 0; e < (has_rows_ ? T_ * k_ : 0); ++e) {
      At(view_.grad_constraint_h, e) = 0;
      for (int i = 0; i < nt; ++i) At(view_.grad_constraint_G, e * nt + i) = 0;
    }
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
      if (in_.terminal_cost_graph != nullptr) {
        const int p = in_.terminal_cost_graph->program().param_dim;
        for (int k = 0; k < p; ++k) view_.grad_terminal_cost_params[k] = 0;
      }
      if (in_.constraint_graph != nullptr) {
        const int p = in_.constraint_graph->program().param_dim;
        for (int k = 0; k < p; ++k) view_.grad_constraint_params[k] = 0;
      }
    }
  }

  // A stage or terminal cost graph (CPU workers only, like graph dynamics): whether the problem
  // has one.
  MPC_HOST_DEVICE bool HasCostGraph() const {
    if constexpr (kMayHaveCostGraph<S, Layout>) {
      return in_.cost_graph != nullptr || in_.terminal_cost_graph != nullptr;
    } else {
      return false;
    }
  }
  // Whether a graph gives step t's cost (CostGraphOfStep): C_t, c_t are then its quadratisation
  // and get no gradient.
  MPC_HOST_DEVICE bool GraphCostAt(int t) const {
    if constexpr (kMayHaveCostGraph<S, Layout>) {
      return CostGraphOfStep(in_, t).graph != nullptr;
    } else {
      return false;
    }
  }

  // The cost graphs' exact quadratisation at the point into C_t, c_t (C_t = H_t, c_t = g_t - H_t
  // tau_t, no projection: the implicit function theorem needs the true Hessian) at every step
  // whose cost is a graph, read by every step after this one as a quadratic cost's would be.
  MPC_HOST_DEVICE void QuadratiseCostGraph() {
    if constexpr (kMayHaveCostGraph<S, Layout>) {
      ScratchScope<S> scope(arena_);
      LocalArray<S, NX> x(arena_, n);
      LocalArray<S, NU> u(arena_, m);
      for (int t = 0; t < T_; ++t) {
        const StepCostGraph<S> cost = CostGraphOfStep(in_, t);
        if (cost.graph == nullptr) continue;
        for (int i = 0; i < n; ++i) x[i] = At(view_.x, t * n + i);
        for (int j = 0; j < m; ++j) u[j] = At(view_.u, t * m + j);
        S* H = in_.cost_hessian + t * nt * nt;
        S* c = in_.cost_gradient + t * nt;
        cost.graph->QuadratiseCost(x, u, n, cost.params, H, c, /*project=*/false);
      }
    }
  }

  // dL/dtheta_c = -sum_t d2l/dtheta dtau . dtau_t (theta_c enters only through the cost's
  // gradient, as c does): one forward-over-reverse sweep of the graph per step whose cost it
  // gives (the terminal graph's theta_T from t = T-1 alone).
  MPC_HOST_DEVICE void AssembleCostParamGradient() {
    if constexpr (kMayHaveCostGraph<S, Layout>) {
      ScratchScope<S> scope(arena_);
      LocalArray<S, NX> x(arena_, n), dx(arena_, n);
      LocalArray<S, NU> u(arena_, m), du(arena_, m);
      for (int t = 0; t < T_; ++t) {
        const StepCostGraph<S> cost = CostGraphOfStep(in_, t);
        if (cost.graph == nullptr) continue;
        for (int i = 0; i < n; ++i) {
          x[i] = At(view_.x, t * n + i);
          dx[i] = At(view_.dx, t * n + i);
        }
        for (int j = 0; j < m; ++j) {
          u[j] = At(view_.u, t * m + j);
          du[j] = At(view_.du, t * m + j);
        }
        cost.graph->SubtractCostParamGradient(
            x, u, n, cost.params, dx, du,
            cost.terminal ? view_.grad_terminal_cost_params : view_.grad_cost_params);
      }
    }
  }

  // A stage constraint graph (CPU workers only): whether the problem has one; its rows are the
  // last constraint_graph_rows of each step's.
  MPC_HOST_DEVICE bool HasConstraintGraph() const {
    if constexpr (kMayHaveCostGraph<S, Layout>) {
      return in_.constraint_graph != nullptr;
    } else {
      return false;
    }
  }
  MPC_HOST_DEVICE int FirstGraphRow() const { return k_ - in_.constraint_graph_rows; }

  // The constraint graph's rows linearised at the point (G_t = dg/dtau, h_t = G_t tau_t - g): the
  // rows the implicit function theorem holds as equalities where active, as affine rows are.
  MPC_HOST_DEVICE void LinearizeConstraintGraph() {
    if constexpr (kMayHaveCostGraph<S, Layout>) {
      for (int t = 0; t < T_; ++t) {
        const int row = t * k_ + FirstGraphRow();
        in_.constraint_graph->LinearizeConstraints(view_.x + t * n, view_.u + t * m,
                                                   in_.constraint_params, nt,
                                                   in_.graph_G + row * nt, in_.graph_h + row);
      }
    }
  }

  // kExact: sum_r nu_r d2g_r/dtau2 at every step (the constraint graph's share of the Hessian of
  // the Lagrangian), n+m forward-over-reverse sweeps per step with an active row. False when one
  // is not finite.
  MPC_HOST_DEVICE bool LoadConstraintCurvature() {
    if constexpr (kMayHaveCostGraph<S, Layout>) {
      bool finite = true;
      for (int t = 0; t < T_; ++t) {
        S* block = view_.constraint_curvature + t * nt * nt;
        const S* nu = view_.nu + t * k_ + FirstGraphRow();
        bool active = false;
        for (int r = 0; r < in_.constraint_graph_rows; ++r) active = active || nu[r] != S(0);
        for (int e = 0; e < nt * nt; ++e) block[e] = 0;
        if (!active) continue;
        in_.constraint_graph->ConstraintCurvature(view_.x + t * n, view_.u + t * m,
                                                  in_.constraint_params, nu, nt, block);
        for (int e = 0; e < nt * nt; ++e) finite = finite && IsFinite(block[e]);
      }
      constraint_curvature_on_ = true;
      return finite;
    } else {
      return true;
    }
  }
  MPC_HOST_DEVICE S ConstraintCurvature(int t, int i, int j) const {
    return At(view_.constraint_curvature, (t * nt + i) * nt + j);
  }

  // dL/dtheta_g: the rows' gradients dL/dG_t, dL/dh_t (AssembleGradient's) chained through the
  // linearisation G_t(theta_g), h_t(theta_g) at the point, step by step.
  MPC_HOST_DEVICE void AssembleConstraintParamGradient() {
    if constexpr (kMayHaveCostGraph<S, Layout>) {
      for (int t = 0; t < T_; ++t) {
        const int row = t * k_ + FirstGraphRow();
        in_.constraint_graph->AddConstraintParamGradient(
            view_.x + t * n, view_.u + t * m, in_.constraint_params, nt,
            view_.grad_constraint_G + row * nt, view_.grad_constraint_h + row,
            view_.grad_constraint_params);
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

  // Stores the linearisation A_t (n, n), B_t (n, m) of step t, written at
  // Linearizations().Targets; clears *finite on a NaN or Inf.
  MPC_HOST_DEVICE void StoreJacobians(int t, const S* A, const S* B, bool* finite) const {
    for (int e = 0; e < n * n; ++e) *finite = *finite && IsFinite(A[e]);
    for (int e = 0; e < n * m; ++e) *finite = *finite && IsFinite(B[e]);
    Linearizations().Store(t, A, B);
  }

  // Load's linearisation one step at a time: A_t, B_t (and, for a built-in model, df/dp into
  // view_.P), the largest dynamics residual into *residual; clears *finite on a NaN or Inf.
  MPC_HOST_DEVICE void LinearizeStepByStep(S* residual, bool* finite) {
    ScratchScope<S> scope(arena_);
    LocalArray<S, NX> x(arena_, n), next(arena_, n);
    LocalArray<S, NU> u(arena_, m);
    LocalArray<S, NX * NX> A(arena_, n * n);
    LocalArray<S, NX * NU> B(arena_, n * m);
    for (int t = 0; t + 1 < T_; ++t) {
      for (int i = 0; i < n; ++i) x[i] = At(view_.x, t * n + i);
      for (int j = 0; j < m; ++j) u[j] = At(view_.u, t * m + j);
      if constexpr (Dynamics::kIsLinear) {
        Linearizations().Load(t, A, B);
        const int offset_base = SliceOf(in_.offset_slices, t) * n;
        for (int i = 0; i < n; ++i) {
          S s = 0;
          for (int j = 0; j < n; ++j) s += A[i * n + j] * x[j];
          for (int j = 0; j < m; ++j) s += B[i * m + j] * u[j];
          if (in_.offset_slices > 0) s += At(in_.offset, offset_base + i);
          next[i] = s;
        }
      } else if constexpr (Dynamics::kIsGraph) {
        // No df/dtheta here: AssembleGradient takes its product with dlambda by reverse sweeps.
        const StepJacobians<S> F = Linearizations().Targets(t, A, B);
        in_.graph->StepWithJacobians(x, u, in_.params, settings_.dt, next, F.A, F.B);
        StoreJacobians(t, F.A, F.B, finite);
      } else {
        using Model = typename Dynamics::ModelType;
        constexpr int p = Dynamics::kParamDim;
        S params[p] = {}, P[NX * p] = {}, unused[NX] = {};
        for (int k = 0; k < p; ++k) params[k] = At(in_.params, k);
        const StepJacobians<S> F = Linearizations().Targets(t, A, B);
        StepWithJacobians<Model, MatrixOrder::kRowMajor, S>(x, u, params, settings_.dt, next, F.A,
                                                            F.B);
        StepParamJacobian<Model, S>(x, u, params, settings_.dt, unused, P);
        StoreJacobians(t, F.A, F.B, finite);
        for (int e = 0; e < n * p; ++e) {
          At(view_.P, t * n * p + e) = P[e];
          *finite = *finite && IsFinite(P[e]);
        }
      }
      for (int i = 0; i < n; ++i) {
        *residual = MaxKeepNan(*residual, Abs(next[i] - At(view_.x, (t + 1) * n + i)));
      }
    }
  }

  // LinearizeStepByStep of a built-in model kLinearizationLanes steps per evaluation
  // (Kernels::StepJacobiansInLanes and StepParamJacobianInLanes: a host's vector lanes).
  MPC_HOST_DEVICE void LinearizeModelInLanes(S* residual, bool* finite) {
    using Model = typename Dynamics::ModelType;
    constexpr int kLanes = Kernels::kLinearizationLanes;
    constexpr int p = Dynamics::kParamDim;
    ScratchScope<S> scope(arena_);
    LocalArray<S, kLanes * NX> x(arena_, kLanes * n), next(arena_, kLanes * n);
    LocalArray<S, kLanes * NU> u(arena_, kLanes * m);
    LocalArray<S, kLanes * NX * NX> A(arena_, kLanes * n * n);
    LocalArray<S, kLanes * NX * NU> B(arena_, kLanes * n * m);
    S params[p] = {}, P[kLanes * NX * p] = {};
    for (int q = 0; q < p; ++q) params[q] = At(in_.params, q);
    S* A_targets[kLanes];
    S* B_targets[kLanes];
    S* P_targets[kLanes];
    for (const StepGroup group : StepGroups<kLanes>(T_)) {
      for (int k = 0; k < group.count; ++k) {
        const int t = group.first + k;
        for (int i = 0; i < n; ++i) x[k * n + i] = At(view_.x, t * n + i);
        for (int j = 0; j < m; ++j) u[k * m + j] = At(view_.u, t * m + j);
        const StepJacobians<S> F = Linearizations().Targets(t, &A[k * n * n], &B[k * n * m]);
        A_targets[k] = F.A;
        B_targets[k] = F.B;
        P_targets[k] = &P[k * n * p];
      }
      Kernels::template StepJacobiansInLanes<Model>(x, u, params, settings_.dt, group.count,
                                                    A_targets, B_targets);
      Kernels::template StepParamJacobianInLanes<Model>(x, u, params, settings_.dt, group.count,
                                                        next, P_targets);
      for (int k = 0; k < group.count; ++k) {
        const int t = group.first + k;
        StoreJacobians(t, A_targets[k], B_targets[k], finite);
        for (int e = 0; e < n * p; ++e) {
          At(view_.P, t * n * p + e) = P_targets[k][e];
          *finite = *finite && IsFinite(P_targets[k][e]);
        }
        for (int i = 0; i < n; ++i) {
          *residual = MaxKeepNan(*residual, Abs(next[k * n + i] - At(view_.x, (t + 1) * n + i)));
        }
      }
    }
  }

  // The dynamics linearised at the point (and df/dp), the active set, the costates
  // lambda_t = C_{t,x:} tau_t + c_{t,x} + A_t' lambda_{t+1} and the residuals. Returns false when a
  // derivative or residual is not finite (the caller reports kNotFinite with a zero gradient).
  MPC_HOST_DEVICE bool Load(BackwardResult* out) {
    if (HasCostGraph()) QuadratiseCostGraph();
    if (HasConstraintGraph()) LinearizeConstraintGraph();
    bool finite = true;
    S dynamics_residual = 0;
    for (int i = 0; i < n; ++i) {
      dynamics_residual = MaxKeepNan(dynamics_residual, Abs(At(view_.x, i) - At(in_.x_init, i)));
    }
    if constexpr (Kernels::template kLinearizesInLanes<S, Dynamics, NX, NU>) {
      LinearizeModelInLanes(&dynamics_residual, &finite);
    } else {
      LinearizeStepByStep(&dynamics_residual, &finite);
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
    finite = Costates(&stationarity_residual) && finite;
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

  // The costates lambda_t = C_{t,x:} tau_t + c_{t,x} + A_t' lambda_{t+1} (+ G_{t,x}' nu_t once the
  // rows' multipliers are known) into the view, and the largest |stationarity| of a free control
  // into *stationarity_residual. False when one is not finite.
  MPC_HOST_DEVICE bool Costates(S* stationarity_residual) {
    ScratchScope<S> scope(arena_);
    LocalArray<S, NX> x(arena_, n), lambda(arena_, n), lambda_next(arena_, n);
    LocalArray<S, NU> u(arena_, m);
    LocalArray<S, NX * NX> A_copy(arena_, n * n);
    LocalArray<S, NX * NU> B_copy(arena_, n * m);
    bool finite = true;
    for (int t = T_ - 1; t >= 0; --t) {
      for (int i = 0; i < n; ++i) x[i] = At(view_.x, t * n + i);
      for (int j = 0; j < m; ++j) u[j] = At(view_.u, t * m + j);
      StepJacobians<const S> F = {A_copy, B_copy};
      if (t + 1 < T_) F = Linearizations().Read(t, A_copy, B_copy);
      for (int i = 0; i < n; ++i) {
        S s = 0;
        for (int j = 0; j < n; ++j) s += C(t, i, j) * x[j];
        for (int j = 0; j < m; ++j) s += C(t, n + j, i) * u[j];
        s += c(t, i);
        if (t + 1 < T_) {
          for (int l = 0; l < n; ++l) s += F.A[l * n + i] * lambda_next[l];
        }
        if (kConstraintGradients && multipliers_ready_) s += RowsTransposed(view_.nu, t, i);
        lambda[i] = s;
        finite = finite && IsFinite(s);
      }
      for (int i = 0; i < m; ++i) {
        S s = 0;
        for (int j = 0; j < n; ++j) s += C(t, n + i, j) * x[j];
        for (int j = 0; j < m; ++j) s += C(t, n + i, n + j) * u[j];
        s += c(t, n + i);
        if (t + 1 < T_) {
          for (int l = 0; l < n; ++l) s += F.B[l * m + i] * lambda_next[l];
        }
        if (kConstraintGradients && multipliers_ready_) s += RowsTransposed(view_.nu, t, n + i);
        if (At(view_.free, t * m + i) != S(0)) {
          *stationarity_residual = MaxKeepNan(*stationarity_residual, Abs(s));
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
    return finite;
  }

  // sum_r values_{t,r} G_{t,r,e}: the rows' part of stationarity for tau_t[e].
  MPC_HOST_DEVICE S RowsTransposed(const S* values, int t, int e) const {
    S s = 0;
    for (int r = 0; r < k_; ++r) s += At(values, t * k_ + r) * G(t, r, e);
    return s;
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
      // kLanes steps per evaluation where the kernel policy has lanes (SecondOrderInLanes), one
      // otherwise.
      constexpr int kLanes = kSecondOrderInLanes ? Kernels::kLinearizationLanes : 1;
      ScratchScope<S> scope(arena_);
      LocalArray<S, kLanes * NX> x(arena_, kLanes * n), lambda(arena_, kLanes * n);
      LocalArray<S, kLanes * NU> u(arena_, kLanes * m);
      LocalArray<S, kLanes*(NX + NU) * kCols> block(arena_, kLanes * size);
      bool finite = true;
      for (const StepGroup group : StepGroups<kLanes>(T_)) {
        for (int k = 0; k < group.count; ++k) {
          const int t = group.first + k;
          for (int i = 0; i < n; ++i) {
            x[k * n + i] = At(view_.x, t * n + i);
            lambda[k * n + i] = At(view_.lambda, (t + 1) * n + i);
          }
          for (int j = 0; j < m; ++j) u[k * m + j] = At(view_.u, t * m + j);
        }
        if constexpr (kSecondOrderInLanes) {
          SecondOrderInLanes<kBlock>(x, u, lambda, group.count, block, size);
        } else {
          SecondOrderAt<kBlock>(x, u, lambda, block);
        }
        for (int e = 0; e < group.count * size; ++e) {
          At(out, group.first * size + e) = block[e];
          finite = finite && IsFinite(block[e]);
        }
      }
      return finite;
    }
  }

  // Whether a built-in model's second derivatives take kLinearizationLanes steps per evaluation
  // (the kernel policy's lanes: a CPU worker).
  static constexpr bool kSecondOrderInLanes =
      Kernels::template kLinearizesInLanes<S, Dynamics, NX, NU>;

  // SecondOrderAt at `count` steps at once (kSecondOrderInLanes): x, lambda (count, n), u
  // (count, m); the blocks (count, size).
  template <SecondOrder kBlock>
  MPC_HOST_DEVICE void SecondOrderInLanes(const S* x, const S* u, const S* lambda, int count,
                                          S* blocks, int size) const {
    using Model = typename Dynamics::ModelType;
    constexpr int kLanes = Kernels::kLinearizationLanes;
    S params[Dynamics::kParamDim] = {};
    for (int k = 0; k < Dynamics::kParamDim; ++k) params[k] = At(in_.params, k);
    S* targets[kLanes];
    for (int k = 0; k < count; ++k) targets[k] = blocks + k * size;
    Kernels::template StepSecondDerivativesInLanes<Model, kBlock == SecondOrder::kMixed>(
        x, u, params, settings_.dt, lambda, count, targets);
  }

  // One step's block at (x, u) with costate lambda: second-order (curvature) or nested (mixed)
  // duals of a model's Step, or, for a graph's curvature, n+m forward-over-reverse sweeps of the
  // graph.
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

  // Riccati factorisation of the pinned LQR; when it is not positive definite, retried with the
  // active rows' penalty (FactorizeWithRowPenalty), and then without it with growing mu I on the
  // free controls' Quu until every stage is positive definite; writes the regularisation,
  // conditioning and status.
  MPC_HOST_DEVICE bool Factorize(BackwardResult* out) {
    S reg = 0;
    S condition = 0;
    penalty_on_ = false;
    bool factorized = FactorizeOnce(reg, &condition);
    if constexpr (kConstraintGradients) {
      if (!factorized) factorized = FactorizeWithRowPenalty(&condition);
    }
    while (!factorized) {
      reg = reg == S(0) ? S(kMinRegularization) : reg * S(kRegularizationFactor);
      if (reg > S(kMaxRegularization)) {
        out->status = kDeviceGradientNotFinite;
        out->regularization = reg;
        return false;
      }
      factorized = FactorizeOnce(reg, &condition);
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
    LocalArray<S, NX * NX> A_copy(arena_, n * n), VA(arena_, n * n), V(arena_, n * n),
        Qxx(arena_, n * n);
    LocalArray<S, NX * NU> B_copy(arena_, n * m), VB(arena_, n * m), Qux(arena_, m * n),
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
        const StepJacobians<const S> F = Linearizations().Read(t, A_copy, B_copy);
        Kernels::template AddDynamicsToQ<S>(F.A, F.B, V, zero, n, m, VA, VB, Qxx, Qux, Quu, qx, qu);
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
      // (max L_ii / min L_ii)^2 over the free controls, from the reciprocals CholeskyLower keeps
      // on L's diagonal (their ratio is the same).
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
      Kernels::template CholeskySolveInPlace<S>(L, m, K, n);
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
  // With stage constraints also: the cost's gradient C_t tau_t + c_t at the point (whose
  // constrained LQR has the rows' multipliers nu as its own) and active row `index`'s G_r' at its
  // step (a column of the Schur complement). `rows` adds sum_r dnu_r G_r' (the active rows held as
  // equalities, SolveConstrainedLqr).
  enum class RhsKind { kCotangent, kInitialState, kParameter, kCostGradient, kConstraintRow };
  struct Rhs {
    RhsKind kind;
    int index;
    bool rows = false;
  };

  MPC_HOST_DEVICE S LinearTerm(const Rhs& rhs, int t, int i) const {
    const S g = OwnLinearTerm(rhs, t, i);
    if constexpr (kConstraintGradients) {
      if (rhs.rows) return g + RowsTransposed(view_.dnu, t, i);
    }
    return g;
  }
  MPC_HOST_DEVICE S OwnLinearTerm(const Rhs& rhs, int t, int i) const {
    switch (rhs.kind) {
      case RhsKind::kCotangent:
        return i < n ? -At(view_.dl_dx, t * n + i) : -At(view_.dl_du, t * m + i - n);
      case RhsKind::kParameter:
        if (settings_.mode == kDeviceModeDefault || t + 1 >= T_) return 0;
        return At(view_.mixed, (t * nt + i) * Dynamics::kParamDim + rhs.index);
      case RhsKind::kCostGradient: {
        S s = c(t, i);
        for (int j = 0; j < nt; ++j) s += C(t, i, j) * Tau(t, j);
        return s;
      }
      case RhsKind::kConstraintRow:
        return t == ActiveStep(rhs.index) ? G(t, ActiveRow(rhs.index), i) : S(0);
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
    LocalArray<S, NX * NX> A_copy(arena_, n * n);
    LocalArray<S, NX * NU> B_copy(arena_, n * m);
    LocalArray<S, NX> v(arena_, n), w(arena_, n), qx(arena_, n), dx(arena_, n), next(arena_, n),
        mu(arena_, n), mu_next(arena_, n);
    LocalArray<S, NU> qu(arena_, m), k(arena_, m), du(arena_, m);
    LocalArray<S, NU * NU> L(arena_, m * m);
    const bool offsets = HasOffsets(rhs);
    for (int t = T_ - 1; t >= 0; --t) {
      for (int i = 0; i < n; ++i) qx[i] = LinearTerm(rhs, t, i);
      for (int i = 0; i < m; ++i) qu[i] = LinearTerm(rhs, t, n + i);
      if (t + 1 < T_) {
        const StepJacobians<const S> F = Linearizations().Read(t, A_copy, B_copy);
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
          for (int l = 0; l < n; ++l) s += F.A[l * n + i] * w[l];
          qx[i] += s;
        }
        for (int i = 0; i < m; ++i) {
          S s = 0;
          for (int l = 0; l < n; ++l) s += F.B[l * m + i] * w[l];
          qu[i] += s;
        }
      }
      for (int i = 0; i < m; ++i) {
        if (At(view_.free, t * m + i) == S(0)) qu[i] = 0;
        k[i] = -qu[i];
      }
      for (int e = 0; e < m * m; ++e) L[e] = At(view_.L, t * m * m + e);
      Kernels::template CholeskySolveInPlace<S>(L, m, k, 1);
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
        const StepJacobians<const S> F = Linearizations().Read(t, A_copy, B_copy);
        for (int i = 0; i < n; ++i) {
          S s = 0;
          for (int j = 0; j < n; ++j) s += F.A[i * n + j] * dx[j];
          for (int j = 0; j < m; ++j) s += F.B[i * m + j] * du[j];
          if (offsets) s += Offset(rhs, t, i);
          next[i] = s;
        }
        for (int i = 0; i < n; ++i) dx[i] = next[i];
      }
    }
    if (rhs.kind != RhsKind::kCotangent) return finite;
    for (int t = T_ - 1; t >= 0; --t) {
      StepJacobians<const S> F = {A_copy, B_copy};
      if (t + 1 < T_) F = Linearizations().Read(t, A_copy, B_copy);
      for (int i = 0; i < n; ++i) {
        S s = LinearTerm(rhs, t, i);
        for (int j = 0; j < n; ++j) s += H(t, i, j) * At(view_.dx, t * n + j);
        for (int j = 0; j < m; ++j) s += H(t, n + j, i) * At(view_.du, t * m + j);
        if (t + 1 < T_) {
          for (int l = 0; l < n; ++l) s += F.A[l * n + i] * mu_next[l];
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

  // ---- Stage constraints (has_rows_): the active rows as equalities of the LQR. ----
  //
  // A row is active when G tau - h >= -active_tolerance at the point (and is not a zero row). Its
  // multiplier nu is not sent (Backward is stateless and the solve's augmented-Lagrangian
  // estimates are only as good as its tolerance): it is recomputed exactly as the multiplier of
  // the constrained LQR whose linear term is the cost's gradient at the point (at a KKT point that
  // LQR's solution is zero and its multipliers are (lambda, nu), whatever its Hessian). The active
  // rows E enter every LQR by a Schur complement over the pinned LQR's factorisation: with
  // dtau(g) the pinned LQR's solution for linear term g and N = -E dtau(E') (P x P, positive
  // definite when the rows are independent on the directions the dynamics leave free), the
  // constrained solution is dtau(g + E' y) with N y = E dtau(g) - one solve per row to form N, and
  // two per right-hand side. With smoothing > 0 no row is hard: each row's relaxed complementarity
  // nu~ s~ = smoothing adds w G_r' G_r to the Hessian (SmoothingWeights) and dnu = w G_r dtau.

  // Active set, multipliers, costates with them, weak rows and the smoothing's weights. False
  // (status written) when the rows cannot be held: more active rows than max_active_rows, or a
  // value that is not finite.
  MPC_HOST_DEVICE bool LoadConstraints(BackwardResult* out) {
    if (!has_rows_) return true;
    active_count_ = 0;
    for (int t = 0; t < T_; ++t) {
      for (int r = 0; r < k_; ++r) {
        At(view_.nu, t * k_ + r) = 0;
        At(view_.dnu, t * k_ + r) = 0;
        At(view_.row_weight, t * k_ + r) = 0;
        if (IsZeroRow(t, r) || !(RowResidual(t, r) >= -S(settings_.active_tolerance))) continue;
        if (active_count_ == view_.max_active_rows) {
          out->status = kDeviceGradientNotFinite;
          out->active_constraints = active_count_ + 1;
          return false;
        }
        At(view_.active_rows, active_count_++) = static_cast<S>(t * k_ + r);
      }
    }
    out->active_constraints = active_count_;
    if (active_count_ > 0) {
      curvature_off_ = true;  // the multipliers do not depend on the Hessian: C_t serves
      const bool ok = Factorize(out) && BuildSchur(out) && SolveMultipliers();
      curvature_off_ = false;
      if (!ok) {
        out->status = kDeviceGradientNotFinite;
        return false;
      }
      multipliers_ready_ = true;
      S stationarity = 0;
      bool finite = Costates(&stationarity);
      if (settings_.mode == kDeviceModeExact && HasConstraintGraph()) {
        finite = LoadConstraintCurvature() && finite;
      }
      if constexpr (!Dynamics::kIsLinear) {
        if (settings_.mode == kDeviceModeExact) {
          finite = LoadSecondOrder<SecondOrder::kCurvature>() && finite;
        }
      }
      if (!finite) {
        out->status = kDeviceGradientNotFinite;
        return false;
      }
      out->stationarity_residual = stationarity;
    }
    out->weakly_active_constraints = CountWeakRows();
    if (settings_.smoothing > 0) SmoothingWeights();
    // The factors of the multipliers' LQR serve the right-hand sides when the Hessian is the same.
    const bool exact_model = !Dynamics::kIsLinear && settings_.mode == kDeviceModeExact;
    factorized_ = active_count_ > 0 && !exact_model && !smoothing_on_ && !constraint_curvature_on_;
    return true;
  }

  // The pinned LQR with rho sum_r G_r' G_r / |G_r|^2 over the active rows added to its Hessian,
  // for the growing rho of kDevicePenaltyGrowth; false (and the penalty off) when none
  // factorises. Every LQR of the pass holds the active rows as equalities, E dtau = 0, where the
  // penalty's value and gradient vanish: the constrained solution and its multipliers are those
  // of the LQR without it, which may be indefinite off the rows' surface while the problem with
  // them held is positive definite (for a large enough rho it then factorises: Finsler's lemma).
  MPC_HOST_DEVICE bool FactorizeWithRowPenalty(S* condition) {
    penalty_on_ = false;
    if (active_count_ == 0 || smoothing_on_) return false;
    S scale = 0;
    for (int t = 0; t < T_; ++t) {
      for (int e = 0; e < nt * nt; ++e) {
        scale = MaxKeepNan(scale, Abs(LagrangianHessian(t, e / nt, e % nt)));
      }
    }
    S rho = S(1) + scale;
    for (int step = 0; step < kDevicePenaltySteps; ++step, rho *= S(kDevicePenaltyGrowth)) {
      for (int index = 0; index < active_count_; ++index) {
        const int t = ActiveStep(index), r = ActiveRow(index);
        S norm2 = 0;
        for (int e = 0; e < nt; ++e) norm2 += G(t, r, e) * G(t, r, e);
        At(view_.row_weight, t * k_ + r) = rho / norm2;
      }
      penalty_on_ = true;
      if (FactorizeOnce(S(0), condition)) return true;
    }
    penalty_on_ = false;
    return false;
  }

  // Active rows with a multiplier ~0 (or a dependent row, held with nu = 0), and inactive rows
  // within kDeviceNearlyActiveFactor tolerances of the bound: where the solution map has a kink.
  MPC_HOST_DEVICE int CountWeakRows() const {
    S largest = 0;
    for (int e = 0; e < T_ * k_; ++e) largest = MaxKeepNan(largest, Abs(At(view_.nu, e)));
    const S weak = S(kDeviceWeakMultiplier) * (S(1) + largest);
    const S near = -S(kDeviceNearlyActiveFactor) * S(settings_.active_tolerance);
    int count = 0;
    for (int index = 0; index < active_count_; ++index) {
      const int t = ActiveStep(index), r = ActiveRow(index);
      if (!(At(view_.nu, t * k_ + r) > weak)) ++count;
    }
    for (int t = 0; t < T_; ++t) {
      for (int r = 0; r < k_; ++r) {
        if (IsZeroRow(t, r)) continue;
        const S residual = RowResidual(t, r);
        if (residual < -S(settings_.active_tolerance) && residual >= near) ++count;
      }
    }
    return count;
  }

  // The relaxed complementarity of every row: with slack s = h - G tau and d = nu - s, the pair
  // nu~ s~ = smoothing, nu~ - s~ = d (a smoothed min(nu, s) = 0), and the weight w = nu~ / s~ of
  // the linearised nu~ ds + s~ dnu = 0 (dnu = w G dtau). As smoothing -> 0 an active row's
  // weight grows as nu^2 / smoothing (the equality) and an inactive row's vanishes as
  // smoothing / s^2. The rows' multipliers become nu~.
  MPC_HOST_DEVICE void SmoothingWeights() {
    using std::sqrt;
    const S tau = S(settings_.smoothing);
    for (int t = 0; t < T_; ++t) {
      for (int r = 0; r < k_; ++r) {
        if (IsZeroRow(t, r)) continue;
        const S d = At(view_.nu, t * k_ + r) + RowResidual(t, r);
        const S root = sqrt(d * d + S(4) * tau);
        // Each of nu~, s~ from the side without cancellation.
        const S nu = d >= S(0) ? (d + root) / S(2) : tau / ((root - d) / S(2));
        const S slack = tau / nu;
        At(view_.row_weight, t * k_ + r) = nu / slack;
        At(view_.nu, t * k_ + r) = nu;
      }
    }
    smoothing_on_ = true;
  }

  // The factorisation the right-hand sides need, unless LoadConstraints' serves (and the Schur
  // complement over it).
  MPC_HOST_DEVICE bool FactorizeForRhs(BackwardResult* out) {
    if (factorized_) return true;
    if (!Factorize(out)) return false;
    if (!BuildSchur(out)) {
      out->status = kDeviceGradientNotFinite;
      return false;
    }
    return true;
  }

  // N = -E dtau(E') over the active rows (symmetrised) and its Cholesky factor, retried with a
  // growing shift when dependent rows make it singular (status kRegularized). A row no direction
  // moves (N_ii ~ 0) is decoupled with the identity: its multiplier stays zero.
  MPC_HOST_DEVICE bool BuildSchur(BackwardResult* out) {
    const int P = active_count_;
    if (P == 0 || smoothing_on_) return true;
    for (int j = 0; j < P; ++j) {
      if (!SolveLqr({RhsKind::kConstraintRow, j})) return false;
      for (int i = 0; i < P; ++i) At(view_.schur, i * P + j) = -ActiveRowTimesStep(i);
    }
    S largest = 0;
    for (int i = 0; i < P; ++i) {
      for (int j = 0; j < i; ++j) {
        const S mean = (At(view_.schur, i * P + j) + At(view_.schur, j * P + i)) / S(2);
        At(view_.schur, i * P + j) = mean;
        At(view_.schur, j * P + i) = mean;
      }
      largest = MaxKeepNan(largest, Abs(At(view_.schur, i * P + i)));
    }
    if (!IsFinite(largest)) return false;
    for (int i = 0; i < P; ++i) {
      if (At(view_.schur, i * P + i) > S(kDeviceDependentRow) * (S(1) + largest)) continue;
      for (int j = 0; j < P; ++j) {
        At(view_.schur, i * P + j) = 0;
        At(view_.schur, j * P + i) = 0;
      }
      At(view_.schur, i * P + i) = 1;
    }
    S shift = 0;
    while (!FactorSchur(shift)) {
      shift = shift == S(0) ? S(kMinRegularization) * (S(1) + largest)
                            : shift * S(kRegularizationFactor);
      if (shift > S(kMaxRegularization)) return false;
    }
    if (shift > S(0)) {
      out->status = kDeviceGradientRegularized;
      out->regularization = MaxKeepNan(S(out->regularization), shift);
    }
    return true;
  }

  // G_r dtau of active row `index`.
  MPC_HOST_DEVICE S ActiveRowTimesStep(int index) const {
    return RowTimesStep(ActiveStep(index), ActiveRow(index));
  }
  // A row N decoupled by BuildSchur (an identity row and column).
  MPC_HOST_DEVICE bool IsDecoupled(int index) const {
    const int P = active_count_;
    for (int j = 0; j < P; ++j) {
      if (j != index && At(view_.schur, index * P + j) != S(0)) return false;
    }
    return At(view_.schur, index * P + index) == S(1);
  }

  // Cholesky of N + shift I into schur_factor (the view's layout, hence not CholeskyLower).
  MPC_HOST_DEVICE bool FactorSchur(S shift) {
    using std::sqrt;
    const int P = active_count_;
    for (int j = 0; j < P; ++j) {
      S d = At(view_.schur, j * P + j) + shift;
      for (int l = 0; l < j; ++l)
        d -= At(view_.schur_factor, j * P + l) * At(view_.schur_factor, j * P + l);
      if (!(d > S(0))) return false;
      const S ljj = sqrt(d);
      At(view_.schur_factor, j * P + j) = ljj;
      for (int i = j + 1; i < P; ++i) {
        S v = At(view_.schur, i * P + j);
        for (int l = 0; l < j; ++l)
          v -= At(view_.schur_factor, i * P + l) * At(view_.schur_factor, j * P + l);
        At(view_.schur_factor, i * P + j) = v / ljj;
      }
    }
    return true;
  }

  // y = N^-1 E dtau for the last SolveLqr into `values` (T, k) at the active rows (zero on a
  // decoupled one). False when y is not finite.
  MPC_HOST_DEVICE bool SolveRows(S* values) {
    const int P = active_count_;
    for (int i = 0; i < P; ++i)
      At(view_.row_rhs, i) = IsDecoupled(i) ? S(0) : ActiveRowTimesStep(i);
    for (int i = 0; i < P; ++i) {
      S v = At(view_.row_rhs, i);
      for (int l = 0; l < i; ++l) v -= At(view_.schur_factor, i * P + l) * At(view_.row_rhs, l);
      At(view_.row_rhs, i) = v / At(view_.schur_factor, i * P + i);
    }
    bool finite = true;
    for (int i = P - 1; i >= 0; --i) {
      S v = At(view_.row_rhs, i);
      for (int l = i + 1; l < P; ++l) v -= At(view_.schur_factor, l * P + i) * At(view_.row_rhs, l);
      v /= At(view_.schur_factor, i * P + i);
      At(view_.row_rhs, i) = v;
      At(values, ActiveStep(i) * k_ + ActiveRow(i)) = v;
      finite = finite && IsFinite(v);
    }
    return finite;
  }

  // The rows' multipliers nu at the point (see above).
  MPC_HOST_DEVICE bool SolveMultipliers() {
    return SolveLqr({RhsKind::kCostGradient, 0}) && SolveRows(view_.nu);
  }

  // The LQR for one right-hand side with the active rows held (dnu their multipliers' part), or
  // with the smoothing's penalty in the Hessian (dnu = w G dtau).
  MPC_HOST_DEVICE bool SolveConstrainedLqr(const Rhs& rhs) {
    if constexpr (kConstraintGradients) {
      if (has_rows_) return SolveWithRows(rhs);
    }
    return SolveLqr(rhs);
  }
  MPC_HOST_DEVICE bool SolveWithRows(const Rhs& rhs) {
    if (smoothing_on_ || active_count_ == 0) {
      const bool finite = SolveLqr(rhs);
      for (int t = 0; t < T_; ++t) {
        for (int r = 0; r < k_; ++r) {
          const S w = At(view_.row_weight, t * k_ + r);
          At(view_.dnu, t * k_ + r) = w == S(0) ? S(0) : w * RowTimesStep(t, r);
        }
      }
      return finite;
    }
    for (int e = 0; e < T_ * k_; ++e) At(view_.dnu, e) = 0;
    if (!SolveLqr(rhs) || !SolveRows(view_.dnu)) return false;
    return SolveLqr({rhs.kind, rhs.index, /*rows=*/true});
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
      if (GraphCostAt(t)) continue;
      const int dC = SliceOf(in_.cost_slices, t) * nt * nt;
      const int dc = SliceOf(in_.linear_slices, t) * nt;
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
        const int dF = SliceOf(in_.transition_slices, t) * n * nt;
        const int df = SliceOf(view_.offset_gradient_slices, t) * n;
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
      AssembleModelParamGradient();
    }
    if (HasCostGraph()) AssembleCostParamGradient();
    if constexpr (kConstraintGradients) {
      if (has_rows_) AssembleConstraintGradient();
    }
    // After the rows' gradients, which it chains through the graph.
    if (HasConstraintGraph()) AssembleConstraintParamGradient();
  }

  // The rows' part, as the dynamics' (E, -h, nu) in the place of (F, f, lambda):
  // dL/dh_r = dnu_r, dL/dG_r = -(dnu_r tau' + nu_r dtau') at each step (zero on inactive rows).
  MPC_HOST_DEVICE void AssembleConstraintGradient() {
    for (int t = 0; t < T_; ++t) {
      for (int r = 0; r < k_; ++r) {
        const int e = t * k_ + r;
        const S dnu = At(view_.dnu, e), nu = At(view_.nu, e);
        if (dnu == S(0) && nu == S(0)) continue;
        At(view_.grad_constraint_h, e) = dnu;
        for (int i = 0; i < nt; ++i) {
          At(view_.grad_constraint_G, e * nt + i) = -(dnu * Tau(t, i) + nu * DeltaTau(t, i));
        }
      }
    }
  }

  // dL/dp = -sum_t (df/dp' dlambda_{t+1} + M_t' dtau_t); M_t = 0 in mpc.pytorch's definition.
  MPC_HOST_DEVICE void AssembleModelParamGradient() {
    if constexpr (!Dynamics::kIsLinear && !Dynamics::kIsGraph) {
      using Model = typename Dynamics::ModelType;
      constexpr int p = Dynamics::kParamDim;
      S params[p] = {};
      for (int k = 0; k < p; ++k) params[k] = At(in_.params, k);
      // kLanes steps per evaluation of the mixed directional derivative where the kernel policy
      // has lanes, one otherwise.
      constexpr int kLanes = kSecondOrderInLanes ? Kernels::kLinearizationLanes : 1;
      S x[kLanes * NX] = {}, u[kLanes * NU] = {}, lambda[kLanes * NX] = {}, dx[kLanes * NX] = {},
                   du[kLanes * NU] = {}, mixed[kLanes * p] = {};
      const bool full_chain = settings_.mode != kDeviceModeDefault;
      for (const StepGroup group : StepGroups<kLanes>(T_)) {
        if (full_chain) {
          for (int k = 0; k < group.count; ++k) {
            const int t = group.first + k;
            for (int i = 0; i < n; ++i) {
              x[k * n + i] = At(view_.x, t * n + i);
              dx[k * n + i] = At(view_.dx, t * n + i);
              lambda[k * n + i] = At(view_.lambda, (t + 1) * n + i);
            }
            for (int j = 0; j < m; ++j) {
              u[k * m + j] = At(view_.u, t * m + j);
              du[k * m + j] = At(view_.du, t * m + j);
            }
          }
          if constexpr (kSecondOrderInLanes) {
            S* targets[kLanes];
            for (int k = 0; k < group.count; ++k) targets[k] = mixed + k * p;
            Kernels::template StepMixedDirectionalInLanes<Model>(x, u, params, settings_.dt, lambda,
                                                                 dx, du, group.count, targets);
          } else {
            StepMixedDirectional<Model>(x, u, params, settings_.dt, lambda, dx, du, mixed);
          }
        }
        for (int k = 0; k < group.count; ++k) {
          const int t = group.first + k;
          for (int q = 0; q < p; ++q) {
            S s = 0;
            for (int i = 0; i < n; ++i) {
              s += At(view_.P, t * n * p + q * n + i) * At(view_.mu, (t + 1) * n + i);
            }
            if (full_chain) s += mixed[k * p + q];
            At(view_.grad_params, q) -= s;
          }
        }
      }
    }
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
  ScratchArena<S>* const arena_;    // null with compile-time sizes
  const int k_;                     // stage constraint rows per step (view.problem.constraint_rows)
  const bool has_rows_;             // the problem has stage constraints
  int active_count_ = 0;            // active rows (LoadConstraints)
  bool curvature_off_ = false;      // H_t = C_t while the rows' multipliers are computed
  bool multipliers_ready_ = false;  // nu is known: the costates include G' nu
  // kExact with a constraint graph: H_t includes sum_r nu_r d2g_r/dtau2 (LoadConstraintCurvature).
  bool constraint_curvature_on_ = false;
  bool smoothing_on_ = false;  // the rows are in H by their smoothing weights
  bool penalty_on_ = false;    // the active rows are in H by their penalty (Factorize)
  bool factorized_ = false;    // LoadConstraints' factors serve the right-hand sides
};

#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#pragma GCC diagnostic pop
#endif

}  // namespace mpc::core

#endif  // MPC_SOLVER_CORE_IMPLICIT_BACKWARD_H_
