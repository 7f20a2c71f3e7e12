// Batched layouts (mpcd.proto: BatchedProblems, StackedSolutions, stacked cotangents and
// gradients): a batch of equal shapes sent as one stacked tensor per input must convert to exactly
// the problems the per-problem layout spells out, solve and differentiate to bitwise the same
// numbers, answer in stacked tensors that hold bitwise the per-problem answers, and name the field
// of every malformed stacked input.
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mpcd/v1/mpcd.pb.h"
#include "proto/proto_conversion.h"
#include "solver/make_backend.h"
#include "solver/problem.h"
#include "tests/testing/proto_tensors.h"
#include "tests/testing/same_problem.h"
#include "tests/testing/solve_batch.h"
#include "tests/testing/status_matchers.h"

namespace mpc {
namespace {

using ::mpc::testing::ExpectSameProblem;
using ::mpc::testing::IsOk;
using ::mpc::testing::MakeTensor;
using ::mpc::testing::Stack;
using ::mpc::testing::StatusIs;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

constexpr int kHorizon = 5;
constexpr int kN = 3;
constexpr int kM = 2;
constexpr int kTau = kN + kM;
constexpr int kBatch = 4;

// Values that differ in every bit position that matters, per problem b and field `salt`.
std::vector<double> Values(std::size_t count, double salt) {
  std::vector<double> values(count);
  for (std::size_t i = 0; i < count; ++i) {
    values[i] = std::sin(salt + 0.37 * static_cast<double>(i)) / 3.0;
  }
  return values;
}

// The raw little-endian float64 (or float32) form of a repeated tensor, written by hand.
mpcd::v1::Tensor Raw(const mpcd::v1::Tensor& repeated, bool f32 = false) {
  mpcd::v1::Tensor tensor;
  *tensor.mutable_shape() = repeated.shape();
  std::string bytes;
  for (double v : repeated.data()) {
    if (f32) {
      const float narrow = static_cast<float>(v);
      bytes.append(reinterpret_cast<const char*>(&narrow), 4);
    } else {
      bytes.append(reinterpret_cast<const char*>(&v), 8);
    }
  }
  tensor.set_raw_data(bytes);
  tensor.set_dtype(f32 ? mpcd::v1::DATA_TYPE_FLOAT32 : mpcd::v1::DATA_TYPE_FLOAT64);
  return tensor;
}

// Problem b: a convex, bounded, time-varying LQR problem with every input its own.
mpcd::v1::Problem LinearProblem(int b) {
  mpcd::v1::Problem problem;
  const double s = 1.0 + b;
  *problem.mutable_x_init() = MakeTensor({kN}, Values(kN, s));
  std::vector<double> C(kHorizon * kTau * kTau, 0.0);
  const std::vector<double> noise = Values(C.size(), 2 * s);
  for (int t = 0; t < kHorizon; ++t) {
    for (int i = 0; i < kTau; ++i) {
      for (int j = 0; j < kTau; ++j) {
        // Diagonally dominant and symmetric: positive definite.
        const double off = 0.05 * (noise[(t * kTau + std::min(i, j)) * kTau + std::max(i, j)]);
        C[(t * kTau + i) * kTau + j] = i == j ? 1.0 + 0.1 * t + 0.2 * i : off;
      }
    }
  }
  *problem.mutable_cost()->mutable_quadratic() = MakeTensor({kHorizon, kTau, kTau}, C);
  *problem.mutable_cost()->mutable_linear() =
      MakeTensor({kHorizon, kTau}, Values(kHorizon * kTau, 3 * s));
  std::vector<double> F = Values((kHorizon - 1) * kN * kTau, 4 * s);
  for (double& v : F) v *= 0.3;
  for (int t = 0; t < kHorizon - 1; ++t) {
    for (int i = 0; i < kN; ++i) F[(t * kN + i) * kTau + i] += 1.0;
  }
  mpcd::v1::LinearDynamics* linear = problem.mutable_dynamics()->mutable_linear();
  *linear->mutable_transition() = MakeTensor({kHorizon - 1, kN, kTau}, F);
  *linear->mutable_offset() = MakeTensor({kHorizon - 1, kN}, Values((kHorizon - 1) * kN, 5 * s));
  std::vector<double> lower(kHorizon * kM, -0.3 - 0.01 * b);
  std::vector<double> upper(kHorizon * kM, 0.25 + 0.01 * b);
  *problem.mutable_u_lower() = MakeTensor({kHorizon, kM}, lower);
  *problem.mutable_u_upper() = MakeTensor({kHorizon, kM}, upper);
  *problem.mutable_u_init() = MakeTensor({kHorizon, kM}, Values(kHorizon * kM, 6 * s));
  return problem;
}

// The same problems as one stacked tensor per input (every tensor repeated, raw float64 or raw
// float32 as `encode` makes it).
mpcd::v1::BatchedProblems Batched(const std::vector<mpcd::v1::Problem>& problems, bool raw = false,
                                  bool f32 = false) {
  std::vector<mpcd::v1::Tensor> x, C, c, F, f, lo, hi, u0;
  for (const mpcd::v1::Problem& p : problems) {
    x.push_back(p.x_init());
    C.push_back(p.cost().quadratic());
    c.push_back(p.cost().linear());
    F.push_back(p.dynamics().linear().transition());
    f.push_back(p.dynamics().linear().offset());
    lo.push_back(p.u_lower());
    hi.push_back(p.u_upper());
    u0.push_back(p.u_init());
  }
  const auto encode = [raw, f32](const mpcd::v1::Tensor& t) { return raw ? Raw(t, f32) : t; };
  mpcd::v1::BatchedProblems batched;
  batched.set_count(static_cast<std::uint32_t>(problems.size()));
  *batched.mutable_x_init() = encode(Stack(x));
  *batched.mutable_cost_quadratic() = encode(Stack(C));
  *batched.mutable_cost_linear() = encode(Stack(c));
  *batched.mutable_transition() = encode(Stack(F));
  *batched.mutable_offset() = encode(Stack(f));
  *batched.mutable_u_lower() = encode(Stack(lo));
  *batched.mutable_u_upper() = encode(Stack(hi));
  *batched.mutable_u_init() = encode(Stack(u0));
  return batched;
}

std::vector<mpcd::v1::Problem> Problems() {
  std::vector<mpcd::v1::Problem> problems;
  for (int b = 0; b < kBatch; ++b) problems.push_back(LinearProblem(b));
  return problems;
}

mpcd::v1::SolveRequest PerProblemRequest(const std::vector<mpcd::v1::Problem>& problems) {
  mpcd::v1::SolveRequest request;
  request.set_horizon(kHorizon);
  request.mutable_options()->set_max_iterations(20);
  request.set_return_gains(true);
  for (const mpcd::v1::Problem& p : problems) *request.add_problems() = p;
  return request;
}

mpcd::v1::SolveRequest BatchedRequest(const std::vector<mpcd::v1::Problem>& problems,
                                      bool raw = false, bool f32 = false) {
  mpcd::v1::SolveRequest request = PerProblemRequest({});
  *request.mutable_batched() = Batched(problems, raw, f32);
  return request;
}

void ExpectSameProblems(const mpcd::v1::SolveRequest& a, const mpcd::v1::SolveRequest& b) {
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> pa, ToProblems(a, RequestLimits{}));
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> pb, ToProblems(b, RequestLimits{}));
  ASSERT_EQ(pa.size(), pb.size());
  for (std::size_t i = 0; i < pa.size(); ++i) {
    SCOPED_TRACE(i);
    ExpectSameProblem(pa[i], pb[i]);
    EXPECT_EQ(pa[i].sampling_stream, pb[i].sampling_stream);
  }
}

