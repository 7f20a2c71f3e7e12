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
#include <string>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "solver/cpu/cpu_backend.h"
#include "solver/gradients.h"
#include "tests/testing/random_problems.h"

namespace mpc::bench {
namespace {

enum class Kind { kPendulum, kCartpole, kLinear };

// The problems of bench/solver_bench.cc: mpc.pytorch's fixed10 setting (lqr_iter=10, eps=0,
// not_improved_lim huge) with each environment's line search.
Problem MakeProblem(Kind kind, int seed) {
  using testing::RandomModelOptions;
  Problem p;
  switch (kind) {
    case Kind::kPendulum: {
      RandomModelOptions o;
      o.horizon = 20;
      p = testing::RandomPendulumProblem(o, seed);
      p.options.linesearch_decay = 0.2;
      p.options.max_linesearch_iterations = 5;
      break;
    }
    case Kind::kCartpole: {
      RandomModelOptions o;
      o.horizon = 25;
      p = testing::RandomCartpoleProblem(o, seed);
      p.options.linesearch_decay = 0.5;
      p.options.max_linesearch_iterations = 2;
      break;
    }
    case Kind::kLinear:
      p = testing::RandomLqrProblem(
          {.state_dim = 8, .control_dim = 4, .horizon = 30, .bounded = true}, seed);
      break;
  }
  p.options.max_iterations = 10;
  p.options.tolerance = 0.0;
  p.options.not_improved_limit = 1 << 30;
  return p;
}

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
  std::vector<Problem> problems;
  for (int i = 0; i < batch; ++i) problems.push_back(MakeProblem(kind, i));
  std::vector<const Problem*> inputs;
  for (const Problem& p : problems) inputs.push_back(&p);
  std::vector<Solution> solutions(batch);
  std::vector<Solution*> outputs;
  for (Solution& s : solutions) outputs.push_back(&s);
  auto backend = CpuBackend::Create({threads});
  if (!backend.ok()) {
    state.SkipWithError(std::string(backend.status().message()).c_str());
    return;
  }
  // The forward solve of the same problems, timed first (its workspaces warm).
  (void)(*backend)->SolveBatch(inputs, outputs);
  const double forward =
      SecondsPerCall([&] { benchmark::DoNotOptimize((*backend)->SolveBatch(inputs, outputs)); });

  std::vector<BackwardProblem> items(batch);
  std::mt19937_64 rng(1);
  std::normal_distribution<double> normal;
  for (int i = 0; i < batch; ++i) {
    const ProblemShape& shape = problems[i].shape;
    BackwardProblem& item = items[i];
    item.problem = &problems[i];
    item.x = solutions[i].x;
    item.u = solutions[i].u;
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
  (void)(*backend)->BackwardBatch(backward_inputs, gradient_outputs);  // warm the workspaces

  for (auto _ : state) {
    benchmark::DoNotOptimize((*backend)->BackwardBatch(backward_inputs, gradient_outputs));
  }
  const double backward = SecondsPerCall([&] {
    benchmark::DoNotOptimize((*backend)->BackwardBatch(backward_inputs, gradient_outputs));
  });
  state.SetItemsProcessed(state.iterations() * batch);
  state.counters["us_per_problem"] = benchmark::Counter(
      static_cast<double>(batch) * 1e-6,
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.counters["forward_us_per_problem"] = 1e6 * forward / batch;
  state.counters["backward_over_forward"] = backward / forward;
  state.counters["threads"] = threads;
}

void Arguments(benchmark::internal::Benchmark* b) {
  const int all = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int threads : {1, all}) {
    for (int batch : {1, 16, 64, 256}) {
      if (threads > 1 && batch == 1) continue;
      b->Args({batch, threads});
    }
    if (all == 1) break;
  }
  b->ArgNames({"batch", "threads"})->UseRealTime()->Unit(benchmark::kMicrosecond);
}

BENCHMARK_CAPTURE(BM_Backward, pendulum_T20, Kind::kPendulum, GradientMode::kDefault)
    ->Apply(Arguments);
BENCHMARK_CAPTURE(BM_Backward, cartpole_T25, Kind::kCartpole, GradientMode::kDefault)
    ->Apply(Arguments);
BENCHMARK_CAPTURE(BM_Backward, linear_n8_m4_T30, Kind::kLinear, GradientMode::kDefault)
    ->Apply(Arguments);
// The modes with second derivatives of the dynamics (models only; for linear dynamics every mode
// is the default one).
BENCHMARK_CAPTURE(BM_Backward, pendulum_T20_full_chain, Kind::kPendulum, GradientMode::kFullChain)
    ->Apply(Arguments);
BENCHMARK_CAPTURE(BM_Backward, pendulum_T20_exact, Kind::kPendulum, GradientMode::kExact)
    ->Apply(Arguments);
BENCHMARK_CAPTURE(BM_Backward, cartpole_T25_full_chain, Kind::kCartpole, GradientMode::kFullChain)
    ->Apply(Arguments);
BENCHMARK_CAPTURE(BM_Backward, cartpole_T25_exact, Kind::kCartpole, GradientMode::kExact)
    ->Apply(Arguments);

}  // namespace
}  // namespace mpc::bench

BENCHMARK_MAIN();
