#include "proto/proto_conversion.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mpcd/v1/mpcd.pb.h"
#include "proto/error_details.h"
#include "solver/models/model_list.h"
#include "solver/models/model_registry.h"
#include "solver/problem.h"
#include "solver/problem_fields.h"
#include "tests/testing/status_matchers.h"

namespace mpc {
namespace {

// "pendulum, cartpole, ...": every built-in model, as the errors list them.
std::string KnownModels() {
  std::string names;
  for (const ModelInfo& model : BuiltinModels()) {
    if (!names.empty()) names += ", ";
    names += model.name;
  }
  return names;
}

using ::mpc::testing::IsOk;
using ::mpc::testing::StatusIs;
using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

constexpr int kHorizon = 6;
constexpr int kN = 3;  // linear problems: state dimension
constexpr int kM = 2;  // linear problems: control dimension
constexpr int kTau = kN + kM;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A tensor of `shape` whose values are 0.1, 0.2, ... (distinct, so copies can be checked).
mpcd::v1::Tensor Ramp(std::vector<std::uint32_t> shape) {
  mpcd::v1::Tensor tensor;
  std::size_t count = 1;
  for (std::uint32_t dim : shape) {
    tensor.add_shape(dim);
    count *= dim;
  }
  for (std::size_t i = 0; i < count; ++i) tensor.add_data(0.1 * static_cast<double>(i + 1));
  return tensor;
}

mpcd::v1::Tensor Filled(std::vector<std::uint32_t> shape, double value) {
  mpcd::v1::Tensor tensor = Ramp(std::move(shape));
  for (double& x : *tensor.mutable_data()) x = value;
  return tensor;
}

// (k, k) identity, or (T, k, k) identities.
mpcd::v1::Tensor Identity(int k, int slices = 0) {
  mpcd::v1::Tensor tensor;
  if (slices > 0) tensor.add_shape(slices);
  tensor.add_shape(k);
  tensor.add_shape(k);
  for (int s = 0; s < std::max(slices, 1); ++s) {
    for (int i = 0; i < k * k; ++i) tensor.add_data(i % (k + 1) == 0 ? 1.0 : 0.0);
  }
  return tensor;
}

// A valid time-invariant linear problem: n = 3, m = 2, bounded.
mpcd::v1::Problem LinearProblem() {
  mpcd::v1::Problem problem;
  *problem.mutable_x_init() = Ramp({kN});
  *problem.mutable_cost()->mutable_quadratic() = Identity(kTau);
  *problem.mutable_cost()->mutable_linear() = Ramp({kTau});
  *problem.mutable_dynamics()->mutable_linear()->mutable_transition() = Ramp({kN, kTau});
  *problem.mutable_dynamics()->mutable_linear()->mutable_offset() = Ramp({kN});
  *problem.mutable_u_lower() = Filled({kM}, -1.0);
  *problem.mutable_u_upper() = Filled({kM}, 1.0);
  return problem;
}

// The same problem with every input in its time-varying form.
mpcd::v1::Problem TimeVaryingLinearProblem() {
  mpcd::v1::Problem problem;
  *problem.mutable_x_init() = Ramp({kN});
  *problem.mutable_cost()->mutable_quadratic() = Identity(kTau, kHorizon);
  *problem.mutable_cost()->mutable_linear() = Ramp({kHorizon, kTau});
  *problem.mutable_dynamics()->mutable_linear()->mutable_transition() =
      Ramp({kHorizon - 1, kN, kTau});
  *problem.mutable_dynamics()->mutable_linear()->mutable_offset() = Ramp({kHorizon - 1, kN});
  *problem.mutable_u_lower() = Filled({kHorizon, kM}, -1.0);
  *problem.mutable_u_upper() = Filled({kHorizon, kM}, 1.0);
  *problem.mutable_u_init() = Filled({kHorizon, kM}, 0.5);
  return problem;
}

// A valid cartpole problem (n = 5, m = 1) with default params and dt.
mpcd::v1::Problem CartpoleProblem() {
  mpcd::v1::Problem problem;
  *problem.mutable_x_init() = Ramp({5});
  *problem.mutable_cost()->mutable_quadratic() = Identity(6);
  problem.mutable_dynamics()->mutable_model()->set_name("cartpole");
  *problem.mutable_u_lower() = Filled({1}, -100.0);
  *problem.mutable_u_upper() = Filled({1}, 100.0);
  return problem;
}

mpcd::v1::SolveRequest Request(std::vector<mpcd::v1::Problem> problems) {
  mpcd::v1::SolveRequest request;
  request.set_horizon(kHorizon);
  for (mpcd::v1::Problem& problem : problems) *request.add_problems() = std::move(problem);
  return request;
}

// Two linear problems and a cartpole one, all valid.
mpcd::v1::SolveRequest ValidRequest() {
  return Request({LinearProblem(), TimeVaryingLinearProblem(), CartpoleProblem()});
}

TEST(ToProblems, ConvertsTimeInvariantLinearProblem) {
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> problems,
                           ToProblems(Request({LinearProblem()}), RequestLimits{}));
  ASSERT_THAT(problems, SizeIs(1));
  const Problem& p = problems[0];
  EXPECT_EQ(p.shape, (ProblemShape{DynamicsId::Linear(), kN, kM, kHorizon}));
  EXPECT_THAT(p.x_init, ElementsAre(0.1, 0.2, ::testing::DoubleEq(0.30000000000000004)));
  EXPECT_THAT(p.cost_quadratic, SizeIs(kTau * kTau));
  EXPECT_THAT(p.cost_linear, SizeIs(kTau));
  EXPECT_THAT(p.transition, SizeIs(kN * kTau));
  EXPECT_THAT(p.offset, SizeIs(kN));
  EXPECT_THAT(p.u_lower, ElementsAre(-1.0, -1.0));
  EXPECT_THAT(p.u_upper, ElementsAre(1.0, 1.0));
  EXPECT_THAT(p.u_init, SizeIs(0));
  EXPECT_THAT(p.params, SizeIs(0));
  EXPECT_THAT(ValidateProblemSizes(p), IsOk());
}

TEST(ToProblems, ConvertsTimeVaryingLinearProblem) {
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> problems,
                           ToProblems(Request({TimeVaryingLinearProblem()}), RequestLimits{}));
  const Problem& p = problems[0];
  EXPECT_EQ(p.shape, (ProblemShape{DynamicsId::Linear(), kN, kM, kHorizon}));
  EXPECT_THAT(p.cost_quadratic, SizeIs(kHorizon * kTau * kTau));
  EXPECT_THAT(p.cost_linear, SizeIs(kHorizon * kTau));
  EXPECT_THAT(p.transition, SizeIs((kHorizon - 1) * kN * kTau));
  EXPECT_THAT(p.offset, SizeIs((kHorizon - 1) * kN));
  EXPECT_THAT(p.u_lower, SizeIs(kHorizon * kM));
  EXPECT_THAT(p.u_upper, SizeIs(kHorizon * kM));
  EXPECT_THAT(p.u_init, SizeIs(kHorizon * kM));
  // Row-major data is copied as is.
  EXPECT_DOUBLE_EQ(p.cost_linear.back(), 0.1 * kHorizon * kTau);
}

