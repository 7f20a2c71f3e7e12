// Implicit gradients and Jacobians of the MPC solution (solver/cpu/implicit_backward.h).
//
// Oracles (STYLE rule 21), never golden numbers:
// * the mpc.pytorch reference files (tests/data/mpc_pytorch): grads.* at mpc.pytorch's
//   own solution, crosscheck.mpc_grads_at_polished, crosscheck.params_grad_variants and
//   crosscheck.exact_grads_fd (the true derivative, by central differences); every number is read
//   from the files at run time;
// * central finite differences of the whole converged solve (mpcd's own iLQR, run to a tight
//   tolerance and warm-started at the nominal solution) on seeded random problems, for every input
//   kind; for mpc.pytorch's definition on models, finite differences of the solve of the LQR
//   approximation that definition differentiates;
// * consistency: Jacobians against vector-Jacobian products, du_0/dx_init against the forward
//   solver's K_0, batched against unbatched, fixed-size against dynamic-size workspaces.

#include "solver/cpu/implicit_backward.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "Eigen/Core"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "solver/cpu/cpu_backend.h"
#include "solver/cpu/ilqr.h"
#include "solver/gradients.h"
#include "solver/models/cartpole.h"
#include "solver/models/model_derivatives.h"
#include "solver/models/model_list.h"
#include "solver/models/model_registry.h"
#include "solver/models/pendulum.h"
#include "tests/testing/active_set.h"
#include "tests/testing/dense_kkt.h"
#include "tests/testing/max_abs.h"
#include "tests/testing/random_problems.h"
#include "tests/testing/reference_case.h"
#include "tests/testing/reference_case_fixture.h"
#include "tests/testing/status_matchers.h"

namespace mpc {
namespace {

using ::mpc::testing::ElementOfBatchFirst;
using ::mpc::testing::ElementOfTimeFirst;
using ::mpc::testing::Flatten;
using ::mpc::testing::IsOk;
using ::mpc::testing::MaxAbs;
using ::mpc::testing::ReferenceCase;
using ::mpc::testing::Rng;

// ---------------------------------------------------------------------------------------------
// Helpers

// max |got - want| / max |want|: the error relative to the array's scale (elementwise relative
// errors are meaningless for entries that are zero up to rounding).
double RelativeError(const std::vector<double>& got, const std::vector<double>& want) {
  EXPECT_EQ(got.size(), want.size());
  double d = 0.0;
  for (std::size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    d = std::max(d, std::abs(got[i] - want[i]));
  }
  const double scale = MaxAbs(want);
  return scale > 0.0 ? d / scale : d;
}

double Dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0.0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) s += a[i] * b[i];
  return s;
}

double Norm(const std::vector<double>& a) { return std::sqrt(Dot(a, a)); }

void AddTo(const std::vector<double>& a, std::vector<double>* sum) {
  if (sum->empty()) sum->assign(a.size(), 0.0);
  for (std::size_t i = 0; i < a.size(); ++i) (*sum)[i] += a[i];
}

bool AllFinite(const ProblemGradient& g) {
  for (const std::vector<double>* v :
       {&g.x_init, &g.cost_quadratic, &g.cost_linear, &g.transition, &g.offset, &g.params}) {
    for (double x : *v) {
      if (!std::isfinite(x)) return false;
    }
  }
  return true;
}

BackwardProblem MakeBackward(const Problem& problem, const std::vector<double>& x,
                             const std::vector<double>& u, std::vector<double> dl_dx,
                             std::vector<double> dl_du, GradientMode mode) {
  BackwardProblem bp;
  bp.problem = &problem;
  bp.x = x;
  bp.u = u;
  bp.dl_dx = std::move(dl_dx);
  bp.dl_du = std::move(dl_du);
  bp.mode = mode;
  return bp;
}

// ---------------------------------------------------------------------------------------------
// The reference data.

class ReferenceGradientTest : public testing::ReferenceCaseFixture {
 protected:
  // The gradient of the file's loss (loss.Wx, loss.Wu) for element b at (x, u).
  ProblemGradient Gradient(int b, const std::vector<double>& x, const std::vector<double>& u,
                           GradientMode mode) const {
    const nlohmann::json& loss = rc_.raw.at("loss");
    const BackwardProblem bp =
        MakeBackward(rc_.problems[b], x, u, ElementOfTimeFirst(loss.at("Wx"), b),
                     ElementOfTimeFirst(loss.at("Wu"), b), mode);
    EXPECT_THAT(ValidateBackwardProblem(bp), IsOk());
    ProblemGradient g = ComputeGradient(bp);
    EXPECT_TRUE(AllFinite(g));
    return g;
  }
};

// How tolerances are chosen (numbers from the files):
// * Where mpcd evaluates mpc.pytorch's formulas at the point mpc.pytorch used (grads.* at
// outputs.x/u,
//   mpc_grads_at_polished at the polished solution, params_grad_variants), the two computations
//   differ only by rounding, so we require the file's own gradient floor
//   (suggested_tolerance.grad_rel is "floored at 1e-9": the precision the file vouches for)
//   whatever the solution's inexactness.
// * exact_grads_fd are central differences (h = 1e-6) of L at the polished solution, whose inner
//   solves stop at projected gradients ~1e-12 (crosscheck.polished.projected_grad_inf_norm): an
//   error of ~1e-12 |W| in L over 2h = 2e-6 gives ~1e-6 of the gradients' scale, so we allow
//   kFiniteDifferenceRel = 1e-5. The check is only meaningful where mpc.pytorch's definition is
//   measurably farther from the truth, which the test asserts from the file
//   (exact_grads_fd.max_rel_diff_mpc_*).
constexpr double kFiniteDifferenceRel = 1e-5;

double GradFloor(const ReferenceCase& rc) { return std::min(rc.suggested.grad_rel, 1e-9); }

TEST_P(ReferenceGradientTest, DefaultModeReproducesMpcPytorchGradsAtItsSolution) {
  const nlohmann::json& grads = rc_.raw.at("grads");
  const double tol = GradFloor(rc_);
  std::vector<double> params;
  for (int b = 0; b < rc_.n_batch; ++b) {
    SCOPED_TRACE(absl::StrCat(rc_.case_id, " b=", b));
    const ProblemGradient g =
        Gradient(b, rc_.outputs[b].x, rc_.outputs[b].u, GradientMode::kDefault);
    EXPECT_EQ(g.status, GradientStatus::kOk) << GradientStatusName(g.status);
    // The pinned set is outputs.active (same rule, same point).
    int active = 0;
    for (int a : rc_.active[b]) active += a != 0 ? 1 : 0;
    EXPECT_EQ(g.active_controls, active);
    EXPECT_LE(RelativeError(g.x_init, ElementOfBatchFirst(grads.at("x_init"), b)), tol);
    EXPECT_LE(RelativeError(g.cost_quadratic, ElementOfTimeFirst(grads.at("C"), b)), tol);
    EXPECT_LE(RelativeError(g.cost_linear, ElementOfTimeFirst(grads.at("c"), b)), tol);
    if (rc_.is_lqr()) {
      EXPECT_LE(RelativeError(g.transition, ElementOfTimeFirst(grads.at("F"), b)), tol);
      EXPECT_LE(RelativeError(g.offset, ElementOfTimeFirst(grads.at("f"), b)), tol);
      EXPECT_TRUE(g.params.empty());
    } else {
      EXPECT_TRUE(g.transition.empty());
      AddTo(g.params, &params);
    }
  }
  // mpc.pytorch's params are shared by the batch, so its grads.params is the sum over elements.
  if (!rc_.is_lqr()) {
    EXPECT_LE(RelativeError(params, Flatten(grads.at("params"))), tol);
  }
}

