#include "solver/cpu/cpu_backend.h"

#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "solver/cpu/ilqr.h"
#include "solver/cpu/implicit_backward.h"

namespace mpc {
namespace {

// One ShapeSolver per problem shape, per thread: workspaces are sized once and reused by every
// later batch that thread works on.
ShapeSolver& ThreadLocalSolver(const ProblemShape& shape) {
  thread_local absl::flat_hash_map<ProblemShape, std::unique_ptr<ShapeSolver>> solvers;
  std::unique_ptr<ShapeSolver>& solver = solvers[shape];
  if (solver == nullptr) solver = MakeShapeSolver(shape);
  return *solver;
}

// The same for backward passes.
ShapeBackward& ThreadLocalBackward(const ProblemShape& shape) {
  thread_local absl::flat_hash_map<ProblemShape, std::unique_ptr<ShapeBackward>> workspaces;
  std::unique_ptr<ShapeBackward>& workspace = workspaces[shape];
  if (workspace == nullptr) workspace = MakeShapeBackward(shape);
  return *workspace;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CpuBackend>> CpuBackend::Create(const CpuBackendOptions& options) {
  if (options.threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat("threads: must be >= 0, got ", options.threads));
  }
  int threads = options.threads;
  if (threads == 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::unique_ptr<CpuBackend>(new CpuBackend(std::make_unique<ThreadPool>(threads)));
}

CpuBackend::CpuBackend(std::unique_ptr<ThreadPool> pool) : pool_(std::move(pool)) {}

absl::Status CpuBackend::SolveBatch(absl::Span<const Problem* const> problems,
                                    absl::Span<Solution* const> solutions) {
  if (problems.size() != solutions.size()) {
    return absl::InvalidArgumentError(absl::StrCat("SolveBatch: ", problems.size(),
                                                   " problems but ", solutions.size(),
                                                   " solutions"));
  }
  pool_->ParallelFor(static_cast<int>(problems.size()), [&](int /*worker*/, int i) {
    const Problem& problem = *problems[i];
    ThreadLocalSolver(problem.shape).Solve(problem, solutions[i]);
  });
  return absl::OkStatus();
}

absl::Status CpuBackend::BackwardBatch(absl::Span<const BackwardProblem* const> problems,
                                       absl::Span<ProblemGradient* const> gradients) {
  if (problems.size() != gradients.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "BackwardBatch: ", problems.size(), " problems but ", gradients.size(), " gradients"));
  }
  // A wrong size would make the pass read out of bounds: the whole batch is refused instead.
  for (std::size_t i = 0; i < problems.size(); ++i) {
    if (problems[i] == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("BackwardBatch: problem ", i, " is missing"));
    }
    absl::Status status =
        ValidateBackwardProblem(*problems[i], absl::StrCat("BackwardBatch: problems[", i, "]."));
    if (!status.ok()) return status;
  }
  pool_->ParallelFor(static_cast<int>(problems.size()), [&](int /*worker*/, int i) {
    const BackwardProblem& problem = *problems[i];
    ThreadLocalBackward(problem.problem->shape).Backward(problem, gradients[i]);
  });
  return absl::OkStatus();
}

}  // namespace mpc
