#ifndef MPC_SOLVER_CORE_PROBLEM_DATA_H_
#define MPC_SOLVER_CORE_PROBLEM_DATA_H_

// One problem's data as the core's algorithms read it from a batch view (batch_view.h): the cost
// blocks, the bounds, the dynamics step f(x, u) and the stage cost, written once for every solver
// of the core (the iLQR of ilqr.h, the sampling methods of sampling.h). Plain C++: nvcc compiles
// it.

#include <cmath>
#include <type_traits>

#include "solver/core/batch_view.h"
#include "solver/core/lanes.h"
#include "solver/core/scratch.h"
#include "solver/core/small_linalg.h"
#include "solver/host_device.h"
#include "solver/models/dynamics_tags.h"
#include "solver/models/integrators.h"

namespace mpc::core {

// How a problem's elements are laid out in the batch buffers: interleaved over the batch (element
// e of problem b at e * batch + b: the GPU, where neighbouring threads then read neighbouring
// addresses) or contiguous (a batch of one: a CPU worker, where the loops then run over unit
// strides).
struct Interleaved {
  // Whether a problem's consecutive elements are adjacent in memory, so that a run of them (a
  // matrix of the linearisation) can be read in place.
  static constexpr bool kAdjacentElements = false;
  MPC_HOST_DEVICE static long long Index(int e, int batch, int b) {
    return static_cast<long long>(e) * batch + b;
  }
};
struct Contiguous {
  static constexpr bool kAdjacentElements = true;
  MPC_HOST_DEVICE static long long Index(int e, int /*batch*/, int /*b*/) { return e; }
};

// A run of one problem's elements from `first` on, read as elements[k] (element first + k): a
// pointer with unit stride when the layout's elements are adjacent, so that small loops over it
// address with constant offsets.
template <typename S, class Layout>
class Elements {
 public:
  MPC_HOST_DEVICE Elements(const S* array, int first, int batch, int b)
      : data_(array + Layout::Index(first, batch, b)), stride_(batch) {}
  MPC_HOST_DEVICE S operator[](int k) const {
    if constexpr (Layout::kAdjacentElements) {
      return data_[k];
    } else {
      return data_[static_cast<long long>(k) * stride_];
    }
  }

 private:
  const S* data_;
  int stride_;
};

// Step t's Jacobians of the dynamics, row-major, where a solver writes or reads them: in the
// batch buffers themselves (Layout::kAdjacentElements) or in local copies. S: S or const S.
template <typename S>
struct StepJacobians {
  S* A;  // (n, n)
  S* B;  // (n, m)
};

// Step t's linearisation A_t (n, n), B_t (n, m) of problem b, row-major, where the forward and
// the backward solver keep it: the batch's buffers A (T-1, n, n) and B (T-1, n, m) for dynamics
// that are linearised, the transition (transition_slices x (n, n+m)) for linear dynamics. Where the
// layout keeps a problem's elements adjacent (a CPU worker) and the dynamics are linearised,
// A_t and B_t are written and read in place (kInPlace): that spares the copy whose narrow stores
// the Q assembly's wide loads would read straight back, which stalls store forwarding. Elsewhere
// they go through the caller's local arrays A and B. Sizes as for ProblemData.
template <typename S, class Layout, bool kIsLinear, int NX, int NU, bool kFixedSize>
class StepLinearizations : private ProblemSizes<NX, NU, kFixedSize && NX != kDynamic> {
  using Sizes = ProblemSizes<NX, NU, kFixedSize && NX != kDynamic>;

 public:
  static constexpr bool kInPlace = Layout::kAdjacentElements && !kIsLinear;

  MPC_HOST_DEVICE StepLinearizations(S* A, S* B, const S* transition, int transition_slices,
                                     int batch, int b, int state_dim, int control_dim)
      : Sizes(state_dim, control_dim),
        A_(A),
        B_(B),
        transition_(transition),
        transition_slices_(transition_slices),
        batch_(batch),
        b_(b) {}

  // Where step t's A_t and B_t are written: in place (kInPlace), else the local A and B, which
  // Store then copies into the batch's buffers.
  MPC_HOST_DEVICE StepJacobians<S> Targets(int t, S* A, S* B) const {
    if constexpr (kInPlace) {
      return {&At(A_, t * n * n), &At(B_, t * n * m)};
    } else {
      return {A, B};
    }
  }

  MPC_HOST_DEVICE void Store(int t, const S* A, const S* B) const {
    if constexpr (!kInPlace) {
      for (int e = 0; e < n * n; ++e) At(A_, t * n * n + e) = A[e];
      for (int e = 0; e < n * m; ++e) At(B_, t * n * m + e) = B[e];
    }
  }

