// Stage costs as graphs (DESIGN §12): a cost graph's value and derivatives against PyTorch's own
// (autograd's gradient and Hessian of the module export_test_graphs.py wrote), the quadratic cost
// written as a graph against the built-in quadratic cost (the same solve to 1e-10), and
// non-quadratic costs on the pendulum: the solve converges to a point where the true cost is
// stationary (central differences of the total cost over u through the model's rollout).

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "solver/cpu/cpu_backend.h"
#include "solver/graph/graph_program.h"
#include "solver/graph/onnx_import.h"
#include "solver/models/model_derivatives.h"
#include "solver/models/model_list.h"
#include "tests/solver/graph/graph_cases.h"
#include "tests/testing/random_problems.h"

namespace mpc {
namespace {

struct CostCase {
  std::shared_ptr<const GraphProgram> program;
  std::vector<double> tau, gradient, hessian;
  double cost = 0.0;
  std::map<std::string, std::vector<double>> params;
};

CostCase LoadCostCase(const std::string& name) {
  CostCase c;
  for (const nlohmann::json& entry : testing::ReadManifest("cost_graphs.json")) {
    if (entry["name"] != name) continue;
    absl::StatusOr<std::shared_ptr<const GraphProgram>> program =
        CompileOnnxGraph(testing::ReadGraphFile(name + ".onnx"), {});
    EXPECT_TRUE(program.ok()) << program.status();
    if (program.ok()) c.program = *program;
    c.tau = entry["tau"].get<std::vector<double>>();
    c.gradient = entry["gradient"].get<std::vector<double>>();
    c.hessian = entry["hessian"].get<std::vector<double>>();
    c.cost = entry["cost"];
    c.params = entry["params"].get<std::map<std::string, std::vector<double>>>();
  }
  EXPECT_NE(c.program, nullptr) << name;
  return c;
}

// theta in the program's initializer order from values by name.
std::vector<double> Theta(const GraphProgram& program,
                          const std::map<std::string, std::vector<double>>& by_name) {
  std::vector<double> theta(program.param_dim);
  for (const GraphParameter& parameter : program.parameters) {
    const std::vector<double>& values = by_name.at(parameter.name);
    EXPECT_EQ(static_cast<int>(values.size()), parameter.size) << parameter.name;
    std::copy(values.begin(), values.end(), theta.begin() + parameter.offset);
  }
  return theta;
}

constexpr int kN = PendulumModel::kStateDim;
constexpr int kM = PendulumModel::kControlDim;
constexpr int kTau = kN + kM;

TEST(CostGraph, CompilesAsACostWithTauAndAScalar) {
  const CostCase c = LoadCostCase("logcosh_cost_graph");
  ASSERT_NE(c.program, nullptr);
  EXPECT_TRUE(c.program->is_cost);
  EXPECT_EQ(c.program->state_dim, kTau);
  EXPECT_EQ(c.program->control_dim, 0);
  EXPECT_EQ(c.program->output_dim, 1);
}

TEST(CostGraph, ValueGradientAndHessianEqualPytorchs) {
  for (const std::string name : {"quadratic_cost_graph", "logcosh_cost_graph", "wavy_cost_graph"}) {
    SCOPED_TRACE(name);
    const CostCase c = LoadCostCase(name);
    ASSERT_NE(c.program, nullptr);
    GraphEvaluator evaluator(c.program);
    const std::vector<double> theta = Theta(*c.program, c.params);
    const double* x = c.tau.data();
    const double* u = c.tau.data() + kN;
    EXPECT_NEAR(evaluator.Cost(x, u, kN, theta.data()), c.cost, 1e-12);
    double g[kTau], H[kTau * kTau];
    evaluator.CostDerivatives(x, u, kN, theta.data(), g, H);
    for (int i = 0; i < kTau; ++i) EXPECT_NEAR(g[i], c.gradient[i], 1e-12) << i;
    for (int e = 0; e < kTau * kTau; ++e) EXPECT_NEAR(H[e], c.hessian[e], 1e-12) << e;
  }
}

TEST(CostGraph, QuadratisationIsExactWhenConvexAndProjectedWhenNot) {
  const CostCase wavy = LoadCostCase("wavy_cost_graph");
  ASSERT_NE(wavy.program, nullptr);
  GraphEvaluator evaluator(wavy.program);
  const std::vector<double> theta = Theta(*wavy.program, wavy.params);
  // d2/d tau_2^2 = w_2 - 4 a cos(2 tau_2) = 0.3 - 2 cos(2 tau_2): negative at tau_2 = 0.
  const double x[kN] = {0.9, 0.1, 0.0};
  const double u[kM] = {0.2};
  double C[kTau * kTau], c[kTau], g[kTau], H[kTau * kTau];
  EXPECT_TRUE(evaluator.QuadratiseCost(x, u, kN, theta.data(), C, c));
  evaluator.CostDerivatives(x, u, kN, theta.data(), g, H);
  EXPECT_LT(H[2 * kTau + 2], 0.0);
  // C is H with the negative eigenvalue (tau_2 alone: H is diagonal there) clipped to 0.
  for (int i = 0; i < kTau; ++i) {
    for (int j = 0; j < kTau; ++j) {
      const double want = (i == 2 && j == 2) ? 0.0 : H[i * kTau + j];
      EXPECT_NEAR(C[i * kTau + j], want, 1e-12) << i << "," << j;
    }
  }
  // The model's gradient at tau is the true one: C tau + c = g.
  const double tau[kTau] = {x[0], x[1], x[2], u[0]};
  for (int i = 0; i < kTau; ++i) {
    double s = c[i];
    for (int j = 0; j < kTau; ++j) s += C[i * kTau + j] * tau[j];
    EXPECT_NEAR(s, g[i], 1e-12) << i;
  }
  // Away from the non-convex region no projection: C = H.
  const double x_convex[kN] = {0.9, 0.1, 0.8};
  EXPECT_FALSE(evaluator.QuadratiseCost(x_convex, u, kN, theta.data(), C, c));
}

class CostGraphSolveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<CpuBackend>> backend = CpuBackend::Create({.threads = 2});
    ASSERT_TRUE(backend.ok());
    backend_ = *std::move(backend);
  }

