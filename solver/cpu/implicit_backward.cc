#include "solver/cpu/implicit_backward.h"

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "solver/cpu/core_executor.h"

namespace mpc {
namespace {

absl::Status CheckPoint(const Problem& problem, absl::Span<const double> values, int cols,
                        const char* name) {
  const std::size_t expected = static_cast<std::size_t>(problem.shape.horizon) * cols;
  if (values.size() != expected) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": expected ", expected, " values (",
                                                   problem.shape.horizon, "x", cols, "), got ",
                                                   values.size()));
  }
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": not finite at ", i));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::unique_ptr<ShapeBackward> MakeShapeBackward(const ProblemShape& shape) {
  return MakeCoreShapeBackward(shape, CoreSizes::kSpecialised);
}

std::unique_ptr<ShapeBackward> MakeDynamicSizeShapeBackward(const ProblemShape& shape) {
  return MakeCoreShapeBackward(shape, CoreSizes::kRunTime);
}

ProblemGradient ComputeGradient(const BackwardProblem& problem) {
  ProblemGradient gradient;
  MakeShapeBackward(problem.problem->shape)->Backward(problem, &gradient);
  return gradient;
}

absl::Status ComputeSolutionJacobians(const Problem& problem, absl::Span<const double> x,
                                      absl::Span<const double> u, const JacobianRequest& request,
                                      SolutionJacobians* jacobians) {
  if (request.params && problem.shape.dynamics.is_linear()) {
    return absl::InvalidArgumentError(
        "params Jacobian: linear dynamics have no parameters (use a model)");
  }
  if (absl::Status s = CheckPoint(problem, x, problem.shape.state_dim, "x"); !s.ok()) return s;
  if (absl::Status s = CheckPoint(problem, u, problem.shape.control_dim, "u"); !s.ok()) return s;
  MakeShapeBackward(problem.shape)->Jacobians(problem, x, u, request, jacobians);
  return absl::OkStatus();
}

}  // namespace mpc
