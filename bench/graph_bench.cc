// Dynamics graphs (docs/graphs.md) on one CPU thread: the cartpole written as a module against the
// built-in cartpole (the cost of interpreting a graph), and a learned MLP dynamics (n=4, m=1, two
// hidden layers of 64, tanh, T=25), each solved with exactly 10 iLQR iterations, and their
// backward passes with dL/dtheta for every weight. The graphs are the ones `ctest -R
// ExportTestGraphs` writes (MPCD_TEST_GRAPHS_DIR, default build/tests/solver/graphs):
//
//   ctest --test-dir build -R ExportTestGraphs && build/bin/mpcd_graph_bench
//
// Counters: us_per_problem (wall time of a batch of 64 / 64); for the MLP's solve also
// flops_per_problem (its FLOP floor, CountMlpFlops) and flops (the rate that floor is done at).
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bench/bench_problems.h"
#include "bench/flop_count.h"
#include "benchmark/benchmark.h"
#include "solver/cpu/cpu_backend.h"
#include "solver/gradients.h"
#include "solver/graph/onnx_import.h"
#include "solver/models/cartpole.h"

namespace mpc::bench {
namespace {

constexpr int kBatch = 64;

std::shared_ptr<const GraphProgram> LoadGraph(benchmark::State& state, const std::string& file) {
  const char* dir = std::getenv("MPCD_TEST_GRAPHS_DIR");
  std::ifstream in(std::string(dir != nullptr ? dir : MPCD_DEFAULT_GRAPHS_DIR) + "/" + file,
                   std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  absl::StatusOr<std::shared_ptr<const GraphProgram>> program = CompileOnnxGraph(bytes.str(), {});
  if (!program.ok()) {
    state.SkipWithError("no graph: run `ctest --test-dir build -R ExportTestGraphs` first");
    return nullptr;
  }
  return *program;
}

// Problem `seed` as a graph problem (the built-in cartpole's parameters mapped by name).
Problem AsGraph(Problem p, const std::shared_ptr<const GraphProgram>& graph) {
  std::vector<double> params;
  for (const GraphParameter& parameter : graph->parameters) {
    for (int k = 0; k < CartpoleModel::kParamDim; ++k) {
      if (parameter.name == CartpoleModel::kParamNames[k]) params.push_back(p.params[k]);
    }
  }
  p.shape.dynamics = DynamicsId::Graph(graph->fingerprint.data());
  p.params = params;
  p.graph = graph;
  return p;
}

// The MLP's problems: random x_init, drive x to 0 with |u| <= 1, fixed 10 iterations.
Problem MlpProblem(const std::shared_ptr<const GraphProgram>& graph, int seed) {
  testing::Rng rng(seed);
  Problem p;
  p.shape = {DynamicsId::Graph(graph->fingerprint.data()), 4, 1, 25};
  p.graph = graph;
  for (int i = 0; i < 4; ++i) p.x_init.push_back(rng.Uniform(-1, 1));
  p.cost_quadratic.assign(25, 0.0);
  for (int i = 0; i < 5; ++i) p.cost_quadratic[i * 5 + i] = i < 4 ? 1.0 : 0.01;
  p.cost_linear.assign(5, 0.0);
  p.u_lower = {-1.0};
  p.u_upper = {1.0};
  FixTenIterations(&p);
  return p;
}

// The floor of one MLP step from its layers' shapes (weights (out, in), biases (out)), with
// x' = x + 0.05 MLP([x; u]): the forward pass (a multiply-add per weight, the biases, one tanh per
// hidden unit, the scaled residual) and its Jacobian by n reverse sweeps (a multiply-add per
// weight and one tanh' product per hidden unit each, tanh' = 1 - t^2 once), the cheaper of
// reverse (n sweeps) and forward mode (n+m tangents) for n=4, m=1.
struct MlpFlops {
  long step = 0;
  long jacobian = 0;  // the forward pass it needs included, as ModelStepFlops<Model, true> counts
};

MlpFlops CountMlpFlops(const GraphProgram& graph) {
  long weights = 0, biases = 0;
  for (const GraphParameter& parameter : graph.parameters) {
    (parameter.shape.size() == 2 ? weights : biases) += parameter.size;
  }
  const long n = graph.state_dim;
  const long hidden = biases - n;  // every bias but the output layer's feeds a tanh
  MlpFlops flops;
  flops.step = 2 * weights + biases + hidden + 2 * n;
  flops.jacobian = flops.step + 2 * hidden + n * (2 * weights + hidden + 1);
  return flops;
}

// kMlpOde: the MLP's graph read as a continuous-time model (its output taken as dx/dt), RK4 with
// dt = 0.05 s: four evaluations of the network per step and the integrator's derivatives, the
// interpreter's cost for a learned ODE (the dynamics themselves are not meant to model anything).
enum class Case { kCartpoleBuiltin, kCartpoleGraph, kMlp, kMlpOde };

std::vector<Problem> Problems(benchmark::State& state, Case which) {
  std::vector<Problem> problems;
  std::shared_ptr<const GraphProgram> graph;
  if (which != Case::kCartpoleBuiltin) {
    const bool mlp = which == Case::kMlp || which == Case::kMlpOde;
    graph = LoadGraph(state, mlp ? "mlp_n4_m1_h64.onnx" : "cartpole_graph.onnx");
    if (graph == nullptr) return problems;
  }
  for (int i = 0; i < kBatch; ++i) {
    if (which == Case::kMlp || which == Case::kMlpOde) {
      problems.push_back(MlpProblem(graph, i));
      if (which == Case::kMlpOde) {
        problems.back().integrator = Integrator::kRk4;
        problems.back().dt = 0.05;
      }
    } else {
      Problem p = MakeProblem(Kind::kCartpole, i);
      problems.push_back(which == Case::kCartpoleGraph ? AsGraph(p, graph) : p);
    }
  }
  return problems;
}

void PerProblem(benchmark::State& state) {
  state.counters["us_per_problem"] = benchmark::Counter(
      kBatch * 1e-6, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void BM_Solve(benchmark::State& state, Case which) {
  const std::vector<Problem> problems = Problems(state, which);
  if (problems.empty()) return;
  std::vector<Solution> solutions(problems.size());
  std::vector<const Problem*> in;
  std::vector<Solution*> out;
  for (std::size_t i = 0; i < problems.size(); ++i) {
    in.push_back(&problems[i]);
    out.push_back(&solutions[i]);
  }
  const std::unique_ptr<CpuBackend> backend = CreateBackendOrSkip(state, 1);
  if (backend == nullptr) return;
  (void)backend->SolveBatch(in, out);
  for (auto _ : state) benchmark::DoNotOptimize(backend->SolveBatch(in, out));
  PerProblem(state);
  if (which == Case::kMlp) {
    const MlpFlops mlp = CountMlpFlops(*problems[0].graph);
    const double flops =
        problems[0].options.max_iterations *
        CountIterationFlops(problems[0].shape, mlp.step, mlp.jacobian, true).total();
    state.counters["flops_per_problem"] = flops;
    state.counters["flops"] =
        benchmark::Counter(flops * kBatch, benchmark::Counter::kIsIterationInvariantRate);
  }
}

void BM_Backward(benchmark::State& state, Case which) {
  const std::vector<Problem> problems = Problems(state, which);
  if (problems.empty()) return;
  const std::unique_ptr<CpuBackend> backend = CreateBackendOrSkip(state, 1);
  if (backend == nullptr) return;
  std::vector<Solution> solutions(problems.size());
  std::vector<BackwardProblem> items(problems.size());
  std::vector<ProblemGradient> gradients(problems.size());
  std::vector<const BackwardProblem*> in;
  std::vector<ProblemGradient*> out;
  for (std::size_t i = 0; i < problems.size(); ++i) {
    const Problem* p[] = {&problems[i]};
    Solution* s[] = {&solutions[i]};
    (void)backend->SolveBatch(p, s);
    items[i] = {&problems[i],
                solutions[i].x,
                solutions[i].u,
                std::vector<double>(solutions[i].x.size(), 1.0),
                std::vector<double>(solutions[i].u.size(), 1.0),
                GradientMode::kDefault};
    in.push_back(&items[i]);
    out.push_back(&gradients[i]);
  }
  (void)backend->BackwardBatch(in, out);
  for (auto _ : state) benchmark::DoNotOptimize(backend->BackwardBatch(in, out));
  PerProblem(state);
}

BENCHMARK_CAPTURE(BM_Solve, cartpole_builtin_T25, Case::kCartpoleBuiltin);
BENCHMARK_CAPTURE(BM_Solve, cartpole_graph_T25, Case::kCartpoleGraph);
BENCHMARK_CAPTURE(BM_Solve, mlp_n4_h64_T25, Case::kMlp);
BENCHMARK_CAPTURE(BM_Solve, mlp_ode_rk4_n4_h64_T25, Case::kMlpOde);
BENCHMARK_CAPTURE(BM_Backward, cartpole_builtin_T25, Case::kCartpoleBuiltin);
BENCHMARK_CAPTURE(BM_Backward, cartpole_graph_T25, Case::kCartpoleGraph);
BENCHMARK_CAPTURE(BM_Backward, mlp_n4_h64_T25, Case::kMlp);
BENCHMARK_CAPTURE(BM_Backward, mlp_ode_rk4_n4_h64_T25, Case::kMlpOde);

}  // namespace
}  // namespace mpc::bench

BENCHMARK_MAIN();
