#include "solver/graph/graph_program.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "solver/graph/onnx_import.h"
#include "tests/solver/graph/graph_cases.h"

namespace mpc {
namespace {

// Central differences: error O(h^2) + O(eps/h); h = eps^(1/3) balances them.
constexpr double kStep = 6e-6;
constexpr double kTolerance = 2e-7;

struct Point {
  std::vector<double> x, u, theta, lambda, dx, du;
};

class GraphDerivativesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const testing::GraphCase& c : testing::LoadGraphCases()) {
      // Rounding to float32 (Cast to float, float32 graphs) is a staircase of 1e-8 steps that
      // central differences cannot see through; its derivative is 1 by definition.
      if (c.name == "cast" || c.name.find("float32") != std::string::npos) continue;
      absl::StatusOr<std::shared_ptr<const GraphProgram>> program = CompileOnnxGraph(c.bytes, {});
      ASSERT_TRUE(program.ok()) << c.name << ": " << program.status();
      programs_.emplace_back(c.name, *program);
    }
    ASSERT_GE(programs_.size(), 35u) << "no graphs in " << testing::GraphsDir();
  }

  // A random point near the case's parameters (kinks of Relu, Abs, Clip, Min, Max are hit with
  // probability zero).
  static Point RandomPoint(const GraphProgram& p, std::mt19937_64& rng) {
    std::normal_distribution<double> normal(0.0, 0.5);
    Point point;
    for (int i = 0; i < p.state_dim; ++i) point.x.push_back(normal(rng));
    for (int j = 0; j < p.control_dim; ++j) point.u.push_back(normal(rng));
    for (int k = 0; k < p.param_dim; ++k) {
      point.theta.push_back(p.default_params[k] + 0.1 * normal(rng));
    }
    for (int i = 0; i < p.state_dim; ++i) point.lambda.push_back(normal(rng));
    for (int i = 0; i < p.state_dim; ++i) point.dx.push_back(normal(rng));
    for (int j = 0; j < p.control_dim; ++j) point.du.push_back(normal(rng));
    return point;
  }

  // lambda' f at the point, with tau[j] (j < n + m) or theta[j - n - m] moved by `by`.
  static double LambdaF(GraphEvaluator& e, Point point, int j, double by) {
    const GraphProgram& p = e.program();
    const int n = p.state_dim, m = p.control_dim;
    if (j < n) {
      point.x[j] += by;
    } else if (j < n + m) {
      point.u[j - n] += by;
    } else {
      point.theta[j - n - m] += by;
    }
    std::vector<double> next(n);
    e.Step(point.x.data(), point.u.data(), point.theta.data(), next.data());
    double s = 0;
    for (int i = 0; i < n; ++i) s += point.lambda[i] * next[i];
    return s;
  }

  static double CentralDifference(GraphEvaluator& e, const Point& point, int j) {
    return (LambdaF(e, point, j, kStep) - LambdaF(e, point, j, -kStep)) / (2 * kStep);
  }

  std::vector<std::pair<std::string, std::shared_ptr<const GraphProgram>>> programs_;
};

// Rows of A and B are reverse sweeps; lambda' [A B] against central differences of lambda' f.
TEST_F(GraphDerivativesTest, JacobiansMatchCentralDifferences) {
  std::mt19937_64 rng(11);
  for (const auto& [name, program] : programs_) {
    SCOPED_TRACE(name);
    GraphEvaluator e(program);
    const int n = program->state_dim, m = program->control_dim;
    const Point point = RandomPoint(*program, rng);
    std::vector<double> next(n), A(n * n), B(n * m), plain(n);
    e.StepWithJacobians(point.x.data(), point.u.data(), point.theta.data(), next.data(), A.data(),
                        B.data());
    e.Step(point.x.data(), point.u.data(), point.theta.data(), plain.data());
    EXPECT_EQ(next, plain);
    for (int j = 0; j < n + m; ++j) {
      double ad = 0;
      for (int i = 0; i < n; ++i) {
        ad += point.lambda[i] * (j < n ? A[i * n + j] : B[i * m + j - n]);
      }
      const double fd = CentralDifference(e, point, j);
      EXPECT_NEAR(ad, fd, kTolerance * (1 + std::abs(fd))) << "tau[" << j << "]";
    }
  }
}

