// The accepted-shape table and its checks (solver/problem_fields.h) on the path a valid request
// takes: they run for every array of every problem a request converts, so a check that passes
// allocates nothing (docs/benchmarks.md §5). Its own binary: it replaces the global operator new
// to count allocations.
#include "solver/problem_fields.h"

#include <cstdint>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "solver/models/model_list.h"
#include "solver/models/model_registry.h"
#include "tests/testing/heap_allocations.h"
#include "tests/testing/status_matchers.h"

namespace mpc {
namespace {

using ::mpc::testing::IsOk;
using ::mpc::testing::StatusIs;

TEST(ProblemFieldsHeap, ChecksThatPassAllocateNothing) {
  const ProblemShape linear{DynamicsId::Linear(), 3, 2, 25};
  const ProblemShape model{ModelId<CartpoleModel>(), 5, 1, 25};
  const std::string prefix = "problems[1023].";
  for (const ProblemShape& shape : {linear, model}) {
    for (ArrayField field : kProblemArrays) {
      const ArraySpec spec = ArraySpecFor(field, shape);
      if (spec.shapes.empty()) continue;
      const TensorShape given(spec.shapes.back().begin(), spec.shapes.back().end());
      const std::vector<std::uint32_t> sent(given.begin(), given.end());
      std::int64_t count = 1;
      for (std::int64_t dim : given) count *= dim;
      const std::vector<double> values(count, 0.5);
      int failed = 0;
      EXPECT_EQ(testing::HeapAllocationsOf([&] {
                  const ArraySpec again = ArraySpecFor(field, shape);
                  failed += !ShapeAccepted<std::uint32_t>(again, sent);
                  failed += !CheckArrayShape(again, &given, FieldPath(prefix, again.name)).ok();
                  const SpecShape* matched = nullptr;
                  failed += !CheckArrayLength(again, values.size(), again.optional,
                                              FieldPath(prefix, again.name), &matched)
                                 .ok();
                  failed += !CheckFinite(values, matched, FieldPath(prefix, again.name)).ok();
                }),
                0)
          << spec.name;
      EXPECT_EQ(failed, 0) << spec.name;
    }
  }
}

// A path given in two parts reads as the one string the callers used to build.
TEST(ProblemFieldsHeap, PathsInTwoPartsReadAsOne) {
  const ProblemShape shape{DynamicsId::Linear(), 3, 2, 6};
  const ArraySpec spec = ArraySpecFor(ArrayField::kCostQuadratic, shape);
  const TensorShape given = {5, 4};
  EXPECT_THAT(CheckArrayShape(spec, &given, FieldPath("problems[2].", spec.name)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "problems[2].cost.quadratic: expected shape (5,5) or (6,5,5), got (5,4)"));
  EXPECT_THAT(CheckArrayLength(spec, 24, true, FieldPath("problems[2].", spec.name)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "problems[2].cost.quadratic: expected shape (5,5) or (6,5,5) or none, got "
                       "24 values"));
  const std::vector<double> values = {0.0, 1.0, std::numeric_limits<double>::quiet_NaN()};
  const SpecShape row = {1, 3};
  EXPECT_THAT(CheckFinite(values, &row, FieldPath("problems[2].", "u_init")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "problems[2].u_init: not finite at [0,2] (nan)"));
  EXPECT_THAT(CheckFinite(values, static_cast<const SpecShape*>(nullptr), "x"),
              StatusIs(absl::StatusCode::kInvalidArgument, "x: not finite at [2] (nan)"));
  EXPECT_THAT(CheckFinite(values, static_cast<const TensorShape*>(nullptr), "x"),
              StatusIs(absl::StatusCode::kInvalidArgument, "x: not finite at [2] (nan)"));
}

// ShapeAccepted is CheckArrayShape's test: both agree on every shape, whatever the rank.
TEST(ProblemFieldsHeap, ShapeAcceptedAgreesWithCheckArrayShape) {
  const ProblemShape shape{DynamicsId::Linear(), 3, 2, 6};
  const std::vector<std::vector<std::uint32_t>> shapes = {
      {},     {3},       {5},    {5, 5}, {6, 5, 5},      {6, 5, 5, 1},
      {3, 5}, {5, 3, 5}, {6, 2}, {2},    {1, 1, 1, 1, 1}};
  for (ArrayField field : kProblemArrays) {
    const ArraySpec spec = ArraySpecFor(field, shape);
    for (const std::vector<std::uint32_t>& sent : shapes) {
      const TensorShape given(sent.begin(), sent.end());
      EXPECT_EQ(ShapeAccepted<std::uint32_t>(spec, sent), CheckArrayShape(spec, &given, "").ok())
          << spec.name << " " << ShapeString(given);
    }
  }
  EXPECT_THAT(CheckArrayShape(ArraySpecFor(ArrayField::kXInit, shape), nullptr, "x_init"),
              StatusIs(absl::StatusCode::kInvalidArgument, "x_init: required, expected shape (3)"));
  const TensorShape wide = {1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_EQ(ShapeString(wide), "(1,2,3,4,5,6,... 8 dimensions)");
  EXPECT_THAT(CheckArrayShape(ArraySpecFor(ArrayField::kUInit, shape), &wide, "u_init"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "u_init: expected shape (6,2), got (1,2,3,4,5,6,... 8 dimensions)"));
  EXPECT_THAT(CheckArrayShape(ArraySpecFor(ArrayField::kUInit, shape), nullptr, "u_init"), IsOk());
}

// Each shape gets its own table, whichever shapes were asked for before on the same thread or on
// another (ArraySpecFor keeps the last shape's table per thread).
TEST(ProblemFields, EachShapeGetsItsOwnSpecsWhateverCameBefore) {
  const auto dims = [](const ArraySpec& spec) {
    std::vector<std::vector<std::int64_t>> shapes;
    for (const SpecShape& shape : spec.shapes) shapes.emplace_back(shape.begin(), shape.end());
    return shapes;
  };
  using Shapes = std::vector<std::vector<std::int64_t>>;
  std::vector<ProblemShape> shapes = {{DynamicsId::Linear(), 3, 2, 6},
                                      {DynamicsId::Linear(), 3, 2, 1},
                                      {DynamicsId::Linear(), 4, 2, 6},
                                      {DynamicsId::Linear(), 3, 1, 6}};
  for (std::size_t i = 0; i < BuiltinModels().size(); ++i) {
    const ModelInfo& model = BuiltinModels()[i];
    shapes.push_back(
        {DynamicsId::Builtin(static_cast<int>(i)), model.state_dim, model.control_dim, 20});
  }
  const auto check = [&](const ProblemShape& shape) {
    const std::int64_t n = shape.state_dim, m = shape.control_dim, T = shape.horizon;
    const ModelInfo* model = FindModel(shape.dynamics);
    EXPECT_EQ(dims(ArraySpecFor(ArrayField::kXInit, shape)), (Shapes{{n}}));
    EXPECT_EQ(dims(ArraySpecFor(ArrayField::kCostQuadratic, shape)),
              (Shapes{{n + m, n + m}, {T, n + m, n + m}}));
    EXPECT_EQ(dims(ArraySpecFor(ArrayField::kUInit, shape)), (Shapes{{T, m}}));
    EXPECT_EQ(dims(ArraySpecFor(ArrayField::kCotangentX, shape)), (Shapes{{T, n}}));
    if (model == nullptr) {
      EXPECT_EQ(dims(ArraySpecFor(ArrayField::kTransition, shape)),
                T >= 2 ? (Shapes{{n, n + m}, {T - 1, n, n + m}}) : (Shapes{{n, n + m}}));
      EXPECT_EQ(dims(ArraySpecFor(ArrayField::kParams, shape)), Shapes{});
      EXPECT_STREQ(ArraySpecFor(ArrayField::kParams, shape).forbidden_with, "linear dynamics");
    } else {
      EXPECT_EQ(dims(ArraySpecFor(ArrayField::kTransition, shape)), Shapes{});
      EXPECT_EQ(dims(ArraySpecFor(ArrayField::kParams, shape)),
                (Shapes{{static_cast<std::int64_t>(model->param_names.size())}}))
          << model->name;
    }
  };
  for (int round = 0; round < 2; ++round) {
    for (const ProblemShape& shape : shapes) check(shape);
    for (auto it = shapes.rbegin(); it != shapes.rend(); ++it) check(*it);
  }
  std::thread other([&] {
    for (const ProblemShape& shape : shapes) check(shape);
  });
  other.join();
}

}  // namespace
}  // namespace mpc
