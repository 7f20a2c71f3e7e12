#include "solver/graph/onnx_import.h"

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/solver/graph/graph_cases.h"
#include "tests/testing/status_matchers.h"

namespace mpc {
namespace {

using ::mpc::testing::BadGraphCase;
using ::mpc::testing::GraphCase;
using ::mpc::testing::StatusIs;
using ::testing::HasSubstr;

std::vector<GraphCase> Cases() {
  std::vector<GraphCase> cases = testing::LoadGraphCases();
  // export_test_graphs.py writes one graph per supported op (36 files) and a float32 MLP.
  EXPECT_GE(cases.size(), 37u) << "no graphs in MPCD_TEST_GRAPHS_DIR=" << testing::GraphsDir();
  return cases;
}

// Oracle: PyTorch's own forward of the module the graph was exported from.
TEST(OnnxImportTest, EveryOpEvaluatesAsPyTorchDoes) {
  for (const GraphCase& c : Cases()) {
    SCOPED_TRACE(c.name);
    absl::StatusOr<std::shared_ptr<const GraphProgram>> program = CompileOnnxGraph(c.bytes, {});
    ASSERT_TRUE(program.ok()) << program.status();
    const GraphProgram& p = **program;
    ASSERT_EQ(p.state_dim, static_cast<int>(c.x.size()));
    ASSERT_EQ(p.control_dim, static_cast<int>(c.u.size()));
    GraphEvaluator evaluator(*program);
    std::vector<double> next(c.x.size());
    evaluator.Step(c.x.data(), c.u.data(), p.default_params.data(), next.data());
    for (std::size_t i = 0; i < next.size(); ++i) {
      EXPECT_NEAR(next[i], c.x_next[i], c.tolerance * (1 + std::abs(c.x_next[i]))) << i;
    }
  }
}

// The parameters are the module's, by name and value, in the graph's initializer order.
TEST(OnnxImportTest, ParametersAreTheModulesByName) {
  for (const GraphCase& c : Cases()) {
    SCOPED_TRACE(c.name);
    absl::StatusOr<std::shared_ptr<const GraphProgram>> program = CompileOnnxGraph(c.bytes, {});
    ASSERT_TRUE(program.ok()) << program.status();
    const GraphProgram& p = **program;
    ASSERT_EQ(p.parameters.size(), c.params.size());
    int offset = 0;
    for (const GraphParameter& parameter : p.parameters) {
      ASSERT_EQ(c.params.count(parameter.name), 1u) << parameter.name;
      const std::vector<double>& expected = c.params.at(parameter.name);
      ASSERT_EQ(parameter.size, static_cast<int>(expected.size()));
      EXPECT_EQ(parameter.offset, offset);
      for (int k = 0; k < parameter.size; ++k) {
        EXPECT_NEAR(p.default_params[parameter.offset + k], expected[k],
                    c.tolerance * (1 + std::abs(expected[k])));
      }
      offset += parameter.size;
    }
    EXPECT_EQ(p.param_dim, offset);
  }
}

TEST(OnnxImportTest, RejectsEveryMalformedGraphClassNamingTheCulprit) {
  const std::vector<BadGraphCase> cases = testing::LoadBadGraphCases();
  ASSERT_GE(cases.size(), 10u);
  for (const BadGraphCase& c : cases) {
    SCOPED_TRACE(c.name);
    const absl::StatusOr<std::shared_ptr<const GraphProgram>> program =
        CompileOnnxGraph(c.bytes, {});
    // A graph of x and u with k != n outputs compiles (a stage constraint's) and fails as dynamics.
    const absl::Status status = program.ok() ? CheckDynamicsGraph(**program) : program.status();
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
    for (const std::string& message : c.messages) {
      EXPECT_THAT(std::string(status.message()), HasSubstr(message));
    }
  }
}

TEST(OnnxImportTest, AGraphThatEvaluatesToNanCompilesAndReturnsNan) {
  const std::string bytes = testing::ReadGraphFile("nan_at_run_time.onnx");
  absl::StatusOr<std::shared_ptr<const GraphProgram>> program = CompileOnnxGraph(bytes, {});
  ASSERT_TRUE(program.ok()) << program.status();
  GraphEvaluator evaluator(*program);
  const double x[4] = {-1.0, 1.0, 2.0, 3.0}, u[2] = {0.0, 0.0};
  double next[4];
  evaluator.Step(x, u, (*program)->default_params.data(), next);
  EXPECT_TRUE(std::isnan(next[0]));
  EXPECT_TRUE(std::isfinite(next[1]));
}

TEST(OnnxImportTest, EnforcesEveryLimit) {
  const std::string bytes = testing::ReadGraphFile("gemm_mlp.onnx");
  ASSERT_FALSE(bytes.empty());
  GraphLimits limits;
  limits.max_bytes = static_cast<long long>(bytes.size()) - 1;
  EXPECT_THAT(CompileOnnxGraph(bytes, limits), StatusIs(absl::StatusCode::kInvalidArgument,
                                                        HasSubstr("bytes, more than the limit")));
  limits = GraphLimits();
  limits.max_nodes = 3;
  EXPECT_THAT(CompileOnnxGraph(bytes, limits), StatusIs(absl::StatusCode::kInvalidArgument,
                                                        HasSubstr("nodes, more than the limit 3")));
  limits = GraphLimits();
  limits.max_parameters = 50;  // l1.weight alone has 48, l1.bias takes it past
  EXPECT_THAT(CompileOnnxGraph(bytes, limits),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("more than 50 parameters (at initializer 'l1.bias')")));
  limits = GraphLimits();
  limits.max_elements = 60;
  EXPECT_THAT(CompileOnnxGraph(bytes, limits),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("limit on graph elements")));
}

