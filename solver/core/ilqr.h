#ifndef MPC_SOLVER_CORE_ILQR_H_
#define MPC_SOLVER_CORE_ILQR_H_

// The box-constrained iLQR of one problem (DESIGN §3), written once: what one CUDA thread runs
// (solver/cuda/ilqr_kernels.cuh) and what a CPU worker runs (solver/cpu/). Steps named as in the
// math: Rollout, Linearize, BackwardPass (Riccati with Levenberg-Marquardt regularisation and the
// projected-Newton box QP), LineSearch, the best-iterate rules and the statuses. Trajectories live
// in the batch buffers (batch_view.h); small matrices in LocalArrays (scratch.h): registers or the
// stack with compile-time sizes, the workspace's arena with run-time ones. No heap, no
// exceptions, no Eigen, no absl.

#include <cmath>
#include <type_traits>

#include "solver/core/batch_view.h"
#include "solver/core/lanes.h"
#include "solver/core/problem_data.h"
#include "solver/core/regularization.h"
#include "solver/core/scratch.h"
#include "solver/core/small_linalg.h"
#include "solver/dual.h"
#include "solver/host_device.h"
#include "solver/models/dynamics_tags.h"
#include "solver/models/model_derivatives.h"

namespace mpc::core {

// Projected-Newton box QP: iteration cap, backtracking cap, Armijo constant.
constexpr int kMaxBoxQpIterations = 50;
constexpr int kMaxBoxQpBacktracks = 40;
constexpr double kBoxQpArmijo = 0.1;

// The augmented Lagrangian's penalty: its first value, its cap, and the residual decrease per
// round (factor) below which it grows tenfold.
constexpr double kInitialPenalty = 1.0;
constexpr double kMaxPenalty = 1e8;
constexpr double kPenaltyProgress = 0.25;

// Steps of a linearisation or backward pass between two stop checks: one long iteration (a long
// horizon, a large state) stops within a fraction of itself, a short one checks at most once.
constexpr int kStopCheckStride = 32;

// The transitions t = 0 .. T-2 of a horizon T in groups of kLanes consecutive steps, the last
// group possibly shorter: `for (const StepGroup group : StepGroups<kLanes>(T))` visits steps
// group.first .. group.first + group.count - 1 (a host's kernels evaluate a model at several steps
// at once; kLanes = 1 is one step at a time).
struct StepGroup {
  int first;
  int count;
};
template <int kLanes>
class StepGroups {
 public:
  class Iterator {
   public:
    MPC_HOST_DEVICE Iterator(int first, int transitions)
        : first_(first), transitions_(transitions) {}
    MPC_HOST_DEVICE StepGroup operator*() const {
      const int left = transitions_ - first_;
      return {first_, left < kLanes ? left : kLanes};
    }
    MPC_HOST_DEVICE Iterator& operator++() {
      first_ += kLanes;
      return *this;
    }
    MPC_HOST_DEVICE bool operator!=(const Iterator& end) const { return first_ < end.first_; }

   private:
    int first_;
    int transitions_;
  };
  MPC_HOST_DEVICE explicit StepGroups(int horizon) : transitions_(horizon - 1) {}
  MPC_HOST_DEVICE Iterator begin() const { return {0, transitions_}; }
  MPC_HOST_DEVICE Iterator end() const { return {transitions_, transitions_}; }

 private:
  int transitions_;
};

// GCC 12 at -O3 reports the small local arrays below as maybe-uninitialized when their loop bounds
// are run-time sizes (they are zero-initialised); the warning is a known false positive there.
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// One problem's solve. Construct, then Solve(); everything it needs is in the view.
// Sizes: with kFixedSize, NX and NU are the problem's n and m (compile-time loop bounds); without,
// they are capacities and n, m come from the view (n <= NX, m <= NU); NX = NU = kDynamic takes n,
// m from the view and the small matrices from `arena` (ScratchCapacity(n, m) scalars, host only).
// Kernels: the O(n^3) steps of a Riccati stage (small_linalg.h's LoopKernels, or a host-only
// implementation of the same interface). Trial: the scalar of the line search's trial rollouts
// (lanes.h): S, one step size at a time, or a host's lane type with compile-time sizes, as many
// step sizes at once as it has lanes (into view.trial_lanes; one at a time where that is null, or
// the problem has stage constraints or a cost graph).
template <typename S, class Dynamics, int NX, int NU, bool kFixedSize = true,
          class Layout = Interleaved, class Kernels = LoopKernels, typename Trial = S>
class ProblemSolver : private ProblemData<S, Dynamics, NX, NU, kFixedSize, Layout> {
  using Data = ProblemData<S, Dynamics, NX, NU, kFixedSize, Layout>;
  // State, control and tau sizes (named as in the math, like NX and NU).
  using Data::AllFinite;
  using Data::At;
  using Data::b_;
  using Data::ConstraintCoefficient;
  using Data::ConstraintValue;
  using Data::Copy;
  using Data::CostBase;
  using Data::CostMatrix;
  using Data::CostVector;
  using Data::dt_;
  using Data::has_bounds_;
  using Data::HasConstraintGraph;
  using Data::HasCostGraph;
  using Data::LinearBase;
  using Data::LinearizeConstraintGraph;
  using Data::LoadU;
  using Data::LoadX;
  using Data::Lower;
  using Data::m;
  using Data::Max;
  using Data::Min;
  using Data::n;
  using Data::nt;
  using Data::OffsetBase;
  using Data::params_;
  using Data::settings_;
  using Data::T_;
  using Data::TransitionBase;
  using Data::Upper;
  using Data::view_;

 public:
  MPC_HOST_DEVICE ProblemSolver(const IlqrBatchView<S>& view, int b,
                                ScratchArena<S>* arena = nullptr)
      : Data(view, b),
        arena_(arena),
        V_(arena, static_cast<long long>(n) * n),
        v_(arena, n),
        Quu_(arena, static_cast<long long>(m) * m),
        qu_(arena, m),
        H_(arena, static_cast<long long>(m) * m),
        L_(arena, static_cast<long long>(m) * m),
        trust_region_(settings_.delta_u > 0),
        has_constraints_(settings_.has_constraints != 0 && view.constraint_rows > 0) {
    x_ = view.x;
    u_ = view.u;
    x_try_ = view.x_try;
    u_try_ = view.u_try;
  }