  // A_t and B_t to read: in place (kInPlace), else copied into the local A and B (Load).
  MPC_HOST_DEVICE StepJacobians<const S> Read(int t, S* A, S* B) const {
    if constexpr (kInPlace) {
      const StepJacobians<S> in_place = Targets(t, A, B);
      return {in_place.A, in_place.B};
    } else {
      Load(t, A, B);
      return {A, B};
    }
  }

  // A_t and B_t copied into the local A and B: the transition's blocks for linear dynamics.
  MPC_HOST_DEVICE MPC_NOINLINE_ON_HOST void Load(int t, S* A, S* B) const {
    if constexpr (kIsLinear) {
      const int base = SliceOf(transition_slices_, t) * n * nt;
      for (int i = 0; i < n; ++i) {
        for (int j = 0; j < n; ++j) A[i * n + j] = At(transition_, base + i * nt + j);
        for (int j = 0; j < m; ++j) B[i * m + j] = At(transition_, base + i * nt + n + j);
      }
    } else {
      for (int e = 0; e < n * n; ++e) A[e] = At(A_, t * n * n + e);
      for (int e = 0; e < n * m; ++e) B[e] = At(B_, t * n * m + e);
    }
  }

 private:
  using Sizes::m;
  using Sizes::n;
  using Sizes::nt;

  MPC_HOST_DEVICE S& At(S* array, int e) const { return array[Layout::Index(e, batch_, b_)]; }
  MPC_HOST_DEVICE S At(const S* array, int e) const { return array[Layout::Index(e, batch_, b_)]; }

  S* A_;
  S* B_;
  const S* transition_;
  int transition_slices_;
  int batch_;
  int b_;
};

// Whether a problem's view may carry a stage cost or constraint graph (IlqrBatchView::cost_graph,
// constraint_graph): only on a CPU worker (Contiguous, double), where graphs are interpreted.
template <typename S, class Layout>
inline constexpr bool kMayHaveCostGraph =
    std::is_same_v<Layout, Contiguous>&& std::is_same_v<S, double>;

// Problem b of `view`: its sizes (compile-time in the fixed-size specialisations, as ProblemSizes),
// parameters, time step and bounds flag, and the functions of its data. Sizes and Layout as for
// ProblemSolver (ilqr.h).
template <typename S, class Dynamics, int NX, int NU, bool kFixedSize, class Layout>
class ProblemData : public ProblemSizes<NX, NU, kFixedSize && NX != kDynamic> {
 public:
  using Sizes = ProblemSizes<NX, NU, kFixedSize && NX != kDynamic>;
  using Sizes::m;
  using Sizes::n;
  using Sizes::nt;

  MPC_HOST_DEVICE ProblemData(const IlqrBatchView<S>& view, int b)
      : Sizes(view.state_dim, view.control_dim),
        view_(view),
        b_(b),
        T_(view.horizon),
        settings_(view.settings[b]),
        has_bounds_(settings_.has_bounds != 0),
        dt_(settings_.dt) {
    if constexpr (!Dynamics::kIsLinear && !Dynamics::kIsGraph) {
      for (int k = 0; k < Dynamics::kParamDim; ++k) params_[k] = At(view_.params, k);
    }
    if constexpr (Dynamics::kIsGraphTape) PrepareGraphTape();
  }

  MPC_HOST_DEVICE static S Max(S a, S b) { return RolloutMax<S>(a, b); }
  MPC_HOST_DEVICE static S Min(S a, S b) { return RolloutMin<S>(a, b); }

  // Element e of this problem in a batch array.
  MPC_HOST_DEVICE S& At(S* array, int e) const { return array[Layout::Index(e, view_.batch, b_)]; }
  MPC_HOST_DEVICE S At(const S* array, int e) const {
    return array[Layout::Index(e, view_.batch, b_)];
  }

  MPC_HOST_DEVICE void Copy(const S* from, S* to, int count) const {
    for (int e = 0; e < count; ++e) At(to, e) = At(from, e);
  }
  MPC_HOST_DEVICE bool AllFinite(const S* array, int count) const {
    for (int e = 0; e < count; ++e) {
      if (!IsFinite(At(array, e))) return false;
    }
    return true;
  }