std::vector<Solution> SolveAll(std::vector<Problem>& problems) {
  absl::StatusOr<std::unique_ptr<SolverBackend>> backend = MakeBackend(BackendKind::kCpu, 2);
  EXPECT_THAT(backend.status(), IsOk());
  return testing::SolveAll(**backend, problems);
}

TEST(BatchedLayout, StackedInputsConvertToThePerProblemProblems) {
  const std::vector<mpcd::v1::Problem> problems = Problems();
  ExpectSameProblems(BatchedRequest(problems), PerProblemRequest(problems));
  ExpectSameProblems(BatchedRequest(problems, /*raw=*/true), PerProblemRequest(problems));
  // The converted values are really there.
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> converted,
                           ToProblems(BatchedRequest(problems, true), RequestLimits{}));
  ASSERT_EQ(converted.size(), static_cast<std::size_t>(kBatch));
  EXPECT_THAT(converted[2].x_init, ElementsAreArray(Values(kN, 3.0)));
  EXPECT_EQ(converted[3].transition.size(), static_cast<std::size_t>((kHorizon - 1) * kN * kTau));
}

TEST(BatchedLayout, Float32StackedInputsAreWidenedExactly) {
  // Problems whose values are float32 numbers: the float32 stack must give the very same problems.
  std::vector<mpcd::v1::Problem> problems = Problems();
  for (mpcd::v1::Problem& p : problems) {
    for (mpcd::v1::Tensor* t : {p.mutable_x_init(), p.mutable_cost()->mutable_quadratic(),
                                p.mutable_cost()->mutable_linear(),
                                p.mutable_dynamics()->mutable_linear()->mutable_transition(),
                                p.mutable_dynamics()->mutable_linear()->mutable_offset(),
                                p.mutable_u_lower(), p.mutable_u_upper(), p.mutable_u_init()}) {
      for (double& v : *t->mutable_data()) v = static_cast<float>(v);
    }
  }
  ExpectSameProblems(BatchedRequest(problems, true, /*f32=*/true), PerProblemRequest(problems));
}

