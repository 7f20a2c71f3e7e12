// Graph dynamics in the core (DESIGN §12): the same physics as a graph and as a built-in model give
// the same solve and the same gradients. Oracle: the built-in cartpole (forward-mode AD of its
// templated Step), against the cartpole module torch.onnx.export wrote (export_test_graphs.py).

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "solver/core/dispatch.h"
#include "solver/cpu/cpu_backend.h"
#include "solver/cpu/ilqr.h"
#include "solver/gradients.h"
#include "solver/graph/graph_program.h"
#include "solver/graph/onnx_import.h"
#include "solver/models/model_derivatives.h"
#include "solver/models/model_list.h"
#include "tests/solver/graph/graph_cases.h"
#include "tests/testing/cartpole_graph.h"
#include "tests/testing/random_problems.h"

namespace mpc {
namespace {

std::shared_ptr<const GraphProgram> CartpoleGraph() {
  absl::StatusOr<std::shared_ptr<const GraphProgram>> program =
      CompileOnnxGraph(testing::ReadGraphFile("cartpole_graph.onnx"), {});
  EXPECT_TRUE(program.ok()) << program.status();
  return program.ok() ? *program : nullptr;
}

// The built-in problem with the graph as its dynamics; the model's parameters mapped by name.
Problem AsGraphProblem(const Problem& builtin, std::shared_ptr<const GraphProgram> graph) {
  Problem p = testing::WithCartpoleGraph(builtin, std::move(graph), builtin.params);
  EXPECT_EQ(p.params.size(), builtin.params.size());
  return p;
}

double MaxDifference(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}

// The graph's Jacobians equal the model's to rounding, not bit for bit (another order of the same
// operations). A solve feels that only where its line search compares costs that differ by
// rounding, i.e. at steps below about 1e-7 on these problems (a step's decrease of the cost goes
// as its square), which a tolerance of 1e-10 reached: then the two solves could part ways or one
// stall there. So the two are compared above that floor, in two ways:
// - step by step: after kPathIterations iterations (every step still above 4e-4) the iterates
//   are the same to 1e-10;
// - converged at kTolerance, the same for both: the same iteration count, and the solutions within
//   3 kTolerance of each other. Each returned iterate is within (1 + r) kTolerance of the optimum
//   (its last full step is below kTolerance and leaves r times that, r < 0.5 the contraction of an
//   iteration near the optimum: these problems' steps shrink 30-100x per iteration), so the two
//   are within 2 (1 + r) kTolerance < 3 kTolerance in u; the states follow the controls through
//   15 steps of a few hundredths of a second, with a smaller gain (measured: both solves within
//   5e-8 of each other in u, 5e-9 in x, the same iteration counts).
constexpr int kPathIterations = 2;
constexpr double kTolerance = 1e-6;

// Runs both checks on `builtin` and `graph` (the same problem with the graph as its dynamics);
// returns the built-in model's converged solution.
Solution ExpectSameSolve(CpuBackend& backend, Problem builtin, Problem graph) {
  Solution expected, actual;
  const Problem* problems[] = {&builtin, &graph};
  Solution* solutions[] = {&expected, &actual};
  for (Problem* p : {&builtin, &graph}) {
    p->options.max_iterations = kPathIterations;
    p->options.tolerance = 0.0;
  }
  EXPECT_TRUE(backend.SolveBatch(problems, solutions).ok());
  EXPECT_EQ(actual.iterations, kPathIterations);
  EXPECT_LT(MaxDifference(actual.x, expected.x), 1e-10) << "after " << kPathIterations;
  EXPECT_LT(MaxDifference(actual.u, expected.u), 1e-10) << "after " << kPathIterations;
  EXPECT_NEAR(actual.cost, expected.cost, 1e-10 * (1 + std::abs(expected.cost)));

  for (Problem* p : {&builtin, &graph}) {
    p->options.max_iterations = 100;
    p->options.tolerance = kTolerance;
  }
  EXPECT_TRUE(backend.SolveBatch(problems, solutions).ok());
  EXPECT_EQ(expected.status, SolveStatus::kConverged);
  EXPECT_EQ(actual.status, expected.status);
  EXPECT_EQ(actual.iterations, expected.iterations);
  EXPECT_LT(MaxDifference(actual.x, expected.x), 3 * kTolerance);
  EXPECT_LT(MaxDifference(actual.u, expected.u), 3 * kTolerance);
  // The cost is stationary there: its difference goes as the square of theirs.
  EXPECT_NEAR(actual.cost, expected.cost, 1e-10 * (1 + std::abs(expected.cost)));
  return expected;
}

class GraphDynamicsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    graph_ = CartpoleGraph();
    ASSERT_NE(graph_, nullptr);
    ASSERT_EQ(graph_->param_dim, CartpoleModel::kParamDim);
    absl::StatusOr<std::unique_ptr<CpuBackend>> backend = CpuBackend::Create({.threads = 2});
    ASSERT_TRUE(backend.ok());
    backend_ = *std::move(backend);
  }