TEST_P(ReferenceGradientTest, LqrGradientsAtTheExactOptimumAreExact) {
  if (!rc_.is_lqr()) GTEST_SKIP() << "crosscheck.grads exists for LQR cases only";
  const nlohmann::json& exact = rc_.raw.at("crosscheck").at("grads");
  for (int b = 0; b < rc_.n_batch; ++b) {
    SCOPED_TRACE(absl::StrCat(rc_.case_id, " b=", b));
    const ProblemGradient g = Gradient(b, rc_.exact[b].x, rc_.exact[b].u, GradientMode::kDefault);
    EXPECT_LE(RelativeError(g.x_init, ElementOfBatchFirst(exact.at("x_init"), b)), GradFloor(rc_));
    // Linear dynamics have no curvature: every mode is the same computation.
    for (GradientMode mode : {GradientMode::kFullChain, GradientMode::kExact}) {
      const ProblemGradient other = Gradient(b, rc_.exact[b].x, rc_.exact[b].u, mode);
      EXPECT_EQ(other.x_init, g.x_init);
      EXPECT_EQ(other.cost_quadratic, g.cost_quadratic);
      EXPECT_EQ(other.transition, g.transition);
    }
  }
}

TEST_P(ReferenceGradientTest, DefaultModeReproducesMpcGradsAtPolished) {
  if (rc_.is_lqr()) GTEST_SKIP() << "mpc_grads_at_polished exists for nonlinear cases only";
  const nlohmann::json& at_polished = rc_.raw.at("crosscheck").at("mpc_grads_at_polished");
  std::vector<double> params;
  for (int b = 0; b < rc_.n_batch; ++b) {
    SCOPED_TRACE(absl::StrCat(rc_.case_id, " b=", b));
    const ProblemGradient g = Gradient(b, rc_.exact[b].x, rc_.exact[b].u, GradientMode::kDefault);
    EXPECT_LE(RelativeError(g.x_init, ElementOfBatchFirst(at_polished.at("x_init"), b)),
              GradFloor(rc_));
    AddTo(g.params, &params);
  }
  EXPECT_LE(RelativeError(params, Flatten(at_polished.at("params"))), GradFloor(rc_));
}

TEST_P(ReferenceGradientTest, ParamsVariantsReproduceBothOfMpcPytorchs) {
  if (rc_.is_lqr()) GTEST_SKIP() << "linear dynamics have no parameters";
  const nlohmann::json& variants = rc_.raw.at("crosscheck").at("params_grad_variants");
  std::vector<double> f_only, through_f_and_f;
  for (int b = 0; b < rc_.n_batch; ++b) {
    const ProblemGradient d =
        Gradient(b, rc_.outputs[b].x, rc_.outputs[b].u, GradientMode::kDefault);
    const ProblemGradient full =
        Gradient(b, rc_.outputs[b].x, rc_.outputs[b].u, GradientMode::kFullChain);
    AddTo(d.params, &f_only);
    AddTo(full.params, &through_f_and_f);
    // The variants differ in params only.
    EXPECT_EQ(full.x_init, d.x_init);
    EXPECT_EQ(full.cost_quadratic, d.cost_quadratic);
  }
  EXPECT_LE(RelativeError(f_only, Flatten(variants.at("f_only"))), GradFloor(rc_));
  EXPECT_LE(RelativeError(through_f_and_f, Flatten(variants.at("through_F_and_f"))),
            GradFloor(rc_));
}

TEST_P(ReferenceGradientTest, ExactModeIsTheTrueDerivativeAtPolished) {
  if (rc_.is_lqr()) GTEST_SKIP() << "exact_grads_fd exists for nonlinear cases only";
  const nlohmann::json& fd = rc_.raw.at("crosscheck").at("exact_grads_fd");
  // The check must be able to tell the exact gradient from mpc.pytorch's.
  ASSERT_GT(fd.at("max_rel_diff_mpc_x_init").get<double>(), 10.0 * kFiniteDifferenceRel);
  ASSERT_GT(fd.at("max_rel_diff_mpc_params").get<double>(), 10.0 * kFiniteDifferenceRel);
  std::vector<double> params;
  for (int b = 0; b < rc_.n_batch; ++b) {
    SCOPED_TRACE(absl::StrCat(rc_.case_id, " b=", b));
    const ProblemGradient g = Gradient(b, rc_.exact[b].x, rc_.exact[b].u, GradientMode::kExact);
    EXPECT_EQ(g.status, GradientStatus::kOk) << GradientStatusName(g.status);
    EXPECT_LE(RelativeError(g.x_init, ElementOfBatchFirst(fd.at("x_init"), b)),
              kFiniteDifferenceRel);
    AddTo(g.params, &params);
  }
  const double params_error = RelativeError(params, Flatten(fd.at("params")));
  std::printf("[reference] %s exact-mode params vs exact_grads_fd: %.1e (mpc.pytorch's: %.1e)\n",
              rc_.case_id.c_str(), params_error, fd.at("max_rel_diff_mpc_params").get<double>());
  EXPECT_LE(params_error, kFiniteDifferenceRel);
}

INSTANTIATE_TEST_SUITE_P(MpcPytorch, ReferenceGradientTest,
                         ::testing::ValuesIn(testing::ReferenceCaseIds()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return testing::ReferenceCaseTestName(info.param);
                         });

// ---------------------------------------------------------------------------------------------
// Finite differences of the whole converged solve.

std::vector<double> RandomVector(Rng& rng, std::size_t size) {
  std::vector<double> v(size);
  for (double& x : v) x = rng.Normal();
  return v;
}

// L = sum(wx * x) + sum(wu * u), like the reference files' loss.
struct Loss {
  std::vector<double> wx;  // (T, n)
  std::vector<double> wu;  // (T, m)

  static Loss Random(const ProblemShape& shape, std::uint64_t seed) {
    Rng rng(seed);
    return {RandomVector(rng, static_cast<std::size_t>(shape.horizon) * shape.state_dim),
            RandomVector(rng, static_cast<std::size_t>(shape.horizon) * shape.control_dim)};
  }
  double operator()(const std::vector<double>& x, const std::vector<double>& u) const {
    return Dot(wx, x) + Dot(wu, u);
  }
};

// -1 / +1 at the lower / upper bound (mpc.pytorch's 1e-8 rule), 0 free.
std::vector<int> ActiveSet(const Problem& p, const std::vector<double>& u) {
  return testing::ControlActiveSet(p, u, kActiveSetTolerance);
}

int CountActive(const std::vector<int>& active) {
  int count = 0;
  for (int a : active) count += a != 0 ? 1 : 0;
  return count;
}

// The converged solve finite differences need: many iterations, a step tolerance far below the
// perturbations (1e-10: mpcd's iLQR stalls at step norms of ~1e-11 on some model problems, the
// rounding floor of its line search), warm-started at `warm` (the nominal solution, so that every
// perturbed solve lands on the same local optimum).
Solution SolveTight(Problem p, const std::vector<double>& warm) {
  p.options.max_iterations = 5000;
  p.options.tolerance = 1e-10;
  p.options.not_improved_limit = 1 << 20;
  if (!warm.empty()) p.u_init = warm;
  return SolveProblem(p);
}

// An input of a Problem and the matching gradient array.
struct InputKind {
  const char* name;
  std::vector<double> Problem::*input;
  std::vector<double> ProblemGradient::*gradient;
  bool per_component;  // small inputs are checked component by component
};

