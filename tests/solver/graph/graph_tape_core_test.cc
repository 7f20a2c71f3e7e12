// Graph dynamics on the core's own element sweeps (GraphTapeDynamics,
// solver/graph/element_sweeps.h): what the device runs for a forward solve of a dynamics graph,
// here on the host. Oracle: the CPU backend, which runs the same graphs through its GraphEvaluator
// (GraphDynamics), whose element sweeps are the same code. Two checks:
// - the core as a CPU worker runs it (a batch of one, contiguous, the dense kernels), with only
//   the dynamics tag changed: bit for bit the CPU backend's solve;
// - the core as the device runs it (one batch, interleaved, the plain loop kernels, each
//   problem's buffers from one array), on the host: the same answers as the CPU backend, within
//   the tolerances the device's other nonlinear models are held to (device_comparison.h).

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "Eigen/Core"
#include "gtest/gtest.h"
#include "solver/core/dispatch.h"
#include "solver/core/ilqr.h"
#include "solver/cpu/cpu_backend.h"
#include "solver/cpu/dense_kernels.h"
#include "solver/graph/graph_program.h"
#include "solver/graph/onnx_import.h"
#include "solver/models/model_list.h"
#include "solver/packing.h"
#include "tests/solver/cuda/device_comparison.h"
#include "tests/solver/graph/graph_cases.h"
#include "tests/testing/cartpole_graph.h"
#include "tests/testing/random_problems.h"
#include "tests/testing/solve_batch.h"