  // A pendulum problem near upright with its cost replaced by `graph` (theta by name).
  static Problem WithCostGraph(Problem problem, const CostCase& c,
                               const std::map<std::string, std::vector<double>>& params) {
    const int T = problem.shape.horizon;
    std::copy(c.program->fingerprint.begin(), c.program->fingerprint.end(),
              problem.shape.cost_graph);
    problem.cost_graph = c.program;
    problem.cost_params = Theta(*c.program, params);
    problem.cost_quadratic.assign(static_cast<std::size_t>(T) * kTau * kTau, 0.0);
    problem.cost_linear.assign(static_cast<std::size_t>(T) * kTau, 0.0);
    return problem;
  }

  static Problem Pendulum(int seed) {
    testing::RandomModelOptions options;
    options.horizon = 12;
    // Near upright, with the model's own torque limit as bounds (beyond it the clamp inside the
    // dynamics makes the cost flat in u) and a control weight that keeps most torques inside.
    options.th_half_width = 0.5;
    options.thdot_half_width = 0.3;
    options.ctrl_penalty = 0.5;
    Problem p = testing::RandomPendulumProblem(options, seed);
    p.options.max_iterations = 200;
    p.options.tolerance = 1e-9;
    return p;
  }

  Solution Solve(const Problem& problem) {
    Solution solution;
    const Problem* problems[] = {&problem};
    Solution* solutions[] = {&solution};
    EXPECT_TRUE(backend_->SolveBatch(problems, solutions).ok());
    return solution;
  }

  // sum_t l(tau_t) of the pendulum rolled out from x_init under u.
  static double TotalCost(const Problem& problem, GraphEvaluator& cost,
                          const std::vector<double>& u) {
    const double params[] = {10.0, 1.0, 1.0};
    std::vector<double> x = problem.x_init;
    double total = 0.0;
    for (int t = 0; t < problem.shape.horizon; ++t) {
      total += cost.Cost(x.data(), &u[t], kN, problem.cost_params.data());
      double next[kN], A[kN * kN], B[kN * kM];
      StepWithJacobians<PendulumModel, MatrixOrder::kRowMajor>(
          x.data(), &u[t], params, PendulumModel::kDefaultDt, next, A, B);
      x.assign(next, next + kN);
    }
    return total;
  }

  std::unique_ptr<CpuBackend> backend_;
};

