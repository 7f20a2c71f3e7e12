// mpcd's iLQR against the reference vectors produced by locuslab/mpc.pytorch
// (tests/data/mpc_pytorch, see its README.md). Every case listed in index.json becomes one
// instance of ReferenceCaseTest; each batch element is solved on its own with mpc::SolveProblem and
// the options of the file's mpc_settings.
//
// How tolerances are chosen (every number comes from the case's own file):
//
// * mpcd is not meant to reproduce mpc.pytorch's iterates: where mpc.pytorch stops short of the
//   optimum (any case with bounds, because its box QP `pnqp` stops at a 1e-4 Newton step), mpcd's
//   exact box QP goes on to the optimum. The file records that optimum independently in
//   `crosscheck` (LQR: an exact active-set QP solve; pendulum/cartpole: `crosscheck.polished`,
//   projected Newton with the exact Hessian) and how far mpc.pytorch's answer is from it (d =
//   `mpc_pytorch_minus_exact` or `polished.max_abs_*_mpc_minus_polished`, per quantity).
// * Against the exact optimum, x and u must agree to tol_opt = max(1e-9, 10 * eps): mpcd stops when
//   its full step ||du||_2 is below eps (the file's mpc_settings.eps), and a Newton-type step
//   estimates the distance to the optimum; the factor 10 covers the propagation of an error in u to
//   x through the dynamics and the merely linear (Gauss-Newton) convergence on nonlinear models;
//   1e-9 is the file's own floor for x and u and covers the round-off of the Riccati recursion. The
//   cost must agree to tol_opt * max(1, |cost|) (it is stationary at the optimum, so this is
//   loose).
// * Against mpc.pytorch's outputs, the triangle inequality gives |mpcd - outputs| <= tol_opt + d;
//   we allow tol_opt + 2 d (a safety factor of 2 on the file's measured distance), but never more
//   than the file's `suggested_tolerance` (10 d floored at 1e-9 / 1e-8). For the exact cases
//   (unconstrained, and the clean LQR box cases, where d is at round-off level) this is the
//   suggested tolerance; for lqr_boxinexact_* and the constrained pendulum/cartpole cases it is
//   2 d + tol_opt, i.e. tighter than the 10 d heuristic.
// * Bounds hold exactly (controls are clamped), every element reports CONVERGED, x is the rollout
//   of u through the true dynamics, and the reported cost is the cost of (x, u).
// * LQR only: the active set (|u - bound| <= 1e-8, the rule mpc.pytorch's backward uses) equals
//   the exact optimum's. The file's min_strict_complementarity (>= 1e-4) guarantees the exact
//   active set is unambiguous at that threshold, since tol_opt is far smaller.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "solver/cpu/ilqr.h"
#include "solver/problem.h"
#include "tests/testing/active_set.h"
#include "tests/testing/dense_kkt.h"
#include "tests/testing/max_abs.h"
#include "tests/testing/reference_case.h"
#include "tests/testing/reference_case_fixture.h"
#include "tests/testing/status_matchers.h"