  MPC_HOST_DEVICE void Solve() {
    Load();
    ProblemResult& out = view_.results[b_];
    out.max_violation = 0.0;
    out.cost_projections = 0;
    S cost = 0;
    const DeviceStatus status =
        has_constraints_ ? SolveConstrained(&cost, &out) : Iterate(&cost, &out);
    Finish(cost, status, &out);
  }

 private:
  enum PassResult { kOk, kNotPositiveDefinite, kNotFinite, kStopped };
  // Whether some shapes take the kernels' packed products, which read the problem's data in place.
  static constexpr bool kMayPack = Layout::kAdjacentElements && Kernels::kPacksLargeShapes;

  // The iLQR from the current controls u_ until convergence, a stall or max_iterations; leaves
  // the returned iterate in best_x, best_u and its cost (with the constraints' penalty, if any) in
  // *cost.
  MPC_HOST_DEVICE DeviceStatus Iterate(S* cost_out, ProblemResult* out_ptr) {
    ProblemResult& out = *out_ptr;
    out.iterations = 0;
    out.regularization = 0.0;
    out.step_norm = Infinity();

    S cost = Rollout();
    if (!IsFinite(cost) || !AllFinite(x_, T_ * n)) {
      Copy(x_, view_.best_x, T_ * n);
      Copy(u_, view_.best_u, T_ * m);
      *cost_out = cost;
      return kDeviceNotFinite;
    }

    bool have_best = false;
    S best_cost = 0;
    S best_step_norm = Infinity();
    int not_improved = 0;
    bool stalled = false;
    bool broke_down = false;
    mu_ = 0;
    for (int iteration = 1; iteration <= settings_.max_iterations; ++iteration) {
      if (StopRequested()) break;
      out.iterations = iteration;
      if (!Linearize()) break;
      const PassResult pass = BackwardPassWithRegularization();
      if (pass != kOk) {
        broke_down = pass == kNotFinite;
        break;
      }
      S step_norm = 0;
      const bool finite = LineSearch(cost, &cost, &step_norm);
      ++not_improved;
      if (finite && (!have_best || cost <= best_cost + S(settings_.best_cost_eps))) {
        have_best = true;
        best_cost = cost;
        best_step_norm = step_norm;
        Copy(x_, view_.best_x, T_ * n);
        Copy(u_, view_.best_u, T_ * m);
        not_improved = 0;
      }
      if (finite && step_norm < S(settings_.tolerance)) break;
      if (not_improved > settings_.not_improved_limit) {
        stalled = true;
        break;
      }
      // A step that went well lets the regularisation relax towards plain Newton.
      if (finite) {
        mu_ /= S(kRegularizationFactor);
        if (mu_ < S(kMinRegularization)) mu_ = 0;
      } else if (!IncreaseRegularization()) {
        stalled = true;
        break;
      }
    }
    out.regularization = mu_;
    if (!have_best) {
      // Only reachable when the very first backward pass or line search failed.
      Copy(x_, view_.best_x, T_ * n);
      Copy(u_, view_.best_u, T_ * m);
      *cost_out = cost;
      return broke_down ? kDeviceNotFinite
                        : (stop_requested_ ? kDeviceDeadline : kDeviceLinesearchFailed);
    }
    out.step_norm = best_step_norm;
    *cost_out = best_cost;
    if (best_step_norm < S(settings_.tolerance)) return kDeviceConverged;
    if (stop_requested_) return kDeviceDeadline;
    if (broke_down) return kDeviceNotFinite;
    if (stalled) return kDeviceLinesearchFailed;
    return kDeviceMaxIterations;
  }

  // Stage constraints by an augmented Lagrangian around the iLQR (as ALTRO and trajax): round
  // after round, the iLQR minimises the cost plus sum (max(0, lambda + rho c)^2 - lambda^2) /
  // (2 rho) over the rows c = G_t tau_t - h_t from the last round's answer, then lambda <- max(0,
  // lambda + rho c), and rho grows tenfold when the residual max |max(c, -lambda / rho)| (the
  // violation and the complementarity of the old multipliers at once) fell by less than 4x.
  // Control bounds stay exact in the box QP. Done when the iLQR converged and the residual is
  // within constraint_tolerance; a violation beyond it after the last round is INFEASIBLE, with
  // the answer of the largest penalty (the least violating one the rounds found).
  MPC_HOST_DEVICE DeviceStatus SolveConstrained(S* cost, ProblemResult* out) {
    for (int e = 0; e < T_ * view_.constraint_rows; ++e) At(view_.multipliers, e) = 0;
    rho_ = S(kInitialPenalty);
    const S tolerance = S(settings_.constraint_tolerance);
    int iterations = 0;
    DeviceStatus status = kDeviceMaxIterations;
    S residual = Infinity();
    S violation = 0;
    for (int round = 0; round < settings_.max_constraint_iterations; ++round) {
      status = Iterate(cost, out);
      iterations += out->iterations;
      Copy(view_.best_x, x_, T_ * n);
      Copy(view_.best_u, u_, T_ * m);
      const S previous = residual;
      residual = UpdateMultipliers(&violation);
      if (!IsFinite(residual)) status = kDeviceNotFinite;  // a constraint graph's NaN
      if (status == kDeviceNotFinite || status == kDeviceDeadline) break;
      if (status == kDeviceConverged && residual <= tolerance) break;
      if (residual > S(kPenaltyProgress) * previous) rho_ = Min(rho_ * S(10), S(kMaxPenalty));
    }
    out->iterations = iterations;
    out->max_violation = violation;
    *cost = TrajectoryCost();
    if (status == kDeviceNotFinite || status == kDeviceDeadline) return status;
    if (!(violation <= tolerance)) return kDeviceInfeasible;
    if (status == kDeviceConverged && !(residual <= tolerance)) return kDeviceMaxIterations;
    return status;
  }

