// GPU benchmark of the CUDA backend (built when CUDA is enabled): pendulum (n=3, m=1) and cartpole
// (n=5, m=1) at T=25 and the linear n=8/m=4/T=30 problem, batch 1 to 65536, exactly 10 iLQR
// iterations per problem (bench/solver_bench.cc's setting), float64 and float32, against the CPU
// backend on every core of this machine. Plain main (no Google Benchmark, so it also builds on the
// GPU machine from .deps/):
//
//   build/bin/mpcd_cuda_bench [--max_batch=65536] [--repeats=5]
//
// Per row: wall time of one SolveBatch (packing, copies, launch, the one sync and unpacking; the
// best of `repeats`), us per problem, counted flops per problem (bench/flop_count.h), the achieved
// rate and its ratio to the device's peak ("floor ratio" = peak / achieved: how many times slower
// than the arithmetic floor), and the CPU backend's time for the same batch. The CPU/GPU crossover
// is the smallest batch at which the GPU is faster. Then the backward pass (BackwardBatch, the
// default mode) at the CPU solutions of the same problems with a random cotangent: wall time on
// the device in float64 and float32, on the CPU backend, its ratio to the device solve of the same
// batch (DESIGN §4: at most 0.25) and its own crossover. No flops are counted for the backward
// pass.

#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "bench/flop_count.h"
#include "solver/cpu/cpu_backend.h"
#include "solver/cuda/cuda_backend.h"
#include "solver/models/cartpole.h"
#include "solver/models/pendulum.h"
#include "tests/testing/random_problems.h"