  std::vector<Problem> Problems(int count) {
    std::vector<Problem> problems;
    for (int seed = 0; seed < count; ++seed) {
      // Near upright, so that every solve converges: the two are then compared at the optimum
      // (swing-ups that stop short of it part ways over rounding-level differences).
      testing::RandomModelOptions options;
      options.horizon = 15;
      options.th_half_width = 0.3;
      options.thdot_half_width = 0.2;
      Problem builtin = testing::RandomCartpoleProblem(options, seed);
      builtin.options.max_iterations = 100;
      builtin.options.tolerance = 1e-10;
      // Not the defaults, so that the parameters really travel.
      builtin.params = {9.81, 1.2, 0.15, 0.45};
      problems.push_back(builtin);
    }
    return problems;
  }

  std::shared_ptr<const GraphProgram> graph_;
  std::unique_ptr<CpuBackend> backend_;
};

TEST_F(GraphDynamicsTest, StepsAndLinearisesAsTheBuiltinModelDoes) {
  GraphEvaluator evaluator(graph_);
  testing::Rng rng(3);
  const double params[] = {9.81, 1.2, 0.15, 0.45};
  double theta[4];
  for (const GraphParameter& parameter : graph_->parameters) {
    for (int k = 0; k < 4; ++k) {
      if (parameter.name == CartpoleModel::kParamNames[k]) theta[parameter.offset] = params[k];
    }
  }
  for (int trial = 0; trial < 20; ++trial) {
    const double th = rng.Uniform(-3, 3);
    double x[5] = {rng.Uniform(-1, 1), rng.Uniform(-1, 1), std::cos(th), std::sin(th),
                   rng.Uniform(-2, 2)};
    double u[1] = {rng.Uniform(-20, 20)};
    double next[5], A[25], B[5], want[5], want_A[25], want_B[5];
    evaluator.StepWithJacobians(x, u, theta, next, A, B);
    StepWithJacobians<CartpoleModel, MatrixOrder::kRowMajor>(x, u, params, 0.05, want, want_A,
                                                             want_B);
    for (int i = 0; i < 5; ++i) EXPECT_NEAR(next[i], want[i], 1e-14) << i;
    for (int e = 0; e < 25; ++e) EXPECT_NEAR(A[e], want_A[e], 1e-12) << e;
    for (int e = 0; e < 5; ++e) EXPECT_NEAR(B[e], want_B[e], 1e-12) << e;
    // The parameter products of the backward pass: P' lambda and the mixed term.
    double lambda[5], dx[5], du[1] = {rng.Uniform(-1, 1)}, P[20], unused[5], mixed[4];
    for (int i = 0; i < 5; ++i) {
      lambda[i] = rng.Uniform(-1, 1);
      dx[i] = rng.Uniform(-1, 1);
    }
    StepParamJacobian<CartpoleModel>(x, u, params, 0.05, unused, P);
    StepMixedDirectional<CartpoleModel>(x, u, params, 0.05, lambda, dx, du, mixed);
    double vjp[4], graph_mixed[4];
    evaluator.ParamVjp(x, u, theta, lambda, vjp);
    evaluator.MixedDirectional(x, u, theta, lambda, dx, du, graph_mixed);
    for (const GraphParameter& parameter : graph_->parameters) {
      for (int k = 0; k < 4; ++k) {
        if (parameter.name != CartpoleModel::kParamNames[k]) continue;
        double want_vjp = 0;
        for (int i = 0; i < 5; ++i) want_vjp += P[k * 5 + i] * lambda[i];
        EXPECT_NEAR(vjp[parameter.offset], want_vjp, 1e-11 * (1 + std::abs(want_vjp)));
        EXPECT_NEAR(graph_mixed[parameter.offset], mixed[k], 1e-11 * (1 + std::abs(mixed[k])));
      }
    }
  }
}