  // lambda <- max(0, lambda + rho c) at (x_, u_); returns the residual of the old multipliers,
  // max |max(c, -lambda / rho)| (= the step of lambda over rho), and writes the largest violation
  // max(0, c) into *violation; both NaN when some c is not finite (a constraint graph's).
  MPC_HOST_DEVICE S UpdateMultipliers(S* violation) {
    ScratchScope<S> scope(arena_);
    LocalArray<S, NX> x(arena_, n);
    LocalArray<S, NU> u(arena_, m);
    S residual = 0;
    *violation = 0;
    for (int t = 0; t < T_; ++t) {
      LoadX(x_, t, x);
      LoadU(u_, t, u);
      for (int r = 0; r < view_.constraint_rows; ++r) {
        const S c = ConstraintValue(t, r, x, u);
        if (!IsFinite(c)) {
          *violation = c - c;
          return c - c;
        }
        S& lambda = At(view_.multipliers, t * view_.constraint_rows + r);
        const S step = Max(c, -lambda / rho_);
        residual = Max(residual, step < S(0) ? -step : step);
        *violation = Max(*violation, c);
        lambda = Max(S(0), lambda + rho_ * c);
      }
    }
    return residual;
  }

  // The problem's own cost (no penalty) at (x_, u_).
  MPC_HOST_DEVICE S TrajectoryCost() {
    ScratchScope<S> scope(arena_);
    LocalArray<S, NX> x(arena_, n);
    LocalArray<S, NU> u(arena_, m);
    S cost = 0;
    for (int t = 0; t < T_; ++t) {
      LoadX(x_, t, x);
      LoadU(u_, t, u);
      cost += StageCost(t, x, u);
    }
    return cost;
  }

  // max(0, lambda + rho c) of row r at step t: the multiplier the penalty acts with (> 0: active).
  MPC_HOST_DEVICE S ShiftedMultiplier(int t, int r, const S* x, const S* u) const {
    const S lambda = At(view_.multipliers, t * view_.constraint_rows + r);
    return Max(S(0), lambda + rho_ * ConstraintValue(t, r, x, u));
  }

  // The stage cost the iLQR minimises: the problem's, plus the augmented Lagrangian's penalty.
  MPC_HOST_DEVICE S MeritStageCost(int t, const S* x, const S* u) const {
    S cost = StageCost(t, x, u);
    if (has_constraints_) {
      for (int r = 0; r < view_.constraint_rows; ++r) {
        const S lambda = At(view_.multipliers, t * view_.constraint_rows + r);
        const S shifted = ShiftedMultiplier(t, r, x, u);
        cost += (shifted * shifted - lambda * lambda) / (S(2) * rho_);
      }
    }
    return cost;
  }

  // The penalty's gradient (shifted multiplier times G's row) and Hessian (rho G_r' G_r on the
  // active rows) added to step t's Q-function blocks (exact for affine rows; Gauss-Newton for a
  // constraint graph's, G_r its Jacobian at the current trajectory).
  MPC_HOST_DEVICE void AddPenaltyToQ(int t, const S* x, const S* u, S* Qxx, S* Qux, S* qx) {
    for (int r = 0; r < view_.constraint_rows; ++r) {
      const S shifted = ShiftedMultiplier(t, r, x, u);
      if (!(shifted > S(0))) continue;
      for (int i = 0; i < n; ++i) {
        const S gi = ConstraintCoefficient(t, r, i);
        qx[i] += shifted * gi;
        for (int j = 0; j < n; ++j) Qxx[i * n + j] += rho_ * gi * ConstraintCoefficient(t, r, j);
      }
      for (int i = 0; i < m; ++i) {
        const S gi = ConstraintCoefficient(t, r, n + i);
        qu_[i] += shifted * gi;
        for (int j = 0; j < n; ++j) Qux[i * n + j] += rho_ * gi * ConstraintCoefficient(t, r, j);
        for (int j = 0; j < m; ++j) {
          Quu_[i * m + j] += rho_ * gi * ConstraintCoefficient(t, r, n + j);
        }
      }
    }
  }

  MPC_HOST_DEVICE static S Infinity() { return static_cast<S>(HUGE_VAL); }

  // StopRequested at every kStopCheckStride-th step of a pass, while stops are allowed (not in
  // Finish's gains pass).
  MPC_HOST_DEVICE bool StopRequestedAtStep(int step) {
    return stops_allowed_ && step % kStopCheckStride == kStopCheckStride - 1 && StopRequested();
  }

  // The executor's stop flag or (host only) its stop query, sticky once true.
  MPC_HOST_DEVICE bool StopRequested() {
    if (!stop_requested_ && view_.stop_flags != nullptr) {
      stop_requested_ = view_.stop_flags[b_] != 0;
    }
#if !defined(__CUDA_ARCH__)
    if (!stop_requested_ && view_.should_stop != nullptr) {
      stop_requested_ = view_.should_stop(view_.stop_context, b_);
    }
#endif
    return stop_requested_;
  }

  // Step t's A_t and B_t (StepLinearizations): in place on a CPU worker.
  MPC_HOST_DEVICE StepLinearizations<S, Layout, Dynamics::kIsLinear, NX, NU, kFixedSize>
  Linearizations() const {
    return {view_.A, view_.B, view_.transition, view_.transition_slices, view_.batch, b_, n, m};
  }

  // Warm start clamped into the bounds, x_0.
  MPC_HOST_DEVICE void Load() {
    for (int i = 0; i < n; ++i) At(x_, i) = At(view_.x_init, i);
    for (int t = 0; t < T_; ++t) {
      for (int j = 0; j < m; ++j) {
        S v = At(view_.u_init, t * m + j);
        if (has_bounds_) v = Min(Max(v, Lower(t, j)), Upper(t, j));
        At(u_, t * m + j) = v;
      }
    }
  }