TEST(ToProblems, MixesTimeInvariantAndTimeVaryingBounds) {
  mpcd::v1::Problem problem = LinearProblem();
  *problem.mutable_u_upper() = Filled({kHorizon, kM}, 2.0);
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> problems,
                           ToProblems(Request({problem}), RequestLimits{}));
  EXPECT_THAT(problems[0].u_lower, SizeIs(kM));
  EXPECT_THAT(problems[0].u_upper, SizeIs(kHorizon * kM));
}

TEST(ToProblems, ConvertsModelProblemWithDefaults) {
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> problems,
                           ToProblems(Request({CartpoleProblem()}), RequestLimits{}));
  const Problem& p = problems[0];
  EXPECT_EQ(p.shape, (ProblemShape{ModelId<CartpoleModel>(), 5, 1, kHorizon}));
  EXPECT_THAT(p.params, SizeIs(0));  // the model's defaults
  EXPECT_EQ(p.dt, 0.0);              // the model's default
  EXPECT_THAT(p.transition, SizeIs(0));
  EXPECT_THAT(p.offset, SizeIs(0));
  // An absent linear cost is zero.
  EXPECT_THAT(p.cost_linear, SizeIs(6));
  EXPECT_THAT(p.cost_linear, Each(0.0));
}

// The continuous-time cartpole (n = 4, m = 1): an integrator may be named.
mpcd::v1::Problem ContinuousCartpoleProblem(const std::string& integrator) {
  mpcd::v1::Problem problem;
  *problem.mutable_x_init() = Ramp({4});
  *problem.mutable_cost()->mutable_quadratic() = Identity(5);
  problem.mutable_dynamics()->mutable_model()->set_name("cartpole_continuous");
  problem.mutable_dynamics()->mutable_model()->set_integrator(integrator);
  return problem;
}

TEST(ToProblems, ConvertsAContinuousModelsIntegrator) {
  const std::pair<std::string, Integrator> cases[] = {{"", Integrator::kDefault},
                                                      {"euler", Integrator::kEuler},
                                                      {"midpoint", Integrator::kMidpoint},
                                                      {"rk4", Integrator::kRk4}};
  for (const auto& [name, integrator] : cases) {
    MPC_ASSERT_OK_AND_ASSIGN(
        std::vector<Problem> problems,
        ToProblems(Request({ContinuousCartpoleProblem(name)}), RequestLimits{}));
    EXPECT_EQ(problems[0].integrator, integrator) << name;
  }
  EXPECT_THAT(ToProblems(Request({ContinuousCartpoleProblem("rk45")}), RequestLimits{}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "problems[0].dynamics.model.integrator: unknown integrator \"rk45\" for "
                       "model \"cartpole_continuous\" (known: rk4, euler, midpoint)"));
}

TEST(ToProblems, ConvertsModelParamsAndDt) {
  mpcd::v1::Problem problem = CartpoleProblem();
  mpcd::v1::ModelDynamics* model = problem.mutable_dynamics()->mutable_model();
  for (double value : {9.81, 1.5, 0.2, 0.6}) model->add_params(value);
  model->set_dt(0.02);
  problem.clear_u_lower();
  problem.clear_u_upper();
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> problems,
                           ToProblems(Request({problem}), RequestLimits{}));
  EXPECT_THAT(problems[0].params, ElementsAre(9.81, 1.5, 0.2, 0.6));
  EXPECT_EQ(problems[0].dt, 0.02);
  EXPECT_THAT(problems[0].u_lower, SizeIs(0));
  EXPECT_THAT(problems[0].u_upper, SizeIs(0));
}

TEST(ToProblems, ConvertsEveryProblemInOrder) {
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> problems,
                           ToProblems(ValidRequest(), RequestLimits{}));
  ASSERT_THAT(problems, SizeIs(3));
  EXPECT_EQ(problems[0].shape.dynamics, DynamicsId::Linear());
  EXPECT_EQ(problems[1].shape.dynamics, DynamicsId::Linear());
  EXPECT_EQ(problems[2].shape.dynamics, ModelId<CartpoleModel>());
}

TEST(ToProblems, AcceptsHorizonOneWithTimeInvariantDynamics) {
  mpcd::v1::SolveRequest request = Request({LinearProblem()});
  request.set_horizon(1);
  EXPECT_THAT(ToProblems(request, RequestLimits{}), IsOk());
}

TEST(ToProblems, AppliesOptionDefaults) {
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> problems,
                           ToProblems(Request({LinearProblem()}), RequestLimits{}));
  const SolverOptions& options = problems[0].options;
  const SolverOptions defaults;
  EXPECT_EQ(options.max_iterations, 10);
  EXPECT_EQ(options.tolerance, 1e-7);
  EXPECT_EQ(options.linesearch_decay, 0.2);
  EXPECT_EQ(options.max_linesearch_iterations, 10);
  EXPECT_EQ(options.best_cost_eps, 1e-4);
  EXPECT_EQ(options.not_improved_limit, 5);
  EXPECT_EQ(options.max_iterations, defaults.max_iterations);
  EXPECT_FALSE(options.compute_gains);
}

