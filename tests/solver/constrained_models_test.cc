// State bounds on the nonlinear built-in models (issue 17): the cartpole swings up with its cart
// between rails that the unconstrained swing-up crosses. The constraints hold at the solution
// within the tolerance, the cost is at least the unconstrained one's, and the answer is the same
// bit for bit alone and in a batch with other problems; its EXACT gradients equal central
// differences of the whole solve.

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "solver/cpu/cpu_backend.h"
#include "solver/cpu/ilqr.h"
#include "solver/gradients.h"
#include "solver/models/cartpole.h"
#include "solver/problem.h"
#include "solver/solution_jacobians.h"
#include "tests/testing/device_layout_on_host.h"
#include "tests/testing/random_problems.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/weighted_loss.h"

namespace mpc {
namespace {

using ::mpc::testing::IsOk;
using ::mpc::testing::RandomCartpoleProblem;
using ::mpc::testing::RandomModelOptions;
using ::mpc::testing::WeightedLoss;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int kCartPosition = 0;  // mpc.pytorch's CartpoleDx: [x, dx, cos th, sin th, dth]
// Gradients against central differences of whole solves (step 1e-4), relative to
// 1 + |difference|: the differences' own noise is about the solve's tolerance (3e-9) over the step.
constexpr double kGradientTolerance = 1e-5;

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

// The swing-up on rails solved about as far as the augmented Lagrangian goes (its control steps
// stall near 1e-10: at a tolerance of 1e-9 some of the perturbed solves below end at
// max_iterations, 40 times slower), with the model's parameters given (differentiated below).
// The perturbed solves below start from the solution (u_init): from zeros each took 2,000-5,000
// iterations of this nonconvex swing-up, and which local solution one reached, and the
// differences' noise, depended on the solver's last bits (a change of the Riccati kernels' rounding
// sent one perturbed solve to another solution, a difference of 2.5e4 against -21.4). Warm, every
// tolerance from 2e-9 to 8e-9 keeps the differences within 3.2e-6 of the gradients.
Problem CartpoleOnRailsForGradients() {
  double rail = 0.0;
  Problem p = CartpoleOnRails(0, &rail);
  p.params.assign(std::begin(CartpoleModel::kDefaultParams),
                  std::end(CartpoleModel::kDefaultParams));
  p.options.tolerance = 3e-9;
  p.options.constraint_tolerance = 1e-10;
  p.options.max_iterations = 300;
  p.options.max_constraint_iterations = 40;
  return p;
}

// In EXACT mode the pinned LQR with the dynamics' curvature is indefinite here (it answered
// GRADIENT_REGULARIZED with dL/dx_upper 7.91 against -21.38 from differences), while the LQR with
// the rails' active rows held as equalities is well posed: the gradient is the derivative of the
// solution map, equal to central differences of the whole solve, with status OK. Only the upper
// rail binds at this seed (dL/dx_lower is zero, as the differences say). Left out: x_init, whose
// differences for this swing-up change with the step (the solution map is nearly discontinuous
// in the initial state). DEFAULT and FULL_CHAIN keep H = C (positive definite, no penalty needed:
// status OK); by definition they are mpc.pytorch's approximations, not the derivative
// (dL/dx_upper 20.32), so only EXACT is compared with differences.
TEST(ConstrainedModelsTest, CartpoleOnRailsGradientsMatchDifferencesOfTheSolve) {
  Problem p = CartpoleOnRailsForGradients();
  const Solution s = SolveProblem(p);
  ASSERT_EQ(s.status, SolveStatus::kConverged);
  const WeightedLoss loss(s);
  BackwardProblem backward = loss.At(&p, s, GradientMode::kDefault);
  ProblemGradient g;
  for (GradientMode mode :
       {GradientMode::kDefault, GradientMode::kFullChain, GradientMode::kExact}) {
    backward.mode = mode;
    g = ComputeGradient(backward);
    EXPECT_EQ(g.status, GradientStatus::kOk)
        << GradientModeName(mode) << ": " << GradientStatusName(g.status);
    EXPECT_EQ(g.regularization, 0.0) << GradientModeName(mode);
    EXPECT_GT(g.active_constraints, 0) << GradientModeName(mode);
  }

  // The forward-mode Jacobian d tau / d params (EXACT) factorises the same LQR: J' dL/dtau is the
  // gradient.
  Problem with_jacobian = p;
  with_jacobian.options.compute_params_jacobian = true;
  with_jacobian.options.jacobian_mode = GradientMode::kExact;
  Solution jacobian = s;
  ComputeRequestedJacobians(with_jacobian, &jacobian);
  EXPECT_EQ(jacobian.jacobian_diagnostics.status, GradientStatus::kOk)
      << GradientStatusName(jacobian.jacobian_diagnostics.status);
  const int n = p.shape.state_dim, m = p.shape.control_dim, nt = n + m;
  const std::size_t np = p.params.size();
  ASSERT_EQ(jacobian.params_jacobian.size(), p.shape.horizon * nt * np);
  for (std::size_t k = 0; k < np; ++k) {
    double product = 0.0;
    for (int t = 0; t < p.shape.horizon; ++t) {
      for (int i = 0; i < nt; ++i) {
        const double w = i < n ? backward.dl_dx[t * n + i] : backward.dl_du[t * m + i - n];
        product += jacobian.params_jacobian[(t * nt + i) * np + k] * w;
      }
    }
    EXPECT_NEAR(product, g.params[k], 1e-9 * (1 + std::abs(g.params[k]))) << "params[" << k << "]";
  }

  p.u_init = s.u;  // the perturbed solves stay on the solution's branch
  const auto difference = [&](std::vector<double>* input, std::size_t e) {
    const double eps = 1e-4, saved = (*input)[e];
    (*input)[e] = saved + eps;
    const Solution up = SolveProblem(p);
    (*input)[e] = saved - eps;
    const Solution down = SolveProblem(p);
    (*input)[e] = saved;
    EXPECT_EQ(up.status, SolveStatus::kConverged);
    EXPECT_EQ(down.status, SolveStatus::kConverged);
    return (loss(up) - loss(down)) / (2 * eps);
  };
  const auto expect_near = [](double gradient, double fd, const char* what, std::size_t e) {
    EXPECT_NEAR(gradient, fd, kGradientTolerance * (1 + std::abs(fd))) << what << "[" << e << "]";
  };
  expect_near(g.x_upper[kCartPosition], difference(&p.x_upper, kCartPosition), "x_upper",
              kCartPosition);
  expect_near(g.x_lower[kCartPosition], difference(&p.x_lower, kCartPosition), "x_lower",
              kCartPosition);
  for (std::size_t e = 0; e < p.params.size(); ++e) {
    expect_near(g.params[e], difference(&p.params, e), "params", e);
  }
  for (std::size_t e = 0; e < p.cost_linear.size(); ++e) {
    expect_near(g.cost_linear[e], difference(&p.cost_linear, e), "c", e);
  }
}

// The device layout runs the same core over interleaved problems (the CUDA kernels' layout,
// emulated on the host): a nonlinear constrained problem gives the same bits there as on a CPU
// worker, alone or in a batch. (The unconstrained batch-mate's line search takes four trials at
// once on a CPU worker, with libmvec's transcendentals, and one at a time in the device layout:
// its bits are those of the CPU worker that also takes them one at a time.)
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
    Solution one_trial_at_a_time;
    MakeOneSampleAtATimeShapeSolver(problems[i].shape)->Solve(problems[i], &one_trial_at_a_time);
    using Compared = std::pair<const Solution*, const Solution*>;
    for (const auto& [s, expected] :
         {Compared{&cpu[i], &alone}, Compared{&device[i], &one_trial_at_a_time}}) {
      EXPECT_EQ(s->x, expected->x) << "problem " << i;
      EXPECT_EQ(s->u, expected->u) << "problem " << i;
      EXPECT_EQ(s->status, expected->status) << "problem " << i;
      EXPECT_EQ(s->max_constraint_violation, expected->max_constraint_violation) << "problem " << i;
    }
    if (i < 3) {  // constrained: one trial at a time on every executor
      EXPECT_EQ(alone.x, one_trial_at_a_time.x) << "problem " << i;
      EXPECT_EQ(alone.u, one_trial_at_a_time.u) << "problem " << i;
    }
  }
}

}  // namespace
}  // namespace mpc