namespace mpc {
namespace {

using ::mpc::testing::IsOk;
using ::mpc::testing::MaxAbs;
using ::mpc::testing::MaxAbsDiff;
using ::mpc::testing::ReferenceCase;
using ::mpc::testing::ReferenceTrajectory;

// The active-set threshold of mpc.pytorch's backward (README "Backward").
constexpr double kActiveTolerance = 1e-8;

struct Tolerances {
  double opt_x_u = 0.0;   // x, u against the exact optimum
  double opt_cost = 0.0;  // cost against the exact optimum (absolute, for this element)
  double out_x = 0.0;     // x against mpc.pytorch's outputs
  double out_u = 0.0;     // u against mpc.pytorch's outputs
  double out_cost = 0.0;  // cost against mpc.pytorch's outputs
};

// See the comment at the top of this file.
Tolerances TolerancesFor(const ReferenceCase& rc, int b) {
  Tolerances tol;
  tol.opt_x_u = std::max(1e-9, 10.0 * rc.options.tolerance);
  tol.opt_cost = tol.opt_x_u * std::max(1.0, std::abs(rc.exact[b].cost));
  const testing::MeasuredDistance& d = rc.outputs_minus_exact;
  tol.out_x = std::min(rc.suggested.x_u_abs, tol.opt_x_u + 2.0 * d.x);
  tol.out_u = std::min(rc.suggested.x_u_abs, tol.opt_x_u + 2.0 * d.u);
  tol.out_cost = std::min(rc.suggested.cost_abs, tol.opt_cost + 2.0 * d.cost);
  return tol;
}

// -1 at the lower bound, +1 at the upper, 0 free, row-major (T, m); all 0 without bounds.
std::vector<int> ActiveSet(const Problem& p, const std::vector<double>& u) {
  return testing::ControlActiveSet(p, u, kActiveTolerance);
}

TEST(ReferenceDataTest, IndexListsLoadableCases) {
  const std::string dir = testing::ReferenceDir();
  MPC_ASSERT_OK_AND_ASSIGN(const std::vector<std::string> ids, testing::ListReferenceCases(dir));
  ASSERT_FALSE(ids.empty()) << dir << "/index.json lists no case";
  for (const std::string& id : ids) {
    SCOPED_TRACE(id);
    MPC_ASSERT_OK_AND_ASSIGN(const ReferenceCase rc, testing::LoadReferenceCase(dir, id));
    EXPECT_EQ(rc.case_id, id);
    ASSERT_EQ(rc.problems.size(), static_cast<std::size_t>(rc.n_batch));
    for (const Problem& p : rc.problems) {
      EXPECT_THAT(ValidateProblemSizes(p), IsOk());
      EXPECT_THAT(ValidateProblem(p, ProblemLimits()), IsOk());
    }
  }
}

// The folder holds exactly the cases its index lists (a file dropped from the index, or a case
// whose file is gone, is noticed), and all 23 of them are there.
TEST(ReferenceDataTest, FolderHoldsEveryListedCase) {
  const std::string dir = testing::ReferenceDir();
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<std::string> ids, testing::ListReferenceCases(dir));
  std::vector<std::string> files;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    const std::filesystem::path& path = entry.path();
    if (path.extension() == ".json" && path.filename() != "index.json") {
      files.push_back(path.stem().string());
    }
  }
  ASSERT_FALSE(error) << dir << ": " << error.message();
  std::sort(ids.begin(), ids.end());
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files, ids);
  EXPECT_EQ(ids.size(), 23u);
}

class ReferenceCaseTest : public testing::ReferenceCaseFixture {
 protected:
  void SetUp() override {
    ReferenceCaseFixture::SetUp();
    if (HasFatalFailure()) return;
    for (const Problem& p : rc_.problems) solutions_.push_back(SolveProblem(p));
  }

  std::vector<Solution> solutions_;
};

TEST_P(ReferenceCaseTest, MatchesExactOptimumAndMpcPytorch) {
  const int n = rc_.n_state;
  const int m = rc_.n_ctrl;
  const std::size_t horizon = rc_.horizon;
  for (int b = 0; b < rc_.n_batch; ++b) {
    SCOPED_TRACE(absl::StrCat(rc_.case_id, " batch element ", b));
    const Solution& s = solutions_[b];
    ASSERT_EQ(s.x.size(), horizon * n);
    ASSERT_EQ(s.u.size(), horizon * m);
    const ReferenceTrajectory& exact = rc_.exact[b];
    const ReferenceTrajectory& out = rc_.outputs[b];
    const Tolerances tol = TolerancesFor(rc_, b);
    const double ex_x = MaxAbsDiff(s.x, exact.x);
    const double ex_u = MaxAbsDiff(s.u, exact.u);
    const double ex_cost = std::abs(s.cost - exact.cost);
    const double out_x = MaxAbsDiff(s.x, out.x);
    const double out_u = MaxAbsDiff(s.u, out.u);
    const double out_cost = std::abs(s.cost - out.cost);
    // One line per element, so that a run documents how close every case is (and failures are
    // easy to triage): distances to the exact optimum, to mpc.pytorch, and the limits used.
    std::printf(
        "[reference] %s b=%d status=%s iters=%d step=%.1e | exact: x %.1e u %.1e cost %.1e (tol "
        "%.1e/%.1e) | outputs: x %.1e u %.1e cost %.1e (tol %.1e/%.1e/%.1e)\n",
        rc_.case_id.c_str(), b, SolveStatusName(s.status), s.iterations, s.step_norm, ex_x, ex_u,
        ex_cost, tol.opt_x_u, tol.opt_cost, out_x, out_u, out_cost, tol.out_x, tol.out_u,
        tol.out_cost);
    EXPECT_LE(ex_x, tol.opt_x_u) << "x vs the exact optimum";
    EXPECT_LE(ex_u, tol.opt_x_u) << "u vs the exact optimum";
    EXPECT_LE(ex_cost, tol.opt_cost)
        << "cost " << s.cost << " vs the exact optimum's " << exact.cost;
    EXPECT_LE(out_x, tol.out_x) << "x vs mpc.pytorch";
    EXPECT_LE(out_u, tol.out_u) << "u vs mpc.pytorch";
    EXPECT_LE(out_cost, tol.out_cost) << "cost " << s.cost << " vs mpc.pytorch's " << out.cost;
  }
}

