#include "solver/tracking_cost.h"

#include <cstddef>

namespace mpc {
namespace {

bool WeightsPerStep(const TrackingCost& tracking) {
  return tracking.w_x.per_step || tracking.w_u.per_step || !tracking.w_x_terminal.empty();
}

bool LinearPerStep(const TrackingCost& tracking) {
  return WeightsPerStep(tracking) || tracking.x_goal.per_step || tracking.u_goal.per_step;
}

// Where entry i (of k per step) of `input` at step t lives.
std::size_t IndexAt(const TrackingInput& input, int t, int i, int k) {
  return input.per_step ? static_cast<std::size_t>(t) * k + i : static_cast<std::size_t>(i);
}

// goal_t[j] and w_t[j] for entry j of tau_t, and where their gradients go.
struct TauEntry {
  const TrackingInput* goal;
  const TrackingInput* weight;
  std::vector<double>* goal_gradient;
  std::vector<double>* weight_gradient;
  int index;      // in the input (x or u part)
  int size;       // n or m
  bool terminal;  // the weight is w_x_terminal[index]
};

// TauEntry for entry j of tau_t; the gradient pointers are null when `gradient` is.
TauEntry EntryAt(const TrackingCost& tracking, const ProblemShape& shape, int t, int j,
                 TrackingGradient* gradient) {
  const int n = shape.state_dim;
  const bool state = j < n;
  TauEntry entry;
  entry.goal = state ? &tracking.x_goal : &tracking.u_goal;
  entry.weight = state ? &tracking.w_x : &tracking.w_u;
  entry.index = state ? j : j - n;
  entry.size = state ? n : shape.control_dim;
  entry.terminal = state && t == shape.horizon - 1 && !tracking.w_x_terminal.empty();
  entry.goal_gradient = nullptr;
  entry.weight_gradient = nullptr;
  if (gradient != nullptr) {
    entry.goal_gradient = state ? &gradient->x_goal : &gradient->u_goal;
    entry.weight_gradient = entry.terminal ? &gradient->w_x_terminal
                            : state        ? &gradient->w_x
                                           : &gradient->w_u;
  }
  return entry;
}

double GoalOf(const TauEntry& e, int t) {
  return e.goal->values[IndexAt(*e.goal, t, e.index, e.size)];
}

double WeightOf(const TrackingCost& tracking, const TauEntry& e, int t) {
  if (e.terminal) return tracking.w_x_terminal[e.index];
  return e.weight->values[IndexAt(*e.weight, t, e.index, e.size)];
}

}  // namespace

void SetTrackingCost(const TrackingCost& tracking, Problem* problem) {
  const ProblemShape& shape = problem->shape;
  const int T = shape.horizon;
  const int nt = shape.tau_dim();
  const int quadratic_steps = WeightsPerStep(tracking) ? T : 1;
  const int linear_steps = LinearPerStep(tracking) ? T : 1;
  problem->cost_quadratic.assign(static_cast<std::size_t>(quadratic_steps) * nt * nt, 0.0);
  problem->cost_linear.assign(static_cast<std::size_t>(linear_steps) * nt, 0.0);
  for (int t = 0; t < linear_steps; ++t) {
    for (int j = 0; j < nt; ++j) {
      const TauEntry e = EntryAt(tracking, shape, t, j, nullptr);
      const double w = WeightOf(tracking, e, t);
      if (t < quadratic_steps) {
        problem->cost_quadratic[(static_cast<std::size_t>(t) * nt + j) * nt + j] = w;
      }
      problem->cost_linear[static_cast<std::size_t>(t) * nt + j] = -w * GoalOf(e, t);
    }
  }
}

TrackingGradient ToTrackingGradient(const TrackingCost& tracking, const ProblemShape& shape,
                                    const ProblemGradient& gradient) {
  const int T = shape.horizon;
  const int nt = shape.tau_dim();
  const bool quadratic_per_step = WeightsPerStep(tracking);
  const bool linear_per_step = LinearPerStep(tracking);
  TrackingGradient out;
  out.x_goal.assign(tracking.x_goal.values.size(), 0.0);
  out.u_goal.assign(tracking.u_goal.values.size(), 0.0);
  out.w_x.assign(tracking.w_x.values.size(), 0.0);
  out.w_u.assign(tracking.w_u.values.size(), 0.0);
  out.w_x_terminal.assign(tracking.w_x_terminal.size(), 0.0);
  // A time-invariant C or c holds its gradient summed over t; it is counted once, at t = 0 (then
  // every input it depends on is time-invariant too, so only the sum over t is ever read).
  for (int t = 0; t < T; ++t) {
    for (int j = 0; j < nt; ++j) {
      double dC = 0.0;
      if (quadratic_per_step || t == 0) {
        const std::size_t slice = quadratic_per_step ? static_cast<std::size_t>(t) : 0;
        dC = gradient.cost_quadratic[(slice * nt + j) * nt + j];
      }
      double dc = 0.0;
      if (linear_per_step || t == 0) {
        const std::size_t slice = linear_per_step ? static_cast<std::size_t>(t) : 0;
        dc = gradient.cost_linear[slice * nt + j];
      }
      const TauEntry e = EntryAt(tracking, shape, t, j, &out);
      const double w = WeightOf(tracking, e, t);
      (*e.goal_gradient)[IndexAt(*e.goal, t, e.index, e.size)] -= w * dc;
      const std::size_t weight_index =
          e.terminal ? static_cast<std::size_t>(e.index) : IndexAt(*e.weight, t, e.index, e.size);
      (*e.weight_gradient)[weight_index] += dC - GoalOf(e, t) * dc;
    }
  }
  return out;
}

}  // namespace mpc
