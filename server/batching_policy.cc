#include "server/batching_policy.h"

#include <algorithm>

namespace mpc {

BatchDecision DecideBatch(absl::Span<const QueueSnapshot> queues, absl::Time now,
                          const BatchingOptions& options, bool flush) {
  const int max_batch_size = std::max(1, options.max_batch_size);
  int ready = -1;
  absl::Time wake = absl::InfiniteFuture();
  for (int i = 0; i < static_cast<int>(queues.size()); ++i) {
    const QueueSnapshot& queue = queues[i];
    if (queue.size <= 0) continue;
    const absl::Time due = queue.oldest_enqueued + options.max_queue_delay;
    const bool is_ready = flush || queue.launch_now || queue.size >= max_batch_size || due <= now;
    if (is_ready) {
      if (ready < 0 || queue.oldest_enqueued < queues[ready].oldest_enqueued) ready = i;
    } else {
      wake = std::min(wake, due);
    }
    wake = std::min(wake, queue.earliest_deadline);
  }
  if (ready >= 0) return RunBatch{ready, std::min(queues[ready].size, max_batch_size)};
  if (wake == absl::InfiniteFuture()) return WaitFor{absl::InfiniteDuration()};
  return WaitFor{std::max(absl::ZeroDuration(), wake - now)};
}

}  // namespace mpc
