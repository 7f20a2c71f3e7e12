#ifndef MPC_SOLVER_PYTORCH_TERMS_H_
#define MPC_SOLVER_PYTORCH_TERMS_H_

// mpc.pytorch's u_zero_I and slew_rate_penalty, as rewrites of a Problem that the core then solves
// and differentiates unchanged (docs/gradients.md, "Slew rate and pinned controls"):
// - pinned controls become bounds (lower = upper);
// - the slew-rate penalty 0.5 gamma ||u_t - u_{t-1}||^2 becomes mpc.pytorch's own construction,
//   an LQR whose state [u_{t-1}; x_t] carries the previous control (linear dynamics).
// The conversion applies them to a validated Problem; solutions and gradients of the augmented
// problem are mapped back to the caller's shapes by the functions below.

#include <memory>
#include <vector>

#include "absl/types/span.h"
#include "solver/gradients.h"
#include "solver/graph/graph_program.h"
#include "solver/problem.h"

namespace mpc {

// Pins u_t[j] where mask[t * m + j] != 0 (mask (T, m)): both of its bounds become 0 clamped into
// its bounds (mpc.pytorch sets such a control to 0, then clamps it). The other controls keep their
// bounds, or get -inf/+inf when the problem had none. The bounds become (T, m).
void PinZeroedControls(absl::Span<const double> mask, Problem* problem);

// Rewrites a problem with linear or graph dynamics, slew-rate penalty `gamma` > 0 and u_{-1} =
// prev_ctrl (m; empty = zeros) into mpc.pytorch's augmented problem: state [u_{t-1}; x_t]
// (n + m), cost C' = [[g I, 0, -g I], [0, Cxx, Cxu], [-g I, Cux, Cuu + g I]], c' = [0; c],
// x_init' = [prev_ctrl; x_init], dynamics [u_t; f(x_t, u_t)]: F' = [[0, 0, I]; [0, F]],
// f' = [0; f] (absent stays absent), or the graph of AugmentGraphWithPassthrough.
// Sets problem->slew_state_prefix = m.
void AugmentWithSlewRate(double gamma, absl::Span<const double> prev_ctrl, Problem* problem);

// The graph of [u; f(x, u; theta)] with state [u_prev; x] (mpc.pytorch's
// CtrlPassthroughDynamics): `graph`'s tape on a buffer shifted by m, then one gather. Same
// parameters and sha256 (gradients name the caller's graph); the fingerprint, the batch identity,
// is tagged so that it differs from the graph's.
std::shared_ptr<const GraphProgram> AugmentGraphWithPassthrough(const GraphProgram& graph);

// The caller's shape of an augmented problem (state_dim less slew_state_prefix).
ProblemShape CallerShape(const Problem& problem);

// Drops the leading slew_state_prefix entries of every state of a solution of an augmented
// problem: x (T, n'), feedback (T, m, n') become (T, n), (T, m, n).
void StripSlewState(const Problem& problem, Solution* solution);

// The Backward point of an augmented problem from the caller's: x (T, n) becomes
// [u_{t-1}; x_t] (u_{-1} = x_init'[:m]) and dl_dx (T, n) gets zeros for u_{t-1}.
void AugmentBackwardPoint(const Problem& problem, BackwardProblem* item);

// The gradient of an augmented problem restricted to the caller's inputs (state n, controls m):
// x_init, C, c, F and f are the blocks of the augmented ones that hold them.
void ReduceSlewGradient(int n, int m, ProblemGradient* gradient);

}  // namespace mpc

#endif  // MPC_SOLVER_PYTORCH_TERMS_H_
