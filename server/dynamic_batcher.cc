#include "server/dynamic_batcher.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace mpc {
namespace {

bool IsCancelled(const SolveJob& job) {
  return job.cancelled != nullptr && job.cancelled->load(std::memory_order_acquire);
}

}  // namespace

absl::StatusOr<std::unique_ptr<DynamicBatcher>> DynamicBatcher::Create(
    const DynamicBatcherOptions& options, SolverBackend* backend, ServiceMetrics* metrics) {
  if (backend == nullptr) return absl::InvalidArgumentError("batcher: backend is null");
  if (options.batching.max_batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_batch_size: must be >= 1, got ", options.batching.max_batch_size));
  }
  if (options.batching.max_queue_delay < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("max_queue_delay: must be >= 0");
  }
  if (options.max_queue_problems < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_queue_problems: must be >= 1, got ", options.max_queue_problems));
  }
  if (options.max_queue_bytes < 1) {
    return absl::InvalidArgumentError("max_queue_bytes: must be >= 1");
  }
  return std::unique_ptr<DynamicBatcher>(new DynamicBatcher(options, backend, metrics));
}

DynamicBatcher::DynamicBatcher(const DynamicBatcherOptions& options, SolverBackend* backend,
                               ServiceMetrics* metrics)
    : options_(options),
      clock_(options.clock),
      backend_(backend),
      metrics_(metrics),
      max_launches_(std::max(1, backend->max_concurrent_launches())) {
  if (max_launches_ > 1) {
    for (int i = 0; i < max_launches_; ++i) launchers_.emplace_back([this] { LauncherLoop(); });
  }
  scheduler_ = std::thread([this] { SchedulerLoop(); });
}

DynamicBatcher::~DynamicBatcher() { Stop(); }

void DynamicBatcher::Submit(std::vector<SolveJob> jobs) {
  const absl::Time now = Now();
  std::vector<Dropped> rejected;
  absl::Status rejection;
  {
    absl::MutexLock lock(&mu_);
    std::size_t bytes = 0;
    for (const SolveJob& job : jobs) bytes += job.bytes;
    // A request larger than the whole queue could never be accepted: retrying cannot help.
    if (jobs.size() > static_cast<std::size_t>(options_.max_queue_problems)) {
      rejection = absl::InvalidArgumentError(absl::StrCat(
          "request: ", jobs.size(), " problems can never fit the queue (--max_queue_problems=",
          options_.max_queue_problems, "); split them over several requests"));
    } else if (bytes > options_.max_queue_bytes) {
      rejection = absl::InvalidArgumentError(
          absl::StrCat("request: needs ", bytes,
                       " bytes queued (inputs and answers), more than the whole "
                       "queue holds (--max_queue_bytes=",
                       options_.max_queue_bytes, "); split the problems over several requests"));
    } else if (stopping_) {
      rejection = absl::UnavailableError("server is stopping; retry on another replica");
    } else if (queued_problems_ + jobs.size() >
               static_cast<std::size_t>(options_.max_queue_problems)) {
      rejection = absl::UnavailableError(absl::StrCat(
          "queue full: ", queued_problems_, " problems queued, limit ", options_.max_queue_problems,
          ", this request has ", jobs.size(), "; retry with backoff"));
    } else if (queued_bytes_ + bytes > options_.max_queue_bytes) {
      rejection = absl::UnavailableError(absl::StrCat(
          "queue full: ", queued_bytes_, " bytes queued, limit ", options_.max_queue_bytes,
          ", this request needs ", bytes, "; retry with backoff"));
    }
    if (rejection.ok()) {
      for (SolveJob& job : jobs) {
        job.enqueued_at = now;
        if (job.deadline <= now) {
          rejected.push_back({std::move(job), DropReason::kDeadline});
          continue;
        }
        // Only work due before the scheduler's own timer needs a wake-up.
        const absl::Time due =
            job.launch_immediately
                ? now
                : std::min(now + options_.batching.max_queue_delay, job.deadline);
        Queue& queue = queues_[job.key()];
        if (job.launch_immediately) ++queue.immediate_jobs;
        queue.earliest_deadline = std::min(queue.earliest_deadline, job.deadline);
        queued_bytes_ += job.bytes;
        ++queued_problems_;
        if (metrics_ != nullptr) metrics_->AddQueuedProblems(1);
        queue.jobs.push_back(std::move(job));
        if (due < wake_at_ ||
            queue.jobs.size() >= static_cast<std::size_t>(options_.batching.max_batch_size)) {
          changed_ = true;
        }
      }
    } else {
      const DropReason reason = stopping_ ? DropReason::kStopping : DropReason::kQueueFull;
      for (SolveJob& job : jobs) {
        job.enqueued_at = now;
        rejected.push_back({std::move(job), reason});
      }
    }
  }
  if (rejected.empty()) return;
  if (!rejection.ok()) {
    if (metrics_ != nullptr) {
      metrics_->RecordDropped(rejected.front().reason, static_cast<int>(rejected.size()));
    }
    for (Dropped& dropped : rejected) {
      JobResult result;
      result.status = rejection;
      dropped.job.done(result);
    }
    return;
  }
  Finish(rejected, now);
}

