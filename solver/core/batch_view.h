#ifndef MPC_SOLVER_CORE_BATCH_VIEW_H_
#define MPC_SOLVER_CORE_BATCH_VIEW_H_

// The batch layout the core (solver/core/) reads and writes, on the GPU and on CPU threads (STYLE
// rule 11). Plain data: no absl, no Eigen, no std containers, so nvcc translation units include it.
//
// Every per-problem array is interleaved over the batch: element e of problem b lives at
// array[e * batch + b]. Neighbouring threads (problems) then touch neighbouring addresses, so a
// warp's loads coalesce. Matrices are row-major inside a slice; a time-varying input has one slice
// per step, a time-invariant one a single slice (the batch takes the larger count over its
// problems, repeating a time-invariant problem's slice, which keeps every result independent of the
// batch).

#include <cstdint>

#include "solver/graph/element_sweeps.h"
#include "solver/host_device.h"
#include "solver/models/integrators.h"

namespace mpc {
class GraphEvaluator;  // solver/graph/graph_program.h (host only)
}  // namespace mpc

namespace mpc::core {

// SolveStatus values, in the same order (solver/problem.h; checked by a static_assert there).
enum DeviceStatus : std::int32_t {
  kDeviceConverged = 0,
  kDeviceMaxIterations = 1,
  kDeviceLinesearchFailed = 2,
  kDeviceNotFinite = 3,
  kDeviceDeadline = 4,
  kDeviceInfeasible = 5,
};

// The slice of step t in an input held either once for every step (slices 1; 0 when the input is
// absent) or once per step (slices > 1): the `*_slices` fields of the batch views.
MPC_HOST_DEVICE inline int SliceOf(int slices, int t) { return slices > 1 ? t : 0; }

// Whether problem `problem` of a batch should stop early (its caller's deadline passed or the
// caller left); `context` is the executor's. Host only: a CPU executor sets it, the GPU leaves it
// null (a kernel cannot call back into the host).
using StopQuery = bool (*)(void* context, int problem);

// Per-problem options (SolverOptions) and scalars, one struct per problem (not interleaved: read
// once per solve).
struct ProblemSettings {
  double tolerance;
  double linesearch_decay;
  double best_cost_eps;
  TimeStep dt;  // the dynamics' time step and integrator (models and continuous-time graphs)
  // mpc.pytorch's delta_u: > 0 bounds each control's change per iteration to +-delta_u (a trust
  // region, with or without bounds); 0 = no trust region.
  double delta_u;
  // Stage constraints (IlqrBatchView::constraint_*): the largest violation and multiplier
  // residual an answer may keep.
  double constraint_tolerance;
  std::int32_t max_iterations;
  std::int32_t max_linesearch_iterations;
  std::int32_t not_improved_limit;
  std::int32_t has_bounds;     // 0 | 1
  std::int32_t compute_gains;  // 0 | 1
  // 0 | 1: the problem has stage constraints (rows of IlqrBatchView::constraint_G it uses; a
  // problem without them in a batch with them reads zero rows and takes the unconstrained path).
  std::int32_t has_constraints;
  std::int32_t max_constraint_iterations;  // augmented-Lagrangian rounds, >= 1
};

// What a solve reports per problem, besides the trajectory.
struct ProblemResult {
  double cost;            // of the returned iterate
  double step_norm;       // full step norm of the returned iterate
  double regularization;  // Levenberg-Marquardt mu at the last iteration
  double max_violation;   // max over stage constraints of max(0, G_t tau_t - h_t); 0 without
  std::int32_t status;    // DeviceStatus
  std::int32_t iterations;
  std::int32_t cost_projections;  // cost graphs: Hessians projected to PSD (0 without)
};

// Pointers into one batch's buffers. S is the solver's scalar (double, or float on request).
// Shapes below are per problem, before interleaving; `batch` is the interleaving stride.
template <typename S>
struct IlqrBatchView {
  int batch = 0;              // problems in the batch (the interleaving stride)
  int state_dim = 0;          // n
  int control_dim = 0;        // m
  int horizon = 0;            // T
  int cost_slices = 1;        // 1 | T
  int linear_slices = 1;      // 1 | T
  int transition_slices = 1;  // linear dynamics: 1 | T-1
  int offset_slices = 0;      // linear dynamics: 0 (no offset) | 1 | T-1
  int bound_slices = 1;       // 1 | T
  int constraint_rows = 0;    // k: stage constraint rows per step (0: none in the batch)
  int constraint_slices = 0;  // 0 | 1 | T

