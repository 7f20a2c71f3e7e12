// A request's problem_template (mpcd.proto, Problem's merge rule): fields shared by the batch are
// sent once and apply to every problem that leaves them absent.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mpcd/v1/mpcd.pb.h"
#include "proto/proto_conversion.h"
#include "solver/problem.h"
#include "tests/testing/same_problem.h"
#include "tests/testing/status_matchers.h"

namespace mpc {
namespace {

using ::mpc::testing::ExpectSameProblem;
using ::mpc::testing::IsOk;
using ::mpc::testing::StatusIs;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

constexpr int kHorizon = 4;
constexpr int kN = 2;
constexpr int kM = 1;
constexpr int kTau = kN + kM;

mpcd::v1::Tensor Tensor(std::vector<std::uint32_t> shape, double first, double step = 0.25) {
  mpcd::v1::Tensor tensor;
  std::size_t count = 1;
  for (std::uint32_t dim : shape) {
    tensor.add_shape(dim);
    count *= dim;
  }
  for (std::size_t i = 0; i < count; ++i) tensor.add_data(first + step * static_cast<double>(i));
  return tensor;
}

mpcd::v1::Tensor Diagonal(int k, double value) {
  mpcd::v1::Tensor tensor =
      Tensor({static_cast<std::uint32_t>(k), static_cast<std::uint32_t>(k)}, 0.0, 0.0);
  for (int i = 0; i < k; ++i) tensor.set_data(i * k + i, value + 0.1 * i);
  return tensor;
}

// The shared part: cost, linear dynamics, bounds and warm start.
mpcd::v1::Problem Shared() {
  mpcd::v1::Problem shared;
  *shared.mutable_cost()->mutable_quadratic() = Diagonal(kTau, 1.0);
  *shared.mutable_cost()->mutable_linear() = Tensor({kTau}, -0.5);
  mpcd::v1::Tensor F = Tensor({kN, kTau}, 0.05, 0.05);
  F.set_data(0, 1.0);
  F.set_data(kTau + 1, 1.0);
  *shared.mutable_dynamics()->mutable_linear()->mutable_transition() = F;
  *shared.mutable_dynamics()->mutable_linear()->mutable_offset() = Tensor({kN}, 0.01);
  *shared.mutable_u_lower() = Tensor({kM}, -0.7, 0.0);
  *shared.mutable_u_upper() = Tensor({kM}, 0.6, 0.0);
  *shared.mutable_u_init() = Tensor({kHorizon, kM}, 0.1, 0.01);
  return shared;
}

mpcd::v1::Problem OnlyState(double x0) {
  mpcd::v1::Problem problem;
  *problem.mutable_x_init() = Tensor({kN}, x0);
  return problem;
}

// Each problem of `with_template` must convert to exactly the problem `spelled_out` spells out.
void ExpectSameRequests(const mpcd::v1::SolveRequest& with_template,
                        const mpcd::v1::SolveRequest& spelled_out) {
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> a, ToProblems(with_template, RequestLimits{}));
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> b, ToProblems(spelled_out, RequestLimits{}));
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE(i);
    ExpectSameProblem(a[i], b[i]);
  }
}

// The merge (proto_conversion.cc: FillFromTemplate, and MergedSource, which reads the arrays and
// the dynamics in place and merges the other fields with FillOtherFieldsFromTemplate) names every
// field of Problem. A new field must be added there, then here.
TEST(ProblemTemplate, MergeKnowsEveryProblemField) {
  const std::vector<std::string> merged_in_place = {"x_init",  "cost",    "dynamics",
                                                    "u_lower", "u_upper", "u_init"};
  const std::vector<std::string> merged_as_messages = {
      "slew_rate_penalty", "prev_ctrl", "u_zero_mask", "x_lower",          "x_upper",
      "constraints",       "tracking",  "cost_graph",  "constraint_graph", "terminal_cost_graph"};
  std::vector<std::string> known = merged_in_place;
  known.insert(known.end(), merged_as_messages.begin(), merged_as_messages.end());
  std::vector<std::string> fields;
  const google::protobuf::Descriptor* problem = mpcd::v1::Problem::descriptor();
  for (int f = 0; f < problem->field_count(); ++f) fields.push_back(problem->field(f)->name());
  EXPECT_THAT(fields, ::testing::UnorderedElementsAreArray(known));
}

