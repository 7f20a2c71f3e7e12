#include "solver/cpu/cpu_backend.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "solver/cpu/ilqr.h"
#include "solver/cpu/implicit_backward.h"
#include "solver/cpu/thread_pool.h"
#include "solver/cpu/workspace_cache.h"
#include "solver/gradients.h"
#include "solver/make_backend.h"
#include "solver/solution_jacobians.h"
#include "tests/testing/random_problems.h"
#include "tests/testing/solve_batch.h"
#include "tests/testing/status_matchers.h"

namespace mpc {
namespace {

using testing::IsOk;
using testing::RandomCartpoleProblem;
using testing::RandomLqrProblem;
using testing::RandomModelOptions;
using testing::RandomPendulumProblem;
using testing::SolveAll;
using testing::StatusIs;

std::vector<Problem> MixedBatch(int copies) {
  std::vector<Problem> problems;
  for (int seed = 0; seed < copies; ++seed) {
    RandomModelOptions model;
    problems.push_back(RandomPendulumProblem(model, seed));
    model.horizon = 25;
    problems.push_back(RandomCartpoleProblem(model, seed));
    problems.push_back(RandomLqrProblem(
        {.state_dim = 5, .control_dim = 2, .horizon = 10, .bounded = seed % 2 == 0}, seed));
  }
  return problems;
}

TEST(CpuBackendTest, EveryProblemIsBitwiseTheSameAloneOrInAnyBatch) {
  const std::vector<Problem> problems = MixedBatch(6);
  std::vector<Solution> alone;
  for (const Problem& p : problems) alone.push_back(SolveProblem(p));

  for (int threads : {1, 2, 4}) {
    auto backend = CpuBackend::Create({threads});
    ASSERT_THAT(backend.status(), IsOk());
    std::vector<const Problem*> order;
    for (const Problem& p : problems) order.push_back(&p);
    // Forward, reversed, and with every problem twice.
    for (int arrangement = 0; arrangement < 3; ++arrangement) {
      std::vector<const Problem*> batch = order;
      if (arrangement == 1) std::reverse(batch.begin(), batch.end());
      if (arrangement == 2) batch.insert(batch.end(), order.begin(), order.end());
      const std::vector<Solution> solved = SolveAll(**backend, batch);
      for (size_t i = 0; i < batch.size(); ++i) {
        const size_t original = batch[i] - problems.data();
        EXPECT_EQ(solved[i].x, alone[original].x) << "threads " << threads << " problem " << i;
        EXPECT_EQ(solved[i].u, alone[original].u);
        EXPECT_EQ(solved[i].cost, alone[original].cost);
        EXPECT_EQ(solved[i].status, alone[original].status);
        EXPECT_EQ(solved[i].iterations, alone[original].iterations);
      }
    }
  }
}

// The Jacobians a problem's options ask for are computed by the launch itself (DESIGN §11: math
// inside a backend launch), equal to ComputeSolutionJacobians at the returned solution.
TEST(CpuBackendTest, SolveBatchComputesTheRequestedJacobians) {
  std::vector<Problem> problems = MixedBatch(2);
  const GradientMode modes[] = {GradientMode::kDefault, GradientMode::kFullChain,
                                GradientMode::kExact};
  for (std::size_t i = 0; i < problems.size(); ++i) {
    SolverOptions& options = problems[i].options;
    options.compute_x_init_jacobian = i % 4 != 3;  // the last of every four asks for none
    options.compute_params_jacobian = i % 2 == 0;  // ignored for linear dynamics
    options.jacobian_mode = modes[i % 3];
  }
  auto backend = CpuBackend::Create({2});
  ASSERT_THAT(backend.status(), IsOk());
  std::vector<const Problem*> batch;
  for (const Problem& p : problems) batch.push_back(&p);
  // Stale Jacobians in a reused Solution must not survive a launch that asks for none.
  std::vector<Solution> solved(problems.size());
  for (Solution& s : solved) s.x_init_jacobian.assign(3, 7.0);
  std::vector<Solution*> outputs;
  for (Solution& s : solved) outputs.push_back(&s);
  ASSERT_THAT((*backend)->SolveBatch(batch, outputs), IsOk());

  int with_params = 0;
  for (std::size_t i = 0; i < problems.size(); ++i) {
    const Problem& p = problems[i];
    const bool model = !p.shape.dynamics.is_linear();
    JacobianRequest request;
    request.x_init = p.options.compute_x_init_jacobian;
    request.params = p.options.compute_params_jacobian && model;
    request.mode = p.options.jacobian_mode;
    if (!request.x_init && !request.params) {
      EXPECT_TRUE(solved[i].x_init_jacobian.empty()) << "problem " << i;
      EXPECT_TRUE(solved[i].params_jacobian.empty()) << "problem " << i;
      continue;
    }
    SolutionJacobians expected;
    ASSERT_THAT(ComputeSolutionJacobians(p, solved[i].x, solved[i].u, request, &expected), IsOk());
    const std::size_t T = p.shape.horizon;
    const std::size_t nt = p.shape.tau_dim();
    EXPECT_EQ(solved[i].x_init_jacobian.size(),
              request.x_init ? T * nt * p.shape.state_dim : std::size_t{0});
    EXPECT_EQ(solved[i].x_init_jacobian, expected.x_init) << "problem " << i;
    EXPECT_EQ(solved[i].params_jacobian, expected.params) << "problem " << i;
    EXPECT_EQ(solved[i].jacobian_diagnostics.status, expected.diagnostics.status);
    EXPECT_EQ(solved[i].jacobian_diagnostics.active_controls, expected.diagnostics.active_controls);
    EXPECT_EQ(solved[i].jacobian_diagnostics.stationarity_residual,
              expected.diagnostics.stationarity_residual);
    if (request.params) {
      EXPECT_FALSE(solved[i].params_jacobian.empty());
      ++with_params;
    }
  }
  EXPECT_GT(with_params, 0);
}

// What the CUDA backend runs on its CPU pool after a device solve: Jacobians of solutions solved
// elsewhere, the same as SolveBatch computes; with none asked for, stale arrays are emptied.
TEST(CpuBackendTest, ComputeJacobiansOfSolutionsSolvedElsewhere) {
  std::vector<Problem> problems = MixedBatch(2);
  std::vector<const Problem*> batch;
  for (const Problem& p : problems) batch.push_back(&p);
  auto backend = CpuBackend::Create({3});
  ASSERT_THAT(backend.status(), IsOk());
  std::vector<Solution> solved = SolveAll(**backend, batch);    // no Jacobians asked for yet
  for (Solution& s : solved) s.params_jacobian.assign(2, 1.0);  // stale
  std::vector<Solution*> outputs;
  for (Solution& s : solved) outputs.push_back(&s);
  (*backend)->ComputeJacobians(batch, outputs);
  for (const Solution& s : solved) EXPECT_TRUE(s.params_jacobian.empty());

  for (Problem& p : problems) {
    p.options.compute_x_init_jacobian = true;
    p.options.compute_params_jacobian = true;
    p.options.jacobian_mode = GradientMode::kExact;
  }
  (*backend)->ComputeJacobians(batch, outputs);
  const std::vector<Solution> reference = SolveAll(**backend, batch);  // computed in the launch
  for (std::size_t i = 0; i < problems.size(); ++i) {
    EXPECT_FALSE(solved[i].x_init_jacobian.empty());
    EXPECT_EQ(solved[i].x_init_jacobian, reference[i].x_init_jacobian) << "problem " << i;
    EXPECT_EQ(solved[i].params_jacobian, reference[i].params_jacobian) << "problem " << i;
    EXPECT_EQ(solved[i].jacobian_diagnostics.status, reference[i].jacobian_diagnostics.status);
  }
}

TEST(SolutionJacobiansTest, ANonFiniteSolutionGetsZerosAndNotFinite) {
  RandomModelOptions model;
  model.horizon = 7;
  Problem problem = RandomCartpoleProblem(model, 3);
  problem.options.compute_x_init_jacobian = true;
  problem.options.compute_params_jacobian = true;
  Solution solution = SolveProblem(problem);
  ComputeRequestedJacobians(problem, &solution);
  EXPECT_NE(solution.jacobian_diagnostics.status, GradientStatus::kNotFinite);
  solution.u[2] = std::nan("");
  ComputeRequestedJacobians(problem, &solution);
  EXPECT_EQ(solution.jacobian_diagnostics.status, GradientStatus::kNotFinite);
  ASSERT_EQ(solution.x_init_jacobian.size(), 7u * 6u * 5u);
  ASSERT_EQ(solution.params_jacobian.size(), 7u * 6u * 4u);  // cartpole has 4 params
  for (double v : solution.x_init_jacobian) EXPECT_EQ(v, 0.0);
  for (double v : solution.params_jacobian) EXPECT_EQ(v, 0.0);
  // Asking for none empties them again.
  problem.options.compute_x_init_jacobian = false;
  problem.options.compute_params_jacobian = false;
  ComputeRequestedJacobians(problem, &solution);
  EXPECT_TRUE(solution.x_init_jacobian.empty());
  EXPECT_TRUE(solution.params_jacobian.empty());
  EXPECT_EQ(solution.jacobian_diagnostics.status, GradientStatus::kOk);
}

TEST(CpuBackendTest, RejectsMismatchedSpans) {
  auto backend = CpuBackend::Create({1});
  ASSERT_THAT(backend.status(), IsOk());
  const Problem problem = RandomLqrProblem({}, 1);
  const Problem* problems[] = {&problem};
  EXPECT_THAT((*backend)->SolveBatch(problems, {}), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(CpuBackendTest, EmptyBatchIsFine) {
  auto backend = CpuBackend::Create({2});
  ASSERT_THAT(backend.status(), IsOk());
  EXPECT_THAT((*backend)->SolveBatch({}, {}), IsOk());
}

TEST(CpuBackendTest, NegativeThreadCountIsRejected) {
  EXPECT_THAT(CpuBackend::Create({-1}).status(), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(CpuBackendTest, KeepsAtMostMaxCachedShapesWorkspacesAndStaysExact) {
  // Four shapes through a cache of two, in an order that evicts and re-creates workspaces.
  std::vector<Problem> problems;
  for (int seed = 0; seed < 3; ++seed) {
    for (int state_dim : {2, 3, 4, 5}) {
      problems.push_back(RandomLqrProblem(
          {.state_dim = state_dim, .control_dim = 1, .horizon = 6, .bounded = true}, seed));
    }
  }
  auto backend = CpuBackend::Create({.threads = 1, .max_cached_shapes = 2});
  ASSERT_THAT(backend.status(), IsOk());
  for (const Problem& problem : problems) {
    const std::vector<Solution> solved = SolveAll(**backend, {&problem});
    const Solution fresh = SolveProblem(problem);
    EXPECT_EQ(solved[0].x, fresh.x);
    EXPECT_EQ(solved[0].u, fresh.u);
    EXPECT_EQ(solved[0].iterations, fresh.iterations);
    EXPECT_LE((*backend)->cached_solve_workspaces(), 2);
  }
  EXPECT_EQ((*backend)->cached_solve_workspaces(), 2);
  EXPECT_THAT(CpuBackend::Create({.threads = 1, .max_cached_shapes = 0}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

ProblemShape LinearShape(int state_dim, int horizon) {
  ProblemShape shape;
  shape.dynamics = DynamicsId::Linear();
  shape.state_dim = state_dim;
  shape.control_dim = 1;
  shape.horizon = horizon;
  return shape;
}

// A stand-in workspace that records how many were made.
struct CountedWorkspace {
  static inline int made = 0;
  static std::unique_ptr<CountedWorkspace> Make(const ProblemShape&) {
    ++made;
    return std::make_unique<CountedWorkspace>();
  }
};

TEST(WorkspaceCacheTest, EvictsTheLeastRecentlyUsedShape) {
  CountedWorkspace::made = 0;
  WorkspaceCache<CountedWorkspace> cache(2, &CountedWorkspace::Make);
  const auto shape = [](int n) { return LinearShape(n, 5); };
  CountedWorkspace* a = &cache.Get(shape(1));
  cache.Get(shape(2));
  EXPECT_EQ(&cache.Get(shape(1)), a);  // a hit returns the same workspace: nothing made
  EXPECT_EQ(CountedWorkspace::made, 2);
  cache.Get(shape(3));  // full: shape 2 was used least recently
  EXPECT_EQ(CountedWorkspace::made, 3);
  EXPECT_EQ(cache.size(), 2);
  EXPECT_TRUE(cache.Contains(shape(1)));
  EXPECT_FALSE(cache.Contains(shape(2)));
  EXPECT_TRUE(cache.Contains(shape(3)));
}

TEST(MakeBackendTest, ParsesKindsAndRefusesCudaWithoutIt) {
  EXPECT_EQ(*ParseBackendKind("cpu"), BackendKind::kCpu);
  EXPECT_EQ(*ParseBackendKind("auto"), BackendKind::kAuto);
  EXPECT_THAT(ParseBackendKind("tpu").status(), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(*ParseCudaPrecision("float64"), CudaPrecision::kFloat64);
  EXPECT_EQ(*ParseCudaPrecision("float32"), CudaPrecision::kFloat32);
  EXPECT_THAT(ParseCudaPrecision("half").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("float32")));
  auto automatic = MakeBackend(BackendKind::kAuto, 1);
  ASSERT_THAT(automatic.status(), IsOk());
  EXPECT_EQ((*automatic)->name(), CudaAvailable() ? "cuda" : "cpu");
  if (!CudaAvailable()) {
    // Without a device (or without CUDA in the build) asking for cuda fails with a message that
    // names the way out, never a crash.
    EXPECT_THAT(MakeBackend(BackendKind::kCuda, 1).status(),
                StatusIs(::testing::AnyOf(absl::StatusCode::kFailedPrecondition,
                                          absl::StatusCode::kUnimplemented),
                         ::testing::HasSubstr("--backend=cpu")));
  }
}

TEST(ThreadPoolTest, VisitsEveryIndexExactlyOnce) {
  ThreadPool pool(3);
  EXPECT_EQ(pool.size(), 3);
  for (int count : {0, 1, 2, 7, 1000}) {
    std::vector<std::atomic<int>> visits(count);
    std::atomic<int> max_worker{0};
    pool.ParallelFor(count, [&](int worker, int i) {
      visits[i].fetch_add(1);
      int seen = max_worker.load();
      while (worker > seen && !max_worker.compare_exchange_weak(seen, worker)) {
      }
    });
    for (int i = 0; i < count; ++i) EXPECT_EQ(visits[i].load(), 1) << "index " << i;
    EXPECT_LT(max_worker.load(), pool.size());
  }
}

// Issue 13, finding 3 (fails on the main of that time: a solve ran to max_iterations whatever its
// caller's deadline). A problem whose interrupt fires mid-solve stops with kDeadline and its best
// iterate so far; one whose interrupt never fires gives the same bits as without one.
TEST(SolveInterruptTest, StopsWithTheBestIterateAndChangesNothingOtherwise) {
  Problem problem = RandomLqrProblem({.state_dim = 30, .control_dim = 4, .horizon = 400}, 3);
  problem.options.max_iterations = 100000;
  problem.options.tolerance = 0.0;  // never converges: only the interrupt ends it early
  problem.options.not_improved_limit = 1000000;
  const absl::Time start = absl::Now();
  const SolveInterrupt interrupt{start + absl::Milliseconds(200), nullptr};
  problem.interrupt = &interrupt;
  const Solution stopped = SolveProblem(problem);
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(stopped.status, SolveStatus::kDeadline);
  EXPECT_GE(stopped.iterations, 1);
  EXPECT_LT(stopped.iterations, 100000);
  EXPECT_TRUE(std::isfinite(stopped.cost));
  EXPECT_LT(took, absl::Seconds(5));

  // The same solve cut to the iterations it reached, without an interrupt, agrees bit for bit.
  problem.options.max_iterations = stopped.iterations;
  problem.interrupt = nullptr;
  const Solution plain = SolveProblem(problem);
  const SolveInterrupt never{absl::InfiniteFuture(), nullptr};
  problem.interrupt = &never;
  const Solution watched = SolveProblem(problem);
  EXPECT_EQ(watched.x, plain.x);
  EXPECT_EQ(watched.u, plain.u);
  EXPECT_EQ(watched.status, SolveStatus::kMaxIterations);
}

// Issue 13, "nothing runs after its caller is gone", within one iteration (fails without the
// stop checks inside the backward pass: the iteration ran to its end and said kMaxIterations).
// One iteration of this problem is long (its backward pass is O(T n^3)); a deadline a third of
// the way into it (or sooner, see below) stops the pass, and the answer is the initial rollout with
// status kDeadline. The returned gains are never cut short: they are those of a whole pass at that
// rollout.
TEST(SolveInterruptTest, StopsInsideOneLongIteration) {
  Problem problem = RandomLqrProblem({.state_dim = 60, .control_dim = 4, .horizon = 1500}, 7);
  problem.options.max_iterations = 1;
  problem.options.compute_gains = true;
  // The shortest of three whole runs: a busy machine only makes a run longer.
  Solution whole;
  absl::Duration one_iteration = absl::InfiniteDuration();
  for (int run = 0; run < 3; ++run) {
    const absl::Time start = absl::Now();
    whole = SolveProblem(problem);
    one_iteration = std::min(one_iteration, absl::Now() - start);
  }
  ASSERT_EQ(whole.status, SolveStatus::kMaxIterations);

  // Should a run still be much faster than that (the machine quieter), a sooner deadline is
  // tried; without the in-pass checks every try runs its iteration to the end.
  Solution stopped;
  for (int attempt = 0; attempt < 4 && stopped.status != SolveStatus::kDeadline; ++attempt) {
    const absl::Time start = absl::Now();
    const SolveInterrupt interrupt{start + one_iteration / (3 << attempt), nullptr};
    problem.interrupt = &interrupt;
    stopped = SolveProblem(problem);
    problem.interrupt = nullptr;
  }
  EXPECT_EQ(stopped.status, SolveStatus::kDeadline);
  EXPECT_EQ(stopped.iterations, 1);
  EXPECT_NE(stopped.u, whole.u);
  EXPECT_TRUE(std::all_of(stopped.u.begin(), stopped.u.end(), [](double v) { return v == 0; }));
  ASSERT_EQ(stopped.feedback.size(), whole.feedback.size());
  EXPECT_TRUE(std::any_of(stopped.feedback.begin(), stopped.feedback.end(),
                          [](double v) { return v != 0; }));
  // At the initial rollout (u = 0) the gains are whole-pass gains: the solve that starts there
  // and iterates once has the same feedback K_0 as the stopped one (K does not depend on u for
  // linear dynamics and a quadratic cost).
  EXPECT_EQ(stopped.feedback, whole.feedback);
}

TEST(SolveInterruptTest, ACancelledCallerStopsBeforeTheFirstIteration) {
  Problem problem = RandomLqrProblem({.state_dim = 3, .control_dim = 2, .horizon = 10}, 1);
  std::atomic<bool> cancelled{true};
  const SolveInterrupt interrupt{absl::InfiniteFuture(), &cancelled};
  problem.interrupt = &interrupt;
  problem.options.compute_x_init_jacobian = true;
  auto backend = CpuBackend::Create({.threads = 1});
  ASSERT_THAT(backend.status(), IsOk());
  const std::vector<Solution> solved = SolveAll(**backend, {&problem});
  EXPECT_EQ(solved[0].status, SolveStatus::kDeadline);
  EXPECT_EQ(solved[0].iterations, 0);
  EXPECT_EQ(solved[0].x.size(), 10u * 3u);
  // Nobody waits for it: its Jacobian is not computed.
  EXPECT_EQ(solved[0].jacobian_diagnostics.status, GradientStatus::kNotSolution);
}

// Issue 13, finding 11 (fails on the main of that time, which said kOk): a gradient taken at a
// point that is not a solution says so.
TEST(CpuBackendTest, BackwardAtAnUnconvergedPointIsNotSolution) {
  auto backend = CpuBackend::Create({.threads = 1});
  ASSERT_THAT(backend.status(), IsOk());
  std::vector<GradientStatus> statuses;
  for (int iterations : {1, 200}) {
    Problem problem = RandomCartpoleProblem({}, 5);
    problem.options.max_iterations = iterations;
    const Solution solution = SolveAll(**backend, {&problem})[0];
    BackwardProblem backward;
    backward.problem = &problem;
    backward.x = solution.x;
    backward.u = solution.u;
    backward.dl_du.assign(solution.u.size(), 1.0);
    ProblemGradient gradient;
    ProblemGradient* gradients[1] = {&gradient};
    const BackwardProblem* problems[1] = {&backward};
    ASSERT_THAT((*backend)->BackwardBatch(problems, gradients), IsOk());
    statuses.push_back(gradient.status);
    if (iterations == 200) {
      EXPECT_EQ(solution.status, SolveStatus::kConverged);
    }
  }
  EXPECT_EQ(statuses[0], GradientStatus::kNotSolution);
  EXPECT_EQ(statuses[1], GradientStatus::kOk);
}

// Issue 13, "nothing runs after its caller is gone": a backward batch leaves out the problems
// whose caller left or ran out of time (kStopped, nothing computed) and computes the others
// exactly as without an interrupt.
TEST(CpuBackendTest, BackwardLeavesOutProblemsWhoseCallerIsGone) {
  auto backend = CpuBackend::Create({.threads = 1});
  ASSERT_THAT(backend.status(), IsOk());
  std::atomic<bool> cancelled{true};
  const SolveInterrupt gone{absl::InfiniteFuture(), &cancelled};
  const SolveInterrupt late{absl::Now() - absl::Seconds(1), nullptr};
  const SolveInterrupt in_time{absl::Now() + absl::Hours(1), nullptr};
  const SolveInterrupt* const interrupts[] = {&gone, &late, &in_time, nullptr};
  std::vector<Problem> problems;
  for (int b = 0; b < 4; ++b) problems.push_back(RandomCartpoleProblem({}, b));
  std::vector<BackwardProblem> items(4);
  for (int b = 0; b < 4; ++b) {
    const Solution solution = SolveAll(**backend, {&problems[b]})[0];
    problems[b].interrupt = interrupts[b];
    items[b].problem = &problems[b];
    items[b].x = solution.x;
    items[b].u = solution.u;
    items[b].dl_du.assign(solution.u.size(), 1.0);
  }
  std::vector<ProblemGradient> gradients(4);
  std::vector<const BackwardProblem*> inputs;
  std::vector<ProblemGradient*> outputs;
  for (int b = 0; b < 4; ++b) {
    inputs.push_back(&items[b]);
    outputs.push_back(&gradients[b]);
  }
  ASSERT_THAT((*backend)->BackwardBatch(inputs, outputs), IsOk());
  EXPECT_EQ(gradients[0].status, GradientStatus::kStopped);
  EXPECT_EQ(gradients[1].status, GradientStatus::kStopped);
  EXPECT_THAT(gradients[0].params, ::testing::IsEmpty());  // not computed
  for (int b : {2, 3}) {
    problems[b].interrupt = nullptr;
    const ProblemGradient alone = ComputeGradient(items[b]);
    EXPECT_NE(gradients[b].status, GradientStatus::kStopped);
    EXPECT_EQ(gradients[b].params, alone.params);
    EXPECT_EQ(gradients[b].x_init, alone.x_init);
  }
}

// Issue 13, finding 4 (fails on the main of that time: 16 workspaces per thread and direction,
// whatever their size): the caches are bounded in bytes, and a workspace larger than a cache's
// share is freed after its use.
TEST(WorkspaceCacheTest, IsBoundedInBytesAndDoesNotKeepALargeWorkspace) {
  const auto shape = [](int n) { return LinearShape(n, 100); };
  CountedWorkspace::made = 0;
  const std::size_t budget = WorkspaceBytes(shape(4)) + WorkspaceBytes(shape(5));
  WorkspaceCache<CountedWorkspace> cache(16, &CountedWorkspace::Make, budget);
  cache.Get(shape(4));
  cache.Get(shape(5));
  EXPECT_EQ(cache.size(), 2);
  EXPECT_LE(cache.bytes(), budget);
  cache.Get(shape(6));  // over the bytes: the least recently used (4) goes, maybe 5 too
  EXPECT_LE(cache.bytes(), budget);
  EXPECT_FALSE(cache.Contains(shape(4)));
  EXPECT_TRUE(cache.Contains(shape(6)));
  cache.Get(shape(60));  // alone over the budget: made for one use
  cache.ReleaseUncached();
  EXPECT_FALSE(cache.Contains(shape(60)));
  EXPECT_LE(cache.bytes(), budget);

  auto backend = CpuBackend::Create({.threads = 2, .max_workspace_bytes = 1 << 20});
  ASSERT_THAT(backend.status(), IsOk());
  for (int n : {2, 3, 40, 50}) {
    const Problem problem = RandomLqrProblem({.state_dim = n, .control_dim = 2, .horizon = 200}, n);
    const Solution fresh = SolveProblem(problem);
    EXPECT_EQ(SolveAll(**backend, {&problem})[0].x, fresh.x);
    EXPECT_LE((*backend)->cached_workspace_bytes(), std::size_t{1} << 20);
  }
}

// Issue 13, finding 3 (fails on the main of that time: ParallelFor calls were serialised): a long
// loop does not hold up a short one started from another thread.
TEST(ThreadPoolTest, RunsSeveralLoopsAtOnce) {
  ThreadPool pool(2, 2);
  EXPECT_EQ(pool.slots(), 3);
  absl::Notification long_started;
  absl::Notification release;
  std::thread long_loop([&] {
    pool.ParallelFor(4, [&](int, int i) {
      if (i == 0) {
        long_started.Notify();
        release.WaitForNotification();
      }
    });
  });
  long_started.WaitForNotification();
  std::atomic<int> visited{0};
  std::vector<int> slots;
  absl::Mutex mu;
  pool.ParallelFor(50, [&](int worker, int) {
    visited.fetch_add(1);
    absl::MutexLock lock(&mu);
    slots.push_back(worker);
  });
  EXPECT_EQ(visited.load(), 50);
  for (int worker : slots) EXPECT_LT(worker, pool.slots());
  release.Notify();
  long_loop.join();
}

}  // namespace
}  // namespace mpc