TEST(ToProblems, ConvertsTheSamplingOptionsAndNumbersTheProblems) {
  mpcd::v1::SolveRequest request = ValidRequest();
  mpcd::v1::SolverOptions* options = request.mutable_options();
  options->set_method(mpcd::v1::MPPI_THEN_ILQR);
  options->set_samples(100);
  options->set_sampling_iterations(3);
  options->set_initial_std(0.7);
  options->set_min_std(0.01);
  options->set_temperature(2.5);
  options->set_momentum(0.25);
  options->set_seed(0x123456789abcULL);
  options->set_knot_spacing(4);
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> problems, ToProblems(request, RequestLimits{}));
  for (std::size_t i = 0; i < problems.size(); ++i) {
    const SolverOptions& o = problems[i].options;
    EXPECT_EQ(o.method, SolverMethod::kMppiThenIlqr);
    EXPECT_EQ(o.sampling.samples, 100);
    EXPECT_EQ(o.sampling.elites, 32);
    EXPECT_EQ(o.sampling.iterations, 3);
    EXPECT_EQ(o.sampling.initial_std, 0.7);
    EXPECT_EQ(o.sampling.min_std, 0.01);
    EXPECT_EQ(o.sampling.temperature, 2.5);
    EXPECT_EQ(o.sampling.momentum, 0.25);
    EXPECT_EQ(o.sampling.seed, 0x123456789abcULL);
    EXPECT_EQ(o.sampling.knot_spacing, 4);
    EXPECT_EQ(problems[i].sampling_stream, i);
  }
  // Fewer samples than the default elites: every sample is an elite.
  options->set_samples(8);
  MPC_ASSERT_OK_AND_ASSIGN(problems, ToProblems(request, RequestLimits{}));
  EXPECT_EQ(problems[0].options.sampling.elites, 8);
}

TEST(ToProblems, AppliesGivenOptionsToEveryProblem) {
  mpcd::v1::SolveRequest request = ValidRequest();
  mpcd::v1::SolverOptions* options = request.mutable_options();
  options->set_max_iterations(50);
  options->set_tolerance(0.0);
  options->set_linesearch_decay(1.0);
  options->set_max_linesearch_iterations(3);
  options->set_best_cost_eps(0.0);
  options->set_not_improved_limit(7);
  request.set_return_gains(true);
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> problems, ToProblems(request, RequestLimits{}));
  for (const Problem& problem : problems) {
    EXPECT_EQ(problem.options.max_iterations, 50);
    EXPECT_EQ(problem.options.tolerance, 0.0);
    EXPECT_EQ(problem.options.linesearch_decay, 1.0);
    EXPECT_EQ(problem.options.max_linesearch_iterations, 3);
    EXPECT_EQ(problem.options.best_cost_eps, 0.0);
    EXPECT_EQ(problem.options.not_improved_limit, 7);
    EXPECT_TRUE(problem.options.compute_gains);
  }
}

// One invalid request and the message it must produce (whole, or a distinctive part of it).
struct InvalidCase {
  std::string name;
  std::function<void(mpcd::v1::SolveRequest*)> mutate;
  std::string message;
  bool exact = true;
};

mpcd::v1::Problem* P(mpcd::v1::SolveRequest* request, int i) {
  return request->mutable_problems(i);
}
mpcd::v1::LinearDynamics* Linear(mpcd::v1::SolveRequest* request, int i) {
  return P(request, i)->mutable_dynamics()->mutable_linear();
}
mpcd::v1::ModelDynamics* Model(mpcd::v1::SolveRequest* request) {
  return P(request, 2)->mutable_dynamics()->mutable_model();
}