TEST(BatchedLayout, MixedBatchesCombineOwnFieldsBatchedSlicesAndTheTemplate) {
  const std::vector<mpcd::v1::Problem> problems = Problems();
  // x_init and u_init stacked, the cost in the template (problem 0's), the dynamics per problem;
  // problem 1 overrides its x_init and cost.
  mpcd::v1::SolveRequest mixed = PerProblemRequest({});
  mpcd::v1::SolveRequest spelled = PerProblemRequest({});
  mpcd::v1::BatchedProblems full = Batched(problems, true);
  mixed.mutable_batched()->set_count(kBatch);
  *mixed.mutable_batched()->mutable_x_init() = full.x_init();
  *mixed.mutable_batched()->mutable_u_init() = full.u_init();
  *mixed.mutable_problem_template()->mutable_cost() = problems[0].cost();
  for (int b = 0; b < kBatch; ++b) {
    mpcd::v1::Problem own;
    *own.mutable_dynamics() = problems[b].dynamics();
    *own.mutable_u_lower() = problems[b].u_lower();
    *own.mutable_u_upper() = problems[b].u_upper();
    mpcd::v1::Problem whole = problems[b];
    *whole.mutable_cost() = problems[0].cost();
    if (b == 1) {
      *own.mutable_x_init() = problems[3].x_init();
      *own.mutable_cost() = problems[2].cost();
      *whole.mutable_x_init() = problems[3].x_init();
      *whole.mutable_cost() = problems[2].cost();
    }
    *mixed.add_problems() = own;
    *spelled.add_problems() = whole;
  }
  ExpectSameProblems(mixed, spelled);
}

TEST(BatchedLayout, ModelParamsFillEveryModelGivenWithoutParams) {
  mpcd::v1::SolveRequest batched;
  batched.set_horizon(kHorizon);
  mpcd::v1::SolveRequest spelled = batched;
  mpcd::v1::Problem shared;
  shared.mutable_dynamics()->mutable_model()->set_name("pendulum");
  std::vector<double> C(16, 0.0);
  for (int i = 0; i < 4; ++i) C[i * 4 + i] = 1.0;
  *shared.mutable_cost()->mutable_quadratic() = MakeTensor({4, 4}, C);
  *batched.mutable_problem_template() = shared;
  std::vector<mpcd::v1::Tensor> x, params;
  for (int b = 0; b < 3; ++b) {
    x.push_back(MakeTensor({3}, {1.0, 0.1 * b, 0.0}));
    params.push_back(MakeTensor({3}, {9.8 + b, 1.0 + 0.1 * b, 1.0}));
    mpcd::v1::Problem whole = shared;
    *whole.mutable_x_init() = x.back();
    for (double v : params.back().data()) whole.mutable_dynamics()->mutable_model()->add_params(v);
    *spelled.add_problems() = whole;
  }
  batched.mutable_batched()->set_count(3);
  *batched.mutable_batched()->mutable_x_init() = Raw(Stack(x));
  *batched.mutable_batched()->mutable_model_params() = Raw(Stack(params));
  ExpectSameProblems(batched, spelled);
}

TEST(BatchedLayout, StackedAndPerProblemSolutionsAreBitwiseTheSame) {
  const std::vector<mpcd::v1::Problem> problems = Problems();
  for (mpcd::v1::TensorEncoding encoding :
       {mpcd::v1::REPEATED_FLOAT64, mpcd::v1::RAW_FLOAT64, mpcd::v1::RAW_FLOAT32}) {
    SCOPED_TRACE(encoding);
    mpcd::v1::SolveRequest per = PerProblemRequest(problems);
    per.set_response_encoding(encoding);
    mpcd::v1::SolveRequest stacked = BatchedRequest(problems, true);
    stacked.set_response_encoding(encoding);
    stacked.set_stacked_response(true);
    MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> pa, ToProblems(per, RequestLimits{}));
    MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> pb, ToProblems(stacked, RequestLimits{}));
    const std::vector<Solution> sa = SolveAll(pa);
    const std::vector<Solution> sb = SolveAll(pb);
    mpcd::v1::SolveResponse ra;
    mpcd::v1::SolveResponse rb;
    WriteSolutions(sa, pa, encoding, false, &ra);
    WriteSolutions(sb, pb, encoding, true, &rb);
    ASSERT_EQ(ra.solutions_size(), kBatch);
    EXPECT_EQ(rb.solutions_size(), 0);
    const mpcd::v1::StackedSolutions& s = rb.stacked();
    EXPECT_THAT(s.x().shape(), ElementsAreArray({kBatch, kHorizon, kN}));
    EXPECT_THAT(s.feedback().shape(), ElementsAreArray({kBatch, kHorizon, kM, kN}));
    ASSERT_EQ(s.cost_size(), kBatch);
    // Byte b of the stack is the per-problem answer's bytes: bitwise equal.
    const auto bytes = [encoding](const mpcd::v1::Tensor& t) {
      if (encoding != mpcd::v1::REPEATED_FLOAT64) return t.raw_data();
      return std::string(reinterpret_cast<const char*>(t.data().data()), 8 * t.data_size());
    };
    std::string x, u, K, k;
    for (int b = 0; b < kBatch; ++b) {
      const mpcd::v1::Solution& one = ra.solutions(b);
      x += bytes(one.x());
      u += bytes(one.u());
      K += bytes(one.feedback());
      k += bytes(one.feedforward());
      EXPECT_EQ(s.cost(b), one.cost());
      EXPECT_EQ(s.status(b), one.status());
      EXPECT_EQ(s.iterations(b), one.iterations());
      EXPECT_EQ(s.step_norm(b), one.step_norm());
      EXPECT_EQ(s.regularization(b), one.regularization());
    }
    EXPECT_EQ(bytes(s.x()), x);
    EXPECT_EQ(bytes(s.u()), u);
    EXPECT_EQ(bytes(s.feedback()), K);
    EXPECT_EQ(bytes(s.feedforward()), k);
    EXPECT_GT(x.size(), 0u);
  }
}

