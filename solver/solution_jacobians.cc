#include "solver/solution_jacobians.h"

#include <cstddef>
#include <utility>
#include <vector>

#include "solver/cpu/implicit_backward.h"
#include "solver/gradients.h"
#include "solver/models/model_registry.h"

namespace mpc {
namespace {

JacobianDiagnostics ToJacobianDiagnostics(const ProblemGradient& gradient) {
  JacobianDiagnostics out;
  out.status = gradient.status;
  out.regularization = gradient.regularization;
  out.condition_estimate = gradient.condition_estimate;
  out.stationarity_residual = gradient.stationarity_residual;
  out.dynamics_residual = gradient.dynamics_residual;
  out.active_controls = gradient.active_controls;
  out.active_constraints = gradient.active_constraints;
  out.weakly_active_constraints = gradient.weakly_active_constraints;
  return out;
}

}  // namespace

void ComputeRequestedJacobians(const Problem& problem, Solution* solution) {
  const SolverOptions& options = problem.options;
  JacobianRequest request;
  request.x_init = options.compute_x_init_jacobian;
  request.params = options.compute_params_jacobian && !problem.shape.dynamics.is_linear();
  request.mode = options.jacobian_mode;
  solution->jacobian_diagnostics = JacobianDiagnostics();
  if (!request.x_init && !request.params) {
    solution->x_init_jacobian.clear();
    solution->params_jacobian.clear();
    return;
  }
  SolutionJacobians jacobians;
  // ComputeSolutionJacobians refuses a point that is not finite (InvalidArgument). A solve its
  // caller stopped is not worth differentiating: nobody waits for it.
  if (solution->status != SolveStatus::kDeadline &&
      ComputeSolutionJacobians(problem, solution->x, solution->u, request, &jacobians).ok()) {
    MarkUnlessSolution(problem, solution->x, solution->u, &jacobians.diagnostics);
    solution->x_init_jacobian = std::move(jacobians.x_init);
    solution->params_jacobian = std::move(jacobians.params);
    solution->jacobian_diagnostics = ToJacobianDiagnostics(jacobians.diagnostics);
    return;
  }
  // A solve that ended in NaN has no point to differentiate at.
  const std::size_t T = static_cast<std::size_t>(problem.shape.horizon);
  const std::size_t nt = static_cast<std::size_t>(problem.shape.tau_dim());
  const std::size_t n = static_cast<std::size_t>(problem.shape.state_dim);
  const ModelInfo* model = FindModel(problem.shape.dynamics);
  const std::size_t p = model == nullptr ? 0 : model->param_names.size();
  solution->x_init_jacobian.assign(request.x_init ? T * nt * n : 0, 0.0);
  solution->params_jacobian.assign(request.params ? T * nt * p : 0, 0.0);
  solution->jacobian_diagnostics.status = solution->status == SolveStatus::kDeadline
                                              ? GradientStatus::kNotSolution
                                              : GradientStatus::kNotFinite;
}

}  // namespace mpc