const std::vector<InvalidCase>& InvalidCases() {
  using R = mpcd::v1::SolveRequest;
  static const auto* const kCases = new std::vector<InvalidCase>{
      // Request level.
      {"HorizonZero", [](R* r) { r->set_horizon(0); }, "horizon: must be >= 1, got 0"},
      {"HorizonOverLimit", [](R* r) { r->set_horizon(10001); },
       "horizon: must be <= 10000, got 10001"},
      {"NoProblems", [](R* r) { r->clear_problems(); }, "problems: must not be empty"},
      {"MaxIterationsZero", [](R* r) { r->mutable_options()->set_max_iterations(0); },
       "options.max_iterations: must be in [1, 100000], got 0"},
      {"MaxIterationsOverLimit", [](R* r) { r->mutable_options()->set_max_iterations(100001); },
       "options.max_iterations: must be in [1, 100000], got 100001"},
      {"ToleranceNegative", [](R* r) { r->mutable_options()->set_tolerance(-1); },
       "options.tolerance: must be >= 0 and finite, got -1"},
      {"ToleranceNaN", [](R* r) { r->mutable_options()->set_tolerance(kNaN); },
       "options.tolerance: must be >= 0 and finite, got nan"},
      {"LinesearchDecayZero", [](R* r) { r->mutable_options()->set_linesearch_decay(0); },
       "options.linesearch_decay: must be in (0, 1], got 0"},
      {"LinesearchDecayAboveOne", [](R* r) { r->mutable_options()->set_linesearch_decay(1.5); },
       "options.linesearch_decay: must be in (0, 1], got 1.5"},
      {"MaxLinesearchIterationsZero",
       [](R* r) { r->mutable_options()->set_max_linesearch_iterations(0); },
       "options.max_linesearch_iterations: must be in [1, 1000], got 0"},
      {"BestCostEpsNegative", [](R* r) { r->mutable_options()->set_best_cost_eps(-1e-3); },
       "options.best_cost_eps: must be >= 0 and finite, got -0.001"},
      {"NotImprovedLimitZero", [](R* r) { r->mutable_options()->set_not_improved_limit(0); },
       "options.not_improved_limit: must be in [1, 2147483647], got 0"},
      // Sampling options (the four, then the rest).
      {"SamplesZero", [](R* r) { r->mutable_options()->set_samples(0); },
       "options.samples: must be in [1, 65536], got 0"},
      {"ElitesOverSamples",
       [](R* r) {
         r->mutable_options()->set_samples(64);
         r->mutable_options()->set_elites(65);
       },
       "options.elites: must be in [1, 64], got 65"},
      {"InitialStdNegative", [](R* r) { r->mutable_options()->set_initial_std(-0.5); },
       "options.initial_std: must be > 0 and finite, got -0.5"},
      {"TemperatureNaN", [](R* r) { r->mutable_options()->set_temperature(kNaN); },
       "options.temperature: must be > 0 and finite, got nan"},
      {"MinStdNegative", [](R* r) { r->mutable_options()->set_min_std(-1); },
       "options.min_std: must be >= 0 and finite, got -1"},
      {"MomentumOne", [](R* r) { r->mutable_options()->set_momentum(1); },
       "options.momentum: must be in [0, 1), got 1"},
      {"SamplingIterationsZero", [](R* r) { r->mutable_options()->set_sampling_iterations(0); },
       "options.sampling_iterations: must be in [1, 10000], got 0"},
      {"KnotSpacingZero", [](R* r) { r->mutable_options()->set_knot_spacing(0); },
       "options.knot_spacing: must be in [1, 10000], got 0"},
      {"UnknownMethod",
       [](R* r) { r->mutable_options()->set_method(static_cast<mpcd::v1::SolverMethod>(9)); },
       "options.method: unknown value 9"},
      {"JacobianOfPureCem",
       [](R* r) {
         r->mutable_options()->set_method(mpcd::v1::CEM);
         r->set_return_x_init_jacobian(true);
       },
       "return_x_init_jacobian: options.method CEM has no implicit derivative (use "
       "CEM_THEN_ILQR)"},

      // Tensor encoding.
      {"DataShorterThanShape",
       [](R* r) { P(r, 0)->mutable_cost()->mutable_linear()->mutable_data()->RemoveLast(); },
       "problems[0].cost.linear: shape (5) needs 5 values, got 4"},
      {"DataWithoutShape", [](R* r) { P(r, 1)->mutable_x_init()->clear_shape(); },
       "problems[1].x_init: has 3 values but no shape (set shape, e.g. [3])"},
      {"HugeShape",
       [](R* r) {
         mpcd::v1::Tensor* t = P(r, 0)->mutable_u_init();
         for (int i = 0; i < 4; ++i) t->add_shape(4000000000u);
       },
       "problems[0].u_init: shape (4000000000,4000000000,4000000000,4000000000) needs too many "
       "values, got 0"},

      // Shapes.
      {"XInitWrongLength", [](R* r) { *P(r, 2)->mutable_x_init() = Ramp({4}); },
       "problems[2].x_init: expected shape (5), got (4)"},
      {"XInitMissing", [](R* r) { P(r, 2)->clear_x_init(); },
       "problems[2].x_init: required, expected shape (5)"},
      {"LinearXInitMatrix",
       [](R* r) {
         *P(r, 0)->mutable_x_init() = Ramp({1, 3});
       },
       "problems[0].x_init: expected shape (n) with n >= 1, got (1,3)"},
      {"QuadraticWrongShape",
       [](R* r) { *P(r, 0)->mutable_cost()->mutable_quadratic() = Identity(4); },
       "problems[0].cost.quadratic: expected shape (5,5) or (6,5,5), got (4,4)"},
      {"QuadraticWrongSlices",
       [](R* r) { *P(r, 1)->mutable_cost()->mutable_quadratic() = Identity(5, 5); },
       "problems[1].cost.quadratic: expected shape (5,5) or (6,5,5), got (5,5,5)"},
      {"QuadraticMissing", [](R* r) { P(r, 2)->mutable_cost()->clear_quadratic(); },
       "problems[2].cost.quadratic: required, expected shape (6,6) or (6,6,6)"},
      {"LinearCostWrongShape",
       [](R* r) {
         *P(r, 1)->mutable_cost()->mutable_linear() = Ramp({kHorizon, 4});
       },
       "problems[1].cost.linear: expected shape (5) or (6,5), got (6,4)"},
      {"TransitionWrongRows",
       [](R* r) {
         *Linear(r, 0)->mutable_transition() = Ramp({4, 5});
       },
       "problems[0].dynamics.linear.transition: expected shape (3,3+m) or (5,3,3+m) with m >= 1, "
       "got (4,5)"},
      {"TransitionNoControls",
       [](R* r) {
         *Linear(r, 0)->mutable_transition() = Ramp({3, 3});
       },
       "problems[0].dynamics.linear.transition: expected shape (3,3+m) or (5,3,3+m) with m >= 1, "
       "got (3,3)"},
      {"TransitionWrongSlices",
       [](R* r) {
         *Linear(r, 1)->mutable_transition() = Ramp({kHorizon, 3, 5});
       },
       "problems[1].dynamics.linear.transition: expected shape (3,3+m) or (5,3,3+m) with m >= 1, "
       "got (6,3,5)"},
      {"TransitionMissing", [](R* r) { Linear(r, 0)->clear_transition(); },
       "problems[0].dynamics.linear.transition: required, expected shape (3,3+m) or (5,3,3+m) "
       "with m >= 1"},
      {"TimeVaryingTransitionWithHorizonOne",
       [](R* r) {
         r->set_horizon(1);
         r->mutable_problems()->DeleteSubrange(1, 2);
         *Linear(r, 0)->mutable_transition() = Ramp({0, 3, 5});
       },
       "problems[0].dynamics.linear.transition: expected shape (3,3+m) with m >= 1, got (0,3,5)"},
      {"OffsetWrongShape",
       [](R* r) {
         *Linear(r, 0)->mutable_offset() = Ramp({kHorizon, 3});
       },
       "problems[0].dynamics.linear.offset: expected shape (3) or (5,3), got (6,3)"},
      {"LowerBoundWrongShape", [](R* r) { *P(r, 0)->mutable_u_lower() = Filled({3}, -1.0); },
       "problems[0].u_lower: expected shape (2) or (6,2), got (3)"},
      {"UpperBoundScalar", [](R* r) { *P(r, 2)->mutable_u_upper() = Filled({}, 1.0); },
       "problems[2].u_upper: expected shape (1) or (6,1), got ()"},
      {"UInitWrongShape", [](R* r) { *P(r, 0)->mutable_u_init() = Filled({kM}, 0.0); },
       "problems[0].u_init: expected shape (6,2), got (2)"},
      {"OnlyLowerBound", [](R* r) { P(r, 0)->clear_u_upper(); },
       "problems[0].u_upper: required when u_lower is given (give both bounds or neither)"},
      {"OnlyUpperBound", [](R* r) { P(r, 1)->clear_u_lower(); },
       "problems[1].u_lower: required when u_upper is given (give both bounds or neither)"},

      // Values.
      {"XInitNaN", [](R* r) { P(r, 0)->mutable_x_init()->set_data(1, kNaN); },
       "problems[0].x_init: not finite at [1] (nan)"},
      {"LinearCostInfinite",
       [](R* r) {
         P(r, 0)->mutable_cost()->mutable_linear()->set_data(
             4, std::numeric_limits<double>::infinity());
       },
       "problems[0].cost.linear: not finite at [4] (inf)"},
      {"TimeVaryingQuadraticNaN",
       [](R* r) { P(r, 1)->mutable_cost()->mutable_quadratic()->set_data(25 + 5 + 2, kNaN); },
       "problems[1].cost.quadratic: not finite at [1,1,2] (nan)"},
      {"TransitionNaN", [](R* r) { Linear(r, 1)->mutable_transition()->set_data(0, kNaN); },
       "problems[1].dynamics.linear.transition: not finite at [0,0,0] (nan)"},
      {"BoundInfinite",
       [](R* r) {
         P(r, 2)->mutable_u_upper()->set_data(0, std::numeric_limits<double>::infinity());
       },
       "problems[2].u_upper: not finite at [0] (inf)"},
      {"LowerAboveUpper",
       [](R* r) {
         *P(r, 1)->mutable_u_lower() = Filled({kHorizon, kM}, -1.0);
         P(r, 1)->mutable_u_lower()->set_data(3 * kM, 2.5);
       },
       "problems[1].u_lower: must be <= u_upper at [3,0] (2.5 > 1)"},
      {"LowerAboveUpperTimeInvariant", [](R* r) { P(r, 0)->mutable_u_lower()->set_data(1, 1.5); },
       "problems[0].u_lower: must be <= u_upper at [1] (1.5 > 1)"},
      {"ParamNaN",
       [](R* r) {
         for (double value : {9.8, kNaN, 0.1, 0.5}) Model(r)->add_params(value);
       },
       "problems[2].dynamics.model.params: not finite at [1] (nan)"},

      // Dynamics.
      {"DynamicsMissing", [](R* r) { P(r, 1)->clear_dynamics(); },
       "problems[1].dynamics: required (set dynamics.linear, dynamics.model or dynamics.graph)"},
      {"UnknownModel", [](R* r) { Model(r)->set_name("foo"); },
       "problems[2].dynamics.model.name: unknown model \"foo\" (known: " + KnownModels() + ")"},
      {"UnknownLongModelNameIsCut", [](R* r) { Model(r)->set_name(std::string(100000, 'x')); },
       "problems[2].dynamics.model.name: unknown model \"" + std::string(64, 'x') +
           "...\" (known: " + KnownModels() + ")"},
      {"ModelNameMissing", [](R* r) { Model(r)->clear_name(); },
       "problems[2].dynamics.model.name: required (known: " + KnownModels() + ")"},
      {"ModelParamsWrongCount",
       [](R* r) {
         for (double value : {9.8, 1.0, 0.1}) Model(r)->add_params(value);
       },
       "problems[2].dynamics.model.params: expected 4 values (gravity, masscart, masspole, "
       "length) or none, got 3"},
      {"ModelDtNegative", [](R* r) { Model(r)->set_dt(-0.05); },
       "problems[2].dynamics.model.dt: must be > 0 (or 0 for the model's default), got -0.05"},
      {"ModelDtNaN", [](R* r) { Model(r)->set_dt(kNaN); },
       "problems[2].dynamics.model.dt: must be > 0 (or 0 for the model's default), got nan"},
      {"IntegratorForADiscreteTimeModel", [](R* r) { Model(r)->set_integrator("euler"); },
       "problems[2].dynamics.model.integrator: model \"cartpole\" is discrete-time (its update "
       "rule is the model) and takes no integrator; integrators apply to continuous-time models "
       "(ListModels: continuous)"},
  };
  return *kCases;
}