TEST_F(GraphDerivativesTest, ParamVjpMatchesCentralDifferences) {
  std::mt19937_64 rng(12);
  for (const auto& [name, program] : programs_) {
    SCOPED_TRACE(name);
    GraphEvaluator e(program);
    const int n = program->state_dim, m = program->control_dim, p = program->param_dim;
    const Point point = RandomPoint(*program, rng);
    std::vector<double> g(p);
    e.ParamVjp(point.x.data(), point.u.data(), point.theta.data(), point.lambda.data(), g.data());
    for (int k = 0; k < p; ++k) {
      const double fd = CentralDifference(e, point, n + m + k);
      EXPECT_NEAR(g[k], fd, kTolerance * (1 + std::abs(fd))) << "theta[" << k << "]";
    }
  }
}

// d/de of the parameter VJP along (dx, du), against central differences of ParamVjp itself.
TEST_F(GraphDerivativesTest, MixedDirectionalMatchesCentralDifferences) {
  std::mt19937_64 rng(13);
  for (const auto& [name, program] : programs_) {
    SCOPED_TRACE(name);
    GraphEvaluator e(program);
    const int n = program->state_dim, m = program->control_dim, p = program->param_dim;
    const Point point = RandomPoint(*program, rng);
    std::vector<double> g(p), plus(p), minus(p);
    e.MixedDirectional(point.x.data(), point.u.data(), point.theta.data(), point.lambda.data(),
                       point.dx.data(), point.du.data(), g.data());
    for (int sign : {1, -1}) {
      Point moved = point;
      for (int i = 0; i < n; ++i) moved.x[i] += sign * kStep * point.dx[i];
      for (int j = 0; j < m; ++j) moved.u[j] += sign * kStep * point.du[j];
      e.ParamVjp(moved.x.data(), moved.u.data(), moved.theta.data(), moved.lambda.data(),
                 (sign > 0 ? plus : minus).data());
    }
    for (int k = 0; k < p; ++k) {
      const double fd = (plus[k] - minus[k]) / (2 * kStep);
      EXPECT_NEAR(g[k], fd, kTolerance * (1 + std::abs(fd))) << "theta[" << k << "]";
    }
  }
}

// Columns of d2(lambda' f)/d tau2 against central differences of the gradient lambda' [A B].
TEST_F(GraphDerivativesTest, LambdaHessianMatchesCentralDifferences) {
  std::mt19937_64 rng(14);
  for (const auto& [name, program] : programs_) {
    SCOPED_TRACE(name);
    GraphEvaluator e(program);
    const int n = program->state_dim, m = program->control_dim, nt = n + m;
    const Point point = RandomPoint(*program, rng);
    std::vector<double> H(nt * nt);
    e.LambdaHessian(point.x.data(), point.u.data(), point.theta.data(), point.lambda.data(),
                    H.data());
    auto gradient = [&](const Point& at) {
      std::vector<double> next(n), A(n * n), B(n * m), g(nt, 0.0);
      e.StepWithJacobians(at.x.data(), at.u.data(), at.theta.data(), next.data(), A.data(),
                          B.data());
      for (int j = 0; j < nt; ++j) {
        for (int i = 0; i < n; ++i) {
          g[j] += at.lambda[i] * (j < n ? A[i * n + j] : B[i * m + j - n]);
        }
      }
      return g;
    };
    for (int column = 0; column < nt; ++column) {
      Point up = point, down = point;
      (column < n ? up.x[column] : up.u[column - n]) += kStep;
      (column < n ? down.x[column] : down.u[column - n]) -= kStep;
      const std::vector<double> g_up = gradient(up), g_down = gradient(down);
      for (int row = 0; row < nt; ++row) {
        const double fd = (g_up[row] - g_down[row]) / (2 * kStep);
        EXPECT_NEAR(H[row * nt + column], fd, kTolerance * (1 + std::abs(fd)))
            << "H[" << row << "][" << column << "]";
      }
    }
  }
}

