#ifndef MPC_SOLVER_LRU_MAP_H_
#define MPC_SOLVER_LRU_MAP_H_

// A map from string keys to shared values that keeps the most recently used ones within a
// capacity: each entry has a cost (1 for a count of entries, its bytes for a memory bound), and
// inserting evicts the least recently used entries until the costs sum to at most the capacity.
// Not synchronised: its owner locks.

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"

namespace mpc {

template <typename Value>
class LruMap {
 public:
  explicit LruMap(std::int64_t capacity) : capacity_(capacity) {}

  // The value of `key`, now the most recently used; null when there is none.
  std::shared_ptr<const Value> Find(std::string_view key) {
    auto it = by_key_.find(key);
    if (it == by_key_.end()) return nullptr;
    entries_.splice(entries_.begin(), entries_, it->second);
    return it->second->value;
  }

  // Keeps `value` under `key` (replacing an entry of that key) as the most recently used,
  // evicting the least recently used entries until the costs fit the capacity. An entry that
  // alone costs more than the capacity is not kept (and evicts nothing): false.
  bool Insert(std::string key, std::shared_ptr<const Value> value, std::int64_t cost) {
    Erase(key);
    if (cost > capacity_) return false;
    while (total_cost_ + cost > capacity_) Erase(entries_.back().key);
    entries_.push_front(Entry{std::move(key), std::move(value), cost});
    by_key_[entries_.front().key] = entries_.begin();
    total_cost_ += cost;
    return true;
  }

  std::int64_t size() const { return static_cast<std::int64_t>(entries_.size()); }
  std::int64_t total_cost() const { return total_cost_; }

 private:
  struct Entry {
    std::string key;
    std::shared_ptr<const Value> value;
    std::int64_t cost = 0;
  };
  using Entries = std::list<Entry>;

  void Erase(std::string_view key) {
    auto it = by_key_.find(key);
    if (it == by_key_.end()) return;
    total_cost_ -= it->second->cost;
    const auto entry = it->second;
    by_key_.erase(it);
    entries_.erase(entry);
  }

  const std::int64_t capacity_;
  Entries entries_;  // most recently used first
  absl::flat_hash_map<std::string_view, typename Entries::iterator> by_key_;  // keys in entries_
  std::int64_t total_cost_ = 0;
};

}  // namespace mpc

#endif  // MPC_SOLVER_LRU_MAP_H_
