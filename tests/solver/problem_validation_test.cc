// ValidateProblemSizes and ValidateProblem (solver/validation.cc) on Problems built directly, as
// the solver's own callers (tests, benchmarks, tools) build them: flat arrays, so sizes are
// lengths.

#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "solver/models/model_list.h"
#include "solver/models/model_registry.h"
#include "solver/problem.h"
#include "solver/problem_fields.h"
#include "tests/testing/status_matchers.h"

namespace mpc {
namespace {

using ::mpc::testing::IsOk;
using ::mpc::testing::StatusIs;
using ::testing::HasSubstr;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// n = 3, m = 2, T = 4, time-invariant, bounded.
Problem LinearProblem() {
  Problem p;
  p.shape = {DynamicsId::Linear(), 3, 2, 4};
  p.x_init = {1, 2, 3};
  p.cost_quadratic.assign(25, 0.0);
  for (int i = 0; i < 5; ++i) p.cost_quadratic[i * 5 + i] = 1.0;
  p.cost_linear.assign(5, 0.0);
  p.transition.assign(15, 0.1);
  p.u_lower = {-1, -1};
  p.u_upper = {1, 1};
  return p;
}

Problem PendulumProblem() {
  Problem p;
  p.shape = {ModelId<PendulumModel>(), 3, 1, 4};
  p.x_init = {-1, 0, 0};
  p.cost_quadratic.assign(16, 0.0);
  p.cost_linear.assign(4, 0.0);
  return p;
}

absl::Status Validate(const Problem& problem) {
  return ValidateProblem(problem, ProblemLimits{}, "problems[7].");
}

TEST(ValidateProblem, AcceptsValidProblems) {
  EXPECT_THAT(Validate(LinearProblem()), IsOk());
  EXPECT_THAT(Validate(PendulumProblem()), IsOk());

  Problem varying = LinearProblem();
  varying.cost_quadratic.assign(4 * 25, 0.0);
  varying.cost_linear.assign(4 * 5, 0.0);
  varying.transition.assign(3 * 15, 0.1);
  varying.offset.assign(3 * 3, 0.0);
  varying.u_lower.assign(4 * 2, -1.0);
  varying.u_init.assign(4 * 2, 0.0);
  EXPECT_THAT(Validate(varying), IsOk());

  Problem pendulum = PendulumProblem();
  pendulum.params = {10, 1, 1};
  pendulum.dt = 0.02;
  EXPECT_THAT(Validate(pendulum), IsOk());
}

TEST(ValidateProblemSizes, NamesShapesAndLengths) {
  Problem p = LinearProblem();
  p.cost_quadratic.resize(16);
  EXPECT_THAT(ValidateProblemSizes(p, "problems[0]."),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "problems[0].cost.quadratic: expected shape (5,5) or (4,5,5), got 16 "
                       "values"));

  p = LinearProblem();
  p.offset.resize(4);
  EXPECT_THAT(
      ValidateProblemSizes(p),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "dynamics.linear.offset: expected shape (3) or (3,3) or none, got 4 values"));