  // Inputs.
  const S* cost_quadratic = nullptr;  // cost_slices x (n+m, n+m), already symmetrised
  const S* cost_linear = nullptr;     // linear_slices x (n+m)
  const S* transition = nullptr;      // transition_slices x (n, n+m); linear dynamics only
  const S* offset = nullptr;          // offset_slices x (n); linear dynamics only
  const S* params = nullptr;          // (p); models only
  const S* u_lower = nullptr;         // bound_slices x (m)
  const S* u_upper = nullptr;         // bound_slices x (m)
  // Stage constraints G_t tau_t <= h_t (state bounds become rows of G: packing.cc); a problem
  // with fewer rows than the batch has zero rows (0 <= 0, never active).
  const S* constraint_G = nullptr;            // constraint_slices x (k, n+m)
  const S* constraint_h = nullptr;            // constraint_slices x (k)
  const S* x_init = nullptr;                  // (n)
  const S* u_init = nullptr;                  // (T, m): zeros when the problem has no warm start
  const ProblemSettings* settings = nullptr;  // [batch], not interleaved
  // Graph dynamics only (CPU, a batch of one): the evaluator of the problem's graph; its
  // parameters are `params` (the graph's param_dim of them).
  GraphEvaluator* graph = nullptr;
  // Graph dynamics on the core's own element sweeps (GraphTapeDynamics: the device, or a host run
  // of its layout): the batch's program (one: a graph's shape carries its fingerprint) and each
  // problem's evaluation buffers, not interleaved: problem b's values at graph_values +
  // b * graph_tape.buffer_size, its tangents at graph_lanes + b * graph_tape.buffer_size * (n+m).
  // Its parameters are `params`.
  GraphTapeView graph_tape;
  double* graph_values = nullptr;
  double* graph_lanes = nullptr;
  // A stage cost graph (CPU, a batch of one; null = the quadratic cost): its evaluator, its
  // parameters, and where each iteration's quadratisation goes (cost_quadratic and cost_linear
  // then hold T slices and point at the same elements).
  GraphEvaluator* cost_graph = nullptr;
  const S* cost_params = nullptr;
  S* cost_hessian = nullptr;   // (T, n+m, n+m)
  S* cost_gradient = nullptr;  // (T, n+m)
  // A terminal cost graph (CPU, a batch of one; null = none): the cost of t = T-1 in place of the
  // stage cost's, quadratised into slice T-1 of cost_hessian, cost_gradient (T slices then).
  GraphEvaluator* terminal_cost_graph = nullptr;
  const S* terminal_cost_params = nullptr;
  // A stage constraint graph g(x, u; theta_g) <= 0 (CPU, a batch of one; null = none): its
  // evaluator and parameters. Its rows are the last constraint_graph_rows of the constraint_rows
  // (constraint_slices = T); the core writes their linearisation G_t = dg/dtau, h_t = G_t tau_t -
  // g(tau_t) into graph_G, graph_h (the same elements as constraint_G, constraint_h) and measures
  // them with g itself.
  GraphEvaluator* constraint_graph = nullptr;
  const S* constraint_params = nullptr;
  int constraint_graph_rows = 0;
  S* graph_G = nullptr;  // constraint_G, writable
  S* graph_h = nullptr;  // constraint_h, writable
  // Asked between iterations and line-search trials (host only; null = never stop early).
  StopQuery should_stop = nullptr;
  void* stop_context = nullptr;
  // [batch], not interleaved: read at the same points where the solver cannot call back (a
  // kernel); the host raises problem b's flag while the launch runs (null = none).
  const volatile std::int32_t* stop_flags = nullptr;

  // Outputs.
  S* best_x = nullptr;  // (T, n): the returned iterate
  S* best_u = nullptr;  // (T, m)
  S* K = nullptr;       // (T, m, n): feedback gains (the returned ones when compute_gains)
  S* k = nullptr;       // (T, m): feedforward gains
  ProblemResult* results = nullptr;  // [batch], not interleaved

