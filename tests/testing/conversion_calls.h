#ifndef MPC_TESTS_TESTING_CONVERSION_CALLS_H_
#define MPC_TESTS_TESTING_CONVERSION_CALLS_H_

// Solve and Backward as the service answers them, without the service: the request layer
// (ToProblems / ToBackwardProblems), a one-thread CPU backend, and the response conversion
// (ToSolveResponse / WriteGradients). For the request layer's tests (they link mpc::conversion).

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "mpcd/v1/mpcd.pb.h"
#include "proto/proto_conversion.h"
#include "solver/cpu/cpu_backend.h"
#include "tests/testing/proto_tensors.h"

namespace mpc::testing {

inline absl::StatusOr<mpcd::v1::SolveResponse> SolveThroughConversion(
    const mpcd::v1::SolveRequest& request) {
  absl::StatusOr<std::vector<Problem>> problems = ToProblems(request, RequestLimits{});
  if (!problems.ok()) return problems.status();
  absl::StatusOr<std::unique_ptr<SolverBackend>> backend = CpuBackend::Create({1});
  if (!backend.ok()) return backend.status();
  std::vector<Solution> solutions(problems->size());
  std::vector<const Problem*> in;
  std::vector<Solution*> out;
  for (std::size_t i = 0; i < problems->size(); ++i) {
    in.push_back(&(*problems)[i]);
    out.push_back(&solutions[i]);
  }
  if (absl::Status s = (*backend)->SolveBatch(in, out); !s.ok()) return s;
  mpcd::v1::SolveResponse response;
  ToSolveResponse(solutions, *problems, &response);
  return response;
}

inline absl::StatusOr<mpcd::v1::BackwardResponse> BackwardThroughConversion(
    const mpcd::v1::BackwardRequest& request) {
  absl::StatusOr<BackwardInputs> inputs = ToBackwardProblems(request, RequestLimits{});
  if (!inputs.ok()) return inputs.status();
  absl::StatusOr<std::unique_ptr<SolverBackend>> backend = CpuBackend::Create({1});
  if (!backend.ok()) return backend.status();
  std::vector<ProblemGradient> gradients(inputs->items.size());
  std::vector<const BackwardProblem*> in;
  std::vector<ProblemGradient*> out;
  for (std::size_t i = 0; i < gradients.size(); ++i) {
    in.push_back(&inputs->items[i]);
    out.push_back(&gradients[i]);
  }
  if (absl::Status s = (*backend)->BackwardBatch(in, out); !s.ok()) return s;
  mpcd::v1::BackwardResponse response;
  WriteGradients(request, gradients, inputs->problems, &response);
  return response;
}

// The first solution of a SolveThroughConversion answer, unpacked.
struct FirstSolution {
  std::vector<double> x;  // (T, n)
  std::vector<double> u;  // (T, m)
  double cost = 0.0;
  mpcd::v1::SolveStatus status = mpcd::v1::SOLVE_STATUS_UNSPECIFIED;
  mpcd::v1::Solution proto;
};

inline absl::StatusOr<FirstSolution> SolveFirstThroughConversion(
    const mpcd::v1::SolveRequest& request) {
  absl::StatusOr<mpcd::v1::SolveResponse> response = SolveThroughConversion(request);
  if (!response.ok()) return response.status();
  FirstSolution out;
  out.proto = response->solutions(0);
  out.x = DataOf(out.proto.x());
  out.u = DataOf(out.proto.u());
  out.cost = out.proto.cost();
  out.status = out.proto.status();
  return out;
}

// Tight options, for tests that compare optima: 50 iterations, tolerance 1e-12.
inline mpcd::v1::SolverOptions TightOptions() {
  mpcd::v1::SolverOptions options;
  options.set_max_iterations(50);
  options.set_tolerance(1e-12);
  return options;
}

}  // namespace mpc::testing

#endif  // MPC_TESTS_TESTING_CONVERSION_CALLS_H_
