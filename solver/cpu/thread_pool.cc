#include "solver/cpu/thread_pool.h"

#include <algorithm>

namespace mpc {

ThreadPool::ThreadPool(int size) {
  const int extra = std::max(size, 1) - 1;
  workers_.reserve(extra);
  for (int i = 0; i < extra; ++i) workers_.emplace_back([this, i] { WorkerLoop(i + 1); });
}

ThreadPool::~ThreadPool() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& worker : workers_) worker.join();
}

void ThreadPool::ParallelFor(int count, const std::function<void(int worker, int index)>& body) {
  if (count <= 0) return;
  absl::MutexLock run_lock(&run_mu_);
  if (workers_.empty() || count == 1) {
    for (int i = 0; i < count; ++i) body(0, i);
    return;
  }
  next_index_.store(0, std::memory_order_relaxed);
  {
    absl::MutexLock lock(&mu_);
    body_ = &body;
    count_ = count;
    pending_ = static_cast<int>(workers_.size());
    ++generation_;
  }
  Drain(0, body, count);
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int* pending) { return *pending == 0; }, &pending_));
  body_ = nullptr;
}

void ThreadPool::Drain(int worker, const std::function<void(int, int)>& body, int count) {
  for (int i = next_index_.fetch_add(1, std::memory_order_relaxed); i < count;
       i = next_index_.fetch_add(1, std::memory_order_relaxed)) {
    body(worker, i);
  }
}

void ThreadPool::WorkerLoop(int worker) {
  long seen = 0;
  while (true) {
    const std::function<void(int, int)>* body;
    int count;
    {
      absl::MutexLock lock(&mu_);
      struct Ready {
        ThreadPool* pool;
        long seen;
        bool operator()() const ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return pool->stopping_ || pool->generation_ != seen;
        }
      } ready{this, seen};
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      seen = generation_;
      body = body_;
      count = count_;
    }
    Drain(worker, *body, count);
    absl::MutexLock lock(&mu_);
    --pending_;
  }
}

}  // namespace mpc
