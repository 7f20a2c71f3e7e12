// Tensors on the wire as repeated doubles or as raw little-endian bytes (float64, float32): the
// request layer must read both alike, validate both alike and write responses in the encoding the
// request asks for (mpcd.proto, Tensor).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mpcd/v1/mpcd.pb.h"
#include "proto/proto_conversion.h"
#include "solver/problem.h"
#include "tests/testing/proto_tensors.h"
#include "tests/testing/status_matchers.h"

namespace mpc {
namespace {

using ::mpc::testing::IsOk;
using ::mpc::testing::MakeTensor;
using ::mpc::testing::ShapeOf;
using ::mpc::testing::StatusIs;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

constexpr int kHorizon = 5;
constexpr int kN = 3;
constexpr int kM = 2;
constexpr int kTau = kN + kM;

// Values that are not exactly representable in few bits, so that a lost byte or a wrong byte order
// changes them.
std::vector<double> Values(std::size_t count, double scale) {
  std::vector<double> values(count);
  for (std::size_t i = 0; i < count; ++i) {
    values[i] = scale * std::sin(1.0 + 0.7 * static_cast<double>(i)) / 3.0;
  }
  return values;
}

// Little-endian bytes written by hand (not by the code under test).
std::string Float64Bytes(const std::vector<double>& values) {
  std::string bytes;
  for (double value : values) {
    std::uint64_t bits;
    std::memcpy(&bits, &value, sizeof(bits));
    for (int k = 0; k < 8; ++k) bytes.push_back(static_cast<char>((bits >> (8 * k)) & 0xff));
  }
  return bytes;
}

std::string Float32Bytes(const std::vector<float>& values) {
  std::string bytes;
  for (float value : values) {
    std::uint32_t bits;
    std::memcpy(&bits, &value, sizeof(bits));
    for (int k = 0; k < 4; ++k) bytes.push_back(static_cast<char>((bits >> (8 * k)) & 0xff));
  }
  return bytes;
}

// The same tensor with its values moved into raw_data (float64, bitwise the same values).
void ToRaw64(mpcd::v1::Tensor* tensor) {
  const std::vector<double> values(tensor->data().begin(), tensor->data().end());
  tensor->clear_data();
  tensor->set_raw_data(Float64Bytes(values));
  tensor->set_dtype(mpcd::v1::DATA_TYPE_FLOAT64);
}

// The tensor as raw float32, after rounding its values to float32 (so the repeated form holds the
// same numbers).
void ToRaw32(mpcd::v1::Tensor* tensor) {
  std::vector<float> values(tensor->data().begin(), tensor->data().end());
  tensor->clear_data();
  tensor->set_raw_data(Float32Bytes(values));
  tensor->set_dtype(mpcd::v1::DATA_TYPE_FLOAT32);
}

void RoundToFloat32(mpcd::v1::Tensor* tensor) {
  for (double& value : *tensor->mutable_data()) value = static_cast<float>(value);
}

// A bounded time-varying linear problem with every tensor field present.
mpcd::v1::Problem LinearProblem(double scale) {
  mpcd::v1::Problem problem;
  *problem.mutable_x_init() = MakeTensor({kN}, Values(kN, scale));
  std::vector<double> C(kHorizon * kTau * kTau, 0.0);
  for (int t = 0; t < kHorizon; ++t) {
    for (int i = 0; i < kTau; ++i) C[(t * kTau + i) * kTau + i] = 1.0 + 0.1 * i + 0.01 * t;
  }
  *problem.mutable_cost()->mutable_quadratic() = MakeTensor({kHorizon, kTau, kTau}, C);
  *problem.mutable_cost()->mutable_linear() = MakeTensor({kTau}, Values(kTau, scale));
  std::vector<double> F = Values((kHorizon - 1) * kN * kTau, 0.3);
  for (int t = 0; t < kHorizon - 1; ++t) {
    for (int i = 0; i < kN; ++i) F[(t * kN + i) * kTau + i] += 1.0;
  }
  auto* linear = problem.mutable_dynamics()->mutable_linear();
  *linear->mutable_transition() = MakeTensor({kHorizon - 1, kN, kTau}, F);
  *linear->mutable_offset() = MakeTensor({kN}, Values(kN, 0.1));
  *problem.mutable_u_lower() = MakeTensor({kM}, {-0.4, -0.3});
  *problem.mutable_u_upper() = MakeTensor({kHorizon, kM}, std::vector<double>(kHorizon * kM, 0.5));
  *problem.mutable_u_init() = MakeTensor({kHorizon, kM}, Values(kHorizon * kM, 0.2));
  return problem;
}

// Every Tensor field of a problem, with its field name.
std::vector<std::pair<mpcd::v1::Tensor*, std::string>> TensorsOf(mpcd::v1::Problem* problem) {
  auto* linear = problem->mutable_dynamics()->mutable_linear();
  return {{problem->mutable_x_init(), "x_init"},
          {problem->mutable_cost()->mutable_quadratic(), "cost.quadratic"},
          {problem->mutable_cost()->mutable_linear(), "cost.linear"},
          {linear->mutable_transition(), "dynamics.linear.transition"},
          {linear->mutable_offset(), "dynamics.linear.offset"},
          {problem->mutable_u_lower(), "u_lower"},
          {problem->mutable_u_upper(), "u_upper"},
          {problem->mutable_u_init(), "u_init"}};
}

mpcd::v1::SolveRequest Request(std::vector<mpcd::v1::Problem> problems) {
  mpcd::v1::SolveRequest request;
  request.set_horizon(kHorizon);
  for (mpcd::v1::Problem& problem : problems) *request.add_problems() = std::move(problem);
  return request;
}

void ExpectSameProblems(const std::vector<Problem>& a, const std::vector<Problem>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE(i);
    // ElementsAreArray compares doubles with ==: bitwise for finite values.
    EXPECT_THAT(a[i].x_init, ElementsAreArray(b[i].x_init));
    EXPECT_THAT(a[i].cost_quadratic, ElementsAreArray(b[i].cost_quadratic));
    EXPECT_THAT(a[i].cost_linear, ElementsAreArray(b[i].cost_linear));
    EXPECT_THAT(a[i].transition, ElementsAreArray(b[i].transition));
    EXPECT_THAT(a[i].offset, ElementsAreArray(b[i].offset));
    EXPECT_THAT(a[i].u_lower, ElementsAreArray(b[i].u_lower));
    EXPECT_THAT(a[i].u_upper, ElementsAreArray(b[i].u_upper));
    EXPECT_THAT(a[i].u_init, ElementsAreArray(b[i].u_init));
    EXPECT_EQ(a[i].shape.state_dim, b[i].shape.state_dim);
    EXPECT_EQ(a[i].shape.control_dim, b[i].shape.control_dim);
  }
}

TEST(TensorEncoding, RawFloat64ReadsBitwiseTheRepeatedValues) {
  const mpcd::v1::SolveRequest repeated = Request({LinearProblem(1.0), LinearProblem(-2.0)});
  mpcd::v1::SolveRequest raw = repeated;
  for (mpcd::v1::Problem& problem : *raw.mutable_problems()) {
    for (auto& [tensor, name] : TensorsOf(&problem)) ToRaw64(tensor);
  }
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> a, ToProblems(repeated, RequestLimits{}));
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> b, ToProblems(raw, RequestLimits{}));
  ExpectSameProblems(a, b);
  // The values really are the request's (not, e.g., zeros on both sides).
  EXPECT_EQ(a[1].x_init[2], -2.0 * std::sin(1.0 + 1.4) / 3.0);
}

