#ifndef MPC_SOLVER_CPU_WORKSPACE_CACHE_H_
#define MPC_SOLVER_CPU_WORKSPACE_CACHE_H_

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "solver/problem.h"

namespace mpc {

// Workspaces keyed by problem shape for one worker thread, at most `capacity` of them: the least
// recently used one is freed to make room. A server sees a handful of shapes in steady state (a
// linear scan of a few entries is cheaper than hashing), but clients choose shapes, so without the
// bound a stream of distinct shapes would grow memory without limit. Not thread-safe.
template <typename Workspace>
class WorkspaceCache {
 public:
  using Factory = std::unique_ptr<Workspace> (*)(const ProblemShape&);

  // capacity >= 1.
  WorkspaceCache(int capacity, Factory factory) : capacity_(capacity), factory_(factory) {
    entries_.reserve(static_cast<std::size_t>(capacity));
  }

  // The workspace for `shape`, made (and the least recently used one evicted) on a miss.
  Workspace& Get(const ProblemShape& shape) {
    ++clock_;
    for (Entry& entry : entries_) {
      if (entry.shape == shape) {
        entry.last_use = clock_;
        return *entry.workspace;
      }
    }
    if (static_cast<int>(entries_.size()) >= capacity_) {
      Entry* oldest = &entries_.front();
      for (Entry& entry : entries_) {
        if (entry.last_use < oldest->last_use) oldest = &entry;
      }
      *oldest = std::move(entries_.back());
      entries_.pop_back();
    }
    entries_.push_back(Entry{shape, factory_(shape), clock_});
    return *entries_.back().workspace;
  }

  int size() const { return static_cast<int>(entries_.size()); }
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
  };

  const int capacity_;
  const Factory factory_;
  std::uint64_t clock_ = 0;
  std::vector<Entry> entries_;
};

}  // namespace mpc

#endif  // MPC_SOLVER_CPU_WORKSPACE_CACHE_H_