TEST(ProblemTemplate, AbsentFieldsComeFromTheTemplate) {
  mpcd::v1::SolveRequest with_template;
  with_template.set_horizon(kHorizon);
  *with_template.mutable_problem_template() = Shared();
  mpcd::v1::SolveRequest spelled_out = with_template;
  spelled_out.clear_problem_template();
  for (double x0 : {1.0, -2.0, 0.5}) {
    *with_template.add_problems() = OnlyState(x0);
    mpcd::v1::Problem full = Shared();
    *full.mutable_x_init() = OnlyState(x0).x_init();
    *spelled_out.add_problems() = full;
  }
  ExpectSameRequests(with_template, spelled_out);
  // And the values are really there (not both sides empty).
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> problems,
                           ToProblems(with_template, RequestLimits{}));
  EXPECT_THAT(problems[1].u_lower, ElementsAreArray({-0.7}));
  EXPECT_THAT(problems[1].x_init, ElementsAreArray({-2.0, -1.75}));
  EXPECT_EQ(problems[2].transition.size(), static_cast<std::size_t>(kN * kTau));
}

TEST(ProblemTemplate, AProblemsOwnFieldsWinFieldByField) {
  mpcd::v1::SolveRequest with_template;
  with_template.set_horizon(kHorizon);
  *with_template.mutable_problem_template() = Shared();
  // 0: only x_init; 1: its own C (time-varying) and u_upper; 2: its own dynamics (a model, so the
  // template's linear dynamics do not apply) and cost; 3: everything its own.
  mpcd::v1::Problem own_cost = OnlyState(0.3);
  *own_cost.mutable_cost()->mutable_quadratic() = Tensor({kHorizon, kTau, kTau}, 0.0, 0.0);
  for (int t = 0; t < kHorizon; ++t) {
    for (int i = 0; i < kTau; ++i) {
      own_cost.mutable_cost()->mutable_quadratic()->set_data((t * kTau + i) * kTau + i, 2.0 + t);
    }
  }
  *own_cost.mutable_u_upper() = Tensor({kHorizon, kM}, 0.2, 0.1);
  mpcd::v1::Problem own_model;
  *own_model.mutable_x_init() = Tensor({3}, 1.0, -0.5);
  own_model.mutable_dynamics()->mutable_model()->set_name("pendulum");
  own_model.mutable_dynamics()->mutable_model()->add_params(9.8);
  own_model.mutable_dynamics()->mutable_model()->add_params(1.0);
  own_model.mutable_dynamics()->mutable_model()->add_params(1.0);
  *own_model.mutable_cost()->mutable_quadratic() = Diagonal(4, 1.0);
  *own_model.mutable_cost()->mutable_linear() = Tensor({4}, 0.0, 0.1);
  *own_model.mutable_u_lower() = Tensor({1}, -2.0, 0.0);
  *own_model.mutable_u_upper() = Tensor({1}, 2.0, 0.0);
  *own_model.mutable_u_init() = Tensor({kHorizon, 1}, 0.0, 0.0);
  mpcd::v1::Problem own_everything = Shared();
  *own_everything.mutable_x_init() = Tensor({kN}, 4.0);
  *own_everything.mutable_cost()->mutable_linear() = Tensor({kTau}, 3.0);
  for (const mpcd::v1::Problem& problem : {OnlyState(1.0), own_cost, own_model, own_everything}) {
    *with_template.add_problems() = problem;
  }

  mpcd::v1::SolveRequest spelled_out = with_template;
  spelled_out.clear_problem_template();
  mpcd::v1::Problem* p0 = spelled_out.mutable_problems(0);
  const mpcd::v1::Tensor x0 = p0->x_init();
  *p0 = Shared();
  *p0->mutable_x_init() = x0;
  mpcd::v1::Problem* p1 = spelled_out.mutable_problems(1);
  *p1->mutable_cost()->mutable_linear() = Shared().cost().linear();
  *p1->mutable_dynamics() = Shared().dynamics();
  *p1->mutable_u_lower() = Shared().u_lower();
  *p1->mutable_u_init() = Shared().u_init();
  ExpectSameRequests(with_template, spelled_out);

  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> problems,
                           ToProblems(with_template, RequestLimits{}));
  EXPECT_EQ(problems[1].cost_quadratic.size(), static_cast<std::size_t>(kHorizon * kTau * kTau));
  EXPECT_EQ(problems[1].u_upper.size(), static_cast<std::size_t>(kHorizon * kM));
  // The pendulum (n = 3, its own params), not the template's linear dynamics.
  EXPECT_EQ(problems[2].shape.state_dim, 3);
  EXPECT_THAT(problems[2].params, ElementsAreArray({9.8, 1.0, 1.0}));
  EXPECT_TRUE(problems[2].transition.empty());
  EXPECT_THAT(problems[3].cost_linear, ElementsAreArray({3.0, 3.25, 3.5}));
}

