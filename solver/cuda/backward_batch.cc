#include "solver/cuda/backward_batch.h"

#include <algorithm>
#include <vector>

#include "solver/models/model_registry.h"

namespace mpc::device_ilqr {

static_assert(kDeviceGradientOk == static_cast<int>(GradientStatus::kOk));
static_assert(kDeviceGradientIllConditioned == static_cast<int>(GradientStatus::kIllConditioned));
static_assert(kDeviceGradientRegularized == static_cast<int>(GradientStatus::kRegularized));
static_assert(kDeviceGradientNotFinite == static_cast<int>(GradientStatus::kNotFinite));
static_assert(kDeviceModeDefault == static_cast<int>(GradientMode::kDefault));
static_assert(kDeviceModeFullChain == static_cast<int>(GradientMode::kFullChain));
static_assert(kDeviceModeExact == static_cast<int>(GradientMode::kExact));

bool DeviceSupportsBackward(const BackwardProblem& problem) {
  const ProblemShape& shape = problem.problem->shape;
  if (SelectDeviceKernel(shape) == DeviceKernel::kNone) return false;
  return shape.dynamics == DynamicsKind::kLinear || problem.mode != GradientMode::kExact;
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

}  // namespace

BackwardBatchLayout PlanBackwardBatch(absl::Span<const BackwardProblem* const> problems) {
  BackwardBatchLayout layout;
  if (problems.empty()) return layout;
  layout.problem = PlanIlqrBatch(ProblemsOf(problems));
  const IlqrBatchLayout& in = layout.problem;
  const ProblemShape& shape = in.shape;
  const bool linear = shape.dynamics == DynamicsKind::kLinear;
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
  layout.output_size = next - layout.grad_x_init;
  layout.A = take(linear ? 0 : steps * n * n);
  layout.B = take(linear ? 0 : steps * n * m);
  layout.P = take(linear ? 0 : steps * n * in.param_dim);
  layout.lambda = take(static_cast<std::size_t>(T) * n);
  layout.free = take(static_cast<std::size_t>(T) * m);
  layout.K = take(static_cast<std::size_t>(T) * m * n);
  layout.k = take(static_cast<std::size_t>(T) * m);
  layout.dx = take(static_cast<std::size_t>(T) * n);
  layout.du = take(static_cast<std::size_t>(T) * m);
  layout.mu = take(static_cast<std::size_t>(T) * n);
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
  view.results = results;
  view.A = buffer + layout.A;
  view.B = buffer + layout.B;
  view.P = buffer + layout.P;
  view.lambda = buffer + layout.lambda;
  view.free = buffer + layout.free;
  view.K = buffer + layout.K;
  view.k = buffer + layout.k;
  view.dx = buffer + layout.dx;
  view.du = buffer + layout.du;
  view.mu = buffer + layout.mu;
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
  }
}

template <typename S>
void UnpackBackwardOutputs(absl::Span<const BackwardProblem* const> problems,
                           const BackwardBatchLayout& layout, const S* outputs,
                           const BackwardResult* results,
                           absl::Span<ProblemGradient* const> gradients) {
  const IlqrBatchLayout& in = layout.problem;
  const int n = in.shape.state_dim, nt = in.shape.tau_dim();
  const bool linear = in.shape.dynamics == DynamicsKind::kLinear;
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
    const BackwardResult& r = results[b];
    out.status = static_cast<GradientStatus>(r.status);
    out.regularization = r.regularization;
    out.condition_estimate = r.condition_estimate;
    out.stationarity_residual = r.stationarity_residual;
    out.dynamics_residual = r.dynamics_residual;
    out.active_controls = r.active_controls;
  }
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

}  // namespace mpc::device_ilqr
