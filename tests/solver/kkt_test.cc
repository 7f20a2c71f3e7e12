// iLQR on LQR problems against an independent dense KKT solve (STYLE rule 21). With linear dynamics
// and a strictly convex quadratic cost, one iLQR iteration is a full Newton step on the exact
// model, so it must land on the optimum (the line search accepts alpha = 1, which decreases the
// cost), from any warm start; the next iteration's step is then at round-off level and the solve
// converges.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "solver/cpu/ilqr.h"
#include "solver/problem.h"
#include "tests/testing/dense_kkt.h"
#include "tests/testing/max_abs.h"
#include "tests/testing/random_problems.h"
#include "tests/testing/status_matchers.h"

namespace mpc {
namespace {

using ::mpc::testing::DenseKktSolution;
using ::mpc::testing::IsOk;
using ::mpc::testing::MaxAbs;
using ::mpc::testing::MaxAbsDiff;
using ::mpc::testing::RandomLqrOptions;

// Agreement of two exact solutions computed differently (Riccati recursion vs dense LU): round-off
// only, relative to the size of the solution.
constexpr double kRelativeTolerance = 1e-9;

struct KktCase {
  std::string name;
  RandomLqrOptions options;
  std::uint64_t seed;
};

RandomLqrOptions Lqr(int n, int m, int horizon, bool time_varying, bool with_offset,
                     bool warm_start) {
  RandomLqrOptions o;
  o.state_dim = n;
  o.control_dim = m;
  o.horizon = horizon;
  o.time_varying = time_varying;
  o.with_offset = with_offset;
  o.warm_start = warm_start;
  return o;
}

std::vector<KktCase> Cases() {
  return {
      {"Scalar", Lqr(1, 1, 5, false, true, false), 11},
      {"TwoSteps", Lqr(3, 1, 2, false, true, false), 12},
      {"SmallInvariant", Lqr(3, 2, 10, false, true, false), 13},
      {"InvariantNoOffset", Lqr(4, 2, 12, false, false, false), 14},
      {"TimeVarying", Lqr(4, 1, 20, true, true, false), 15},
      {"TimeVaryingNoOffset", Lqr(6, 3, 15, true, false, false), 16},
      {"LongHorizon", Lqr(5, 2, 40, false, true, false), 17},
      {"MoreControlsThanStates", Lqr(2, 4, 8, true, true, false), 18},
      {"LargeDynamicSize", Lqr(12, 4, 25, true, true, false), 19},
      {"WarmStartInvariant", Lqr(3, 2, 10, false, true, true), 20},
      {"WarmStartTimeVarying", Lqr(5, 3, 16, true, true, true), 21},
  };
}

void ExpectMatchesDense(const Solution& s, const DenseKktSolution& dense) {
  ASSERT_EQ(s.x.size(), dense.x.size());
  ASSERT_EQ(s.u.size(), dense.u.size());
  EXPECT_LE(MaxAbsDiff(s.x, dense.x), kRelativeTolerance * std::max(1.0, MaxAbs(dense.x)));
  EXPECT_LE(MaxAbsDiff(s.u, dense.u), kRelativeTolerance * std::max(1.0, MaxAbs(dense.u)));
  EXPECT_NEAR(s.cost, dense.cost, kRelativeTolerance * std::max(1.0, std::abs(dense.cost)));
}

class KktTest : public ::testing::TestWithParam<KktCase> {
 protected:
  void SetUp() override {
    problem_ = testing::RandomLqrProblem(GetParam().options, GetParam().seed);
    ASSERT_THAT(ValidateProblemSizes(problem_), IsOk());
    ASSERT_THAT(ValidateProblem(problem_, ProblemLimits()), IsOk());
    absl::StatusOr<DenseKktSolution> dense = testing::SolveDenseKkt(problem_);
    ASSERT_THAT(dense, IsOk());
    dense_ = *std::move(dense);
    // The oracle's own linear solve must be accurate for the comparison to mean anything.
    ASSERT_LE(dense_.residual, 1e-11);
  }

