// Sampling throughput of CEM (solver/core/sampling.h) on the CPU: sample-steps (samples x horizon
// x problems x iterations) per second, pendulum and cartpole, 512 to 4,096 samples, T = 25, 50,
// 100, one thread and two; 4 problems per batch (so that two threads share the work), 4 CEM
// iterations of 32 elites, white noise (knot_spacing 1), no iLQR polish.
//
//   build/bin/mpcd_sampling_bench --benchmark_counters_tabular=true
//
// Counters: Msample_steps_per_s, ns_per_sample_step, flops_per_sample_step (one step of a rollout:
// the model's Step counted on a counting scalar, bench/flop_count.h, the stage cost and the
// perturbation mean + std * noise; the Philox draw is integer work and not counted), GFLOPs.
#include <memory>
#include <vector>

#include "bench/bench_problems.h"
#include "bench/flop_count.h"
#include "benchmark/benchmark.h"
#include "solver/cpu/cpu_backend.h"
#include "solver/models/cartpole.h"
#include "solver/models/pendulum.h"

namespace mpc::bench {
namespace {

constexpr int kProblems = 4;
constexpr int kIterations = 4;

// Flops of one rollout step: the model, 0.5 tau' C tau + c' tau (StageCost's loops) and the
// perturbation of each control.
template <class Model>
double SampleStepFlops() {
  const double n = Model::kStateDim, m = Model::kControlDim;
  const double cost = n * (2 * n + 4) + m * (2 * n + 2 * m + 5);
  return static_cast<double>(ModelStepFlops<Model, false>()) + cost + 2 * m;
}

void BM_Cem(benchmark::State& state, Kind kind) {
  const int samples = static_cast<int>(state.range(0));
  const int horizon = static_cast<int>(state.range(1));
  const int threads = static_cast<int>(state.range(2));
  std::vector<Problem> problems;
  for (int i = 0; i < kProblems; ++i) {
    testing::RandomModelOptions options;
    options.horizon = horizon;
    Problem p = kind == Kind::kPendulum ? testing::RandomPendulumProblem(options, i)
                                        : testing::RandomCartpoleProblem(options, i);
    p.options.method = SolverMethod::kCem;
    p.options.sampling = {.samples = samples, .elites = 32, .iterations = kIterations};
    p.sampling_stream = static_cast<std::uint32_t>(i);
    problems.push_back(p);
  }
  std::vector<Solution> solutions(kProblems);
  std::vector<const Problem*> inputs;
  std::vector<Solution*> outputs;
  for (int i = 0; i < kProblems; ++i) {
    inputs.push_back(&problems[i]);
    outputs.push_back(&solutions[i]);
  }
  const std::unique_ptr<CpuBackend> backend = CreateBackendOrSkip(state, threads);
  if (backend == nullptr) return;
  (void)backend->SolveBatch(inputs, outputs);  // warm the per-thread workspaces
  for (auto _ : state) {
    benchmark::DoNotOptimize(backend->SolveBatch(inputs, outputs));
  }
  const double steps = static_cast<double>(kProblems) * samples * horizon * kIterations;
  const double flops =
      kind == Kind::kPendulum ? SampleStepFlops<PendulumModel>() : SampleStepFlops<CartpoleModel>();
  state.counters["Msample_steps_per_s"] =
      benchmark::Counter(steps * 1e-6, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["ns_per_sample_step"] = benchmark::Counter(
      steps * 1e-9, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.counters["flops_per_sample_step"] = flops;
  state.counters["GFLOPs"] =
      benchmark::Counter(steps * flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void SamplingArguments(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2}) {
    for (int horizon : {25, 50, 100}) {
      for (int samples : {512, 1024, 2048, 4096}) b->Args({samples, horizon, threads});
    }
  }
  b->ArgNames({"samples", "T", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond);
}

BENCHMARK_CAPTURE(BM_Cem, pendulum, Kind::kPendulum)->Apply(SamplingArguments);
BENCHMARK_CAPTURE(BM_Cem, cartpole, Kind::kCartpole)->Apply(SamplingArguments);

}  // namespace
}  // namespace mpc::bench

BENCHMARK_MAIN();
