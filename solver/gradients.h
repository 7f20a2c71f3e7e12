#ifndef MPC_SOLVER_GRADIENTS_H_
#define MPC_SOLVER_GRADIENTS_H_

// Gradients of the MPC solution map (DESIGN §4): the types of a backward (vector-Jacobian product)
// request and its answer. The math lives in cpu/implicit_backward.h.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "solver/problem.h"

namespace mpc {

// GradientMode (the derivative a pass computes) is declared in problem.h, with the options.
const char* GradientModeName(GradientMode mode);

// A backward request for one problem: the problem, the solution the gradient is taken at and the
// cotangent of a scalar loss L with respect to that solution. Nothing is cached between Solve and
// Backward: everything the pass needs is here.
struct BackwardProblem {
  const Problem* problem = nullptr;  // not owned; must outlive the backward call
  std::vector<double> x;             // (T, n): x*, x[0] = x_init (the linearisation point)
  std::vector<double> u;             // (T, m): u*
  std::vector<double> dl_dx;         // (T, n): dL/dx*; empty = zero
  std::vector<double> dl_du;         // (T, m): dL/du*; empty = zero
  GradientMode mode = GradientMode::kDefault;
  // > 0: stage constraints by their relaxed complementarity nu s = constraint_smoothing at every
  // row instead of the hard active set (docs/gradients.md); 0 = exact.
  double constraint_smoothing = 0.0;
};

// GradientStatus (how a pass went) is declared in problem.h, with the Jacobian diagnostics.
const char* GradientStatusName(GradientStatus status);

// dL/d(input) for one problem, mirroring Problem: every array has the size of the input it
// differentiates, row-major. A time-invariant input (one slice) gets the sum over t of the
// per-step gradients.
struct ProblemGradient {
  std::vector<double> x_init;          // (n)
  std::vector<double> cost_quadratic;  // like Problem::cost_quadratic: (n+m, n+m) or (T, n+m, n+m)
  std::vector<double> cost_linear;     // like Problem::cost_linear: (n+m) or (T, n+m)
  // Linear dynamics only (empty for models):
  std::vector<double> transition;  // like Problem::transition: (n, n+m) or (T-1, n, n+m)
  // Like Problem::offset. An absent (zero) offset still gets its gradient, laid out as the
  // transition is: (n) when the transition is one slice, (T-1, n) when it is per step.
  std::vector<double> offset;
  // Models only (empty for linear dynamics): (p), also when Problem::params is empty (the model's
  // defaults were used).
  std::vector<double> params;
  // A cost graph's parameters theta_c (Problem::cost_params), empty without a cost graph; the
  // cost's C and c above are then the quadratisation's and mean nothing to the caller.
  std::vector<double> cost_params;
  // A terminal cost graph's parameters theta_T (Problem::terminal_cost_params), empty without
  // one; the cost's C and c above are then zero at t = T-1.
  std::vector<double> terminal_cost_params;
  // A stage constraint graph's parameters theta_g (Problem::constraint_params), empty without one.
  std::vector<double> constraint_params;
  // Stage constraints, shaped as the problem's (empty when it has none): nonzero only on the
  // entries of active rows (or, smoothed, of rows near their bound).
  std::vector<double> x_lower;
  std::vector<double> x_upper;
  std::vector<double> constraint_G;
  std::vector<double> constraint_h;

  GradientStatus status = GradientStatus::kOk;
  double regularization = 0.0;  // mu added to Quu on the free controls (0 = none)
  // Largest estimated condition number of Quu restricted to the free controls, over t.
  double condition_estimate = 0.0;
  // How far the point is from a solution of the problem (the gradient formulas assume one):
  // max over free controls of |dcost/du_t + B_t' lambda_{t+1}| (zero at an exact optimum;
  // mpc.pytorch evaluates its formulas wherever it stopped), and the largest of |x_0 - x_init| and
  // |x_{t+1} - f(x_t, u_t)| (max norms).
  double stationarity_residual = 0.0;
  double dynamics_residual = 0.0;
  int active_controls = 0;  // controls pinned at a bound (|u - bound| <= 1e-8)
  // Stage constraint rows (state bounds and rows of constraints.G, per step) held as equalities:
  // G tau - h >= -max(1e-8, options.constraint_tolerance) at the point.
  int active_constraints = 0;
  // Where the solution map has a kink: active rows whose multiplier is ~0 (<= 1e-6 (1 + the
  // largest)), or that no direction moves (dependent on pinned controls and x_0), and inactive
  // rows within 100 active tolerances of their bound.
  int weakly_active_constraints = 0;
};

// The active-set threshold of mpc.pytorch's backward: a control within this of a bound is pinned.
inline constexpr double kActiveSetTolerance = 1e-8;

// How the arrays of a BackwardProblem are named in messages: by default "solution.x",
// "solution.u", "cotangent.x" (dl_dx), "cotangent.u" (dl_du); for problem i of a BackwardRequest,
// the proto paths the client sent (BackwardRequestFieldNames).
struct BackwardFieldNames {
  std::string solution = "solution.";    // prefix of x and u
  std::string cotangent = "cotangent.";  // prefix of dl_dx and dl_du (the cotangent's x and u)
};

// "solutions[i].", "cotangents[i].".
BackwardFieldNames BackwardRequestFieldNames(int index);

// Checks a BackwardProblem's sizes and values against its problem (which must itself be valid):
// x (T, n), u (T, m), dl_dx empty or (T, n), dl_du empty or (T, m) (the shapes of
// problem_fields.h), all finite. This is the one scan of these arrays' values: callers that
// accept requests run it once, backends only check sizes (ValidateBackwardBatch).
absl::Status ValidateBackwardProblem(const BackwardProblem& problem,
                                     const BackwardFieldNames& names = {});

// What a backend checks before a backward batch: as many gradients as problems (`gradients`),
// no missing problem, and every array of the right size (a wrong size would make a pass read out
// of bounds, so the whole batch is refused; messages name "BackwardBatch: problems[i]: <field>").
// Sizes only, O(1) per problem: the values were scanned once, by ValidateBackwardProblem, before
// the problems were queued (a non-finite value that reaches a pass anyway gives kNotFinite and a
// zero gradient, never a crash).
absl::Status ValidateBackwardBatch(absl::Span<const BackwardProblem* const> problems,
                                   std::size_t gradients);

// A residual is "small" (the point is a solution) below this times the problem's scale: 1 + the
// largest |c| + the largest |C| times the largest |x|, |u| (so units cancel).
inline constexpr double kSolutionResidualTolerance = 1e-5;

// Turns kOk into kNotSolution when `gradient`'s residuals show that the point it was taken at
// (x, u) is not a solution of `problem`: a gradient there is not the derivative the formulas
// assume, and must not be reported as fine. Other statuses are kept (they say more).
void MarkUnlessSolution(const Problem& problem, absl::Span<const double> x,
                        absl::Span<const double> u, ProblemGradient* gradient);

// Whether `problem`'s interrupt (its caller's deadline or cancellation, if any) asks to stop before
// its gradient is computed: a backend then leaves it out with kStopped, so nothing runs for a
// caller that is gone. Its own watch: the backward pass of one problem has no iterations to time.
bool StopRequestedBefore(const BackwardProblem& problem);

// Convenience for tests and tools: one backward pass on a fresh workspace (cpu/implicit_backward).
// The problem must pass ValidateBackwardProblem.
ProblemGradient ComputeGradient(const BackwardProblem& problem);

}  // namespace mpc

#endif  // MPC_SOLVER_GRADIENTS_H_
