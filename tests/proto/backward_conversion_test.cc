// BackwardRequest / BackwardResponse conversion and the Jacobians of SolveResponse
// (proto/proto_conversion.h): validation naming the field, shapes mirroring the request, and the
// values the solver computes.

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mpcd/v1/mpcd.pb.h"
#include "proto/proto_conversion.h"
#include "solver/cpu/cpu_backend.h"
#include "solver/cpu/ilqr.h"
#include "solver/cpu/implicit_backward.h"
#include "solver/gradients.h"
#include "solver/models/model_list.h"
#include "solver/models/model_registry.h"
#include "tests/testing/proto_tensors.h"
#include "tests/testing/random_problems.h"
#include "tests/testing/same_problem.h"
#include "tests/testing/status_matchers.h"

namespace mpc {
namespace {

using ::mpc::testing::DataOf;
using ::mpc::testing::IsOk;
using ::mpc::testing::MakeTensor;
using ::mpc::testing::ShapeOf;
using ::mpc::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

constexpr int kHorizon = 6;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Proto problems: a time-invariant linear one without offset or linear cost (n = 3, m = 2,
// bounded), a time-varying linear one with offset, and a cartpole with default params.
mpcd::v1::Problem InvariantLinearProblem() {
  const Problem p = testing::RandomLqrProblem({.state_dim = 3,
                                               .control_dim = 2,
                                               .horizon = kHorizon,
                                               .with_offset = false,
                                               .bounded = true},
                                              1);
  mpcd::v1::Problem proto;
  *proto.mutable_x_init() = MakeTensor({3}, p.x_init);
  *proto.mutable_cost()->mutable_quadratic() = MakeTensor({5, 5}, p.cost_quadratic);
  *proto.mutable_dynamics()->mutable_linear()->mutable_transition() =
      MakeTensor({3, 5}, p.transition);
  *proto.mutable_u_lower() = MakeTensor({2}, p.u_lower);
  *proto.mutable_u_upper() = MakeTensor({2}, p.u_upper);
  return proto;
}

mpcd::v1::Problem VaryingLinearProblem() {
  const Problem p = testing::RandomLqrProblem(
      {.state_dim = 3, .control_dim = 2, .horizon = kHorizon, .time_varying = true}, 2);
  mpcd::v1::Problem proto;
  *proto.mutable_x_init() = MakeTensor({3}, p.x_init);
  *proto.mutable_cost()->mutable_quadratic() = MakeTensor({kHorizon, 5, 5}, p.cost_quadratic);
  *proto.mutable_cost()->mutable_linear() = MakeTensor({kHorizon, 5}, p.cost_linear);
  *proto.mutable_dynamics()->mutable_linear()->mutable_transition() =
      MakeTensor({kHorizon - 1, 3, 5}, p.transition);
  *proto.mutable_dynamics()->mutable_linear()->mutable_offset() =
      MakeTensor({kHorizon - 1, 3}, p.offset);
  return proto;
}

mpcd::v1::Problem CartpoleProblem() {
  testing::RandomModelOptions o;
  o.horizon = kHorizon;
  const Problem p = testing::RandomCartpoleProblem(o, 3);
  mpcd::v1::Problem proto;
  *proto.mutable_x_init() = MakeTensor({5}, p.x_init);
  *proto.mutable_cost()->mutable_quadratic() = MakeTensor({6, 6}, p.cost_quadratic);
  *proto.mutable_cost()->mutable_linear() = MakeTensor({6}, p.cost_linear);
  proto.mutable_dynamics()->mutable_model()->set_name("cartpole");
  *proto.mutable_u_lower() = MakeTensor({1}, p.u_lower);
  *proto.mutable_u_upper() = MakeTensor({1}, p.u_upper);
  return proto;
}

// A valid BackwardRequest: the three problems, their solutions (from mpcd's solver) and
// cotangents (ramps), mode `mode`.
mpcd::v1::BackwardRequest ValidRequest(mpcd::v1::BackwardMode mode = mpcd::v1::DEFAULT) {
  mpcd::v1::SolveRequest solve;
  solve.set_horizon(kHorizon);
  *solve.add_problems() = InvariantLinearProblem();
  *solve.add_problems() = VaryingLinearProblem();
  *solve.add_problems() = CartpoleProblem();
  const std::vector<Problem> problems = *ToProblems(solve, RequestLimits{});
  mpcd::v1::BackwardRequest request;
  request.set_horizon(kHorizon);
  request.set_mode(mode);
  for (int i = 0; i < solve.problems_size(); ++i) {
    *request.add_problems() = solve.problems(i);
    const Solution s = SolveProblem(problems[i]);
    const std::uint32_t n = problems[i].shape.state_dim;
    const std::uint32_t m = problems[i].shape.control_dim;
    mpcd::v1::Solution* solution = request.add_solutions();
    *solution->mutable_x() = MakeTensor({kHorizon, n}, s.x);
    *solution->mutable_u() = MakeTensor({kHorizon, m}, s.u);
    std::vector<double> dx(kHorizon * n), du(kHorizon * m);
    for (std::size_t k = 0; k < dx.size(); ++k) dx[k] = 0.1 * static_cast<double>(k % 7) - 0.3;
    for (std::size_t k = 0; k < du.size(); ++k) du[k] = 0.2 * static_cast<double>(k % 3) - 0.2;
    mpcd::v1::Cotangent* cotangent = request.add_cotangents();
    *cotangent->mutable_x() = MakeTensor({kHorizon, n}, dx);
    *cotangent->mutable_u() = MakeTensor({kHorizon, m}, du);
  }
  return request;
}

TEST(ToBackwardProblems, ConvertsProblemsSolutionsAndCotangents) {
  const mpcd::v1::BackwardRequest request = ValidRequest(mpcd::v1::EXACT);
  MPC_ASSERT_OK_AND_ASSIGN(BackwardInputs batch, ToBackwardProblems(request, RequestLimits{}));
  ASSERT_THAT(batch.problems, SizeIs(3));
  ASSERT_THAT(batch.items, SizeIs(3));
  // Moving the batch keeps the items pointing at its own problems.
  const BackwardInputs moved = std::move(batch);
  for (int i = 0; i < 3; ++i) {
    const BackwardProblem& item = moved.items[i];
    EXPECT_EQ(item.problem, &moved.problems[i]);
    EXPECT_EQ(item.mode, GradientMode::kExact);
    EXPECT_EQ(item.x, DataOf(request.solutions(i).x()));
    EXPECT_EQ(item.u, DataOf(request.solutions(i).u()));
    EXPECT_EQ(item.dl_dx, DataOf(request.cotangents(i).x()));
    EXPECT_EQ(item.dl_du, DataOf(request.cotangents(i).u()));
    EXPECT_THAT(ValidateBackwardProblem(item), IsOk());
  }
  EXPECT_EQ(moved.problems[2].shape.dynamics, ModelId<CartpoleModel>());
}

// `request`'s problems as a Solve with options a Backward does not take converts them, then as a
// retained Solve keeps them.
std::vector<Problem> RetainedProblems(const mpcd::v1::BackwardRequest& request) {
  mpcd::v1::SolveRequest solve;
  solve.set_horizon(request.horizon());
  *solve.mutable_problems() = request.problems();
  solve.mutable_options()->set_max_iterations(7);
  solve.set_return_gains(true);
  std::vector<Problem> problems = *ToProblems(solve, RequestLimits{});
  for (Problem& problem : problems) AsBackwardProblem(&problem);
  return problems;
}

// Both conversions of `request`: the same problems (options included) and items.
void ExpectRetainedConversionAsTheOther(const mpcd::v1::BackwardRequest& request) {
  const std::vector<Problem> retained = RetainedProblems(request);
  MPC_ASSERT_OK_AND_ASSIGN(const BackwardInputs converted,
                           ToBackwardProblems(request, RequestLimits{}));
  MPC_ASSERT_OK_AND_ASSIGN(const BackwardInputs taken,
                           ToBackwardProblems(request, RequestLimits{}, &retained));
  ASSERT_EQ(taken.problems.size(), converted.problems.size());
  for (std::size_t i = 0; i < taken.problems.size(); ++i) {
    testing::ExpectSameProblem(taken.problems[i], converted.problems[i]);
    EXPECT_EQ(taken.problems[i].options.max_iterations,
              converted.problems[i].options.max_iterations);
    EXPECT_EQ(taken.problems[i].options.compute_gains, converted.problems[i].options.compute_gains);
    EXPECT_EQ(taken.problems[i].sampling_stream, converted.problems[i].sampling_stream);
    EXPECT_EQ(taken.items[i].problem, &taken.problems[i]);
    EXPECT_EQ(taken.items[i].x, converted.items[i].x);
    EXPECT_EQ(taken.items[i].u, converted.items[i].u);
    EXPECT_EQ(taken.items[i].dl_dx, converted.items[i].dl_dx);
    EXPECT_EQ(taken.items[i].dl_du, converted.items[i].dl_du);
  }
}

TEST(ToBackwardProblems, TakesARetainedSolvesProblemsAsItWouldConvertThem) {
  ExpectRetainedConversionAsTheOther(ValidRequest(mpcd::v1::EXACT));
  // Stacked gradients check the shapes of problems that are not converted again.
  const mpcd::v1::BackwardRequest three = ValidRequest();
  mpcd::v1::BackwardRequest cartpoles;
  cartpoles.set_horizon(kHorizon);
  cartpoles.set_stacked_response(true);
  for (int copy = 0; copy < 3; ++copy) {
    *cartpoles.add_problems() = three.problems(2);
    *cartpoles.add_solutions() = three.solutions(2);
    *cartpoles.add_cotangents() = three.cotangents(2);
  }
  ExpectRetainedConversionAsTheOther(cartpoles);
  mpcd::v1::BackwardRequest mixed = three;
  mixed.set_stacked_response(true);
  const std::vector<Problem> retained = RetainedProblems(mixed);
  EXPECT_THAT(ToBackwardProblems(mixed, RequestLimits{}, &retained),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("stacked_response")));
  const std::vector<Problem> too_few(retained.begin(), retained.begin() + 2);
  EXPECT_THAT(ToBackwardProblems(three, RequestLimits{}, &too_few),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("retained_solve")));
}

TEST(ToBackwardProblems, AbsentCotangentsAreZero) {
  mpcd::v1::BackwardRequest request = ValidRequest();
  request.mutable_cotangents(1)->clear_x();
  request.mutable_cotangents(2)->Clear();
  MPC_ASSERT_OK_AND_ASSIGN(BackwardInputs batch, ToBackwardProblems(request, RequestLimits{}));
  EXPECT_THAT(batch.items[1].dl_dx, SizeIs(0));
  EXPECT_THAT(batch.items[1].dl_du, SizeIs(kHorizon * 2));
  EXPECT_THAT(batch.items[2].dl_dx, SizeIs(0));
  EXPECT_THAT(batch.items[2].dl_du, SizeIs(0));
}

struct BadRequestCase {
  const char* name;
  void (*mutate)(mpcd::v1::BackwardRequest*);
  const char* message;
};

class ToBackwardProblemsErrors : public ::testing::TestWithParam<BadRequestCase> {};

TEST_P(ToBackwardProblemsErrors, NameTheField) {
  mpcd::v1::BackwardRequest request = ValidRequest();
  GetParam().mutate(&request);
  EXPECT_THAT(ToBackwardProblems(request, RequestLimits{}),
              StatusIs(absl::StatusCode::kInvalidArgument, GetParam().message));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ToBackwardProblemsErrors,
    ::testing::Values(
        BadRequestCase{"HorizonZero", [](mpcd::v1::BackwardRequest* r) { r->set_horizon(0); },
                       "horizon: must be >= 1, got 0"},
        BadRequestCase{"NoProblems",
                       [](mpcd::v1::BackwardRequest* r) {
                         r->clear_problems();
                         r->clear_solutions();
                         r->clear_cotangents();
                       },
                       "problems: must not be empty"},
        BadRequestCase{"TooFewSolutions",
                       [](mpcd::v1::BackwardRequest* r) { r->mutable_solutions()->RemoveLast(); },
                       "solutions: expected 3 (one per problem), got 2"},
        BadRequestCase{"TooManyCotangents",
                       [](mpcd::v1::BackwardRequest* r) { r->add_cotangents(); },
                       "cotangents: expected 3 (one per problem), got 4"},
        BadRequestCase{"UnknownMode",
                       [](mpcd::v1::BackwardRequest* r) {
                         r->set_mode(static_cast<mpcd::v1::BackwardMode>(7));
                       },
                       "mode: unknown value 7"},
        BadRequestCase{"BadProblem",
                       [](mpcd::v1::BackwardRequest* r) {
                         *r->mutable_problems(1)->mutable_cost()->mutable_quadratic() =
                             MakeTensor({4, 4}, std::vector<double>(16, 0.0));
                       },
                       "problems[1].cost.quadratic: expected shape (5,5) or (6,5,5), got (4,4)"},
        BadRequestCase{"MissingSolutionX",
                       [](mpcd::v1::BackwardRequest* r) { r->mutable_solutions(0)->clear_x(); },
                       "solutions[0].x: required, expected shape (6,3)"},
        BadRequestCase{
            "SolutionUWrongShape",
            [](mpcd::v1::BackwardRequest* r) {
              *r->mutable_solutions(2)->mutable_u() = MakeTensor({5, 1}, {0, 0, 0, 0, 0});
            },
            "solutions[2].u: expected shape (6,1), got (5,1)"},
        BadRequestCase{"CotangentUWrongShape",
                       [](mpcd::v1::BackwardRequest* r) {
                         *r->mutable_cotangents(1)->mutable_u() =
                             MakeTensor({5, 2}, std::vector<double>(10, 0.0));
                       },
                       "cotangents[1].u: expected shape (6,2), got (5,2)"},
        BadRequestCase{"CotangentDataLength",
                       [](mpcd::v1::BackwardRequest* r) {
                         r->mutable_cotangents(0)->mutable_x()->mutable_data()->RemoveLast();
                       },
                       "cotangents[0].x: shape (6,3) needs 18 values, got 17"},
        BadRequestCase{"CotangentNaN",
                       [](mpcd::v1::BackwardRequest* r) {
                         r->mutable_cotangents(0)->mutable_x()->set_data(7, kNaN);
                       },
                       "cotangents[0].x: not finite at [2,1] (nan)"},
        BadRequestCase{"SolutionInfinity",
                       [](mpcd::v1::BackwardRequest* r) {
                         r->mutable_solutions(2)->mutable_x()->set_data(
                             4, -std::numeric_limits<double>::infinity());
                       },
                       "solutions[2].x: not finite at [0,4] (-inf)"}),
    [](const ::testing::TestParamInfo<BadRequestCase>& info) { return info.param.name; });

// A pure CEM or MPPI plan is no fixed point of the iLQR: no implicit gradient. The chains are.
TEST(ToBackwardProblems, RefusesSolutionsOfPureSamplingAsAFailedPrecondition) {
  mpcd::v1::BackwardRequest request = ValidRequest();
  request.mutable_solutions(1)->set_method(mpcd::v1::CEM_THEN_ILQR);
  request.mutable_solutions(2)->set_method(mpcd::v1::MPPI_THEN_ILQR);
  EXPECT_THAT(ToBackwardProblems(request, RequestLimits{}), IsOk());
  request.mutable_solutions(2)->set_method(mpcd::v1::MPPI);
  EXPECT_THAT(ToBackwardProblems(request, RequestLimits{}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("solutions[2].method: a MPPI solution has no implicit gradient")));
  request.mutable_solutions(2)->set_method(mpcd::v1::CEM);
  EXPECT_THAT(
      ToBackwardProblems(request, RequestLimits{}),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("solve with CEM_THEN_ILQR")));
  request.mutable_solutions(2)->set_method(static_cast<mpcd::v1::SolverMethod>(11));
  EXPECT_THAT(
      ToBackwardProblems(request, RequestLimits{}),
      StatusIs(absl::StatusCode::kInvalidArgument, "solutions[2].method: unknown value 11"));
}