void DynamicBatcher::Wake() {
  absl::MutexLock lock(&mu_);
  prune_requested_ = true;
  changed_ = true;
}

void DynamicBatcher::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    changed_ = true;
  }
  absl::MutexLock lock(&stop_mu_);
  if (scheduler_.joinable()) scheduler_.join();
  for (std::thread& launcher : launchers_) {
    if (launcher.joinable()) launcher.join();
  }
}

int DynamicBatcher::queued_problems() const {
  absl::MutexLock lock(&mu_);
  return queued_problems_;
}

bool DynamicBatcher::AwaitQueuedProblems(int count, absl::Duration timeout) const {
  struct Args {
    const DynamicBatcher* self;
    int count;
  };
  Args args{this, count};
  bool (*reached)(Args*) = [](Args* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return a->self->queued_problems_ >= a->count;
  };
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(reached, &args), timeout);
}

std::uint64_t DynamicBatcher::launches() const {
  absl::MutexLock lock(&mu_);
  return launches_;
}

void DynamicBatcher::ForgetLocked(const SolveJob& job) {
  --queued_problems_;
  queued_bytes_ -= job.bytes;
  if (metrics_ != nullptr) metrics_->AddQueuedProblems(-1);
}

void DynamicBatcher::PruneLocked(absl::Time now, std::vector<Dropped>* dropped) {
  for (auto it = queues_.begin(); it != queues_.end();) {
    Queue& queue = it->second;
    absl::Time earliest = absl::InfiniteFuture();
    std::deque<SolveJob> live;
    for (SolveJob& job : queue.jobs) {
      if (job.deadline <= now) {
        ForgetLocked(job);
        if (job.launch_immediately) --queue.immediate_jobs;
        dropped->push_back({std::move(job), DropReason::kDeadline});
      } else if (IsCancelled(job)) {
        ForgetLocked(job);
        if (job.launch_immediately) --queue.immediate_jobs;
        dropped->push_back({std::move(job), DropReason::kCancelled});
      } else {
        earliest = std::min(earliest, job.deadline);
        live.push_back(std::move(job));
      }
    }
    queue.jobs = std::move(live);
    queue.earliest_deadline = earliest;
    if (queue.jobs.empty()) {
      queues_.erase(it++);
    } else {
      ++it;
    }
  }
}

void DynamicBatcher::TakeLocked(Queue& queue, int size, absl::Time now,
                                std::vector<SolveJob>* batch, std::vector<Dropped>* dropped) {
  while (!queue.jobs.empty() && static_cast<int>(batch->size()) < size) {
    SolveJob job = std::move(queue.jobs.front());
    queue.jobs.pop_front();
    if (job.launch_immediately) --queue.immediate_jobs;
    ForgetLocked(job);
    if (job.deadline <= now) {
      dropped->push_back({std::move(job), DropReason::kDeadline});
    } else if (IsCancelled(job)) {
      dropped->push_back({std::move(job), DropReason::kCancelled});
    } else {
      batch->push_back(std::move(job));
    }
  }
}

void DynamicBatcher::SchedulerLoop() {
  std::vector<SolveJob> batch;
  std::vector<Dropped> dropped;
  std::vector<QueueSnapshot> snapshot;
  std::vector<Queue*> snapshot_queues;
  std::vector<BatchKey> snapshot_keys;
  for (;;) {
    batch.clear();
    dropped.clear();
    bool exit = false;
    std::uint64_t batch_id = 0;
    absl::Time now;
    {
      absl::MutexLock lock(&mu_);
      for (;;) {
        changed_ = false;
        now = Now();
        bool prune = prune_requested_;
        for (const auto& [key, queue] : queues_) prune = prune || queue.earliest_deadline <= now;
        if (prune) {
          prune_requested_ = false;
          PruneLocked(now, &dropped);
        }
        snapshot.clear();
        snapshot_queues.clear();
        snapshot_keys.clear();
        for (auto& [key, queue] : queues_) {
          snapshot.push_back({static_cast<int>(queue.jobs.size()), queue.jobs.front().enqueued_at,
                              queue.earliest_deadline, queue.immediate_jobs > 0});
          snapshot_queues.push_back(&queue);
          snapshot_keys.push_back(key);
        }
        const BatchDecision decision = DecideBatch(snapshot, now, options_.batching, stopping_);
        const RunBatch* run = std::get_if<RunBatch>(&decision);
        if (run != nullptr && running_launches_ < max_launches_) {
          TakeLocked(*snapshot_queues[run->queue], run->size, now, &batch, &dropped);
          if (snapshot_queues[run->queue]->jobs.empty()) queues_.erase(snapshot_keys[run->queue]);
          if (!batch.empty()) {
            batch_id = ++launches_;
            ++running_launches_;
            if (max_launches_ > 1) {
              pending_launches_.push_back({std::move(batch), batch_id});
              batch.clear();
            }
          }
          break;
        }
        if (!dropped.empty()) break;  // answer them before sleeping
        if (stopping_ && queued_problems_ == 0) {
          exit = true;
          scheduler_done_ = true;
          break;
        }
        // Every launch slot is busy: a finishing launch sets changed_.
        const absl::Duration wait =
            run != nullptr ? absl::InfiniteDuration() : std::get<WaitFor>(decision).duration;
        wake_at_ = wait == absl::InfiniteDuration() ? absl::InfiniteFuture() : now + wait;
        if (wait == absl::InfiniteDuration()) {
          mu_.Await(absl::Condition(&changed_));
        } else {
          mu_.AwaitWithTimeout(absl::Condition(&changed_), wait);
        }
        wake_at_ = absl::InfinitePast();
      }
    }
    if (!dropped.empty()) Finish(dropped, now);
    if (!batch.empty()) Launch(batch, batch_id);
    if (exit) return;
  }
}