const InputKind kXInit{"x_init", &Problem::x_init, &ProblemGradient::x_init, true};
const InputKind kCostQuadratic{"cost.quadratic", &Problem::cost_quadratic,
                               &ProblemGradient::cost_quadratic, false};
const InputKind kCostLinear{"cost.linear", &Problem::cost_linear, &ProblemGradient::cost_linear,
                            false};
const InputKind kTransition{"transition", &Problem::transition, &ProblemGradient::transition,
                            false};
const InputKind kOffset{"offset", &Problem::offset, &ProblemGradient::offset, false};
const InputKind kParams{"params", &Problem::params, &ProblemGradient::params, true};

// The fourth-order central difference (-y(2h) + 8 y(h) - 8 y(-h) + y(-2h)) / 12h, truncation
// error O(h^4), of y(s) = value(problem with `input` + s `direction`).
double FiniteDifference(const Problem& problem, std::vector<double> Problem::*input,
                        const std::vector<double>& direction, double h,
                        const std::function<double(const Problem&)>& value) {
  const double steps[4] = {2.0, 1.0, -1.0, -2.0};
  const double weights[4] = {-1.0, 8.0, -8.0, 1.0};
  double sum = 0.0;
  for (int k = 0; k < 4; ++k) {
    Problem p = problem;
    std::vector<double>& v = p.*input;
    for (std::size_t i = 0; i < v.size(); ++i) v[i] += steps[k] * h * direction[i];
    sum += weights[k] * value(p);
  }
  return sum / (12.0 * h);
}

// SolveTight's solutions are good enough for differences when converged, or when the iLQR stalled
// within 10x of the tolerance (its line search cannot resolve cost changes below rounding; the step
// norm still bounds the distance to the optimum).
bool TightEnough(const Solution& s) {
  return s.status == SolveStatus::kConverged || s.step_norm <= 1e-9;
}

// L at the solution `solve` returns; fails the test if the solve did not converge or the active
// set moved (the derivative is then not the fixed-active-set one).
std::function<double(const Problem&)> LossOfSolve(
    const Loss& loss, const std::function<Solution(const Problem&)>& solve,
    const std::vector<int>& active) {
  return [loss, solve, active](const Problem& p) {
    const Solution s = solve(p);
    EXPECT_TRUE(TightEnough(s)) << SolveStatusName(s.status) << ", step " << s.step_norm;
    EXPECT_EQ(ActiveSet(p, s.u), active) << "the perturbation changed the active set";
    return loss(s.x, s.u);
  };
}

// Random directions for an input; those of C are scaled by sqrt(|C_ii C_jj|) per entry, so that a
// small control penalty (0.001 in the notebooks' costs) is perturbed relative to its own size.
std::vector<double> RandomDirection(const Problem& problem, const InputKind& kind, Rng& rng) {
  const std::vector<double>& input = problem.*kind.input;
  std::vector<double> d = RandomVector(rng, input.size());
  if (kind.input == &Problem::cost_quadratic) {
    const int nt = problem.shape.tau_dim();
    for (std::size_t s = 0; s < input.size(); s += static_cast<std::size_t>(nt) * nt) {
      for (int i = 0; i < nt; ++i) {
        for (int j = 0; j < nt; ++j) {
          d[s + i * nt + j] *= std::sqrt(std::abs(input[s + i * nt + i] * input[s + j * nt + j]));
        }
      }
    }
  }
  return d;
}

// Checks dL/d(kind) of `gradient` against finite differences of `value` (L as a function of the
// problem): every component of small inputs, two random directions of the others. The error is
// measured against |gradient| |direction|, as a directional derivative can cancel to nearly zero.
void ExpectMatchesFiniteDifferences(const Problem& problem, const ProblemGradient& gradient,
                                    const InputKind& kind, double h, double tolerance,
                                    const std::function<double(const Problem&)>& value,
                                    std::uint64_t seed) {
  const std::vector<double>& input = problem.*kind.input;
  const std::vector<double>& grad = gradient.*kind.gradient;
  ASSERT_EQ(grad.size(), input.size()) << kind.name;
  std::vector<std::vector<double>> directions;
  if (kind.per_component) {
    for (std::size_t i = 0; i < input.size(); ++i) {
      directions.emplace_back(input.size(), 0.0);
      directions.back()[i] = 1.0;
    }
  } else {
    Rng rng(seed);
    for (int d = 0; d < 2; ++d) directions.push_back(RandomDirection(problem, kind, rng));
  }
  for (std::size_t d = 0; d < directions.size(); ++d) {
    const double fd = FiniteDifference(problem, kind.input, directions[d], h, value);
    const double analytic = Dot(grad, directions[d]);
    const double scale = Norm(grad) * Norm(directions[d]);
    // Plus the rounding floor of the differences, ~1e-16 |L| / h with |L| < 1e3 and h >= 1e-4,
    // for gradients that are exactly zero (e.g. the transition's when T = 1).
    EXPECT_LE(std::abs(fd - analytic), tolerance * scale + 1e-9)
        << kind.name << " direction " << d << ": finite differences " << fd << ", gradient "
        << analytic << " (relative error " << std::abs(fd - analytic) / scale << ")";
  }
}

// Random LQR problems solve exactly (the box QP finds the exact active set), so the errors of the
// finite differences are truncation (zero in x_init, c, f, where the solution is affine; O(h^4) in
// C, F) and rounding ~1e-16 |L| / h.
constexpr double kLqrStep = 1e-4;
constexpr double kLqrTolerance = 1e-8;

class LqrFiniteDifferenceTest : public ::testing::TestWithParam<bool> {};

TEST_P(LqrFiniteDifferenceTest, EveryInputMatchesFiniteDifferencesOfTheSolve) {
  const bool bounded = GetParam();
  int with_active_bounds = 0;
  for (int seed = 0; seed < 4; ++seed) {
    for (bool time_varying : {false, true}) {
      SCOPED_TRACE(absl::StrCat("seed ", seed, " time_varying ", time_varying));
      const Problem p = testing::RandomLqrProblem({.state_dim = 4,
                                                   .control_dim = 2,
                                                   .horizon = 9,
                                                   .time_varying = time_varying,
                                                   .bounded = bounded},
                                                  seed);
      const Solution s = SolveTight(p, {});
      ASSERT_EQ(s.status, SolveStatus::kConverged);
      const std::vector<int> active = ActiveSet(p, s.u);
      if (CountActive(active) > 0) ++with_active_bounds;
      const Loss loss = Loss::Random(p.shape, 100 + seed);
      const auto value = LossOfSolve(
          loss, [&s](const Problem& q) { return SolveTight(q, s.u); }, active);
      for (GradientMode mode : {GradientMode::kDefault, GradientMode::kExact}) {
        const ProblemGradient g =
            ComputeGradient(MakeBackward(p, s.x, s.u, loss.wx, loss.wu, mode));
        EXPECT_EQ(g.status, GradientStatus::kOk);
        for (const InputKind* kind :
             {&kXInit, &kCostQuadratic, &kCostLinear, &kTransition, &kOffset}) {
          ExpectMatchesFiniteDifferences(p, g, *kind, kLqrStep, kLqrTolerance, value, seed);
        }
      }
    }
  }
  if (bounded) {
    EXPECT_GT(with_active_bounds, 4) << "the bounded problems bind no bound";
  }
}

INSTANTIATE_TEST_SUITE_P(Bounds, LqrFiniteDifferenceTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "BoxConstrained" : "Unconstrained";
                         });