// Random corruptions of real graphs (bytes flipped, the file cut short): each compiles or is
// INVALID_ARGUMENT, and what compiles evaluates without crashing (a fuzzer in miniature; the
// sanitizer builds run it under ASan and UBSan).
TEST(OnnxImportTest, CorruptedGraphsCompileOrAreInvalidArgumentNeverACrash) {
  std::mt19937_64 rng(17);
  int compiled = 0, rejected = 0;
  for (const char* file : {"gemm_mlp.onnx", "slice.onnx", "gather.onnx", "reduce_sum.onnx"}) {
    const std::string original = testing::ReadGraphFile(file);
    ASSERT_FALSE(original.empty()) << file;
    for (int trial = 0; trial < 1000; ++trial) {
      std::string bytes = original;
      std::uniform_int_distribution<std::size_t> position(0, bytes.size() - 1);
      if (trial % 10 == 0) {
        bytes.resize(position(rng));
      } else {
        for (int flips = 1 + trial % 3; flips > 0; --flips) {
          bytes[position(rng)] = static_cast<char>(rng() & 0xff);
        }
      }
      const absl::StatusOr<std::shared_ptr<const GraphProgram>> program =
          CompileOnnxGraph(bytes, {});
      if (!program.ok()) {
        EXPECT_EQ(program.status().code(), absl::StatusCode::kInvalidArgument) << program.status();
        ++rejected;
        continue;
      }
      ++compiled;
      GraphEvaluator evaluator(*program);
      std::vector<double> x((*program)->state_dim, 0.5), u((*program)->control_dim, -0.5);
      std::vector<double> next((*program)->state_dim);
      evaluator.Step(x.data(), u.data(), (*program)->default_params.data(), next.data());
    }
  }
  // Both outcomes happen (flips in raw weights compile; flips in structure do not).
  EXPECT_GT(compiled, 0);
  EXPECT_GT(rejected, 0);
}

TEST(OnnxImportTest, FingerprintIsTheSha256OfTheBytes) {
  // FIPS 180-2's example: SHA-256("abc").
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string bytes = testing::ReadGraphFile("tanh.onnx");
  absl::StatusOr<std::shared_ptr<const GraphProgram>> program = CompileOnnxGraph(bytes, {});
  ASSERT_TRUE(program.ok()) << program.status();
  EXPECT_EQ((*program)->sha256, Sha256Hex(bytes));
  EXPECT_EQ((*program)->fingerprint[0],
            0x0ull + std::stoull((*program)->sha256.substr(0, 16), nullptr, 16));
}

}  // namespace
}  // namespace mpc