// Activity analysis (MarkActivity): derivatives in x and u skip what depends on theta alone, and
// must be bit for bit those of the whole sweep (a program with every flag true); the parameter
// products after such a sweep must be those of a fresh evaluator (the skipped parameters'
// adjoints left behind are not read).
TEST_F(GraphDerivativesTest, SkippingTheInactivePartsChangesNoDerivative) {
  std::mt19937_64 rng(15);
  for (const auto& [name, program] : programs_) {
    SCOPED_TRACE(name);
    auto whole = std::make_shared<GraphProgram>(*program);
    for (GraphInstruction& in : whole->tape) in.active = in.a_active = in.b_active = true;
    FlattenToElements(whole.get());
    GraphEvaluator marked(program), unmarked(whole), fresh(program);
    const int n = program->state_dim, m = program->control_dim, nt = n + m;
    const Point point = RandomPoint(*program, rng);
    std::vector<double> next(n), A(n * n), B(n * m), H(nt * nt), g(program->param_dim);
    std::vector<double> want_A(n * n), want_B(n * m), want_H(nt * nt), want_g(program->param_dim);
    marked.StepWithJacobians(point.x.data(), point.u.data(), point.theta.data(), next.data(),
                             A.data(), B.data());
    unmarked.StepWithJacobians(point.x.data(), point.u.data(), point.theta.data(), next.data(),
                               want_A.data(), want_B.data());
    EXPECT_EQ(A, want_A);
    EXPECT_EQ(B, want_B);
    marked.LambdaHessian(point.x.data(), point.u.data(), point.theta.data(), point.lambda.data(),
                         H.data());
    unmarked.LambdaHessian(point.x.data(), point.u.data(), point.theta.data(), point.lambda.data(),
                           want_H.data());
    EXPECT_EQ(H, want_H);
    marked.ParamVjp(point.x.data(), point.u.data(), point.theta.data(), point.lambda.data(),
                    g.data());
    fresh.ParamVjp(point.x.data(), point.u.data(), point.theta.data(), point.lambda.data(),
                   want_g.data());
    EXPECT_EQ(g, want_g);
  }
}

// The element records (FlattenToElements) do each instruction's operations on its elements in
// the same order: every sweep gives the tape's bits.
// Whether the tape evaluates some op four elements at a time in glibc's vector functions (tanh,
// the sigmoid, exp: graph_program.cc's VectorUnary, within 4 ulp of the scalar libm) where the
// element records call the scalar functions.
bool TapeUsesVectorFunctions(const GraphProgram& program) {
  return std::any_of(program.tape.begin(), program.tape.end(), [](const GraphInstruction& in) {
    return in.op == GraphOp::kTanh || in.op == GraphOp::kSigmoid || in.op == GraphOp::kExp;
  });
}

// The element records give the tape's bits, or (where the tape uses the vector functions) the
// tape's numbers to rounding.
void ExpectTapeNumbers(bool vector_functions, const std::vector<double>& got,
                       const std::vector<double>& want) {
  if (!vector_functions) {
    EXPECT_EQ(got, want);
    return;
  }
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], 1e-13 * (1.0 + std::abs(want[i]))) << "element " << i;
  }
}