TEST(LqrGradientTest, ShortHorizonsMatchFiniteDifferences) {
  // T = 1 has no dynamics step at all; T = 2 one.
  for (int horizon : {1, 2}) {
    for (bool bounded : {false, true}) {
      SCOPED_TRACE(absl::StrCat("T ", horizon, " bounded ", bounded));
      const Problem p = testing::RandomLqrProblem(
          {.state_dim = 3, .control_dim = 2, .horizon = horizon, .bounded = bounded}, 8);
      const Solution s = SolveTight(p, {});
      ASSERT_EQ(s.status, SolveStatus::kConverged);
      const Loss loss = Loss::Random(p.shape, 9);
      const ProblemGradient g =
          ComputeGradient(MakeBackward(p, s.x, s.u, loss.wx, loss.wu, GradientMode::kDefault));
      EXPECT_EQ(g.status, GradientStatus::kOk);
      const auto value = LossOfSolve(
          loss, [&s](const Problem& q) { return SolveTight(q, s.u); }, ActiveSet(p, s.u));
      for (const InputKind* kind :
           {&kXInit, &kCostQuadratic, &kCostLinear, &kTransition, &kOffset}) {
        ExpectMatchesFiniteDifferences(p, g, *kind, kLqrStep, kLqrTolerance, value, 10);
      }
    }
  }
}

TEST(LqrGradientTest, AbsentOffsetGetsTheGradientOfAZeroOffset) {
  for (bool time_varying : {false, true}) {
    const Problem with = testing::RandomLqrProblem(
        {.state_dim = 3, .control_dim = 2, .horizon = 7, .time_varying = time_varying}, 3);
    Problem zero = with;
    std::fill(zero.offset.begin(), zero.offset.end(), 0.0);
    Problem without = with;
    without.offset.clear();
    const Solution s = SolveProblem(zero);
    const Loss loss = Loss::Random(zero.shape, 5);
    const ProblemGradient g0 =
        ComputeGradient(MakeBackward(zero, s.x, s.u, loss.wx, loss.wu, GradientMode::kDefault));
    const ProblemGradient g1 =
        ComputeGradient(MakeBackward(without, s.x, s.u, loss.wx, loss.wu, GradientMode::kDefault));
    // Laid out as the transition: (n) for one slice, (T-1, n) per step.
    EXPECT_EQ(g1.offset.size(), zero.offset.size());
    EXPECT_EQ(g1.offset, g0.offset);
    EXPECT_EQ(g1.x_init, g0.x_init);
    EXPECT_GT(MaxAbs(g1.offset), 0.0);
  }
}

// Models: SolveTight stops at a step norm of 1e-10; near the optimum a step estimates the distance
// to it, so L is exact to ~1e-10 |W| and differences with h = 1e-3 carry ~1e-7 |W| from the solves
// and O(h^4) ~ 1e-12 from truncation, against gradients of order 1 to 1000: 1e-6 relative (the
// issue's target) leaves a margin.
constexpr double kModelStep = 1e-3;
constexpr double kModelTolerance = 1e-6;

struct SolvedProblem {
  Problem problem;
  Solution solution;
};

// Whether the active set stays the same when x_init and c move by 5e-3 in random directions: more
// than the largest finite-difference perturbation (2h = 2e-3), so the differences see a fixed
// active set (strict complementarity with a margin, checked the way it matters).
bool ActiveSetIsStable(const Problem& p, const Solution& s) {
  const std::vector<int> active = ActiveSet(p, s.u);
  Rng rng(7);
  for (int trial = 0; trial < 4; ++trial) {
    Problem q = p;
    for (double& v : q.x_init) v += 5e-3 * rng.Normal();
    for (double& v : q.cost_linear) v += 5e-3 * rng.Normal();
    const Solution qs = SolveTight(q, s.u);
    if (!TightEnough(qs) || ActiveSet(q, qs.u) != active) return false;
  }
  return true;
}

// Notebook-style problems (T = 12 or 20, control penalty 0.01) that mpcd's iLQR solves to the
// SolveTight tolerance, the first `count` seeds that do (bounded ones: with at least one pinned and
// three free controls and an active set away from degeneracy). Unbounded problems start near
// upright (an unbounded swing-up has no optimum the solver reliably reaches); bounded cartpoles get
// a force limit of 4 so that the swing-up binds it.
std::vector<SolvedProblem> ConvergedModelProblems(DynamicsId kind, bool bounded, int count) {
  std::vector<SolvedProblem> found;
  for (int seed = 0; seed < 40 && static_cast<int>(found.size()) < count; ++seed) {
    testing::RandomModelOptions o;
    // A bounded pendulum swings up at full torque for most of a short horizon; 20 steps leave room
    // for free controls.
    o.horizon = bounded && kind == ModelId<PendulumModel>() ? 20 : 12;
    o.bounded = bounded;
    o.ctrl_penalty = 0.01;
    if (!bounded) {
      o.th_half_width = 0.6;
      o.thdot_half_width = 0.5;
    }
    if (bounded && kind == ModelId<CartpoleModel>()) o.control_bound = 4.0;
    Problem p = kind == ModelId<PendulumModel>() ? testing::RandomPendulumProblem(o, seed)
                                                 : testing::RandomCartpoleProblem(o, seed);
    Solution s = SolveTight(p, {});
    if (s.status != SolveStatus::kConverged) continue;
    // A bounded problem must mix pinned and free controls to test both.
    const int active = CountActive(ActiveSet(p, s.u));
    const int controls = static_cast<int>(s.u.size());
    if (bounded && (active == 0 || controls - active < 3)) continue;
    if (!ActiveSetIsStable(p, s)) continue;
    found.push_back({std::move(p), std::move(s)});
  }
  EXPECT_EQ(static_cast<int>(found.size()), count) << "too few random problems converged";
  return found;
}

struct ModelCase {
  DynamicsId kind;
  bool bounded;
};

class ModelFiniteDifferenceTest : public ::testing::TestWithParam<ModelCase> {};

TEST_P(ModelFiniteDifferenceTest, ExactModeIsTheDerivativeOfTheNonlinearSolve) {
  const ModelCase c = GetParam();
  int with_active = 0;
  int index = 0;
  for (const auto& [p, s] : ConvergedModelProblems(c.kind, c.bounded, 2)) {
    SCOPED_TRACE(absl::StrCat("problem ", index++));
    const std::vector<int> active = ActiveSet(p, s.u);
    if (CountActive(active) > 0) ++with_active;
    const Loss loss = Loss::Random(p.shape, 200 + index);
    const ProblemGradient g =
        ComputeGradient(MakeBackward(p, s.x, s.u, loss.wx, loss.wu, GradientMode::kExact));
    EXPECT_EQ(g.status, GradientStatus::kOk);
    EXPECT_LT(g.stationarity_residual, 1e-8);
    const auto value = LossOfSolve(
        loss, [&s = s](const Problem& q) { return SolveTight(q, s.u); }, active);
    for (const InputKind* kind : {&kXInit, &kCostQuadratic, &kCostLinear, &kParams}) {
      ExpectMatchesFiniteDifferences(p, g, *kind, kModelStep, kModelTolerance, value, index);
    }
  }
  if (c.bounded) {
    EXPECT_GT(with_active, 0) << "no bound is active: the case tests nothing new";
  }
}