TEST(TensorEncoding, RawFloat32IsWidenedExactly) {
  mpcd::v1::SolveRequest repeated = Request({LinearProblem(1.0)});
  for (auto& [tensor, name] : TensorsOf(repeated.mutable_problems(0))) RoundToFloat32(tensor);
  mpcd::v1::SolveRequest raw = repeated;
  for (auto& [tensor, name] : TensorsOf(raw.mutable_problems(0))) ToRaw32(tensor);
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> a, ToProblems(repeated, RequestLimits{}));
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> b, ToProblems(raw, RequestLimits{}));
  ExpectSameProblems(a, b);
  EXPECT_EQ(b[0].x_init[0], static_cast<double>(static_cast<float>(std::sin(1.0) / 3.0)));
}

TEST(TensorEncoding, OneRequestMixesEncodingsTensorByTensor) {
  const mpcd::v1::SolveRequest repeated = Request({LinearProblem(1.0), LinearProblem(0.5)});
  mpcd::v1::SolveRequest mixed = repeated;
  int k = 0;
  for (mpcd::v1::Problem& problem : *mixed.mutable_problems()) {
    for (auto& [tensor, name] : TensorsOf(&problem)) {
      if (k++ % 2 == 0) ToRaw64(tensor);  // every other tensor, alternating across problems
    }
  }
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> a, ToProblems(repeated, RequestLimits{}));
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> b, ToProblems(mixed, RequestLimits{}));
  ExpectSameProblems(a, b);
}

