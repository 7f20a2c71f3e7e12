// Solver-only throughput: pendulum (n=3, m=1, T=20), cartpole (n=5, m=1, T=25) and a random linear
// problem (n=8, m=4, T=30) at batch 1/16/64/256, exactly 10 iLQR iterations (as mpc.pytorch's
// "fixed10" timings in ../shared/reference/mpc_pytorch/TIMINGS.md), on one thread and on all.
//
//   build/bin/mpcd_solver_bench --benchmark_counters_tabular=true
//
// Counters: us_per_problem (wall time of a batch / batch size), GFLOPs (counted flops per second,
// bench/flop_count.h), flops_per_problem.
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "bench/flop_count.h"
#include "solver/cpu/cpu_backend.h"
#include "solver/models/cartpole.h"
#include "solver/models/pendulum.h"
#include "tests/testing/random_problems.h"

namespace mpc::bench {
namespace {

enum class Kind { kPendulum, kCartpole, kLinear };

// mpc.pytorch's fixed10 setting: lqr_iter=10, eps=0, not_improved_lim huge, env line search.
void FixTenIterations(Problem* p) {
  p->options.max_iterations = 10;
  p->options.tolerance = 0.0;
  p->options.not_improved_limit = 1 << 30;
}

Problem MakeProblem(Kind kind, int seed) {
  using testing::RandomModelOptions;
  Problem p;
  switch (kind) {
    case Kind::kPendulum: {
      RandomModelOptions o;
      o.horizon = 20;
      p = testing::RandomPendulumProblem(o, seed);
      p.options.linesearch_decay = 0.2;  // PendulumDx defaults
      p.options.max_linesearch_iterations = 5;
      break;
    }
    case Kind::kCartpole: {
      RandomModelOptions o;
      o.horizon = 25;
      p = testing::RandomCartpoleProblem(o, seed);
      p.options.linesearch_decay = 0.5;  // CartpoleDx defaults
      p.options.max_linesearch_iterations = 2;
      break;
    }
    case Kind::kLinear:
      p = testing::RandomLqrProblem(
          {.state_dim = 8, .control_dim = 4, .horizon = 30, .bounded = true}, seed);
      break;
  }
  FixTenIterations(&p);
  return p;
}

double FlopsPerProblem(Kind kind, const ProblemShape& shape) {
  const double iterations = 10;
  IterationFlops f;
  switch (kind) {
    case Kind::kPendulum:
      f = CountIterationFlops(shape, ModelStepFlops<PendulumModel, false>(),
                              ModelStepFlops<PendulumModel, true>(), true);
      break;
    case Kind::kCartpole:
      f = CountIterationFlops(shape, ModelStepFlops<CartpoleModel, false>(),
                              ModelStepFlops<CartpoleModel, true>(), true);
      break;
    case Kind::kLinear: {
      const long n = shape.state_dim, m = shape.control_dim;
      f = CountIterationFlops(shape, 2 * n * (n + m) + n, 0, true);
      break;
    }
  }
  return iterations * f.total();
}

void BM_Solve(benchmark::State& state, Kind kind) {
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
  (void)(*backend)->SolveBatch(inputs, outputs);  // warm the per-thread workspaces
  for (auto _ : state) {
    benchmark::DoNotOptimize((*backend)->SolveBatch(inputs, outputs));
  }
  const double flops = FlopsPerProblem(kind, problems[0].shape);
  state.SetItemsProcessed(state.iterations() * batch);
  state.counters["us_per_problem"] = benchmark::Counter(
      static_cast<double>(batch) * 1e-6,
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.counters["GFLOPs"] = benchmark::Counter(flops * batch * 1e-9,
                                                benchmark::Counter::kIsIterationInvariantRate);
  state.counters["flops_per_problem"] = flops;
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

BENCHMARK_CAPTURE(BM_Solve, pendulum_T20, Kind::kPendulum)->Apply(Arguments);
BENCHMARK_CAPTURE(BM_Solve, cartpole_T25, Kind::kCartpole)->Apply(Arguments);
BENCHMARK_CAPTURE(BM_Solve, linear_n8_m4_T30, Kind::kLinear)->Apply(Arguments);

}  // namespace
}  // namespace mpc::bench

BENCHMARK_MAIN();