  // x_next, A = df/dx (n, n) and B = df/du (n, m), row-major: forward-mode AD of a model, reverse
  // sweeps of a graph.
  MPC_HOST_DEVICE void StepAndJacobians(const S* x, const S* u, S* x_next, S* A, S* B) const {
    if constexpr (Dynamics::kIsGraphTape) {
      Data::GraphTapeStepAndJacobians(x, u, x_next, A, B);
    } else if constexpr (Dynamics::kIsGraph) {
      view_.graph->StepWithJacobians(x, u, view_.params, dt_, x_next, A, B);
    } else {
      using Model = typename Dynamics::ModelType;
      StepWithJacobians<Model, MatrixOrder::kRowMajor, S>(x, u, params_, dt_, x_next, A, B);
    }
  }

  // Rolls x_ out from x_0 under u_; returns the cost.
  MPC_HOST_DEVICE S Rollout() {
    ScratchScope<S> scope(arena_);
    S cost = 0;
    LocalArray<S, NX> x(arena_, n), next(arena_, n);
    LocalArray<S, NU> u(arena_, m);
    LoadX(x_, 0, x);
    for (int t = 0; t < T_; ++t) {
      LoadU(u_, t, u);
      cost += MeritStageCost(t, x, u);
      if (t + 1 < T_) {
        Step(t, x, u, next);
        for (int i = 0; i < n; ++i) {
          At(x_, (t + 1) * n + i) = next[i];
          x[i] = next[i];
        }
      }
    }
    return cost;
  }

  // A_t, B_t at the current trajectory (linear dynamics are read from the problem), a cost
  // graph's C_t, c_t and a constraint graph's rows. False when a stop was requested on the way
  // (A, B then incomplete).
  MPC_HOST_DEVICE bool Linearize() {
    if (HasCostGraph() || HasConstraintGraph()) LinearizeGraphs();
    if constexpr (Kernels::template kLinearizesInLanes<S, Dynamics, NX, NU>) {
      return LinearizeInLanes();
    } else if constexpr (!Dynamics::kIsLinear) {
      ScratchScope<S> scope(arena_);
      LocalArray<S, NX> x(arena_, n), next(arena_, n);
      LocalArray<S, NU> u(arena_, m);
      LocalArray<S, NX * NX> A(arena_, n * n);
      LocalArray<S, NX * NU> B(arena_, n * m);
      for (int t = 0; t + 1 < T_; ++t) {
        if (StopRequestedAtStep(t)) return false;
        LoadX(x_, t, x);
        LoadU(u_, t, u);
        const StepJacobians<S> F = Linearizations().Targets(t, A, B);
        StepAndJacobians(x, u, next, F.A, F.B);
        Linearizations().Store(t, A, B);
      }
    }
    return true;
  }

  // Linearize's model Jacobians kLanes steps per evaluation (Kernels::StepJacobiansInLanes: a
  // host's vector lanes). Flattened: once the backward pass also called StepJacobiansInLanes, GCC
  // kept it out of line here, and the cartpole's solve took 5-9% longer.
  MPC_HOST_DEVICE MPC_FLATTEN bool LinearizeInLanes() {
    constexpr int kLanes = Kernels::kLinearizationLanes;
    ScratchScope<S> scope(arena_);
    LocalArray<S, kLanes * NX> x(arena_, kLanes * n);
    LocalArray<S, kLanes * NU> u(arena_, kLanes * m);
    LocalArray<S, kLanes * NX * NX> A(arena_, kLanes * n * n);
    LocalArray<S, kLanes * NX * NU> B(arena_, kLanes * n * m);
    S* A_targets[kLanes];
    S* B_targets[kLanes];
    for (const StepGroup group : StepGroups<kLanes>(T_)) {
      for (int k = 0; k < group.count; ++k) {
        const int t = group.first + k;
        if (StopRequestedAtStep(t)) return false;
        LoadX(x_, t, &x[k * n]);
        LoadU(u_, t, &u[k * m]);
        const StepJacobians<S> F = Linearizations().Targets(t, &A[k * n * n], &B[k * n * m]);
        A_targets[k] = F.A;
        B_targets[k] = F.B;
      }
      Kernels::template StepJacobiansInLanes<typename Dynamics::ModelType>(
          x, u, params_, dt_, group.count, A_targets, B_targets);
      for (int k = 0; k < group.count; ++k) {
        Linearizations().Store(group.first + k, &A[k * n * n], &B[k * n * m]);
      }
    }
    return true;
  }

  // At every step of the current trajectory whose cost is a graph (the stage cost graph's, the
  // terminal one's at T-1): C_t = proj_psd(H_t), c_t = g_t - C_t tau_t from its gradient g_t and
  // Hessian H_t (the quadratic model the backward pass reads, exact where H_t is positive
  // semi-definite; the projections counted into the problem's result), and a constraint graph's
  // rows linearised (the penalty's gradient and Gauss-Newton Hessian in AddPenaltyToQ read them;
  // its values are g's own).
  MPC_HOST_DEVICE void LinearizeGraphs() {
    if constexpr (kMayHaveCostGraph<S, Layout>) {
      ScratchScope<S> scope(arena_);
      LocalArray<S, NX> x(arena_, n);
      LocalArray<S, NU> u(arena_, m);
      for (int t = 0; t < T_; ++t) {
        LoadX(x_, t, x);
        LoadU(u_, t, u);
        const StepCostGraph<S> cost = CostGraphOfStep(view_, t);
        if (cost.graph != nullptr) {
          const bool projected = cost.graph->QuadratiseCost(
              x, u, n, cost.params, view_.cost_hessian + t * nt * nt, view_.cost_gradient + t * nt);
          if (projected) ++view_.results[b_].cost_projections;
        }
        if (HasConstraintGraph()) LinearizeConstraintGraph(t, x, u);
      }
    }
  }

  MPC_HOST_DEVICE bool IncreaseRegularization() {
    mu_ = mu_ == S(0) ? S(kMinRegularization) : mu_ * S(kRegularizationFactor);
    return mu_ <= S(kMaxRegularization);
  }

  // Repeats the backward pass with growing mu until every Quu + mu I is positive definite:
  // kOk, kStopped, or kNotFinite (also when no mu helped).
  MPC_HOST_DEVICE PassResult BackwardPassWithRegularization() {
    while (true) {
      const PassResult result = BackwardPass();
      if (result != kNotPositiveDefinite) return result;
      if (!IncreaseRegularization()) return kNotFinite;
    }
  }