// Every name in the table of accepted shapes is a real field path of the proto message that
// carries the array, so a message naming it names what the client sent.
bool IsFieldPath(const google::protobuf::Descriptor* message, const std::string& path) {
  for (absl::string_view part : absl::StrSplit(path, '.')) {
    if (message == nullptr) return false;
    const google::protobuf::FieldDescriptor* field = message->FindFieldByName(std::string(part));
    if (field == nullptr) return false;
    message = field->message_type();
  }
  return true;
}

TEST(ProblemFields, NamesAreProtoFieldPaths) {
  ProblemShape linear{DynamicsId::Linear(), kN, kM, kHorizon};
  ProblemShape model{ModelId<CartpoleModel>(), 5, 1, kHorizon};
  for (ArrayField field : kProblemArrays) {
    for (const ProblemShape& shape : {linear, model}) {
      const std::string name = ArraySpecFor(field, shape).name;
      EXPECT_TRUE(IsFieldPath(mpcd::v1::Problem::descriptor(), name)) << name;
    }
  }
  for (ArrayField field : {ArrayField::kSolutionX, ArrayField::kSolutionU}) {
    const std::string name = ArraySpecFor(field, linear).name;
    EXPECT_TRUE(IsFieldPath(mpcd::v1::Solution::descriptor(), name)) << name;
  }
  for (ArrayField field : {ArrayField::kCotangentX, ArrayField::kCotangentU}) {
    const std::string name = ArraySpecFor(field, linear).name;
    EXPECT_TRUE(IsFieldPath(mpcd::v1::Cotangent::descriptor(), name)) << name;
  }
  const BackwardFieldNames names = BackwardRequestFieldNames(4);
  EXPECT_EQ(names.solution, "solutions[4].");
  EXPECT_EQ(names.cotangent, "cotangents[4].");
  EXPECT_TRUE(IsFieldPath(mpcd::v1::BackwardRequest::descriptor(), "solutions"));
  EXPECT_TRUE(IsFieldPath(mpcd::v1::BackwardRequest::descriptor(), "cotangents"));
}

