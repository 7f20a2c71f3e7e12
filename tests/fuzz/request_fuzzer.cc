// libFuzzer target over the request path a call takes inside mpcd (docs/robustness.md):
// bytes -> SolveRequest or BackwardRequest (protobuf parse) -> validation and conversion
// (ToProblems / ToBackwardProblems, the workspace-size check; ValidateBackwardProblem must then
// pass) -> a solve or backward pass on the CPU backend -> the response message, serialized.
//
// The first byte picks the message (even: Solve, odd: Backward); the rest is the serialized
// message. Limits are small (T <= 16, n <= 8, m <= 4, 10 iterations) so one input runs in
// microseconds; the code paths are the same at any size.
//
//   build-fuzz/bin/request_fuzzer -max_total_time=60 build-fuzz/corpus
//   tests/fuzz/corpus/request_fuzzer

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "mpcd/v1/mpcd.pb.h"
#include "proto/proto_conversion.h"
#include "solver/cpu/cpu_backend.h"
#include "solver/gradients.h"

namespace {

constexpr std::int64_t kMaxWorkspace = 16 * 12 * 12;  // T * (n+m)^2, as --max_problem_size

mpc::RequestLimits Limits() {
  mpc::RequestLimits limits;
  limits.problem.max_horizon = 16;
  limits.problem.max_state_dim = 8;
  limits.problem.max_control_dim = 4;
  limits.problem.max_iterations = 10;
  limits.problem.max_linesearch_iterations = 10;
  limits.max_problems = 4;
  return limits;
}

mpc::SolverBackend& Backend() {
  static const std::unique_ptr<mpc::CpuBackend> backend =
      *mpc::CpuBackend::Create(mpc::CpuBackendOptions{.threads = 1});
  return *backend;
}

bool SizesAllowed(const std::vector<mpc::Problem>& problems) {
  for (std::size_t i = 0; i < problems.size(); ++i) {
    if (!mpc::CheckWorkspaceSize(problems[i].shape, kMaxWorkspace,
                                 absl::StrCat("problems[", i, "]"))
             .ok()) {
      return false;
    }
  }
  return true;
}

void Solve(const std::uint8_t* data, std::size_t size) {
  mpcd::v1::SolveRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return;
  absl::StatusOr<std::vector<mpc::Problem>> problems = mpc::ToProblems(request, Limits());
  if (!problems.ok() || !SizesAllowed(*problems)) return;
  std::vector<mpc::Solution> solutions(problems->size());
  std::vector<const mpc::Problem*> problem_ptrs;
  std::vector<mpc::Solution*> solution_ptrs;
  for (std::size_t i = 0; i < problems->size(); ++i) {
    problem_ptrs.push_back(&(*problems)[i]);
    solution_ptrs.push_back(&solutions[i]);
  }
  if (!Backend().SolveBatch(problem_ptrs, solution_ptrs).ok()) return;
  mpcd::v1::SolveResponse response;
  mpc::WriteSolutions(solutions, *problems, request.response_encoding(), request.stacked_response(),
                      &response);
  response.SerializeAsString();
}

void Backward(const std::uint8_t* data, std::size_t size) {
  mpcd::v1::BackwardRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return;
  absl::StatusOr<mpc::BackwardInputs> inputs = mpc::ToBackwardProblems(request, Limits());
  if (!inputs.ok() || !SizesAllowed(inputs->problems)) return;
  // ToBackwardProblems ran ValidateBackwardProblem (mpcd does not run it again): anything it
  // accepted must pass, or a backend could refuse a whole batch for one client's problem.
  for (const mpc::BackwardProblem& item : inputs->items) {
    if (!mpc::ValidateBackwardProblem(item).ok()) __builtin_trap();
  }
  std::vector<mpc::ProblemGradient> gradients(inputs->items.size());
  std::vector<const mpc::BackwardProblem*> item_ptrs;
  std::vector<mpc::ProblemGradient*> gradient_ptrs;
  for (std::size_t i = 0; i < inputs->items.size(); ++i) {
    item_ptrs.push_back(&inputs->items[i]);
    gradient_ptrs.push_back(&gradients[i]);
  }
  if (!Backend().BackwardBatch(item_ptrs, gradient_ptrs).ok()) return;
  mpcd::v1::BackwardResponse response;
  mpc::WriteGradients(request, gradients, inputs->problems, &response);
  response.SerializeAsString();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  if (data[0] % 2 == 0) {
    Solve(data + 1, size - 1);
  } else {
    Backward(data + 1, size - 1);
  }
  return 0;
}
