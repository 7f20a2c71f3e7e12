#ifndef MPC_SERVER_CALL_TRACKER_H_
#define MPC_SERVER_CALL_TRACKER_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace mpc {

// Counts the calls being answered, so that a shutdown can refuse new ones and wait for the rest.
class CallTracker {
 public:
  // False once draining: the caller must refuse the call.
  bool TryStart();
  void Finish();
  void StartDraining();
  // Waits until no call is being answered; false on timeout.
  bool AwaitIdle(absl::Duration timeout);

 private:
  absl::Mutex mu_;
  int active_ ABSL_GUARDED_BY(mu_) = 0;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace mpc

#endif  // MPC_SERVER_CALL_TRACKER_H_