void DynamicBatcher::LauncherLoop() {
  for (;;) {
    PendingLaunch launch;
    {
      absl::MutexLock lock(&mu_);
      struct Ready {
        DynamicBatcher* self;
        bool operator()() const ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return !self->pending_launches_.empty() || self->scheduler_done_;
        }
      } ready{this};
      mu_.Await(absl::Condition(&ready));
      if (pending_launches_.empty()) return;  // the scheduler is done and nothing is left
      launch = std::move(pending_launches_.front());
      pending_launches_.pop_front();
    }
    Launch(launch.batch, launch.batch_id);
  }
}

void DynamicBatcher::Finish(std::vector<Dropped>& dropped, absl::Time now) {
  for (Dropped& d : dropped) {
    JobResult result;
    result.queue_time = now - d.job.enqueued_at;
    if (d.reason == DropReason::kDeadline) {
      result.status = absl::DeadlineExceededError("deadline passed while queued");
    } else {
      result.status = absl::CancelledError("the caller cancelled the request");
    }
    if (metrics_ != nullptr) {
      metrics_->RecordDropped(d.reason, 1);
      metrics_->RecordQueueTime(d.job.kind, result.queue_time);
    }
    d.job.done(result);
  }
}

void DynamicBatcher::Launch(std::vector<SolveJob>& batch, std::uint64_t batch_id) {
  const int size = static_cast<int>(batch.size());
  const JobKind kind = batch.front().kind;
  const absl::Time start = Now();
  if (metrics_ != nullptr) {
    metrics_->AddInflightProblems(size);
    for (const SolveJob& job : batch) metrics_->RecordQueueTime(kind, start - job.enqueued_at);
  }

  absl::Status status;
  if (kind == JobKind::kSolve) {
    std::vector<const Problem*> problems;
    std::vector<Solution*> solutions;
    problems.reserve(batch.size());
    solutions.reserve(batch.size());
    for (const SolveJob& job : batch) {
      problems.push_back(job.problem);
      solutions.push_back(job.solution);
    }
    status = backend_->SolveBatch(problems, solutions);
  } else {
    std::vector<const BackwardProblem*> problems;
    std::vector<ProblemGradient*> gradients;
    problems.reserve(batch.size());
    gradients.reserve(batch.size());
    for (const SolveJob& job : batch) {
      problems.push_back(job.backward);
      gradients.push_back(job.gradient);
    }
    status = backend_->BackwardBatch(problems, gradients);
  }
  const absl::Time end = Now();

  if (metrics_ != nullptr) {
    metrics_->AddInflightProblems(-size);
    metrics_->RecordLaunch(kind, size, end - start);
    if (status.ok()) {
      for (const SolveJob& job : batch) {
        if (kind == JobKind::kSolve) {
          metrics_->RecordSolution(*job.solution);
        } else if (job.gradient->status != GradientStatus::kStopped) {
          metrics_->RecordGradient(*job.gradient);
        }
      }
    }
  }
  {
    // The slot is free before the answers go out, so that the scheduler can fill it meanwhile.
    absl::MutexLock lock(&mu_);
    --running_launches_;
    changed_ = true;
  }
  for (SolveJob& job : batch) {
    JobResult result;
    result.status = status;
    if (status.ok() && kind == JobKind::kBackward &&
        job.gradient->status == GradientStatus::kStopped) {
      // The backend left it out: its caller is gone or out of time (no answer is owed).
      result.status = IsCancelled(job)
                          ? absl::CancelledError("the caller cancelled the request")
                          : absl::DeadlineExceededError("deadline passed before the gradient");
    }
    result.queue_time = start - job.enqueued_at;
    result.solve_time = end - start;
    result.batch_size = size;
    result.batch_id = batch_id;
    job.done(result);
  }
}

}  // namespace mpc