TEST(ToBackwardResponse, MirrorsTheRequestShapesAndTheSolverValues) {
  const mpcd::v1::BackwardRequest request = ValidRequest();
  MPC_ASSERT_OK_AND_ASSIGN(const BackwardInputs batch,
                           ToBackwardProblems(request, RequestLimits{}));
  MPC_ASSERT_OK_AND_ASSIGN(auto backend, CpuBackend::Create({1}));
  std::vector<const BackwardProblem*> inputs;
  for (const BackwardProblem& item : batch.items) inputs.push_back(&item);
  std::vector<ProblemGradient> gradients(inputs.size());
  std::vector<ProblemGradient*> outputs;
  for (ProblemGradient& g : gradients) outputs.push_back(&g);
  ASSERT_THAT(backend->BackwardBatch(inputs, outputs), IsOk());

  mpcd::v1::BackwardResponse response;
  ToBackwardResponse(request, gradients, &response);
  ASSERT_EQ(response.gradients_size(), 3);
  ASSERT_EQ(response.diagnostics_size(), 3);

  // Time-invariant linear problem without linear cost and offset.
  const mpcd::v1::Problem& g0 = response.gradients(0);
  EXPECT_THAT(ShapeOf(g0.x_init()), ElementsAre(3));
  EXPECT_THAT(ShapeOf(g0.cost().quadratic()), ElementsAre(5, 5));
  EXPECT_THAT(ShapeOf(g0.cost().linear()), ElementsAre(5));
  EXPECT_THAT(ShapeOf(g0.dynamics().linear().transition()), ElementsAre(3, 5));
  EXPECT_THAT(ShapeOf(g0.dynamics().linear().offset()), ElementsAre(3));
  EXPECT_EQ(DataOf(g0.x_init()), ComputeGradient(batch.items[0]).x_init);
  EXPECT_EQ(DataOf(g0.dynamics().linear().offset()), gradients[0].offset);
  // Time-varying.
  const mpcd::v1::Problem& g1 = response.gradients(1);
  EXPECT_THAT(ShapeOf(g1.cost().quadratic()), ElementsAre(kHorizon, 5, 5));
  EXPECT_THAT(ShapeOf(g1.cost().linear()), ElementsAre(kHorizon, 5));
  EXPECT_THAT(ShapeOf(g1.dynamics().linear().transition()), ElementsAre(kHorizon - 1, 3, 5));
  EXPECT_THAT(ShapeOf(g1.dynamics().linear().offset()), ElementsAre(kHorizon - 1, 3));
  EXPECT_EQ(DataOf(g1.dynamics().linear().transition()), gradients[1].transition);
  // Model: params with the model's name.
  const mpcd::v1::Problem& g2 = response.gradients(2);
  EXPECT_EQ(g2.dynamics().model().name(), "cartpole");
  EXPECT_EQ(g2.dynamics().model().params_size(), 4);
  EXPECT_EQ(std::vector<double>(g2.dynamics().model().params().begin(),
                                g2.dynamics().model().params().end()),
            gradients[2].params);
  EXPECT_FALSE(g2.dynamics().has_linear());
  for (const mpcd::v1::GradientDiagnostics& d : response.diagnostics()) {
    EXPECT_EQ(d.status(), mpcd::v1::GRADIENT_OK);
  }
  EXPECT_EQ(response.diagnostics(0).active_controls(),
            static_cast<std::uint32_t>(gradients[0].active_controls));
}