  // out = -(L_ L_')^-1 rhs for `cols` columns; rhs and out are (m, cols) row-major.
  MPC_HOST_DEVICE void SolveNegated(const S* rhs, S* out, int cols) const {
    for (int e = 0; e < m * cols; ++e) out[e] = -rhs[e];
    Kernels::template CholeskySolveInPlace<S>(L_, m, out, cols);
  }

  // Q_t's stage cost part: the blocks of C_t and q_t = C_t tau_t + c_t (Qxx, Qux, Quu_, qx, qu_).
  MPC_HOST_DEVICE void StageCostToQ(int t, const S* x, const S* u, S* Qxx, S* Qux, S* qx) {
    if constexpr (kMayPack) {
      if (Kernels::UsesPackedProducts(n, m)) {
        Kernels::template PackedCostToQ<S>(view_.cost_quadratic + CostBase(t),
                                           view_.cost_linear + LinearBase(t), x, u, n, m, Qxx, Qux,
                                           Quu_, qx, qu_);
        return;
      }
    }
    // Every row's sum in the order of j, all rows at once: row j of the symmetric C_t holds
    // column j, so the loops run along rows (contiguous on a CPU worker).
    const Elements<S, Layout> C = CostMatrix(t), c = CostVector(t);
    for (int i = 0; i < n; ++i) qx[i] = 0;
    for (int j = 0; j < nt; ++j) {
      const S tau_j = j < n ? x[j] : u[j - n];
      for (int i = 0; i < n; ++i) qx[i] += C[j * nt + i] * tau_j;
    }
    for (int i = 0; i < n; ++i) {
      qx[i] += c[i];
      for (int j = 0; j < n; ++j) Qxx[i * n + j] = C[i * nt + j];
    }
    for (int i = 0; i < m; ++i) {
      S s = 0;
      for (int j = 0; j < nt; ++j) s += C[(n + i) * nt + j] * (j < n ? x[j] : u[j - n]);
      qu_[i] = s + c[n + i];
      for (int j = 0; j < n; ++j) Qux[i * n + j] = C[(n + i) * nt + j];
      for (int j = 0; j < m; ++j) Quu_[i * m + j] = C[(n + i) * nt + n + j];
    }
  }

  // The data's Step and StageCost; for the packed shapes the linear step and the quadratic cost
  // in the kernels' vector lanes.
  MPC_HOST_DEVICE void Step(int t, const S* x, const S* u, S* x_next) const {
    if constexpr (kMayPack && Dynamics::kIsLinear) {
      if (Kernels::UsesPackedProducts(n, m)) {
        const S* offset = view_.offset_slices > 0 ? view_.offset + OffsetBase(t) : nullptr;
        Kernels::template PackedLinearStep<S>(view_.transition + TransitionBase(t), offset, x, u, n,
                                              m, x_next);
        return;
      }
    }
    Data::Step(t, x, u, x_next);
  }
  MPC_HOST_DEVICE S StageCost(int t, const S* x, const S* u) const {
    if constexpr (kMayPack) {
      if (Kernels::UsesPackedProducts(n, m) && !HasCostGraph()) {
        return Kernels::template PackedStageCost<S>(view_.cost_quadratic + CostBase(t),
                                                    view_.cost_linear + LinearBase(t), x, u, n, m);
      }
    }
    return Data::StageCost(t, x, u);
  }

  // Riccati recursion in delta space around (x_, u_): Q_t = C_t + F_t' V_{t+1} F_t,
  // q_t = C_t tau_t + c_t + F_t' v_{t+1}; writes K_t, k_t into the batch buffers.
  MPC_HOST_DEVICE PassResult BackwardPass() {
    ScratchScope<S> scope(arena_);
    LocalArray<S, NX * NX> A(arena_, n * n), VA(arena_, n * n), Qxx(arena_, n * n);
    LocalArray<S, NX * NU> B(arena_, n * m), VB(arena_, n * m), Qux(arena_, m * n),
        K(arena_, m * n);
    LocalArray<S, NX> x(arena_, n), qx(arena_, n);
    LocalArray<S, NU> u(arena_, m), k(arena_, m);
    for (int t = T_ - 1; t >= 0; --t) {
      if (StopRequestedAtStep(T_ - 1 - t)) return kStopped;
      LoadX(x_, t, x);
      LoadU(u_, t, u);
      StageCostToQ(t, x, u, Qxx, Qux, qx);
      if (has_constraints_) AddPenaltyToQ(t, x, u, Qxx, Qux, qx);
      if (t < T_ - 1) {
        const StepJacobians<const S> F = Linearizations().Read(t, A, B);
        Kernels::template AddDynamicsToQ<S>(F.A, F.B, V_, v_, n, m, VA, VB, Qxx, Qux, Quu_, qx,
                                            qu_);
      }
      for (int e = 0; e < m * m; ++e) H_[e] = Quu_[e];
      if (mu_ > S(0)) {
        for (int i = 0; i < m; ++i) H_[i * m + i] += mu_;
      }
      if (!CholeskyLower<S>(H_, L_, m)) {
        // A NaN pivot is not a matter of regularisation.
        for (int e = 0; e < m * m; ++e) {
          if (!IsFinite(H_[e])) return kNotFinite;
        }
        return kNotPositiveDefinite;
      }
      if (has_bounds_ || trust_region_) {
        SolveBoxQp(t, u, Qux, K, k);
      } else {
        SolveNegated(qu_, k, 1);
        SolveNegated(Qux, K, n);
      }
      for (int e = 0; e < m * n; ++e) At(view_.K, t * m * n + e) = K[e];
      for (int j = 0; j < m; ++j) At(view_.k, t * m + j) = k[j];
      UpdateValueFunction(Qxx, Qux, qx, K, k);
    }
    for (int e = 0; e < n * n; ++e) {
      if (!IsFinite(V_[e])) return kNotFinite;
    }
    for (int i = 0; i < n; ++i) {
      if (!IsFinite(v_[i])) return kNotFinite;
    }
    return kOk;
  }