TEST_F(GraphDynamicsTest, SolvesAsTheBuiltinModelDoes) {
  for (const Problem& builtin : Problems(6)) {
    const Problem graph = AsGraphProblem(builtin, graph_);
    ASSERT_TRUE(ValidateProblem(graph, {}).ok()) << ValidateProblem(graph, {});
    ExpectSameSolve(*backend_, builtin, graph);
  }
}

// A graph with a built-in model's (n, m) runs at that model's compile-time sizes (the CPU
// executor's dispatch), other graphs at run-time sizes; the same graph at either gives the same
// solve, bit for bit (at these sizes both take the core's own loops, in the same order).
TEST_F(GraphDynamicsTest, CompileTimeAndRunTimeSizesGiveTheSameSolve) {
  for (const Problem& builtin : Problems(3)) {
    Problem graph = AsGraphProblem(builtin, graph_);
    graph.options.tolerance = kTolerance;
    Solution fixed, dynamic;
    MakeShapeSolver(graph.shape)->Solve(graph, &fixed);
    MakeDynamicSizeShapeSolver(graph.shape)->Solve(graph, &dynamic);
    EXPECT_EQ(fixed.status, SolveStatus::kConverged);
    EXPECT_EQ(fixed.status, dynamic.status);
    EXPECT_EQ(fixed.iterations, dynamic.iterations);
    EXPECT_EQ(fixed.x, dynamic.x);
    EXPECT_EQ(fixed.u, dynamic.u);
    EXPECT_EQ(fixed.cost, dynamic.cost);
  }
}

TEST_F(GraphDynamicsTest, GradientsAreTheBuiltinModelsInEveryMode) {
  int seed = 0;
  for (const Problem& builtin : Problems(4)) {
    const Problem graph = AsGraphProblem(builtin, graph_);
    Solution solution;
    const Problem* solve[] = {&builtin};
    Solution* solved[] = {&solution};
    ASSERT_TRUE(backend_->SolveBatch(solve, solved).ok());
    for (GradientMode mode :
         {GradientMode::kDefault, GradientMode::kFullChain, GradientMode::kExact}) {
      BackwardProblem a{&builtin, solution.x, solution.u, {}, {}, mode};
      testing::Rng rng(seed++);
      for (std::size_t i = 0; i < solution.x.size(); ++i) a.dl_dx.push_back(rng.Uniform(-1, 1));
      for (std::size_t i = 0; i < solution.u.size(); ++i) a.dl_du.push_back(rng.Uniform(-1, 1));
      BackwardProblem b = a;
      b.problem = &graph;
      ProblemGradient expected, actual;
      const BackwardProblem* problems[] = {&a, &b};
      ProblemGradient* gradients[] = {&expected, &actual};
      ASSERT_TRUE(backend_->BackwardBatch(problems, gradients).ok());
      EXPECT_EQ(actual.status, expected.status);
      EXPECT_LT(MaxDifference(actual.x_init, expected.x_init), 1e-9);
      EXPECT_LT(MaxDifference(actual.cost_quadratic, expected.cost_quadratic), 1e-9);
      EXPECT_LT(MaxDifference(actual.cost_linear, expected.cost_linear), 1e-9);
      ASSERT_EQ(actual.params.size(), expected.params.size());
      for (const GraphParameter& parameter : graph_->parameters) {
        for (int k = 0; k < CartpoleModel::kParamDim; ++k) {
          if (parameter.name != CartpoleModel::kParamNames[k]) continue;
          EXPECT_NEAR(actual.params[parameter.offset], expected.params[k],
                      1e-9 * (1 + std::abs(expected.params[k])))
              << parameter.name << " in mode " << GradientModeName(mode);
        }
      }
    }
  }
}