TEST(ToSolveResponse, CopiesTheJacobiansTheBackendComputed) {
  mpcd::v1::SolveRequest request;
  request.set_horizon(kHorizon);
  *request.add_problems() = CartpoleProblem();
  request.set_return_x_init_jacobian(true);
  request.set_return_params_jacobian(true);
  request.set_jacobian_mode(mpcd::v1::FULL_CHAIN);
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> problems, ToProblems(request, RequestLimits{}));
  MPC_ASSERT_OK_AND_ASSIGN(auto backend, CpuBackend::Create({1}));
  std::vector<Solution> solutions(1);
  const Problem* problem_ptrs[] = {&problems[0]};
  Solution* solution_ptrs[] = {&solutions[0]};
  ASSERT_THAT(backend->SolveBatch(problem_ptrs, solution_ptrs), IsOk());
  mpcd::v1::SolveResponse response;
  ToSolveResponse(solutions, problems, &response);
  const mpcd::v1::Solution& out = response.solutions(0);
  EXPECT_THAT(ShapeOf(out.x_init_jacobian()), ElementsAre(kHorizon, 6, 5));
  EXPECT_THAT(ShapeOf(out.params_jacobian()), ElementsAre(kHorizon, 6, 4));
  EXPECT_EQ(out.jacobian_diagnostics().status(), mpcd::v1::GRADIENT_OK);
  SolutionJacobians expected;
  ASSERT_THAT(ComputeSolutionJacobians(problems[0], solutions[0].x, solutions[0].u,
                                       {true, true, GradientMode::kFullChain}, &expected),
              IsOk());
  EXPECT_EQ(DataOf(out.x_init_jacobian()), expected.x_init);
  EXPECT_EQ(DataOf(out.params_jacobian()), expected.params);
  EXPECT_EQ(out.jacobian_diagnostics().active_controls(),
            static_cast<std::uint32_t>(expected.diagnostics.active_controls));

  // The conversion only copies: whatever the Solution holds is what the response carries (here a
  // marker value and status no computation would give), and nothing is computed for a solution
  // whose arrays the backend left empty.
  std::fill(solutions[0].x_init_jacobian.begin(), solutions[0].x_init_jacobian.end(), 42.0);
  solutions[0].jacobian_diagnostics.status = GradientStatus::kRegularized;
  solutions[0].jacobian_diagnostics.regularization = 0.125;
  problems[0].options.compute_params_jacobian = false;
  solutions[0].params_jacobian.clear();
  ToSolveResponse(solutions, problems, &response);
  EXPECT_FALSE(response.solutions(0).has_params_jacobian());
  EXPECT_EQ(response.solutions(0).jacobian_diagnostics().status(), mpcd::v1::GRADIENT_REGULARIZED);
  EXPECT_EQ(response.solutions(0).jacobian_diagnostics().regularization(), 0.125);
  EXPECT_THAT(ShapeOf(response.solutions(0).x_init_jacobian()), ElementsAre(kHorizon, 6, 5));
  for (double v : response.solutions(0).x_init_jacobian().data()) EXPECT_EQ(v, 42.0);
  solutions[0].x_init_jacobian.clear();
  ToSolveResponse(solutions, problems, &response);
  EXPECT_FALSE(response.solutions(0).has_x_init_jacobian());
}

}  // namespace
}  // namespace mpc
