#include "solver/cuda/ilqr_batch.h"

#include <algorithm>

#include "solver/models/model_registry.h"

namespace mpc::device_ilqr {

static_assert(kDeviceConverged == static_cast<int>(SolveStatus::kConverged));
static_assert(kDeviceMaxIterations == static_cast<int>(SolveStatus::kMaxIterations));
static_assert(kDeviceLinesearchFailed == static_cast<int>(SolveStatus::kLinesearchFailed));
static_assert(kDeviceNotFinite == static_cast<int>(SolveStatus::kNotFinite));

DeviceKernel SelectDeviceKernel(const ProblemShape& shape) {
  switch (shape.dynamics) {
    case DynamicsKind::kPendulum:
      return DeviceKernel::kPendulum;
    case DynamicsKind::kCartpole:
      return DeviceKernel::kCartpole;
    case DynamicsKind::kLinear:
      if (shape.state_dim == 8 && shape.control_dim == 4) return DeviceKernel::kLinear8x4;
      if (shape.state_dim <= kGenericMaxStateDim && shape.control_dim <= kGenericMaxControlDim) {
        return DeviceKernel::kLinearGeneric;
      }
      return DeviceKernel::kNone;
  }
  return DeviceKernel::kNone;
}

namespace {

// How many slices an array of `size` numbers holds when one slice has `slice_size`.
int Slices(std::size_t size, int slice_size) {
  return slice_size == 0 ? 0 : static_cast<int>(size / static_cast<std::size_t>(slice_size));
}

// Slice s of an input with `available` slices: a time-invariant input repeats its only slice.
int SourceSlice(int s, int available) { return available > 1 ? s : 0; }

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
  const bool linear = shape.dynamics == DynamicsKind::kLinear;
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
  layout.u_lower = take(static_cast<std::size_t>(layout.bound_slices) * m);
  layout.u_upper = take(static_cast<std::size_t>(layout.bound_slices) * m);
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
  view.cost_quadratic = buffer + layout.cost_quadratic;
  view.cost_linear = buffer + layout.cost_linear;
  view.transition = buffer + layout.transition;
  view.offset = buffer + layout.offset;
  view.params = buffer + layout.params;
  view.u_lower = buffer + layout.u_lower;
  view.u_upper = buffer + layout.u_upper;
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

    const int cost_available = Slices(p.cost_quadratic.size(), nt * nt);
    for (int s = 0; s < layout.cost_slices; ++s) {
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
    for (int s = 0; s < layout.linear_slices; ++s) {
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
    for (int k = 0; k < layout.param_dim; ++k) {
      const double v = p.params.empty() ? model->default_params[k] : p.params[k];
      at(layout.params, k) = static_cast<S>(v);
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
    for (int i = 0; i < n; ++i) at(layout.x_init, i) = static_cast<S>(p.x_init[i]);
    for (int e = 0; e < T * m; ++e) {
      at(layout.u_init, e) = p.u_init.empty() ? S(0) : static_cast<S>(p.u_init[e]);
    }

    ProblemSettings& set = settings[b];
    set.tolerance = p.options.tolerance;
    set.linesearch_decay = p.options.linesearch_decay;
    set.best_cost_eps = p.options.best_cost_eps;
    set.dt = model == nullptr ? 0.0 : (p.dt > 0.0 ? p.dt : model->default_dt);
    set.max_iterations = p.options.max_iterations;
    set.max_linesearch_iterations = p.options.max_linesearch_iterations;
    set.not_improved_limit = p.options.not_improved_limit;
    set.has_bounds = bounded ? 1 : 0;
    set.compute_gains = p.options.compute_gains ? 1 : 0;
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

}  // namespace mpc::device_ilqr
