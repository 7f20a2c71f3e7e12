#ifndef MPC_SOLVER_CPU_THREAD_POOL_H_
#define MPC_SOLVER_CPU_THREAD_POOL_H_

#include <atomic>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace mpc {

// A fixed set of worker threads that run one parallel loop at a time. The calling thread takes
// part, so a pool of size 1 runs everything inline.
class ThreadPool {
 public:
  // `size` >= 1 threads in all, the caller included.
  explicit ThreadPool(int size);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls body(worker, i) for every i in [0, count), worker in [0, size()), and returns when all
  // calls are done. Indices are handed out one at a time, so uneven work balances itself. Calls
  // from several threads are serialised.
  void ParallelFor(int count, const std::function<void(int worker, int index)>& body);

 private:
  void WorkerLoop(int worker);
  void Drain(int worker, const std::function<void(int, int)>& body, int count);

  absl::Mutex run_mu_;  // serialises ParallelFor calls
  absl::Mutex mu_;
  std::vector<std::thread> workers_;
  std::atomic<int> next_index_{0};
  const std::function<void(int, int)>* body_ ABSL_GUARDED_BY(mu_) = nullptr;
  int count_ ABSL_GUARDED_BY(mu_) = 0;
  long generation_ ABSL_GUARDED_BY(mu_) = 0;
  int pending_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace mpc

#endif  // MPC_SOLVER_CPU_THREAD_POOL_H_
