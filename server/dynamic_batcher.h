#ifndef MPC_SERVER_DYNAMIC_BATCHER_H_
#define MPC_SERVER_DYNAMIC_BATCHER_H_

// The dynamic batcher (DESIGN §6, after Triton's dynamic_batch_scheduler): jobs (one per problem)
// wait in queues keyed by (kind, problem shape); one scheduler thread asks DecideBatch when to
// launch, drops expired and cancelled jobs before launch, and runs each batch as one backend call.
// Problems of many requests share a launch; each job's `done` runs as soon as its launch returns,
// so a request is answered as soon as its own problems are done.
//
// Up to the backend's max_concurrent_launches() batches are in the backend at once, each run by a
// launcher thread (the scheduler runs them itself when that is 1): a long launch does not hold up
// short ones of other shapes (docs/robustness.md §3). When every launch slot is busy, jobs that
// arrive accumulate into the next batches.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/batching_policy.h"
#include "server/service_metrics.h"
#include "server/solve_job.h"
#include "solver/solver_backend.h"

namespace mpc {

struct DynamicBatcherOptions {
  BatchingOptions batching;
  // Submit rejects (UNAVAILABLE) work that would take the queues over either bound. >= 1.
  int max_queue_problems = 16384;
  std::size_t max_queue_bytes = std::size_t{1} << 30;
  // The time source for enqueue times, deadlines and the policy; null = absl::Now. Tests inject a
  // manual clock to make expiry deterministic.
  std::function<absl::Time()> clock;
};

class DynamicBatcher {
 public:
  // Starts the scheduler thread. `backend` must outlive the batcher; `metrics` may be null (then
  // nothing is recorded), otherwise it must outlive the batcher too.
  static absl::StatusOr<std::unique_ptr<DynamicBatcher>> Create(
      const DynamicBatcherOptions& options, SolverBackend* backend, ServiceMetrics* metrics);

  // Stop()s.
  ~DynamicBatcher();
  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  // Takes every job of one request. All or nothing: if the queues cannot hold them all now, or the
  // batcher is stopping, every job is finished at once with UNAVAILABLE (on this thread); if they
  // could never hold them (more problems or bytes than the bounds), with INVALID_ARGUMENT naming
  // the bound. A job
  // whose deadline has already passed is finished at once with DEADLINE_EXCEEDED. Every job's
  // `done` runs exactly once, on every path. Never blocks on a launch.
  void Submit(std::vector<SolveJob> jobs);

  // Asks the scheduler to look for cancelled jobs now rather than at its next decision (call it
  // after setting a job's `cancelled` flag). Cheap; never blocks on a launch.
  void Wake();

  // Rejects further Submits, launches everything still queued without waiting for max_queue_delay
  // (expired and cancelled jobs are still dropped), then joins the scheduler. Idempotent. Blocks
  // until the running launch returns.
  void Stop();

  // Problems waiting in the queues (not those inside a launch).
  int queued_problems() const;

  // Waits until at least `count` problems are queued; false on timeout. Lets tests and drains
  // synchronise on the queue without sleeping.
  bool AwaitQueuedProblems(int count, absl::Duration timeout) const;

  // Backend launches so far.
  std::uint64_t launches() const;

 private:
  struct Queue {
    std::deque<SolveJob> jobs;
    // A lower bound of the jobs' deadlines (exact after a prune): when it passes, prune.
    absl::Time earliest_deadline = absl::InfiniteFuture();
    // How many of the jobs have launch_immediately set.
    int immediate_jobs = 0;
  };
  struct Dropped {
    SolveJob job;
    DropReason reason;
  };

  DynamicBatcher(const DynamicBatcherOptions& options, SolverBackend* backend,
                 ServiceMetrics* metrics);

  absl::Time Now() const { return clock_ ? clock_() : absl::Now(); }
  void SchedulerLoop();
  // Moves expired and cancelled jobs out of every queue into `dropped`; drops empty queues.
  void PruneLocked(absl::Time now, std::vector<Dropped>* dropped)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves up to `size` live jobs from the front of `queue` into `batch` (dead ones into `dropped`).
  void TakeLocked(Queue& queue, int size, absl::Time now, std::vector<SolveJob>* batch,
                  std::vector<Dropped>* dropped) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ForgetLocked(const SolveJob& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Finish(std::vector<Dropped>& dropped, absl::Time now);
  void Launch(std::vector<SolveJob>& batch, std::uint64_t batch_id);
  void LauncherLoop();

  const DynamicBatcherOptions options_;
  const std::function<absl::Time()> clock_;
  SolverBackend* const backend_;
  ServiceMetrics* const metrics_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<BatchKey, Queue> queues_ ABSL_GUARDED_BY(mu_);
  int queued_problems_ ABSL_GUARDED_BY(mu_) = 0;
  std::size_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Set when the scheduler must decide again before its timer (absl::Mutex wakes it on Unlock).
  bool changed_ ABSL_GUARDED_BY(mu_) = false;
  // Wake() was called: prune for cancelled jobs at the next decision.
  bool prune_requested_ ABSL_GUARDED_BY(mu_) = false;
  // When the waiting scheduler will wake by itself; InfinitePast while it is not waiting. Submit
  // wakes it only for work that is due earlier, so a busy stream of jobs costs few wake-ups.
  absl::Time wake_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::uint64_t launches_ ABSL_GUARDED_BY(mu_) = 0;

  // Batches taken and not yet finished by their launch, and the most there may be.
  const int max_launches_;
  int running_launches_ ABSL_GUARDED_BY(mu_) = 0;
  struct PendingLaunch {
    std::vector<SolveJob> batch;
    std::uint64_t batch_id = 0;
  };
  // Taken by the scheduler for a launcher thread (max_launches_ > 1 only).
  std::deque<PendingLaunch> pending_launches_ ABSL_GUARDED_BY(mu_);
  bool scheduler_done_ ABSL_GUARDED_BY(mu_) = false;

  absl::Mutex stop_mu_;  // serialises Stop's join
  std::thread scheduler_;
  std::vector<std::thread> launchers_;
};

}  // namespace mpc

#endif  // MPC_SERVER_DYNAMIC_BATCHER_H_