TEST_F(GraphDynamicsTest, TheBatchKeyIsTheGraphsContent) {
  const Problem builtin = Problems(1)[0];
  const Problem a = AsGraphProblem(builtin, graph_);
  const Problem b = AsGraphProblem(builtin, CartpoleGraph());  // compiled again: equal key
  EXPECT_EQ(a.shape, b.shape);
  std::shared_ptr<const GraphProgram> other;
  for (const testing::GraphCase& c : testing::LoadGraphCases()) {
    if (c.name == "tanh") other = *CompileOnnxGraph(c.bytes, {});
  }
  ASSERT_NE(other, nullptr);
  EXPECT_NE(DynamicsId::Graph(other->fingerprint.data()), a.shape.dynamics);
  EXPECT_NE(a.shape.dynamics, builtin.shape.dynamics);
}

// ---------------------------------------------------------------------------------------------
// A continuous-time graph (its output dx/dt) is discretised by the request's integrator. Oracle:
// the built-in continuous-time cartpole (its derivatives by dual numbers through the same
// integrator, themselves checked against central differences in model_test) against the same ODE
// as a module (cartpole_ode_graph.onnx).

// theta in the graph's initializer order from the model's parameters.
std::vector<double> GraphTheta(const GraphProgram& graph, const double* params) {
  std::vector<double> theta(graph.param_dim);
  for (const GraphParameter& parameter : graph.parameters) {
    for (int k = 0; k < CartpoleContinuousModel::kParamDim; ++k) {
      if (parameter.name == CartpoleContinuousModel::kParamNames[k]) {
        theta[parameter.offset] = params[k];
      }
    }
  }
  return theta;
}

