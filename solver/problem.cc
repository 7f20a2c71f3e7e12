#include "solver/problem.h"

namespace mpc {

const char* SolveStatusName(SolveStatus status) {
  switch (status) {
    case SolveStatus::kConverged:
      return "CONVERGED";
    case SolveStatus::kMaxIterations:
      return "MAX_ITERATIONS";
    case SolveStatus::kLinesearchFailed:
      return "LINESEARCH_FAILED";
    case SolveStatus::kNotFinite:
      return "NOT_FINITE";
    case SolveStatus::kDeadline:
      return "DEADLINE";
    case SolveStatus::kInfeasible:
      return "INFEASIBLE";
  }
  return "UNKNOWN";
}

const char* SolverMethodName(SolverMethod method) {
  switch (method) {
    case SolverMethod::kIlqr:
      return "ILQR";
    case SolverMethod::kCem:
      return "CEM";
    case SolverMethod::kMppi:
      return "MPPI";
    case SolverMethod::kCemThenIlqr:
      return "CEM_THEN_ILQR";
    case SolverMethod::kMppiThenIlqr:
      return "MPPI_THEN_ILQR";
  }
  return "UNKNOWN";
}

void Solution::Resize(const ProblemShape& shape, bool with_gains) {
  const int n = shape.state_dim;
  const int m = shape.control_dim;
  const int T = shape.horizon;
  x.resize(static_cast<size_t>(T) * n);
  u.resize(static_cast<size_t>(T) * m);
  feedback.resize(with_gains ? static_cast<size_t>(T) * m * n : 0);
  feedforward.resize(with_gains ? static_cast<size_t>(T) * m : 0);
}

}  // namespace mpc