TEST(TensorEncoding, RawScalarAndEmptyRawTensor) {
  // An empty raw_data with no shape is an absent tensor, as an empty repeated one.
  mpcd::v1::Problem problem = LinearProblem(1.0);
  problem.mutable_u_init()->Clear();
  problem.mutable_u_init()->set_dtype(mpcd::v1::DATA_TYPE_FLOAT32);
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> problems,
                           ToProblems(Request({problem}), RequestLimits{}));
  EXPECT_TRUE(problems[0].u_init.empty());
}

std::string ShapeString(const std::vector<std::uint32_t>& shape) {
  return absl::StrCat("(", absl::StrJoin(shape, ","), ")");
}

// The index string of the last element of `shape`, e.g. "[4,4,4]".
std::string LastIndex(const std::vector<std::uint32_t>& shape) {
  std::vector<std::uint32_t> last;
  for (std::uint32_t dim : shape) last.push_back(dim - 1);
  return absl::StrCat("[", absl::StrJoin(last, ","), "]");
}

// What a malformed case knows about the tensor it broke.
struct Broken {
  std::vector<std::uint32_t> shape;
  int count;  // values before the mutation
  const mpcd::v1::Tensor* tensor;
};

// One malformed raw payload and the message it must produce after "problems[1].<field>".
struct MalformedCase {
  std::string name;
  std::function<void(mpcd::v1::Tensor*)> mutate;
  std::function<std::string(const Broken&)> message;
};

std::string RaggedMessage(const Broken& b, const char* dtype, int element) {
  return ".raw_data: " + std::to_string(b.tensor->raw_data().size()) +
         " bytes is not a whole number of " + dtype + " values (" + std::to_string(element) +
         " bytes each)";
}

std::string CountMessage(const Broken& b, int element) {
  return ": shape " + ShapeString(b.shape) + " needs " + std::to_string(b.count) + " values, got " +
         std::to_string(b.tensor->raw_data().size() / element);
}

