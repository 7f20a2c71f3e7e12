#include "solver/packing.h"

#include <algorithm>
#include <vector>

#include "solver/core/dispatch.h"
#include "solver/graph/graph_program.h"
#include "solver/models/model_registry.h"
#include "solver/stage_constraints.h"

namespace mpc::core {

static_assert(kDeviceConverged == static_cast<int>(SolveStatus::kConverged));
static_assert(kDeviceMaxIterations == static_cast<int>(SolveStatus::kMaxIterations));
static_assert(kDeviceLinesearchFailed == static_cast<int>(SolveStatus::kLinesearchFailed));
static_assert(kDeviceNotFinite == static_cast<int>(SolveStatus::kNotFinite));
static_assert(kDeviceDeadline == static_cast<int>(SolveStatus::kDeadline));
static_assert(kDeviceInfeasible == static_cast<int>(SolveStatus::kInfeasible));

namespace {

// How many slices an array of `size` numbers holds when one slice has `slice_size`.
int Slices(std::size_t size, int slice_size) {
  return slice_size == 0 ? 0 : static_cast<int>(size / static_cast<std::size_t>(slice_size));
}

// Slice s of an input with `available` slices: a time-invariant input repeats its only slice.
int SourceSlice(int s, int available) { return available > 1 ? s : 0; }

// The dynamics' time step with every default resolved (`model`: the problem's built-in model or
// null): a model's default dt and, continuous-time, its default integrator; a graph's as given.
TimeStep ResolvedTimeStep(const Problem& p, const ModelInfo* model) {
  if (model == nullptr) return TimeStep(p.dt, p.integrator);
  Integrator integrator = p.integrator;
  if (model->continuous && integrator == Integrator::kDefault) {
    integrator = model->default_integrator;
  }
  return TimeStep(p.dt > 0.0 ? p.dt : model->default_dt, integrator);
}

}  // namespace

IlqrBatchLayout PlanIlqrBatch(absl::Span<const Problem* const> problems) {
  IlqrBatchLayout layout;
  if (problems.empty()) return layout;
  const ProblemShape shape = problems[0]->shape;
  const int n = shape.state_dim, m = shape.control_dim, T = shape.horizon, nt = n + m;
  layout.shape = shape;
  layout.batch = static_cast<int>(problems.size());
  const ModelInfo* model = FindModel(shape.dynamics);
  layout.param_dim = model == nullptr ? 0 : static_cast<int>(model->default_params.size());
  if (shape.dynamics.is_graph()) layout.param_dim = problems[0]->graph->param_dim;
  if (shape.has_cost_graph()) layout.cost_param_dim = problems[0]->cost_graph->param_dim;
  if (shape.has_terminal_cost_graph()) {
    layout.terminal_cost_param_dim = problems[0]->terminal_cost_graph->param_dim;
  }
  if (shape.has_constraint_graph()) {
    layout.constraint_param_dim = problems[0]->constraint_graph->param_dim;
    layout.constraint_graph_rows = GraphConstraintRows(*problems[0]);
  }
  const bool linear = shape.dynamics.is_linear();
  layout.transition_slices = linear ? 1 : 0;
  for (const Problem* p : problems) {
    layout.cost_slices = std::max(layout.cost_slices, Slices(p->cost_quadratic.size(), nt * nt));
    layout.linear_slices = std::max(layout.linear_slices, Slices(p->cost_linear.size(), nt));
    if (linear) {
      layout.transition_slices =
          std::max(layout.transition_slices, Slices(p->transition.size(), n * nt));
      layout.offset_slices = std::max(layout.offset_slices, Slices(p->offset.size(), n));
    }
    layout.bound_slices = std::max(layout.bound_slices, Slices(p->u_lower.size(), m));
    layout.bound_slices = std::max(layout.bound_slices, Slices(p->u_upper.size(), m));
    layout.any_gains = layout.any_gains || p->options.compute_gains;
    const int rows = StageConstraintRows(*p);
    layout.constraint_rows = std::max(layout.constraint_rows, rows);
    if (rows > 0) {
      layout.constraint_slices =
          std::max(layout.constraint_slices, StageConstraintsVary(*p) ? T : 1);
    }
  }

  if (shape.has_cost_graph() || shape.has_terminal_cost_graph()) {
    // The core writes each step's quadratisation of a graph there (a terminal graph's into slice
    // T-1, the stage cost's slices repeated before it).
    layout.cost_slices = T;
    layout.linear_slices = T;
  }

  const std::size_t batch = layout.batch;
  std::size_t next = 0;
  auto take = [&](std::size_t per_problem) {
    const std::size_t at = next;
    next += per_problem * batch;
    return at;
  };
  layout.cost_quadratic = take(static_cast<std::size_t>(layout.cost_slices) * nt * nt);
  layout.cost_linear = take(static_cast<std::size_t>(layout.linear_slices) * nt);
  layout.transition = take(static_cast<std::size_t>(layout.transition_slices) * n * nt);
  layout.offset = take(static_cast<std::size_t>(layout.offset_slices) * n);
  layout.params = take(layout.param_dim);
  layout.cost_params = take(layout.cost_param_dim);
  layout.terminal_cost_params = take(layout.terminal_cost_param_dim);
  layout.constraint_params = take(layout.constraint_param_dim);
  layout.u_lower = take(static_cast<std::size_t>(layout.bound_slices) * m);
  layout.u_upper = take(static_cast<std::size_t>(layout.bound_slices) * m);
  const std::size_t constraint_rows =
      static_cast<std::size_t>(layout.constraint_slices) * layout.constraint_rows;
  layout.constraint_G = take(constraint_rows * nt);
  layout.constraint_h = take(constraint_rows);
  layout.x_init = take(n);
  layout.u_init = take(static_cast<std::size_t>(T) * m);
  layout.input_size = next;
  layout.best_x = take(static_cast<std::size_t>(T) * n);
  layout.best_u = take(static_cast<std::size_t>(T) * m);
  layout.K = take(static_cast<std::size_t>(T) * m * n);
  layout.k = take(static_cast<std::size_t>(T) * m);
  layout.output_size = (layout.any_gains ? next : layout.K) - layout.best_x;
  layout.x = take(static_cast<std::size_t>(T) * n);
  layout.u = take(static_cast<std::size_t>(T) * m);
  layout.x_try = take(static_cast<std::size_t>(T) * n);
  layout.u_try = take(static_cast<std::size_t>(T) * m);
  const std::size_t steps = linear ? 0 : static_cast<std::size_t>(std::max(T - 1, 0));
  layout.A = take(steps * n * n);
  layout.B = take(steps * n * m);
  layout.multipliers = take(static_cast<std::size_t>(T) * layout.constraint_rows);
  layout.total_size = next;
  return layout;
}

template <typename S>
IlqrBatchView<S> MakeIlqrBatchView(const IlqrBatchLayout& layout, S* buffer,
                                   const ProblemSettings* settings, ProblemResult* results) {
  IlqrBatchView<S> view;
  view.batch = layout.batch;
  view.state_dim = layout.shape.state_dim;
  view.control_dim = layout.shape.control_dim;
  view.horizon = layout.shape.horizon;
  view.cost_slices = layout.cost_slices;
  view.linear_slices = layout.linear_slices;
  view.transition_slices = layout.transition_slices;
  view.offset_slices = layout.offset_slices;
  view.bound_slices = layout.bound_slices;
  view.constraint_rows = layout.constraint_rows;
  view.constraint_slices = layout.constraint_slices;
  view.cost_quadratic = buffer + layout.cost_quadratic;
  view.cost_linear = buffer + layout.cost_linear;
  view.transition = buffer + layout.transition;
  view.offset = buffer + layout.offset;
  view.params = buffer + layout.params;
  if (layout.shape.has_cost_graph()) view.cost_params = buffer + layout.cost_params;
  if (layout.shape.has_terminal_cost_graph()) {
    view.terminal_cost_params = buffer + layout.terminal_cost_params;
  }
  if (layout.shape.has_cost_graph() || layout.shape.has_terminal_cost_graph()) {
    view.cost_hessian = buffer + layout.cost_quadratic;
    view.cost_gradient = buffer + layout.cost_linear;
  }
  view.u_lower = buffer + layout.u_lower;
  view.u_upper = buffer + layout.u_upper;
  view.constraint_G = buffer + layout.constraint_G;
  view.constraint_h = buffer + layout.constraint_h;
  if (layout.shape.has_constraint_graph()) {
    // The graph's rows are the last of every step's (a batch of one: no padding rows after them).
    view.constraint_params = buffer + layout.constraint_params;
    view.constraint_graph_rows = layout.constraint_graph_rows;
    view.graph_G = buffer + layout.constraint_G;
    view.graph_h = buffer + layout.constraint_h;
  }
  view.x_init = buffer + layout.x_init;
  view.u_init = buffer + layout.u_init;
  view.settings = settings;
  view.best_x = buffer + layout.best_x;
  view.best_u = buffer + layout.best_u;
  view.K = buffer + layout.K;
  view.k = buffer + layout.k;
  view.results = results;
  view.x = buffer + layout.x;
  view.u = buffer + layout.u;
  view.x_try = buffer + layout.x_try;
  view.u_try = buffer + layout.u_try;
  view.A = buffer + layout.A;
  view.B = buffer + layout.B;
  view.multipliers = buffer + layout.multipliers;
  return view;
}

template <typename S>
void PackIlqrInputs(absl::Span<const Problem* const> problems, const IlqrBatchLayout& layout,
                    S* buffer, ProblemSettings* settings) {
  const ProblemShape& shape = layout.shape;
  const int n = shape.state_dim, m = shape.control_dim, T = shape.horizon, nt = n + m;
  const std::size_t batch = layout.batch;
  const ModelInfo* model = FindModel(shape.dynamics);
  for (std::size_t b = 0; b < batch; ++b) {
    const Problem& p = *problems[b];
    // Element e of problem b of the array at `offset`.
    auto at = [&](std::size_t offset, std::size_t e) -> S& {
      return buffer[offset + e * batch + b];
    };

    // A cost graph's slices are written by the core before they are read.
    const int cost_available = Slices(p.cost_quadratic.size(), nt * nt);
    for (int s = 0; s < (shape.has_cost_graph() ? 0 : layout.cost_slices); ++s) {
      const double* C = p.cost_quadratic.data() +
                        static_cast<std::size_t>(SourceSlice(s, cost_available)) * nt * nt;
      for (int i = 0; i < nt; ++i) {
        for (int j = 0; j < nt; ++j) {
          // Only the symmetric part of C enters the objective (as in the CPU solver's Load).
          at(layout.cost_quadratic, (static_cast<std::size_t>(s) * nt + i) * nt + j) =
              static_cast<S>(0.5 * (C[i * nt + j] + C[j * nt + i]));
        }
      }
    }
    const int linear_available = Slices(p.cost_linear.size(), nt);
    for (int s = 0; s < (shape.has_cost_graph() ? 0 : layout.linear_slices); ++s) {
      const double* c =
          p.cost_linear.data() + static_cast<std::size_t>(SourceSlice(s, linear_available)) * nt;
      for (int i = 0; i < nt; ++i) {
        at(layout.cost_linear, static_cast<std::size_t>(s) * nt + i) = static_cast<S>(c[i]);
      }
    }
    const int transition_available = Slices(p.transition.size(), n * nt);
    for (int s = 0; s < layout.transition_slices; ++s) {
      for (int e = 0; e < n * nt; ++e) {
        const double v =
            transition_available == 0
                ? 0.0
                : p.transition[static_cast<std::size_t>(SourceSlice(s, transition_available)) * n *
                                   nt +
                               e];
        at(layout.transition, static_cast<std::size_t>(s) * n * nt + e) = static_cast<S>(v);
      }
    }
    const int offset_available = Slices(p.offset.size(), n);
    for (int s = 0; s < layout.offset_slices; ++s) {
      for (int i = 0; i < n; ++i) {
        const double v =
            offset_available == 0
                ? 0.0
                : p.offset[static_cast<std::size_t>(SourceSlice(s, offset_available)) * n + i];
        at(layout.offset, static_cast<std::size_t>(s) * n + i) = static_cast<S>(v);
      }
    }
    const std::vector<double>* default_params =
        model != nullptr ? &model->default_params : (p.graph ? &p.graph->default_params : nullptr);
    for (int k = 0; k < layout.param_dim; ++k) {
      const double v = p.params.empty() ? (*default_params)[k] : p.params[k];
      at(layout.params, k) = static_cast<S>(v);
    }
    for (int k = 0; k < layout.cost_param_dim; ++k) {
      at(layout.cost_params, k) = static_cast<S>(p.cost_params[k]);
    }
    for (int k = 0; k < layout.terminal_cost_param_dim; ++k) {
      at(layout.terminal_cost_params, k) = static_cast<S>(p.terminal_cost_params[k]);
    }
    for (int k = 0; k < layout.constraint_param_dim; ++k) {
      at(layout.constraint_params, k) = static_cast<S>(p.constraint_params[k]);
    }
    const bool bounded = !p.u_lower.empty();
    const int lower_available = Slices(p.u_lower.size(), m);
    const int upper_available = Slices(p.u_upper.size(), m);
    for (int s = 0; s < layout.bound_slices; ++s) {
      for (int j = 0; j < m; ++j) {
        const std::size_t e = static_cast<std::size_t>(s) * m + j;
        at(layout.u_lower, e) =
            bounded ? static_cast<S>(p.u_lower[SourceSlice(s, lower_available) * m + j]) : S(0);
        at(layout.u_upper, e) =
            bounded ? static_cast<S>(p.u_upper[SourceSlice(s, upper_available) * m + j]) : S(0);
      }
    }
    const int rows = StageConstraintRows(p);
    for (int s = 0; s < layout.constraint_slices; ++s) {
      for (int r = 0; r < layout.constraint_rows; ++r) {
        // Rows the problem does not have (fewer than the batch's) are 0 <= 0.
        const std::size_t e = static_cast<std::size_t>(s) * layout.constraint_rows + r;
        for (int i = 0; i < nt; ++i) {
          at(layout.constraint_G, e * nt + i) =
              static_cast<S>(StageConstraintCoefficient(p, s, r, i));
        }
        at(layout.constraint_h, e) = static_cast<S>(StageConstraintBound(p, s, r));
      }
    }
    for (int i = 0; i < n; ++i) at(layout.x_init, i) = static_cast<S>(p.x_init[i]);
    for (int e = 0; e < T * m; ++e) {
      at(layout.u_init, e) = p.u_init.empty() ? S(0) : static_cast<S>(p.u_init[e]);
    }

    ProblemSettings& set = settings[b];
    set.tolerance = p.options.tolerance;
    set.linesearch_decay = p.options.linesearch_decay;
    set.best_cost_eps = p.options.best_cost_eps;
    set.dt = ResolvedTimeStep(p, model);
    set.delta_u = p.options.delta_u;
    set.max_iterations = p.options.max_iterations;
    set.max_linesearch_iterations = p.options.max_linesearch_iterations;
    set.not_improved_limit = p.options.not_improved_limit;
    set.has_bounds = bounded ? 1 : 0;
    set.compute_gains = p.options.compute_gains ? 1 : 0;
    set.has_constraints = rows > 0 ? 1 : 0;
    set.max_constraint_iterations = p.options.max_constraint_iterations;
    set.constraint_tolerance = p.options.constraint_tolerance;
  }
}

template <typename S>
void UnpackIlqrOutputs(absl::Span<const Problem* const> problems, const IlqrBatchLayout& layout,
                       const S* outputs, const ProblemResult* results,
                       absl::Span<Solution* const> solutions) {
  const ProblemShape& shape = layout.shape;
  const int n = shape.state_dim, m = shape.control_dim, T = shape.horizon;
  const std::size_t batch = layout.batch;
  for (std::size_t b = 0; b < batch; ++b) {
    const Problem& p = *problems[b];
    Solution& out = *solutions[b];
    out.Resize(shape, p.options.compute_gains);
    auto at = [&](std::size_t offset, std::size_t e) {
      return outputs[offset - layout.best_x + e * batch + b];
    };
    for (int e = 0; e < T * n; ++e) out.x[e] = static_cast<double>(at(layout.best_x, e));
    for (int e = 0; e < T * m; ++e) out.u[e] = static_cast<double>(at(layout.best_u, e));
    if (p.options.compute_gains) {
      for (int e = 0; e < T * m * n; ++e) out.feedback[e] = static_cast<double>(at(layout.K, e));
      for (int e = 0; e < T * m; ++e) out.feedforward[e] = static_cast<double>(at(layout.k, e));
    }
    const ProblemResult& r = results[b];
    out.cost = r.cost;
    out.status = static_cast<SolveStatus>(r.status);
    out.iterations = r.iterations;
    out.step_norm = r.step_norm;
    out.regularization = r.regularization;
    out.max_constraint_violation = r.max_violation;
    out.cost_hessian_projections = r.cost_projections;
  }
}

std::vector<std::vector<int>> GroupByShape(absl::Span<const Problem* const> problems) {
  std::vector<std::vector<int>> groups;
  std::vector<ProblemShape> shapes;
  for (int i = 0; i < static_cast<int>(problems.size()); ++i) {
    const ProblemShape& shape = problems[i]->shape;
    const auto found = std::find(shapes.begin(), shapes.end(), shape);
    if (found == shapes.end()) {
      shapes.push_back(shape);
      groups.push_back({i});
    } else {
      groups[found - shapes.begin()].push_back(i);
    }
  }
  return groups;
}

template IlqrBatchView<double> MakeIlqrBatchView(const IlqrBatchLayout&, double*,
                                                 const ProblemSettings*, ProblemResult*);
template IlqrBatchView<float> MakeIlqrBatchView(const IlqrBatchLayout&, float*,
                                                const ProblemSettings*, ProblemResult*);
template void PackIlqrInputs(absl::Span<const Problem* const>, const IlqrBatchLayout&, double*,
                             ProblemSettings*);
template void PackIlqrInputs(absl::Span<const Problem* const>, const IlqrBatchLayout&, float*,
                             ProblemSettings*);
template void UnpackIlqrOutputs(absl::Span<const Problem* const>, const IlqrBatchLayout&,
                                const double*, const ProblemResult*, absl::Span<Solution* const>);
template void UnpackIlqrOutputs(absl::Span<const Problem* const>, const IlqrBatchLayout&,
                                const float*, const ProblemResult*, absl::Span<Solution* const>);

static_assert(kDeviceGradientOk == static_cast<int>(GradientStatus::kOk));
static_assert(kDeviceGradientIllConditioned == static_cast<int>(GradientStatus::kIllConditioned));
static_assert(kDeviceGradientRegularized == static_cast<int>(GradientStatus::kRegularized));
static_assert(kDeviceGradientNotFinite == static_cast<int>(GradientStatus::kNotFinite));
static_assert(kDeviceModeDefault == static_cast<int>(GradientMode::kDefault));
static_assert(kDeviceModeFullChain == static_cast<int>(GradientMode::kFullChain));
static_assert(kDeviceModeExact == static_cast<int>(GradientMode::kExact));

// Stage constraints' gradients run on the CPU workers (the core's pass compiles for the device,
// but its Schur complement buffers grow as (T min(k, m))^2 per problem: not for a GPU batch).
bool DeviceSupportsBackward(const BackwardProblem& problem) {
  return RunsOnDevice(problem.problem->shape) && StageConstraintRows(*problem.problem) == 0;
}

namespace {

// Slices of the offset gradient of one problem (ProblemGradient::offset): the offset's own, else
// laid out as the transition is.
int OffsetGradientSlices(const Problem& p) {
  const int n = p.shape.state_dim, nt = p.shape.tau_dim(), T = p.shape.horizon;
  if (!p.offset.empty()) return static_cast<int>(p.offset.size()) / n;
  const bool invariant = p.transition.size() == static_cast<std::size_t>(n) * nt;
  return invariant ? 1 : T - 1;
}

std::vector<const Problem*> ProblemsOf(absl::Span<const BackwardProblem* const> problems) {
  std::vector<const Problem*> result;
  result.reserve(problems.size());
  for (const BackwardProblem* bp : problems) result.push_back(bp->problem);
  return result;
}

// out (wanted slices of slice_size) from an output array with `available` slices of problem b:
// copied when the counts agree, summed over the slices in order (in S, as the device sums a single
// slice) when the problem's input has one slice and the batch one per step.
template <typename S>
void ReadSlices(const S* outputs, std::size_t batch, std::size_t b, int available, int slice_size,
                std::vector<double>* out) {
  const int wanted = static_cast<int>(out->size()) / std::max(slice_size, 1);
  if (wanted == available) {
    for (std::size_t e = 0; e < out->size(); ++e) {
      (*out)[e] = static_cast<double>(outputs[e * batch + b]);
    }
    return;
  }
  if (wanted != 1) return;  // no slices (a horizon of 1 has no dynamics steps)
  for (int e = 0; e < slice_size; ++e) {
    S sum = 0;
    for (int s = 0; s < available; ++s) {
      sum += outputs[(static_cast<std::size_t>(s) * slice_size + e) * batch + b];
    }
    (*out)[e] = static_cast<double>(sum);
  }
}

// Problem b's stage constraint gradients (per step and packed row, as the pass writes them) into
// out's x_lower, x_upper, constraint_G, constraint_h (StageConstraintGradient's mapping).
template <typename S>
void ReadConstraintGradient(const Problem& p, const IlqrBatchLayout& in, const S* grad_G,
                            const S* grad_h, std::size_t batch, std::size_t b,
                            ProblemGradient* out) {
  StageConstraintGradient gradient(p, &out->x_lower, &out->x_upper, &out->constraint_G,
                                   &out->constraint_h);
  const int rows = StageConstraintRows(p), k = in.constraint_rows, nt = in.shape.tau_dim();
  std::vector<double> row(nt);
  for (int t = 0; t < in.shape.horizon; ++t) {
    for (int r = 0; r < rows; ++r) {
      const std::size_t e = static_cast<std::size_t>(t) * k + r;
      for (int i = 0; i < nt; ++i) row[i] = static_cast<double>(grad_G[(e * nt + i) * batch + b]);
      gradient.Add(t, r, row, static_cast<double>(grad_h[e * batch + b]));
    }
  }
}

void ReadDiagnostics(const BackwardResult& r, ProblemGradient* out) {
  out->status = static_cast<GradientStatus>(r.status);
  out->regularization = r.regularization;
  out->condition_estimate = r.condition_estimate;
  out->stationarity_residual = r.stationarity_residual;
  out->dynamics_residual = r.dynamics_residual;
  out->active_controls = r.active_controls;
  out->active_constraints = r.active_constraints;
  out->weakly_active_constraints = r.weakly_active_constraints;
}

}  // namespace

BackwardBatchLayout PlanBackwardBatch(absl::Span<const BackwardProblem* const> problems,
                                      const JacobianSettings& jacobians) {
  BackwardBatchLayout layout;
  if (problems.empty()) return layout;
  layout.jacobians = jacobians;
  layout.jacobians.params = jacobians.params && !problems[0]->problem->shape.dynamics.is_linear();
  layout.problem = PlanIlqrBatch(ProblemsOf(problems));
  const IlqrBatchLayout& in = layout.problem;
  const ProblemShape& shape = in.shape;
  const bool linear = shape.dynamics.is_linear();
  const int n = shape.state_dim, m = shape.control_dim, T = shape.horizon, nt = n + m;
  for (const BackwardProblem* bp : problems) {
    if (linear) {
      layout.offset_gradient_slices =
          std::max(layout.offset_gradient_slices, OffsetGradientSlices(*bp->problem));
    }
  }
  const std::size_t batch = in.batch;
  std::size_t next = in.input_size;
  auto take = [&](std::size_t per_problem) {
    const std::size_t at = next;
    next += per_problem * batch;
    return at;
  };
  const std::size_t steps = static_cast<std::size_t>(std::max(T - 1, 0));
  layout.x = take(static_cast<std::size_t>(T) * n);
  layout.u = take(static_cast<std::size_t>(T) * m);
  layout.dl_dx = take(static_cast<std::size_t>(T) * n);
  layout.dl_du = take(static_cast<std::size_t>(T) * m);
  layout.input_size = next;
  layout.grad_x_init = take(n);
  layout.grad_cost_quadratic = take(static_cast<std::size_t>(in.cost_slices) * nt * nt);
  layout.grad_cost_linear = take(static_cast<std::size_t>(in.linear_slices) * nt);
  layout.grad_transition =
      take(linear ? static_cast<std::size_t>(in.transition_slices) * n * nt : 0);
  layout.grad_offset =
      take(linear ? static_cast<std::size_t>(layout.offset_gradient_slices) * n : 0);
  layout.grad_params = take(in.param_dim);
  layout.grad_cost_params = take(in.cost_param_dim);
  layout.grad_terminal_cost_params = take(in.terminal_cost_param_dim);
  layout.grad_constraint_params = take(in.constraint_param_dim);
  const std::size_t row_steps = static_cast<std::size_t>(T) * in.constraint_rows;
  layout.grad_constraint_G = take(row_steps * nt);
  layout.grad_constraint_h = take(row_steps);
  const std::size_t tau_steps = static_cast<std::size_t>(T) * nt;
  layout.jac_x_init = take(layout.jacobians.x_init ? tau_steps * n : 0);
  layout.jac_params = take(layout.jacobians.params ? tau_steps * in.param_dim : 0);
  layout.output_size = next - layout.grad_x_init;
  const bool exact = std::any_of(problems.begin(), problems.end(), [](const BackwardProblem* bp) {
    return bp->mode == GradientMode::kExact;
  });
  layout.A = take(linear ? 0 : steps * n * n);
  layout.B = take(linear ? 0 : steps * n * m);
  // A graph's df/dtheta is never formed (reverse sweeps in the backward pass instead).
  layout.P = take(linear || shape.dynamics.is_graph() ? 0 : steps * n * in.param_dim);
  layout.curvature = take(linear || !exact ? 0 : steps * nt * nt);
  layout.constraint_curvature =
      take(exact && shape.has_constraint_graph() ? static_cast<std::size_t>(T) * nt * nt : 0);
  layout.mixed = take(layout.jacobians.params ? steps * nt * in.param_dim : 0);
  layout.lambda = take(static_cast<std::size_t>(T) * n);
  layout.free = take(static_cast<std::size_t>(T) * m);
  layout.K = take(static_cast<std::size_t>(T) * m * n);
  layout.L = take(static_cast<std::size_t>(T) * m * m);
  layout.Qux = take(static_cast<std::size_t>(T) * m * n);
  layout.V = take(static_cast<std::size_t>(T) * n * n);
  layout.k = take(static_cast<std::size_t>(T) * m);
  layout.dx = take(static_cast<std::size_t>(T) * n);
  layout.du = take(static_cast<std::size_t>(T) * m);
  layout.mu = take(static_cast<std::size_t>(T) * n);
  layout.max_active_rows = T * std::min(in.constraint_rows, m);
  const std::size_t active = layout.max_active_rows;
  layout.nu = take(row_steps);
  layout.dnu = take(row_steps);
  layout.row_weight = take(row_steps);
  layout.active_rows = take(active);
  layout.row_rhs = take(active);
  layout.schur = take(active * active);
  layout.schur_factor = take(active * active);
  layout.total_size = next;
  return layout;
}

template <typename S>
BackwardBatchView<S> MakeBackwardBatchView(const BackwardBatchLayout& layout, S* buffer,
                                           const BackwardSettings* settings,
                                           BackwardResult* results) {
  BackwardBatchView<S> view;
  view.problem = MakeIlqrBatchView<S>(layout.problem, buffer, nullptr, nullptr);
  // Only the problem's inputs are valid in this buffer.
  view.problem.best_x = view.problem.best_u = view.problem.K = view.problem.k = nullptr;
  view.problem.x = view.problem.u = view.problem.x_try = view.problem.u_try = nullptr;
  view.problem.A = view.problem.B = nullptr;
  view.offset_gradient_slices = layout.offset_gradient_slices;
  view.settings = settings;
  view.x = buffer + layout.x;
  view.u = buffer + layout.u;
  view.dl_dx = buffer + layout.dl_dx;
  view.dl_du = buffer + layout.dl_du;
  view.grad_x_init = buffer + layout.grad_x_init;
  view.grad_cost_quadratic = buffer + layout.grad_cost_quadratic;
  view.grad_cost_linear = buffer + layout.grad_cost_linear;
  view.grad_transition = buffer + layout.grad_transition;
  view.grad_offset = buffer + layout.grad_offset;
  view.grad_params = buffer + layout.grad_params;
  view.grad_cost_params = buffer + layout.grad_cost_params;
  view.grad_terminal_cost_params = buffer + layout.grad_terminal_cost_params;
  view.grad_constraint_params = buffer + layout.grad_constraint_params;
  view.results = results;
  view.jacobians = layout.jacobians;
  view.jac_x_init = buffer + layout.jac_x_init;
  view.jac_params = buffer + layout.jac_params;
  view.A = buffer + layout.A;
  view.B = buffer + layout.B;
  view.P = buffer + layout.P;
  view.curvature = buffer + layout.curvature;
  view.constraint_curvature = buffer + layout.constraint_curvature;
  view.mixed = buffer + layout.mixed;
  view.lambda = buffer + layout.lambda;
  view.free = buffer + layout.free;
  view.K = buffer + layout.K;
  view.L = buffer + layout.L;
  view.Qux = buffer + layout.Qux;
  view.V = buffer + layout.V;
  view.k = buffer + layout.k;
  view.dx = buffer + layout.dx;
  view.du = buffer + layout.du;
  view.mu = buffer + layout.mu;
  view.grad_constraint_G = buffer + layout.grad_constraint_G;
  view.grad_constraint_h = buffer + layout.grad_constraint_h;
  view.max_active_rows = layout.max_active_rows;
  view.nu = buffer + layout.nu;
  view.dnu = buffer + layout.dnu;
  view.row_weight = buffer + layout.row_weight;
  view.active_rows = buffer + layout.active_rows;
  view.row_rhs = buffer + layout.row_rhs;
  view.schur = buffer + layout.schur;
  view.schur_factor = buffer + layout.schur_factor;
  return view;
}

template <typename S>
void PackBackwardInputs(absl::Span<const BackwardProblem* const> problems,
                        const BackwardBatchLayout& layout, S* buffer, BackwardSettings* settings) {
  const IlqrBatchLayout& in = layout.problem;
  std::vector<ProblemSettings> problem_settings(in.batch);
  PackIlqrInputs<S>(ProblemsOf(problems), in, buffer, problem_settings.data());
  const int n = in.shape.state_dim, m = in.shape.control_dim, T = in.shape.horizon;
  const std::size_t batch = in.batch;
  for (std::size_t b = 0; b < batch; ++b) {
    const BackwardProblem& bp = *problems[b];
    auto at = [&](std::size_t offset, std::size_t e) -> S& {
      return buffer[offset + e * batch + b];
    };
    for (int e = 0; e < T * n; ++e) {
      at(layout.x, e) = static_cast<S>(bp.x[e]);
      at(layout.dl_dx, e) = bp.dl_dx.empty() ? S(0) : static_cast<S>(bp.dl_dx[e]);
    }
    for (int e = 0; e < T * m; ++e) {
      at(layout.u, e) = static_cast<S>(bp.u[e]);
      at(layout.dl_du, e) = bp.dl_du.empty() ? S(0) : static_cast<S>(bp.dl_du[e]);
    }
    settings[b].dt = problem_settings[b].dt;
    settings[b].has_bounds = problem_settings[b].has_bounds;
    settings[b].mode = static_cast<std::int32_t>(bp.mode);
    settings[b].has_constraints = problem_settings[b].has_constraints;
    settings[b].active_tolerance =
        std::max(kActiveSetTolerance, bp.problem->options.constraint_tolerance);
    settings[b].smoothing = bp.constraint_smoothing;
  }
}

template <typename S>
void UnpackBackwardOutputs(absl::Span<const BackwardProblem* const> problems,
                           const BackwardBatchLayout& layout, const S* outputs,
                           const BackwardResult* results,
                           absl::Span<ProblemGradient* const> gradients) {
  const IlqrBatchLayout& in = layout.problem;
  const int n = in.shape.state_dim, nt = in.shape.tau_dim();
  const bool linear = in.shape.dynamics.is_linear();
  const std::size_t batch = in.batch;
  auto array = [&](std::size_t offset) { return outputs + (offset - layout.grad_x_init); };
  for (std::size_t b = 0; b < batch; ++b) {
    const Problem& p = *problems[b]->problem;
    ProblemGradient& out = *gradients[b];
    out.x_init.resize(n);
    out.cost_quadratic.resize(p.cost_quadratic.size());
    out.cost_linear.resize(p.cost_linear.size());
    if (linear) {
      out.transition.resize(p.transition.size());
      out.offset.resize(static_cast<std::size_t>(OffsetGradientSlices(p)) * n);
      out.params.clear();
    } else {
      out.transition.clear();
      out.offset.clear();
      out.params.resize(in.param_dim);
    }
    ReadSlices(array(layout.grad_x_init), batch, b, 1, n, &out.x_init);
    ReadSlices(array(layout.grad_cost_quadratic), batch, b, in.cost_slices, nt * nt,
               &out.cost_quadratic);
    ReadSlices(array(layout.grad_cost_linear), batch, b, in.linear_slices, nt, &out.cost_linear);
    if (linear) {
      ReadSlices(array(layout.grad_transition), batch, b, in.transition_slices, n * nt,
                 &out.transition);
      ReadSlices(array(layout.grad_offset), batch, b, layout.offset_gradient_slices, n,
                 &out.offset);
    } else {
      ReadSlices(array(layout.grad_params), batch, b, 1, in.param_dim, &out.params);
    }
    out.cost_params.resize(in.cost_param_dim);
    ReadSlices(array(layout.grad_cost_params), batch, b, 1, in.cost_param_dim, &out.cost_params);
    out.terminal_cost_params.resize(in.terminal_cost_param_dim);
    ReadSlices(array(layout.grad_terminal_cost_params), batch, b, 1, in.terminal_cost_param_dim,
               &out.terminal_cost_params);
    out.constraint_params.resize(in.constraint_param_dim);
    ReadSlices(array(layout.grad_constraint_params), batch, b, 1, in.constraint_param_dim,
               &out.constraint_params);
    ReadConstraintGradient(p, in, array(layout.grad_constraint_G), array(layout.grad_constraint_h),
                           batch, b, &out);
    ReadDiagnostics(results[b], &out);
  }
}

template <typename S>
void UnpackJacobianOutputs(const BackwardBatchLayout& layout, const S* outputs,
                           const BackwardResult* results, std::size_t b,
                           std::vector<double>* x_init, std::vector<double>* params,
                           ProblemGradient* diagnostics) {
  const IlqrBatchLayout& in = layout.problem;
  const std::size_t tau_steps = static_cast<std::size_t>(in.shape.horizon) * in.shape.tau_dim();
  auto array = [&](std::size_t offset) { return outputs + (offset - layout.grad_x_init); };
  x_init->resize(layout.jacobians.x_init ? tau_steps * in.shape.state_dim : 0);
  params->resize(layout.jacobians.params ? tau_steps * in.param_dim : 0);
  ReadSlices(array(layout.jac_x_init), in.batch, b, 1, static_cast<int>(x_init->size()), x_init);
  ReadSlices(array(layout.jac_params), in.batch, b, 1, static_cast<int>(params->size()), params);
  ReadDiagnostics(results[b], diagnostics);
}

template BackwardBatchView<double> MakeBackwardBatchView(const BackwardBatchLayout&, double*,
                                                         const BackwardSettings*, BackwardResult*);
template BackwardBatchView<float> MakeBackwardBatchView(const BackwardBatchLayout&, float*,
                                                        const BackwardSettings*, BackwardResult*);
template void PackBackwardInputs(absl::Span<const BackwardProblem* const>,
                                 const BackwardBatchLayout&, double*, BackwardSettings*);
template void PackBackwardInputs(absl::Span<const BackwardProblem* const>,
                                 const BackwardBatchLayout&, float*, BackwardSettings*);
template void UnpackBackwardOutputs(absl::Span<const BackwardProblem* const>,
                                    const BackwardBatchLayout&, const double*,
                                    const BackwardResult*, absl::Span<ProblemGradient* const>);
template void UnpackBackwardOutputs(absl::Span<const BackwardProblem* const>,
                                    const BackwardBatchLayout&, const float*, const BackwardResult*,
                                    absl::Span<ProblemGradient* const>);
template void UnpackJacobianOutputs(const BackwardBatchLayout&, const double*,
                                    const BackwardResult*, std::size_t, std::vector<double>*,
                                    std::vector<double>*, ProblemGradient*);

}  // namespace mpc::core