namespace mpc {
namespace {

using Buffer = std::vector<double, Eigen::aligned_allocator<double>>;

std::shared_ptr<const GraphProgram> Compile(const std::string& file) {
  absl::StatusOr<std::shared_ptr<const GraphProgram>> program =
      CompileOnnxGraph(testing::ReadGraphFile(file), {});
  EXPECT_TRUE(program.ok()) << file << ": " << program.status();
  return program.ok() ? *program : nullptr;
}

Problem WithGraph(Problem p, const std::shared_ptr<const GraphProgram>& graph) {
  p.shape.dynamics = DynamicsId::Graph(graph->fingerprint.data());
  p.transition.clear();
  p.offset.clear();
  p.dt = 0.0;
  p.graph = graph;
  return p;
}

// Near-upright cartpole problems with the cartpole graph as their dynamics (its parameters by the
// model's names, not the defaults).
std::vector<Problem> CartpoleProblems(const std::shared_ptr<const GraphProgram>& graph, int count) {
  std::vector<Problem> problems = testing::NearUprightCartpoleGraphProblems(graph, count, 30);
  for (const Problem& p : problems) EXPECT_EQ(p.params.size(), graph->parameters.size());
  return problems;
}

// Random LQR costs, bounds and warm starts with a test graph (n = 4, m = 2) as the dynamics, at
// its exported parameters; one horizon, so that they are one shape (one batch).
std::vector<Problem> CaseProblems(const std::shared_ptr<const GraphProgram>& graph, int count,
                                  std::uint64_t seed) {
  std::vector<Problem> problems;
  for (int i = 0; i < count; ++i) {
    testing::RandomLqrOptions options{.state_dim = graph->state_dim,
                                      .control_dim = graph->control_dim,
                                      .horizon = 10,
                                      .bounded = i % 2 == 1,
                                      .warm_start = i % 3 == 0};
    Problem p = WithGraph(testing::RandomLqrProblem(options, seed + i), graph);
    p.options.max_iterations = 30;
    p.options.compute_gains = i % 2 == 0;
    problems.push_back(std::move(p));
  }
  return problems;
}

std::vector<Solution> SolveOnCpuBackend(const std::vector<Problem>& problems) {
  absl::StatusOr<std::unique_ptr<CpuBackend>> backend = CpuBackend::Create({.threads = 1});
  EXPECT_TRUE(backend.ok());
  return testing::SolveAll(**backend, problems);
}

// The core with GraphTapeDynamics over `problems` (one shape) packed in batches of batch_size, each
// problem's evaluation buffers from one array, problem by problem: with Layout and Kernels a CPU
// worker's (a batch of one each) or the device's.
template <class Layout, class Kernels>
std::vector<Solution> SolveOnGraphTapes(const std::vector<Problem>& problems, int batch_size) {
  std::vector<Solution> solutions(problems.size());
  for (std::size_t first = 0; first < problems.size(); first += batch_size) {
    std::vector<const Problem*> members;
    std::vector<Solution*> outputs;
    for (std::size_t i = first; i < problems.size() && i < first + batch_size; ++i) {
      members.push_back(&problems[i]);
      outputs.push_back(&solutions[i]);
    }
    const core::IlqrBatchLayout layout = core::PlanIlqrBatch(members);
    Buffer buffer(layout.total_size);
    std::vector<core::ProblemSettings> settings(layout.batch);
    std::vector<core::ProblemResult> results(layout.batch);
    core::PackIlqrInputs<double>(members, layout, buffer.data(), settings.data());
    core::IlqrBatchView<double> view =
        core::MakeIlqrBatchView<double>(layout, buffer.data(), settings.data(), results.data());
    const GraphProgram& program = *members[0]->graph;
    view.graph_tape = program.ElementView();
    const std::size_t values = program.initial_buffer.size();
    const std::size_t lanes = values * (program.state_dim + program.control_dim);
    Buffer graph_values(values * layout.batch), graph_lanes(lanes * layout.batch);
    view.graph_values = graph_values.data();
    view.graph_lanes = graph_lanes.data();
    const ProblemShape& shape = members[0]->shape;
    Buffer scratch(
        static_cast<std::size_t>(core::ScratchCapacity(shape.state_dim, shape.control_dim)));
    const bool dispatched =
        core::DispatchGraphTape(shape, [&]<class Dynamics, int NX, int NU, bool kFixedSize>() {
          for (int b = 0; b < layout.batch; ++b) {
            core::ScratchArena<double> arena(scratch.data(),
                                             static_cast<long long>(scratch.size()));
            core::ProblemSolver<double, Dynamics, NX, NU, kFixedSize, Layout, Kernels>(view, b,
                                                                                       &arena)
                .Solve();
          }
        });
    EXPECT_TRUE(dispatched);
    core::UnpackIlqrOutputs<double>(members, layout, buffer.data() + layout.best_x, results.data(),
                                    outputs);
  }
  return solutions;
}

void ExpectSameBits(const std::vector<Solution>& actual, const std::vector<Solution>& expected,
                    const std::string& label) {
  ASSERT_EQ(actual.size(), expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) {
    SCOPED_TRACE(label + " problem " + std::to_string(i));
    const Solution& a = actual[i];
    const Solution& e = expected[i];
    EXPECT_EQ(a.status, e.status);
    EXPECT_EQ(a.iterations, e.iterations);
    EXPECT_EQ(a.x, e.x);
    EXPECT_EQ(a.u, e.u);
    EXPECT_EQ(a.feedback, e.feedback);
    EXPECT_EQ(a.feedforward, e.feedforward);
    EXPECT_EQ(a.cost, e.cost);
    EXPECT_EQ(a.step_norm, e.step_norm);
    EXPECT_EQ(a.regularization, e.regularization);
  }
}

// The test graphs without matrix products, and problems for each.
struct GraphProblems {
  std::string name;
  std::vector<Problem> problems;
};

std::vector<GraphProblems> Cases() {
  std::vector<GraphProblems> cases;
  std::shared_ptr<const GraphProgram> cartpole = Compile("cartpole_graph.onnx");
  if (cartpole != nullptr) cases.push_back({"cartpole_graph", CartpoleProblems(cartpole, 6)});
  std::uint64_t seed = 700;
  for (const char* name : {"sin", "div", "softplus", "reduce_sum", "where", "gather"}) {
    std::shared_ptr<const GraphProgram> graph = Compile(std::string(name) + ".onnx");
    if (graph == nullptr) continue;
    cases.push_back({name, CaseProblems(graph, 5, seed)});
    seed += 10;
  }
  return cases;
}

TEST(GraphTapeCoreTest, TheTestGraphsHaveElementRecords) {
  const std::vector<GraphProblems> cases = Cases();
  ASSERT_EQ(cases.size(), 7u);
  for (const GraphProblems& c : cases) {
    const GraphProgram& program = *c.problems[0].graph;
    EXPECT_FALSE(program.elements.empty()) << c.name;
    EXPECT_FALSE(core::RunsOnDevice(c.problems[0].shape)) << c.name;
    bool dispatched = false;
    core::DispatchGraphTape(c.problems[0].shape,
                            [&]<class Dynamics, int, int, bool>() { dispatched = true; });
    EXPECT_TRUE(dispatched) << c.name;
  }
}

TEST(GraphTapeCoreTest, AsACpuWorkerGivesTheCpuBackendsBits) {
  for (const GraphProblems& c : Cases()) {
    ExpectSameBits(SolveOnGraphTapes<core::Contiguous, DenseKernels>(c.problems, 1),
                   SolveOnCpuBackend(c.problems), c.name);
  }
}

TEST(GraphTapeCoreTest, InTheDeviceLayoutMatchesTheCpuBackend) {
  for (const GraphProblems& c : Cases()) {
    const std::vector<Solution> device =
        SolveOnGraphTapes<core::Interleaved, core::LoopKernels>(c.problems, 4);
    core::ExpectMatchesCpu(c.problems, device, SolveOnCpuBackend(c.problems), c.name);
  }
}

}  // namespace
}  // namespace mpc
