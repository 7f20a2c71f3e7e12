// Solver-only throughput: pendulum (n=3, m=1, T=20), cartpole (n=5, m=1, T=25) and a random linear
// problem (n=8, m=4, T=30) at batch 1/16/64/256, exactly 10 iLQR iterations (as mpc.pytorch's
// "fixed10" timings in tests/data/mpc_pytorch/TIMINGS.md), on one thread and on all.
//
//   build/bin/mpcd_solver_bench --benchmark_counters_tabular=true
//
// Counters: us_per_problem (wall time of a batch / batch size), GFLOPs (counted flops per second,
// bench/flop_count.h), flops_per_problem, x_floor (the time over the FLOP floor: the counted flops
// at one core's measured float64 peak, bench/fma_peak.h, times the number of threads).
// BM_FmaPeak reports that peak (GFLOPs).
#include <memory>
#include <thread>
#include <vector>

#include "bench/bench_problems.h"
#include "bench/flop_count.h"
#include "bench/fma_peak.h"
#include "benchmark/benchmark.h"
#include "solver/cpu/cpu_backend.h"
#include "solver/models/cartpole.h"
#include "solver/models/pendulum.h"
#include "tests/testing/random_problems.h"

namespace mpc::bench {
namespace {

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
    case Kind::kLinear:
    case Kind::kLinear32:
    case Kind::kLinear64:
    case Kind::kLinear128: {
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
  SolveBatchSetup setup(kind, batch);
  const std::unique_ptr<CpuBackend> backend = CreateBackendOrSkip(state, threads);
  if (backend == nullptr) return;
  (void)backend->SolveBatch(setup.inputs, setup.outputs);  // warm the per-thread workspaces
  for (auto _ : state) {
    benchmark::DoNotOptimize(backend->SolveBatch(setup.inputs, setup.outputs));
  }
  const double flops = FlopsPerProblem(kind, setup.problems[0].shape);
  state.SetItemsProcessed(state.iterations() * batch);
  state.counters["us_per_problem"] = benchmark::Counter(
      static_cast<double>(batch) * 1e-6,
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.counters["GFLOPs"] =
      benchmark::Counter(flops * batch * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["flops_per_problem"] = flops;
  state.counters["threads"] = threads;
  if (FmaPeakGflops() > 0) {
    // The floor's seconds per iteration, inverted over the measured time: time / floor.
    const double floor_seconds = flops * batch / (FmaPeakGflops() * 1e9 * threads);
    state.counters["x_floor"] = benchmark::Counter(
        floor_seconds, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  }
}

// One core's float64 peak (fused multiply-adds in registers): what x_floor divides by.
void BM_FmaPeak(benchmark::State& state) {
  if (FmaPeakGflops() == 0) {
    state.SkipWithError("built without FMA instructions");
    return;
  }
  constexpr long kRounds = 1'000'000;
  for (auto _ : state) benchmark::DoNotOptimize(FmaRounds(kRounds));
  state.counters["GFLOPs"] = benchmark::Counter(kRounds * kFmaFlopsPerRound * 1e-9,
                                                benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK(BM_FmaPeak)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Solve, pendulum_T20, Kind::kPendulum)->Apply(BatchAndThreadArguments);
BENCHMARK_CAPTURE(BM_Solve, cartpole_T25, Kind::kCartpole)->Apply(BatchAndThreadArguments);
BENCHMARK_CAPTURE(BM_Solve, linear_n8_m4_T30, Kind::kLinear)->Apply(BatchAndThreadArguments);
BENCHMARK_CAPTURE(BM_Solve, linear_n32_m8_T30, Kind::kLinear32)->Apply(LargeProblemArguments);
BENCHMARK_CAPTURE(BM_Solve, linear_n64_m16_T30, Kind::kLinear64)->Apply(LargeProblemArguments);
BENCHMARK_CAPTURE(BM_Solve, linear_n128_m32_T30, Kind::kLinear128)->Apply(LargeProblemArguments);

}  // namespace
}  // namespace mpc::bench

BENCHMARK_MAIN();