namespace mpc::bench {
namespace {

enum class Kind { kPendulum, kCartpole, kLinear };

// Peak arithmetic of one SM per clock (an FMA counts 2), from NVIDIA's CUDA C++ Programming Guide,
// "Arithmetic Instructions" throughput table (results per clock cycle per multiprocessor).
struct SmThroughput {
  int major, minor;
  double fp64_flops_per_clock;
  double fp32_flops_per_clock;
};
constexpr SmThroughput kThroughputs[] = {
    {7, 5, 4, 128}, {8, 0, 64, 128},  {8, 6, 4, 256},    {8, 7, 4, 256},
    {8, 9, 4, 256}, {9, 0, 128, 256}, {10, 0, 128, 256}, {12, 0, 4, 256},
};

struct DevicePeak {
  std::string name;
  double fp64 = 0;  // flop/s; 0 = unknown architecture
  double fp32 = 0;
};

DevicePeak QueryPeak() {
  DevicePeak peak;
  cudaDeviceProp properties;
  if (cudaGetDeviceProperties(&properties, 0) != cudaSuccess) return peak;
  peak.name = properties.name;
  int clock_khz = 0;
  cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0);
  for (const SmThroughput& t : kThroughputs) {
    if (t.major == properties.major && t.minor == properties.minor) {
      const double per_clock = 1e3 * clock_khz * properties.multiProcessorCount;
      peak.fp64 = per_clock * t.fp64_flops_per_clock;
      peak.fp32 = per_clock * t.fp32_flops_per_clock;
    }
  }
  std::printf(
      "device: %s, sm_%d%d, %d SMs, %.0f MHz; peak fp64 %.1f TFLOP/s, fp32 %.1f TFLOP/s%s\n",
      properties.name, properties.major, properties.minor, properties.multiProcessorCount,
      clock_khz / 1e3, peak.fp64 / 1e12, peak.fp32 / 1e12,
      peak.fp64 == 0 ? " (architecture not in the table)" : "");
  return peak;
}

Problem MakeProblem(Kind kind, int seed) {
  testing::RandomModelOptions o;
  o.horizon = 25;
  Problem p;
  switch (kind) {
    case Kind::kPendulum:
      p = testing::RandomPendulumProblem(o, seed);
      break;
    case Kind::kCartpole:
      p = testing::RandomCartpoleProblem(o, seed);
      break;
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

double FlopsPerProblem(Kind kind) {
  const Problem p = MakeProblem(kind, 0);
  long step = 0, jacobian = 0;
  switch (kind) {
    case Kind::kPendulum:
      step = ModelStepFlops<PendulumModel, false>();
      jacobian = ModelStepFlops<PendulumModel, true>();
      break;
    case Kind::kCartpole:
      step = ModelStepFlops<CartpoleModel, false>();
      jacobian = ModelStepFlops<CartpoleModel, true>();
      break;
    case Kind::kLinear:
      step = 2L * 8 * 12 + 8;
      break;
  }
  const IterationFlops per_iteration = CountIterationFlops(p.shape, step, jacobian, true);
  return 10 * per_iteration.total() + per_iteration.rollout;
}

// Best wall time of `repeats` calls of `run` (one backend call; false = it failed), in seconds,
// after one warm-up call; -1 when a call failed.
template <class Run>
double TimeCalls(const Run& run, int repeats) {
  if (!run()) return -1;
  double best = std::numeric_limits<double>::infinity();
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    if (!run()) return -1;
    best = std::min(
        best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

double TimeBatch(SolverBackend& backend, const std::vector<const Problem*>& problems,
                 std::vector<Solution*>& solutions, int repeats) {
  return TimeCalls([&] { return backend.SolveBatch(problems, solutions).ok(); }, repeats);
}

double TimeBackward(SolverBackend& backend, const std::vector<const BackwardProblem*>& problems,
                    std::vector<ProblemGradient*>& gradients, int repeats) {
  return TimeCalls([&] { return backend.BackwardBatch(problems, gradients).ok(); }, repeats);
}

// Backward problems at the solutions of `problems` (solved by `cpu`), random cotangents.
std::vector<BackwardProblem> MakeBackwardProblems(SolverBackend& cpu,
                                                  const std::vector<Problem>& problems) {
  std::vector<const Problem*> inputs;
  for (const Problem& p : problems) inputs.push_back(&p);
  std::vector<Solution> solutions(problems.size());
  std::vector<Solution*> outputs;
  for (Solution& s : solutions) outputs.push_back(&s);
  (void)cpu.SolveBatch(inputs, outputs);
  std::vector<BackwardProblem> backward(problems.size());
  testing::Rng rng(42);
  for (std::size_t i = 0; i < problems.size(); ++i) {
    backward[i].problem = &problems[i];
    backward[i].x = solutions[i].x;
    backward[i].u = solutions[i].u;
    backward[i].dl_dx.resize(solutions[i].x.size());
    backward[i].dl_du.resize(solutions[i].u.size());
    for (double& v : backward[i].dl_dx) v = rng.Normal();
    for (double& v : backward[i].dl_du) v = rng.Normal();
  }
  return backward;
}

// The backward rows of one problem kind; solve_f64_s[j] is the device solve's time of the j-th
// batch size (for the ratio).
void RunBackward(const char* name, const std::vector<Problem>& distinct,
                 const std::vector<double>& solve_f64_s, int max_batch, int repeats,
                 SolverBackend& f64, SolverBackend& f32, SolverBackend& cpu) {
  const std::vector<BackwardProblem> backward = MakeBackwardProblems(cpu, distinct);
  std::printf("\n%s backward (default mode):\n", name);
  std::printf("%8s %12s %12s %12s %12s %14s\n", "batch", "f64_ms", "f64_us/prob", "f32_ms",
              "cpu_ms", "f64_bwd/solve");
  int crossover = -1;
  std::size_t row = 0;
  for (int batch = 1; batch <= max_batch; batch *= 4, ++row) {
    std::vector<const BackwardProblem*> problems;
    for (int i = 0; i < batch; ++i) problems.push_back(&backward[i % backward.size()]);
    std::vector<ProblemGradient> storage(batch);
    std::vector<ProblemGradient*> gradients;
    for (ProblemGradient& g : storage) gradients.push_back(&g);
    const double t64 = TimeBackward(f64, problems, gradients, repeats);
    const double t32 = TimeBackward(f32, problems, gradients, repeats);
    const double tcpu = batch <= 16384 ? TimeBackward(cpu, problems, gradients, 1) : -1;
    const double solve = row < solve_f64_s.size() ? solve_f64_s[row] : -1;
    std::printf("%8d %12.3f %12.3f %12.3f %12.3f %14.3f\n", batch, t64 * 1e3, t64 * 1e6 / batch,
                t32 * 1e3, tcpu * 1e3, solve > 0 ? t64 / solve : 0.0);
    if (crossover < 0 && tcpu > 0 && t64 > 0 && t64 < tcpu) crossover = batch;
    if (batch == max_batch) break;
    if (batch * 4 > max_batch) batch = max_batch / 4;
  }
  std::printf("%s backward: CPU/GPU crossover (float64) at batch %d%s\n", name, crossover,
              crossover < 0 ? " (GPU never faster up to 16384)" : "");
}

int Run(int max_batch, int repeats) {
  if (CudaDeviceCount() == 0) {
    // `make bench` runs every benchmark; on a machine without a GPU this one has nothing to do.
    std::printf("mpcd_cuda_bench: no CUDA device visible, nothing measured\n");
    return 0;
  }
  const DevicePeak peak = QueryPeak();
  auto f64 = CudaBackend::Create({});
  auto f32 = CudaBackend::Create({.use_float32 = true});
  auto cpu = CpuBackend::Create({});
  if (!f64.ok() || !f32.ok() || !cpu.ok()) {
    std::fprintf(stderr, "cuda_bench: %s\n",
                 std::string((!f64.ok()   ? f64.status()
                              : !f32.ok() ? f32.status()
                                          : cpu.status())
                                 .message())
                     .c_str());
    return 1;
  }
  std::printf("cpu backend: %d threads\n", (*cpu)->threads());
  const struct {
    Kind kind;
    const char* name;
  } kinds[] = {{Kind::kPendulum, "pendulum_T25"},
               {Kind::kCartpole, "cartpole_T25"},
               {Kind::kLinear, "linear_n8_m4_T30"}};
  for (const auto& [kind, name] : kinds) {
    const double flops = FlopsPerProblem(kind);
    std::vector<Problem> distinct;
    for (int seed = 0; seed < 64; ++seed) distinct.push_back(MakeProblem(kind, seed));
    std::printf("\n%s: %.0f flops per problem (10 iterations)\n", name, flops);
    std::printf("%8s %12s %12s %10s %8s %12s %10s %8s %12s\n", "batch", "f64_ms", "f64_us/prob",
                "f64_GF/s", "floor_x", "f32_ms", "f32_GF/s", "floor_x", "cpu_ms");
    int crossover = -1;
    std::vector<double> solve_f64_s;
    for (int batch = 1; batch <= max_batch; batch *= 4) {
      std::vector<const Problem*> problems;
      for (int i = 0; i < batch; ++i) problems.push_back(&distinct[i % distinct.size()]);
      std::vector<Solution> storage(batch);
      std::vector<Solution*> solutions;
      for (Solution& s : storage) solutions.push_back(&s);
      const double t64 = TimeBatch(**f64, problems, solutions, repeats);
      const double t32 = TimeBatch(**f32, problems, solutions, repeats);
      // The CPU beyond 16384 problems only confirms the trend, at minutes per row.
      const double tcpu = batch <= 16384 ? TimeBatch(**cpu, problems, solutions, 1) : -1;
      if (t64 < 0 || t32 < 0) {
        std::fprintf(stderr, "cuda_bench: a batch failed\n");
        return 1;
      }
      solve_f64_s.push_back(t64);
      const double rate64 = flops * batch / t64, rate32 = flops * batch / t32;
      std::printf("%8d %12.3f %12.3f %10.2f %8.1f %12.3f %10.2f %8.1f %12.3f\n", batch, t64 * 1e3,
                  t64 * 1e6 / batch, rate64 / 1e9, peak.fp64 > 0 ? peak.fp64 / rate64 : 0.0,
                  t32 * 1e3, rate32 / 1e9, peak.fp32 > 0 ? peak.fp32 / rate32 : 0.0, tcpu * 1e3);
      if (crossover < 0 && tcpu > 0 && t64 < tcpu) crossover = batch;
      if (batch == max_batch) break;
      if (batch * 4 > max_batch) batch = max_batch / 4;
    }
    std::printf("%s: CPU/GPU crossover (float64) at batch %d%s\n", name, crossover,
                crossover < 0 ? " (GPU never faster up to 16384)" : "");
    RunBackward(name, distinct, solve_f64_s, max_batch, repeats, **f64, **f32, **cpu);
  }
  return 0;
}

}  // namespace
}  // namespace mpc::bench

int main(int argc, char** argv) {
  int max_batch = 65536, repeats = 5;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--max_batch=", 12) == 0) max_batch = std::atoi(argv[i] + 12);
    if (std::strncmp(argv[i], "--repeats=", 10) == 0) repeats = std::atoi(argv[i] + 10);
  }
  if (max_batch < 1 || repeats < 1) {
    std::fprintf(stderr, "usage: mpcd_cuda_bench [--max_batch=N>=1] [--repeats=N>=1]\n");
    return 2;
  }
  return mpc::bench::Run(max_batch, repeats);
}
