#ifndef MPC_BENCH_BENCH_PROBLEMS_H_
#define MPC_BENCH_BENCH_PROBLEMS_H_

// The problems and batch set-up that the solver and backward benchmarks share: pendulum (n=3, m=1,
// T=20), cartpole (n=5, m=1, T=25) and a random linear problem (n=8, m=4, T=30), solved with
// exactly 10 iLQR iterations, at batch 1/16/64/256 on one thread and on all.

#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "benchmark/benchmark.h"
#include "solver/cpu/cpu_backend.h"
#include "solver/problem.h"
#include "tests/testing/random_problems.h"

namespace mpc::bench {

enum class Kind { kPendulum, kCartpole, kLinear, kLinear32, kLinear64, kLinear128 };

// State dimension of the large linear kinds (m = n / 4, T = 30): where dense kernels matter.
inline int LargeLinearStateDim(Kind kind) {
  return kind == Kind::kLinear32 ? 32 : kind == Kind::kLinear64 ? 64 : 128;
}

// mpc.pytorch's fixed10 setting: lqr_iter=10, eps=0, not_improved_lim huge.
inline void FixTenIterations(Problem* p) {
  p->options.max_iterations = 10;
  p->options.tolerance = 0.0;
  p->options.not_improved_limit = 1 << 30;
}

// Problem `seed` of a kind, in the fixed10 setting with each environment's line search.
inline Problem MakeProblem(Kind kind, int seed) {
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
    case Kind::kLinear32:
    case Kind::kLinear64:
    case Kind::kLinear128: {
      const int n = LargeLinearStateDim(kind);
      p = testing::RandomLqrProblem(
          {.state_dim = n, .control_dim = n / 4, .horizon = 30, .bounded = true}, seed);
      break;
    }
  }
  FixTenIterations(&p);
  return p;
}

// Problems 0..batch-1 of a kind with a solution slot each, and the pointer views SolveBatch takes.
// Not copyable: the views point into the owned vectors.
struct SolveBatchSetup {
  SolveBatchSetup(Kind kind, int batch) : solutions(batch) {
    for (int i = 0; i < batch; ++i) problems.push_back(MakeProblem(kind, i));
    for (const Problem& p : problems) inputs.push_back(&p);
    for (Solution& s : solutions) outputs.push_back(&s);
  }
  SolveBatchSetup(const SolveBatchSetup&) = delete;
  SolveBatchSetup& operator=(const SolveBatchSetup&) = delete;

  std::vector<Problem> problems;
  std::vector<Solution> solutions;
  std::vector<const Problem*> inputs;
  std::vector<Solution*> outputs;
};

// A CpuBackend on `threads` threads, or null after marking the benchmark as skipped.
inline std::unique_ptr<CpuBackend> CreateBackendOrSkip(benchmark::State& state, int threads) {
  absl::StatusOr<std::unique_ptr<CpuBackend>> backend = CpuBackend::Create({threads});
  if (!backend.ok()) {
    state.SkipWithError(std::string(backend.status().message()).c_str());
    return nullptr;
  }
  return *std::move(backend);
}

// Args {batch, threads} for the large linear problems: batch 1 and 16 on one thread.
inline void LargeProblemArguments(benchmark::internal::Benchmark* b) {
  for (int batch : {1, 16}) b->Args({batch, 1});
  b->ArgNames({"batch", "threads"})->UseRealTime()->Unit(benchmark::kMicrosecond);
}

// Args {batch, threads}: batch 1/16/64/256 on one thread, and 16/64/256 on every hardware thread.
inline void BatchAndThreadArguments(benchmark::internal::Benchmark* b) {
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

}  // namespace mpc::bench

#endif  // MPC_BENCH_BENCH_PROBLEMS_H_