  p = LinearProblem();
  p.shape.horizon = 1;  // no time-varying dynamics form with T = 1
  p.transition.assign(0, 0.0);
  EXPECT_THAT(ValidateProblemSizes(p),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "dynamics.linear.transition: expected shape (3,5), got 0 values"));

  p = LinearProblem();
  p.u_upper.clear();
  EXPECT_THAT(ValidateProblemSizes(p),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "u_upper: required when u_lower is given (give both bounds or neither)"));

  p = LinearProblem();
  p.params = {1.0};
  EXPECT_THAT(ValidateProblemSizes(p),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "dynamics.model.params: must be empty with linear dynamics, got 1 values"));

  p = PendulumProblem();
  p.transition = {1.0};
  EXPECT_THAT(
      ValidateProblemSizes(p),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "dynamics.linear.transition: must be empty with model dynamics, got 1 values"));

  p = PendulumProblem();
  p.params = {10, 1};
  EXPECT_THAT(ValidateProblemSizes(p),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "dynamics.model.params: expected shape (3) or none, got 2 values"));

  p = PendulumProblem();
  p.shape.state_dim = 4;
  EXPECT_THAT(ValidateProblemSizes(p),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "dynamics.model: model \"pendulum\" has n = 3, m = 1, but the problem has "
                       "n = 4, m = 1"));

  p = LinearProblem();
  p.shape.horizon = 0;
  EXPECT_THAT(ValidateProblemSizes(p),
              StatusIs(absl::StatusCode::kInvalidArgument, "horizon: must be >= 1, got 0"));

  // Dimensions whose products overflow never match an array length.
  p = LinearProblem();
  p.shape.horizon = std::numeric_limits<int>::max();
  p.shape.state_dim = std::numeric_limits<int>::max();
  EXPECT_THAT(ValidateProblemSizes(p), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ValidateProblem, ChecksValues) {
  Problem p = LinearProblem();
  p.cost_linear[3] = kNaN;
  EXPECT_THAT(Validate(p), StatusIs(absl::StatusCode::kInvalidArgument,
                                    "problems[7].cost.linear: not finite at [3] (nan)"));

  p = LinearProblem();
  p.u_lower = {-1, -1, -1, -1, -1, -1, 2.5, -1};  // (T, m)
  EXPECT_THAT(Validate(p), StatusIs(absl::StatusCode::kInvalidArgument,
                                    "problems[7].u_lower: must be <= u_upper at [3,0] (2.5 > 1)"));

  p = PendulumProblem();
  p.dt = -1;
  EXPECT_THAT(Validate(p),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "problems[7].dynamics.model.dt: must be > 0 (or 0 for the model's default), "
                       "got -1"));

  p = LinearProblem();
  p.options.max_iterations = 0;
  EXPECT_THAT(Validate(p), StatusIs(absl::StatusCode::kInvalidArgument,
                                    "options.max_iterations: must be in [1, 100000], got 0"));

  p = LinearProblem();
  p.options.linesearch_decay = 0;
  EXPECT_THAT(Validate(p), StatusIs(absl::StatusCode::kInvalidArgument,
                                    "options.linesearch_decay: must be in (0, 1], got 0"));

  p = LinearProblem();
  p.options.not_improved_limit = 0;
  EXPECT_THAT(Validate(p),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "options.not_improved_limit: must be in [1, 2147483647], got 0"));
}

TEST(ValidateProblem, EnforcesLimits) {
  ProblemLimits limits;
  limits.max_horizon = 3;
  EXPECT_THAT(ValidateProblem(LinearProblem(), limits),
              StatusIs(absl::StatusCode::kInvalidArgument, "horizon: must be <= 3, got 4"));
  limits = ProblemLimits{};
  limits.max_state_dim = 2;
  EXPECT_THAT(ValidateProblem(LinearProblem(), limits),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "x_init: state dimension 3 is over the limit 2"));
  limits = ProblemLimits{};
  limits.max_control_dim = 1;
  EXPECT_THAT(ValidateProblem(LinearProblem(), limits),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "dynamics.linear.transition: control dimension 2 is over the limit 1"));
}

// Messages name the proto field a client sent: request-level fields (horizon, options) without
// the problem's prefix, a linear problem's n and m by the tensors they come from, a model's by its
// name.
TEST(ValidateProblem, NamesTheProtoFields) {
  ProblemLimits limits;
  limits.max_horizon = 3;
  EXPECT_THAT(ValidateProblem(LinearProblem(), limits, "problems[2]."),
              StatusIs(absl::StatusCode::kInvalidArgument, "horizon: must be <= 3, got 4"));
  limits = ProblemLimits{};
  limits.max_state_dim = 2;
  EXPECT_THAT(ValidateProblem(PendulumProblem(), limits, "problems[2]."),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "problems[2].dynamics.model.name: model \"pendulum\" has n = 3, m = 1, "
                       "over the limits n <= 2, m <= 256"));
  EXPECT_THAT(ValidateProblem(LinearProblem(), limits, "problems[2]."),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "problems[2].x_init: state dimension 3 is over the limit 2"));
  Problem p = LinearProblem();
  p.options.best_cost_eps = -1;
  EXPECT_THAT(ValidateProblem(p, ProblemLimits{}, "problems[2]."),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "options.best_cost_eps: must be >= 0 and finite, got -1"));
  p = LinearProblem();
  p.shape.control_dim = 0;
  EXPECT_THAT(ValidateProblemSizes(p, "problems[2]."),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("problems[2].dynamics.linear.transition: ")));
  p = LinearProblem();
  p.shape.state_dim = 0;
  EXPECT_THAT(ValidateProblemSizes(p, "problems[2]."),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("problems[2].x_init: ")));
  p = LinearProblem();
  p.u_init.assign(3, kNaN);
  EXPECT_THAT(ValidateProblem(p, ProblemLimits{}, "problems[2]."),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "problems[2].u_init: expected shape (4,2) or none, got 3 values"));
}