// The conversion checks every Tensor of a problem against the same table the solver validation
// uses: a wrong shape in any field is reported with the field's proto path and the table's shapes.
TEST(ToProblems, EveryTensorIsCheckedAgainstTheTable) {
  const ProblemShape shapes[] = {{DynamicsId::Linear(), kN, kM, kHorizon},
                                 {DynamicsId::Linear(), kN, kM, kHorizon},
                                 {ModelId<CartpoleModel>(), 5, 1, kHorizon}};
  int checked = 0;
  for (int i = 0; i < 3; ++i) {
    for (ArrayField field : kProblemArrays) {
      const ArraySpec spec = ArraySpecFor(field, shapes[i]);
      if (spec.shapes.empty() || field == ArrayField::kParams) continue;
      mpcd::v1::SolveRequest request = ValidRequest();
      mpcd::v1::Problem* problem = request.mutable_problems(i);
      mpcd::v1::Tensor bad = Ramp({1, 1, 1, 1});
      switch (field) {
        case ArrayField::kXInit:
          if (i < 2) continue;  // a linear x_init defines n: its own message
          *problem->mutable_x_init() = bad;
          break;
        case ArrayField::kCostQuadratic:
          *problem->mutable_cost()->mutable_quadratic() = bad;
          break;
        case ArrayField::kCostLinear:
          *problem->mutable_cost()->mutable_linear() = bad;
          break;
        case ArrayField::kTransition:
          continue;  // defines m: its own message (TransitionWrongRows, ...)
        case ArrayField::kOffset:
          *problem->mutable_dynamics()->mutable_linear()->mutable_offset() = bad;
          break;
        case ArrayField::kULower:
          *problem->mutable_u_lower() = bad;
          break;
        case ArrayField::kUUpper:
          *problem->mutable_u_upper() = bad;
          break;
        case ArrayField::kUInit:
          *problem->mutable_u_init() = bad;
          break;
        default:
          continue;
      }
      const std::string expected =
          absl::StrCat("problems[", i, "].", spec.name, ": expected shape ", ShapeList(spec.shapes),
                       ", got (1,1,1,1)");
      EXPECT_THAT(ToProblems(request, RequestLimits{}),
                  StatusIs(absl::StatusCode::kInvalidArgument, expected));
      ++checked;
    }
  }
  EXPECT_EQ(checked, 6 + 6 + 6);
}

// Options go through the solver's own range rules (CheckSolverOptionValues) on the values as sent:
// a uint32 above INT_MAX is reported as it was sent, not as the int it would narrow to.
TEST(ValidateSolverOptions, SharesTheSolversRulesAndReportsTheValueSent) {
  mpcd::v1::SolverOptions options;
  options.set_max_iterations(3000000000u);
  EXPECT_THAT(ValidateSolverOptions(options, ProblemLimits{}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "options.max_iterations: must be in [1, 100000], got 3000000000"));
  options.Clear();
  options.set_not_improved_limit(4000000000u);
  EXPECT_THAT(ValidateSolverOptions(options, ProblemLimits{}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "options.not_improved_limit: must be in [1, 2147483647], got 4000000000"));
  // The same rule, from a Problem's SolverOptions.
  SolverOptionValues values;
  values.linesearch_decay = 1.5;
  EXPECT_THAT(CheckSolverOptionValues(values, ProblemLimits{}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "options.linesearch_decay: must be in (0, 1], got 1.5"));
  options.Clear();
  options.set_linesearch_decay(1.5);
  EXPECT_THAT(ValidateSolverOptions(options, ProblemLimits{}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "options.linesearch_decay: must be in (0, 1], got 1.5"));
  EXPECT_THAT(ValidateSolverOptions(mpcd::v1::SolverOptions(), ProblemLimits{}), IsOk());
}

class ToProblemsRejects : public ::testing::TestWithParam<InvalidCase> {};

TEST_P(ToProblemsRejects, NamesTheField) {
  mpcd::v1::SolveRequest request = ValidRequest();
  ASSERT_THAT(ToProblems(request, RequestLimits{}), IsOk());
  GetParam().mutate(&request);
  absl::StatusOr<std::vector<Problem>> problems = ToProblems(request, RequestLimits{});
  if (GetParam().exact) {
    EXPECT_THAT(problems, StatusIs(absl::StatusCode::kInvalidArgument, GetParam().message));
  } else {
    EXPECT_THAT(problems,
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(GetParam().message)));
  }
}

INSTANTIATE_TEST_SUITE_P(AllFields, ToProblemsRejects, ::testing::ValuesIn(InvalidCases()),
                         [](const ::testing::TestParamInfo<InvalidCase>& info) {
                           return info.param.name;
                         });

// The fields a BadRequest names, in order.
std::vector<std::string> ViolatedFields(const absl::Status& status) {
  std::vector<std::string> fields;
  const std::optional<google::rpc::BadRequest> bad_request = BadRequestOf(status);
  if (!bad_request.has_value()) return fields;
  for (const auto& violation : bad_request->field_violations()) {
    fields.push_back(violation.field());
  }
  return fields;
}

TEST(ToProblems, NamesEveryBrokenFieldOfEveryProblem) {
  mpcd::v1::SolveRequest request = ValidRequest();
  mpcd::v1::Problem& first = *request.mutable_problems(0);
  first.mutable_x_init()->set_data(1, kNaN);
  first.mutable_dynamics()->mutable_linear()->mutable_offset()->set_data(2, kNaN);
  *first.mutable_u_lower() = Filled({kM}, 2.0);                                 // above u_upper
  *request.mutable_problems(2)->mutable_u_init() = Filled({kHorizon, 2}, 0.0);  // m = 1
  const absl::Status status = ToProblems(request, RequestLimits{}).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr("problems[0].x_init: not finite at [1]")));
  EXPECT_THAT(status.message(), HasSubstr("(and 3 more violations: see the error details)"));
  EXPECT_THAT(ViolatedFields(status),
              ElementsAre("problems[0].x_init", "problems[0].dynamics.linear.offset",
                          "problems[0].u_lower", "problems[2].u_init"));
}

