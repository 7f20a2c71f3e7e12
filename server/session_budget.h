#ifndef MPC_SERVER_SESSION_BUDGET_H_
#define MPC_SERVER_SESSION_BUDGET_H_

// The memory Control sessions hold between steps (their templates, plans and last messages),
// counted against one limit for the whole server (--max_session_bytes): an idle session is
// invisible to the batcher's queue bound, so without this a few clients could pin gigabytes.

#include <atomic>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/service_metrics.h"

namespace mpc {

class SessionBudget {
 public:
  // `metrics` may be null; otherwise it must outlive the budget.
  SessionBudget(std::int64_t limit, ServiceMetrics* metrics) : limit_(limit), metrics_(metrics) {}

  // Takes `bytes` for one session. INVALID_ARGUMENT if one session alone is over the limit (it can
  // never fit), RESOURCE_EXHAUSTED if the sessions open now leave too little.
  absl::Status Reserve(std::int64_t bytes) {
    if (bytes > limit_) {
      return absl::InvalidArgumentError(absl::StrCat("request: this session needs ", bytes,
                                                     " bytes, over the server's "
                                                     "--max_session_bytes=",
                                                     limit_, " for all sessions together"));
    }
    std::int64_t used = used_.load(std::memory_order_relaxed);
    do {
      if (used + bytes > limit_) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "sessions: the open Control sessions hold ", used, " bytes; this one needs ", bytes,
            " more, over --max_session_bytes=", limit_, "; retry later"));
      }
    } while (!used_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed));
    if (metrics_ != nullptr) metrics_->AddSessionBytes(bytes);
    return absl::OkStatus();
  }

  void Release(std::int64_t bytes) {
    used_.fetch_sub(bytes, std::memory_order_relaxed);
    if (metrics_ != nullptr) metrics_->AddSessionBytes(-bytes);
  }

  std::int64_t used() const { return used_.load(std::memory_order_relaxed); }

 private:
  const std::int64_t limit_;
  ServiceMetrics* const metrics_;
  std::atomic<std::int64_t> used_{0};
};

}  // namespace mpc

#endif  // MPC_SERVER_SESSION_BUDGET_H_