double MaxDifference(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}

TEST_F(CostGraphSolveTest, QuadraticCostAsAGraphSolvesAsTheQuadraticCost) {
  const CostCase quadratic = LoadCostCase("quadratic_cost_graph");
  ASSERT_NE(quadratic.program, nullptr);
  for (int seed = 0; seed < 4; ++seed) {
    const Problem builtin = Pendulum(seed);
    ASSERT_EQ(builtin.cost_quadratic.size(), static_cast<std::size_t>(kTau * kTau));
    ASSERT_EQ(builtin.cost_linear.size(), static_cast<std::size_t>(kTau));
    const Problem graph = WithCostGraph(
        builtin, quadratic, {{"C", builtin.cost_quadratic}, {"c", builtin.cost_linear}});
    ASSERT_TRUE(ValidateProblem(graph, {}).ok()) << ValidateProblem(graph, {});
    const Solution expected = Solve(builtin);
    const Solution actual = Solve(graph);
    EXPECT_EQ(actual.status, expected.status);
    EXPECT_EQ(actual.status, SolveStatus::kConverged);
    // Two computations of the same cost, each stopped once its step is below the tolerance
    // (1e-9): their last iterates agree to that tolerance.
    EXPECT_LT(MaxDifference(actual.x, expected.x), builtin.options.tolerance);
    EXPECT_LT(MaxDifference(actual.u, expected.u), builtin.options.tolerance);
    EXPECT_NEAR(actual.cost, expected.cost, 1e-10 * (1 + std::abs(expected.cost)));
    EXPECT_EQ(actual.cost_hessian_projections, 0);
  }
}

// At a converged solve, d/du sum_t l(tau_t(u)) = 0 (central differences) for every control
// strictly inside its bounds.
void ExpectStationary(const Problem& problem, GraphEvaluator& cost, const Solution& solution,
                      double (*total)(const Problem&, GraphEvaluator&,
                                      const std::vector<double>&)) {
  const double h = 1e-6;
  double largest = 0.0;
  int free = 0;
  for (std::size_t e = 0; e < solution.u.size(); ++e) {
    if (std::abs(solution.u[e]) > PendulumModel::kMaxTorque - 1e-6) continue;
    ++free;
    std::vector<double> plus = solution.u, minus = solution.u;
    plus[e] += h;
    minus[e] -= h;
    const double derivative = (total(problem, cost, plus) - total(problem, cost, minus)) / (2 * h);
    largest = std::max(largest, std::abs(derivative));
  }
  EXPECT_LT(largest, 1e-6);
  EXPECT_GT(free, 0);
  // And the solution is no trivial one: the cost moved the controls.
  double u_norm = 0.0;
  for (double v : solution.u) u_norm += v * v;
  EXPECT_GT(u_norm, 1e-4);
}

TEST_F(CostGraphSolveTest, LogCoshCostConvergesToAStationaryPoint) {
  const CostCase logcosh = LoadCostCase("logcosh_cost_graph");
  ASSERT_NE(logcosh.program, nullptr);
  for (int seed = 0; seed < 3; ++seed) {
    const Problem problem = WithCostGraph(Pendulum(seed), logcosh, logcosh.params);
    const Solution solution = Solve(problem);
    EXPECT_EQ(solution.status, SolveStatus::kConverged) << seed;
    GraphEvaluator cost(logcosh.program);
    EXPECT_NEAR(solution.cost, TotalCost(problem, cost, solution.u), 1e-9);
    ExpectStationary(problem, cost, solution, &TotalCost);
  }
}

TEST_F(CostGraphSolveTest, NonConvexCostIsProjectedReportedAndConverges) {
  const CostCase wavy = LoadCostCase("wavy_cost_graph");
  ASSERT_NE(wavy.program, nullptr);
  int projections = 0;
  for (int seed = 0; seed < 3; ++seed) {
    const Problem problem = WithCostGraph(Pendulum(seed), wavy, wavy.params);
    const Solution solution = Solve(problem);
    EXPECT_EQ(solution.status, SolveStatus::kConverged) << seed;
    projections += solution.cost_hessian_projections;
    GraphEvaluator cost(wavy.program);
    ExpectStationary(problem, cost, solution, &TotalCost);
  }
  EXPECT_GT(projections, 0);
}

}  // namespace
}  // namespace mpc
