#ifndef MPC_SOLVER_TRACKING_COST_H_
#define MPC_SOLVER_TRACKING_COST_H_

// The tracking cost sum_t 0.5 sum_i w_t[i] (tau_t[i] - goal_t[i])^2 (mpcd.proto's TrackingCost) as
// the quadratic cost the solver takes, C_t = diag(w_t), c_t = -w_t * goal_t (the constant
// 0.5 sum w goal^2 is left out), and the gradients of C, c mapped back to the goals and weights by
// the chain rule (docs/gradients.md, "Tracking costs").

#include <vector>

#include "solver/gradients.h"
#include "solver/problem.h"

namespace mpc {

// One input of a tracking cost, k values per step: the same at every step (values (k)) or one row
// per step (values (T, k)).
struct TrackingInput {
  std::vector<double> values;
  bool per_step = false;
};

// Goals and weights of states (k = n) and controls (k = m), absent ones already filled with their
// defaults (goal 0, weight 1).
struct TrackingCost {
  TrackingInput x_goal;
  TrackingInput u_goal;
  TrackingInput w_x;
  TrackingInput w_u;
  // (n): the state weights at t = T-1 in place of w_x's; empty: w_x's.
  std::vector<double> w_x_terminal;
};

// dL/d(each input of a TrackingCost), shaped like it (w_x_terminal empty when it was).
struct TrackingGradient {
  std::vector<double> x_goal;
  std::vector<double> u_goal;
  std::vector<double> w_x;
  std::vector<double> w_u;
  std::vector<double> w_x_terminal;
};

// Sets problem->cost_quadratic and cost_linear from `tracking` for problem->shape: C (n+m, n+m)
// when the weights are the same at every step, else (T, n+m, n+m); c (n+m) when every input is,
// else (T, n+m). The inputs' sizes must fit the shape.
void SetTrackingCost(const TrackingCost& tracking, Problem* problem);

// The gradient of `tracking`'s inputs from `gradient` (cost_quadratic and cost_linear shaped as
// SetTrackingCost made them for `shape`): dL/dgoal_t = -w_t * dL/dc_t and
// dL/dw_t = diag(dL/dC_t) - goal_t * dL/dc_t, summed over t for an input given once for all steps.
TrackingGradient ToTrackingGradient(const TrackingCost& tracking, const ProblemShape& shape,
                                    const ProblemGradient& gradient);

}  // namespace mpc

#endif  // MPC_SOLVER_TRACKING_COST_H_