TEST(ContinuousGraphTest, EveryDerivativeIsTheIntegratedModels) {
  using Model = CartpoleContinuousModel;
  absl::StatusOr<std::shared_ptr<const GraphProgram>> program =
      CompileOnnxGraph(testing::ReadGraphFile("cartpole_ode_graph.onnx"), {});
  ASSERT_TRUE(program.ok()) << program.status();
  const GraphProgram& graph = **program;
  ASSERT_EQ(graph.state_dim, 4);
  ASSERT_EQ(graph.param_dim, 4);
  GraphEvaluator evaluator(*program);
  const double params[] = {9.81, 1.2, 0.15, 0.45};
  const std::vector<double> theta = GraphTheta(graph, params);
  testing::Rng rng(5);
  for (Integrator integrator : {Integrator::kEuler, Integrator::kMidpoint, Integrator::kRk4}) {
    SCOPED_TRACE(IntegratorName(integrator));
    const TimeStep dt(0.05, integrator);
    for (int trial = 0; trial < 5; ++trial) {
      double x[4], u[1] = {rng.Uniform(-5, 5)}, lambda[4], mu[4], dx[4],
                   du[1] = {rng.Uniform(-1, 1)};
      for (int i = 0; i < 4; ++i) {
        x[i] = rng.Uniform(-1, 1);
        lambda[i] = rng.Uniform(-1, 1);
        mu[i] = rng.Uniform(-1, 1);
        dx[i] = rng.Uniform(-1, 1);
      }
      double next[4], A[16], B[4], want[4], want_A[16], want_B[4];
      evaluator.StepWithJacobians(x, u, theta.data(), dt, next, A, B);
      StepWithJacobians<Model, MatrixOrder::kRowMajor>(x, u, params, dt, want, want_A, want_B);
      for (int i = 0; i < 4; ++i) EXPECT_NEAR(next[i], want[i], 1e-14) << i;
      for (int e = 0; e < 16; ++e) EXPECT_NEAR(A[e], want_A[e], 1e-12) << e;
      for (int e = 0; e < 4; ++e) EXPECT_NEAR(B[e], want_B[e], 1e-12) << e;
      double plain[4];
      evaluator.Step(x, u, theta.data(), dt, plain);
      for (int i = 0; i < 4; ++i) EXPECT_EQ(plain[i], next[i]);

      // -(dF/dtheta)' mu, and with lambda also -(d2 (lambda' F) / dtheta dtau) dtau.
      double P[16], unused[4], mixed[4];
      StepParamJacobian<Model>(x, u, params, dt, unused, P);
      StepMixedDirectional<Model>(x, u, params, dt, lambda, dx, du, mixed);
      std::vector<double> vjp(4, 0.0), both(4, 0.0);
      evaluator.SubtractParamGradient(x, u, theta.data(), dt, mu, nullptr, dx, du, vjp.data());
      evaluator.SubtractParamGradient(x, u, theta.data(), dt, mu, lambda, dx, du, both.data());
      for (const GraphParameter& parameter : graph.parameters) {
        for (int k = 0; k < 4; ++k) {
          if (parameter.name != Model::kParamNames[k]) continue;
          double want_vjp = 0;
          for (int i = 0; i < 4; ++i) want_vjp -= P[k * 4 + i] * mu[i];
          EXPECT_NEAR(vjp[parameter.offset], want_vjp, 1e-11 * (1 + std::abs(want_vjp)));
          EXPECT_NEAR(both[parameter.offset] - vjp[parameter.offset], -mixed[k],
                      1e-11 * (1 + std::abs(mixed[k])));
        }
      }

      // EXACT mode's curvature d2 (lambda' F) / d tau2.
      double H[25], want_H[25];
      evaluator.LambdaHessian(x, u, theta.data(), dt, lambda, H);
      StepTauHessian<Model>(x, u, params, dt, lambda, want_H);
      for (int e = 0; e < 25; ++e) EXPECT_NEAR(H[e], want_H[e], 1e-11 * (1 + std::abs(want_H[e])));
    }
  }
}

TEST(ContinuousGraphTest, SolvesAndDifferentiatesAsTheBuiltinContinuousModel) {
  using Model = CartpoleContinuousModel;
  absl::StatusOr<std::shared_ptr<const GraphProgram>> program =
      CompileOnnxGraph(testing::ReadGraphFile("cartpole_ode_graph.onnx"), {});
  ASSERT_TRUE(program.ok()) << program.status();
  absl::StatusOr<std::unique_ptr<CpuBackend>> backend = CpuBackend::Create({.threads = 2});
  ASSERT_TRUE(backend.ok());
  testing::Rng rng(9);
  int seed = 0;
  for (Integrator integrator : {Integrator::kEuler, Integrator::kMidpoint, Integrator::kRk4}) {
    SCOPED_TRACE(IntegratorName(integrator));
    Problem builtin;
    builtin.shape = {ModelId<Model>(), 4, 1, 15};
    builtin.x_init = {rng.Uniform(-0.5, 0.5), rng.Uniform(-0.2, 0.2), rng.Uniform(-0.3, 0.3),
                      rng.Uniform(-0.2, 0.2)};
    builtin.cost_quadratic.assign(25, 0.0);
    for (int i = 0; i < 5; ++i) builtin.cost_quadratic[i * 5 + i] = i < 4 ? 1.0 : 0.01;
    builtin.cost_linear.assign(5, 0.0);
    builtin.params = {9.81, 1.2, 0.15, 0.45};
    builtin.dt = 0.04;
    builtin.integrator = integrator;
    Problem graph = builtin;
    graph.shape.dynamics = DynamicsId::Graph((*program)->fingerprint.data());
    graph.params = GraphTheta(**program, builtin.params.data());
    graph.graph = *program;
    ASSERT_TRUE(ValidateProblem(builtin, {}).ok()) << ValidateProblem(builtin, {});
    ASSERT_TRUE(ValidateProblem(graph, {}).ok()) << ValidateProblem(graph, {});
    const Solution expected = ExpectSameSolve(**backend, builtin, graph);
    for (GradientMode mode :
         {GradientMode::kDefault, GradientMode::kFullChain, GradientMode::kExact}) {
      BackwardProblem a{&builtin, expected.x, expected.u, {}, {}, mode};
      testing::Rng cotangent(seed++);
      for (std::size_t i = 0; i < expected.x.size(); ++i)
        a.dl_dx.push_back(cotangent.Uniform(-1, 1));
      for (std::size_t i = 0; i < expected.u.size(); ++i)
        a.dl_du.push_back(cotangent.Uniform(-1, 1));
      BackwardProblem b = a;
      b.problem = &graph;
      ProblemGradient want, got;
      const BackwardProblem* backward[] = {&a, &b};
      ProblemGradient* gradients[] = {&want, &got};
      ASSERT_TRUE((*backend)->BackwardBatch(backward, gradients).ok());
      EXPECT_EQ(got.status, want.status);
      EXPECT_LT(MaxDifference(got.x_init, want.x_init), 1e-9);
      EXPECT_LT(MaxDifference(got.cost_linear, want.cost_linear), 1e-9);
      EXPECT_LT(MaxDifference(got.params, GraphTheta(**program, want.params.data())), 1e-9)
          << GradientModeName(mode);
    }
  }
}

