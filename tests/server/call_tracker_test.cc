#include "server/call_tracker.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace mpc {
namespace {

constexpr absl::Duration kTimeout = absl::Seconds(20);

TEST(CallTrackerTest, RefusesNewCallsOnceDraining) {
  CallTracker calls;
  ASSERT_TRUE(calls.TryStart());
  calls.StartDraining();
  EXPECT_FALSE(calls.TryStart());
  calls.Finish();
  EXPECT_FALSE(calls.TryStart());
}

TEST(CallTrackerTest, AwaitIdleWaitsForTheLastActiveCall) {
  CallTracker calls;
  EXPECT_TRUE(calls.AwaitIdle(absl::ZeroDuration()));
  ASSERT_TRUE(calls.TryStart());
  ASSERT_TRUE(calls.TryStart());
  EXPECT_FALSE(calls.AwaitIdle(absl::Milliseconds(10)));
  calls.Finish();
  EXPECT_FALSE(calls.AwaitIdle(absl::Milliseconds(10)));
  calls.Finish();
  EXPECT_TRUE(calls.AwaitIdle(absl::ZeroDuration()));
}

// A drain during a storm of calls from many threads: once AwaitIdle returns, every call that was
// admitted has finished, and what the calls wrote (plain, unsynchronised memory, as a service's
// call state is) is visible to the drainer, which may now tear it down. Under TSan this checks
// that the tracker orders the calls' writes before the drain's return.
TEST(CallTrackerTest, DrainUnderConcurrentCallsSeesEveryAdmittedCallFinished) {
  constexpr int kThreads = 8;
  CallTracker calls;
  std::vector<long> answered(kThreads, 0);  // written by one call thread each, read after the drain
  std::atomic<int> in_call{0};
  std::atomic<bool> refused[kThreads] = {};
  std::atomic<int> threads_started{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      threads_started.fetch_add(1);
      while (calls.TryStart()) {
        in_call.fetch_add(1);
        ++answered[t];
        in_call.fetch_sub(1);
        calls.Finish();
      }
      refused[t].store(true);
    });
  }
  while (threads_started.load() < kThreads) std::this_thread::yield();
  calls.StartDraining();
  ASSERT_TRUE(calls.AwaitIdle(kTimeout));
  EXPECT_EQ(in_call.load(), 0);
  long answered_at_drain = 0;
  for (long count : answered) answered_at_drain += count;  // a race if the drain returned early
  EXPECT_FALSE(calls.TryStart());
  for (std::thread& thread : threads) thread.join();
  long answered_in_all = 0;
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_TRUE(refused[t].load()) << "thread " << t;
    answered_in_all += answered[t];
  }
  EXPECT_EQ(answered_in_all, answered_at_drain) << "a call was answered after the drain returned";
}

}  // namespace
}  // namespace mpc
