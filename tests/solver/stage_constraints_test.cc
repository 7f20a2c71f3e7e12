// State bounds and general stage constraints (solver/stage_constraints.h, the augmented
// Lagrangian of solver/core/ilqr.h): constraints hold at the answer, an unconstrained answer that
// already meets them is unchanged bit for bit, infeasibility is a status, problems stay
// independent in a batch and in the device layout, and bad inputs are refused naming the field.
// The comparison with a dense QP solver (cvxopt) runs through a real server:
// tests/client/state_constraints_test.py.

#include "solver/stage_constraints.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "solver/cpu/cpu_backend.h"
#include "solver/cpu/ilqr.h"
#include "solver/cpu/implicit_backward.h"
#include "solver/gradients.h"
#include "solver/problem.h"
#include "tests/testing/device_layout_on_host.h"
#include "tests/testing/random_problems.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/weighted_loss.h"

namespace mpc {
namespace {

using ::mpc::testing::IsOk;
using ::mpc::testing::RandomLqrOptions;
using ::mpc::testing::RandomLqrProblem;
using ::mpc::testing::RandomModelOptions;
using ::mpc::testing::RandomPendulumProblem;
using ::mpc::testing::StatusIs;
using ::mpc::testing::WeightedLoss;
using ::testing::HasSubstr;

constexpr double kInf = std::numeric_limits<double>::infinity();

// max over t >= 1 and i of the state bounds' violation, computed from the answer itself.
double StateBoundViolation(const Problem& p, const Solution& s) {
  const int n = p.shape.state_dim, T = p.shape.horizon;
  double worst = 0.0;
  for (int t = 1; t < T; ++t) {
    for (int i = 0; i < n; ++i) {
      const double x = s.x[t * n + i];
      // A bound is (n) or (T, n).
      const auto at = [&](const std::vector<double>& bound) {
        return bound[static_cast<int>(bound.size()) == n ? i : t * n + i];
      };
      if (!p.x_upper.empty()) worst = std::max(worst, x - at(p.x_upper));
      if (!p.x_lower.empty()) worst = std::max(worst, at(p.x_lower) - x);
    }
  }
  return worst;
}

// A random LQR problem whose state coordinate 0 is capped from step 4 on (a time-varying x_upper
// (T, n), +inf elsewhere; the controls need a few steps to meet a cap) at 80% of the way from its
// unconstrained lowest to its highest value there: the cap binds.
Problem CappedProblem(std::uint64_t seed, bool bounded) {
  Problem p =
      RandomLqrProblem({.state_dim = 4, .control_dim = 2, .horizon = 12, .bounded = bounded}, seed);
  p.options.max_iterations = 50;
  p.options.tolerance = 1e-10;
  const Solution free = SolveProblem(p);
  const int n = p.shape.state_dim;
  constexpr int kFirstCapped = 4;
  const int T = p.shape.horizon;
  double lowest = kInf, highest = -kInf;
  for (int t = kFirstCapped; t < T; ++t) {
    lowest = std::min(lowest, free.x[t * n]);
    highest = std::max(highest, free.x[t * n]);
  }
  p.x_upper.assign(static_cast<std::size_t>(T) * n, kInf);
  for (int t = kFirstCapped; t < T; ++t) p.x_upper[t * n] = lowest + 0.8 * (highest - lowest);
  return p;
}

TEST(StageConstraintsTest, ActiveStateBoundsHoldAndCostMore) {
  for (std::uint64_t seed = 0; seed < 8; ++seed) {
    for (bool bounded : {false, true}) {
      Problem p = CappedProblem(seed, bounded);
      Problem free = p;
      free.x_upper.clear();
      const Solution unconstrained = SolveProblem(free);
      const Solution s = SolveProblem(p);
      EXPECT_EQ(s.status, SolveStatus::kConverged) << "seed " << seed;
      EXPECT_LE(StateBoundViolation(p, s), p.options.constraint_tolerance) << "seed " << seed;
      EXPECT_EQ(s.max_constraint_violation, std::max(0.0, StateBoundViolation(p, s)));
      // The cap binds: the constrained optimum costs strictly more.
      EXPECT_GT(s.cost, unconstrained.cost + 1e-9) << "seed " << seed;
    }
  }
}

TEST(StageConstraintsTest, AnUnconstrainedAnswerThatMeetsTheBoundsIsUnchangedBitForBit) {
  for (std::uint64_t seed = 0; seed < 8; ++seed) {
    Problem free = RandomLqrProblem({.state_dim = 4, .control_dim = 2, .horizon = 12}, seed);
    const Solution expected = SolveProblem(free);
    ASSERT_EQ(expected.status, SolveStatus::kConverged);
    Problem p = free;
    p.x_lower.assign(4, -1e6);
    p.x_upper.assign(4, kInf);
    p.constraint_count = 1;
    p.constraint_G.assign(6, 0.0);
    p.constraint_G[4] = 1.0;  // u_0 <= 1e6
    p.constraint_h = {1e6};
    const Solution s = SolveProblem(p);
    EXPECT_EQ(s.x, expected.x) << "seed " << seed;
    EXPECT_EQ(s.u, expected.u);
    EXPECT_EQ(s.cost, expected.cost);
    EXPECT_EQ(s.status, expected.status);
    EXPECT_EQ(s.iterations, expected.iterations);
    EXPECT_EQ(s.max_constraint_violation, 0.0);
  }
}

TEST(StageConstraintsTest, GeneralConstraintsHold) {
  // u_t[0] + x_t[1] <= h_t, time-varying, set below the unconstrained values.
  for (std::uint64_t seed = 0; seed < 6; ++seed) {
    Problem p = RandomLqrProblem(
        {.state_dim = 3, .control_dim = 2, .horizon = 10, .time_varying = true}, seed);
    p.options.max_iterations = 50;
    p.options.tolerance = 1e-10;
    const Solution free = SolveProblem(p);
    const int n = 3, m = 2, nt = 5, T = 10;
    p.constraint_count = 1;
    p.constraint_G.assign(static_cast<std::size_t>(T) * nt, 0.0);
    p.constraint_h.assign(T, 0.0);
    for (int t = 0; t < T; ++t) {
      p.constraint_G[t * nt + 1] = 1.0;
      p.constraint_G[t * nt + n] = 1.0;
      p.constraint_h[t] = free.u[t * m] + free.x[t * n + 1] - 0.1;
    }
    const Solution s = SolveProblem(p);
    EXPECT_EQ(s.status, SolveStatus::kConverged) << "seed " << seed;
    double worst = 0.0;
    for (int t = 0; t < T; ++t) {
      worst = std::max(worst, s.u[t * m] + s.x[t * n + 1] - p.constraint_h[t]);
    }
    EXPECT_LE(worst, p.options.constraint_tolerance) << "seed " << seed;
    EXPECT_GT(s.cost, free.cost);
  }
}

TEST(StageConstraintsTest, UnreachableBoundsAreInfeasibleWithAFiniteLeastViolatingAnswer) {
  Problem p = RandomLqrProblem({.state_dim = 3, .control_dim = 2, .horizon = 8}, 3);
  // |u| <= 1e-3 cannot move x far from its free motion, and the bound asks for x[0] >= 100.
  p.u_lower.assign(2, -1e-3);
  p.u_upper.assign(2, 1e-3);
  p.x_lower = {100.0, -kInf, -kInf};
  const Solution s = SolveProblem(p);
  EXPECT_EQ(s.status, SolveStatus::kInfeasible);
  EXPECT_GT(s.max_constraint_violation, 50.0);
  for (double v : s.x) EXPECT_TRUE(std::isfinite(v));
  for (double v : s.u) EXPECT_TRUE(std::isfinite(v));
  EXPECT_TRUE(std::isfinite(s.cost));
  EXPECT_EQ(s.max_constraint_violation, StateBoundViolation(p, s));
  // Least violating: it violates the bound less than the free answer does.
  Problem free = p;
  free.x_lower.clear();
  EXPECT_LT(s.max_constraint_violation, StateBoundViolation(p, SolveProblem(free)));
}

TEST(StageConstraintsTest, PendulumAngularVelocityBoundHolds) {
  Problem p = RandomPendulumProblem(RandomModelOptions{}, 1);
  const Solution free = SolveProblem(p);
  double peak = 0.0;
  for (int t = 1; t < p.shape.horizon; ++t) peak = std::max(peak, std::abs(free.x[t * 3 + 2]));
  const double bound = 0.5 * peak;
  p.x_lower = {-kInf, -kInf, -bound};
  p.x_upper = {kInf, kInf, bound};
  EXPECT_GT(StateBoundViolation(p, free), 0.1);  // the bound binds
  const Solution s = SolveProblem(p);
  EXPECT_NE(s.status, SolveStatus::kInfeasible);
  EXPECT_NE(s.status, SolveStatus::kNotFinite);
  EXPECT_LE(StateBoundViolation(p, s), p.options.constraint_tolerance);
  EXPECT_EQ(s.max_constraint_violation, std::max(0.0, StateBoundViolation(p, s)));
}

TEST(StageConstraintsTest, EveryProblemIsBitwiseTheSameAloneInABatchAndInTheDeviceLayout) {
  std::vector<Problem> problems;
  for (std::uint64_t seed = 0; seed < 4; ++seed) {
    problems.push_back(CappedProblem(seed, seed % 2 == 0));
    Problem general = RandomLqrProblem({.state_dim = 4, .control_dim = 2, .horizon = 12}, seed);
    general.constraint_count = 2;
    general.constraint_G = {0, 0, 0, 0, 1, 1, 0, 1, 0, 0, 0, -1};
    general.constraint_h = {0.2, 0.3};
    problems.push_back(general);
    problems.push_back(RandomLqrProblem({.state_dim = 4, .control_dim = 2, .horizon = 12}, seed));
  }
  std::vector<Solution> alone;
  for (const Problem& p : problems) alone.push_back(SolveProblem(p));
  std::vector<const Problem*> batch;
  for (const Problem& p : problems) batch.push_back(&p);

  auto backend = CpuBackend::Create({2});
  ASSERT_THAT(backend.status(), IsOk());
  std::vector<Solution> cpu(problems.size()), device(problems.size());
  std::vector<Solution*> cpu_out, device_out;
  for (std::size_t i = 0; i < problems.size(); ++i) {
    cpu_out.push_back(&cpu[i]);
    device_out.push_back(&device[i]);
  }
  ASSERT_THAT((*backend)->SolveBatch(batch, cpu_out), IsOk());
  ASSERT_THAT(core::SolveBatchOnHost<double>(batch, device_out), IsOk());
  for (std::size_t i = 0; i < problems.size(); ++i) {
    for (const Solution* s : {&cpu[i], &device[i]}) {
      EXPECT_EQ(s->x, alone[i].x) << "problem " << i;
      EXPECT_EQ(s->u, alone[i].u) << "problem " << i;
      EXPECT_EQ(s->cost, alone[i].cost);
      EXPECT_EQ(s->status, alone[i].status);
      EXPECT_EQ(s->max_constraint_violation, alone[i].max_constraint_violation);
    }
  }
}

TEST(StageConstraintsValidationTest, BadInputsAreRefusedNamingTheField) {
  const Problem base = RandomLqrProblem({.state_dim = 3, .control_dim = 2, .horizon = 5}, 0);
  const auto refused = [](const Problem& p, const char* text) {
    EXPECT_THAT(ValidateProblem(p, ProblemLimits(), "problems[0]."),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(text)));
  };
  Problem p = base;
  p.x_lower = {0, 0, 1};
  p.x_upper = {1, 1, 0};
  refused(p, "problems[0].x_lower: must be <= x_upper at [0,2]");
  p = base;
  p.x_upper = {1, std::nan(""), 1};
  refused(p, "problems[0].x_upper: not a number");
  p = base;
  p.x_lower = {1, 1};
  refused(p, "problems[0].x_lower: expected shape (3) or (5,3)");
  p = base;
  p.constraint_count = 1;
  p.constraint_G = {1, 0, 0, 0};  // n+m = 5 columns needed
  p.constraint_h = {1};
  refused(p, "problems[0].constraints.G: expected shape (1,5) or (5,1,5)");
  p.constraint_G = {1, 0, 0, 0, 0};
  p.constraint_h = {1, 2};
  refused(p, "problems[0].constraints.h: expected shape (1) or (5,1)");
  p.constraint_h = {kInf};
  refused(p, "problems[0].constraints.h: not finite");
  p.constraint_h = {1};
  EXPECT_THAT(ValidateProblem(p, ProblemLimits(), "problems[0]."), IsOk());
  p.options.method = SolverMethod::kCem;
  refused(p, "options.method: CEM does not take state bounds or constraints");
  p.options.method = SolverMethod::kIlqr;
  p.options.compute_x_init_jacobian = true;  // Jacobians of constrained problems are computed
  EXPECT_THAT(ValidateProblem(p, ProblemLimits(), "problems[0]."), IsOk());
  p = base;
  p.options.constraint_tolerance = 0;
  refused(p, "options.constraint_tolerance: must be > 0");
}

// The core's gradient through active state bounds (CPU backend, as BackwardBatch runs it) equals
// central differences of whole constrained solves for x_upper, c and x_init, in every mode (a
// linear problem: all three are the same derivative), with and without control bounds, and the
// specialised and run-time-sized passes agree.
TEST(StageConstraintsGradientTest, CapGradientsMatchDifferencesOfTheSolve) {
  for (bool bounded : {false, true}) {
    Problem p = CappedProblem(1, bounded);
    p.options.tolerance = 1e-13;
    p.options.constraint_tolerance = 1e-12;
    p.options.max_iterations = 100;
    p.options.max_constraint_iterations = 40;
    const Solution s = SolveProblem(p);
    ASSERT_EQ(s.status, SolveStatus::kConverged);
    const WeightedLoss loss(s);
    BackwardProblem backward = loss.At(&p, s, GradientMode::kDefault);
    auto backend = CpuBackend::Create({1});
    ASSERT_THAT(backend.status(), IsOk());
    for (GradientMode mode :
         {GradientMode::kDefault, GradientMode::kFullChain, GradientMode::kExact}) {
      backward.mode = mode;
      std::vector<const BackwardProblem*> problems = {&backward};
      ProblemGradient g;
      std::vector<ProblemGradient*> gradients = {&g};
      ASSERT_THAT((*backend)->BackwardBatch(problems, gradients), IsOk());
      EXPECT_EQ(g.status, GradientStatus::kOk);
      EXPECT_GT(g.active_constraints, 0);
      ASSERT_EQ(g.x_upper.size(), p.x_upper.size());
      EXPECT_TRUE(g.x_lower.empty());
      ProblemGradient dynamic;
      MakeDynamicSizeShapeBackward(p.shape)->Backward(backward, &dynamic);
      for (std::size_t e = 0; e < g.x_upper.size(); ++e) {
        EXPECT_NEAR(dynamic.x_upper[e], g.x_upper[e], 1e-12 * (1 + std::abs(g.x_upper[e])));
      }
      const auto difference = [&](std::vector<double>* input, std::size_t e) {
        const double eps = 1e-6, saved = (*input)[e];
        (*input)[e] = saved + eps;
        const double up = loss(SolveProblem(p));
        (*input)[e] = saved - eps;
        const double down = loss(SolveProblem(p));
        (*input)[e] = saved;
        return (up - down) / (2 * eps);
      };
      const int n = p.shape.state_dim;
      for (std::size_t e = 0; e < p.x_upper.size(); e += n) {  // coordinate 0 of every step
        if (std::isinf(p.x_upper[e])) {
          EXPECT_EQ(g.x_upper[e], 0.0);
          continue;
        }
        EXPECT_NEAR(g.x_upper[e], difference(&p.x_upper, e), 1e-5) << "x_upper[" << e << "]";
      }
      for (std::size_t e = 0; e < p.x_init.size(); ++e) {
        EXPECT_NEAR(g.x_init[e], difference(&p.x_init, e), 1e-5) << "x_init[" << e << "]";
      }
      for (std::size_t e = 0; e < 6; ++e) {
        EXPECT_NEAR(g.cost_linear[e], difference(&p.cost_linear, e), 1e-5) << "c[" << e << "]";
      }
    }
  }
}

}  // namespace
}  // namespace mpc
