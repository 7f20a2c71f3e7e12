// State bounds on the nonlinear built-in models (issue 17): the cartpole swings up with its cart
// between rails that the unconstrained swing-up crosses. The constraints hold at the solution
// within the tolerance, the cost is at least the unconstrained one's, and the answer is the same
// bit for bit alone and in a batch with other problems.

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "gtest/gtest.h"
#include "solver/cpu/cpu_backend.h"
#include "solver/cpu/ilqr.h"
#include "solver/problem.h"
#include "tests/testing/device_layout_on_host.h"
#include "tests/testing/random_problems.h"
#include "tests/testing/status_matchers.h"

namespace mpc {
namespace {

using ::mpc::testing::IsOk;
using ::mpc::testing::RandomCartpoleProblem;
using ::mpc::testing::RandomModelOptions;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int kCartPosition = 0;  // mpc.pytorch's CartpoleDx: [x, dx, cos th, sin th, dth]

double LargestCartExcursion(const Problem& p, const Solution& s) {
  const int n = p.shape.state_dim;
  double largest = 0.0;
  for (int t = 1; t < p.shape.horizon; ++t) {
    largest = std::max(largest, std::abs(s.x[t * n + kCartPosition]));
  }
  return largest;
}

// A swing-up from near hanging (th ~ U(pi - 0.5, pi + 0.5)) over 40 steps, with the rails at
// half of the unconstrained solution's largest excursion: they bind.
Problem CartpoleOnRails(std::uint64_t seed, double* rail) {
  RandomModelOptions options;
  options.horizon = 40;
  options.th_half_width = 0.5;
  Problem p = RandomCartpoleProblem(options, seed);
  // RandomCartpoleProblem draws th around 0 (upright); turn it to hang.
  p.x_init[2] = -p.x_init[2];
  p.x_init[3] = -p.x_init[3];
  p.x_init[kCartPosition] = 0.0;
  const Solution free = SolveProblem(p);
  *rail = 0.5 * LargestCartExcursion(p, free);
  p.x_lower = {-*rail, -kInf, -kInf, -kInf, -kInf};
  p.x_upper = {*rail, kInf, kInf, kInf, kInf};
  return p;
}

TEST(ConstrainedModelsTest, CartpoleCartStaysBetweenTheRails) {
  for (std::uint64_t seed = 0; seed < 4; ++seed) {
    SCOPED_TRACE(seed);
    double rail = 0.0;
    Problem p = CartpoleOnRails(seed, &rail);
    ASSERT_GT(rail, 0.05);
    Problem free = p;
    free.x_lower.clear();
    free.x_upper.clear();
    const Solution unconstrained = SolveProblem(free);
    EXPECT_GT(LargestCartExcursion(p, unconstrained), 1.5 * rail);  // the rails bind

    const Solution s = SolveProblem(p);
    EXPECT_EQ(s.status, SolveStatus::kConverged);
    EXPECT_LE(LargestCartExcursion(p, s), rail + p.options.constraint_tolerance);
    EXPECT_LE(s.max_constraint_violation, p.options.constraint_tolerance);
    EXPECT_GE(s.cost, unconstrained.cost - 1e-9 * std::abs(unconstrained.cost));
  }
}

// The device layout runs the same core over interleaved problems (the CUDA kernels' layout,
// emulated on the host): a nonlinear constrained problem gives the same bits there.
TEST(ConstrainedModelsTest, CartpoleOnRailsIsTheSameAloneInABatchAndInTheDeviceLayout) {
  double rail = 0.0;
  std::vector<Problem> problems;
  for (std::uint64_t seed = 0; seed < 3; ++seed) problems.push_back(CartpoleOnRails(seed, &rail));
  problems.push_back(RandomCartpoleProblem({.horizon = 40}, 9));  // an unconstrained batch-mate
  auto backend = CpuBackend::Create({.threads = 2});
  ASSERT_THAT(backend.status(), IsOk());
  std::vector<const Problem*> batch;
  std::vector<Solution> cpu(problems.size()), device(problems.size());
  std::vector<Solution*> cpu_out, device_out;
  for (std::size_t i = 0; i < problems.size(); ++i) {
    batch.push_back(&problems[i]);
    cpu_out.push_back(&cpu[i]);
    device_out.push_back(&device[i]);
  }
  ASSERT_THAT((*backend)->SolveBatch(batch, cpu_out), IsOk());
  ASSERT_THAT(core::SolveBatchOnHost<double>(batch, device_out), IsOk());
  for (std::size_t i = 0; i < problems.size(); ++i) {
    const Solution alone = SolveProblem(problems[i]);
    for (const Solution* s : {&cpu[i], &device[i]}) {
      EXPECT_EQ(s->x, alone.x) << "problem " << i;
      EXPECT_EQ(s->u, alone.u) << "problem " << i;
      EXPECT_EQ(s->status, alone.status) << "problem " << i;
      EXPECT_EQ(s->max_constraint_violation, alone.max_constraint_violation) << "problem " << i;
    }
  }
}

}  // namespace
}  // namespace mpc
