#ifndef MPC_SOLVER_PROBLEM_H_
#define MPC_SOLVER_PROBLEM_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "solver/models/integrators.h"
#include "solver/problem_shape.h"

namespace mpc {

struct GraphProgram;  // solver/graph/graph_program.h

// Which derivative of the solution a backward pass or a Jacobian computes
// (cpu/implicit_backward.h). Every mode linearises the dynamics at the given solution (x*, u*),
// fixes the active set (|u - bound| <= 1e-8 pins a control) and solves one extra LQR; they differ
// in the Hessian of that LQR and in the chain rule for model parameters.
enum class GradientMode : std::uint8_t {
  // mpc.pytorch's LQRStep.backward, exactly: the LQR of the final linearisation (C, F_lin) with
  // Hessian C; dL/dparams = sum_t dL/df_lin_t . d dyn(x*_t, u*_t)/d params, i.e. F_lin is a
  // constant ("f_only", what mpc.pytorch's AUTO_DIFF path returns). For linear dynamics this is the
  // exact derivative.
  kDefault,
  // As kDefault, but dL/dparams also differentiates F_lin with respect to the parameters (second
  // derivatives of the dynamics by forward-over-forward AD): the complete chain rule through the
  // linearisation mpc.pytorch builds (its `through_F_and_f` variant). Differs from kDefault only in
  // dL/dparams.
  kFullChain,
  // The true derivative of the nonlinear solution map at a (strict, non-degenerate) local optimum:
  // the LQR's Hessian gets the dynamics curvature sum_i lambda_{t+1,i} d2 f_i / d tau_t^2, and
  // params get the complete chain rule. Equals kDefault for linear dynamics.
  kExact,
};

// How a problem is solved (proto SolverMethod). The sampling methods are solver/core/sampling.h.
enum class SolverMethod : std::uint8_t {
  kIlqr,          // box-constrained iLQR from u_init (mpc.pytorch's)
  kCem,           // the cross-entropy method; no implicit gradient
  kMppi,          // MPPI (path-integral weights); no implicit gradient
  kCemThenIlqr,   // CEM, then the iLQR from its plan: differentiable as kIlqr
  kMppiThenIlqr,  // MPPI, then the iLQR from its plan: differentiable as kIlqr
};

const char* SolverMethodName(SolverMethod method);

// Whether `method` samples (CEM or MPPI, alone or before the iLQR).
inline bool UsesSampling(SolverMethod method) { return method != SolverMethod::kIlqr; }

// Whether a solution of `method` is a fixed point of the iLQR, so Backward can differentiate it.
inline bool HasImplicitGradient(SolverMethod method) {
  return method != SolverMethod::kCem && method != SolverMethod::kMppi;
}

// The sampling methods' options (solver/core/sampling.h describes what each does).
struct SamplingOptions {
  int samples = 256;         // control sequences per iteration, >= 1
  int elites = 32;           // CEM: the cheapest samples refit the distribution, in [1, samples]
  int iterations = 8;        // sampling iterations, >= 1
  double initial_std = 1.0;  // the first standard deviation of every control, > 0 (u's units)
  double min_std = 0.05;     // CEM: the standard deviation never drops below this, >= 0
  double temperature = 1.0;  // MPPI's lambda, > 0 (cost units)
  double momentum = 0.0;     // share of the old mean (and std) kept per update, in [0, 1)
  // The noise is drawn every knot_spacing steps and linearly interpolated in between (smooth
  // samples, which long horizons need); 1 = white noise. >= 1.
  int knot_spacing = 1;
  std::uint64_t seed = 0;  // with the problem's index in its request, keys the noise
};

// mpc.pytorch's options, one to one (its name in parentheses), plus what mpcd adds.
struct SolverOptions {
  int max_iterations = 10;             // lqr_iter
  double tolerance = 1e-7;             // eps: stop when ||u_new - u_old||_2 (full step) < tolerance
  double linesearch_decay = 0.2;       // linesearch_decay
  int max_linesearch_iterations = 10;  // max_linesearch_iter
  // best_cost_eps: an iterate replaces the best if cost <= best + this
  double best_cost_eps = 1e-4;
  // not_improved_lim: stop after this many iterations without a new best
  int not_improved_limit = 5;
  // delta_u: > 0 bounds every control's change per iteration to +-delta_u (a trust region on
  // the step, in the box QP and the line search); 0 = none. It changes the path, not the optimum.
  double delta_u = 0.0;
  // Stage constraints (Problem::x_lower, x_upper, constraint_G): the augmented Lagrangian's
  // rounds, and the largest violation (and multiplier residual) an answer may keep.
  int max_constraint_iterations = 20;
  double constraint_tolerance = 1e-8;
  bool compute_gains = false;  // return K_t, k_t linearised at the returned solution
  // Dense Jacobians d tau*/d x_init and d tau*/d params of the returned solution, in
  // `jacobian_mode`, into Solution::x_init_jacobian / params_jacobian. The iLQR ignores these: the
  // backend computes them inside its launch, right after the solve (ComputeRequestedJacobians in
  // solution_jacobians.h), so the time counts as solve time and never runs on the batcher thread.
  bool compute_x_init_jacobian = false;
  bool compute_params_jacobian = false;  // models only
  GradientMode jacobian_mode = GradientMode::kDefault;
  SolverMethod method = SolverMethod::kIlqr;
  SamplingOptions sampling;  // used when UsesSampling(method)
};

// When a solve may give up early: its caller's deadline passed or the caller left. The solver asks
// between iterations and line-search trials and stops with SolveStatus::kDeadline, returning the
// best iterate so far. Owned by the caller (a server call), which keeps it alive during the solve.
struct SolveInterrupt {
  absl::Time deadline = absl::InfiniteFuture();
  const std::atomic<bool>* cancelled = nullptr;  // may be null
};

// How one solve asks its SolveInterrupt: besides the interrupt itself, it stops when the longest
// stretch between two of its checks so far would cross the deadline, so that the answer is ready
// by the deadline rather than one long iteration after it. One per solve (not thread-safe).
class InterruptWatch {
 public:
  explicit InterruptWatch(const SolveInterrupt* interrupt) : interrupt_(interrupt) {}

