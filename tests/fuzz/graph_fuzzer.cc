// libFuzzer target over the graph bytes a request may carry (GraphDynamics.onnx, docs/graphs.md):
// bytes -> CompileOnnxGraph (Debian's ONNX parser, the checks, constant folding, lowering) and,
// for a graph that compiles, every evaluation the solver runs on it at one point, by what the
// graph is (CheckDynamicsGraph, as the conversion decides): a dynamics graph's step and its
// Jacobians, the parameter products and the curvature, as a discrete-time graph and as a
// continuous-time one under RK4; a cost graph's cost and derivatives; a stage constraint graph's
// rows and linearisation. A crash, a sanitizer report or a hang fails it; a refused graph
// or a NaN result is an answer, not a failure.
//
// Limits are small (1000 nodes, 2^14 parameters, 2^16 buffer elements, n and m <= 16) so one
// input runs in microseconds; the code paths are the same at any size.
//
//   build-asan/bin/graph_fuzzer -max_total_time=60 build-asan/corpus/graph_fuzzer
//   tests/fuzz/corpus/graph_fuzzer

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "solver/graph/graph_program.h"
#include "solver/graph/onnx_import.h"
#include "solver/models/integrators.h"

namespace {

constexpr int kMaxDim = 16;

mpc::GraphLimits Limits() {
  mpc::GraphLimits limits;
  limits.max_bytes = 1 << 20;
  limits.max_nodes = 1000;
  limits.max_parameters = 1 << 14;
  limits.max_elements = 1 << 16;
  return limits;
}

// Every evaluation the core makes, at x = 0.1 (1, 2, ...), u = -0.2 (1, 2, ...), the costate and
// direction 0.3.
void EvaluateEverything(mpc::GraphEvaluator& evaluator, mpc::TimeStep dt) {
  const mpc::GraphProgram& program = evaluator.program();
  const int n = program.state_dim, m = program.control_dim, nt = n + m;
  std::vector<double> x(n), u(m), lambda(n, 0.3), dx(n, 0.3), du(m, 0.3);
  for (int i = 0; i < n; ++i) x[i] = 0.1 * (i + 1);
  for (int j = 0; j < m; ++j) u[j] = -0.2 * (j + 1);
  std::vector<double> next(n), A(n * n), B(n * m), H(nt * nt), grad(program.param_dim, 0.0);
  const double* theta = program.default_params.data();
  evaluator.StepWithJacobians(x.data(), u.data(), theta, dt, next.data(), A.data(), B.data());
  evaluator.SubtractParamGradient(x.data(), u.data(), theta, dt, lambda.data(), lambda.data(),
                                  dx.data(), du.data(), grad.data());
  evaluator.LambdaHessian(x.data(), u.data(), theta, dt, lambda.data(), H.data());
}

// A cost graph's evaluations at tau = 0.1 (1, 2, ...): the cost, its gradient and Hessian.
void EvaluateCost(mpc::GraphEvaluator& evaluator) {
  const mpc::GraphProgram& program = evaluator.program();
  const int nt = program.state_dim;
  std::vector<double> tau(nt), g(nt), H(nt * nt);
  for (int i = 0; i < nt; ++i) tau[i] = 0.1 * (i + 1);
  const double* theta = program.default_params.data();
  evaluator.Cost(tau.data(), nullptr, nt, theta);
  evaluator.CostDerivatives(tau.data(), nullptr, nt, theta, g.data(), H.data());
}

// A stage constraint graph's evaluations at the point of EvaluateEverything: its rows and their
// linearisation.
void EvaluateConstraint(mpc::GraphEvaluator& evaluator) {
  const mpc::GraphProgram& program = evaluator.program();
  const int n = program.state_dim, m = program.control_dim, k = program.output_dim;
  std::vector<double> x(n), u(m), G(k * (n + m)), h(k);
  for (int i = 0; i < n; ++i) x[i] = 0.1 * (i + 1);
  for (int j = 0; j < m; ++j) u[j] = -0.2 * (j + 1);
  const double* theta = program.default_params.data();
  for (int r = 0; r < k; ++r) evaluator.ConstraintRow(x.data(), u.data(), theta, r);
  evaluator.LinearizeConstraints(x.data(), u.data(), theta, n + m, G.data(), h.data());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<std::shared_ptr<const mpc::GraphProgram>> program =
      mpc::CompileOnnxGraph(bytes, Limits());
  if (!program.ok()) return 0;
  if ((*program)->state_dim > kMaxDim || (*program)->control_dim > kMaxDim) return 0;
  mpc::GraphEvaluator evaluator(*program);
  if ((*program)->is_cost) {
    EvaluateCost(evaluator);
  } else if (mpc::CheckDynamicsGraph(**program).ok()) {
    EvaluateEverything(evaluator, mpc::TimeStep(0.05));
    EvaluateEverything(evaluator, mpc::TimeStep(0.05, mpc::Integrator::kRk4));
  } else {
    // Outputs other than n (or no u): only a stage constraint's, as the conversion decides.
    EvaluateConstraint(evaluator);
  }
  return 0;
}
