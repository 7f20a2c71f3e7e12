// Stage constraint graphs g(x, u; theta) <= 0: the evaluator's rows, their linearisation, the
// curvature sum_r nu_r d2g_r and the parameters' chain rule against PyTorch's autograd on the
// modules export_test_graphs.py wrote (constraint_graphs.json), for a graph of x alone (circular
// obstacles) and one of x and u; such graphs are refused as dynamics.

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "solver/graph/graph_program.h"
#include "solver/graph/onnx_import.h"
#include "tests/solver/graph/graph_cases.h"
#include "tests/testing/status_matchers.h"

namespace mpc {
namespace {

using ::mpc::testing::StatusIs;
using ::testing::HasSubstr;

constexpr int kN = 4, kM = 2, kNt = kN + kM;

struct ConstraintCase {
  std::string name;
  std::shared_ptr<const GraphProgram> program;
  std::vector<double> x, u, g, jacobian, nu, hessian, grad_G, grad_h, theta, param_gradient;
};

std::vector<double> InProgramOrder(const GraphProgram& program, const nlohmann::json& by_name) {
  std::vector<double> values(program.param_dim);
  for (const GraphParameter& parameter : program.parameters) {
    const std::vector<double> v = by_name.at(parameter.name).get<std::vector<double>>();
    EXPECT_EQ(static_cast<int>(v.size()), parameter.size) << parameter.name;
    std::copy(v.begin(), v.end(), values.begin() + parameter.offset);
  }
  return values;
}

std::vector<ConstraintCase> LoadCases() {
  std::vector<ConstraintCase> cases;
  for (const nlohmann::json& entry : testing::ReadManifest("constraint_graphs.json")) {
    ConstraintCase c;
    c.name = entry["name"];
    absl::StatusOr<std::shared_ptr<const GraphProgram>> program =
        CompileOnnxGraph(testing::ReadGraphFile(c.name + ".onnx"), {});
    EXPECT_TRUE(program.ok()) << c.name << ": " << program.status();
    if (!program.ok()) continue;
    c.program = *program;
    for (const auto& [field, key] : {std::pair{&c.x, "x"},
                                     {&c.u, "u"},
                                     {&c.g, "g"},
                                     {&c.jacobian, "jacobian"},
                                     {&c.nu, "nu"},
                                     {&c.hessian, "hessian"},
                                     {&c.grad_G, "grad_G"},
                                     {&c.grad_h, "grad_h"}}) {
      *field = entry[key].get<std::vector<double>>();
    }
    c.theta = InProgramOrder(**program, entry["params"]);
    c.param_gradient = InProgramOrder(**program, entry["param_gradient"]);
    cases.push_back(std::move(c));
  }
  EXPECT_EQ(cases.size(), 2u) << "no constraint graphs in MPCD_TEST_GRAPHS_DIR";
  return cases;
}

void ExpectNear(const std::vector<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t e = 0; e < got.size(); ++e) {
    EXPECT_NEAR(got[e], want[e], 1e-12 * (1 + std::abs(want[e]))) << e;
  }
}

TEST(ConstraintGraphTest, RowsLinearisationCurvatureAndParameterChainAsPyTorch) {
  for (const ConstraintCase& c : LoadCases()) {
    SCOPED_TRACE(c.name);
    const GraphProgram& p = *c.program;
    const int k = static_cast<int>(c.g.size());
    ASSERT_EQ(p.output_dim, k);
    ASSERT_EQ(p.state_dim, kN);
    EXPECT_EQ(p.control_dim, c.name == "obstacle_constraint_graph" ? 0 : kM);
    GraphEvaluator evaluator(c.program);

    std::vector<double> rows(k);
    for (int r = 0; r < k; ++r) {
      rows[r] = evaluator.ConstraintRow(c.x.data(), c.u.data(), c.theta.data(), r);
    }
    ExpectNear(rows, c.g);

    // G is the Jacobian over the problem's n+m (zero columns on u for a graph of x alone) and
    // h = G tau - g.
    std::vector<double> G(k * kNt, -1.0), h(k);
    evaluator.LinearizeConstraints(c.x.data(), c.u.data(), c.theta.data(), kNt, G.data(), h.data());
    ExpectNear(G, c.jacobian);
    std::vector<double> h_want(k);
    for (int r = 0; r < k; ++r) {
      double s = -c.g[r];
      for (int e = 0; e < kN; ++e) s += c.jacobian[r * kNt + e] * c.x[e];
      for (int e = 0; e < kM; ++e) s += c.jacobian[r * kNt + kN + e] * c.u[e];
      h_want[r] = s;
    }
    ExpectNear(h, h_want);

    std::vector<double> H(kNt * kNt, -1.0);
    evaluator.ConstraintCurvature(c.x.data(), c.u.data(), c.theta.data(), c.nu.data(), kNt,
                                  H.data());
    ExpectNear(H, c.hessian);

    std::vector<double> gradient(p.param_dim, 0.0);
    evaluator.AddConstraintParamGradient(c.x.data(), c.u.data(), c.theta.data(), kNt,
                                         c.grad_G.data(), c.grad_h.data(), gradient.data());
    ExpectNear(gradient, c.param_gradient);

    // The rows' cache follows the inputs.
    std::vector<double> moved = c.x;
    moved[0] += 0.25;
    std::vector<double> G_moved(k * kNt), h_moved(k);
    evaluator.LinearizeConstraints(moved.data(), c.u.data(), c.theta.data(), kNt, G_moved.data(),
                                   h_moved.data());
    for (int r = 0; r < k; ++r) {
      double g_moved = -h_moved[r];
      for (int e = 0; e < kN; ++e) g_moved += G_moved[r * kNt + e] * moved[e];
      for (int e = 0; e < kM; ++e) g_moved += G_moved[r * kNt + kN + e] * c.u[e];
      EXPECT_NEAR(evaluator.ConstraintRow(moved.data(), c.u.data(), c.theta.data(), r), g_moved,
                  1e-12);
    }
  }
}

TEST(ConstraintGraphTest, AConstraintGraphIsNotDynamics) {
  for (const ConstraintCase& c : LoadCases()) {
    SCOPED_TRACE(c.name);
    EXPECT_THAT(CheckDynamicsGraph(*c.program),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr(c.name == "obstacle_constraint_graph"
                                       ? "the graph has no input 'u'"
                                       : "has 2 elements, expected n = 4")));
  }
}

}  // namespace
}  // namespace mpc