mpcd::v1::BackwardRequest PerProblemBackward(const mpcd::v1::SolveRequest& solve,
                                             const mpcd::v1::SolveResponse& answer) {
  mpcd::v1::BackwardRequest request;
  request.set_horizon(kHorizon);
  *request.mutable_problems() = solve.problems();
  for (int b = 0; b < answer.solutions_size(); ++b) {
    mpcd::v1::Solution* s = request.add_solutions();
    *s->mutable_x() = answer.solutions(b).x();
    *s->mutable_u() = answer.solutions(b).u();
    mpcd::v1::Cotangent* c = request.add_cotangents();
    *c->mutable_x() = MakeTensor({kHorizon, kN}, Values(kHorizon * kN, 7.0 + b));
    *c->mutable_u() = MakeTensor({kHorizon, kM}, Values(kHorizon * kM, 8.0 + b));
  }
  return request;
}

std::vector<ProblemGradient> Differentiate(const BackwardInputs& inputs) {
  absl::StatusOr<std::unique_ptr<SolverBackend>> backend = MakeBackend(BackendKind::kCpu, 2);
  EXPECT_THAT(backend.status(), IsOk());
  std::vector<ProblemGradient> gradients(inputs.items.size());
  std::vector<const BackwardProblem*> in;
  std::vector<ProblemGradient*> out;
  for (std::size_t i = 0; i < gradients.size(); ++i) {
    in.push_back(&inputs.items[i]);
    out.push_back(&gradients[i]);
  }
  EXPECT_THAT((*backend)->BackwardBatch(in, out), IsOk());
  return gradients;
}

TEST(BatchedLayout, StackedAndPerProblemGradientsAreBitwiseTheSame) {
  const std::vector<mpcd::v1::Problem> problems = Problems();
  mpcd::v1::SolveRequest solve = PerProblemRequest(problems);
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> converted, ToProblems(solve, RequestLimits{}));
  mpcd::v1::SolveResponse answer;
  WriteSolutions(SolveAll(converted), converted, mpcd::v1::REPEATED_FLOAT64, false, &answer);
  const mpcd::v1::BackwardRequest per = PerProblemBackward(solve, answer);

  mpcd::v1::BackwardRequest stacked;
  stacked.set_horizon(kHorizon);
  *stacked.mutable_batched() = Batched(problems, true);
  std::vector<mpcd::v1::Tensor> x, u, dx, du;
  for (int b = 0; b < kBatch; ++b) {
    x.push_back(per.solutions(b).x());
    u.push_back(per.solutions(b).u());
    dx.push_back(per.cotangents(b).x());
    du.push_back(per.cotangents(b).u());
  }
  *stacked.mutable_stacked_solutions()->mutable_x() = Raw(Stack(x));
  *stacked.mutable_stacked_solutions()->mutable_u() = Stack(u);
  *stacked.mutable_stacked_cotangents()->mutable_x() = Raw(Stack(dx));
  *stacked.mutable_stacked_cotangents()->mutable_u() = Raw(Stack(du));
  stacked.set_stacked_response(true);
  stacked.set_response_encoding(mpcd::v1::RAW_FLOAT64);

  MPC_ASSERT_OK_AND_ASSIGN(BackwardInputs a, ToBackwardProblems(per, RequestLimits{}));
  MPC_ASSERT_OK_AND_ASSIGN(BackwardInputs b, ToBackwardProblems(stacked, RequestLimits{}));
  ASSERT_EQ(a.items.size(), b.items.size());
  for (std::size_t i = 0; i < a.items.size(); ++i) {
    EXPECT_THAT(a.items[i].x, ElementsAreArray(b.items[i].x));
    EXPECT_THAT(a.items[i].u, ElementsAreArray(b.items[i].u));
    EXPECT_THAT(a.items[i].dl_dx, ElementsAreArray(b.items[i].dl_dx));
    EXPECT_THAT(a.items[i].dl_du, ElementsAreArray(b.items[i].dl_du));
  }
  const std::vector<ProblemGradient> ga = Differentiate(a);
  const std::vector<ProblemGradient> gb = Differentiate(b);
  mpcd::v1::BackwardResponse ra;
  mpcd::v1::BackwardResponse rb;
  mpcd::v1::BackwardRequest per_raw = per;
  per_raw.set_response_encoding(mpcd::v1::RAW_FLOAT64);
  WriteGradients(per_raw, ga, a.problems, &ra);
  WriteGradients(stacked, gb, b.problems, &rb);
  ASSERT_EQ(ra.gradients_size(), kBatch);
  EXPECT_EQ(rb.gradients_size(), 0);
  ASSERT_EQ(rb.diagnostics_size(), kBatch);
  const mpcd::v1::BatchedProblems& g = rb.stacked_gradients();
  EXPECT_EQ(g.count(), static_cast<std::uint32_t>(kBatch));
  EXPECT_THAT(g.cost_quadratic().shape(), ElementsAreArray({kBatch, kHorizon, kTau, kTau}));
  EXPECT_THAT(g.transition().shape(), ElementsAreArray({kBatch, kHorizon - 1, kN, kTau}));
  std::string x0, C, c, F, f;
  for (int i = 0; i < kBatch; ++i) {
    const mpcd::v1::Problem& one = ra.gradients(i);
    x0 += one.x_init().raw_data();
    C += one.cost().quadratic().raw_data();
    c += one.cost().linear().raw_data();
    F += one.dynamics().linear().transition().raw_data();
    f += one.dynamics().linear().offset().raw_data();
    EXPECT_EQ(rb.diagnostics(i).SerializeAsString(), ra.diagnostics(i).SerializeAsString());
  }
  EXPECT_EQ(g.x_init().raw_data(), x0);
  EXPECT_EQ(g.cost_quadratic().raw_data(), C);
  EXPECT_EQ(g.cost_linear().raw_data(), c);
  EXPECT_EQ(g.transition().raw_data(), F);
  EXPECT_EQ(g.offset().raw_data(), f);
  // Not all zero (a gradient that vanished would compare equal too).
  bool nonzero = false;
  for (double v : ga[0].cost_linear) nonzero = nonzero || v != 0.0;
  EXPECT_TRUE(nonzero);
}