TEST(ProblemTemplate, ModelDynamicsAndRawTensorsInTheTemplate) {
  mpcd::v1::SolveRequest request;
  request.set_horizon(kHorizon);
  mpcd::v1::Problem* shared = request.mutable_problem_template();
  shared->mutable_dynamics()->mutable_model()->set_name("pendulum");
  shared->mutable_dynamics()->mutable_model()->set_dt(0.1);
  *shared->mutable_cost()->mutable_quadratic() = Diagonal(4, 1.0);
  // A raw float64 C in the template.
  mpcd::v1::Tensor* C = shared->mutable_cost()->mutable_quadratic();
  std::string bytes(reinterpret_cast<const char*>(C->data().data()), 8 * C->data_size());
  C->clear_data();
  C->set_raw_data(bytes);
  for (int b = 0; b < 3; ++b) *request.add_problems()->mutable_x_init() = Tensor({3}, 0.1 * b);
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> problems, ToProblems(request, RequestLimits{}));
  ASSERT_EQ(problems.size(), 3u);
  for (const Problem& problem : problems) {
    EXPECT_EQ(problem.shape.dynamics, problems[0].shape.dynamics);
    EXPECT_EQ(problem.shape.state_dim, 3);  // the pendulum's
    EXPECT_TRUE(problem.transition.empty());
    EXPECT_EQ(problem.dt, 0.1);
    EXPECT_EQ(problem.cost_quadratic[5], 1.1);
  }
}

TEST(ProblemTemplate, ErrorsNameTheTemplateOrTheProblem) {
  mpcd::v1::SolveRequest request;
  request.set_horizon(kHorizon);
  *request.mutable_problem_template() = Shared();
  *request.add_problems() = OnlyState(1.0);
  *request.add_problems() = OnlyState(2.0);
  ASSERT_THAT(ToProblems(request, RequestLimits{}), IsOk());

  mpcd::v1::SolveRequest bad = request;
  bad.mutable_problem_template()->mutable_cost()->mutable_linear()->add_data(1.0);
  EXPECT_THAT(ToProblems(bad, RequestLimits{}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "problem_template.cost.linear: shape (3) needs 3 values, got 4"));

  bad = request;
  bad.mutable_problem_template()->mutable_u_init()->set_data(
      2, std::numeric_limits<double>::quiet_NaN());
  EXPECT_THAT(ToProblems(bad, RequestLimits{}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "problem_template.u_init: not finite at [2,0] (nan)"));

  bad = request;
  bad.mutable_problem_template()->mutable_x_init()->set_raw_data("1234567");
  EXPECT_THAT(ToProblems(bad, RequestLimits{}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("problem_template.x_init.raw_data: 7 bytes")));

  // A problem whose state does not fit the template's dynamics: the problem's field is named.
  bad = request;
  *bad.mutable_problems(1)->mutable_x_init() = Tensor({3}, 0.0);
  EXPECT_THAT(ToProblems(bad, RequestLimits{}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("problems[1].dynamics.linear.transition: expected shape")));

  // Nothing from anywhere: still required.
  bad = request;
  bad.mutable_problem_template()->clear_cost();
  EXPECT_THAT(ToProblems(bad, RequestLimits{}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("problems[0].cost.quadratic: required")));
}

