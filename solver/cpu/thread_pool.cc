#include "solver/cpu/thread_pool.h"

#include <algorithm>

namespace mpc {

ThreadPool::ThreadPool(int size, int max_concurrent_loops)
    : max_concurrent_loops_(std::max(max_concurrent_loops, 1)) {
  const int extra = std::max(size, 1) - 1;
  {
    absl::MutexLock lock(&mu_);
    for (int slot = extra + max_concurrent_loops_ - 1; slot >= extra; --slot) {
      free_caller_slots_.push_back(slot);
    }
  }
  workers_.reserve(extra);
  for (int i = 0; i < extra; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
}

ThreadPool::~ThreadPool() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& worker : workers_) worker.join();
}

void ThreadPool::RunIndices(Loop& loop, int worker) {
  for (int i = loop.next.fetch_add(1, std::memory_order_relaxed); i < loop.count;
       i = loop.next.fetch_add(1, std::memory_order_relaxed)) {
    (*loop.body)(worker, i);
  }
}

void ThreadPool::ParallelFor(int count, const std::function<void(int worker, int index)>& body) {
  if (count <= 0) return;
  Loop loop;
  loop.body = &body;
  loop.count = count;
  int slot;
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](std::vector<int>* free) { return !free->empty(); }, &free_caller_slots_));
    slot = free_caller_slots_.back();
    free_caller_slots_.pop_back();
    // One index is the caller's alone: waking a worker for it would only add a hand-off.
    if (count > 1 && !workers_.empty()) loops_.push_back(&loop);
  }
  RunIndices(loop, slot);
  absl::MutexLock lock(&mu_);
  loops_.erase(std::remove(loops_.begin(), loops_.end(), &loop), loops_.end());
  mu_.Await(absl::Condition(
      +[](Loop* l) ABSL_NO_THREAD_SAFETY_ANALYSIS { return l->workers_inside == 0; }, &loop));
  free_caller_slots_.push_back(slot);
}

void ThreadPool::WorkerLoop(int worker) {
  for (;;) {
    Loop* loop;
    {
      absl::MutexLock lock(&mu_);
      struct Ready {
        ThreadPool* pool;
        bool operator()() const ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return pool->stopping_ || !pool->loops_.empty();
        }
      } ready{this};
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      loop = loops_[next_loop_++ % loops_.size()];
      ++loop->workers_inside;
    }
    // One index, then choose a loop again: every loop in flight gets its turn.
    const int i = loop->next.fetch_add(1, std::memory_order_relaxed);
    if (i < loop->count) (*loop->body)(worker, i);
    absl::MutexLock lock(&mu_);
    --loop->workers_inside;
    if (i + 1 >= loop->count) {
      loops_.erase(std::remove(loops_.begin(), loops_.end(), loop), loops_.end());
    }
  }
}

}  // namespace mpc
