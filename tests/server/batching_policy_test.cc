#include "server/batching_policy.h"

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mpc {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1000000);

QueueSnapshot Queue(int size, absl::Duration waited, absl::Time deadline = absl::InfiniteFuture()) {
  return QueueSnapshot{size, kNow - waited, deadline};
}

struct PolicyCase {
  std::string name;
  std::vector<QueueSnapshot> queues;
  BatchingOptions options;
  bool flush = false;
  BatchDecision expected;
};

BatchingOptions Options(int max_batch_size, absl::Duration delay) {
  BatchingOptions options;
  options.max_batch_size = max_batch_size;
  options.max_queue_delay = delay;
  return options;
}

std::string Describe(const BatchDecision& decision) {
  if (const RunBatch* run = std::get_if<RunBatch>(&decision)) {
    return "RunBatch{queue " + std::to_string(run->queue) + ", size " + std::to_string(run->size) +
           "}";
  }
  return "WaitFor{" + absl::FormatDuration(std::get<WaitFor>(decision).duration) + "}";
}

TEST(BatchingPolicy, DecidesEveryCaseOfTheTable) {
  const absl::Duration ms = absl::Milliseconds(1);
  const std::vector<PolicyCase> cases = {
      {"no queues: wait for work", {}, Options(8, ms), false, WaitFor{absl::InfiniteDuration()}},
      {"young, small queue: wait out the rest of the delay",
       {Queue(3, absl::Microseconds(400))},
       Options(8, ms),
       false,
       WaitFor{absl::Microseconds(600)}},
      {"a queue holding a job that asked to launch now launches before its delay",
       {QueueSnapshot{3, kNow - absl::Microseconds(400), absl::InfiniteFuture(), true}},
       Options(8, ms),
       false,
       RunBatch{0, 3}},
      {"full queue launches at once",
       {Queue(8, absl::ZeroDuration())},
       Options(8, ms),
       false,
       RunBatch{0, 8}},
      {"over-full queue launches max_batch_size",
       {Queue(20, absl::ZeroDuration())},
       Options(8, ms),
       false,
       RunBatch{0, 8}},
      {"oldest waited exactly the delay: launch what there is",
       {Queue(3, ms)},
       Options(8, ms),
       false,
       RunBatch{0, 3}},
      {"zero delay launches a single job",
       {Queue(1, absl::ZeroDuration())},
       Options(8, absl::ZeroDuration()),
       false,
       RunBatch{0, 1}},
      {"flush launches young queues too",
       {Queue(2, absl::ZeroDuration())},
       Options(8, absl::Hours(1)),
       true,
       RunBatch{0, 2}},
      {"among ready queues the oldest head goes first",
       {Queue(8, absl::Microseconds(10)), Queue(2, absl::Milliseconds(5))},
       Options(8, ms),
       false,
       RunBatch{1, 2}},
      {"a full queue goes before an older queue that is not due yet",
       {Queue(1, absl::Microseconds(900)), Queue(8, absl::Microseconds(10))},
       Options(8, ms),
       false,
       RunBatch{1, 8}},
      {"ties go to the lower index",
       {Queue(8, ms), Queue(8, ms)},
       Options(8, ms),
       false,
       RunBatch{0, 8}},
      {"wait for the first queue to become due",
       {Queue(1, absl::Microseconds(100)), Queue(1, absl::Microseconds(700))},
       Options(8, ms),
       false,
       WaitFor{absl::Microseconds(300)}},
      {"wake for an earlier deadline",
       {Queue(1, absl::ZeroDuration(), kNow + absl::Microseconds(50))},
       Options(8, ms),
       false,
       WaitFor{absl::Microseconds(50)}},
      {"a deadline later than the delay does not matter",
       {Queue(1, absl::ZeroDuration(), kNow + absl::Seconds(5))},
       Options(8, ms),
       false,
       WaitFor{ms}},
      {"max_batch_size 1 launches one at a time",
       {Queue(5, absl::ZeroDuration())},
       Options(1, absl::Hours(1)),
       false,
       RunBatch{0, 1}},
      {"empty snapshots are skipped",
       {Queue(0, absl::Hours(1)), Queue(2, absl::ZeroDuration())},
       Options(8, ms),
       false,
       WaitFor{ms}},
  };
  for (const PolicyCase& c : cases) {
    const BatchDecision decision = DecideBatch(c.queues, kNow, c.options, c.flush);
    EXPECT_EQ(decision, c.expected)
        << c.name << ": got " << Describe(decision) << ", want " << Describe(c.expected);
  }
}

TEST(BatchingPolicy, NeverWaitsANegativeTime) {
  // A deadline already in the past (the batcher prunes those first, but the policy must not
  // return a negative wait if one slips through).
  const BatchDecision decision =
      DecideBatch({Queue(1, absl::ZeroDuration(), kNow - absl::Seconds(1))}, kNow,
                  Options(8, absl::Milliseconds(1)), false);
  EXPECT_EQ(decision, BatchDecision(WaitFor{absl::ZeroDuration()}));
}

TEST(BatchingPolicy, TreatsANonPositiveMaxBatchSizeAsOne) {
  EXPECT_EQ(DecideBatch({Queue(3, absl::ZeroDuration())}, kNow, Options(0, absl::Hours(1)), false),
            BatchDecision(RunBatch{0, 1}));
}

}  // namespace
}  // namespace mpc
