// Dynamics graphs on the device (DESIGN §12, CudaBackend): a forward solve of a graph whose tape
// has no matrix products runs the graph's element records on the GPU (core::GraphTapeDynamics, the
// same sweeps as the CPU's GraphEvaluator); the rest of graphs stays on the CPU fallback. Oracle:
// the CPU backend, within the tolerances of the device's other nonlinear models
// (device_comparison.h; tests/solver/graph/graph_tape_core_test.cc runs the same core on the host).
// Label gpu: skips itself where no CUDA device is visible.

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "solver/cpu/cpu_backend.h"
#include "solver/cuda/cuda_backend.h"
#include "solver/graph/graph_program.h"
#include "solver/graph/onnx_import.h"
#include "solver/models/model_list.h"
#include "tests/solver/cuda/device_comparison.h"
#include "tests/solver/graph/graph_cases.h"
#include "tests/testing/cartpole_graph.h"
#include "tests/testing/random_problems.h"
#include "tests/testing/solve_batch.h"

namespace mpc {
namespace {

std::shared_ptr<const GraphProgram> Compile(const std::string& file) {
  absl::StatusOr<std::shared_ptr<const GraphProgram>> program =
      CompileOnnxGraph(testing::ReadGraphFile(file), {});
  EXPECT_TRUE(program.ok()) << file << ": " << program.status();
  return program.ok() ? *program : nullptr;
}

// Near-upright cartpole problems with the cartpole graph as their dynamics.
std::vector<Problem> CartpoleGraphProblems(const std::shared_ptr<const GraphProgram>& graph,
                                           int count) {
  std::vector<Problem> problems = testing::NearUprightCartpoleGraphProblems(graph, count, 50);
  for (int seed = 0; seed < count; ++seed) problems[seed].options.compute_gains = seed % 2 == 0;
  return problems;
}

class CudaGraphTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA device visible";
    absl::StatusOr<std::unique_ptr<CudaBackend>> cuda = CudaBackend::Create({});
    ASSERT_TRUE(cuda.ok()) << cuda.status();
    cuda_ = *std::move(cuda);
    absl::StatusOr<std::unique_ptr<CpuBackend>> cpu = CpuBackend::Create({.threads = 2});
    ASSERT_TRUE(cpu.ok());
    cpu_ = *std::move(cpu);
  }

  std::unique_ptr<CudaBackend> cuda_;
  std::unique_ptr<CpuBackend> cpu_;
};

TEST_F(CudaGraphTest, TheCartpoleGraphOnTheDeviceMatchesTheCpuBackend) {
  const std::shared_ptr<const GraphProgram> graph = Compile("cartpole_graph.onnx");
  ASSERT_NE(graph, nullptr);
  ASSERT_FALSE(graph->elements.empty());
  const std::vector<Problem> problems = CartpoleGraphProblems(graph, 64);
  core::ExpectMatchesCpu(problems, testing::SolveAll(*cuda_, problems),
                         testing::SolveAll(*cpu_, problems), "cartpole graph");
}

// A tape with matrix products (an MLP) has no element records: the CPU fallback solves it, so the
// answers are the CPU backend's bit for bit.
TEST_F(CudaGraphTest, AnMlpGraphStaysOnTheCpu) {
  const std::shared_ptr<const GraphProgram> graph = Compile("gemm_mlp.onnx");
  ASSERT_NE(graph, nullptr);
  ASSERT_TRUE(graph->elements.empty());
  std::vector<Problem> problems;
  for (int seed = 0; seed < 4; ++seed) {
    testing::RandomLqrOptions options{.state_dim = graph->state_dim,
                                      .control_dim = graph->control_dim};
    Problem p = testing::RandomLqrProblem(options, 900 + seed);
    p.shape.dynamics = DynamicsId::Graph(graph->fingerprint.data());
    p.transition.clear();
    p.offset.clear();
    p.graph = graph;
    problems.push_back(std::move(p));
  }
  const std::vector<Solution> device = testing::SolveAll(*cuda_, problems);
  const std::vector<Solution> cpu = testing::SolveAll(*cpu_, problems);
  for (std::size_t i = 0; i < problems.size(); ++i) {
    EXPECT_EQ(device[i].x, cpu[i].x);
    EXPECT_EQ(device[i].u, cpu[i].u);
    EXPECT_EQ(device[i].status, cpu[i].status);
  }
}

}  // namespace
}  // namespace mpc