  bool StopRequested() {
    if (interrupt_->cancelled != nullptr &&
        interrupt_->cancelled->load(std::memory_order_acquire)) {
      return true;
    }
    if (interrupt_->deadline == absl::InfiniteFuture()) return false;
    const absl::Time now = absl::Now();
    if (last_check_ != absl::InfinitePast()) longest_ = std::max(longest_, now - last_check_);
    last_check_ = now;
    return now + longest_ >= interrupt_->deadline;
  }

 private:
  const SolveInterrupt* interrupt_;
  absl::Time last_check_ = absl::InfinitePast();
  absl::Duration longest_ = absl::ZeroDuration();
};

// One control problem, in mpc.pytorch's conventions (DESIGN §2). All arrays are row-major doubles.
// A time-invariant input holds one slice; a time-varying one holds T (or T-1 for dynamics) slices.
struct Problem {
  ProblemShape shape;
  std::vector<double> x_init;          // (n)
  std::vector<double> cost_quadratic;  // C: (n+m, n+m) or (T, n+m, n+m)
  std::vector<double> cost_linear;     // c: (n+m) or (T, n+m)
  std::vector<double> transition;      // F, linear only: (n, n+m) or (T-1, n, n+m)
  std::vector<double> offset;          // f, linear only: empty (= 0), (n) or (T-1, n)
  // Model parameters, models and graphs: (p); empty = the model's defaults (a graph's
  // initializers).
  std::vector<double> params;
  // Graph dynamics only (shape.dynamics.is_graph(), the graph's fingerprint): the compiled graph.
  std::shared_ptr<const GraphProgram> graph;
  // A stage cost graph l(tau; theta_c) instead of the quadratic cost (shape.cost_graph, its
  // fingerprint): its compiled program and parameters theta_c (its param_dim). The core writes
  // each iteration's quadratisation into cost_quadratic and cost_linear, (T, n+m, n+m) and
  // (T, n+m) zeros here.
  std::shared_ptr<const GraphProgram> cost_graph;
  std::vector<double> cost_params;
  // A terminal cost graph l_T(tau; theta_T), the cost of t = T-1 in place of the stage cost's
  // (shape.terminal_cost_graph, its fingerprint): its program and parameters theta_T. The core
  // writes its quadratisation into slice T-1 of cost_quadratic and cost_linear (T slices then).
  std::shared_ptr<const GraphProgram> terminal_cost_graph;
  std::vector<double> terminal_cost_params;
  // Nonlinear stage constraints g(x_t, u_t; theta_g) <= 0 (shape.constraint_graph, its
  // fingerprint): the compiled graph (inputs x, u; its output_dim k rows, packed after the state
  // bounds' and constraints' rows: solver/stage_constraints.h) and theta_g (its param_dim).
  std::shared_ptr<const GraphProgram> constraint_graph;
  std::vector<double> constraint_params;
  double dt = 0.0;  // model time step in seconds; 0 = the model's default
  // How continuous-time dynamics are discretised: a continuous-time model's integrator (kDefault =
  // the model's default); a graph's, where kDefault means the graph is discrete-time (its output
  // is x_next) and any other value that it is continuous-time (its output is dx/dt, dt required).
  // kDefault for discrete-time models (validation refuses any other).
  Integrator integrator = Integrator::kDefault;
  std::vector<double> u_lower;  // empty (unbounded), (m) or (T, m)
  std::vector<double> u_upper;  // empty (unbounded), (m) or (T, m); both bounds or neither
  std::vector<double> u_init;   // empty (zeros) or (T, m): warm start, clamped into the bounds
  // State bounds on x_1 .. x_{T-1}: empty (none), (n) or (T, n) (row 0 unused), +-inf entries
  // unbounded; either may be given alone.
  std::vector<double> x_lower;
  std::vector<double> x_upper;
  // General affine stage constraints G_t tau_t <= h_t with constraint_count rows: G (k, n+m) or
  // (T, k, n+m), h (k) or (T, k); both empty when constraint_count is 0.
  int constraint_count = 0;
  std::vector<double> constraint_G;
  std::vector<double> constraint_h;
  SolverOptions options;
  // Null = solve to the end (max_iterations or convergence). Not an input of the solution: a solve
  // that is not interrupted gives the same bits with or without it.
  const SolveInterrupt* interrupt = nullptr;
  // The problem's index in its request: with options.sampling.seed it keys the sampling methods'
  // noise, so the same request gives the same answer in any batch.
  std::uint32_t sampling_stream = 0;
  // > 0: the state's first slew_state_prefix (= m) entries are u_{t-1}, added by
  // AugmentWithSlewRate (solver/pytorch_terms.h) for mpc.pytorch's slew-rate penalty; responses
  // drop them (CallerShape).
  int slew_state_prefix = 0;
};

// The interrupts of a batch launched where the solver cannot call back (the device): the host
// raises a problem's stop flag (IlqrBatchView::stop_flags) when its interrupt asks to stop, and the
// solver reads it between iterations. One per launch (not thread-safe).
class StopFlagsWatch {
 public:
  explicit StopFlagsWatch(const std::vector<const Problem*>& problems) {
    for (int b = 0; b < static_cast<int>(problems.size()); ++b) {
      if (problems[b]->interrupt != nullptr) watches_.emplace_back(b, problems[b]->interrupt);
    }
  }