// BackwardRequest.gradient_fields: only the named gradients are written, in both layouts, and
// each one that is written is the full answer's; an unknown name is refused before any solving.
TEST(BatchedLayout, GradientFieldsLeaveTheOtherGradientsOut) {
  const std::vector<mpcd::v1::Problem> problems = Problems();
  mpcd::v1::SolveRequest solve = PerProblemRequest(problems);
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> converted, ToProblems(solve, RequestLimits{}));
  mpcd::v1::SolveResponse answer;
  WriteSolutions(SolveAll(converted), converted, mpcd::v1::REPEATED_FLOAT64, false, &answer);
  mpcd::v1::BackwardRequest per = PerProblemBackward(solve, answer);
  per.set_response_encoding(mpcd::v1::RAW_FLOAT64);
  mpcd::v1::BackwardRequest stacked = per;
  stacked.set_stacked_response(true);
  MPC_ASSERT_OK_AND_ASSIGN(BackwardInputs inputs, ToBackwardProblems(per, RequestLimits{}));
  const std::vector<ProblemGradient> gradients = Differentiate(inputs);

  mpcd::v1::BackwardResponse all_per, all_stacked, some_per, some_stacked;
  WriteGradients(per, gradients, inputs.problems, &all_per);
  WriteGradients(stacked, gradients, inputs.problems, &all_stacked);
  for (mpcd::v1::BackwardRequest* request : {&per, &stacked}) {
    request->add_gradient_fields("cost_linear");
    request->add_gradient_fields("offset");
    ASSERT_THAT(ToBackwardProblems(*request, RequestLimits{}).status(), IsOk());
  }
  WriteGradients(per, gradients, inputs.problems, &some_per);
  WriteGradients(stacked, gradients, inputs.problems, &some_stacked);

  ASSERT_EQ(some_per.gradients_size(), kBatch);
  for (int i = 0; i < kBatch; ++i) {
    const mpcd::v1::Problem& some = some_per.gradients(i);
    const mpcd::v1::Problem& all = all_per.gradients(i);
    EXPECT_FALSE(some.has_x_init());
    EXPECT_FALSE(some.cost().has_quadratic());
    EXPECT_FALSE(some.dynamics().linear().has_transition());
    EXPECT_EQ(some.cost().linear().raw_data(), all.cost().linear().raw_data());
    EXPECT_EQ(some.dynamics().linear().offset().raw_data(),
              all.dynamics().linear().offset().raw_data());
    EXPECT_EQ(some_per.diagnostics(i).SerializeAsString(),
              all_per.diagnostics(i).SerializeAsString());
  }
  const mpcd::v1::BatchedProblems& some = some_stacked.stacked_gradients();
  const mpcd::v1::BatchedProblems& all = all_stacked.stacked_gradients();
  EXPECT_FALSE(some.has_x_init());
  EXPECT_FALSE(some.has_cost_quadratic());
  EXPECT_FALSE(some.has_transition());
  EXPECT_EQ(some.cost_linear().raw_data(), all.cost_linear().raw_data());
  EXPECT_EQ(some.offset().raw_data(), all.offset().raw_data());
  EXPECT_FALSE(all.cost_quadratic().raw_data().empty());
  EXPECT_EQ(some_stacked.diagnostics_size(), kBatch);

  stacked.add_gradient_fields("cost");
  EXPECT_THAT(ToBackwardProblems(stacked, RequestLimits{}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("gradient_fields[2]: unknown gradient \"cost\"; one of x_init, "
                                 "cost_quadratic, cost_linear")));
}