std::vector<MalformedCase> MalformedCases() {
  return {
      {"Float64LengthNotMultipleOf8",
       [](mpcd::v1::Tensor* t) {
         ToRaw64(t);
         t->mutable_raw_data()->push_back('\0');
       },
       [](const Broken& b) { return RaggedMessage(b, "DATA_TYPE_FLOAT64", 8); }},
      {"Float64LengthShortBy3",
       [](mpcd::v1::Tensor* t) {
         ToRaw64(t);
         t->mutable_raw_data()->resize(t->raw_data().size() - 3);
       },
       [](const Broken& b) { return RaggedMessage(b, "DATA_TYPE_FLOAT64", 8); }},
      {"Float32LengthNotMultipleOf4",
       [](mpcd::v1::Tensor* t) {
         ToRaw32(t);
         t->mutable_raw_data()->append("\1\2");
       },
       [](const Broken& b) { return RaggedMessage(b, "DATA_TYPE_FLOAT32", 4); }},
      {"Float64OneValueMissing",
       [](mpcd::v1::Tensor* t) {
         ToRaw64(t);
         t->mutable_raw_data()->resize(t->raw_data().size() - 8);
       },
       [](const Broken& b) { return CountMessage(b, 8); }},
      {"Float32OneValueTooMany",
       [](mpcd::v1::Tensor* t) {
         ToRaw32(t);
         t->mutable_raw_data()->append(Float32Bytes({1.0f}));
       },
       [](const Broken& b) { return CountMessage(b, 4); }},
      {"Float64ReadAsFloat32HasTwiceTheValues",
       [](mpcd::v1::Tensor* t) {
         ToRaw64(t);
         t->set_dtype(mpcd::v1::DATA_TYPE_FLOAT32);
       },
       [](const Broken& b) { return CountMessage(b, 4); }},
      {"Float64NaN",
       [](mpcd::v1::Tensor* t) {
         t->set_data(t->data_size() - 1, std::numeric_limits<double>::quiet_NaN());
         ToRaw64(t);
       },
       [](const Broken& b) { return ": not finite at " + LastIndex(b.shape) + " (nan)"; }},
      {"Float32Inf",
       [](mpcd::v1::Tensor* t) {
         t->set_data(t->data_size() - 1, std::numeric_limits<double>::infinity());
         ToRaw32(t);
       },
       [](const Broken& b) { return ": not finite at " + LastIndex(b.shape) + " (inf)"; }},
      {"BothDataAndRawData",
       [](mpcd::v1::Tensor* t) {
         const double first = t->data(0);
         ToRaw64(t);
         t->add_data(first);
       },
       [](const Broken&) { return std::string(": has both data and raw_data (set one of them)"); }},
      {"UnknownDtype",
       [](mpcd::v1::Tensor* t) {
         ToRaw64(t);
         t->set_dtype(static_cast<mpcd::v1::DataType>(7));
       },
       [](const Broken&) { return std::string(".dtype: unknown value 7"); }},
  };
}