  bool empty() const { return watches_.empty(); }

  // Raises the flag of every watched problem whose interrupt asks to stop now.
  void Raise(volatile std::int32_t* flags) {
    for (auto& [b, watch] : watches_) {
      if (flags[b] == 0 && watch.StopRequested()) flags[b] = 1;
    }
  }

 private:
  std::vector<std::pair<int, InterruptWatch>> watches_;
};

// How a backward pass or a Jacobian computation went. Values are always finite; anything but kOk
// deserves a look.
enum class GradientStatus : std::uint8_t {
  kOk,
  // The pinned LQR's reduced Hessian is nearly singular (estimated condition number of some
  // stage's Quu on the free controls above 1e12): the gradient is computed but sensitive.
  kIllConditioned,
  // Quu on the free controls was not positive definite at some stage (the point is not a strict
  // local minimum of the model used, e.g. exact mode away from an optimum); mu I (reported as
  // `regularization`) was added to make the LQR solvable, so the gradient is that of a regularised
  // problem, not the true derivative.
  kRegularized,
  // NaN/Inf in the inputs' derivatives or the result, or no regularisation helped: every gradient
  // is zero.
  kNotFinite,
  // The point is not a solution of the problem (stationarity or dynamics residual above
  // kSolutionResidualTolerance, e.g. a solve stopped before convergence): the values are the
  // formulas evaluated there, not the derivative of a solution. Set by the backends after the pass
  // (MarkUnlessSolution, gradients.h); also a Jacobian of a solve stopped by its deadline, which
  // is not computed (zeros).
  kNotSolution,
  // Not computed: the problem's interrupt (its caller's deadline or cancellation) asked to stop
  // before its turn. Never answered: the server fails the call instead (the caller is gone or out
  // of time), and the metrics do not count it.
  kStopped,
};

// The diagnostics of a Jacobian computation (the same quantities as ProblemGradient's,
// gradients.h).
struct JacobianDiagnostics {
  GradientStatus status = GradientStatus::kOk;
  double regularization = 0.0;
  double condition_estimate = 0.0;
  double stationarity_residual = 0.0;
  double dynamics_residual = 0.0;
  int active_controls = 0;
  int active_constraints = 0;  // as ProblemGradient's (solver/gradients.h)
  int weakly_active_constraints = 0;
};

enum class SolveStatus : std::uint8_t {
  kConverged,         // the returned iterate's full step norm is below tolerance
  kMaxIterations,     // max_iterations ran out first
  kLinesearchFailed,  // not_improved_limit iterations without a better iterate
  kNotFinite,         // NaN/Inf in the rollout, cost or Riccati pass
  kDeadline,          // Problem::interrupt stopped it; the best iterate so far is returned
  // The stage constraints (state bounds, G tau <= h) still violated by more than
  // constraint_tolerance after max_constraint_iterations rounds: the least violating answer found.
  kInfeasible,
};

const char* SolveStatusName(SolveStatus status);

// The answer to one Problem. Arrays are row-major.
struct Solution {
  std::vector<double> x;  // (T, n), x[0] = x_init
  std::vector<double> u;  // (T, m)
  double cost = 0.0;      // sum_t 0.5 tau_t' C_t tau_t + c_t' tau_t (a cost graph: sum_t l(tau_t))
  SolveStatus status = SolveStatus::kMaxIterations;
  int iterations = 0;      // iLQR iterations run
  double step_norm = 0.0;  // full step norm of the returned iterate (mpc.pytorch's full_du_norm)
  // Levenberg-Marquardt mu added to Quu at the last iteration (0 = none).
  double regularization = 0.0;
  // max over t and stage constraint rows of max(0, G_t tau_t - h_t) (0 without constraints).
  double max_constraint_violation = 0.0;
  // Cost graphs: how many stage quadratisations (over steps and iterations) had a Hessian that
  // was not positive semi-definite and was projected (0 for a quadratic cost).
  int cost_hessian_projections = 0;
  std::vector<double> feedback;     // K: (T, m, n) when options.compute_gains, else empty
  std::vector<double> feedforward;  // k: (T, m) when options.compute_gains, else empty
  // Computed by the backend when the options ask (see SolverOptions), at the returned (x, u); a
  // solution that is not finite gets zeros and jacobian_diagnostics.status = kNotFinite.
  std::vector<double> x_init_jacobian;  // (T, n+m, n) when options.compute_x_init_jacobian
  std::vector<double> params_jacobian;  // (T, n+m, p) when options.compute_params_jacobian (models)
  JacobianDiagnostics jacobian_diagnostics;  // meaningful when either Jacobian was asked for