// mpc.pytorch's slew_rate_penalty (from the template), prev_ctrl and u_zero_mask (stacked in
// `batched`) in the batched layout: the same augmented problems as the per-problem layout, and
// stacked answers and gradients in the caller's shapes, bitwise the per-problem ones.
TEST(BatchedLayout, SlewRateAndPinnedControlsTravelBatched) {
  std::vector<mpcd::v1::Problem> problems = Problems();
  std::vector<mpcd::v1::Tensor> prev, mask;
  for (int b = 0; b < kBatch; ++b) {
    std::vector<double> pinned(kHorizon * kM, 0.0);
    pinned[(b % kHorizon) * kM + b % kM] = 1.0;
    prev.push_back(MakeTensor({kM}, Values(kM, 9.0 + b)));
    mask.push_back(MakeTensor({kHorizon, kM}, pinned));
    problems[b].set_slew_rate_penalty(0.7);
    *problems[b].mutable_prev_ctrl() = prev.back();
    *problems[b].mutable_u_zero_mask() = mask.back();
  }
  const mpcd::v1::SolveRequest per = PerProblemRequest(problems);
  mpcd::v1::SolveRequest stacked = BatchedRequest(problems, true);
  stacked.mutable_problem_template()->set_slew_rate_penalty(0.7);
  *stacked.mutable_batched()->mutable_prev_ctrl() = Raw(Stack(prev));
  *stacked.mutable_batched()->mutable_u_zero_mask() = Stack(mask);
  stacked.set_stacked_response(true);
  stacked.set_response_encoding(mpcd::v1::RAW_FLOAT64);
  ExpectSameProblems(stacked, per);

  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> pa, ToProblems(per, RequestLimits{}));
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> pb, ToProblems(stacked, RequestLimits{}));
  ASSERT_EQ(pb[0].slew_state_prefix, kM);
  mpcd::v1::SolveResponse ra;
  mpcd::v1::SolveResponse rb;
  WriteSolutions(SolveAll(pa), pa, mpcd::v1::RAW_FLOAT64, false, &ra);
  WriteSolutions(SolveAll(pb), pb, mpcd::v1::RAW_FLOAT64, true, &rb);
  const mpcd::v1::StackedSolutions& s = rb.stacked();
  EXPECT_THAT(s.x().shape(), ElementsAreArray({kBatch, kHorizon, kN}));
  EXPECT_THAT(s.feedback().shape(), ElementsAreArray({kBatch, kHorizon, kM, kN}));
  std::string x, u, K;
  for (int b = 0; b < kBatch; ++b) {
    x += ra.solutions(b).x().raw_data();
    u += ra.solutions(b).u().raw_data();
    K += ra.solutions(b).feedback().raw_data();
    EXPECT_EQ(s.cost(b), ra.solutions(b).cost());
  }
  EXPECT_EQ(s.x().raw_data(), x);
  EXPECT_EQ(s.u().raw_data(), u);
  EXPECT_EQ(s.feedback().raw_data(), K);

  // Backward: the per-problem and the stacked layout, from the caller's (T, n) solutions.
  mpcd::v1::SolveResponse repeated;
  WriteSolutions(SolveAll(pa), pa, mpcd::v1::REPEATED_FLOAT64, false, &repeated);
  mpcd::v1::BackwardRequest per_backward = PerProblemBackward(per, repeated);
  per_backward.set_response_encoding(mpcd::v1::RAW_FLOAT64);
  mpcd::v1::BackwardRequest stacked_backward;
  stacked_backward.set_horizon(kHorizon);
  *stacked_backward.mutable_problem_template() = stacked.problem_template();
  *stacked_backward.mutable_batched() = stacked.batched();
  std::vector<mpcd::v1::Tensor> sx, su, dx, du;
  for (int b = 0; b < kBatch; ++b) {
    sx.push_back(per_backward.solutions(b).x());
    su.push_back(per_backward.solutions(b).u());
    dx.push_back(per_backward.cotangents(b).x());
    du.push_back(per_backward.cotangents(b).u());
  }
  *stacked_backward.mutable_stacked_solutions()->mutable_x() = Raw(Stack(sx));
  *stacked_backward.mutable_stacked_solutions()->mutable_u() = Stack(su);
  *stacked_backward.mutable_stacked_cotangents()->mutable_x() = Raw(Stack(dx));
  *stacked_backward.mutable_stacked_cotangents()->mutable_u() = Stack(du);
  stacked_backward.set_stacked_response(true);
  stacked_backward.set_response_encoding(mpcd::v1::RAW_FLOAT64);
  MPC_ASSERT_OK_AND_ASSIGN(BackwardInputs a, ToBackwardProblems(per_backward, RequestLimits{}));
  MPC_ASSERT_OK_AND_ASSIGN(BackwardInputs b, ToBackwardProblems(stacked_backward, RequestLimits{}));
  mpcd::v1::BackwardResponse ga;
  mpcd::v1::BackwardResponse gb;
  WriteGradients(per_backward, Differentiate(a), a.problems, &ga);
  WriteGradients(stacked_backward, Differentiate(b), b.problems, &gb);
  ASSERT_EQ(ga.gradients_size(), kBatch);
  const mpcd::v1::BatchedProblems& g = gb.stacked_gradients();
  EXPECT_THAT(g.x_init().shape(), ElementsAreArray({kBatch, kN}));
  EXPECT_THAT(g.cost_quadratic().shape(), ElementsAreArray({kBatch, kHorizon, kTau, kTau}));
  EXPECT_THAT(g.cost_linear().shape(), ElementsAreArray({kBatch, kHorizon, kTau}));
  EXPECT_THAT(g.transition().shape(), ElementsAreArray({kBatch, kHorizon - 1, kN, kTau}));
  EXPECT_THAT(g.offset().shape(), ElementsAreArray({kBatch, kHorizon - 1, kN}));
  std::string x0, C, c, F, f;
  for (int i = 0; i < kBatch; ++i) {
    const mpcd::v1::Problem& one = ga.gradients(i);
    EXPECT_THAT(one.cost().quadratic().shape(), ElementsAreArray({kHorizon, kTau, kTau}));
    x0 += one.x_init().raw_data();
    C += one.cost().quadratic().raw_data();
    c += one.cost().linear().raw_data();
    F += one.dynamics().linear().transition().raw_data();
    f += one.dynamics().linear().offset().raw_data();
  }
  EXPECT_EQ(g.x_init().raw_data(), x0);
  EXPECT_EQ(g.cost_quadratic().raw_data(), C);
  EXPECT_EQ(g.cost_linear().raw_data(), c);
  EXPECT_EQ(g.transition().raw_data(), F);
  EXPECT_EQ(g.offset().raw_data(), f);

  // A malformed stacked prev_ctrl or u_zero_mask names its batched field.
  mpcd::v1::SolveRequest bad = stacked;
  bad.mutable_batched()->mutable_prev_ctrl()->set_shape(0, kBatch + 1);
  EXPECT_THAT(ToProblems(bad, RequestLimits{}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("batched.prev_ctrl")));
  bad = stacked;
  bad.mutable_batched()->mutable_u_zero_mask()->set_data(3, std::nan(""));
  EXPECT_THAT(ToProblems(bad, RequestLimits{}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("batched.u_zero_mask")));
}