  // The value function from the gains, with the true Quu (core::ValueFunctionOfGains).
  MPC_HOST_DEVICE void UpdateValueFunction(const S* Qxx, const S* Qux, const S* qx, const S* K,
                                           const S* k) {
    ScratchScope<S> scope(arena_);
    LocalArray<S, NU * NX> QuuK(arena_, m * n);
    LocalArray<S, NU> tmp(arena_, m);
    Kernels::template ValueFunctionOfGains<S>(Qxx, Qux, Quu_, qx, qu_, K, k, n, m, QuuK, tmp, V_,
                                              v_);
  }

  MPC_HOST_DEVICE S QpObjective(const S* x) const {
    S total = 0;
    for (int i = 0; i < m; ++i) {
      S s = 0;
      for (int j = 0; j < m; ++j) s += H_[i * m + j] * x[j];
      total += x[i] * s;
    }
    S lin = 0;
    for (int i = 0; i < m; ++i) lin += qu_[i] * x[i];
    return S(0.5) * total + lin;
  }

  // Marks the free coordinates of the box QP at qp_x (a coordinate at a bound whose gradient
  // points out of the box is clamped) and factorises H restricted to them, identity on the clamped
  // ones, into L_. Writes the gradient (grad) and the free-space gradient (g).
  MPC_HOST_DEVICE void FactorFreeSubspace(const S* qp_x, const S* lo, const S* hi, S* grad, S* g,
                                          S* free) {
    ScratchScope<S> scope(arena_);
    LocalArray<S, NU * NU> Hfree(arena_, m * m);
    for (int i = 0; i < m; ++i) {
      S s = 0;
      for (int j = 0; j < m; ++j) s += H_[i * m + j] * qp_x[j];
      grad[i] = s + qu_[i];
      g[i] = grad[i];
    }
    for (int e = 0; e < m * m; ++e) Hfree[e] = H_[e];
    for (int i = 0; i < m; ++i) {
      const bool clamped = (qp_x[i] <= lo[i] && g[i] > S(0)) || (qp_x[i] >= hi[i] && g[i] < S(0));
      free[i] = clamped ? S(0) : S(1);
      if (clamped) {
        for (int j = 0; j < m; ++j) {
          Hfree[i * m + j] = 0;
          Hfree[j * m + i] = 0;
        }
        Hfree[i * m + i] = 1;
        g[i] = 0;
      }
    }
    // H is positive definite here, hence so is its free block: the factorisation cannot fail.
    CholeskyLower<S>(Hfree, L_, m);
  }

  // The box of control j's step at step t around u: the bounds (when given) shifted by u,
  // intersected with the trust region [-delta_u, delta_u] (when set).
  MPC_HOST_DEVICE S StepLower(int t, int j, S u) const {
    const S lo = has_bounds_ ? Lower(t, j) - u : -Infinity();
    return trust_region_ ? Max(lo, -S(settings_.delta_u)) : lo;
  }
  MPC_HOST_DEVICE S StepUpper(int t, int j, S u) const {
    const S hi = has_bounds_ ? Upper(t, j) - u : Infinity();
    return trust_region_ ? Min(hi, S(settings_.delta_u)) : hi;
  }

  // A trial control v of control j at step t clamped into the bounds and, with a trust region,
  // into [u_old - delta_u, u_old + delta_u] (mpc.pytorch's forward pass).
  // R: the trial scalar (one trial per lane).
  template <typename R>
  MPC_HOST_DEVICE R ClampTrial(int t, int j, R v, S u_old) const {
    if (!trust_region_) {
      return has_bounds_ ? RolloutMin<R>(RolloutMax<R>(v, R(Lower(t, j))), R(Upper(t, j))) : v;
    }
    const S delta = S(settings_.delta_u);
    const S lo = has_bounds_ ? Max(Lower(t, j), u_old - delta) : u_old - delta;
    const S hi = has_bounds_ ? Min(Upper(t, j), u_old + delta) : u_old + delta;
    return RolloutMin<R>(RolloutMax<R>(v, R(lo)), R(hi));
  }

  // k_t from min 0.5 k'Hk + qu'k s.t. StepLower <= k <= StepUpper by projected Newton, run
  // until the active set is exact; K_t on the free controls only (rows of clamped controls zero).
  MPC_HOST_DEVICE void SolveBoxQp(int t, const S* u, const S* Qux, S* K, S* k) {
    ScratchScope<S> scope(arena_);
    LocalArray<S, NU> lo(arena_, m), hi(arena_, m), qp_x(arena_, m), grad(arena_, m), g(arena_, m),
        free(arena_, m);
    for (int j = 0; j < m; ++j) {
      lo[j] = StepLower(t, j, u[j]);
      hi[j] = StepUpper(t, j, u[j]);
    }
    // L_ holds H: when the unconstrained minimiser is inside the box it is the answer.
    SolveNegated(qu_, qp_x, 1);
    bool inside = true;
    for (int j = 0; j < m; ++j) inside = inside && qp_x[j] >= lo[j] && qp_x[j] <= hi[j];
    if (inside) {
      for (int j = 0; j < m; ++j) k[j] = qp_x[j];
      SolveNegated(Qux, K, n);
      return;
    }
    bool factored_at_x = false;
    if (m == 1) {
      // One control: the minimiser is the unconstrained one clamped into the box, the bound
      // projected Newton ends at (the same value; a zero step's sign may differ), at once.
      qp_x[0] = Min(Max(qp_x[0], lo[0]), hi[0]);
    } else {
      if (t < T_ - 1) {
        for (int j = 0; j < m; ++j) qp_x[j] = At(view_.k, (t + 1) * m + j);  // pnqp's warm start
      }
      for (int j = 0; j < m; ++j) qp_x[j] = Min(Max(qp_x[j], lo[j]), hi[j]);
      factored_at_x = ProjectedNewton(lo, hi, qp_x, grad, g, free);
    }
    if (!factored_at_x) FactorFreeSubspace(qp_x, lo, hi, grad, g, free);
    for (int j = 0; j < m; ++j) k[j] = qp_x[j];
    LocalArray<S, NU * NX> Qux_free(arena_, m * n);
    for (int i = 0; i < m; ++i) {
      for (int j = 0; j < n; ++j) Qux_free[i * n + j] = free[i] != S(0) ? Qux[i * n + j] : S(0);
    }
    SolveNegated(Qux_free, K, n);
  }

