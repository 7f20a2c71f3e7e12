#include "solver/gradients.h"

#include <cmath>
#include <cstddef>

#include "absl/strings/str_cat.h"

namespace mpc {
namespace {

// `values` must hold `rows` x `cols` finite numbers, or be empty when `may_be_empty`.
absl::Status CheckArray(const std::vector<double>& values, int rows, int cols, bool may_be_empty,
                        const std::string& field) {
  if (values.empty() && may_be_empty) return absl::OkStatus();
  const std::size_t expected = static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols);
  if (values.size() != expected) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": expected shape (", rows, ",", cols,
                                                   ") = ", expected, " values, got ",
                                                   values.size()));
  }
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": not finite at [", i / cols, ",", i % cols, "] (", values[i], ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

const char* GradientModeName(GradientMode mode) {
  switch (mode) {
    case GradientMode::kDefault:
      return "DEFAULT";
    case GradientMode::kFullChain:
      return "FULL_CHAIN";
    case GradientMode::kExact:
      return "EXACT";
  }
  return "UNKNOWN";
}

const char* GradientStatusName(GradientStatus status) {
  switch (status) {
    case GradientStatus::kOk:
      return "OK";
    case GradientStatus::kIllConditioned:
      return "ILL_CONDITIONED";
    case GradientStatus::kRegularized:
      return "REGULARIZED";
    case GradientStatus::kNotFinite:
      return "NOT_FINITE";
  }
  return "UNKNOWN";
}

absl::Status ValidateBackwardProblem(const BackwardProblem& problem,
                                     const std::string& field_prefix) {
  if (problem.problem == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(field_prefix, "problem: required"));
  }
  const ProblemShape& shape = problem.problem->shape;
  const int T = shape.horizon;
  const int n = shape.state_dim;
  const int m = shape.control_dim;
  if (absl::Status s = CheckArray(problem.x, T, n, false, field_prefix + "x"); !s.ok()) return s;
  if (absl::Status s = CheckArray(problem.u, T, m, false, field_prefix + "u"); !s.ok()) return s;
  if (absl::Status s = CheckArray(problem.dl_dx, T, n, true, field_prefix + "dl_dx"); !s.ok()) {
    return s;
  }
  return CheckArray(problem.dl_du, T, m, true, field_prefix + "dl_du");
}

absl::Status ValidateBackwardBatch(absl::Span<const BackwardProblem* const> problems,
                                   std::size_t gradients) {
  if (problems.size() != gradients) {
    return absl::InvalidArgumentError(absl::StrCat("BackwardBatch: ", problems.size(),
                                                   " problems but ", gradients, " gradients"));
  }
  for (std::size_t i = 0; i < problems.size(); ++i) {
    if (problems[i] == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("BackwardBatch: problem ", i, " is missing"));
    }
    absl::Status status =
        ValidateBackwardProblem(*problems[i], absl::StrCat("BackwardBatch: problems[", i, "]."));
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

}  // namespace mpc