// The one table of accepted shapes (problem_fields.h), as the proto conversion reads it: exact
// shapes, and the symbolic description used while n or m is still unknown.
TEST(ProblemFields, OneTableForEveryArray) {
  ProblemShape shape;
  shape.dynamics = DynamicsId::Linear();
  shape.state_dim = 3;
  shape.control_dim = 2;
  shape.horizon = 6;
  const auto shapes = [&](ArrayField field) { return ArraySpecFor(field, shape).shapes; };
  using S = SpecShapes;
  EXPECT_EQ(shapes(ArrayField::kXInit), (S{{3}}));
  EXPECT_EQ(shapes(ArrayField::kCostQuadratic), (S{{5, 5}, {6, 5, 5}}));
  EXPECT_EQ(shapes(ArrayField::kCostLinear), (S{{5}, {6, 5}}));
  EXPECT_EQ(shapes(ArrayField::kTransition), (S{{3, 5}, {5, 3, 5}}));
  EXPECT_EQ(shapes(ArrayField::kOffset), (S{{3}, {5, 3}}));
  EXPECT_EQ(shapes(ArrayField::kParams), S{});
  EXPECT_EQ(shapes(ArrayField::kULower), (S{{2}, {6, 2}}));
  EXPECT_EQ(shapes(ArrayField::kUUpper), (S{{2}, {6, 2}}));
  EXPECT_EQ(shapes(ArrayField::kUInit), (S{{6, 2}}));
  EXPECT_EQ(shapes(ArrayField::kSolutionX), (S{{6, 3}}));
  EXPECT_EQ(shapes(ArrayField::kCotangentU), (S{{6, 2}}));
  EXPECT_TRUE(ArraySpecFor(ArrayField::kCostLinear, shape).optional);  // absent = zero
  EXPECT_FALSE(ArraySpecFor(ArrayField::kSolutionU, shape).optional);
  EXPECT_TRUE(ArraySpecFor(ArrayField::kCotangentU, shape).optional);
  EXPECT_STREQ(ArraySpecFor(ArrayField::kTransition, shape).name, "dynamics.linear.transition");

  EXPECT_EQ(DescribeShapes(ArrayField::kTransition, 6, 3, {}), "(3,3+m) or (5,3,3+m)");
  EXPECT_EQ(DescribeShapes(ArrayField::kTransition, 1, 3, {}), "(3,3+m)");
  EXPECT_EQ(DescribeShapes(ArrayField::kXInit, 6, {}, {}), "(n)");
  EXPECT_EQ(DescribeShapes(ArrayField::kCostQuadratic, 6, 3, 2), "(5,5) or (6,5,5)");

  const TensorShape given = {5, 4};
  EXPECT_THAT(CheckArrayShape(ArraySpecFor(ArrayField::kCostQuadratic, shape), &given,
                              "problems[2].cost.quadratic"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "problems[2].cost.quadratic: expected shape (5,5) or (6,5,5), got (5,4)"));
  EXPECT_THAT(
      CheckArrayShape(ArraySpecFor(ArrayField::kSolutionX, shape), nullptr, "solutions[1].x"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "solutions[1].x: required, expected shape (6,3)"));
  EXPECT_THAT(
      CheckArrayShape(ArraySpecFor(ArrayField::kCotangentX, shape), nullptr, "cotangents[1].x"),
      IsOk());
  shape.dynamics = ModelId<CartpoleModel>();
  shape.state_dim = 5;
  shape.control_dim = 1;
  EXPECT_EQ(shapes(ArrayField::kParams), (S{{4}}));
  EXPECT_EQ(shapes(ArrayField::kTransition), S{});
  const TensorShape offset = {5};
  EXPECT_THAT(CheckArrayShape(ArraySpecFor(ArrayField::kOffset, shape), &offset, "o"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "o: must be empty with model dynamics, got (5)"));
}

TEST(ValidateProblem, RejectsWrongSizesInsteadOfReadingPastThem) {
  Problem p = LinearProblem();
  p.u_upper = {1};
  EXPECT_THAT(Validate(p), StatusIs(absl::StatusCode::kInvalidArgument,
                                    "problems[7].u_upper: expected shape (2) or (4,2) or none, got "
                                    "1 values"));
}

}  // namespace
}  // namespace mpc