  // Scratch.
  S* x = nullptr;      // (T, n): current iterate
  S* u = nullptr;      // (T, m)
  S* x_try = nullptr;  // (T, n): line-search trial
  S* u_try = nullptr;  // (T, m)
  // The line search's trials side by side, kLanes of them (a host's lane type; null = one at a
  // time): (T, n, kLanes), then (T, m, kLanes) (ilqr.h, ProblemSolver's Trial).
  S* trial_lanes = nullptr;
  S* A = nullptr;            // (T-1, n, n): linearised dynamics, models only
  S* B = nullptr;            // (T-1, n, m)
  S* multipliers = nullptr;  // (T, k): the augmented Lagrangian's multiplier estimates
};

// The graph that gives step t's cost and its parameters: the terminal cost graph at t = T-1 when
// the problem has one, else the stage cost graph (graph null: the quadratic cost C_t, c_t).
template <typename S>
struct StepCostGraph {
  GraphEvaluator* graph;
  const S* params;
  bool terminal;
};
template <typename S>
MPC_HOST_DEVICE StepCostGraph<S> CostGraphOfStep(const IlqrBatchView<S>& view, int t) {
  if (view.terminal_cost_graph != nullptr && t == view.horizon - 1) {
    return {view.terminal_cost_graph, view.terminal_cost_params, true};
  }
  return {view.cost_graph, view.cost_params, false};
}

// GradientStatus values, in the same order (solver/gradients.h; checked in backward_batch.cc).
enum DeviceGradientStatus : std::int32_t {
  kDeviceGradientOk = 0,
  kDeviceGradientIllConditioned = 1,
  kDeviceGradientRegularized = 2,
  kDeviceGradientNotFinite = 3,
};

// GradientMode values, in the same order (solver/problem.h; checked in packing.cc).
enum DeviceGradientMode : std::int32_t {
  kDeviceModeDefault = 0,
  kDeviceModeFullChain = 1,
  kDeviceModeExact = 2,
};

// Per-problem scalars of a backward pass, one struct per problem (not interleaved).
struct BackwardSettings {
  TimeStep dt;              // as ProblemSettings::dt
  std::int32_t has_bounds;  // 0 | 1
  std::int32_t mode;        // DeviceGradientMode
  // Stage constraints (problem.constraint_*): 0 | 1 the problem has rows; a row is active when
  // G tau - h >= -active_tolerance; smoothing > 0 replaces the hard active set by the relaxed
  // complementarity nu s = smoothing at every row (implicit_backward.h, SmoothingWeights).
  std::int32_t has_constraints;
  double active_tolerance;
  double smoothing;
};

// Which Jacobians of the solution a Jacobian pass writes (ProblemBackward::RunJacobians).
struct JacobianSettings {
  bool x_init = false;  // d tau / d x_init
  bool params = false;  // d tau / d params (models only)
};

// The diagnostics of ProblemGradient (solver/gradients.h), per problem.
struct BackwardResult {
  double regularization;
  double condition_estimate;
  double stationarity_residual;
  double dynamics_residual;
  std::int32_t status;  // DeviceGradientStatus
  std::int32_t active_controls;
  std::int32_t active_constraints;         // stage constraint rows held as equalities
  std::int32_t weakly_active_constraints;  // of those, multiplier ~0; or inactive, residual ~0
};

// Pointers into one backward batch's buffer. S is the scalar (double, or float on request).
// Shapes are per problem, before interleaving. A gradient array has as many slices as the input
// array it differentiates has in the batch (problem.cost_slices, ...): with one slice the pass sums
// over t itself, with one per step the unpacking sums for the problems whose input has one.
template <typename S>
struct BackwardBatchView {
  // The problems' inputs (cost, dynamics, bounds, x_init and slice counts), packed as for a solve;
  // its settings, outputs and scratch pointers are unused.
  IlqrBatchView<S> problem;
  int offset_gradient_slices = 1;  // linear dynamics: 1 | T-1 (ProblemGradient::offset's rule)
  const BackwardSettings* settings = nullptr;  // [batch], not interleaved