// Every malformed stacked input is INVALID_ARGUMENT naming its field.
TEST(BatchedLayout, MalformedStackedInputsNameTheField) {
  const std::vector<mpcd::v1::Problem> problems = Problems();
  const mpcd::v1::SolveRequest good = BatchedRequest(problems, true);
  ASSERT_THAT(ToProblems(good, RequestLimits{}), IsOk());
  const auto expect = [](const mpcd::v1::SolveRequest& request, const std::string& field) {
    EXPECT_THAT(ToProblems(request, RequestLimits{}),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(field)));
  };
  {
    mpcd::v1::SolveRequest r = good;
    r.mutable_batched()->set_count(0);
    expect(r, "batched.count: required");
  }
  {
    mpcd::v1::SolveRequest r = good;
    r.mutable_batched()->set_count(kBatch + 1);
    expect(r, "batched.x_init: expected the batch (5 problems) as the first dimension");
  }
  {
    mpcd::v1::SolveRequest r = good;
    *r.add_problems() = problems[0];
    expect(r, "batched.count: 4 but the request lists 1 problems");
  }
  {
    mpcd::v1::SolveRequest r = good;
    r.mutable_batched()->mutable_cost_linear()->mutable_raw_data()->pop_back();
    expect(r, "batched.cost_linear.raw_data");
  }
  {
    mpcd::v1::SolveRequest r = good;
    r.mutable_batched()->mutable_transition()->set_shape(1, kHorizon);
    expect(r, "batched.transition: shape");
  }
  {
    mpcd::v1::SolveRequest r = good;
    const double nan = std::nan("");
    r.mutable_batched()->mutable_u_init()->mutable_raw_data()->replace(
        16, 8, reinterpret_cast<const char*>(&nan), 8);
    expect(r, "batched.u_init: not finite");
  }
  {
    mpcd::v1::SolveRequest r = good;
    r.mutable_batched()->clear_transition();
    expect(r, "batched.offset: only with batched.transition");
  }
  {
    mpcd::v1::SolveRequest r = good;
    *r.mutable_batched()->mutable_model_params() = Raw(MakeTensor({kBatch}, Values(kBatch, 1.0)));
    expect(r, "batched.model_params: expected shape (B, p)");
  }
  {
    mpcd::v1::SolveRequest r = good;
    *r.mutable_batched()->mutable_model_params() =
        Raw(MakeTensor({kBatch, 3}, Values(3 * kBatch, 1.0)));
    expect(r, "batched.model_params: problems[0] has no model dynamics");
  }
  {
    mpcd::v1::SolveRequest r = good;
    (*r.mutable_batched()->mutable_graph_parameters())["w"] = MakeTensor({1}, {1.0});
    expect(r, "batched.graph_parameters: only in responses");
  }
  {
    // A slice that does not fit its problem names the problem's field (as for the template).
    mpcd::v1::SolveRequest r = good;
    *r.mutable_batched()->mutable_u_init() =
        Raw(MakeTensor({kBatch, kHorizon + 1, kM}, Values(kBatch * (kHorizon + 1) * kM, 1.0)));
    expect(r, "problems[0].u_init: expected shape (5,2)");
  }
  {
    mpcd::v1::SolveRequest r = good;
    RequestLimits limits;
    limits.max_problems = 2;
    EXPECT_THAT(ToProblems(r, limits), StatusIs(absl::StatusCode::kInvalidArgument,
                                                HasSubstr("batched.count: at most 2")));
  }
  {
    // stacked_response needs equal shapes: a pendulum beside the linear problems.
    mpcd::v1::SolveRequest r = PerProblemRequest(problems);
    mpcd::v1::Problem pendulum;
    pendulum.mutable_dynamics()->mutable_model()->set_name("pendulum");
    *pendulum.mutable_x_init() = MakeTensor({3}, {1.0, 0.0, 0.0});
    std::vector<double> C(16, 0.0);
    for (int i = 0; i < 4; ++i) C[i * 4 + i] = 1.0;
    *pendulum.mutable_cost()->mutable_quadratic() = MakeTensor({4, 4}, C);
    *r.add_problems() = pendulum;
    ASSERT_THAT(ToProblems(r, RequestLimits{}), IsOk());
    r.set_stacked_response(true);
    expect(r, "stacked_response: problems[4] has other dynamics");
  }
}