  // Problem data of step t.
  MPC_HOST_DEVICE int CostBase(int t) const { return SliceOf(view_.cost_slices, t) * nt * nt; }
  MPC_HOST_DEVICE int LinearBase(int t) const { return SliceOf(view_.linear_slices, t) * nt; }
  // C_t (n+m, n+m) row-major and c_t (n+m).
  MPC_HOST_DEVICE Elements<S, Layout> CostMatrix(int t) const {
    return {view_.cost_quadratic, CostBase(t), view_.batch, b_};
  }
  MPC_HOST_DEVICE Elements<S, Layout> CostVector(int t) const {
    return {view_.cost_linear, LinearBase(t), view_.batch, b_};
  }
  // Linear dynamics: where step t's F_t (n, n+m) and f_t (n) begin.
  MPC_HOST_DEVICE int TransitionBase(int t) const {
    return SliceOf(view_.transition_slices, t) * n * nt;
  }
  MPC_HOST_DEVICE int OffsetBase(int t) const { return SliceOf(view_.offset_slices, t) * n; }
  MPC_HOST_DEVICE S Lower(int t, int j) const {
    return At(view_.u_lower, SliceOf(view_.bound_slices, t) * m + j);
  }
  MPC_HOST_DEVICE S Upper(int t, int j) const {
    return At(view_.u_upper, SliceOf(view_.bound_slices, t) * m + j);
  }
  // v clamped into control j's bounds at step t (v itself without bounds).
  MPC_HOST_DEVICE S Clamp(int t, int j, S v) const {
    return has_bounds_ ? Min(Max(v, Lower(t, j)), Upper(t, j)) : v;
  }

  // Whether the problem has a stage constraint graph (its rows the last of every step's).
  MPC_HOST_DEVICE bool HasConstraintGraph() const {
    if constexpr (kMayHaveCostGraph<S, Layout>) {
      return view_.constraint_graph != nullptr;
    } else {
      return false;
    }
  }

  // A constraint graph's rows of step t linearised at (x, u) into the step's rows of G and h.
  MPC_HOST_DEVICE void LinearizeConstraintGraph(int t, const S* x, const S* u) const {
    if constexpr (kMayHaveCostGraph<S, Layout>) {
      const int row = t * view_.constraint_rows + FirstGraphRow();
      view_.constraint_graph->LinearizeConstraints(x, u, view_.constraint_params, nt,
                                                   view_.graph_G + row * nt, view_.graph_h + row);
    }
  }

  // Row r of step t's stage constraint at (x, u): G_t[r] tau - h_t[r], feasible when <= 0; a
  // constraint graph's row g_r(x, u) itself (not its linearisation).
  MPC_HOST_DEVICE S ConstraintValue(int t, int r, const S* x, const S* u) const {
    if constexpr (kMayHaveCostGraph<S, Layout>) {
      if (view_.constraint_graph != nullptr && r >= FirstGraphRow()) {
        return view_.constraint_graph->ConstraintRow(x, u, view_.constraint_params,
                                                     r - FirstGraphRow());
      }
    }
    const int row = SliceOf(view_.constraint_slices, t) * view_.constraint_rows + r;
    S s = 0;
    for (int i = 0; i < n; ++i) s += At(view_.constraint_G, row * nt + i) * x[i];
    for (int j = 0; j < m; ++j) s += At(view_.constraint_G, row * nt + n + j) * u[j];
    return s - At(view_.constraint_h, row);
  }
  MPC_HOST_DEVICE int FirstGraphRow() const {
    return view_.constraint_rows - view_.constraint_graph_rows;
  }
  // Entry e (of n+m) of row r of step t's G.
  MPC_HOST_DEVICE S ConstraintCoefficient(int t, int r, int e) const {
    const int row = SliceOf(view_.constraint_slices, t) * view_.constraint_rows + r;
    return At(view_.constraint_G, row * nt + e);
  }

  MPC_HOST_DEVICE void LoadX(const S* traj, int t, S* x) const {
    for (int i = 0; i < n; ++i) x[i] = At(traj, t * n + i);
  }
  MPC_HOST_DEVICE void LoadU(const S* traj, int t, S* u) const {
    for (int j = 0; j < m; ++j) u[j] = At(traj, t * m + j);
  }

  // x_next = f(x, u) for the dynamics of step t.
  MPC_HOST_DEVICE void Step(int t, const S* x, const S* u, S* x_next) const {
    Step<S>(t, x, u, x_next);
  }
  // The same in the rollout scalar R: S, or several samples' lanes (core/sampling.h); graphs
  // only in S.
  template <typename R>
  MPC_HOST_DEVICE void Step(int t, const R* x, const R* u, R* x_next) const {
    if constexpr (Dynamics::kIsLinear) {
      const int base = TransitionBase(t);
      const int offset_base = OffsetBase(t);
      for (int i = 0; i < n; ++i) {
        R ax = R(0);
        for (int j = 0; j < n; ++j) ax += At(view_.transition, base + i * nt + j) * x[j];
        R bu = R(0);
        for (int j = 0; j < m; ++j) bu += At(view_.transition, base + i * nt + n + j) * u[j];
        R next = ax + bu;
        if (view_.offset_slices > 0) next += At(view_.offset, offset_base + i);
        x_next[i] = next;
      }
    } else if constexpr (Dynamics::kIsGraphTape) {
      static_assert(std::is_same_v<R, double> && std::is_same_v<S, double>,
                    "graph tapes step in double, one sample at a time");
      GraphTapeStep(view_.graph_tape, x, u, TapeParams(), tape_values_, x_next);
    } else if constexpr (Dynamics::kIsGraph) {
      static_assert(std::is_same_v<R, S>, "graphs step one sample at a time");
      static_assert(std::is_same_v<Layout, Contiguous>, "graphs run on CPU workers only");
      view_.graph->Step(x, u, view_.params, dt_, x_next);
    } else {
      ModelStep<typename Dynamics::ModelType>(x, u, params_, dt_, x_next);
    }
  }

