#include "solver/cpu/ilqr.h"

#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "solver/core/ilqr.h"
#include "tests/testing/random_problems.h"
#include "tests/testing/same_bits.h"

namespace mpc {
namespace {

using testing::ExpectSameSolutionBits;
using testing::RandomCartpoleProblem;
using testing::RandomLqrOptions;
using testing::RandomLqrProblem;
using testing::RandomModelOptions;
using testing::RandomPendulumProblem;

double MaxAbsDiff(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0.0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}

std::vector<Problem> MixedProblems() {
  std::vector<Problem> problems;
  for (int seed = 0; seed < 3; ++seed) {
    RandomModelOptions model;
    model.horizon = 20;
    Problem pendulum = RandomPendulumProblem(model, seed);
    pendulum.options.max_iterations = 50;
    problems.push_back(pendulum);
    model.horizon = 25;
    Problem cartpole = RandomCartpoleProblem(model, seed);
    cartpole.options.max_iterations = 50;
    problems.push_back(cartpole);
    problems.push_back(
        RandomLqrProblem({.state_dim = 4, .control_dim = 2, .horizon = 12, .bounded = true}, seed));
    problems.push_back(RandomLqrProblem(
        {.state_dim = 8, .control_dim = 4, .horizon = 30, .time_varying = true, .bounded = true},
        seed));
  }
  return problems;
}

// The (first, count) of each group StepGroups visits.
template <int kLanes>
std::vector<std::pair<int, int>> Groups(int horizon) {
  std::vector<std::pair<int, int>> groups;
  for (const core::StepGroup group : core::StepGroups<kLanes>(horizon)) {
    groups.emplace_back(group.first, group.count);
  }
  return groups;
}

TEST(IlqrTest, StepGroupsCoverEveryTransitionOnceInOrder) {
  using Visits = std::vector<std::pair<int, int>>;
  EXPECT_EQ(Groups<4>(1), Visits{});
  EXPECT_EQ(Groups<4>(2), (Visits{{0, 1}}));
  EXPECT_EQ(Groups<4>(5), (Visits{{0, 4}}));
  EXPECT_EQ(Groups<4>(6), (Visits{{0, 4}, {4, 1}}));
  EXPECT_EQ(Groups<4>(25), (Visits{{0, 4}, {4, 4}, {8, 4}, {12, 4}, {16, 4}, {20, 4}}));
  EXPECT_EQ(Groups<1>(1), Visits{});
  EXPECT_EQ(Groups<1>(4), (Visits{{0, 1}, {1, 1}, {2, 1}}));
}

// A CPU worker rolls the line search's trials out four step sizes at a time (Trial =
// DoubleLanes, shapes with compile-time sizes) and takes them in the one-at-a-time order. Without
// transcendentals (linear dynamics, quadratic costs) each lane does a double's operations in a
// double's order, so the answer is bitwise the one-at-a-time search's: for trial caps below, at
// and above a group of four and across groups (tolerance 0: the iterations past convergence
// reject trials by their last bits), with bounds, a trust region and warm starts.
TEST(IlqrTest, FourTrialsAtATimeAreBitwiseOneAtATimeOnLinearProblems) {
  int problems = 0;
  for (int seed = 0; seed < 12; ++seed) {
    Problem problem = RandomLqrProblem({.state_dim = 8,
                                        .control_dim = 4,
                                        .horizon = 9 + seed,
                                        .time_varying = seed % 3 == 0,
                                        .with_offset = seed % 2 == 1,
                                        .bounded = seed % 4 != 3,
                                        .warm_start = seed % 5 == 0},
                                       seed);
    problem.options.max_iterations = 25;
    problem.options.tolerance = 0.0;
    problem.options.not_improved_limit = 25;
    problem.options.max_linesearch_iterations = 1 + (seed * 3) % 11;
    problem.options.linesearch_decay = seed % 2 == 0 ? 0.5 : 0.2;
    if (seed % 6 == 4) problem.options.delta_u = 0.3;
    problem.options.compute_gains = seed % 2 == 0;
    SCOPED_TRACE(::testing::Message() << "seed " << seed << ", "
                                      << problem.options.max_linesearch_iterations << " trials");
    Solution lanes, one_by_one;
    MakeShapeSolver(problem.shape)->Solve(problem, &lanes);
    MakeOneSampleAtATimeShapeSolver(problem.shape)->Solve(problem, &one_by_one);
    ExpectSameSolutionBits(lanes, one_by_one);
    ++problems;
  }
  EXPECT_EQ(problems, 12);
}

// With sin, cos and atan2 the lanes take libmvec's (within 4 ulp of libm's), so a model's trials
// differ from the one-at-a-time ones in their last bits only: the same converged answers.
TEST(IlqrTest, FourTrialsAtATimeSolveTheModelsAsOneAtATime) {
  for (const Problem& base : MixedProblems()) {
    if (base.shape.dynamics == DynamicsId::Linear()) continue;
    Problem problem = base;
    problem.options.max_iterations = 500;
    problem.options.tolerance = 1e-9;
    Solution lanes, one_by_one;
    MakeShapeSolver(problem.shape)->Solve(problem, &lanes);
    MakeOneSampleAtATimeShapeSolver(problem.shape)->Solve(problem, &one_by_one);
    EXPECT_EQ(lanes.status, one_by_one.status);
    EXPECT_LT(MaxAbsDiff(lanes.x, one_by_one.x), 1e-7);
    EXPECT_LT(MaxAbsDiff(lanes.u, one_by_one.u), 1e-7);
    EXPECT_NEAR(lanes.cost, one_by_one.cost, 1e-9 * (1 + std::abs(lanes.cost)));
  }
}

TEST(IlqrTest, ReusedSolverGivesBitwiseTheSameAnswerAsAFreshOne) {
  // A workspace that carried anything from one problem to the next would break batch independence.
  const std::vector<Problem> problems = MixedProblems();
  for (const Problem& problem : problems) {
    const Solution fresh = SolveProblem(problem);
    auto solver = MakeShapeSolver(problem.shape);
    Solution reused;
    for (const Problem& other : problems) {
      if (other.shape == problem.shape) solver->Solve(other, &reused);
    }
    solver->Solve(problem, &reused);
    EXPECT_EQ(fresh.x, reused.x);
    EXPECT_EQ(fresh.u, reused.u);
    EXPECT_EQ(fresh.cost, reused.cost);
    EXPECT_EQ(fresh.iterations, reused.iterations);
  }
}

TEST(IlqrTest, FixedAndDynamicSizeSolversAgree) {
  // The two differ only in rounding, so converge tightly and compare well above it.
  std::vector<Problem> problems = MixedProblems();
  for (Problem& problem : problems) {
    problem.options.max_iterations = 500;
    problem.options.tolerance = 1e-9;
    Solution fixed, dynamic;
    MakeShapeSolver(problem.shape)->Solve(problem, &fixed);
    MakeDynamicSizeShapeSolver(problem.shape)->Solve(problem, &dynamic);
    EXPECT_EQ(fixed.status, dynamic.status)
        << SolveStatusName(fixed.status) << " " << fixed.step_norm << " vs "
        << SolveStatusName(dynamic.status) << " " << dynamic.step_norm << " n "
        << problem.shape.state_dim;
    EXPECT_LT(MaxAbsDiff(fixed.x, dynamic.x), 1e-7);
    EXPECT_LT(MaxAbsDiff(fixed.u, dynamic.u), 1e-7);
    EXPECT_NEAR(fixed.cost, dynamic.cost, 1e-9 * (1 + std::abs(fixed.cost)));
  }
}

TEST(IlqrTest, BoundsHoldAndTheStartStateIsKept) {
  for (const Problem& problem : MixedProblems()) {
    const Solution s = SolveProblem(problem);
    const int n = problem.shape.state_dim, m = problem.shape.control_dim;
    const int T = problem.shape.horizon;
    for (int i = 0; i < n; ++i) EXPECT_EQ(s.x[i], problem.x_init[i]);
    if (problem.u_lower.empty()) continue;
    const bool varying = static_cast<int>(problem.u_lower.size()) == T * m;
    for (int t = 0; t < T; ++t) {
      for (int j = 0; j < m; ++j) {
        const int b = varying ? t * m + j : j;
        EXPECT_GE(s.u[t * m + j], problem.u_lower[b]);
        EXPECT_LE(s.u[t * m + j], problem.u_upper[b]);
      }
    }
  }
}

TEST(IlqrTest, WarmStartFromTheSolutionConvergesAtOnce) {
  RandomModelOptions model;
  model.horizon = 25;
  Problem problem = RandomCartpoleProblem(model, 5);
  problem.options.max_iterations = 200;
  problem.options.tolerance = 1e-8;
  const Solution cold = SolveProblem(problem);
  ASSERT_EQ(cold.status, SolveStatus::kConverged);
  ASSERT_GT(cold.iterations, 2);
  problem.u_init = cold.u;
  const Solution warm = SolveProblem(problem);
  EXPECT_EQ(warm.status, SolveStatus::kConverged);
  EXPECT_LE(warm.iterations, 2);
  EXPECT_LT(MaxAbsDiff(warm.u, cold.u), 1e-6);
}

TEST(IlqrTest, WarmStartOutsideTheBoundsIsClamped) {
  Problem problem =
      RandomLqrProblem({.state_dim = 3, .control_dim = 2, .horizon = 8, .bounded = true}, 3);
  problem.u_init.assign(8 * 2, 1e6);
  problem.options.max_iterations = 50;
  const Solution s = SolveProblem(problem);
  EXPECT_EQ(s.status, SolveStatus::kConverged);
  const Solution cold = SolveProblem(
      RandomLqrProblem({.state_dim = 3, .control_dim = 2, .horizon = 8, .bounded = true}, 3));
  EXPECT_LT(MaxAbsDiff(s.u, cold.u), 1e-9);
}

TEST(IlqrTest, ProblemThatCannotConvergeReportsMaxIterations) {
  RandomModelOptions model;
  model.horizon = 25;
  Problem problem = RandomCartpoleProblem(model, 1);
  problem.options.max_iterations = 2;
  problem.options.tolerance = 0.0;  // unreachable: the step norm is never negative
  const Solution s = SolveProblem(problem);
  EXPECT_EQ(s.status, SolveStatus::kMaxIterations);
  EXPECT_EQ(s.iterations, 2);
  EXPECT_TRUE(std::isfinite(s.cost));
}

TEST(IlqrTest, NonFiniteDynamicsReportNotFinite) {
  Problem problem = RandomLqrProblem({.state_dim = 3, .control_dim = 1, .horizon = 6}, 2);
  // Huge dynamics overflow to Inf in the rollout; the solver must say so, not crash or loop.
  for (double& v : problem.transition) v *= 1e200;
  const Solution s = SolveProblem(problem);
  EXPECT_EQ(s.status, SolveStatus::kNotFinite);
}

TEST(IlqrTest, IndefiniteControlCostIsRegularized) {
  // Negative control weight: Quu is indefinite at the last step, so LM regularisation must kick in;
  // bounds keep the problem well posed.
  Problem problem =
      RandomLqrProblem({.state_dim = 2, .control_dim = 1, .horizon = 5, .bounded = true}, 4);
  const int nt = 3;
  for (int t = 0; t < 5; ++t) {
    const size_t offset = problem.cost_quadratic.size() == 9u ? 0 : t * 9u;
    problem.cost_quadratic[offset + (nt - 1) * nt + (nt - 1)] = -1.0;
    if (problem.cost_quadratic.size() == 9u) break;
  }
  problem.options.max_iterations = 30;
  const Solution s = SolveProblem(problem);
  EXPECT_NE(s.status, SolveStatus::kNotFinite);
  EXPECT_TRUE(std::isfinite(s.cost));
  for (double u : s.u) EXPECT_TRUE(std::isfinite(u));
}

TEST(IlqrTest, GainsAtTheSolutionHaveTheRightShapeAndVanishingFeedforward) {
  RandomModelOptions model;
  model.horizon = 20;
  model.bounded = false;
  model.th_half_width = 0.5;  // near upright, where the unbounded problem is well posed
  model.thdot_half_width = 0.5;
  Problem problem = RandomPendulumProblem(model, 9);
  problem.options.max_iterations = 100;
  problem.options.tolerance = 1e-9;
  problem.options.compute_gains = true;
  const Solution s = SolveProblem(problem);
  ASSERT_EQ(s.status, SolveStatus::kConverged)
      << SolveStatusName(s.status) << " after " << s.iterations << ", step " << s.step_norm;
  ASSERT_EQ(s.feedback.size(), 20u * 1 * 3);
  ASSERT_EQ(s.feedforward.size(), 20u);
  // At a converged solution the Newton step is (almost) zero.
  for (double k : s.feedforward) EXPECT_LT(std::abs(k), 1e-6);
  double norm = 0.0;
  for (double K : s.feedback) norm += K * K;
  EXPECT_GT(norm, 0.0);
}

}  // namespace
}  // namespace mpc