TEST(TensorEncoding, EveryMalformedRawPayloadIsInvalidArgumentNamingTheField) {
  int checked = 0;
  for (const MalformedCase& c : MalformedCases()) {
    // Every tensor field of the second problem, one at a time.
    for (std::size_t f = 0; f < 8; ++f) {
      mpcd::v1::SolveRequest request = Request({LinearProblem(1.0), LinearProblem(2.0)});
      ASSERT_THAT(ToProblems(request, RequestLimits{}), IsOk());
      auto tensors = TensorsOf(request.mutable_problems(1));
      mpcd::v1::Tensor* tensor = tensors[f].first;
      const Broken broken{ShapeOf(*tensor), tensor->data_size(), tensor};
      c.mutate(tensor);
      const std::string field = "problems[1]." + tensors[f].second;
      SCOPED_TRACE(c.name + " on " + field);
      const bool bound = tensors[f].second == "u_lower" || tensors[f].second == "u_upper";
      if (bound && (c.name == "Float64NaN" || c.name == "Float32Inf")) {
        // A non-finite bound may first break u_lower <= u_upper, which names the bound too.
        EXPECT_THAT(ToProblems(request, RequestLimits{}),
                    StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(field)));
      } else {
        EXPECT_THAT(ToProblems(request, RequestLimits{}),
                    StatusIs(absl::StatusCode::kInvalidArgument, field + c.message(broken)));
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 80);
}

TEST(TensorEncoding, BackwardReadsRawSolutionsAndCotangents) {
  mpcd::v1::BackwardRequest repeated;
  repeated.set_horizon(kHorizon);
  *repeated.add_problems() = LinearProblem(1.0);
  mpcd::v1::Solution* solution = repeated.add_solutions();
  *solution->mutable_x() = MakeTensor({kHorizon, kN}, Values(kHorizon * kN, 1.0));
  *solution->mutable_u() = MakeTensor({kHorizon, kM}, Values(kHorizon * kM, 0.1));
  mpcd::v1::Cotangent* cotangent = repeated.add_cotangents();
  *cotangent->mutable_x() = MakeTensor({kHorizon, kN}, Values(kHorizon * kN, 2.0));
  *cotangent->mutable_u() = MakeTensor({kHorizon, kM}, Values(kHorizon * kM, 3.0));

  mpcd::v1::BackwardRequest raw = repeated;
  for (auto& [tensor, name] : TensorsOf(raw.mutable_problems(0))) ToRaw64(tensor);
  ToRaw64(raw.mutable_solutions(0)->mutable_x());
  ToRaw64(raw.mutable_solutions(0)->mutable_u());
  ToRaw64(raw.mutable_cotangents(0)->mutable_x());
  ToRaw64(raw.mutable_cotangents(0)->mutable_u());

  MPC_ASSERT_OK_AND_ASSIGN(BackwardInputs a, ToBackwardProblems(repeated, RequestLimits{}));
  MPC_ASSERT_OK_AND_ASSIGN(BackwardInputs b, ToBackwardProblems(raw, RequestLimits{}));
  ExpectSameProblems(a.problems, b.problems);
  EXPECT_THAT(b.items[0].x, ElementsAreArray(a.items[0].x));
  EXPECT_THAT(b.items[0].u, ElementsAreArray(a.items[0].u));
  EXPECT_THAT(b.items[0].dl_dx, ElementsAreArray(a.items[0].dl_dx));
  EXPECT_THAT(b.items[0].dl_du, ElementsAreArray(a.items[0].dl_du));

  // A NaN in a raw cotangent names it.
  mpcd::v1::Tensor* bad = raw.mutable_cotangents(0)->mutable_u();
  std::vector<double> values = Values(kHorizon * kM, 3.0);
  values[3] = std::numeric_limits<double>::infinity();
  bad->set_raw_data(Float64Bytes(values));
  EXPECT_THAT(
      ToBackwardProblems(raw, RequestLimits{}),
      StatusIs(absl::StatusCode::kInvalidArgument, "cotangents[0].u: not finite at [1,1] (inf)"));
  // A ragged raw solution names it.
  raw.mutable_solutions(0)->mutable_x()->mutable_raw_data()->pop_back();
  EXPECT_THAT(ToBackwardProblems(raw, RequestLimits{}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("solutions[0].x.raw_data: 119 bytes is not a whole number")));
}

TEST(TensorEncoding, UnknownResponseEncodingIsInvalidArgument) {
  mpcd::v1::SolveRequest request = Request({LinearProblem(1.0)});
  request.set_response_encoding(static_cast<mpcd::v1::TensorEncoding>(9));
  EXPECT_THAT(ToProblems(request, RequestLimits{}),
              StatusIs(absl::StatusCode::kInvalidArgument, "response_encoding: unknown value 9"));
}

// Decodes a response tensor written in any encoding (test-side, independent of the server code).
std::vector<double> Decode(const mpcd::v1::Tensor& tensor) {
  if (tensor.raw_data().empty()) return {tensor.data().begin(), tensor.data().end()};
  std::vector<double> values;
  const std::string& bytes = tensor.raw_data();
  if (tensor.dtype() == mpcd::v1::DATA_TYPE_FLOAT32) {
    for (std::size_t i = 0; i + 4 <= bytes.size(); i += 4) {
      std::uint32_t bits = 0;
      for (int k = 3; k >= 0; --k) bits = (bits << 8) | static_cast<unsigned char>(bytes[i + k]);
      float value;
      std::memcpy(&value, &bits, sizeof(value));
      values.push_back(value);
    }
  } else {
    for (std::size_t i = 0; i + 8 <= bytes.size(); i += 8) {
      std::uint64_t bits = 0;
      for (int k = 7; k >= 0; --k) bits = (bits << 8) | static_cast<unsigned char>(bytes[i + k]);
      double value;
      std::memcpy(&value, &bits, sizeof(value));
      values.push_back(value);
    }
  }
  return values;
}

TEST(TensorEncoding, ResponsesAreWrittenInTheRequestedEncoding) {
  mpcd::v1::SolveResponse repeated;
  mpcd::v1::Solution* solution = repeated.add_solutions();
  *solution->mutable_x() = MakeTensor({kHorizon, kN}, Values(kHorizon * kN, 1.0));
  *solution->mutable_u() = MakeTensor({kHorizon, kM}, Values(kHorizon * kM, 0.1));
  *solution->mutable_feedback() = MakeTensor({kHorizon, kM, kN}, Values(kHorizon * kM * kN, 5.0));
  solution->set_cost(1.25);

  mpcd::v1::SolveResponse same = repeated;
  EncodeResponseTensors(mpcd::v1::REPEATED_FLOAT64, &same);
  EXPECT_EQ(same.SerializeAsString(), repeated.SerializeAsString());

  mpcd::v1::SolveResponse raw64 = repeated;
  EncodeResponseTensors(mpcd::v1::RAW_FLOAT64, &raw64);
  mpcd::v1::SolveResponse raw32 = repeated;
  EncodeResponseTensors(mpcd::v1::RAW_FLOAT32, &raw32);
  for (const auto& [field, getter] :
       std::vector<std::pair<std::string,
                             std::function<const mpcd::v1::Tensor&(const mpcd::v1::Solution&)>>>{
           {"x", [](const mpcd::v1::Solution& s) -> const mpcd::v1::Tensor& { return s.x(); }},
           {"u", [](const mpcd::v1::Solution& s) -> const mpcd::v1::Tensor& { return s.u(); }},
           {"feedback",
            [](const mpcd::v1::Solution& s) -> const mpcd::v1::Tensor& { return s.feedback(); }}}) {
    SCOPED_TRACE(field);
    const mpcd::v1::Tensor& want = getter(repeated.solutions(0));
    const mpcd::v1::Tensor& got64 = getter(raw64.solutions(0));
    const mpcd::v1::Tensor& got32 = getter(raw32.solutions(0));
    EXPECT_EQ(got64.data_size(), 0);
    EXPECT_EQ(got64.dtype(), mpcd::v1::DATA_TYPE_FLOAT64);
    EXPECT_EQ(got64.raw_data().size(), 8u * want.data_size());
    EXPECT_EQ(ShapeOf(got64), ShapeOf(want));
    EXPECT_THAT(Decode(got64), ElementsAreArray(want.data().begin(), want.data().end()));
    EXPECT_EQ(got32.data_size(), 0);
    EXPECT_EQ(got32.dtype(), mpcd::v1::DATA_TYPE_FLOAT32);
    EXPECT_EQ(got32.raw_data().size(), 4u * want.data_size());
    std::vector<double> rounded;
    for (double v : want.data()) rounded.push_back(static_cast<float>(v));
    EXPECT_THAT(Decode(got32), ElementsAreArray(rounded));
  }
  // Absent tensors stay absent; scalars stay doubles.
  EXPECT_FALSE(raw64.solutions(0).has_feedforward());
  EXPECT_EQ(raw32.solutions(0).cost(), 1.25);
  // The raw64 form is exactly the server's bytes on a little-endian wire.
  EXPECT_EQ(raw64.solutions(0).x().raw_data(), Float64Bytes(Values(kHorizon * kN, 1.0)));
}

}  // namespace
}  // namespace mpc
