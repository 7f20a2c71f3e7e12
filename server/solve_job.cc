#include "server/solve_job.h"

#include "solver/models/model_registry.h"

namespace mpc {

const char* JobKindName(JobKind kind) {
  switch (kind) {
    case JobKind::kSolve:
      return "solve";
    case JobKind::kBackward:
      return "backward";
  }
  return "unknown";
}

std::size_t ApproximateBytes(const Problem& problem) {
  const std::size_t inputs =
      problem.x_init.size() + problem.cost_quadratic.size() + problem.cost_linear.size() +
      problem.transition.size() + problem.offset.size() + problem.params.size() +
      problem.u_lower.size() + problem.u_upper.size() + problem.u_init.size();
  // The answer: x (T, n) and u (T, m), and the gains (T, m, n) + (T, m) when asked for.
  const std::size_t T = problem.shape.horizon;
  const std::size_t n = problem.shape.state_dim;
  const std::size_t m = problem.shape.control_dim;
  std::size_t outputs = T * (n + m);
  if (problem.options.compute_gains) outputs += T * m * (n + 1);
  // The Jacobians the backend computes when asked: (T, n+m, n) and (T, n+m, p).
  if (problem.options.compute_x_init_jacobian) outputs += T * (n + m) * n;
  if (problem.options.compute_params_jacobian) {
    const ModelInfo* model = FindModel(problem.shape.dynamics);
    if (model != nullptr) outputs += T * (n + m) * model->param_names.size();
  }
  return sizeof(Problem) + sizeof(double) * (inputs + outputs);
}

}  // namespace mpc