  Problem problem_;
  DenseKktSolution dense_;
};

TEST_P(KktTest, OneIterationEqualsDenseKktSolution) {
  problem_.options.max_iterations = 1;
  const Solution s = SolveProblem(problem_);
  EXPECT_NE(s.status, SolveStatus::kNotFinite);
  EXPECT_EQ(s.iterations, 1);
  ExpectMatchesDense(s, dense_);
}

TEST_P(KktTest, FullSolveConvergesAfterTheExactStep) {
  const Solution s = SolveProblem(problem_);
  EXPECT_EQ(s.status, SolveStatus::kConverged) << SolveStatusName(s.status);
  // Iteration 1 is exact; iteration 2 only measures a round-off-sized step (mpc.pytorch: n_iter 2).
  EXPECT_LE(s.iterations, 2);
  EXPECT_LT(s.step_norm, problem_.options.tolerance);
  ExpectMatchesDense(s, dense_);
}

INSTANTIATE_TEST_SUITE_P(RandomLqr, KktTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<KktCase>& info) {
                           return info.param.name;
                         });

// Gradient of the cost with respect to u_t through the dynamics (x eliminated), by mpc.pytorch's
// adjoint recursion lam_t = C_{t,x:} tau_t + c_{t,x} + A_t' lam_{t+1}:
// g_t = C_{t,u:} tau_t + c_{t,u} + B_t' lam_{t+1}. Row-major (T, m).
std::vector<double> ReducedGradient(const Problem& p, const std::vector<double>& x,
                                    const std::vector<double>& u) {
  const int n = p.shape.state_dim;
  const int m = p.shape.control_dim;
  const int nt = n + m;
  std::vector<double> lam_next(n, 0.0);
  std::vector<double> lam(n);
  std::vector<double> grad(u.size());
  for (int t = p.shape.horizon - 1; t >= 0; --t) {
    const double* c_mat = testing::SliceAt(p.cost_quadratic, t, nt * nt);
    const double* c_vec = testing::SliceAt(p.cost_linear, t, nt);
    const double* f_mat =
        t + 1 < p.shape.horizon ? testing::SliceAt(p.transition, t, n * nt) : nullptr;
    for (int i = 0; i < nt; ++i) {
      double g = c_vec[i];
      for (int k = 0; k < n; ++k) g += c_mat[i * nt + k] * x[t * n + k];
      for (int k = 0; k < m; ++k) g += c_mat[i * nt + n + k] * u[t * m + k];
      if (f_mat != nullptr) {
        for (int k = 0; k < n; ++k) g += f_mat[k * nt + i] * lam_next[k];
      }
      if (i < n) {
        lam[i] = g;
      } else {
        grad[t * m + i - n] = g;
      }
    }
    lam_next = lam;
  }
  return grad;
}

// Box-constrained LQR has no dense-KKT oracle (the active set is unknown), but its first-order
// conditions are checkable: the reduced gradient vanishes on free controls and points into the box
// on active ones. The factory places the bounds so that some are active at the optimum.
TEST(BoxLqrTest, SolutionSatisfiesKktConditions) {
  for (const bool time_varying : {false, true}) {
    for (std::uint64_t seed = 30; seed < 36; ++seed) {
      SCOPED_TRACE(::testing::Message() << "time_varying=" << time_varying << " seed=" << seed);
      RandomLqrOptions options = Lqr(4, 2, 15, time_varying, true, false);
      options.bounded = true;
      Problem p = testing::RandomLqrProblem(options, seed);
      ASSERT_THAT(ValidateProblem(p, ProblemLimits()), IsOk());
      p.options.max_iterations = 50;
      p.options.tolerance = 1e-10;
      const Solution s = SolveProblem(p);
      EXPECT_EQ(s.status, SolveStatus::kConverged) << SolveStatusName(s.status);
      const std::vector<double> grad = ReducedGradient(p, s.x, s.u);
      const double scale = std::max(1.0, MaxAbs(grad));
      const int m = p.shape.control_dim;
      int active = 0;
      for (int t = 0; t < p.shape.horizon; ++t) {
        for (int j = 0; j < m; ++j) {
          const double lower = testing::SliceAt(p.u_lower, t, m)[j];
          const double upper = testing::SliceAt(p.u_upper, t, m)[j];
          const double v = s.u[t * m + j];
          const double g = grad[t * m + j];
          ASSERT_GE(v, lower);
          ASSERT_LE(v, upper);
          if (v == lower) {
            ++active;
            EXPECT_GE(g, -1e-9 * scale) << "t=" << t << " j=" << j << " at its lower bound";
          } else if (v == upper) {
            ++active;
            EXPECT_LE(g, 1e-9 * scale) << "t=" << t << " j=" << j << " at its upper bound";
          } else {
            EXPECT_NEAR(g, 0.0, 1e-8 * scale) << "t=" << t << " j=" << j << " free";
          }
        }
      }
      EXPECT_GT(active, 0) << "the factory's bounds should be active somewhere";
    }
  }
}

// The oracle checked on its own: feasible, first-order optimal (mpc.pytorch's costate recursion
// holds with the returned multipliers), and no random feasible perturbation has a lower cost.
TEST(DenseKktTest, SolutionIsFeasibleStationaryAndMinimal) {
  const Problem p = testing::RandomLqrProblem(Lqr(4, 2, 12, true, true, false), 7);
  absl::StatusOr<DenseKktSolution> dense = testing::SolveDenseKkt(p);
  ASSERT_THAT(dense, IsOk());
  const int n = p.shape.state_dim;
  const int m = p.shape.control_dim;
  const int nt = n + m;
  const int horizon = p.shape.horizon;

  EXPECT_LE(MaxAbsDiff(testing::Rollout(p, dense->u), dense->x), 1e-10);

  // lam_t = C_{t,x:} tau_t + c_{t,x} + A_t' lam_{t+1} (lam_T = 0), and in u:
  // C_{t,u:} tau_t + c_{t,u} + B_t' lam_{t+1} = 0.
  for (int t = 0; t < horizon; ++t) {
    const double* c_mat = testing::SliceAt(p.cost_quadratic, t, nt * nt);
    const double* c_vec = testing::SliceAt(p.cost_linear, t, nt);
    for (int i = 0; i < nt; ++i) {
      double g = c_vec[i];
      for (int k = 0; k < n; ++k) g += c_mat[i * nt + k] * dense->x[t * n + k];
      for (int k = 0; k < m; ++k) g += c_mat[i * nt + n + k] * dense->u[t * m + k];
      if (t + 1 < horizon) {
        const double* f_mat = testing::SliceAt(p.transition, t, n * nt);
        for (int k = 0; k < n; ++k) g += f_mat[k * nt + i] * dense->costate[(t + 1) * n + k];
      }
      const double expected = i < n ? dense->costate[t * n + i] : 0.0;
      EXPECT_NEAR(g, expected, 1e-10) << "t=" << t << " i=" << i;
    }
  }

  testing::Rng rng(99);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<double> u = dense->u;
    for (double& v : u) v += 1e-3 * rng.Normal();
    const std::vector<double> x = testing::Rollout(p, u);
    EXPECT_GT(testing::ProblemCost(p, x, u), dense->cost);
  }
}

TEST(DenseKktTest, RejectsBoundsAndNonlinearDynamics) {
  RandomLqrOptions bounded = Lqr(3, 2, 6, false, true, false);
  bounded.bounded = true;
  EXPECT_THAT(testing::SolveDenseKkt(testing::RandomLqrProblem(bounded, 3)),
              testing::StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(testing::SolveDenseKkt(testing::RandomPendulumProblem({}, 3)),
              testing::StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace mpc
