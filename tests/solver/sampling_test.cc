// The sampling methods (solver/core/sampling.h) through the CPU backend. Oracles: plain iLQR on
// the same problems (its optimum on convex LQR problems, its basin on the pendulum), the bounds,
// and the answers of the same problems solved alone, batched and on other thread counts.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <numbers>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "solver/cpu/cpu_backend.h"
#include "solver/cpu/ilqr.h"
#include "solver/problem.h"
#include "tests/testing/random_problems.h"
#include "tests/testing/same_bits.h"
#include "tests/testing/solve_batch.h"
#include "tests/testing/status_matchers.h"

namespace mpc {
namespace {

using testing::ExpectSameSolutionBits;
using testing::IsOk;
using testing::RandomCartpoleProblem;
using testing::RandomLqrProblem;
using testing::RandomModelOptions;
using testing::RandomPendulumProblem;
using testing::SameBits;
using testing::SolveAll;
using testing::StatusIs;

std::unique_ptr<CpuBackend> Backend(int threads) {
  auto backend = CpuBackend::Create({threads});
  EXPECT_THAT(backend.status(), IsOk());
  return *std::move(backend);
}

Solution SolveOne(SolverBackend& backend, const Problem& problem) {
  return SolveAll(backend, std::vector<const Problem*>{&problem})[0];
}

// mpc.pytorch's pendulum hanging down, th = pi + U(-0.2, 0.2), thdot ~ U(-0.5, 0.5), torque
// |u| <= 1 (gravity needs 15 / 3 = 5 to lift it straight: it must pump, about five swings), over
// T = 120 (6 s); cost 0.5 - cos th + 0.005 thdot^2 + 0.0005 u^2 per step (goal upright; a light
// velocity weight, so that swinging up pays within the horizon). iLQR to tolerance 1e-6.
Problem HangingPendulum(std::uint64_t seed) {
  RandomModelOptions options;
  options.horizon = 120;
  options.control_bound = 1.0;
  Problem problem = RandomPendulumProblem(options, seed);
  problem.cost_quadratic = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0.01, 0, 0, 0, 0, 0.001};
  problem.cost_linear = {-1, 0, 0, 0};
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> th(-0.2, 0.2), thdot(-0.5, 0.5);
  const double angle = std::numbers::pi + th(rng);
  problem.x_init = {std::cos(angle), std::sin(angle), thdot(rng)};
  problem.options.max_iterations = 500;
  problem.options.tolerance = 1e-6;
  return problem;
}

// The plan ends in the upright basin: within 0.3 rad of upright, slower than 1 rad/s.
bool EndsUpright(const Problem& problem, const Solution& solution) {
  const int last = problem.shape.horizon - 1;
  const double cos_th = solution.x[last * 3], thdot = solution.x[last * 3 + 2];
  return cos_th >= std::cos(0.3) && std::abs(thdot) <= 1.0;
}

TEST(SamplingTest, CemThenIlqrSwingsThePendulumUpWherePlainIlqrFromZerosDoesNot) {
  constexpr int kProblems = 200;
  std::vector<Problem> ilqr, cem;
  for (int i = 0; i < kProblems; ++i) {
    ilqr.push_back(HangingPendulum(i));
    cem.push_back(ilqr.back());
    cem.back().options.method = SolverMethod::kCemThenIlqr;
    // Smooth samples (a knot every 10 steps) and a floor under the spread: pumping is a
    // low-frequency pattern that white noise over 120 steps almost never hits.
    cem.back().options.sampling = {.samples = 256,
                                   .elites = 16,
                                   .iterations = 10,
                                   .min_std = 0.2,
                                   .momentum = 0.2,
                                   .knot_spacing = 10};
    cem.back().sampling_stream = static_cast<std::uint32_t>(i);
  }
  auto backend = Backend(2);
  const std::vector<Solution> plain = SolveAll(*backend, ilqr);
  const std::vector<Solution> sampled = SolveAll(*backend, cem);
  int plain_upright = 0, sampled_upright = 0, sampled_converged = 0;
  for (int i = 0; i < kProblems; ++i) {
    plain_upright += EndsUpright(ilqr[i], plain[i]);
    for (double u : sampled[i].u) ASSERT_LE(std::abs(u), 1.0);
    if (!EndsUpright(cem[i], sampled[i])) continue;
    ++sampled_upright;
    sampled_converged += sampled[i].status == SolveStatus::kConverged;
  }
  std::printf(
      "upright basin reached: CEM->iLQR %d/%d (%d of them CONVERGED), plain iLQR from zeros "
      "%d/%d\n",
      sampled_upright, kProblems, sampled_converged, plain_upright, kProblems);
  ::testing::Test::RecordProperty("cem_then_ilqr_upright", sampled_upright);
  ::testing::Test::RecordProperty("ilqr_upright", plain_upright);
  EXPECT_GE(sampled_upright, kProblems * 95 / 100);
  EXPECT_LT(plain_upright, sampled_upright);
  // The polish is the iLQR itself: its convergence test holds on the swung-up plans.
  EXPECT_GE(sampled_converged, kProblems * 95 / 100);
}

// A mixed set: pendulum, cartpole, bounded and unbounded LQR, every method.
std::vector<Problem> MixedSamplingProblems() {
  std::vector<Problem> problems;
  const SolverMethod methods[] = {SolverMethod::kCem, SolverMethod::kMppi,
                                  SolverMethod::kCemThenIlqr, SolverMethod::kMppiThenIlqr};
  for (int seed = 0; seed < 8; ++seed) {
    RandomModelOptions model;
    model.horizon = 15;
    problems.push_back(RandomPendulumProblem(model, seed));
    problems.push_back(RandomCartpoleProblem(model, seed));
    problems.push_back(RandomLqrProblem(
        {.state_dim = 4, .control_dim = 2, .horizon = 12, .bounded = seed % 2 == 0}, seed));
  }
  for (std::size_t i = 0; i < problems.size(); ++i) {
    problems[i].options.method = methods[i % 4];
    problems[i].options.sampling = {.samples = 64, .elites = 8, .iterations = 4, .seed = 7};
    problems[i].options.max_iterations = 20;
    problems[i].sampling_stream = static_cast<std::uint32_t>(i);
  }
  return problems;
}

TEST(SamplingTest, EveryProblemIsBitwiseTheSameAloneInAnyBatchAndOnAnyThreadCount) {
  const std::vector<Problem> problems = MixedSamplingProblems();
  auto single = Backend(1);
  std::vector<Solution> alone;
  for (const Problem& p : problems) alone.push_back(SolveOne(*single, p));

  for (int threads : {1, 2, 3}) {
    auto backend = Backend(threads);
    std::vector<const Problem*> order;
    for (const Problem& p : problems) order.push_back(&p);
    std::mt19937 shuffle(threads);
    std::shuffle(order.begin(), order.end(), shuffle);
    // The shuffled batch, and the same problems again mixed with plain iLQR problems.
    std::vector<Problem> ilqr = problems;
    for (Problem& p : ilqr) p.options.method = SolverMethod::kIlqr;
    for (const Problem& p : ilqr) order.push_back(&p);
    const std::vector<Solution> batched = SolveAll(*backend, order);
    for (std::size_t k = 0; k < problems.size(); ++k) {
      const std::size_t i = order[k] - problems.data();
      SCOPED_TRACE(::testing::Message() << "problem " << i << ", threads " << threads);
      ExpectSameSolutionBits(batched[k], alone[i]);
    }
  }
}

// The CPU rolls samples out four at a time (solver/cpu/double_lanes.h), the last group padded.
// Without transcendentals (linear dynamics, quadratic costs) each lane does a double's operations
// in a double's order, so the answer is bitwise the one-at-a-time rollout's, whatever the sample
// count's remainder by four, the method and the noise's knots.
TEST(SamplingTest, FourSamplesAtATimeAreBitwiseOneAtATimeOnLinearProblems) {
  const SolverMethod methods[] = {SolverMethod::kCem, SolverMethod::kMppi,
                                  SolverMethod::kCemThenIlqr, SolverMethod::kMppiThenIlqr};
  for (int seed = 0; seed < 8; ++seed) {
    // (8, 4): a shape with compile-time sizes, which the lanes need.
    Problem problem = RandomLqrProblem(
        {.state_dim = 8, .control_dim = 4, .horizon = 11, .bounded = seed % 2 == 0}, seed);
    problem.options.method = methods[seed % 4];
    problem.options.sampling = {.samples = 13 + 5 * seed,
                                .elites = 3,
                                .iterations = 3,
                                .knot_spacing = 1 + seed % 3,
                                .seed = static_cast<std::uint64_t>(seed)};
    problem.options.sampling.initial_std = 0.5;
    SCOPED_TRACE(::testing::Message()
                 << "seed " << seed << " " << SolverMethodName(problem.options.method) << ", "
                 << problem.options.sampling.samples << " samples");
    Solution lanes, one_by_one;
    MakeShapeSolver(problem.shape)->Solve(problem, &lanes);
    MakeOneSampleAtATimeShapeSolver(problem.shape)->Solve(problem, &one_by_one);
    ExpectSameSolutionBits(lanes, one_by_one);
    // The sampling moved the plan (else the comparison would say little).
    EXPECT_NE(lanes.u, std::vector<double>(lanes.u.size(), 0.0));
  }
}

TEST(SamplingTest, TheSeedAndTheProblemsIndexKeyTheNoise) {
  RandomModelOptions model;
  model.horizon = 15;
  Problem problem = RandomPendulumProblem(model, 3);
  problem.options.method = SolverMethod::kCem;
  problem.options.sampling = {.samples = 32, .elites = 4, .iterations = 2, .seed = 1};
  auto backend = Backend(1);
  const Solution reference = SolveOne(*backend, problem);
  EXPECT_TRUE(SameBits(SolveOne(*backend, problem).u, reference.u));
  Problem other_seed = problem;
  other_seed.options.sampling.seed = 2;
  EXPECT_FALSE(SameBits(SolveOne(*backend, other_seed).u, reference.u));
  Problem other_stream = problem;
  other_stream.sampling_stream = 1;
  EXPECT_FALSE(SameBits(SolveOne(*backend, other_stream).u, reference.u));
}

// Convex LQR problems have one optimum: the chains must land on plain iLQR's, and the sampled
// plans of pure CEM and MPPI must be far better than the warm start (zeros).
TEST(SamplingTest, OnConvexLqrProblemsTheChainsFindTheIlqrOptimumAndSamplingImproves) {
  auto backend = Backend(1);
  for (int seed = 0; seed < 6; ++seed) {
    Problem ilqr = RandomLqrProblem(
        {.state_dim = 3, .control_dim = 2, .horizon = 10, .bounded = seed % 2 == 0}, seed);
    ilqr.options.max_iterations = 50;
    const Solution optimum = SolveOne(*backend, ilqr);
    ASSERT_EQ(optimum.status, SolveStatus::kConverged);
    Problem zero = ilqr;
    zero.options.max_iterations = 1;
    zero.options.method = SolverMethod::kCem;
    zero.options.sampling.iterations = 1;
    zero.options.sampling.samples = 1;  // only the mean: the warm start's cost
    zero.options.sampling.elites = 1;
    const double start_cost = SolveOne(*backend, zero).cost;
    for (SolverMethod method : {SolverMethod::kCemThenIlqr, SolverMethod::kMppiThenIlqr}) {
      Problem chained = ilqr;
      chained.options.method = method;
      const Solution s = SolveOne(*backend, chained);
      EXPECT_EQ(s.status, SolveStatus::kConverged);
      for (std::size_t e = 0; e < s.u.size(); ++e) EXPECT_NEAR(s.u[e], optimum.u[e], 1e-6);
    }
    for (SolverMethod method : {SolverMethod::kCem, SolverMethod::kMppi}) {
      Problem sampled = ilqr;
      sampled.options.method = method;
      sampled.options.sampling = {.samples = 512, .elites = 32, .iterations = 12};
      sampled.options.sampling.initial_std = 0.5;
      const Solution s = SolveOne(*backend, sampled);
      SCOPED_TRACE(::testing::Message() << "seed " << seed << " " << SolverMethodName(method));
      EXPECT_EQ(s.iterations, 12);
      EXPECT_EQ(s.status, SolveStatus::kMaxIterations);
      EXPECT_GE(s.cost, optimum.cost - 1e-9);
      std::printf("seed %d %s: %.3g of the way from the warm start to the optimum\n", seed,
                  SolverMethodName(method), (start_cost - s.cost) / (start_cost - optimum.cost));
      // At least 70% of the way from the warm start to the optimum.
      EXPECT_LT(s.cost - optimum.cost, 0.3 * (start_cost - optimum.cost));
    }
  }
}

TEST(SamplingTest, SampledPlansRespectTimeVaryingBounds) {
  // Narrow, time-varying bounds, sampled with a spread far wider than them.
  Problem problem = RandomLqrProblem({.state_dim = 3, .control_dim = 2, .horizon = 8}, 5);
  const int T = 8, m = 2;
  problem.u_lower.assign(T * m, 0.0);
  problem.u_upper.assign(T * m, 0.0);
  for (int t = 0; t < T; ++t) {
    for (int j = 0; j < m; ++j) {
      problem.u_lower[t * m + j] = -0.1 * (t + 1);
      problem.u_upper[t * m + j] = 0.05 * (t + 1) + 0.01 * j;
    }
  }
  auto backend = Backend(1);
  for (SolverMethod method : {SolverMethod::kCem, SolverMethod::kMppi, SolverMethod::kCemThenIlqr,
                              SolverMethod::kMppiThenIlqr}) {
    Problem p = problem;
    p.options.method = method;
    p.options.sampling.initial_std = 10.0;  // nearly every sample is clamped
    const Solution s = SolveOne(*backend, p);
    ASSERT_NE(s.status, SolveStatus::kNotFinite);
    for (int e = 0; e < T * m; ++e) {
      EXPECT_GE(s.u[e], problem.u_lower[e]) << SolverMethodName(method) << " at " << e;
      EXPECT_LE(s.u[e], problem.u_upper[e]) << SolverMethodName(method) << " at " << e;
    }
  }
}

TEST(SamplingTest, StatusesAndIterationsOfPureSampling) {
  Problem problem = RandomLqrProblem({.state_dim = 3, .control_dim = 1, .horizon = 6}, 2);
  problem.options.method = SolverMethod::kCem;
  problem.options.sampling = {.samples = 16, .elites = 4, .iterations = 5};
  auto backend = Backend(1);
  const Solution budget = SolveOne(*backend, problem);
  EXPECT_EQ(budget.status, SolveStatus::kMaxIterations);
  EXPECT_EQ(budget.iterations, 5);
  EXPECT_GT(budget.step_norm, problem.options.tolerance);

  // Converged: the mean's last update is below the tolerance.
  Problem loose = problem;
  loose.options.tolerance = 1e9;
  EXPECT_EQ(SolveOne(*backend, loose).status, SolveStatus::kConverged);

  // Gains, when asked, are the LQR's at the sampled plan: for linear dynamics the plan does not
  // matter, so they equal the optimum's.
  Problem with_gains = problem;
  with_gains.options.compute_gains = true;
  with_gains.u_lower.clear();
  with_gains.u_upper.clear();
  const Solution sampled_gains = SolveOne(*backend, with_gains);
  with_gains.options.method = SolverMethod::kIlqr;
  const Solution ilqr_gains = SolveOne(*backend, with_gains);
  ASSERT_EQ(sampled_gains.feedback.size(), ilqr_gains.feedback.size());
  for (std::size_t e = 0; e < ilqr_gains.feedback.size(); ++e) {
    EXPECT_NEAR(sampled_gains.feedback[e], ilqr_gains.feedback[e], 1e-9);
  }

  // Dynamics that overflow: every sample and the mean cost Infinity.
  Problem blowup = problem;
  for (double& v : blowup.transition) v *= 1e200;
  for (SolverMethod method :
       {SolverMethod::kCem, SolverMethod::kMppi, SolverMethod::kCemThenIlqr}) {
    blowup.options.method = method;
    EXPECT_EQ(SolveOne(*backend, blowup).status, SolveStatus::kNotFinite)
        << SolverMethodName(method);
  }
}

// Issue 13 (before this test's commit sampling ran every iteration whatever its caller's deadline:
// this test then ran for hours, until ctest's timeout). A sampling solve whose interrupt fires
// stops between iterations with kDeadline and the cheapest plan so far; a chained iLQR then runs no
// iteration; an interrupt that never fires changes no bit.
TEST(SamplingTest, AnInterruptStopsSamplingBetweenIterations) {
  Problem problem = RandomLqrProblem({.state_dim = 8, .control_dim = 2, .horizon = 100}, 4);
  problem.options.sampling = {.samples = 256, .elites = 16, .iterations = 1000000};
  problem.options.tolerance = 0.0;
  auto backend = Backend(1);
  for (SolverMethod method : {SolverMethod::kCem, SolverMethod::kMppiThenIlqr}) {
    problem.options.method = method;
    const absl::Time start = absl::Now();
    const SolveInterrupt interrupt{start + absl::Milliseconds(200), nullptr};
    problem.interrupt = &interrupt;
    const Solution stopped = SolveOne(*backend, problem);
    EXPECT_LT(absl::Now() - start, absl::Seconds(5)) << SolverMethodName(method);
    EXPECT_EQ(stopped.status, SolveStatus::kDeadline) << SolverMethodName(method);
    EXPECT_TRUE(std::isfinite(stopped.cost)) << SolverMethodName(method);
    EXPECT_EQ(stopped.x.size(), 100u * 8u);
  }

  problem.options.method = SolverMethod::kCem;
  problem.options.sampling.iterations = 3;
  problem.interrupt = nullptr;
  const Solution plain = SolveOne(*backend, problem);
  const SolveInterrupt never{absl::InfiniteFuture(), nullptr};
  problem.interrupt = &never;
  const Solution watched = SolveOne(*backend, problem);
  EXPECT_TRUE(SameBits(watched.u, plain.u));
  EXPECT_EQ(watched.status, SolveStatus::kMaxIterations);

  std::atomic<bool> cancelled{true};
  const SolveInterrupt gone{absl::InfiniteFuture(), &cancelled};
  problem.interrupt = &gone;
  const Solution abandoned = SolveOne(*backend, problem);
  EXPECT_EQ(abandoned.status, SolveStatus::kDeadline);
  EXPECT_EQ(abandoned.iterations, 0);
}

TEST(SamplingTest, BadSamplingOptionsAreRefusedNamingTheField) {
  const Problem good = RandomLqrProblem({.state_dim = 3, .control_dim = 1, .horizon = 6}, 1);
  const ProblemLimits limits;
  EXPECT_THAT(ValidateProblem(good, limits), IsOk());
  struct Case {
    void (*spoil)(SamplingOptions&);
    const char* field;
  };
  const Case cases[] = {
      {[](SamplingOptions& s) { s.samples = 0; }, "options.samples"},
      {[](SamplingOptions& s) { s.elites = s.samples + 1; }, "options.elites"},
      {[](SamplingOptions& s) { s.elites = 0; }, "options.elites"},
      {[](SamplingOptions& s) { s.iterations = 0; }, "options.sampling_iterations"},
      {[](SamplingOptions& s) { s.initial_std = -1.0; }, "options.initial_std"},
      {[](SamplingOptions& s) { s.min_std = -0.5; }, "options.min_std"},
      {[](SamplingOptions& s) { s.temperature = std::nan(""); }, "options.temperature"},
      {[](SamplingOptions& s) { s.momentum = 1.0; }, "options.momentum"},
  };
  for (const Case& c : cases) {
    Problem bad = good;
    c.spoil(bad.options.sampling);
    EXPECT_THAT(ValidateProblem(bad, limits),
                StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr(c.field)));
  }
}

}  // namespace
}  // namespace mpc
