// How one solve scales: time per problem against the state dimension n (m = max(1, n/4), T = 30)
// and against the horizon T (n = 8, m = 2), for random unbounded linear problems with exactly 10
// iLQR iterations, batch 1, one thread; and the memory a problem holds while it is solved (the
// batch buffer of the core's layout plus the worker's scratch arena).
//
//   build/bin/mpcd_scaling_bench --benchmark_counters_tabular=true
//
// Counters: us_per_problem, workspace_bytes (per problem), n, T, flops_per_problem (counted,
// bench/flop_count.h), GFLOPs, x_floor (the time over the flops at one core's measured float64
// peak, bench/fma_peak.h).
#include <memory>
#include <vector>

#include "bench/bench_problems.h"
#include "bench/flop_count.h"
#include "bench/fma_peak.h"
#include "benchmark/benchmark.h"
#include "solver/core/scratch.h"
#include "solver/cpu/cpu_backend.h"
#include "solver/packing.h"
#include "tests/testing/random_problems.h"

namespace mpc::bench {
namespace {

// Bytes one problem holds in a solve: its share of the batch buffer and a worker's scratch.
double WorkspaceBytes(const Problem& problem) {
  const Problem* const problems[1] = {&problem};
  const core::IlqrBatchLayout layout = core::PlanIlqrBatch(problems);
  const long long scratch =
      core::ScratchCapacity(problem.shape.state_dim, problem.shape.control_dim);
  return static_cast<double>((static_cast<long long>(layout.total_size) + scratch) *
                             static_cast<long long>(sizeof(double)));
}

void BM_Scaling(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const int T = static_cast<int>(state.range(1));
  const int m = n / 4 > 1 ? n / 4 : 1;
  Problem problem = testing::RandomLqrProblem({.state_dim = n, .control_dim = m, .horizon = T}, 7);
  FixTenIterations(&problem);
  const std::vector<const Problem*> inputs = {&problem};
  std::vector<Solution> solutions(1);
  const std::vector<Solution*> outputs = {&solutions[0]};
  const std::unique_ptr<CpuBackend> backend = CreateBackendOrSkip(state, 1);
  if (backend == nullptr) return;
  (void)backend->SolveBatch(inputs, outputs);  // warm the worker's workspace
  for (auto _ : state) benchmark::DoNotOptimize(backend->SolveBatch(inputs, outputs));
  state.counters["us_per_problem"] = benchmark::Counter(
      1e-6, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  // Unbounded: no box-QP gradient in the count.
  const double flops =
      10 * CountIterationFlops(problem.shape, 2.0 * n * (n + m) + n, 0, /*bounded=*/false).total();
  state.counters["flops_per_problem"] = flops;
  state.counters["GFLOPs"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  if (FmaPeakGflops() > 0) {
    state.counters["x_floor"] = benchmark::Counter(
        flops / (FmaPeakGflops() * 1e9),
        benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  }
  state.counters["workspace_bytes"] = WorkspaceBytes(problem);
  state.counters["n"] = n;
  state.counters["T"] = T;
}

void ScalingArguments(benchmark::internal::Benchmark* b) {
  for (int n : {4, 8, 16, 32, 64, 128}) b->Args({n, 30});
  for (int T : {10, 100, 300, 1000}) b->Args({8, T});
  b->ArgNames({"n", "T"})->UseRealTime()->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BM_Scaling)->Apply(ScalingArguments);

}  // namespace
}  // namespace mpc::bench

BENCHMARK_MAIN();