TEST_F(GraphDerivativesTest, TheElementRecordsGiveTheTapesBits) {
  std::mt19937_64 rng(16);
  int flattened = 0, bitwise = 0;
  for (const auto& [name, program] : programs_) {
    SCOPED_TRACE(name);
    if (program->elements.empty()) continue;
    ++flattened;
    const bool vector_functions = TapeUsesVectorFunctions(*program);
    if (!vector_functions) ++bitwise;
    auto tape_only = std::make_shared<GraphProgram>(*program);
    tape_only->elements.clear();
    GraphEvaluator elements(program), tape(tape_only);
    const int n = program->state_dim, m = program->control_dim, nt = n + m;
    const Point point = RandomPoint(*program, rng);
    std::vector<double> next(n), A(n * n), B(n * m), H(nt * nt), g(program->param_dim);
    std::vector<double> want_next(n), want_A(n * n), want_B(n * m), want_H(nt * nt),
        want_g(program->param_dim);
    elements.Step(point.x.data(), point.u.data(), point.theta.data(), next.data());
    tape.Step(point.x.data(), point.u.data(), point.theta.data(), want_next.data());
    ExpectTapeNumbers(vector_functions, next, want_next);
    elements.StepWithJacobians(point.x.data(), point.u.data(), point.theta.data(), next.data(),
                               A.data(), B.data());
    tape.StepWithJacobians(point.x.data(), point.u.data(), point.theta.data(), want_next.data(),
                           want_A.data(), want_B.data());
    ExpectTapeNumbers(vector_functions, next, want_next);
    ExpectTapeNumbers(vector_functions, A, want_A);
    ExpectTapeNumbers(vector_functions, B, want_B);
    elements.LambdaHessian(point.x.data(), point.u.data(), point.theta.data(), point.lambda.data(),
                           H.data());
    tape.LambdaHessian(point.x.data(), point.u.data(), point.theta.data(), point.lambda.data(),
                       want_H.data());
    ExpectTapeNumbers(vector_functions, H, want_H);
    elements.ParamVjp(point.x.data(), point.u.data(), point.theta.data(), point.lambda.data(),
                      g.data());
    tape.ParamVjp(point.x.data(), point.u.data(), point.theta.data(), point.lambda.data(),
                  want_g.data());
    ExpectTapeNumbers(vector_functions, g, want_g);
  }
  EXPECT_GE(flattened, 30);  // every case without a matrix product
  EXPECT_GE(bitwise, 25);
}

// A tape with a matrix product keeps its instructions; the cartpole's (scalar ops and one
// gather of five sources) becomes one record per element.
TEST(GraphElementsTest, OnlyTapesWithoutProductsAreFlattened) {
  absl::StatusOr<std::shared_ptr<const GraphProgram>> mlp =
      CompileOnnxGraph(testing::ReadGraphFile("mlp_n4_m1_h64.onnx"), {});
  ASSERT_TRUE(mlp.ok()) << mlp.status();
  EXPECT_TRUE((*mlp)->elements.empty());
  absl::StatusOr<std::shared_ptr<const GraphProgram>> cartpole =
      CompileOnnxGraph(testing::ReadGraphFile("cartpole_graph.onnx"), {});
  ASSERT_TRUE(cartpole.ok()) << cartpole.status();
  std::size_t records = 0;
  for (const GraphInstruction& in : (*cartpole)->tape) {
    if (in.op != GraphOp::kGather) {
      records += static_cast<std::size_t>(in.size);
      continue;
    }
    for (int i = 0; i < in.size; ++i) {
      records += static_cast<std::size_t>(std::max(1, in.start[i + 1] - in.start[i]));
    }
  }
  EXPECT_EQ((*cartpole)->elements.size(), records);
}

// In a layer y = W h + b only h depends on x and u: the Jacobians' sweeps form no dL/dW.
TEST(GraphActivityTest, ALayersWeightsAreInactive) {
  absl::StatusOr<std::shared_ptr<const GraphProgram>> program =
      CompileOnnxGraph(testing::ReadGraphFile("mlp_n4_m1_h64.onnx"), {});
  ASSERT_TRUE(program.ok()) << program.status();
  int products = 0;
  for (const GraphInstruction& in : (*program)->tape) {
    EXPECT_TRUE(in.active);  // every instruction of an MLP is on the way from [x; u]
    if (in.op != GraphOp::kMatMul) continue;
    ++products;
    EXPECT_TRUE(in.a_active);
    EXPECT_FALSE(in.b_active);
  }
  EXPECT_EQ(products, 3);
}

