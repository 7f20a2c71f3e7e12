#include "server/dynamic_batcher.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service_metrics.h"
#include "tests/testing/fake_backend.h"
#include "tests/testing/metric_value.h"
#include "tests/testing/random_problems.h"
#include "tests/testing/status_matchers.h"

namespace mpc {
namespace {

using ::mpc::testing::FakeBackend;
using ::mpc::testing::IsOk;
using ::mpc::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr absl::Duration kTimeout = absl::Seconds(20);

// Records every job's completions: each must come exactly once.
class Completions {
 public:
  explicit Completions(int jobs) : calls_(jobs, 0), results_(jobs) {}

  absl::AnyInvocable<void(const JobResult&)> Callback(int job) {
    return [this, job](const JobResult& result) {
      absl::MutexLock lock(&mu_);
      ++calls_[job];
      ++total_;
      results_[job] = result;
    };
  }

  // Waits until `count` completions in all; false on timeout.
  bool Await(int count, absl::Duration timeout = kTimeout) {
    struct Args {
      Completions* self;
      int count;
    };
    Args args{this, count};
    bool (*reached)(Args*) = [](Args* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return a->self->total_ >= a->count;
    };
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(reached, &args), timeout);
  }

  int calls(int job) {
    absl::MutexLock lock(&mu_);
    return calls_[job];
  }
  JobResult result(int job) {
    absl::MutexLock lock(&mu_);
    return results_[job];
  }
  int total() {
    absl::MutexLock lock(&mu_);
    return total_;
  }

 private:
  absl::Mutex mu_;
  std::vector<int> calls_ ABSL_GUARDED_BY(mu_);
  std::vector<JobResult> results_ ABSL_GUARDED_BY(mu_);
  int total_ ABSL_GUARDED_BY(mu_) = 0;
};

// Problems that own their storage for the duration of a test.
struct Work {
  std::vector<std::unique_ptr<Problem>> problems;
  std::vector<std::unique_ptr<Solution>> solutions;

