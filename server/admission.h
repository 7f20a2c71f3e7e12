#ifndef MPC_SERVER_ADMISSION_H_
#define MPC_SERVER_ADMISSION_H_

// What a request will cost the server, computed from its validated problems before anything is
// queued or solved: the size of its answer and the solver work it can demand. A request over
// either limit can never be served, so it is refused with INVALID_ARGUMENT naming the limit
// instead of being queued (docs/robustness.md §7).

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "solver/gradients.h"
#include "solver/problem.h"

namespace mpc {

struct AdmissionLimits {
  // Largest answer in bytes (protobuf cannot serialise 2 GiB; gRPC aborts on the attempt).
  std::int64_t max_response_bytes = std::int64_t{256} << 20;
  // Largest work of one request, in the units of SolveWork (0.5-5 ns each on one core,
  // docs/robustness.md §7): the default is about a minute of an idle core.
  double max_request_work = 1e11;
};

// Doubles of a solve's answer to `problem`: x, u, and the gains and Jacobians it asks for.
std::int64_t SolveAnswerDoubles(const Problem& problem);
// Doubles of a backward answer: one gradient per input array (an absent offset included).
std::int64_t BackwardAnswerDoubles(const Problem& problem);

// The solver work a problem can demand at most: every iteration runs a Riccati pass (T (n+m)^3)
// and up to max_linesearch_iterations rollouts (T (n+m)^2 each); each Jacobian column is one more
// LQR solve over the same factorisation.
double SolveWork(const Problem& problem);
// One pinned LQR: a factorisation and a solve.
double BackwardWork(const Problem& problem);

// OK, or INVALID_ARGUMENT naming the limit (--max_response_bytes, --max_request_work) the request
// is over.
absl::Status CheckSolveAdmission(absl::Span<const Problem> problems, const AdmissionLimits& limits);
absl::Status CheckBackwardAdmission(absl::Span<const Problem> problems,
                                    const AdmissionLimits& limits);

}  // namespace mpc

#endif  // MPC_SERVER_ADMISSION_H_
