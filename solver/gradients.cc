#include "solver/gradients.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "solver/problem_fields.h"
#include "solver/stage_constraints.h"
#include "solver/status_macros.h"

namespace mpc {
namespace {

struct BackwardArray {
  ArrayField field;
  const std::vector<double>* values;
  const std::string* prefix;
};

// The four arrays of `problem` with the prefixes of their names.
std::array<BackwardArray, 4> BackwardArrays(const BackwardProblem& problem,
                                            const BackwardFieldNames& names) {
  return {{{ArrayField::kSolutionX, &problem.x, &names.solution},
           {ArrayField::kSolutionU, &problem.u, &names.solution},
           {ArrayField::kCotangentX, &problem.dl_dx, &names.cotangent},
           {ArrayField::kCotangentU, &problem.dl_du, &names.cotangent}}};
}

// Sizes against the accepted shapes (problem_fields.h), and with `scan` the values.
absl::Status CheckBackwardArrays(const BackwardProblem& problem, const BackwardFieldNames& names,
                                 bool scan) {
  for (const BackwardArray& array : BackwardArrays(problem, names)) {
    const ArraySpec spec = ArraySpecFor(array.field, problem.problem->shape);
    const FieldPath path(*array.prefix, spec.name);
    const SpecShape* shape = nullptr;
    MPC_RETURN_IF_ERROR(CheckArrayLength(spec, array.values->size(), spec.optional, path, &shape));
    if (scan) MPC_RETURN_IF_ERROR(CheckFinite(*array.values, shape, path));
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
    case GradientStatus::kNotSolution:
      return "NOT_SOLUTION";
    case GradientStatus::kStopped:
      return "STOPPED";
  }
  return "UNKNOWN";
}

bool StopRequestedBefore(const BackwardProblem& problem) {
  if (problem.problem->interrupt == nullptr) return false;
  return InterruptWatch(problem.problem->interrupt).StopRequested();
}

namespace {

double MaxAbs(absl::Span<const double> values) {
  double largest = 0.0;
  for (double v : values) largest = std::max(largest, std::abs(v));
  return largest;
}

}  // namespace

void MarkUnlessSolution(const Problem& problem, absl::Span<const double> x,
                        absl::Span<const double> u, ProblemGradient* gradient) {
  if (gradient->status != GradientStatus::kOk) return;
  const double point = std::max(MaxAbs(x), MaxAbs(u));
  const double scale = 1.0 + MaxAbs(problem.cost_linear) + MaxAbs(problem.cost_quadratic) * point;
  const double tolerance = kSolutionResidualTolerance * scale;
  if (gradient->stationarity_residual > tolerance ||
      gradient->dynamics_residual > kSolutionResidualTolerance * (1.0 + point)) {
    gradient->status = GradientStatus::kNotSolution;
  }
}

BackwardFieldNames BackwardRequestFieldNames(int index) {
  return {absl::StrCat("solutions[", index, "]."), absl::StrCat("cotangents[", index, "].")};
}

absl::Status ValidateBackwardProblem(const BackwardProblem& problem,
                                     const BackwardFieldNames& names) {
  if (problem.problem == nullptr) {
    return absl::InvalidArgumentError("problem: required");
  }
  if (!(problem.constraint_smoothing >= 0.0) || std::isinf(problem.constraint_smoothing)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "constraint_smoothing: must be finite and >= 0, got ", problem.constraint_smoothing));
  }
  return CheckBackwardArrays(problem, names, /*scan=*/true);
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
    if (problems[i]->problem == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("BackwardBatch: problems[", i, "]: problem: required"));
    }
    absl::Status status = CheckBackwardArrays(*problems[i], {}, /*scan=*/false);
    if (!status.ok()) {
      return absl::Status(status.code(),
                          absl::StrCat("BackwardBatch: problems[", i, "]: ", status.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace mpc