  // The point and the cotangent.
  const S* x = nullptr;      // (T, n): x*
  const S* u = nullptr;      // (T, m): u*
  const S* dl_dx = nullptr;  // (T, n): dL/dx* (zeros when absent)
  const S* dl_du = nullptr;  // (T, m): dL/du* (zeros when absent)

  // Outputs (zeroed by the pass itself).
  S* grad_x_init = nullptr;                // (n)
  S* grad_cost_quadratic = nullptr;        // problem.cost_slices x (n+m, n+m)
  S* grad_cost_linear = nullptr;           // problem.linear_slices x (n+m)
  S* grad_transition = nullptr;            // problem.transition_slices x (n, n+m); linear only
  S* grad_offset = nullptr;                // offset_gradient_slices x (n); linear only
  S* grad_params = nullptr;                // (p); models only
  S* grad_cost_params = nullptr;           // (p_c): a cost graph's parameters (problem.cost_graph)
  S* grad_terminal_cost_params = nullptr;  // (p_T): problem.terminal_cost_graph's
  S* grad_constraint_params = nullptr;     // (p_g): a constraint graph's (problem.constraint_graph)
  // The stage constraints' rows as packed (problem.constraint_rows k of them per step; the
  // unpacking maps them to x_lower, x_upper, constraints.G and constraints.h): per step always.
  S* grad_constraint_G = nullptr;     // (T, k, n+m)
  S* grad_constraint_h = nullptr;     // (T, k)
  BackwardResult* results = nullptr;  // [batch], not interleaved

  // Outputs of a Jacobian pass (null in a backward pass).
  JacobianSettings jacobians;
  S* jac_x_init = nullptr;  // (T, n+m, n): d tau_t / d x_init
  S* jac_params = nullptr;  // (T, n+m, p): d tau_t / d params; models only

  // Scratch.
  S* A = nullptr;          // (T-1, n, n), row-major: df/dx at the point; models only
  S* B = nullptr;          // (T-1, n, m), row-major: df/du; models only
  S* P = nullptr;          // (T-1, n, p), column-major per step: df/dparams; models only
  S* curvature = nullptr;  // (T-1, n+m, n+m): lambda_{t+1}' d2f/dtau2; models, kExact only
  // (T, n+m, n+m): sum_r nu_r d2g_r/dtau2 over a constraint graph's rows; kExact only.
  S* constraint_curvature = nullptr;
  S* mixed = nullptr;   // (T-1, n+m, p): lambda_{t+1}' d2f/dtau dp; Jacobian passes only
  S* lambda = nullptr;  // (T, n): costates at the point
  S* free = nullptr;    // (T, m): 1 = free control, 0 = pinned at a bound
  S* K = nullptr;       // (T, m, n): feedback of the pinned LQR
  S* L = nullptr;       // (T, m, m): CholeskyLower of its Quu (identity on pinned controls)
  S* Qux = nullptr;     // (T, m, n): its Qux (pinned rows zero)
  S* V = nullptr;       // (T, n, n): its value function's Hessian
  S* k = nullptr;       // (T, m): its feedforward for the right-hand side being solved
  S* dx = nullptr;      // (T, n): the LQR's solution dtau = (dx, du)
  S* du = nullptr;      // (T, m)
  S* mu = nullptr;      // (T, n): its multipliers dlambda
  // Stage constraints only (k = problem.constraint_rows > 0): the rows' multipliers nu at the
  // point, their part dnu of the LQR's solution, the smoothing's weights, and the active rows as
  // equalities of the LQR by a Schur complement (at most max_active_rows of them).
  int max_active_rows = 0;
  S* nu = nullptr;            // (T, k)
  S* dnu = nullptr;           // (T, k)
  S* row_weight = nullptr;    // (T, k)
  S* active_rows = nullptr;   // (max_active_rows): t * k + r of each active row
  S* row_rhs = nullptr;       // (max_active_rows)
  S* schur = nullptr;         // (max_active_rows, max_active_rows): E (LQR)^-1 E', negated
  S* schur_factor = nullptr;  // its Cholesky factor
};

}  // namespace mpc::core

#endif  // MPC_SOLVER_CORE_BATCH_VIEW_H_
