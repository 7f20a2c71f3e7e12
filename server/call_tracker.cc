#include "server/call_tracker.h"

namespace mpc {

bool CallTracker::TryStart() {
  absl::MutexLock lock(&mu_);
  if (draining_) return false;
  ++active_;
  return true;
}

void CallTracker::Finish() {
  absl::MutexLock lock(&mu_);
  --active_;
}

void CallTracker::StartDraining() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
}

bool CallTracker::AwaitIdle(absl::Duration timeout) {
  bool (*idle)(int*) = [](int* active) { return *active == 0; };
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(idle, &active_), timeout);
}

}  // namespace mpc