TEST(BatchedLayout, MalformedStackedBackwardInputsNameTheField) {
  const std::vector<mpcd::v1::Problem> problems = Problems();
  mpcd::v1::BackwardRequest good;
  good.set_horizon(kHorizon);
  *good.mutable_batched() = Batched(problems, true);
  std::vector<mpcd::v1::Tensor> x, u;
  for (int b = 0; b < kBatch; ++b) {
    x.push_back(MakeTensor({kHorizon, kN}, Values(kHorizon * kN, b)));
    u.push_back(MakeTensor({kHorizon, kM}, Values(kHorizon * kM, b)));
  }
  *good.mutable_stacked_solutions()->mutable_x() = Raw(Stack(x));
  *good.mutable_stacked_solutions()->mutable_u() = Raw(Stack(u));
  *good.mutable_stacked_cotangents()->mutable_u() = Raw(Stack(u));
  ASSERT_THAT(ToBackwardProblems(good, RequestLimits{}), IsOk());
  const auto expect = [](const mpcd::v1::BackwardRequest& request, const std::string& field) {
    EXPECT_THAT(ToBackwardProblems(request, RequestLimits{}),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(field)));
  };
  {
    mpcd::v1::BackwardRequest r = good;
    r.add_solutions();
    expect(r, "stacked_solutions: set either solutions or stacked_solutions, not both");
  }
  {
    mpcd::v1::BackwardRequest r = good;
    r.clear_stacked_cotangents();
    expect(r, "cotangents: expected 4 (one per problem), got 0");
  }
  {
    mpcd::v1::BackwardRequest r = good;
    r.mutable_stacked_solutions()->clear_u();
    expect(r, "stacked_solutions.u: required");
  }
  {
    mpcd::v1::BackwardRequest r = good;
    *r.mutable_stacked_solutions()->mutable_x() = Raw(Stack({x[0], x[1]}));
    expect(r, "stacked_solutions.x: expected the batch (4 problems)");
  }
  {
    mpcd::v1::BackwardRequest r = good;
    *r.mutable_stacked_cotangents()->mutable_x() =
        Raw(MakeTensor({kBatch, kHorizon, kN + 1}, Values(kBatch * kHorizon * (kN + 1), 1.0)));
    expect(r, "stacked_cotangents.x: expected shape");
  }
  {
    mpcd::v1::BackwardRequest r = good;
    const double inf = INFINITY;
    r.mutable_stacked_cotangents()->mutable_u()->mutable_raw_data()->replace(
        0, 8, reinterpret_cast<const char*>(&inf), 8);
    expect(r, "stacked_cotangents.u: not finite");
  }
  {
    mpcd::v1::BackwardRequest r = good;
    r.mutable_stacked_solutions()->set_method(static_cast<mpcd::v1::SolverMethod>(99));
    expect(r, "stacked_solutions.method: unknown value 99");
  }
  {
    // Gradients stack only when every input that gets one has the same shape.
    mpcd::v1::BackwardRequest r = good;
    r.mutable_batched()->clear_cost_linear();
    for (int b = 0; b < kBatch; ++b) {
      mpcd::v1::Problem* own = r.add_problems();
      if (b == 2) {
        *own->mutable_cost()->mutable_linear() =
            MakeTensor({kHorizon, kTau}, Values(kHorizon * kTau, 1.0));
      }
    }
    ASSERT_THAT(ToBackwardProblems(r, RequestLimits{}), IsOk());
    r.set_stacked_response(true);
    expect(r, "stacked_response: the gradients of problems[2] do not stack");
  }
}

}  // namespace
}  // namespace mpc