  // Projected Newton on the box QP from qp_x (inside the box) until the active set is exact;
  // true when L_, grad, g and free are those of the qp_x it leaves.
  MPC_HOST_DEVICE bool ProjectedNewton(const S* lo, const S* hi, S* qp_x, S* grad, S* g, S* free) {
    ScratchScope<S> scope(arena_);
    LocalArray<S, NU> dx(arena_, m), trial(arena_, m), free_prev(arena_, m);
    bool exact_on_face = false;
    bool factored_at_x = false;
    for (int iteration = 0; iteration < kMaxBoxQpIterations; ++iteration) {
      for (int j = 0; j < m; ++j) free_prev[j] = free[j];
      FactorFreeSubspace(qp_x, lo, hi, grad, g, free);
      factored_at_x = true;
      // After a full, unclipped Newton step on an unchanged face, qp_x is that face's minimiser.
      bool same_face = true;
      for (int j = 0; j < m; ++j) same_face = same_face && free[j] == free_prev[j];
      if (exact_on_face && same_face) break;
      SolveNegated(g, dx, 1);
      S dx_max = 0;
      for (int j = 0; j < m; ++j) dx_max = Max(dx_max, dx[j] < S(0) ? -dx[j] : dx[j]);
      if (dx_max == S(0)) break;
      const S objective = QpObjective(qp_x);
      S alpha = 1;
      for (int backtrack = 0; backtrack < kMaxBoxQpBacktracks; ++backtrack) {
        for (int j = 0; j < m; ++j) trial[j] = Min(Max(qp_x[j] + alpha * dx[j], lo[j]), hi[j]);
        // Armijo along the projection arc, with the gradient at the current point.
        S predicted = 0;
        for (int j = 0; j < m; ++j) predicted += grad[j] * (qp_x[j] - trial[j]);
        if (objective - QpObjective(trial) >= S(kBoxQpArmijo) * predicted) break;
        alpha *= S(0.5);
      }
      bool clipped = false;
      bool unchanged = true;
      for (int j = 0; j < m; ++j) {
        clipped = clipped || trial[j] != qp_x[j] + alpha * dx[j];
        unchanged = unchanged && trial[j] == qp_x[j];
      }
      exact_on_face = alpha == S(1) && !clipped;
      if (unchanged) break;
      for (int j = 0; j < m; ++j) qp_x[j] = trial[j];
      factored_at_x = false;
    }
    return factored_at_x;
  }

  // Backtracking line search on alpha: trial controls u = clamp(u_t + K_t (x'_t - x_t) +
  // alpha k_t); accept at the first trial whose cost does not increase, else after
  // max_linesearch_iterations trials take the last one anyway. Swaps the accepted trial into
  // x_, u_. Returns false (and keeps x_, u_) if the last trial is not finite.
  MPC_HOST_DEVICE bool LineSearch(S old_cost, S* new_cost, S* step_norm) {
    S cost = static_cast<S>(NAN);  // until a trial ran
    if constexpr (kTrialLanes > 1) {
      cost = TrialsInLanes() ? SearchInLanes(old_cost, step_norm)
                             : SearchOneByOne(old_cost, step_norm);
    } else {
      cost = SearchOneByOne(old_cost, step_norm);
    }
    if (!IsFinite(cost) || !AllFinite(x_try_, T_ * n)) {
      *new_cost = old_cost;
      return false;
    }
    S* swap_x = x_;
    x_ = x_try_;
    x_try_ = swap_x;
    S* swap_u = u_;
    u_ = u_try_;
    u_try_ = swap_u;
    *new_cost = cost;
    return true;
  }

  // The trials of the line search one step size at a time; leaves the taken one in x_try_,
  // u_try_ and returns its cost (NaN when none ran).
  MPC_HOST_DEVICE S SearchOneByOne(S old_cost, S* step_norm) {
    S alpha = 1;
    S cost = static_cast<S>(NAN);
    for (int trial = 0; trial < settings_.max_linesearch_iterations; ++trial) {
      cost = TrialRollout<S>(alpha);
      if (trial == 0) *step_norm = StepNorm([&](int e) { return At(u_try_, e); });
      if (TakesTrial(cost, old_cost, trial)) break;
      alpha *= S(settings_.linesearch_decay);
    }
    return cost;
  }

  // The same trials, kTrialLanes step sizes per rollout (the lanes of Trial; a group's lanes past
  // the last trial roll out smaller steps that are dropped): each lane's arithmetic is the
  // one-by-one trial's, and the trials are taken or rejected in the same order.
  MPC_HOST_DEVICE S SearchInLanes(S old_cost, S* step_norm) {
    const int trials = settings_.max_linesearch_iterations;
    S alpha = 1;
    for (int first = 0; first < trials; first += kTrialLanes) {
      S alphas[kTrialLanes];
      for (int lane = 0; lane < kTrialLanes; ++lane) {
        alphas[lane] = alpha;
        alpha *= S(settings_.linesearch_decay);
      }
      const Trial costs = TrialRollout<Trial>(FromLanes<Trial>(alphas));
      for (int lane = 0; lane < kTrialLanes && first + lane < trials; ++lane) {
        const S cost = LaneOf(costs, lane);
        if (first + lane == 0) {
          const S* controls = view_.trial_lanes + T_ * n * kTrialLanes;
          *step_norm = StepNorm([&](int e) { return controls[e * kTrialLanes]; });
        }
        if (TakesTrial(cost, old_cost, first + lane)) {
          TakeLane(lane);
          return cost;
        }
      }
    }
    return static_cast<S>(NAN);
  }

  static constexpr int kTrialLanes = kRolloutLanes<Trial>;
  static_assert(kTrialLanes == 1 || (kFixedSize && NX != kDynamic && NU != kDynamic),
                "trials in lanes need compile-time sizes");

