#include "server/retained_solves.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "proto/proto_conversion.h"
#include "server/solve_job.h"

namespace mpc {

mpcd::v1::BackwardRequest RetainedSolves::BackwardPart(const mpcd::v1::SolveRequest& request,
                                                       const mpcd::v1::SolveResponse& response) {
  mpcd::v1::BackwardRequest part;
  part.set_horizon(request.horizon());
  *part.mutable_problems() = request.problems();
  if (request.has_problem_template()) *part.mutable_problem_template() = request.problem_template();
  if (request.has_batched()) *part.mutable_batched() = request.batched();
  if (response.has_stacked()) {
    mpcd::v1::StackedSolutions* stacked = part.mutable_stacked_solutions();
    *stacked->mutable_x() = response.stacked().x();
    *stacked->mutable_u() = response.stacked().u();
    stacked->set_method(response.stacked().method());
  } else {
    for (const mpcd::v1::Solution& answered : response.solutions()) {
      mpcd::v1::Solution* solution = part.add_solutions();
      *solution->mutable_x() = answered.x();
      *solution->mutable_u() = answered.u();
      solution->set_method(answered.method());
    }
  }
  return part;
}

std::int64_t RetainedSolves::BytesOf(const RetainedSolve& retained) {
  auto bytes = static_cast<std::int64_t>(retained.part.SpaceUsedLong());
  for (const Problem& problem : retained.problems) {
    bytes += static_cast<std::int64_t>(InputBytes(problem));
  }
  return bytes;
}

std::string RetainedSolves::Retain(mpcd::v1::BackwardRequest part, std::vector<Problem> problems) {
  for (Problem& problem : problems) AsBackwardProblem(&problem);
  auto value = std::make_shared<RetainedSolve>();
  value->part = std::move(part);
  value->problems = std::move(problems);
  const std::int64_t bytes = BytesOf(*value);
  absl::MutexLock lock(&mu_);
  std::string name = absl::StrFormat("%016x%016x", absl::Uniform<std::uint64_t>(random_),
                                     absl::Uniform<std::uint64_t>(random_));
  const bool kept = by_name_.Insert(name, std::move(value), bytes);
  if (metrics_ != nullptr) metrics_->SetRetainedSolveBytes(by_name_.total_cost());
  return kept ? name : "";
}

absl::StatusOr<ResolvedBackward> RetainedSolves::Resolve(const mpcd::v1::BackwardRequest& request) {
  const std::string& name = request.retained_solve();
  if (name.empty()) return ResolvedBackward();
  const char* carried = request.horizon() != 0            ? "horizon"
                        : request.problems_size() > 0     ? "problems"
                        : request.has_problem_template()  ? "problem_template"
                        : request.has_batched()           ? "batched"
                        : request.solutions_size() > 0    ? "solutions"
                        : request.has_stacked_solutions() ? "stacked_solutions"
                                                          : nullptr;
  if (carried != nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("retained_solve: names the problems and solutions of a Solve, so ", carried,
                     " must be absent"));
  }
  std::shared_ptr<const RetainedSolve> retained;
  {
    absl::MutexLock lock(&mu_);
    retained = by_name_.Find(name);
  }
  if (retained == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "retained_solve \"", name,
        "\": not held by this server (given up for newer ones, restarted, or another replica); "
        "send the problems and solutions"));
  }
  ResolvedBackward resolved;
  resolved.merged = std::make_unique<mpcd::v1::BackwardRequest>(retained->part);
  resolved.merged->MergeFrom(request);
  resolved.retained = std::move(retained);
  return resolved;
}

}  // namespace mpc
