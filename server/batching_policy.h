#ifndef MPC_SERVER_BATCHING_POLICY_H_
#define MPC_SERVER_BATCHING_POLICY_H_

// When to launch a batch (DESIGN §6, Triton's GetDynamicBatch made pure): a function of a snapshot
// of the queues and the time, so it is tested table-style without threads or sleeps.

#include <variant>

#include "absl/time/time.h"
#include "absl/types/span.h"

namespace mpc {

struct BatchingOptions {
  // A queue with this many jobs launches at once (and a launch takes at most this many), >= 1.
  int max_batch_size = 256;
  // A queue whose oldest job has waited this long launches with what it has, >= 0.
  absl::Duration max_queue_delay = absl::Microseconds(200);
};

// What the policy sees of one non-empty queue.
struct QueueSnapshot {
  int size = 0;                                           // jobs waiting, >= 1
  absl::Time oldest_enqueued = absl::InfinitePast();      // enqueue time of the oldest job
  absl::Time earliest_deadline = absl::InfiniteFuture();  // of any job in the queue
  // Some job in the queue asked to launch without the delay (SolveRequest.launch_immediately).
  bool launch_now = false;
};

// Launch `size` jobs (the oldest first) from queues[queue].
struct RunBatch {
  int queue = 0;
  int size = 0;
  friend bool operator==(const RunBatch& a, const RunBatch& b) {
    return a.queue == b.queue && a.size == b.size;
  }
};

// Nothing to launch: sleep at most `duration` (absl::InfiniteDuration() when every queue is empty)
// unless woken by new work, then decide again.
struct WaitFor {
  absl::Duration duration = absl::InfiniteDuration();
  friend bool operator==(const WaitFor& a, const WaitFor& b) { return a.duration == b.duration; }
};

using BatchDecision = std::variant<RunBatch, WaitFor>;

// The decision for `queues` at `now`:
//  * a queue is ready when it holds max_batch_size jobs, when its oldest job has waited
//    max_queue_delay, when one of its jobs asked to launch now, or (when `flush`, i.e. the
//    batcher is stopping) when it holds anything;
//  * among ready queues the one whose oldest job is oldest launches (first-come, first-served
//  across
//    shapes; ties go to the lower index) with min(size, max_batch_size) jobs;
//  * otherwise wait until the first queue becomes ready by delay or the first deadline passes
//    (so that expired jobs are answered on time), whichever is sooner.
// Expired and cancelled jobs are the batcher's to remove before asking.
BatchDecision DecideBatch(absl::Span<const QueueSnapshot> queues, absl::Time now,
                          const BatchingOptions& options, bool flush);

}  // namespace mpc

#endif  // MPC_SERVER_BATCHING_POLICY_H_