  SolveJob Job(const Problem& problem, Completions* completions, int index) {
    problems.push_back(std::make_unique<Problem>(problem));
    solutions.push_back(std::make_unique<Solution>());
    SolveJob job;
    job.kind = JobKind::kSolve;
    job.problem = problems.back().get();
    job.solution = solutions.back().get();
    job.bytes = ApproximateBytes(problem);
    job.done = completions->Callback(index);
    return job;
  }
};

Problem Lqr(int n, int m, int horizon, std::uint64_t seed) {
  return testing::RandomLqrProblem({.state_dim = n, .control_dim = m, .horizon = horizon}, seed);
}

std::vector<SolveJob> One(SolveJob job) {
  std::vector<SolveJob> jobs;
  jobs.push_back(std::move(job));
  return jobs;
}

// A manual clock shared by the test and the batcher.
class ManualClock {
 public:
  absl::Time Now() {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_) = absl::FromUnixSeconds(1000000);
};

DynamicBatcherOptions Options(int max_batch_size, absl::Duration delay) {
  DynamicBatcherOptions options;
  options.batching.max_batch_size = max_batch_size;
  options.batching.max_queue_delay = delay;
  return options;
}

double MetricValue(ServiceMetrics& metrics, const std::string& name,
                   const testing::MetricLabels& labels = {}) {
  return testing::MetricValue(*metrics.registry(), name, labels);
}

TEST(DynamicBatcherTest, RejectsInvalidOptions) {
  FakeBackend backend;
  EXPECT_THAT(DynamicBatcher::Create(Options(0, absl::ZeroDuration()), &backend, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_batch_size")));
  EXPECT_THAT(DynamicBatcher::Create(Options(1, -absl::Milliseconds(1)), &backend, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_queue_delay")));
  DynamicBatcherOptions options = Options(1, absl::ZeroDuration());
  options.max_queue_problems = 0;
  EXPECT_THAT(DynamicBatcher::Create(options, &backend, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_queue_problems")));
  EXPECT_THAT(DynamicBatcher::Create(Options(1, absl::ZeroDuration()), nullptr, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(DynamicBatcherTest, SolvesEveryJobOnceWithItsOwnProblem) {
  FakeBackend backend;
  ServiceMetrics metrics("fake");
  MPC_ASSERT_OK_AND_ASSIGN(
      auto batcher, DynamicBatcher::Create(Options(4, absl::ZeroDuration()), &backend, &metrics));
  constexpr int kJobs = 10;
  Completions completions(kJobs);
  Work work;
  std::vector<SolveJob> jobs;
  for (int i = 0; i < kJobs; ++i) jobs.push_back(work.Job(Lqr(3, 2, 5, i), &completions, i));
  batcher->Submit(std::move(jobs));
  ASSERT_TRUE(completions.Await(kJobs));
  for (int i = 0; i < kJobs; ++i) {
    EXPECT_EQ(completions.calls(i), 1) << i;
    EXPECT_THAT(completions.result(i).status, IsOk());
    EXPECT_GE(completions.result(i).batch_size, 1);
    EXPECT_LE(completions.result(i).batch_size, 4);
    EXPECT_GE(completions.result(i).batch_id, 1u);
    // The fake writes x_init[0] as the cost: each job got its own problem's answer.
    EXPECT_EQ(work.solutions[i]->cost, work.problems[i]->x_init[0]);
  }
  batcher->Stop();
  EXPECT_EQ(MetricValue(metrics, "mpcd_queued_problems"), 0.0);
  EXPECT_EQ(MetricValue(metrics, "mpcd_inflight_problems"), 0.0);
  EXPECT_EQ(MetricValue(metrics, "mpcd_solutions_total", {{"status", "converged"}}), kJobs);
  for (int i = 0; i < kJobs; ++i) EXPECT_EQ(completions.calls(i), 1) << i;
}

TEST(DynamicBatcherTest, GroupsJobsByProblemShapeAcrossSubmits) {
  FakeBackend backend;
  MPC_ASSERT_OK_AND_ASSIGN(
      auto batcher, DynamicBatcher::Create(Options(16, absl::ZeroDuration()), &backend, nullptr));
  Completions completions(6);
  Work work;
  // Hold the backend with a first job, so the others accumulate behind it.
  backend.CloseGate();
  batcher->Submit(One(work.Job(Lqr(2, 1, 4, 0), &completions, 0)));
  ASSERT_TRUE(backend.AwaitLaunches(1, kTimeout));
  // Five more, in separate Submits (as separate requests would), with two shapes interleaved.
  batcher->Submit(One(work.Job(Lqr(3, 2, 5, 1), &completions, 1)));
  batcher->Submit(One(work.Job(Lqr(4, 1, 5, 2), &completions, 2)));
  batcher->Submit(One(work.Job(Lqr(3, 2, 5, 3), &completions, 3)));
  batcher->Submit(One(work.Job(Lqr(4, 1, 5, 4), &completions, 4)));
  batcher->Submit(One(work.Job(Lqr(3, 2, 5, 5), &completions, 5)));
  ASSERT_TRUE(batcher->AwaitQueuedProblems(5, kTimeout));
  backend.OpenGate();
  ASSERT_TRUE(completions.Await(6));

  // One launch per shape, the shape whose oldest job came first going first.
  const std::vector<FakeBackend::Launch> launches = backend.launches();
  ASSERT_EQ(launches.size(), 3u);
  EXPECT_THAT(backend.batch_sizes(), ElementsAre(1, 3, 2));
  for (const FakeBackend::Launch& launch : launches) {
    for (const Problem* problem : launch.problems) {
      EXPECT_EQ(problem->shape, launch.problems.front()->shape);
    }
  }
  EXPECT_EQ(launches[1].problems.front()->shape.state_dim, 3);
  EXPECT_EQ(launches[2].problems.front()->shape.state_dim, 4);
  // Jobs from different Submits reported the same launch.
  EXPECT_EQ(completions.result(1).batch_id, completions.result(5).batch_id);
  EXPECT_EQ(completions.result(1).batch_size, 3);
  EXPECT_EQ(completions.result(2).batch_size, 2);
}

TEST(DynamicBatcherTest, SplitsAQueueAtMaxBatchSize) {
  FakeBackend backend;
  MPC_ASSERT_OK_AND_ASSIGN(
      auto batcher, DynamicBatcher::Create(Options(2, absl::ZeroDuration()), &backend, nullptr));
  Completions completions(6);
  Work work;
  backend.CloseGate();
  batcher->Submit(One(work.Job(Lqr(2, 1, 4, 0), &completions, 0)));
  ASSERT_TRUE(backend.AwaitLaunches(1, kTimeout));
  std::vector<SolveJob> jobs;
  for (int i = 1; i < 6; ++i) jobs.push_back(work.Job(Lqr(2, 1, 4, i), &completions, i));
  batcher->Submit(std::move(jobs));
  backend.OpenGate();
  ASSERT_TRUE(completions.Await(6));
  EXPECT_THAT(backend.batch_sizes(), ElementsAre(1, 2, 2, 1));
}

TEST(DynamicBatcherTest, LaunchesAFullBatchWithoutWaitingForTheDelay) {
  FakeBackend backend;
  MPC_ASSERT_OK_AND_ASSIGN(auto batcher,
                           DynamicBatcher::Create(Options(4, absl::Hours(1)), &backend, nullptr));
  Completions completions(4);
  Work work;
  std::vector<SolveJob> jobs;
  for (int i = 0; i < 4; ++i) jobs.push_back(work.Job(Lqr(2, 1, 4, i), &completions, i));
  batcher->Submit(std::move(jobs));
  // With an hour of delay, only a full batch can be launched within the timeout.
  ASSERT_TRUE(completions.Await(4));
  EXPECT_THAT(backend.batch_sizes(), ElementsAre(4));
}

TEST(DynamicBatcherTest, LaunchesAJobThatAskedToWithoutWaitingForTheDelay) {
  FakeBackend backend;
  MPC_ASSERT_OK_AND_ASSIGN(auto batcher,
                           DynamicBatcher::Create(Options(8, absl::Hours(1)), &backend, nullptr));
  Completions completions(3);
  Work work;
  // Two jobs of one request that did not ask, then one of the same shape that did: with an hour
  // of delay and room for 8, only launch_immediately can launch them within the timeout, and the
  // three share the launch.
  std::vector<SolveJob> jobs;
  for (int i = 0; i < 2; ++i) jobs.push_back(work.Job(Lqr(2, 1, 4, i), &completions, i));
  batcher->Submit(std::move(jobs));
  ASSERT_TRUE(batcher->AwaitQueuedProblems(2, kTimeout));
  SolveJob urgent = work.Job(Lqr(2, 1, 4, 2), &completions, 2);
  urgent.launch_immediately = true;
  batcher->Submit(One(std::move(urgent)));
  ASSERT_TRUE(completions.Await(3));
  EXPECT_THAT(backend.batch_sizes(), ElementsAre(3));
  // The queue no longer counts a job that asked: the next one waits for the delay again.
  SolveJob patient = work.Job(Lqr(2, 1, 4, 3), &completions, 0);
  batcher->Submit(One(std::move(patient)));
  ASSERT_TRUE(batcher->AwaitQueuedProblems(1, kTimeout));
  EXPECT_FALSE(completions.Await(4, absl::Milliseconds(200)));
  EXPECT_EQ(batcher->queued_problems(), 1);
  batcher->Stop();  // launches it (before `completions` and `work` go)
  EXPECT_TRUE(completions.Await(4));
}

TEST(DynamicBatcherTest, WaitsForMaxQueueDelayBeforeLaunchingAPartialBatch) {
  FakeBackend backend;
  const absl::Duration delay = absl::Milliseconds(30);
  MPC_ASSERT_OK_AND_ASSIGN(auto batcher,
                           DynamicBatcher::Create(Options(8, delay), &backend, nullptr));
  Completions completions(2);
  Work work;
  std::vector<SolveJob> jobs;
  for (int i = 0; i < 2; ++i) jobs.push_back(work.Job(Lqr(2, 1, 4, i), &completions, i));
  batcher->Submit(std::move(jobs));
  ASSERT_TRUE(completions.Await(2));
  EXPECT_THAT(backend.batch_sizes(), ElementsAre(2));
  EXPECT_GE(completions.result(0).queue_time, delay);
}

TEST(DynamicBatcherTest, AnswersAJobAlreadyPastItsDeadlineAtSubmit) {
  FakeBackend backend;
  ServiceMetrics metrics("fake");
  MPC_ASSERT_OK_AND_ASSIGN(
      auto batcher, DynamicBatcher::Create(Options(8, absl::ZeroDuration()), &backend, &metrics));
  Completions completions(1);
  Work work;
  SolveJob job = work.Job(Lqr(2, 1, 4, 0), &completions, 0);
  job.deadline = absl::Now() - absl::Milliseconds(1);
  batcher->Submit(One(std::move(job)));
  // Finished on this thread, before Submit returned.
  EXPECT_EQ(completions.calls(0), 1);
  EXPECT_THAT(completions.result(0).status, StatusIs(absl::StatusCode::kDeadlineExceeded));
  batcher->Stop();
  EXPECT_TRUE(backend.launches().empty());
  EXPECT_EQ(MetricValue(metrics, "mpcd_dropped_problems_total", {{"reason", "deadline"}}), 1.0);
}

TEST(DynamicBatcherTest, DropsAJobThatExpiresWhileQueued) {
  FakeBackend backend;
  ManualClock clock;
  DynamicBatcherOptions options = Options(8, absl::ZeroDuration());
  options.clock = [&clock] { return clock.Now(); };
  MPC_ASSERT_OK_AND_ASSIGN(auto batcher, DynamicBatcher::Create(options, &backend, nullptr));
  Completions completions(3);
  Work work;
  backend.CloseGate();
  batcher->Submit(One(work.Job(Lqr(2, 1, 4, 0), &completions, 0)));
  ASSERT_TRUE(backend.AwaitLaunches(1, kTimeout));
  SolveJob expiring = work.Job(Lqr(2, 1, 4, 1), &completions, 1);
  expiring.deadline = clock.Now() + absl::Milliseconds(10);
  batcher->Submit(One(std::move(expiring)));
  SolveJob patient = work.Job(Lqr(2, 1, 4, 2), &completions, 2);
  patient.deadline = clock.Now() + absl::Seconds(10);
  batcher->Submit(One(std::move(patient)));
  ASSERT_TRUE(batcher->AwaitQueuedProblems(2, kTimeout));
  clock.Advance(absl::Milliseconds(20));
  backend.OpenGate();
  ASSERT_TRUE(completions.Await(3));
  EXPECT_THAT(completions.result(0).status, IsOk());
  EXPECT_THAT(completions.result(1).status, StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_EQ(completions.result(1).batch_size, 0);
  EXPECT_THAT(completions.result(2).status, IsOk());
  // The expired job never reached the backend.
  const std::vector<FakeBackend::Launch> launches = backend.launches();
  ASSERT_EQ(launches.size(), 2u);
  EXPECT_EQ(launches[1].problems.size(), 1u);
  EXPECT_EQ(launches[1].problems[0], work.problems[2].get());
}

TEST(DynamicBatcherTest, DropsACancelledJobBeforeLaunch) {
  FakeBackend backend;
  ServiceMetrics metrics("fake");
  MPC_ASSERT_OK_AND_ASSIGN(
      auto batcher, DynamicBatcher::Create(Options(8, absl::ZeroDuration()), &backend, &metrics));
  Completions completions(3);
  Work work;
  std::atomic<bool> cancelled{false};
  backend.CloseGate();
  batcher->Submit(One(work.Job(Lqr(2, 1, 4, 0), &completions, 0)));
  ASSERT_TRUE(backend.AwaitLaunches(1, kTimeout));
  SolveJob leaving = work.Job(Lqr(2, 1, 4, 1), &completions, 1);
  leaving.cancelled = &cancelled;
  batcher->Submit(One(std::move(leaving)));
  batcher->Submit(One(work.Job(Lqr(2, 1, 4, 2), &completions, 2)));
  ASSERT_TRUE(batcher->AwaitQueuedProblems(2, kTimeout));
  cancelled.store(true);
  batcher->Wake();
  backend.OpenGate();
  ASSERT_TRUE(completions.Await(3));
  EXPECT_THAT(completions.result(1).status, StatusIs(absl::StatusCode::kCancelled));
  EXPECT_THAT(completions.result(2).status, IsOk());
  EXPECT_THAT(backend.batch_sizes(), ElementsAre(1, 1));
  EXPECT_EQ(backend.launches()[1].problems[0], work.problems[2].get());
  batcher->Stop();
  EXPECT_EQ(MetricValue(metrics, "mpcd_dropped_problems_total", {{"reason", "cancelled"}}), 1.0);
  EXPECT_EQ(MetricValue(metrics, "mpcd_queued_problems"), 0.0);
}

TEST(DynamicBatcherTest, RejectsAWholeRequestWhenTheQueueIsFull) {
  FakeBackend backend;
  ServiceMetrics metrics("fake");
  DynamicBatcherOptions options = Options(8, absl::ZeroDuration());
  options.max_queue_problems = 3;
  MPC_ASSERT_OK_AND_ASSIGN(auto batcher, DynamicBatcher::Create(options, &backend, &metrics));
  Completions completions(6);
  Work work;
  backend.CloseGate();
  batcher->Submit(One(work.Job(Lqr(2, 1, 4, 0), &completions, 0)));  // in the backend
  ASSERT_TRUE(backend.AwaitLaunches(1, kTimeout));
  std::vector<SolveJob> two;
  for (int i = 1; i <= 2; ++i) two.push_back(work.Job(Lqr(2, 1, 4, i), &completions, i));
  batcher->Submit(std::move(two));  // queued: 2 of 3
  ASSERT_TRUE(batcher->AwaitQueuedProblems(2, kTimeout));
  std::vector<SolveJob> too_many;
  for (int i = 3; i <= 4; ++i) too_many.push_back(work.Job(Lqr(2, 1, 4, i), &completions, i));
  batcher->Submit(std::move(too_many));  // 2 more would make 4 > 3: all or nothing
  EXPECT_THAT(completions.result(3).status,
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("queue full")));
  EXPECT_THAT(completions.result(4).status, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(batcher->queued_problems(), 2);
  batcher->Submit(One(work.Job(Lqr(2, 1, 4, 5), &completions, 5)));  // exactly fills it
  EXPECT_EQ(batcher->queued_problems(), 3);
  backend.OpenGate();
  ASSERT_TRUE(completions.Await(6));
  for (int i : {0, 1, 2, 5}) EXPECT_THAT(completions.result(i).status, IsOk()) << i;
  batcher->Stop();
  EXPECT_EQ(MetricValue(metrics, "mpcd_dropped_problems_total", {{"reason", "queue_full"}}), 2.0);
}

TEST(DynamicBatcherTest, BoundsTheQueueInBytes) {
  FakeBackend backend;
  DynamicBatcherOptions options = Options(8, absl::ZeroDuration());
  const Problem problem = Lqr(2, 1, 4, 0);
  options.max_queue_bytes = ApproximateBytes(problem) + 1;  // room for one queued problem
  MPC_ASSERT_OK_AND_ASSIGN(auto batcher, DynamicBatcher::Create(options, &backend, nullptr));
  Completions completions(3);
  Work work;
  backend.CloseGate();
  batcher->Submit(One(work.Job(problem, &completions, 0)));
  ASSERT_TRUE(backend.AwaitLaunches(1, kTimeout));
  batcher->Submit(One(work.Job(problem, &completions, 1)));
  batcher->Submit(One(work.Job(problem, &completions, 2)));
  EXPECT_THAT(completions.result(2).status,
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("bytes")));
  backend.OpenGate();
  ASSERT_TRUE(completions.Await(3));
  EXPECT_THAT(completions.result(1).status, IsOk());
}

// Finding 6 of issue 13 (fails on the main of that time, which answered UNAVAILABLE "retry with
// backoff"): a request larger than the whole queue can never be accepted, so it must not be told
// to retry.
TEST(DynamicBatcherTest, RefusesForGoodARequestThatCanNeverFit) {
  FakeBackend backend;
  const Problem problem = Lqr(2, 1, 4, 0);
  DynamicBatcherOptions options = Options(8, absl::ZeroDuration());
  options.max_queue_problems = 2;
  options.max_queue_bytes = 2 * ApproximateBytes(problem) + 1;
  MPC_ASSERT_OK_AND_ASSIGN(auto batcher, DynamicBatcher::Create(options, &backend, nullptr));
  Completions completions(5);
  Work work;
  std::vector<SolveJob> three;
  for (int i = 0; i < 3; ++i) three.push_back(work.Job(problem, &completions, i));
  batcher->Submit(std::move(three));
  EXPECT_THAT(completions.result(0).status,
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--max_queue_problems=2")));
  Problem big = Lqr(2, 1, 4, 1);
  big.options.compute_gains = true;
  SolveJob heavy = work.Job(big, &completions, 3);
  heavy.bytes = options.max_queue_bytes + 1;
  batcher->Submit(One(std::move(heavy)));
  EXPECT_THAT(completions.result(3).status,
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--max_queue_bytes=")));
  batcher->Submit(One(work.Job(problem, &completions, 4)));  // what fits still runs
  ASSERT_TRUE(completions.Await(5));
  EXPECT_THAT(completions.result(4).status, IsOk());
}

// Finding 3 of issue 13 (fails on the main of that time: one launch at a time for the whole
// server): a launch that takes long does not hold up a launch of another shape.
TEST(DynamicBatcherTest, RunsSeveralLaunchesAtOnceWhenTheBackendAllows) {
  FakeBackend backend;
  backend.set_max_concurrent_launches(2);
  MPC_ASSERT_OK_AND_ASSIGN(
      auto batcher, DynamicBatcher::Create(Options(8, absl::ZeroDuration()), &backend, nullptr));
  Completions completions(2);
  Work work;
  backend.HoldHorizon(9);
  batcher->Submit(One(work.Job(Lqr(2, 1, 9, 0), &completions, 0)));  // held in the backend
  ASSERT_TRUE(backend.AwaitLaunches(1, kTimeout));
  batcher->Submit(One(work.Job(Lqr(2, 1, 4, 1), &completions, 1)));
  ASSERT_TRUE(completions.Await(1));
  EXPECT_EQ(completions.calls(0), 0);
  EXPECT_THAT(completions.result(1).status, IsOk());
  backend.ReleaseHorizon();
  ASSERT_TRUE(completions.Await(2));
  EXPECT_THAT(completions.result(0).status, IsOk());
}

TEST(DynamicBatcherTest, FailsEveryJobOfAFailedLaunch) {
  FakeBackend backend;
  MPC_ASSERT_OK_AND_ASSIGN(
      auto batcher, DynamicBatcher::Create(Options(8, absl::ZeroDuration()), &backend, nullptr));
  Completions completions(3);
  Work work;
  backend.CloseGate();
  backend.FailNextLaunch(absl::InternalError("device lost"));
  batcher->Submit(One(work.Job(Lqr(2, 1, 4, 0), &completions, 0)));
  ASSERT_TRUE(backend.AwaitLaunches(1, kTimeout));
  std::vector<SolveJob> jobs;
  for (int i = 1; i <= 2; ++i) jobs.push_back(work.Job(Lqr(2, 1, 4, i), &completions, i));
  batcher->Submit(std::move(jobs));
  ASSERT_TRUE(batcher->AwaitQueuedProblems(2, kTimeout));
  backend.FailNextLaunch(absl::InternalError("device lost again"));
  backend.OpenGate();
  ASSERT_TRUE(completions.Await(3));
  for (int i = 0; i < 3; ++i) {
    EXPECT_THAT(completions.result(i).status,
                StatusIs(absl::StatusCode::kInternal, HasSubstr("device lost")));
    EXPECT_EQ(completions.calls(i), 1);
  }
}

TEST(DynamicBatcherTest, StopLaunchesWhatIsQueuedAndRejectsNewWork) {
  FakeBackend backend;
  MPC_ASSERT_OK_AND_ASSIGN(auto batcher,
                           DynamicBatcher::Create(Options(8, absl::Hours(1)), &backend, nullptr));
  Completions completions(4);
  Work work;
  std::vector<SolveJob> jobs;
  for (int i = 0; i < 3; ++i) jobs.push_back(work.Job(Lqr(2, 1, 4, i), &completions, i));
  batcher->Submit(std::move(jobs));
  ASSERT_TRUE(batcher->AwaitQueuedProblems(3, kTimeout));
  batcher->Stop();  // does not wait the hour: the queue is flushed
  EXPECT_EQ(completions.total(), 3);
  for (int i = 0; i < 3; ++i) EXPECT_THAT(completions.result(i).status, IsOk());
  EXPECT_THAT(backend.batch_sizes(), ElementsAre(3));
  batcher->Submit(One(work.Job(Lqr(2, 1, 4, 3), &completions, 3)));
  EXPECT_THAT(completions.result(3).status,
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("stopping")));
  batcher->Stop();  // idempotent
  EXPECT_EQ(completions.total(), 4);
}

TEST(DynamicBatcherTest, NeverMixesSolveAndBackwardJobs) {
  FakeBackend backend;
  MPC_ASSERT_OK_AND_ASSIGN(
      auto batcher, DynamicBatcher::Create(Options(8, absl::ZeroDuration()), &backend, nullptr));
  Completions completions(5);
  Work work;
  backend.CloseGate();
  batcher->Submit(One(work.Job(Lqr(2, 1, 4, 0), &completions, 0)));
  ASSERT_TRUE(backend.AwaitLaunches(1, kTimeout));
  const Problem problem = Lqr(2, 1, 4, 1);
  std::vector<BackwardProblem> backward(2);
  std::vector<ProblemGradient> gradients(2);
  for (int i = 0; i < 2; ++i) {
    batcher->Submit(One(work.Job(problem, &completions, 1 + i)));
    backward[i].problem = work.problems.back().get();
    SolveJob job;
    job.kind = JobKind::kBackward;
    job.backward = &backward[i];
    job.gradient = &gradients[i];
    job.done = completions.Callback(3 + i);
    batcher->Submit(One(std::move(job)));
  }
  ASSERT_TRUE(batcher->AwaitQueuedProblems(4, kTimeout));
  backend.OpenGate();
  ASSERT_TRUE(completions.Await(5));
  const std::vector<FakeBackend::Launch> launches = backend.launches();
  ASSERT_EQ(launches.size(), 3u);
  EXPECT_FALSE(launches[1].backward);
  EXPECT_EQ(launches[1].problems.size(), 2u);
  EXPECT_TRUE(launches[2].backward);
  EXPECT_EQ(launches[2].problems.size(), 2u);
  EXPECT_EQ(gradients[0].x_init, std::vector<double>{problem.x_init[0]});
}

// Many threads submit requests of mixed shapes, some cancelled, some with short deadlines, into a
// small queue: every job is completed exactly once, whatever path it takes.
TEST(DynamicBatcherTest, CompletesEveryJobExactlyOnceUnderConcurrentLoad) {
  FakeBackend backend;
  ServiceMetrics metrics("fake");
  DynamicBatcherOptions options = Options(8, absl::Microseconds(100));
  options.max_queue_problems = 64;
  MPC_ASSERT_OK_AND_ASSIGN(auto batcher, DynamicBatcher::Create(options, &backend, &metrics));
  constexpr int kThreads = 8;
  constexpr int kRequestsPerThread = 150;
  constexpr int kJobsPerRequest = 3;
  constexpr int kJobs = kThreads * kRequestsPerThread * kJobsPerRequest;
  Completions completions(kJobs);
  const std::vector<Problem> shapes = {Lqr(2, 1, 4, 0), Lqr(3, 1, 4, 1), Lqr(2, 2, 6, 2)};
  std::vector<Solution> solutions(kJobs);
  auto cancelled = std::make_unique<std::atomic<bool>[]>(kThreads * kRequestsPerThread);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRequestsPerThread; ++r) {
        const int request = t * kRequestsPerThread + r;
        cancelled[request].store(false);
        std::vector<SolveJob> jobs;
        for (int j = 0; j < kJobsPerRequest; ++j) {
          const int index = request * kJobsPerRequest + j;
          SolveJob job;
          job.problem = &shapes[(request + j) % shapes.size()];
          job.solution = &solutions[index];
          job.bytes = 100;
          job.cancelled = &cancelled[request];
          if (r % 7 == 3) job.deadline = absl::Now() + absl::Microseconds(50);
          job.done = completions.Callback(index);
          jobs.push_back(std::move(job));
        }
        batcher->Submit(std::move(jobs));
        if (r % 5 == 1) {
          cancelled[request].store(true);
          batcher->Wake();
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_TRUE(completions.Await(kJobs, absl::Seconds(60)));
  batcher->Stop();
  int ok = 0;
  for (int i = 0; i < kJobs; ++i) {
    ASSERT_EQ(completions.calls(i), 1) << "job " << i;
    const absl::StatusCode code = completions.result(i).status.code();
    EXPECT_THAT(code, ::testing::AnyOf(absl::StatusCode::kOk, absl::StatusCode::kCancelled,
                                       absl::StatusCode::kDeadlineExceeded,
                                       absl::StatusCode::kUnavailable));
    if (code == absl::StatusCode::kOk) ++ok;
  }
  int launched = 0;
  for (int size : backend.batch_sizes()) {
    EXPECT_LE(size, 8);
    launched += size;
  }
  EXPECT_EQ(launched, ok);
  EXPECT_GT(ok, 0);
  EXPECT_EQ(MetricValue(metrics, "mpcd_queued_problems"), 0.0);
  EXPECT_EQ(MetricValue(metrics, "mpcd_inflight_problems"), 0.0);
}

}  // namespace
}  // namespace mpc
