#ifndef MPC_SOLVER_CPU_WORKSPACE_CACHE_H_
#define MPC_SOLVER_CPU_WORKSPACE_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "solver/problem.h"

namespace mpc {

// An upper bound of the bytes a solve or backward workspace for `shape` holds: its batch buffer
// (time-varying inputs, trajectories, gains and linearisations: a few T (n+m)^2 doubles) and its
// scratch.
inline std::size_t WorkspaceBytes(const ProblemShape& shape) {
  const std::size_t T = static_cast<std::size_t>(shape.horizon);
  const std::size_t nt = static_cast<std::size_t>(shape.tau_dim());
  return sizeof(double) * (T * (4 * nt * nt + 16 * nt) + 8 * nt * nt + 64);
}

// Workspaces keyed by problem shape for one worker thread: at most `capacity` of them and at most
// `max_bytes` together (by WorkspaceBytes); the least recently used ones are freed to make room,
// and a workspace larger than `max_bytes` alone is made for one use and freed by ReleaseUncached. A
// server sees a handful of shapes in steady state (a linear scan of a few entries is cheaper than
// hashing), but clients choose shapes, so without the bounds a stream of distinct shapes would
// grow memory without limit. Not thread-safe.
template <typename Workspace>
class WorkspaceCache {
 public:
  using Factory = std::unique_ptr<Workspace> (*)(const ProblemShape&);

  // capacity >= 1.
  WorkspaceCache(int capacity, Factory factory,
                 std::size_t max_bytes = std::numeric_limits<std::size_t>::max())
      : capacity_(capacity), max_bytes_(max_bytes), factory_(factory) {
    entries_.reserve(static_cast<std::size_t>(capacity));
  }
  WorkspaceCache(WorkspaceCache&&) noexcept = default;

  // The workspace for `shape`, made (and the least recently used ones evicted) on a miss. Call
  // ReleaseUncached when done with it.
  Workspace& Get(const ProblemShape& shape) {
    ++clock_;
    for (Entry& entry : entries_) {
      if (entry.shape == shape) {
        entry.last_use = clock_;
        return *entry.workspace;
      }
    }
    const std::size_t bytes = WorkspaceBytes(shape);
    if (bytes > max_bytes_) {
      uncached_ = factory_(shape);
      return *uncached_;
    }
    while (!entries_.empty() &&
           (static_cast<int>(entries_.size()) >= capacity_ || bytes_ + bytes > max_bytes_)) {
      EvictOldest();
    }
    entries_.push_back(Entry{shape, factory_(shape), clock_, bytes});
    bytes_ += bytes;
    return *entries_.back().workspace;
  }

  // Frees the workspace Get made for one use, if any.
  void ReleaseUncached() {
    if (uncached_ == nullptr) return;
    uncached_.reset();
    ReturnFreedMemory(max_bytes_);
  }

  int size() const { return static_cast<int>(entries_.size()); }
  std::size_t bytes() const { return bytes_; }
  bool Contains(const ProblemShape& shape) const {
    for (const Entry& entry : entries_) {
      if (entry.shape == shape) return true;
    }
    return false;
  }

 private:
  struct Entry {
    ProblemShape shape;
    std::unique_ptr<Workspace> workspace;
    std::uint64_t last_use = 0;
    std::size_t bytes = 0;
  };

  void EvictOldest() {
    Entry* oldest = &entries_.front();
    for (Entry& entry : entries_) {
      if (entry.last_use < oldest->last_use) oldest = &entry;
    }
    const std::size_t freed = oldest->bytes;
    bytes_ -= freed;
    *oldest = std::move(entries_.back());
    entries_.pop_back();
    ReturnFreedMemory(freed);
  }

  // glibc keeps freed blocks below its mmap threshold (which grows to 32 MiB as large blocks are
  // freed) in the heap: without a trim, RSS would stay at its peak after a large workspace goes.
  // Small ones are not worth the trim's walk over the heap.
  static void ReturnFreedMemory(std::size_t freed) {
#if defined(__GLIBC__)
    if (freed >= (std::size_t{1} << 20)) malloc_trim(0);
#else
    (void)freed;
#endif
  }

  int capacity_;
  std::size_t max_bytes_;
  Factory factory_;
  std::uint64_t clock_ = 0;
  std::size_t bytes_ = 0;
  std::vector<Entry> entries_;
  std::unique_ptr<Workspace> uncached_;
};

}  // namespace mpc

#endif  // MPC_SOLVER_CPU_WORKSPACE_CACHE_H_