  // Sizes every array for `shape` so that solving allocates nothing.
  void Resize(const ProblemShape& shape, bool with_gains);
};

// Limits a caller enforces on requests (the server takes them from flags).
struct ProblemLimits {
  int max_horizon = 10000;
  int max_state_dim = 256;
  int max_control_dim = 256;
  int max_iterations = 100000;
  int max_linesearch_iterations = 1000;
  int max_samples = 65536;              // options.samples
  int max_sampling_iterations = 10000;  // options.sampling_iterations
};

// Checks values a shape check cannot: finiteness, u_lower <= u_upper, dt, options, limits. Array
// sizes must already match `problem.shape` (see HasConsistentSizes). Messages name the field,
// prefixed by `field_prefix` (e.g. "problems[2].").
absl::Status ValidateProblem(const Problem& problem, const ProblemLimits& limits,
                             const std::string& field_prefix = "");

// Every violation ValidateProblem would report, in its order, appended to `found`: a broken limit
// or size ends the checks (the later ones depend on them); the value checks after them are
// independent, so each broken one is reported.
void CollectProblemViolations(const Problem& problem, const ProblemLimits& limits,
                              const std::string& field_prefix, std::vector<absl::Status>* found);

// Checks every array of `problem` against its shape with the accepted alternatives (DESIGN §2).
absl::Status ValidateProblemSizes(const Problem& problem, const std::string& field_prefix = "");

}  // namespace mpc

#endif  // MPC_SOLVER_PROBLEM_H_