TEST(ToProblems, ValueChecksWaitForTheShapesTheyDependOn) {
  mpcd::v1::SolveRequest request = Request({LinearProblem()});
  mpcd::v1::Problem& problem = *request.mutable_problems(0);
  *problem.mutable_u_upper() = Filled({kM + 1}, 1.0);
  *problem.mutable_u_init() = Filled({kHorizon + 1, kM}, kNaN);
  problem.mutable_cost()->mutable_linear()->set_data(0, kNaN);
  const absl::Status status = ToProblems(request, RequestLimits{}).status();
  EXPECT_THAT(ViolatedFields(status), ElementsAre("problems[0].u_upper", "problems[0].u_init"));
}

TEST(Violations, CountsExactlyUpToTheBoundAndSaysAtLeastBeyondIt) {
  Violations exactly;
  for (std::size_t i = 0; i < kMaxFieldViolations; ++i) {
    ASSERT_TRUE(exactly.Add(absl::InvalidArgumentError(absl::StrCat("f", i, ": bad"))));
  }
  EXPECT_THAT(exactly.ToStatus().message(), HasSubstr("(and 15 more violations"));
  EXPECT_THAT(ViolatedFields(exactly.ToStatus()), SizeIs(kMaxFieldViolations));

  Violations beyond = exactly;
  EXPECT_FALSE(beyond.Add(absl::InvalidArgumentError("g: bad")));
  EXPECT_THAT(beyond.ToStatus().message(), HasSubstr("(and at least 15 more violations"));
  EXPECT_THAT(ViolatedFields(beyond.ToStatus()), SizeIs(kMaxFieldViolations));
}

TEST(Violations, AStatusNamingSeveralFieldsAddsEachOfThem) {
  Violations violations;
  violations.Add(
      AllViolations({absl::InvalidArgumentError("a: one"), absl::InvalidArgumentError("b: two")}));
  violations.Add(absl::InvalidArgumentError("c: three"));
  const absl::Status status = violations.ToStatus();
  EXPECT_EQ(status.message(), "a: one (and 2 more violations: see the error details)");
  EXPECT_THAT(ViolatedFields(status), ElementsAre("a", "b", "c"));
}

TEST(ToProblems, EnforcesRequestLimits) {
  RequestLimits limits;
  limits.max_problems = 2;
  EXPECT_THAT(
      ToProblems(ValidRequest(), limits),
      StatusIs(absl::StatusCode::kInvalidArgument, "problems: at most 2 per request, got 3"));

  limits = RequestLimits{};
  limits.problem.max_state_dim = 2;
  // Every problem is checked: the message is the first one's, with a count of the others.
  EXPECT_THAT(ToProblems(ValidRequest(), limits),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "problems[0].x_init: state dimension 3 is over the limit 2 (and 2 more "
                       "violations: see the error details)"));

  limits = RequestLimits{};
  limits.problem.max_control_dim = 1;
  EXPECT_THAT(ToProblems(ValidRequest(), limits),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "problems[0].dynamics.linear.transition: control dimension 2 is over the "
                       "limit 1 (and 1 more violation: see the error details)"));

  limits = RequestLimits{};
  limits.problem.max_horizon = 5;
  EXPECT_THAT(ToProblems(ValidRequest(), limits),
              StatusIs(absl::StatusCode::kInvalidArgument, "horizon: must be <= 5, got 6"));
}

TEST(ToProblems, ModelLimitsApplyToo) {
  RequestLimits limits;
  limits.problem.max_state_dim = 4;  // cartpole has 5 states
  EXPECT_THAT(ToProblems(Request({CartpoleProblem()}), limits),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "problems[0].dynamics.model.name: model \"cartpole\" has n = 5, m = 1, "
                       "over the limits n <= 4, m <= 256"));
}

TEST(ToProblems, JacobianRequestsBecomeOptions) {
  mpcd::v1::SolveRequest request = Request({CartpoleProblem()});
  request.set_return_x_init_jacobian(true);
  request.set_return_params_jacobian(true);
  request.set_jacobian_mode(mpcd::v1::EXACT);
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> problems, ToProblems(request, RequestLimits{}));
  EXPECT_TRUE(problems[0].options.compute_x_init_jacobian);
  EXPECT_TRUE(problems[0].options.compute_params_jacobian);
  EXPECT_EQ(problems[0].options.jacobian_mode, GradientMode::kExact);
}

TEST(ToProblems, ParamsJacobianNeedsAModel) {
  mpcd::v1::SolveRequest request = ValidRequest();
  request.set_return_params_jacobian(true);
  EXPECT_THAT(ToProblems(request, RequestLimits{}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("return_params_jacobian: problems[0] has linear dynamics")));
}

TEST(ToProblems, EmptyTensorIsAbsent) {
  mpcd::v1::Problem problem = LinearProblem();
  problem.mutable_dynamics()->mutable_linear()->mutable_offset()->Clear();
  problem.mutable_cost()->mutable_linear()->Clear();
  problem.mutable_u_lower()->Clear();
  problem.mutable_u_upper()->Clear();
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> problems,
                           ToProblems(Request({problem}), RequestLimits{}));
  EXPECT_THAT(problems[0].offset, SizeIs(0));
  EXPECT_THAT(problems[0].cost_linear, SizeIs(kTau));
  EXPECT_THAT(problems[0].u_lower, SizeIs(0));
  EXPECT_THAT(problems[0].u_upper, SizeIs(0));
}

