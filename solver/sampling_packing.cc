#include "solver/sampling_packing.h"

#include <algorithm>
#include <cstdint>

namespace mpc::core {

bool AnyUsesSampling(absl::Span<const Problem* const> problems) {
  return std::any_of(problems.begin(), problems.end(),
                     [](const Problem* p) { return UsesSampling(p->options.method); });
}

SamplingBatchLayout PlanSamplingBatch(absl::Span<const Problem* const> problems) {
  SamplingBatchLayout layout;
  layout.problem = PlanIlqrBatch(problems);
  for (const Problem* p : problems) {
    if (!UsesSampling(p->options.method)) continue;
    layout.max_samples = std::max(layout.max_samples, p->options.sampling.samples);
    layout.max_elites = std::max(layout.max_elites, p->options.sampling.elites);
    layout.max_iterations = std::max(layout.max_iterations, p->options.sampling.iterations);
  }
  const std::size_t batch = layout.problem.batch;
  const std::size_t steps =
      static_cast<std::size_t>(layout.problem.shape.horizon) * layout.problem.shape.control_dim;
  std::size_t next = layout.problem.total_size;
  auto take = [&](std::size_t per_problem) {
    const std::size_t at = next;
    next += per_problem * batch;
    return at;
  };
  layout.mean = take(steps);
  layout.std = take(steps);
  layout.plan = take(steps);
  layout.costs = take(layout.max_samples);
  layout.total_size = next;
  layout.elite_size = static_cast<std::size_t>(layout.max_elites) * batch;
  return layout;
}

template <typename S>
SamplingBatchView<S> MakeSamplingBatchView(const SamplingBatchLayout& layout, S* buffer,
                                           int* elites, const ProblemSettings* settings,
                                           ProblemResult* results,
                                           const SamplingSettings* sampling_settings,
                                           SamplingResult* sampling_results) {
  SamplingBatchView<S> view;
  view.problem = MakeIlqrBatchView<S>(layout.problem, buffer, settings, results);
  view.u_init = view.problem.u_init;
  view.problem.u_init = buffer + layout.plan;
  view.settings = sampling_settings;
  view.results = sampling_results;
  view.mean = buffer + layout.mean;
  view.std = buffer + layout.std;
  view.plan = buffer + layout.plan;
  view.costs = buffer + layout.costs;
  view.elites = elites;
  return view;
}

template <typename S>
void PackSamplingInputs(absl::Span<const Problem* const> problems,
                        const SamplingBatchLayout& layout, S* buffer, ProblemSettings* settings,
                        SamplingSettings* sampling_settings) {
  PackIlqrInputs<S>(problems, layout.problem, buffer, settings);
  for (std::size_t b = 0; b < problems.size(); ++b) {
    const SolverOptions& options = problems[b]->options;
    const SamplingOptions& sampling = options.sampling;
    SamplingSettings& set = sampling_settings[b];
    set = SamplingSettings{};
    switch (options.method) {
      case SolverMethod::kIlqr:
        set.method = kSamplingNone;
        break;
      case SolverMethod::kCem:
      case SolverMethod::kCemThenIlqr:
        set.method = kSamplingCem;
        break;
      case SolverMethod::kMppi:
      case SolverMethod::kMppiThenIlqr:
        set.method = kSamplingMppi;
        break;
    }
    set.polish = HasImplicitGradient(options.method) ? 1 : 0;
    if (set.polish == 0) settings[b].max_iterations = 0;
    set.samples = sampling.samples;
    set.elites = sampling.elites;
    set.iterations = sampling.iterations;
    set.knot_spacing = sampling.knot_spacing;
    set.initial_std = sampling.initial_std;
    set.min_std = sampling.min_std;
    set.temperature = sampling.temperature;
    set.momentum = sampling.momentum;
    set.tolerance = options.tolerance;
    set.seed[0] = static_cast<std::uint32_t>(sampling.seed);
    set.seed[1] = static_cast<std::uint32_t>(sampling.seed >> 32);
    set.stream = problems[b]->sampling_stream;
  }
}

template SamplingBatchView<double> MakeSamplingBatchView(const SamplingBatchLayout&, double*, int*,
                                                         const ProblemSettings*, ProblemResult*,
                                                         const SamplingSettings*, SamplingResult*);
template SamplingBatchView<float> MakeSamplingBatchView(const SamplingBatchLayout&, float*, int*,
                                                        const ProblemSettings*, ProblemResult*,
                                                        const SamplingSettings*, SamplingResult*);
template void PackSamplingInputs(absl::Span<const Problem* const>, const SamplingBatchLayout&,
                                 double*, ProblemSettings*, SamplingSettings*);
template void PackSamplingInputs(absl::Span<const Problem* const>, const SamplingBatchLayout&,
                                 float*, ProblemSettings*, SamplingSettings*);

}  // namespace mpc::core
