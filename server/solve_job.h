#ifndef MPC_SERVER_SOLVE_JOB_H_
#define MPC_SERVER_SOLVE_JOB_H_

// The unit of work of the dynamic batcher (DESIGN §6): one problem, not one request, so that the
// problems of one request can share launches with other requests' problems.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "solver/gradients.h"
#include "solver/problem.h"

namespace mpc {

// What a job asks the backend for. Jobs of different kinds never share a launch.
enum class JobKind : std::uint8_t { kSolve, kBackward };

const char* JobKindName(JobKind kind);  // "solve" | "backward"

// The queue key: jobs with equal keys may share one backend launch.
struct BatchKey {
  JobKind kind = JobKind::kSolve;
  ProblemShape shape;

  friend bool operator==(const BatchKey& a, const BatchKey& b) {
    return a.kind == b.kind && a.shape == b.shape;
  }
  friend bool operator!=(const BatchKey& a, const BatchKey& b) { return !(a == b); }
  template <typename H>
  friend H AbslHashValue(H h, const BatchKey& key) {
    return H::combine(std::move(h), key.kind, key.shape);
  }
};

// What happened to a job, passed to its `done` exactly once.
struct JobResult {
  // OK: the backend wrote the answer (per-problem failures such as non-convergence are data in the
  // answer). UNAVAILABLE: rejected (queue full, stopping). DEADLINE_EXCEEDED: expired before
  // launch. CANCELLED: the caller left before launch. Anything else: the whole launch failed.
  absl::Status status;
  absl::Duration queue_time = absl::ZeroDuration();  // enqueue -> launch (or -> drop)
  absl::Duration solve_time = absl::ZeroDuration();  // wall time of the backend launch; 0 if none
  int batch_size = 0;                                // problems in that launch; 0 if none
  std::uint64_t batch_id = 0;                        // distinct per launch (from 1); 0 if none
};

// One problem waiting for (or in) a backend launch. The caller owns the problem and the output and
// keeps them alive until `done` has run; the batcher never copies them.
struct SolveJob {
  JobKind kind = JobKind::kSolve;
  // kSolve: the problem to solve and where its solution goes.
  const Problem* problem = nullptr;
  Solution* solution = nullptr;
  // kBackward: the backward problem (its `problem` must be set) and where the gradient goes.
  const BackwardProblem* backward = nullptr;
  ProblemGradient* gradient = nullptr;

  // Jobs still queued at this time are finished with DEADLINE_EXCEEDED instead of launched.
  absl::Time deadline = absl::InfiniteFuture();
  // Set (by anyone, any time) when the caller has gone; a queued job is then dropped with
  // CANCELLED. Not owned; may be null. Must outlive the job.
  const std::atomic<bool>* cancelled = nullptr;
  // Approximate memory the job pins while queued (inputs and outputs), for the byte bound.
  std::size_t bytes = 0;
  // Launch without waiting max_queue_delay for other jobs (SolveRequest.launch_immediately).
  bool launch_immediately = false;

  // Called exactly once, from whichever thread completes the job (the caller's own thread when
  // Submit rejects it), never with the batcher's lock held. Must not block.
  absl::AnyInvocable<void(const JobResult&)> done;

  // Set by the batcher at Submit.
  absl::Time enqueued_at = absl::InfinitePast();

  BatchKey key() const {
    return BatchKey{kind, kind == JobKind::kSolve ? problem->shape : backward->problem->shape};
  }
};

// When the solver should stop a call's problems (SolveInterrupt) so that the answer, with status
// DEADLINE and the best iterate so far, still reaches the client before `call_deadline`: a tenth
// of the time left at `now`, at most 100 ms, is kept for answering.
absl::Time SolveDeadline(absl::Time call_deadline, absl::Time now);

// Bytes of `problem` itself: the struct and its input arrays.
std::size_t InputBytes(const Problem& problem);

// Bytes a job for `problem` pins while queued: its inputs, and its answer (every array the options
// ask for, Jacobians included) as a Solution and as the serialised response.
std::size_t ApproximateBytes(const Problem& problem);

}  // namespace mpc

#endif  // MPC_SERVER_SOLVE_JOB_H_