TEST(ToProblems, NeverFailsOnRandomGarbageShapes) {
  // Shapes and data lengths that disagree in every way must give an error, never a crash.
  mpcd::v1::SolveRequest request = Request({LinearProblem()});
  for (std::uint32_t a : {0u, 1u, 3u, 5u, 4294967295u}) {
    for (std::uint32_t b : {0u, 2u, 7u}) {
      mpcd::v1::SolveRequest copy = request;
      mpcd::v1::Tensor* t = copy.mutable_problems(0)->mutable_cost()->mutable_quadratic();
      t->clear_shape();
      t->add_shape(a);
      t->add_shape(b);
      EXPECT_THAT(
          ToProblems(copy, RequestLimits{}),
          StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("problems[0].cost.quadratic: ")));
    }
  }
}

TEST(ToSolveResponse, WritesShapesAndStatuses) {
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> problems,
                           ToProblems(ValidRequest(), RequestLimits{}));
  std::vector<Solution> solutions(problems.size());
  const SolveStatus statuses[] = {SolveStatus::kConverged, SolveStatus::kLinesearchFailed,
                                  SolveStatus::kNotFinite};
  for (std::size_t i = 0; i < problems.size(); ++i) {
    solutions[i].Resize(problems[i].shape, /*with_gains=*/i == 0);
    solutions[i].status = statuses[i];
    solutions[i].iterations = static_cast<int>(i) + 4;
    solutions[i].cost = 1.5 * static_cast<double>(i);
    solutions[i].step_norm = 1e-9;
    solutions[i].regularization = 0.25;
    solutions[i].x[0] = 42.0;
  }
  mpcd::v1::SolveResponse response;
  ToSolveResponse(solutions, problems, &response);
  ASSERT_EQ(response.solutions_size(), 3);

  const mpcd::v1::Solution& first = response.solutions(0);
  EXPECT_THAT(first.x().shape(), ElementsAre(kHorizon, kN));
  EXPECT_THAT(first.x().data(), SizeIs(kHorizon * kN));
  EXPECT_EQ(first.x().data(0), 42.0);
  EXPECT_THAT(first.u().shape(), ElementsAre(kHorizon, kM));
  EXPECT_THAT(first.u().data(), SizeIs(kHorizon * kM));
  EXPECT_THAT(first.feedback().shape(), ElementsAre(kHorizon, kM, kN));
  EXPECT_THAT(first.feedback().data(), SizeIs(kHorizon * kM * kN));
  EXPECT_THAT(first.feedforward().shape(), ElementsAre(kHorizon, kM));
  EXPECT_EQ(first.status(), mpcd::v1::CONVERGED);
  EXPECT_EQ(first.iterations(), 4u);
  EXPECT_EQ(first.step_norm(), 1e-9);
  EXPECT_EQ(first.regularization(), 0.25);

  EXPECT_EQ(response.solutions(1).status(), mpcd::v1::LINESEARCH_FAILED);
  EXPECT_FALSE(response.solutions(1).has_feedback());
  EXPECT_FALSE(response.solutions(1).has_feedforward());

  const mpcd::v1::Solution& cartpole = response.solutions(2);
  EXPECT_EQ(cartpole.status(), mpcd::v1::NOT_FINITE);
  EXPECT_THAT(cartpole.x().shape(), ElementsAre(kHorizon, 5));
  EXPECT_THAT(cartpole.u().shape(), ElementsAre(kHorizon, 1));
  EXPECT_EQ(cartpole.cost(), 3.0);
}

TEST(ToProtoSolveStatus, MapsEveryStatus) {
  EXPECT_EQ(ToProtoSolveStatus(SolveStatus::kConverged), mpcd::v1::CONVERGED);
  EXPECT_EQ(ToProtoSolveStatus(SolveStatus::kMaxIterations), mpcd::v1::MAX_ITERATIONS);
  EXPECT_EQ(ToProtoSolveStatus(SolveStatus::kLinesearchFailed), mpcd::v1::LINESEARCH_FAILED);
  EXPECT_EQ(ToProtoSolveStatus(SolveStatus::kNotFinite), mpcd::v1::NOT_FINITE);
  // The proto names are the solver's names.
  for (SolveStatus status : {SolveStatus::kConverged, SolveStatus::kMaxIterations,
                             SolveStatus::kLinesearchFailed, SolveStatus::kNotFinite}) {
    EXPECT_EQ(mpcd::v1::SolveStatus_Name(ToProtoSolveStatus(status)), SolveStatusName(status));
  }
}

TEST(ToListModelsResponse, DescribesBuiltinModels) {
  mpcd::v1::ListModelsResponse response;
  ToListModelsResponse(BuiltinModels(), &response);
  ASSERT_EQ(response.models_size(), static_cast<int>(BuiltinModels().size()));
  auto find = [&response](const std::string& name) -> const mpcd::v1::ModelDescription* {
    for (const mpcd::v1::ModelDescription& model : response.models()) {
      if (model.name() == name) return &model;
    }
    return nullptr;
  };
  const mpcd::v1::ModelDescription* cartpole = find("cartpole");
  ASSERT_NE(cartpole, nullptr);
  EXPECT_EQ(cartpole->state_dim(), 5u);
  EXPECT_EQ(cartpole->control_dim(), 1u);
  EXPECT_THAT(cartpole->param_names(), ElementsAre("gravity", "masscart", "masspole", "length"));
  EXPECT_THAT(cartpole->default_params(), ElementsAre(9.8, 1.0, 0.1, 0.5));
  EXPECT_EQ(cartpole->default_dt(), 0.05);
  EXPECT_FALSE(cartpole->continuous());
  EXPECT_THAT(cartpole->integrators(), IsEmpty());
  EXPECT_THAT(cartpole->state_names(), SizeIs(5));
  const mpcd::v1::ModelDescription* quadrotor = find("quadrotor");
  ASSERT_NE(quadrotor, nullptr);
  EXPECT_EQ(quadrotor->state_dim(), 12u);
  EXPECT_EQ(quadrotor->control_dim(), 4u);
  EXPECT_TRUE(quadrotor->continuous());
  EXPECT_THAT(quadrotor->integrators(), ElementsAre("rk4", "euler", "midpoint"));
}

}  // namespace
}  // namespace mpc
