#ifndef MPC_SOLVER_CPU_THREAD_POOL_H_
#define MPC_SOLVER_CPU_THREAD_POOL_H_

#include <atomic>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace mpc {

// A fixed set of worker threads shared by several parallel loops at once. Each calling thread
// takes part in its own loop, and the workers serve every loop in flight in turn, one index at a
// time: a long loop cannot hold the whole pool while short ones wait (docs/robustness.md §3).
class ThreadPool {
 public:
  // `size` >= 1 threads compute one loop when it runs alone, the caller included (size - 1
  // workers). At most `max_concurrent_loops` >= 1 loops run at once; further callers wait.
  explicit ThreadPool(int size, int max_concurrent_loops = 1);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  // How many distinct `worker` values a body can see: the workers' and one per concurrent caller.
  // Two calls never run with the same value at the same time, so per-worker state needs no lock.
  int slots() const { return static_cast<int>(workers_.size()) + max_concurrent_loops_; }

  // Calls body(worker, i) for every i in [0, count), worker in [0, slots()), and returns when all
  // calls are done. Indices are handed out one at a time, so uneven work balances itself.
  void ParallelFor(int count, const std::function<void(int worker, int index)>& body);

 private:
  struct Loop {
    const std::function<void(int, int)>* body = nullptr;
    int count = 0;
    std::atomic<int> next{0};
    int workers_inside = 0;  // guarded by mu_
  };

  void WorkerLoop(int worker);
  static void RunIndices(Loop& loop, int worker);

  const int max_concurrent_loops_;
  absl::Mutex mu_;
  std::vector<std::thread> workers_;
  // Loops that may still have indices to hand out, served round robin.
  std::vector<Loop*> loops_ ABSL_GUARDED_BY(mu_);
  std::size_t next_loop_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<int> free_caller_slots_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace mpc

#endif  // MPC_SOLVER_CPU_THREAD_POOL_H_
