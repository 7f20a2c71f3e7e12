// Backward (vector-Jacobian product) time against the forward solve of the same problems (DESIGN
// §9: backward <= 0.25x forward): pendulum (n=3, m=1, T=20), cartpole (n=5, m=1, T=25) and a random
// linear problem (n=8, m=4, T=30) at batch 1/16/64/256, forward = exactly 10 iLQR iterations with
// the settings of bench/solver_bench.cc; the backward pass differentiates the forward's solution
// with a random cotangent, one BackwardBatch call per batch.
//
//   build/bin/mpcd_backward_bench --benchmark_counters_tabular=true
//
// Counters: us_per_problem (backward wall time of a batch / batch size), forward_us_per_problem
// (the same for SolveBatch on the same problems, timed in the same process right before),
// backward_over_forward (their ratio: the target is <= 0.25), threads.
#include <algorithm>
#include <chrono>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "bench/bench_problems.h"
#include "benchmark/benchmark.h"
#include "solver/cpu/cpu_backend.h"
#include "solver/gradients.h"
#include "tests/testing/random_problems.h"

namespace mpc::bench {
namespace {

// Wall seconds per call of `run`, the median of 5 rounds of enough calls to fill ~20 ms each.
template <class F>
double SecondsPerCall(F&& run) {
  using Clock = std::chrono::steady_clock;
  int calls = 1;
  for (;;) {
    const auto start = Clock::now();
    for (int i = 0; i < calls; ++i) run();
    if (std::chrono::duration<double>(Clock::now() - start).count() > 0.02) break;
    calls *= 2;
  }
  std::vector<double> rounds;
  for (int r = 0; r < 5; ++r) {
    const auto start = Clock::now();
    for (int i = 0; i < calls; ++i) run();
    rounds.push_back(std::chrono::duration<double>(Clock::now() - start).count() / calls);
  }
  std::sort(rounds.begin(), rounds.end());
  return rounds[2];
}

void BM_Backward(benchmark::State& state, Kind kind, GradientMode mode) {
  const int batch = static_cast<int>(state.range(0));
  const int threads = static_cast<int>(state.range(1));
  SolveBatchSetup setup(kind, batch);
  const std::unique_ptr<CpuBackend> backend = CreateBackendOrSkip(state, threads);
  if (backend == nullptr) return;
  // The forward solve of the same problems, timed first (its workspaces warm).
  (void)backend->SolveBatch(setup.inputs, setup.outputs);
  const double forward = SecondsPerCall(
      [&] { benchmark::DoNotOptimize(backend->SolveBatch(setup.inputs, setup.outputs)); });

  std::vector<BackwardProblem> items(batch);
  std::mt19937_64 rng(1);
  std::normal_distribution<double> normal;
  for (int i = 0; i < batch; ++i) {
    const ProblemShape& shape = setup.problems[i].shape;
    BackwardProblem& item = items[i];
    item.problem = &setup.problems[i];
    item.x = setup.solutions[i].x;
    item.u = setup.solutions[i].u;
    item.dl_dx.resize(static_cast<std::size_t>(shape.horizon) * shape.state_dim);
    item.dl_du.resize(static_cast<std::size_t>(shape.horizon) * shape.control_dim);
    for (double& v : item.dl_dx) v = normal(rng);
    for (double& v : item.dl_du) v = normal(rng);
    item.mode = mode;
  }
  std::vector<const BackwardProblem*> backward_inputs;
  for (const BackwardProblem& item : items) backward_inputs.push_back(&item);
  std::vector<ProblemGradient> gradients(batch);
  std::vector<ProblemGradient*> gradient_outputs;
  for (ProblemGradient& g : gradients) gradient_outputs.push_back(&g);
  (void)backend->BackwardBatch(backward_inputs, gradient_outputs);  // warm the workspaces

  for (auto _ : state) {
    benchmark::DoNotOptimize(backend->BackwardBatch(backward_inputs, gradient_outputs));
  }
  const double backward = SecondsPerCall(
      [&] { benchmark::DoNotOptimize(backend->BackwardBatch(backward_inputs, gradient_outputs)); });
  state.SetItemsProcessed(state.iterations() * batch);
  state.counters["us_per_problem"] = benchmark::Counter(
      static_cast<double>(batch) * 1e-6,
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.counters["forward_us_per_problem"] = 1e6 * forward / batch;
  state.counters["backward_over_forward"] = backward / forward;
  state.counters["threads"] = threads;
}

BENCHMARK_CAPTURE(BM_Backward, pendulum_T20, Kind::kPendulum, GradientMode::kDefault)
    ->Apply(BatchAndThreadArguments);
BENCHMARK_CAPTURE(BM_Backward, cartpole_T25, Kind::kCartpole, GradientMode::kDefault)
    ->Apply(BatchAndThreadArguments);
BENCHMARK_CAPTURE(BM_Backward, linear_n8_m4_T30, Kind::kLinear, GradientMode::kDefault)
    ->Apply(BatchAndThreadArguments);
// The modes with second derivatives of the dynamics (models only; for linear dynamics every mode
// is the default one).
BENCHMARK_CAPTURE(BM_Backward, pendulum_T20_full_chain, Kind::kPendulum, GradientMode::kFullChain)
    ->Apply(BatchAndThreadArguments);
BENCHMARK_CAPTURE(BM_Backward, pendulum_T20_exact, Kind::kPendulum, GradientMode::kExact)
    ->Apply(BatchAndThreadArguments);
BENCHMARK_CAPTURE(BM_Backward, cartpole_T25_full_chain, Kind::kCartpole, GradientMode::kFullChain)
    ->Apply(BatchAndThreadArguments);
BENCHMARK_CAPTURE(BM_Backward, cartpole_T25_exact, Kind::kCartpole, GradientMode::kExact)
    ->Apply(BatchAndThreadArguments);

}  // namespace
}  // namespace mpc::bench

BENCHMARK_MAIN();