// The GPU runs no graph: the CUDA backend solves graph problems on its CPU threads.
TEST_F(GraphDynamicsTest, GraphsRunOnTheCpuOnly) {
  const Problem graph = AsGraphProblem(Problems(1)[0], graph_);
  EXPECT_FALSE(core::RunsOnDevice(graph.shape));
}

TEST_F(GraphDynamicsTest, ValidationNamesTheGraphFields) {
  Problem graph = AsGraphProblem(Problems(1)[0], graph_);
  graph.params.push_back(1.0);
  EXPECT_EQ(std::string(ValidateProblem(graph, {}, "problems[0].").message()),
            "problems[0].dynamics.graph.parameters: expected shape (4) or none, got 5 values");
  graph.params.pop_back();
  graph.options.compute_x_init_jacobian = true;
  EXPECT_THAT(std::string(ValidateProblem(graph, {}, "problems[0].").message()),
              ::testing::HasSubstr("options.compute_x_init_jacobian: not supported with graph"));
  graph.options.compute_x_init_jacobian = false;
  const Problem no_graph = [&] {
    Problem p = graph;
    p.graph = nullptr;
    return p;
  }();
  EXPECT_EQ(std::string(ValidateProblem(no_graph, {}, "problems[0].").message()),
            "problems[0].dynamics.graph: required");
}

// A graph whose evaluation produces NaN: the problem's status, not an error.
TEST_F(GraphDynamicsTest, NanDuringEvaluationIsTheProblemsStatus) {
  absl::StatusOr<std::shared_ptr<const GraphProgram>> program =
      CompileOnnxGraph(testing::ReadGraphFile("nan_at_run_time.onnx"), {});
  ASSERT_TRUE(program.ok());
  Problem p;
  p.shape = {DynamicsId::Graph((*program)->fingerprint.data()), 4, 2, 5};
  p.graph = *program;
  p.x_init = {-1.0, 1.0, 1.0, 1.0};  // log(-1)
  p.cost_quadratic.assign(36, 0.0);
  for (int i = 0; i < 6; ++i) p.cost_quadratic[i * 6 + i] = 1.0;
  p.cost_linear.assign(6, 0.0);
  ASSERT_TRUE(ValidateProblem(p, {}).ok()) << ValidateProblem(p, {});
  Solution solution;
  const Problem* problems[] = {&p};
  Solution* solutions[] = {&solution};
  ASSERT_TRUE(backend_->SolveBatch(problems, solutions).ok());
  EXPECT_EQ(solution.status, SolveStatus::kNotFinite);
}

}  // namespace
}  // namespace mpc