  // GraphTapeDynamics: x_next, A = df/dx (n, n) and B = df/du (n, m), row-major, by the forward
  // Jacobian sweep (the n+m lanes a compile-time count at fixed sizes up to 16, as the host's
  // GraphEvaluator runs them).
  MPC_HOST_DEVICE void GraphTapeStepAndJacobians(const S* x, const S* u, S* x_next, S* A,
                                                 S* B) const {
    static_assert(std::is_same_v<S, double>, "graph tapes run in double");
    constexpr int kLanes =
        kFixedSize && NX != kDynamic && NX + NU <= kMaxFixedGraphLanes ? NX + NU : 0;
    GraphTapeStepWithJacobians<kLanes>(view_.graph_tape, x, u, TapeParams(), tape_values_,
                                       tape_lanes_, x_next, A, B);
  }

  // Whether some step's cost is a graph (a stage or a terminal cost graph).
  MPC_HOST_DEVICE bool HasCostGraph() const {
    if constexpr (kMayHaveCostGraph<S, Layout>) {
      return view_.cost_graph != nullptr || view_.terminal_cost_graph != nullptr;
    } else {
      return false;
    }
  }

  // l(tau) of the graph that gives step t's cost (CostGraphOfStep); otherwise 0.5 tau' C_t tau +
  // c_t' tau with C_t symmetric.
  MPC_HOST_DEVICE S StageCost(int t, const S* x, const S* u) const {
    if constexpr (kMayHaveCostGraph<S, Layout>) {
      const StepCostGraph<S> cost = CostGraphOfStep(view_, t);
      if (cost.graph != nullptr) return cost.graph->Cost(x, u, n, cost.params);
    }
    return StageCost<S>(t, x, u);
  }
  // The quadratic one in the rollout scalar R: S, or several samples' lanes (core/sampling.h).
  template <typename R>
  MPC_HOST_DEVICE R StageCost(int t, const R* x, const R* u) const {
    const Elements<S, Layout> C = CostMatrix(t), c = CostVector(t);
    R total = R(0);
    for (int i = 0; i < n; ++i) {
      R s = R(0);
      for (int j = 0; j < n; ++j) s += C[i * nt + j] * x[j];
      total += x[i] * (S(0.5) * s + c[i]);
    }
    for (int i = 0; i < m; ++i) {
      R sx = R(0);
      for (int j = 0; j < n; ++j) sx += C[(n + i) * nt + j] * x[j];
      R su = R(0);
      for (int j = 0; j < m; ++j) su += C[(n + i) * nt + n + j] * u[j];
      total += u[i] * (sx + S(0.5) * su + c[n + i]);
    }
    return total;
  }

 protected:
  const IlqrBatchView<S>& view_;
  const int b_;
  const int T_;
  const ProblemSettings settings_;
  const bool has_bounds_;
  const TimeStep dt_;
  S params_[Dynamics::kParamDim > 0 ? Dynamics::kParamDim : 1] = {};

 private:
  // GraphTapeDynamics: this problem's evaluation buffers prepared (the initial buffer; x's and u's
  // own tangents) with its parameters in their place in the values, where every step reads them.
  MPC_HOST_DEVICE void PrepareGraphTape() {
    const GraphTapeView& tape = view_.graph_tape;
    const auto b = static_cast<long long>(b_);
    tape_values_ = view_.graph_values + b * tape.buffer_size;
    tape_lanes_ = view_.graph_lanes + b * tape.buffer_size * (tape.state_dim + tape.control_dim);
    PrepareGraphTapeBuffers(tape, tape_values_, tape_lanes_);
    for (int k = 0; k < tape.param_dim; ++k) {
      tape_values_[tape.theta_position + k] = At(view_.params, k);
    }
  }
  MPC_HOST_DEVICE const double* TapeParams() const {
    return tape_values_ + view_.graph_tape.theta_position;
  }

  double* tape_values_ = nullptr;
  double* tape_lanes_ = nullptr;
};

}  // namespace mpc::core

#endif  // MPC_SOLVER_CORE_PROBLEM_DATA_H_
