#include "server/solve_job.h"

#include <algorithm>

#include "server/admission.h"

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

absl::Time SolveDeadline(absl::Time call_deadline, absl::Time now) {
  if (call_deadline == absl::InfiniteFuture()) return call_deadline;
  const absl::Duration reserve = std::min(absl::Milliseconds(100), (call_deadline - now) / 10);
  return call_deadline - std::max(reserve, absl::ZeroDuration());
}

std::size_t InputBytes(const Problem& problem) {
  const std::size_t inputs =
      problem.x_init.size() + problem.cost_quadratic.size() + problem.cost_linear.size() +
      problem.transition.size() + problem.offset.size() + problem.params.size() +
      problem.u_lower.size() + problem.u_upper.size() + problem.u_init.size();
  return sizeof(Problem) + sizeof(double) * inputs;
}

std::size_t ApproximateBytes(const Problem& problem) {
  // The answer twice: in the Solution the backend writes and in the serialised response.
  const std::size_t answer = 2 * static_cast<std::size_t>(SolveAnswerDoubles(problem));
  return InputBytes(problem) + sizeof(double) * answer;
}

}  // namespace mpc