  // Whether this problem's trials run in Trial's lanes: a buffer for them, and neither stage
  // constraints (the merit function's penalty) nor a cost graph (interpreted in S).
  MPC_HOST_DEVICE bool TrialsInLanes() const {
    return view_.trial_lanes != nullptr && !has_constraints_ && !HasCostGraph();
  }

  // Whether the line search stops at `trial` (cost its trial's): its cost does not increase, a
  // stop was requested (a long horizon's trials are slow: it takes this trial as the last one),
  // or it is the last trial.
  MPC_HOST_DEVICE bool TakesTrial(S cost, S old_cost, int trial) {
    if (IsFinite(cost) && cost <= old_cost) return true;
    if (StopRequested()) return true;
    return trial + 1 >= settings_.max_linesearch_iterations;
  }

  // |u - u_| of the trial whose control e is trial_control(e): the first trial's step.
  template <class TrialControl>
  MPC_HOST_DEVICE S StepNorm(TrialControl trial_control) const {
    using std::sqrt;
    S sum = 0;
    for (int e = 0; e < T_ * m; ++e) {
      const S d = trial_control(e) - At(u_, e);
      sum += d * d;
    }
    return sqrt(sum);
  }

  // Lane `lane` of the trials in view_.trial_lanes into x_try_, u_try_.
  MPC_HOST_DEVICE void TakeLane(int lane) {
    const S* lanes = view_.trial_lanes;
    for (int e = 0; e < T_ * n; ++e) At(x_try_, e) = lanes[e * kTrialLanes + lane];
    lanes += T_ * n * kTrialLanes;
    for (int e = 0; e < T_ * m; ++e) At(u_try_, e) = lanes[e * kTrialLanes + lane];
  }

  // Rolls the trial of each lane's alpha out from x_0 and returns their costs; one trial (R = S)
  // into x_try_, u_try_, lanes into view_.trial_lanes (state element e's lanes at
  // [e * kTrialLanes], then the controls').
  template <typename R>
  MPC_HOST_DEVICE R TrialRollout(R alpha) {
    constexpr bool kOne = std::is_same_v<R, S>;
    ScratchScope<S> scope(arena_);
    ScratchArena<R>* const arena = RolloutArena<R>(arena_);
    R cost = R(0);
    LocalArray<R, NX> x(arena, n), next(arena, n);
    LocalArray<R, NU> u(arena, m);
    LocalArray<S, NX> x_old(arena_, n);
    LoadX(x_, 0, x_old);
    for (int i = 0; i < n; ++i) {
      x[i] = R(x_old[i]);
      StoreTrialX(0, i, x[i]);
    }
    for (int t = 0; t < T_; ++t) {
      LoadX(x_, t, x_old);
      for (int j = 0; j < m; ++j) {
        R s = R(0);
        for (int i = 0; i < n; ++i) s += R(At(view_.K, (t * m + j) * n + i)) * (x[i] - R(x_old[i]));
        const S u_old = At(u_, t * m + j);
        R v = R(u_old) + s;
        v += alpha * R(At(view_.k, t * m + j));
        v = ClampTrial<R>(t, j, v, u_old);
        u[j] = v;
        StoreTrialU(t, j, v);
      }
      if constexpr (kOne) {
        cost += MeritStageCost(t, x, u);
      } else {
        cost += Data::template StageCost<R>(t, x, u);
      }
      if (t + 1 < T_) {
        if constexpr (kOne) {
          Step(t, x, u, next);
        } else {
          Data::template Step<R>(t, x, u, next);
        }
        for (int i = 0; i < n; ++i) {
          StoreTrialX(t + 1, i, next[i]);
          x[i] = next[i];
        }
      }
    }
    return cost;
  }

  template <typename R>
  MPC_HOST_DEVICE void StoreTrialX(int t, int i, const R& value) {
    if constexpr (std::is_same_v<R, S>) {
      At(x_try_, t * n + i) = value;
    } else {
      ToLanes(value, view_.trial_lanes + (t * n + i) * kTrialLanes);
    }
  }
  template <typename R>
  MPC_HOST_DEVICE void StoreTrialU(int t, int j, const R& value) {
    if constexpr (std::is_same_v<R, S>) {
      At(u_try_, t * m + j) = value;
    } else {
      ToLanes(value, view_.trial_lanes + (T_ * n + t * m + j) * kTrialLanes);
    }
  }

  // Writes cost and status and, when asked, the gains linearised at the best iterate.
  MPC_HOST_DEVICE void Finish(S cost, DeviceStatus status, ProblemResult* out) {
    out->cost = cost;
    out->status = status;
    if (settings_.compute_gains == 0) return;
    Copy(view_.best_x, x_, T_ * n);
    Copy(view_.best_u, u_, T_ * m);
    stops_allowed_ = false;
    Linearize();
    mu_ = 0;
    if (status == kDeviceNotFinite || BackwardPassWithRegularization() != kOk) {
      for (int e = 0; e < T_ * m * n; ++e) At(view_.K, e) = 0;
      for (int e = 0; e < T_ * m; ++e) At(view_.k, e) = 0;
    }
  }

  ScratchArena<S>* const arena_;  // null with compile-time sizes

  // This problem's iterate and trial (swapped by the line search).
  S* x_;
  S* u_;
  S* x_try_;
  S* u_try_;

  S mu_ = 0;
  bool stop_requested_ = false;
  bool stops_allowed_ = true;  // false in Finish: the returned gains are never cut short
  S rho_ = 0;                  // the augmented Lagrangian's penalty (SolveConstrained)

  // The backward pass's value function and the current stage's control blocks.
  LocalArray<S, NX * NX> V_;
  LocalArray<S, NX> v_;
  LocalArray<S, NU * NU> Quu_;
  LocalArray<S, NU> qu_;
  LocalArray<S, NU * NU> H_;
  LocalArray<S, NU * NU> L_;
  const bool trust_region_;     // settings_.delta_u > 0
  const bool has_constraints_;  // stage constraints: SolveConstrained
};

#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#pragma GCC diagnostic pop
#endif

}  // namespace mpc::core

#endif  // MPC_SOLVER_CORE_ILQR_H_