// The LQR approximation mpc.pytorch's definition differentiates: linear dynamics F_t = [A_t B_t],
// f_t = dyn(x*_t, u*_t; theta) - F_t tau*_t from the model linearised at (x*, u*), with A_t, B_t
// taken at `jacobian_theta` (mpc.pytorch: the nominal parameters, a constant; the through-F
// variant: theta itself).
Problem LinearisedProblem(const Problem& p, const Solution& s, const std::vector<double>& theta,
                          const std::vector<double>& jacobian_theta) {
  const int n = p.shape.state_dim, m = p.shape.control_dim, T = p.shape.horizon, nt = n + m;
  Problem q = p;
  q.shape.dynamics = DynamicsId::Linear();
  q.params.clear();
  q.dt = 0.0;
  q.transition.assign(static_cast<std::size_t>(T - 1) * n * nt, 0.0);
  q.offset.assign(static_cast<std::size_t>(T - 1) * n, 0.0);
  const double dt = p.dt > 0.0 ? p.dt : FindModel(p.shape.dynamics)->default_dt;
  std::vector<double> next(n), unused(n), A(n * n), B(n * m);
  for (int t = 0; t + 1 < T; ++t) {
    const double* x = &s.x[t * n];
    const double* u = &s.u[t * m];
    if (p.shape.dynamics == ModelId<PendulumModel>()) {
      StepWithJacobians<PendulumModel>(x, u, jacobian_theta.data(), dt, unused.data(), A.data(),
                                       B.data());
      PendulumModel::Step(x, u, theta.data(), dt, next.data());
    } else {
      StepWithJacobians<CartpoleModel>(x, u, jacobian_theta.data(), dt, unused.data(), A.data(),
                                       B.data());
      CartpoleModel::Step(x, u, theta.data(), dt, next.data());
    }
    for (int i = 0; i < n; ++i) {
      double f = next[i];
      for (int j = 0; j < n; ++j) {
        q.transition[(t * n + i) * nt + j] = A[j * n + i];  // A, B are column-major
        f -= A[j * n + i] * x[j];
      }
      for (int j = 0; j < m; ++j) {
        q.transition[(t * n + i) * nt + n + j] = B[j * n + i];
        f -= B[j * n + i] * u[j];
      }
      q.offset[t * n + i] = f;
    }
  }
  return q;
}