TEST(ProblemTemplate, BackwardMergesTheTemplateAndShapesGradientsLikeTheMergedInputs) {
  mpcd::v1::BackwardRequest request;
  request.set_horizon(kHorizon);
  *request.mutable_problem_template() = Shared();
  *request.add_problems() = OnlyState(1.0);
  mpcd::v1::Problem own = OnlyState(-1.0);
  *own.mutable_cost()->mutable_quadratic() = Tensor({kHorizon, kTau, kTau}, 0.0, 0.0);
  for (int t = 0; t < kHorizon; ++t) {
    for (int i = 0; i < kTau; ++i) {
      own.mutable_cost()->mutable_quadratic()->set_data((t * kTau + i) * kTau + i, 1.0);
    }
  }
  *request.add_problems() = own;
  for (int i = 0; i < 2; ++i) {
    mpcd::v1::Solution* solution = request.add_solutions();
    *solution->mutable_x() = Tensor({kHorizon, kN}, 0.1 * i, 0.01);
    *solution->mutable_u() = Tensor({kHorizon, kM}, 0.0, 0.02);
    *request.add_cotangents()->mutable_x() = Tensor({kHorizon, kN}, 1.0, 0.0);
  }
  MPC_ASSERT_OK_AND_ASSIGN(BackwardInputs inputs, ToBackwardProblems(request, RequestLimits{}));
  ASSERT_EQ(inputs.problems.size(), 2u);
  EXPECT_EQ(inputs.problems[0].transition.size(), static_cast<std::size_t>(kN * kTau));
  EXPECT_EQ(inputs.problems[1].cost_quadratic.size(),
            static_cast<std::size_t>(kHorizon * kTau * kTau));

  // The response mirrors each merged problem's shapes (gradient values are the solver's business;
  // here only their layout is checked).
  std::vector<ProblemGradient> gradients(2);
  for (int i = 0; i < 2; ++i) {
    gradients[i].x_init.assign(kN, 0.0);
    gradients[i].cost_quadratic.assign(inputs.problems[i].cost_quadratic.size(), 0.0);
    gradients[i].cost_linear.assign(kTau, 0.0);
    gradients[i].transition.assign(kN * kTau, 0.0);
    gradients[i].offset.assign(kN, 0.0);
  }
  mpcd::v1::BackwardResponse response;
  ToBackwardResponse(request, gradients, &response);
  ASSERT_EQ(response.gradients_size(), 2);
  EXPECT_THAT(response.gradients(0).cost().quadratic().shape(), ElementsAreArray({kTau, kTau}));
  EXPECT_THAT(response.gradients(1).cost().quadratic().shape(),
              ElementsAreArray({kHorizon, kTau, kTau}));
  EXPECT_THAT(response.gradients(0).dynamics().linear().transition().shape(),
              ElementsAreArray({kN, kTau}));
  EXPECT_THAT(response.gradients(1).dynamics().linear().offset().shape(), ElementsAreArray({kN}));
}

}  // namespace
}  // namespace mpc