// Everything an evaluation returns at theta: x_next, A, B (Jacobians), theta's VJP with lambda and
// the mixed directional derivative (the double and the dual buffers), and the RK4 step's x_next,
// Jacobians and parameter gradient (the stages' buffers, double and dual).
std::vector<double> Evaluations(GraphEvaluator& e, const std::vector<double>& theta) {
  const GraphProgram& p = e.program();
  const int n = p.state_dim, m = p.control_dim;
  std::vector<double> x(n), u(m), lambda(n), dx(n), du(m);
  for (int i = 0; i < n; ++i) {
    x[i] = 0.3 - 0.1 * i;
    lambda[i] = 1.0 + i;
    dx[i] = 0.2 * i - 0.5;
  }
  for (int j = 0; j < m; ++j) {
    u[j] = 0.2 + 0.1 * j;
    du[j] = 0.7;
  }
  std::vector<double> next(n), A(n * n), B(n * m), vjp(p.param_dim), mixed(p.param_dim);
  e.StepWithJacobians(x.data(), u.data(), theta.data(), next.data(), A.data(), B.data());
  e.ParamVjp(x.data(), u.data(), theta.data(), lambda.data(), vjp.data());
  e.MixedDirectional(x.data(), u.data(), theta.data(), lambda.data(), dx.data(), du.data(),
                     mixed.data());
  // The graph read as dx/dt and integrated (the stages' own buffers).
  TimeStep rk4;
  rk4.seconds = 0.05;
  rk4.integrator = Integrator::kRk4;
  std::vector<double> ode_next(n), ode_A(n * n), ode_B(n * m), ode_grad(p.param_dim, 0.0);
  e.StepWithJacobians(x.data(), u.data(), theta.data(), rk4, ode_next.data(), ode_A.data(),
                      ode_B.data());
  e.SubtractParamGradient(x.data(), u.data(), theta.data(), rk4, lambda.data(), lambda.data(),
                          dx.data(), du.data(), ode_grad.data());
  std::vector<double> all = next;
  for (const std::vector<double>* part :
       {&A, &B, &vjp, &mixed, &ode_next, &ode_A, &ode_B, &ode_grad}) {
    all.insert(all.end(), part->begin(), part->end());
  }
  return all;
}

// BindParameters lets an evaluator keep the bound parameters in its buffers between evaluations:
// at every theta, bound or not, it answers what an evaluator that never bound answers (another
// theta in between, then the bound one again; new contents at the same address once unbound and
// bound again), for a tape with matrix products and one run by its element records.
TEST(GraphParameterBindingTest, EveryEvaluationSeesItsOwnParameters) {
  for (const char* file : {"gemm_mlp.onnx", "tanh.onnx"}) {
    SCOPED_TRACE(file);
    absl::StatusOr<std::shared_ptr<const GraphProgram>> program =
        CompileOnnxGraph(testing::ReadGraphFile(file), {});
    ASSERT_TRUE(program.ok()) << program.status();
    GraphEvaluator bound(*program), reference(*program);
    std::vector<double> theta = (*program)->default_params, other = theta;
    for (double& v : other) v = 0.5 * v + 0.1;
    bound.BindParameters(theta.data());
    EXPECT_EQ(Evaluations(bound, theta), Evaluations(reference, theta));
    EXPECT_EQ(Evaluations(bound, other), Evaluations(reference, other));
    EXPECT_EQ(Evaluations(bound, theta), Evaluations(reference, theta));
    bound.UnbindParameters();
    for (double& v : theta) v += 0.25;  // the same address, other contents
    EXPECT_EQ(Evaluations(bound, theta), Evaluations(reference, theta));
    bound.BindParameters(theta.data());
    EXPECT_EQ(Evaluations(bound, theta), Evaluations(reference, theta));
    EXPECT_NE(Evaluations(bound, theta), Evaluations(reference, other));
  }
}

}  // namespace
}  // namespace mpc