TEST_P(ReferenceCaseTest, ConvergesToAFeasibleTrajectory) {
  const int m = rc_.n_ctrl;
  for (int b = 0; b < rc_.n_batch; ++b) {
    SCOPED_TRACE(absl::StrCat(rc_.case_id, " batch element ", b));
    const Problem& p = rc_.problems[b];
    const Solution& s = solutions_[b];
    EXPECT_EQ(s.status, SolveStatus::kConverged)
        << SolveStatusName(s.status) << " after " << s.iterations << " iterations, step norm "
        << s.step_norm << " (tolerance " << p.options.tolerance << ")";
    EXPECT_LE(s.iterations, p.options.max_iterations);
    EXPECT_LT(s.step_norm, p.options.tolerance);

    // The returned x is the rollout of the returned u, from x_init.
    ASSERT_EQ(s.u.size(), static_cast<std::size_t>(rc_.horizon) * m);
    const std::vector<double> rollout = testing::Rollout(p, s.u);
    EXPECT_LE(MaxAbsDiff(s.x, rollout), 1e-12 * std::max(1.0, MaxAbs(rollout)))
        << "x is not the rollout of u";
    for (int i = 0; i < rc_.n_state; ++i) EXPECT_EQ(s.x[i], p.x_init[i]) << "x_0 != x_init";

    // The reported cost is the cost of the returned trajectory.
    const double cost = testing::ProblemCost(p, s.x, s.u);
    EXPECT_NEAR(s.cost, cost, 1e-12 * std::max(1.0, std::abs(cost)));

    // Bounds are hard: controls are clamped, so they hold without slack.
    if (p.u_lower.empty()) continue;
    for (int t = 0; t < rc_.horizon; ++t) {
      const double* lo = testing::SliceAt(p.u_lower, t, m);
      const double* hi = testing::SliceAt(p.u_upper, t, m);
      for (int j = 0; j < m; ++j) {
        EXPECT_GE(s.u[t * m + j], lo[j]) << "u[" << t << "][" << j << "] below its bound";
        EXPECT_LE(s.u[t * m + j], hi[j]) << "u[" << t << "][" << j << "] above its bound";
      }
    }
  }
}

TEST_P(ReferenceCaseTest, FindsTheExactActiveSet) {
  if (!rc_.is_lqr()) {
    GTEST_SKIP() << "the file gives no strict-complementarity margin for nonlinear cases, so their "
                    "active set at 1e-8 is not guaranteed unambiguous";
  }
  for (int b = 0; b < rc_.n_batch; ++b) {
    SCOPED_TRACE(absl::StrCat(rc_.case_id, " batch element ", b));
    const Problem& p = rc_.problems[b];
    const std::vector<int> expected = ActiveSet(p, rc_.exact[b].u);
    if (rc_.min_strict_complementarity[b].has_value()) {
      ASSERT_GT(*rc_.min_strict_complementarity[b], 100.0 * TolerancesFor(rc_, b).opt_x_u)
          << "the active set of this case is too close to degenerate for this check";
    }
    EXPECT_EQ(ActiveSet(p, solutions_[b].u), expected);
    // Not a check on mpcd: documents whether mpc.pytorch found the same active set.
    if (rc_.active[b] != expected) {
      std::printf("[reference] %s b=%d: mpc.pytorch's outputs.active differs from the exact one\n",
                  rc_.case_id.c_str(), b);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(MpcPytorch, ReferenceCaseTest,
                         ::testing::ValuesIn(testing::ReferenceCaseIds()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return testing::ReferenceCaseTestName(info.param);
                         });

}  // namespace
}  // namespace mpc