TEST_P(ModelFiniteDifferenceTest, DefaultAndFullChainModesDifferentiateTheLqrApproximation) {
  const ModelCase c = GetParam();
  int index = 0;
  for (const auto& [p, s] : ConvergedModelProblems(c.kind, c.bounded, 2)) {
    SCOPED_TRACE(absl::StrCat("problem ", index++));
    const std::vector<int> active = ActiveSet(p, s.u);
    const Loss loss = Loss::Random(p.shape, 300 + index);
    const ProblemGradient g =
        ComputeGradient(MakeBackward(p, s.x, s.u, loss.wx, loss.wu, GradientMode::kDefault));
    const ProblemGradient full =
        ComputeGradient(MakeBackward(p, s.x, s.u, loss.wx, loss.wu, GradientMode::kFullChain));
    EXPECT_EQ(g.status, GradientStatus::kOk);

    // The LQR of the linearisation at a converged solution has that solution as its own.
    const Problem lqr = LinearisedProblem(p, s, p.params, p.params);
    const auto solve = [&s = s](const Problem& q) { return SolveTight(q, s.u); };
    const Solution ls = solve(lqr);
    ASSERT_EQ(ls.status, SolveStatus::kConverged);
    ASSERT_LT(RelativeError(ls.u, s.u), 1e-8);
    const auto value = LossOfSolve(loss, solve, active);
    for (const InputKind* kind : {&kXInit, &kCostQuadratic, &kCostLinear}) {
      ExpectMatchesFiniteDifferences(lqr, g, *kind, kLqrStep, kLqrTolerance, value, index);
    }

    // params: through f_lin only (mpc.pytorch) or through F_lin and f_lin (the full chain).
    for (const bool through_f_only : {true, false}) {
      SCOPED_TRACE(through_f_only ? "f_only" : "through_F_and_f");
      const ProblemGradient& gradient = through_f_only ? g : full;
      for (std::size_t k = 0; k < p.params.size(); ++k) {
        std::vector<double> direction(p.params.size(), 0.0);
        direction[k] = 1.0;
        // The structured bindings are captured by name: clang 14 cannot capture them with [&].
        const auto perturbed_value = [&, &p = p, &s = s](const Problem& perturbed) {
          return value(LinearisedProblem(p, s, perturbed.params,
                                         through_f_only ? p.params : perturbed.params));
        };
        const double fd =
            FiniteDifference(p, &Problem::params, direction, kModelStep, perturbed_value);
        EXPECT_LE(std::abs(fd - gradient.params[k]), kLqrTolerance * Norm(gradient.params))
            << "params[" << k << "]: finite differences " << fd << ", gradient "
            << gradient.params[k];
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, ModelFiniteDifferenceTest,
                         ::testing::Values(ModelCase{ModelId<PendulumModel>(), false},
                                           ModelCase{ModelId<PendulumModel>(), true},
                                           ModelCase{ModelId<CartpoleModel>(), false},
                                           ModelCase{ModelId<CartpoleModel>(), true}),
                         [](const ::testing::TestParamInfo<ModelCase>& info) {
                           return absl::StrCat(info.param.kind == ModelId<PendulumModel>()
                                                   ? "Pendulum"
                                                   : "Cartpole",
                                               info.param.bounded ? "Bounded" : "Unbounded");
                         });

// A continuous-time model: EXACT gradients are the derivatives of the solve whatever integrator
// discretises it (the integrator's derivatives, not the ODE's). Near upright, unbounded, T = 12.
TEST(ContinuousModelFiniteDifferenceTest, ExactModeIsTheDerivativeOfTheSolveForEveryIntegrator) {
  using Model = CartpoleContinuousModel;
  int index = 0;
  for (Integrator integrator : {Integrator::kEuler, Integrator::kMidpoint, Integrator::kRk4}) {
    SCOPED_TRACE(IntegratorName(integrator));
    Problem p;
    p.shape = {ModelId<Model>(), Model::kStateDim, Model::kControlDim, 12};
    p.x_init = {0.2, -0.1, 0.25, 0.1};
    p.cost_quadratic.assign(25, 0.0);
    for (int i = 0; i < 5; ++i) p.cost_quadratic[i * 5 + i] = i < 4 ? 1.0 : 0.01;
    p.cost_linear = {0.1, 0.0, -0.05, 0.0, 0.0};
    p.params.assign(std::begin(Model::kDefaultParams), std::end(Model::kDefaultParams));
    p.dt = 0.05;
    p.integrator = integrator;
    const Solution s = SolveTight(p, {});
    ASSERT_EQ(s.status, SolveStatus::kConverged);
    const Loss loss = Loss::Random(p.shape, 400 + index++);
    const ProblemGradient g =
        ComputeGradient(MakeBackward(p, s.x, s.u, loss.wx, loss.wu, GradientMode::kExact));
    EXPECT_EQ(g.status, GradientStatus::kOk);
    const auto value = LossOfSolve(
        loss, [&s](const Problem& q) { return SolveTight(q, s.u); }, ActiveSet(p, s.u));
    for (const InputKind* kind : {&kXInit, &kCostLinear, &kParams}) {
      ExpectMatchesFiniteDifferences(p, g, *kind, kModelStep, kModelTolerance, value, index);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Forward mode: dense Jacobians.

// J' v with J (T, n+m, cols) row-major and v = [vx; vu] per step.
std::vector<double> JacobianTransposeTimes(const std::vector<double>& J, int cols,
                                           const ProblemShape& shape, const Loss& v) {
  const int n = shape.state_dim, m = shape.control_dim, nt = n + m;
  std::vector<double> out(cols, 0.0);
  for (int t = 0; t < shape.horizon; ++t) {
    for (int i = 0; i < nt; ++i) {
      const double vi = i < n ? v.wx[t * n + i] : v.wu[t * m + i - n];
      for (int c = 0; c < cols; ++c) out[c] += J[(t * nt + i) * cols + c] * vi;
    }
  }
  return out;
}

// Column `col` of J (T, n+m, cols) as (x (T, n), u (T, m)).
Solution JacobianColumn(const std::vector<double>& J, int cols, int col,
                        const ProblemShape& shape) {
  const int n = shape.state_dim, m = shape.control_dim, nt = n + m;
  Solution s;
  s.Resize(shape, false);
  for (int t = 0; t < shape.horizon; ++t) {
    for (int i = 0; i < n; ++i) s.x[t * n + i] = J[(t * nt + i) * cols + col];
    for (int j = 0; j < m; ++j) s.u[t * m + j] = J[(t * nt + n + j) * cols + col];
  }
  return s;
}

std::vector<Problem> JacobianTestProblems() {
  std::vector<Problem> problems;
  problems.push_back(testing::RandomLqrProblem(
      {.state_dim = 4, .control_dim = 2, .horizon = 8, .time_varying = true}, 11));
  problems.push_back(testing::RandomLqrProblem(
      {.state_dim = 3, .control_dim = 2, .horizon = 10, .bounded = true}, 12));
  for (bool bounded : {false, true}) {
    for (DynamicsId kind : {ModelId<PendulumModel>(), ModelId<CartpoleModel>()}) {
      problems.push_back(ConvergedModelProblems(kind, bounded, 1).at(0).problem);
    }
  }
  return problems;
}

TEST(JacobianTest, TransposeTimesAVectorIsTheVectorJacobianProduct) {
  for (const Problem& p : JacobianTestProblems()) {
    SCOPED_TRACE(absl::StrCat("n ", p.shape.state_dim, " dynamics ", p.shape.dynamics.model));
    const Solution s = SolveTight(p, {});
    ASSERT_TRUE(TightEnough(s));
    const bool model = !p.shape.dynamics.is_linear();
    for (GradientMode mode :
         {GradientMode::kDefault, GradientMode::kFullChain, GradientMode::kExact}) {
      SCOPED_TRACE(GradientModeName(mode));
      SolutionJacobians jac;
      ASSERT_THAT(ComputeSolutionJacobians(p, s.x, s.u, {true, model, mode}, &jac), IsOk());
      EXPECT_EQ(jac.diagnostics.status, GradientStatus::kOk);
      const int n = p.shape.state_dim, nt = p.shape.tau_dim(), T = p.shape.horizon;
      ASSERT_EQ(jac.x_init.size(), static_cast<std::size_t>(T * nt * n));
      for (std::uint64_t seed = 0; seed < 3; ++seed) {
        const Loss v = Loss::Random(p.shape, 400 + seed);
        const ProblemGradient g = ComputeGradient(MakeBackward(p, s.x, s.u, v.wx, v.wu, mode));
        EXPECT_LE(RelativeError(JacobianTransposeTimes(jac.x_init, n, p.shape, v), g.x_init),
                  1e-12);
        if (model) {
          const int np = static_cast<int>(g.params.size());
          ASSERT_EQ(jac.params.size(), static_cast<std::size_t>(T * nt * np));
          EXPECT_LE(RelativeError(JacobianTransposeTimes(jac.params, np, p.shape, v), g.params),
                    1e-12);
        }
      }
    }
  }
}

TEST(JacobianTest, ColumnsMatchFiniteDifferencesOfTheSolve) {
  for (const Problem& p : JacobianTestProblems()) {
    SCOPED_TRACE(absl::StrCat("n ", p.shape.state_dim, " dynamics ", p.shape.dynamics.model));
    const Solution s = SolveTight(p, {});
    ASSERT_TRUE(TightEnough(s));
    const std::vector<int> active = ActiveSet(p, s.u);
    const bool model = !p.shape.dynamics.is_linear();
    // Exact mode is the derivative of the solve; for LQR every mode is.
    SolutionJacobians jac;
    ASSERT_THAT(ComputeSolutionJacobians(p, s.x, s.u, {true, model, GradientMode::kExact}, &jac),
                IsOk());
    const double h = model ? kModelStep : kLqrStep;
    const double tolerance = model ? kModelTolerance : kLqrTolerance;
    // d tau / d input_k by the same fourth-order stencil, one trajectory per column.
    const auto check_columns = [&](std::vector<double> Problem::*input,
                                   const std::vector<double>& J, const char* name) {
      const int cols = static_cast<int>((p.*input).size());
      for (int k = 0; k < cols; ++k) {
        std::vector<double> fd_x(s.x.size(), 0.0), fd_u(s.u.size(), 0.0);
        const double steps[4] = {2.0, 1.0, -1.0, -2.0};
        const double weights[4] = {-1.0, 8.0, -8.0, 1.0};
        for (int e = 0; e < 4; ++e) {
          Problem q = p;
          (q.*input)[k] += steps[e] * h;
          const Solution qs = SolveTight(q, s.u);
          EXPECT_TRUE(TightEnough(qs));
          EXPECT_EQ(ActiveSet(q, qs.u), active);
          for (std::size_t i = 0; i < fd_x.size(); ++i) fd_x[i] += weights[e] * qs.x[i] / (12 * h);
          for (std::size_t i = 0; i < fd_u.size(); ++i) fd_u[i] += weights[e] * qs.u[i] / (12 * h);
        }
        const Solution column = JacobianColumn(J, cols, k, p.shape);
        const double scale = std::max(MaxAbs(column.x), MaxAbs(column.u));
        double error = 0.0;
        for (std::size_t i = 0; i < fd_x.size(); ++i) {
          error = std::max(error, std::abs(fd_x[i] - column.x[i]));
        }
        for (std::size_t i = 0; i < fd_u.size(); ++i) {
          error = std::max(error, std::abs(fd_u[i] - column.u[i]));
        }
        EXPECT_LE(error, tolerance * std::max(scale, 1.0)) << name << " column " << k;
      }
    };
    check_columns(&Problem::x_init, jac.x_init, "x_init");
    if (model) check_columns(&Problem::params, jac.params, "params");
  }
}

TEST(JacobianTest, InitialControlSensitivityIsTheFeedbackGain) {
  // du_0/dx_init = K_0 when u_0 is free: the forward solver's gains, computed by its own Riccati
  // pass, against the Jacobian's u_0 rows.
  std::vector<Problem> problems;
  problems.push_back(testing::RandomLqrProblem(
      {.state_dim = 4, .control_dim = 2, .horizon = 8, .time_varying = true}, 21));
  problems.push_back(ConvergedModelProblems(ModelId<PendulumModel>(), false, 1).at(0).problem);
  problems.push_back(ConvergedModelProblems(ModelId<CartpoleModel>(), false, 1).at(0).problem);
  for (Problem& p : problems) {
    p.options.compute_gains = true;
    const Solution s = SolveTight(p, {});
    ASSERT_TRUE(TightEnough(s));
    SolutionJacobians jac;
    ASSERT_THAT(ComputeSolutionJacobians(p, s.x, s.u, {true, false, GradientMode::kDefault}, &jac),
                IsOk());
    const int n = p.shape.state_dim, m = p.shape.control_dim;
    std::vector<double> du0(m * n), K0(s.feedback.begin(), s.feedback.begin() + m * n);
    for (int j = 0; j < m; ++j) {
      for (int i = 0; i < n; ++i) du0[j * n + i] = jac.x_init[(n + j) * n + i];
    }
    EXPECT_LE(RelativeError(du0, K0), 1e-9);
    // x_0 = x_init exactly, so d x_0 / d x_init = I.
    for (int r = 0; r < n; ++r) {
      for (int i = 0; i < n; ++i) EXPECT_EQ(jac.x_init[r * n + i], r == i ? 1.0 : 0.0);
    }
  }
}

TEST(JacobianTest, RejectsParamsForLinearDynamicsAndBadSizes) {
  const Problem p = testing::RandomLqrProblem({}, 1);
  const Solution s = SolveProblem(p);
  SolutionJacobians jac;
  EXPECT_THAT(ComputeSolutionJacobians(p, s.x, s.u, {false, true, GradientMode::kDefault}, &jac),
              testing::StatusIs(absl::StatusCode::kInvalidArgument));
  std::vector<double> short_u(s.u.begin(), s.u.end() - 1);
  EXPECT_THAT(
      ComputeSolutionJacobians(p, s.x, short_u, {true, false, GradientMode::kDefault}, &jac),
      testing::StatusIs(absl::StatusCode::kInvalidArgument));
}

// ---------------------------------------------------------------------------------------------
// Statuses: never a silent NaN.

TEST(GradientStatusTest, SingularLqrIsRegularisedAndFinite) {
  // No control cost and controls without effect: Quu = 0 at every stage.
  Problem p = testing::RandomLqrProblem({.state_dim = 3, .control_dim = 2, .horizon = 6}, 4);
  const int n = 3, nt = 5;
  for (int i = n; i < nt; ++i) {
    for (int j = 0; j < nt; ++j) p.cost_quadratic[i * nt + j] = p.cost_quadratic[j * nt + i] = 0;
  }
  for (int i = 0; i < n; ++i) {
    for (int j = n; j < nt; ++j) p.transition[i * nt + j] = 0.0;
  }
  const Solution s = SolveProblem(p);
  const Loss loss = Loss::Random(p.shape, 1);
  const ProblemGradient g =
      ComputeGradient(MakeBackward(p, s.x, s.u, loss.wx, loss.wu, GradientMode::kDefault));
  EXPECT_EQ(g.status, GradientStatus::kRegularized) << GradientStatusName(g.status);
  EXPECT_GT(g.regularization, 0.0);
  EXPECT_TRUE(AllFinite(g));
}

TEST(GradientStatusTest, NearlySingularQuuIsFlagged) {
  Problem p = testing::RandomLqrProblem({.state_dim = 3, .control_dim = 2, .horizon = 6}, 5);
  const int n = 3, nt = 5;
  // The second control costs 1e-15 and moves nothing: Quu's condition number ~1e15.
  for (int j = 0; j < nt; ++j) p.cost_quadratic[4 * nt + j] = p.cost_quadratic[j * nt + 4] = 0;
  p.cost_quadratic[4 * nt + 4] = 1e-15;
  for (int i = 0; i < n; ++i) p.transition[i * nt + 4] = 0.0;
  const Solution s = SolveProblem(p);
  const Loss loss = Loss::Random(p.shape, 2);
  const ProblemGradient g =
      ComputeGradient(MakeBackward(p, s.x, s.u, loss.wx, loss.wu, GradientMode::kDefault));
  EXPECT_EQ(g.status, GradientStatus::kIllConditioned) << GradientStatusName(g.status);
  EXPECT_GT(g.condition_estimate, 1e12);
  EXPECT_TRUE(AllFinite(g));
}

TEST(GradientStatusTest, NonFiniteDerivativesGiveZerosAndAStatus) {
  // cos th = sin th = 0 is a finite state whose angle has no derivative (atan2 at the origin).
  testing::RandomModelOptions o;
  Problem p = testing::RandomPendulumProblem(o, 1);
  const Solution s = SolveProblem(p);
  std::vector<double> x = s.x;
  x[3 * 3 + 0] = 0.0;
  x[3 * 3 + 1] = 0.0;
  const Loss loss = Loss::Random(p.shape, 3);
  for (GradientMode mode : {GradientMode::kDefault, GradientMode::kExact}) {
    const ProblemGradient g = ComputeGradient(MakeBackward(p, x, s.u, loss.wx, loss.wu, mode));
    EXPECT_EQ(g.status, GradientStatus::kNotFinite);
    EXPECT_TRUE(AllFinite(g));
    EXPECT_EQ(MaxAbs(g.x_init), 0.0);
    EXPECT_EQ(MaxAbs(g.params), 0.0);
  }
}

TEST(GradientStatusTest, UnconvergedPointsReportTheirResiduals) {
  testing::RandomModelOptions o;
  Problem p = testing::RandomCartpoleProblem(o, 2);
  p.options.max_iterations = 1;
  const Solution early = SolveProblem(p);
  ASSERT_NE(early.status, SolveStatus::kConverged);
  const Solution converged = SolveTight(p, {});
  ASSERT_TRUE(TightEnough(converged));
  const Loss loss = Loss::Random(p.shape, 4);
  const ProblemGradient at_early =
      ComputeGradient(MakeBackward(p, early.x, early.u, loss.wx, loss.wu, GradientMode::kDefault));
  const ProblemGradient at_optimum = ComputeGradient(
      MakeBackward(p, converged.x, converged.u, loss.wx, loss.wu, GradientMode::kDefault));
  EXPECT_TRUE(AllFinite(at_early));
  EXPECT_GT(at_early.stationarity_residual, 1e-4);
  EXPECT_LT(at_optimum.stationarity_residual, 1e-8);
  EXPECT_LT(at_optimum.dynamics_residual, 1e-12);
  // x that does not follow the dynamics is reported as well.
  std::vector<double> x = converged.x;
  x[7] += 0.5;
  const ProblemGradient off =
      ComputeGradient(MakeBackward(p, x, converged.u, loss.wx, loss.wu, GradientMode::kDefault));
  EXPECT_NEAR(off.dynamics_residual, 0.5, 0.1);
}

TEST(GradientStatusTest, ValidationNamesTheField) {
  const Problem p = testing::RandomLqrProblem({.state_dim = 3, .control_dim = 2, .horizon = 5}, 1);
  const Solution s = SolveProblem(p);
  BackwardProblem bp = MakeBackward(p, s.x, s.u, {}, {}, GradientMode::kDefault);
  // Named as the proto fields they come from (BackwardRequest.solutions[i] / .cotangents[i]).
  EXPECT_THAT(ValidateBackwardProblem(bp, BackwardRequestFieldNames(2)), IsOk());
  bp.dl_du.assign(4 * 2, 1.0);
  EXPECT_THAT(ValidateBackwardProblem(bp, BackwardRequestFieldNames(2)),
              testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                "cotangents[2].u: expected shape (5,2) or none, got 8 values"));
  bp.dl_du.clear();
  bp.u.pop_back();
  EXPECT_THAT(ValidateBackwardProblem(bp, BackwardRequestFieldNames(2)),
              testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                "solutions[2].u: expected shape (5,2), got 9 values"));
  bp.u.push_back(0.0);
  bp.x[4] = std::nan("");
  EXPECT_THAT(ValidateBackwardProblem(bp),
              testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                "solution.x: not finite at [1,1] (nan)"));
  bp.x[4] = 0.0;
  bp.dl_dx.assign(5 * 3, 0.0);
  bp.dl_dx[14] = std::numeric_limits<double>::infinity();
  EXPECT_THAT(ValidateBackwardProblem(bp, BackwardRequestFieldNames(0)),
              testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                "cotangents[0].x: not finite at [4,2] (inf)"));
}

// A backend checks sizes only (values were scanned once, before the batch): a non-finite cotangent
// that reaches it anyway is a per-problem kNotFinite with zero gradients, never a refused batch.
TEST(BackwardBatchTest, ChecksSizesOnlyAndReportsNonFiniteValuesAsData) {
  const Problem p = testing::RandomLqrProblem({.state_dim = 3, .control_dim = 2, .horizon = 5}, 1);
  const Solution s = SolveProblem(p);
  BackwardProblem bp = MakeBackward(p, s.x, s.u, {}, {}, GradientMode::kDefault);
  bp.dl_du.assign(5 * 2, 1.0);
  bp.dl_du[3] = std::nan("");
  MPC_ASSERT_OK_AND_ASSIGN(auto backend, CpuBackend::Create({1}));
  std::vector<const BackwardProblem*> inputs = {&bp};
  ProblemGradient g;
  std::vector<ProblemGradient*> outputs = {&g};
  EXPECT_THAT(backend->BackwardBatch(inputs, outputs), IsOk());
  EXPECT_EQ(g.status, GradientStatus::kNotFinite);
  for (double v : g.x_init) EXPECT_EQ(v, 0.0);
  for (double v : g.cost_linear) EXPECT_EQ(v, 0.0);
}

// ---------------------------------------------------------------------------------------------
// Batches and workspaces.

std::vector<Problem> MixedBackwardProblems() {
  std::vector<Problem> problems;
  for (int seed = 0; seed < 3; ++seed) {
    testing::RandomModelOptions model;
    model.horizon = 20;
    problems.push_back(testing::RandomPendulumProblem(model, seed));
    model.horizon = 25;
    problems.push_back(testing::RandomCartpoleProblem(model, seed));
    problems.push_back(testing::RandomLqrProblem(
        {.state_dim = 4, .control_dim = 2, .horizon = 12, .bounded = true}, seed));
    problems.push_back(testing::RandomLqrProblem(
        {.state_dim = 8, .control_dim = 4, .horizon = 30, .time_varying = true, .bounded = true},
        seed));
  }
  for (Problem& p : problems) p.options.max_iterations = 50;
  return problems;
}

TEST(BackwardBatchTest, BatchedEqualsUnbatchedBitwiseAndReusedWorkspacesCarryNothing) {
  const std::vector<Problem> problems = MixedBackwardProblems();
  std::vector<Solution> solutions;
  for (const Problem& p : problems) solutions.push_back(SolveProblem(p));
  std::vector<BackwardProblem> items;
  for (std::size_t i = 0; i < problems.size(); ++i) {
    const Loss loss = Loss::Random(problems[i].shape, i);
    const GradientMode mode = static_cast<GradientMode>(i % 3);
    items.push_back(
        MakeBackward(problems[i], solutions[i].x, solutions[i].u, loss.wx, loss.wu, mode));
  }
  std::vector<ProblemGradient> alone;
  for (const BackwardProblem& bp : items) alone.push_back(ComputeGradient(bp));

  MPC_ASSERT_OK_AND_ASSIGN(auto backend, CpuBackend::Create({2}));
  std::vector<const BackwardProblem*> inputs;
  for (const BackwardProblem& bp : items) inputs.push_back(&bp);
  std::vector<ProblemGradient> batched(items.size());
  std::vector<ProblemGradient*> outputs;
  for (ProblemGradient& g : batched) outputs.push_back(&g);
  // Twice: the second run reuses every thread's workspaces.
  for (int run = 0; run < 2; ++run) {
    ASSERT_THAT(backend->BackwardBatch(inputs, outputs), IsOk());
    for (std::size_t i = 0; i < items.size(); ++i) {
      EXPECT_EQ(batched[i].x_init, alone[i].x_init) << i;
      EXPECT_EQ(batched[i].cost_quadratic, alone[i].cost_quadratic) << i;
      EXPECT_EQ(batched[i].cost_linear, alone[i].cost_linear) << i;
      EXPECT_EQ(batched[i].transition, alone[i].transition) << i;
      EXPECT_EQ(batched[i].offset, alone[i].offset) << i;
      EXPECT_EQ(batched[i].params, alone[i].params) << i;
      EXPECT_EQ(batched[i].status, alone[i].status) << i;
    }
  }
}

TEST(BackwardBatchTest, RejectsMismatchedSpansAndBadSizes) {
  const Problem p = testing::RandomLqrProblem({}, 1);
  const Solution s = SolveProblem(p);
  BackwardProblem bp = MakeBackward(p, s.x, s.u, {}, {}, GradientMode::kDefault);
  MPC_ASSERT_OK_AND_ASSIGN(auto backend, CpuBackend::Create({1}));
  std::vector<const BackwardProblem*> inputs = {&bp};
  std::vector<ProblemGradient*> none;
  EXPECT_THAT(backend->BackwardBatch(inputs, none),
              testing::StatusIs(absl::StatusCode::kInvalidArgument));
  ProblemGradient g;
  std::vector<ProblemGradient*> outputs = {&g};
  bp.x.pop_back();
  EXPECT_THAT(backend->BackwardBatch(inputs, outputs),
              testing::StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("x:")));
}

TEST(BackwardBatchTest, FixedAndDynamicSizeWorkspacesAgree) {
  const std::vector<Problem> problems = MixedBackwardProblems();
  for (std::size_t i = 0; i < problems.size(); ++i) {
    const Problem& p = problems[i];
    const Solution s = SolveProblem(p);
    const Loss loss = Loss::Random(p.shape, i);
    for (GradientMode mode :
         {GradientMode::kDefault, GradientMode::kFullChain, GradientMode::kExact}) {
      const BackwardProblem bp = MakeBackward(p, s.x, s.u, loss.wx, loss.wu, mode);
      ProblemGradient fixed, dynamic;
      MakeShapeBackward(p.shape)->Backward(bp, &fixed);
      MakeDynamicSizeShapeBackward(p.shape)->Backward(bp, &dynamic);
      EXPECT_EQ(fixed.status, dynamic.status);
      EXPECT_LE(RelativeError(fixed.x_init, dynamic.x_init), 1e-12);
      EXPECT_LE(RelativeError(fixed.cost_quadratic, dynamic.cost_quadratic), 1e-12);
      EXPECT_LE(RelativeError(fixed.params, dynamic.params), 1e-12);
      EXPECT_LE(RelativeError(fixed.transition, dynamic.transition), 1e-12);
    }
  }
}

TEST(BackwardBatchTest, BackwardPassAllocatesNothingOnceSized) {
  // Eigen's allocation guard is process-wide, so this test runs single-threaded.
  for (const Problem& p : MixedBackwardProblems()) {
    const Solution s = SolveProblem(p);
    const Loss loss = Loss::Random(p.shape, 9);
    for (GradientMode mode :
         {GradientMode::kDefault, GradientMode::kFullChain, GradientMode::kExact}) {
      const BackwardProblem bp = MakeBackward(p, s.x, s.u, loss.wx, loss.wu, mode);
      auto workspace = MakeShapeBackward(p.shape);
      ProblemGradient g;
      workspace->Backward(bp, &g);  // sizes the output
      Eigen::internal::set_is_malloc_allowed(false);
      workspace->Backward(bp, &g);
      Eigen::internal::set_is_malloc_allowed(true);
    }
  }
}

}  // namespace
}  // namespace mpc
