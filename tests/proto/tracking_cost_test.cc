// Problem.tracking through the request layer and the CPU backend: the solution is that of the
// quadratic cost the tracking cost stands for (its value checked against the tracking sum written
// here), dL/d(goals, weights) against central differences of whole solves, the template, and every
// invalid input named.

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mpcd/v1/mpcd.pb.h"
#include "proto/proto_conversion.h"
#include "tests/testing/conversion_calls.h"
#include "tests/testing/proto_tensors.h"
#include "tests/testing/random_problems.h"
#include "tests/testing/status_matchers.h"

namespace mpc {
namespace {

using ::mpc::testing::DataOf;
using ::mpc::testing::IsOk;
using ::mpc::testing::MakeTensor;
using ::mpc::testing::Stack;
using ::mpc::testing::StatusIs;
using ::mpc::testing::TightOptions;
using ::testing::HasSubstr;

constexpr int kN = 3;
constexpr int kM = 2;
constexpr int kT = 6;

std::vector<double> Random(int size, double lo, double hi, testing::Rng* rng) {
  std::vector<double> values(size);
  for (double& v : values) v = rng->Uniform(lo, hi);
  return values;
}

// Which tracking inputs are given per step (T, k) rather than once (k).
struct Layout {
  bool goals_per_step = false;
  bool weights_per_step = false;
  bool terminal = false;
  bool controls = true;  // u_goal and w_u given (else their defaults)
};

// A random linear problem (kN, kM, kT) whose cost is a random tracking cost of `layout`.
mpcd::v1::Problem TrackingProblem(const Layout& layout, bool bounded, std::uint64_t seed) {
  const Problem p = testing::RandomLqrProblem(
      {.state_dim = kN, .control_dim = kM, .horizon = kT, .bounded = bounded}, seed);
  mpcd::v1::Problem proto;
  *proto.mutable_x_init() = MakeTensor({kN}, p.x_init);
  *proto.mutable_dynamics()->mutable_linear()->mutable_transition() =
      MakeTensor({kN, kN + kM}, p.transition);
  *proto.mutable_dynamics()->mutable_linear()->mutable_offset() = MakeTensor({kN}, p.offset);
  if (bounded) {
    *proto.mutable_u_lower() = MakeTensor({kM}, p.u_lower);
    *proto.mutable_u_upper() = MakeTensor({kM}, p.u_upper);
  }
  testing::Rng rng(seed + 100);
  const auto input = [&](bool per_step, int k, double lo, double hi) {
    return per_step ? MakeTensor({kT, static_cast<std::uint32_t>(k)}, Random(kT * k, lo, hi, &rng))
                    : MakeTensor({static_cast<std::uint32_t>(k)}, Random(k, lo, hi, &rng));
  };
  mpcd::v1::TrackingCost* tracking = proto.mutable_tracking();
  *tracking->mutable_x_goal() = input(layout.goals_per_step, kN, -2, 2);
  *tracking->mutable_w_x() = input(layout.weights_per_step, kN, 0.2, 3);
  if (layout.controls) {
    *tracking->mutable_u_goal() = input(layout.goals_per_step, kM, -0.5, 0.5);
    *tracking->mutable_w_u() = input(layout.weights_per_step, kM, 0.1, 1);
  }
  if (layout.terminal) *tracking->mutable_w_x_terminal() = input(false, kN, 2, 10);
  return proto;
}

using Solved = testing::FirstSolution;

absl::StatusOr<Solved> Solve(const mpcd::v1::SolveRequest& request) {
  return testing::SolveFirstThroughConversion(request);
}

mpcd::v1::SolveRequest OneProblem(const mpcd::v1::Problem& proto) {
  mpcd::v1::SolveRequest request;
  request.set_horizon(kT);
  *request.add_problems() = proto;
  *request.mutable_options() = TightOptions();
  return request;
}

absl::StatusOr<Solved> Solve(const mpcd::v1::Problem& proto) { return Solve(OneProblem(proto)); }

// Entry i of a tracking input at step t, whichever way it was given (absent: `absent`).
double At(const mpcd::v1::Tensor& tensor, int t, int i, double absent) {
  if (tensor.data_size() == 0) return absent;
  return tensor.shape_size() == 2 ? tensor.data(t * tensor.shape(1) + i) : tensor.data(i);
}

// sum_t 0.5 sum_i w_t[i] (tau_t[i] - goal_t[i])^2, written from mpcd.proto's TrackingCost.
double TrackingSum(const mpcd::v1::TrackingCost& tracking, const Solved& solved) {
  double total = 0;
  for (int t = 0; t < kT; ++t) {
    for (int i = 0; i < kN; ++i) {
      const double w = t == kT - 1 && tracking.w_x_terminal().data_size() > 0
                           ? tracking.w_x_terminal().data(i)
                           : At(tracking.w_x(), t, i, 1.0);
      const double d = solved.x[t * kN + i] - At(tracking.x_goal(), t, i, 0.0);
      total += 0.5 * w * d * d;
    }
    for (int j = 0; j < kM; ++j) {
      const double d = solved.u[t * kM + j] - At(tracking.u_goal(), t, j, 0.0);
      total += 0.5 * At(tracking.w_u(), t, j, 1.0) * d * d;
    }
  }
  return total;
}

// 0.5 sum_t sum_i w_t[i] goal_t[i]^2: the constant Solution.cost leaves out.
double TrackingConstant(const mpcd::v1::TrackingCost& tracking) {
  Solved zero;
  zero.x.assign(kT * kN, 0.0);
  zero.u.assign(kT * kM, 0.0);
  return TrackingSum(tracking, zero);
}

const Layout kLayouts[] = {
    {},
    {.goals_per_step = true},
    {.weights_per_step = true},
    {.goals_per_step = true, .weights_per_step = true, .terminal = true},
    {.terminal = true, .controls = false},
};

TEST(TrackingCost, SolutionMinimisesTheTrackingSum) {
  for (const Layout& layout : kLayouts) {
    SCOPED_TRACE(::testing::Message()
                 << "goals per step " << layout.goals_per_step << ", weights per step "
                 << layout.weights_per_step << ", terminal " << layout.terminal);
    const mpcd::v1::Problem proto = TrackingProblem(layout, false, 31);
    MPC_ASSERT_OK_AND_ASSIGN(const Solved solved, Solve(proto));
    EXPECT_EQ(solved.proto.status(), mpcd::v1::CONVERGED);
    const double sum = TrackingSum(proto.tracking(), solved);
    EXPECT_NEAR(solved.cost + TrackingConstant(proto.tracking()), sum, 1e-9 * (1 + sum));
    // Optimality: moving any control (the states following by the dynamics) raises the sum.
    for (int e = 0; e < kT * kM; ++e) {
      for (double step : {-1e-4, 1e-4}) {
        std::vector<double> u = solved.u;
        u[e] += step;
        // The sum along the rollout of u (x_{t+1} = F tau_t + f).
        Solved rolled = solved;
        rolled.u = u;
        const mpcd::v1::LinearDynamics& linear = proto.dynamics().linear();
        for (int t = 0; t + 1 < kT; ++t) {
          for (int i = 0; i < kN; ++i) {
            double next = linear.offset().data(i);
            for (int k = 0; k < kN; ++k) {
              next += linear.transition().data(i * (kN + kM) + k) * rolled.x[t * kN + k];
            }
            for (int j = 0; j < kM; ++j) {
              next += linear.transition().data(i * (kN + kM) + kN + j) * u[t * kM + j];
            }
            rolled.x[(t + 1) * kN + i] = next;
          }
        }
        EXPECT_GT(TrackingSum(proto.tracking(), rolled), sum - 1e-12) << "control " << e;
      }
    }
  }
}

// L = r . tau* of the solution of `proto`.
double Loss(const mpcd::v1::Problem& proto, const std::vector<double>& rx,
            const std::vector<double>& ru) {
  const absl::StatusOr<Solved> solved = Solve(proto);
  EXPECT_THAT(solved.status(), IsOk());
  double total = 0;
  for (std::size_t e = 0; e < rx.size(); ++e) total += rx[e] * solved->x[e];
  for (std::size_t e = 0; e < ru.size(); ++e) total += ru[e] * solved->u[e];
  return total;
}

// Backward's gradient of `proto` (solved and differentiated through the request layer).
mpcd::v1::Problem Gradient(const mpcd::v1::Problem& proto, const std::vector<double>& rx,
                           const std::vector<double>& ru) {
  const absl::StatusOr<Solved> solved = Solve(proto);
  EXPECT_THAT(solved.status(), IsOk());
  mpcd::v1::BackwardRequest request;
  request.set_horizon(kT);
  *request.add_problems() = proto;
  mpcd::v1::Solution* point = request.add_solutions();
  *point->mutable_x() = solved->proto.x();
  *point->mutable_u() = solved->proto.u();
  mpcd::v1::Cotangent* cotangent = request.add_cotangents();
  *cotangent->mutable_x() = MakeTensor({kT, kN}, rx);
  *cotangent->mutable_u() = MakeTensor({kT, kM}, ru);
  const absl::StatusOr<mpcd::v1::BackwardResponse> response =
      testing::BackwardThroughConversion(request);
  EXPECT_THAT(response.status(), IsOk());
  if (!response.ok()) return {};
  EXPECT_EQ(response->diagnostics(0).status(), mpcd::v1::GRADIENT_OK);
  return response->gradients(0);
}

using TrackingField = mpcd::v1::Tensor* (*)(mpcd::v1::TrackingCost*);

void ExpectTrackingGradientsMatchCentralDifferences(const mpcd::v1::Problem& proto) {
  testing::Rng rng(7);
  std::vector<double> rx(kT * kN), ru(kT * kM);
  for (double& v : rx) v = rng.Normal();
  for (double& v : ru) v = rng.Normal();
  const mpcd::v1::Problem grad = Gradient(proto, rx, ru);
  EXPECT_FALSE(grad.has_cost());  // the request gave no cost
  const struct {
    const char* name;
    TrackingField field;
  } fields[] = {
      {"x_goal", [](mpcd::v1::TrackingCost* c) { return c->mutable_x_goal(); }},
      {"u_goal", [](mpcd::v1::TrackingCost* c) { return c->mutable_u_goal(); }},
      {"w_x", [](mpcd::v1::TrackingCost* c) { return c->mutable_w_x(); }},
      {"w_u", [](mpcd::v1::TrackingCost* c) { return c->mutable_w_u(); }},
      {"w_x_terminal", [](mpcd::v1::TrackingCost* c) { return c->mutable_w_x_terminal(); }},
  };
  constexpr double kEps = 1e-5;
  for (const auto& [name, field] : fields) {
    SCOPED_TRACE(name);
    mpcd::v1::Problem gradient_copy = grad;
    const mpcd::v1::Tensor& analytic = *field(gradient_copy.mutable_tracking());
    mpcd::v1::Problem probe = proto;
    const mpcd::v1::Tensor& given = *field(probe.mutable_tracking());
    if (given.data_size() == 0) {
      // Absent: the gradient is that of its default, shaped (k); only w_x_terminal has none.
      if (std::string(name) == "w_x_terminal") {
        EXPECT_EQ(analytic.data_size(), 0);
        continue;
      }
      const int k = std::string(name).find("_x") != std::string::npos ? kN : kM;
      ASSERT_EQ(analytic.data_size(), k);
      const std::vector<double> defaults(k, std::string(name).rfind("w_", 0) == 0 ? 1.0 : 0.0);
      *field(probe.mutable_tracking()) = MakeTensor({static_cast<std::uint32_t>(k)}, defaults);
    }
    ASSERT_EQ(std::vector<std::uint32_t>(analytic.shape().begin(), analytic.shape().end()),
              std::vector<std::uint32_t>(field(probe.mutable_tracking())->shape().begin(),
                                         field(probe.mutable_tracking())->shape().end()));
    for (int e = 0; e < analytic.data_size(); ++e) {
      mpcd::v1::Problem plus = probe, minus = probe;
      mpcd::v1::Tensor* p = field(plus.mutable_tracking());
      mpcd::v1::Tensor* m = field(minus.mutable_tracking());
      p->set_data(e, p->data(e) + kEps);
      m->set_data(e, m->data(e) - kEps);
      const double numeric = (Loss(plus, rx, ru) - Loss(minus, rx, ru)) / (2 * kEps);
      EXPECT_NEAR(analytic.data(e), numeric, 1e-6 * (1 + std::abs(numeric))) << "entry " << e;
    }
  }
}

TEST(TrackingCost, GradientsMatchCentralDifferences) {
  for (const Layout& layout : kLayouts) {
    SCOPED_TRACE(::testing::Message()
                 << "goals per step " << layout.goals_per_step << ", weights per step "
                 << layout.weights_per_step << ", terminal " << layout.terminal << ", controls "
                 << layout.controls);
    ExpectTrackingGradientsMatchCentralDifferences(TrackingProblem(layout, false, 41));
  }
}

TEST(TrackingCost, GradientsWithActiveBoundsMatchCentralDifferences) {
  const mpcd::v1::Problem proto =
      TrackingProblem({.goals_per_step = true, .weights_per_step = true}, true, 43);
  MPC_ASSERT_OK_AND_ASSIGN(const Solved solved, Solve(proto));
  int active = 0;
  for (int e = 0; e < kT * kM; ++e) {
    const double u = solved.u[e];
    if (std::abs(u - proto.u_lower().data(e % kM)) < 1e-9 ||
        std::abs(u - proto.u_upper().data(e % kM)) < 1e-9) {
      ++active;
    }
  }
  EXPECT_GT(active, 0);
  ExpectTrackingGradientsMatchCentralDifferences(proto);
}

// The problem with its tracking cost written out as C (T, n+m, n+m), c (T, n+m), from the
// definition (TrackingSum's weights and goals).
mpcd::v1::Problem WithQuadraticCost(const mpcd::v1::Problem& proto) {
  const mpcd::v1::TrackingCost& tracking = proto.tracking();
  constexpr int nt = kN + kM;
  std::vector<double> C(kT * nt * nt, 0.0), c(kT * nt, 0.0);
  for (int t = 0; t < kT; ++t) {
    for (int j = 0; j < nt; ++j) {
      const bool state = j < kN;
      const int i = state ? j : j - kN;
      double w = state ? At(tracking.w_x(), t, i, 1.0) : At(tracking.w_u(), t, i, 1.0);
      if (state && t == kT - 1 && tracking.w_x_terminal().data_size() > 0) {
        w = tracking.w_x_terminal().data(i);
      }
      const double goal =
          state ? At(tracking.x_goal(), t, i, 0.0) : At(tracking.u_goal(), t, i, 0.0);
      C[(t * nt + j) * nt + j] = w;
      c[t * nt + j] = -w * goal;
    }
  }
  mpcd::v1::Problem out = proto;
  out.clear_tracking();
  *out.mutable_cost()->mutable_quadratic() = MakeTensor({kT, nt, nt}, C);
  *out.mutable_cost()->mutable_linear() = MakeTensor({kT, nt}, c);
  return out;
}

TEST(TrackingCost, WithASlewRatePenaltyItIsTheQuadraticCostWithIt) {
  mpcd::v1::Problem proto = TrackingProblem({.goals_per_step = true, .terminal = true}, false, 45);
  proto.set_slew_rate_penalty(0.5);
  *proto.mutable_prev_ctrl() = MakeTensor({kM}, {0.2, -0.1});
  MPC_ASSERT_OK_AND_ASSIGN(const Solved tracked, Solve(proto));
  MPC_ASSERT_OK_AND_ASSIGN(const Solved quadratic, Solve(WithQuadraticCost(proto)));
  ASSERT_EQ(tracked.u.size(), quadratic.u.size());
  for (std::size_t e = 0; e < tracked.u.size(); ++e) {
    EXPECT_NEAR(tracked.u[e], quadratic.u[e], 1e-12) << "u entry " << e;
  }
  ExpectTrackingGradientsMatchCentralDifferences(proto);
}

TEST(TrackingCost, ATemplatesTrackingCostIsEveryProblemsCost) {
  const mpcd::v1::Problem proto = TrackingProblem({.goals_per_step = true}, false, 51);
  mpcd::v1::SolveRequest request = OneProblem(proto);
  *request.mutable_problem_template()->mutable_tracking() = proto.tracking();
  request.mutable_problems(0)->clear_tracking();
  MPC_ASSERT_OK_AND_ASSIGN(const Solved from_template, Solve(request));
  MPC_ASSERT_OK_AND_ASSIGN(const Solved own, Solve(proto));
  EXPECT_EQ(from_template.u, own.u);
  EXPECT_EQ(from_template.cost, own.cost);
}

TEST(TrackingCost, ABrokenTemplateTrackingTensorIsNamedAsTheTemplates) {
  const mpcd::v1::Problem proto = TrackingProblem({}, false, 52);
  mpcd::v1::SolveRequest request = OneProblem(proto);
  *request.mutable_problem_template()->mutable_tracking() = proto.tracking();
  request.mutable_problems(0)->clear_tracking();
  request.mutable_problem_template()->mutable_tracking()->mutable_w_x()->set_data(
      0, std::numeric_limits<double>::infinity());
  EXPECT_THAT(
      ToProblems(request, RequestLimits{}).status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("problem_template.tracking.w_x")));
}

absl::Status SolveError(const mpcd::v1::Problem& proto) {
  return ToProblems(OneProblem(proto), RequestLimits{}).status();
}

TEST(TrackingCost, RefusesBadInputNamingTheField) {
  const mpcd::v1::Problem good = TrackingProblem({}, false, 61);
  ASSERT_THAT(SolveError(good), IsOk());
  struct Case {
    const char* what;
    void (*edit)(mpcd::v1::Problem*);
    const char* message;
  };
  const Case cases[] = {
      {"with a cost",
       [](mpcd::v1::Problem* p) {
         *p->mutable_cost()->mutable_linear() = MakeTensor({kN + kM}, std::vector<double>(5, 0));
       },
       "problems[0].tracking: give either tracking or cost"},
      {"no goal", [](mpcd::v1::Problem* p) { p->mutable_tracking()->clear_x_goal(); },
       "problems[0].tracking.x_goal: required"},
      {"goal of the wrong shape",
       [](mpcd::v1::Problem* p) {
         *p->mutable_tracking()->mutable_x_goal() = MakeTensor({kN + 1}, {0, 0, 0, 0});
       },
       "problems[0].tracking.x_goal: expected shape (3) or (6,3), got (4)"},
      {"control weights of the wrong length",
       [](mpcd::v1::Problem* p) {
         *p->mutable_tracking()->mutable_w_u() = MakeTensor({kT, kN}, std::vector<double>(18, 1));
       },
       "problems[0].tracking.w_u: expected shape (2) or (6,2), got (6,3)"},
      {"NaN goal",
       [](mpcd::v1::Problem* p) {
         p->mutable_tracking()->mutable_u_goal()->set_data(
             1, std::numeric_limits<double>::quiet_NaN());
       },
       "problems[0].tracking.u_goal"},
      {"negative weight",
       [](mpcd::v1::Problem* p) { p->mutable_tracking()->mutable_w_x()->set_data(2, -0.5); },
       "problems[0].tracking.w_x: weights must be >= 0, got -0.5 at [2]"},
      {"negative terminal weight",
       [](mpcd::v1::Problem* p) {
         *p->mutable_tracking()->mutable_w_x_terminal() = MakeTensor({kN}, {1, -2, 1});
       },
       "problems[0].tracking.w_x_terminal: weights must be >= 0, got -2 at [1]"},
      {"terminal weights per step",
       [](mpcd::v1::Problem* p) {
         *p->mutable_tracking()->mutable_w_x_terminal() =
             MakeTensor({kT, kN}, std::vector<double>(18, 1));
       },
       "problems[0].tracking.w_x_terminal: expected shape (3), got (6,3)"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    mpcd::v1::Problem bad = good;
    c.edit(&bad);
    EXPECT_THAT(SolveError(bad),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)));
  }
}

// A Backward request of `protos` at their solutions with cotangents of all ones.
mpcd::v1::BackwardRequest BackwardOf(const std::vector<mpcd::v1::Problem>& protos) {
  mpcd::v1::BackwardRequest request;
  request.set_horizon(kT);
  for (const mpcd::v1::Problem& proto : protos) {
    absl::StatusOr<Solved> solved = Solve(proto);
    EXPECT_THAT(solved.status(), IsOk());
    if (!solved.ok()) return request;
    *request.add_problems() = proto;
    mpcd::v1::Solution* point = request.add_solutions();
    *point->mutable_x() = solved->proto.x();
    *point->mutable_u() = solved->proto.u();
    mpcd::v1::Cotangent* cotangent = request.add_cotangents();
    *cotangent->mutable_x() = MakeTensor({kT, kN}, std::vector<double>(kT * kN, 1.0));
    *cotangent->mutable_u() = MakeTensor({kT, kM}, std::vector<double>(kT * kM, 1.0));
  }
  return request;
}

// Stacked, each problem's dL/d(tracking inputs) is its slice b of one (B, <shape>) tensor per
// input, bitwise the per-problem answer, in every layout (an absent goal or weight as its
// default's shape, w_x_terminal only when given); no cost gradient beside it.
TEST(TrackingCost, StackedGradientsAreEachProblemsGradientsSideBySide) {
  for (const Layout& layout : kLayouts) {
    SCOPED_TRACE(::testing::Message()
                 << "goals per step " << layout.goals_per_step << ", weights per step "
                 << layout.weights_per_step << ", terminal " << layout.terminal);
    std::vector<mpcd::v1::Problem> protos;
    for (std::uint64_t seed = 71; seed < 74; ++seed) {
      protos.push_back(TrackingProblem(layout, true, seed));
    }
    mpcd::v1::BackwardRequest request = BackwardOf(protos);
    MPC_ASSERT_OK_AND_ASSIGN(const mpcd::v1::BackwardResponse each,
                             testing::BackwardThroughConversion(request));
    request.set_stacked_response(true);
    MPC_ASSERT_OK_AND_ASSIGN(const mpcd::v1::BackwardResponse stacked,
                             testing::BackwardThroughConversion(request));
    const mpcd::v1::BatchedProblems& g = stacked.stacked_gradients();
    EXPECT_FALSE(g.has_cost_quadratic());
    EXPECT_FALSE(g.has_cost_linear());
    ASSERT_TRUE(g.has_tracking());
    const auto tensors = [](const mpcd::v1::TrackingCost& t) {
      return std::vector<const mpcd::v1::Tensor*>{&t.x_goal(), &t.u_goal(), &t.w_x(), &t.w_u(),
                                                  &t.w_x_terminal()};
    };
    const std::vector<const mpcd::v1::Tensor*> together = tensors(g.tracking());
    for (std::size_t k = 0; k < together.size(); ++k) {
      SCOPED_TRACE(::testing::Message() << "tracking input " << k);
      const mpcd::v1::Tensor& first = *tensors(each.gradients(0).tracking())[k];
      if (first.data_size() == 0) {  // w_x_terminal not given
        EXPECT_EQ(together[k]->shape_size(), 0);
        continue;
      }
      std::vector<std::uint32_t> shape = {static_cast<std::uint32_t>(protos.size())};
      shape.insert(shape.end(), first.shape().begin(), first.shape().end());
      EXPECT_EQ(
          std::vector<std::uint32_t>(together[k]->shape().begin(), together[k]->shape().end()),
          shape);
      const std::vector<double> values = DataOf(*together[k]);
      const std::size_t slice = first.data_size();
      ASSERT_EQ(values.size(), protos.size() * slice);
      for (std::size_t b = 0; b < protos.size(); ++b) {
        const std::vector<double> own = DataOf(*tensors(each.gradients(b).tracking())[k]);
        EXPECT_EQ(std::vector<double>(values.begin() + b * slice, values.begin() + (b + 1) * slice),
                  own)
            << "problem " << b;
      }
    }
  }
}

// batched.tracking: each problem's goals from its slices, the weights the batch leaves out from
// the template's tracking, solved and differentiated bitwise as the written-out problems.
TEST(TrackingCost, BatchedTrackingInputsAreSlicesOverTheTemplate) {
  const Layout layout = {.goals_per_step = true, .terminal = true};
  std::vector<mpcd::v1::Problem> own;
  for (std::uint64_t seed = 81; seed < 84; ++seed)
    own.push_back(TrackingProblem(layout, true, seed));
  mpcd::v1::SolveRequest batched;
  batched.set_horizon(kT);
  *batched.mutable_options() = TightOptions();
  mpcd::v1::Problem* shared = batched.mutable_problem_template();
  *shared = own[0];
  shared->clear_x_init();
  shared->mutable_tracking()->clear_x_goal();
  shared->mutable_tracking()->clear_u_goal();
  std::vector<mpcd::v1::Tensor> x_init, x_goal, u_goal;
  for (mpcd::v1::Problem& p : own) {
    // The template's weights and dynamics, the problem's own start and goals.
    mpcd::v1::TrackingCost tracking = shared->tracking();
    *tracking.mutable_x_goal() = p.tracking().x_goal();
    *tracking.mutable_u_goal() = p.tracking().u_goal();
    const mpcd::v1::Tensor start = p.x_init();
    p = *shared;
    *p.mutable_x_init() = start;
    *p.mutable_tracking() = tracking;
    x_init.push_back(start);
    x_goal.push_back(tracking.x_goal());
    u_goal.push_back(tracking.u_goal());
  }
  batched.mutable_batched()->set_count(static_cast<std::uint32_t>(own.size()));
  *batched.mutable_batched()->mutable_x_init() = Stack(x_init);
  *batched.mutable_batched()->mutable_tracking()->mutable_x_goal() = Stack(x_goal);
  *batched.mutable_batched()->mutable_tracking()->mutable_u_goal() = Stack(u_goal);
  MPC_ASSERT_OK_AND_ASSIGN(const mpcd::v1::SolveResponse together,
                           testing::SolveThroughConversion(batched));
  ASSERT_EQ(together.solutions_size(), static_cast<int>(own.size()));
  for (std::size_t b = 0; b < own.size(); ++b) {
    MPC_ASSERT_OK_AND_ASSIGN(const Solved alone, Solve(own[b]));
    EXPECT_EQ(DataOf(together.solutions(b).u()), alone.u) << "problem " << b;
    EXPECT_EQ(together.solutions(b).cost(), alone.cost) << "problem " << b;
  }
  // A stacked tensor whose B is not batched.count is named.
  mpcd::v1::SolveRequest bad = batched;
  *bad.mutable_batched()->mutable_tracking()->mutable_x_goal() = Stack({x_goal[0], x_goal[1]});
  EXPECT_THAT(ToProblems(bad, RequestLimits{}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("batched.tracking.x_goal")));
}

TEST(TrackingCost, StackingTrackingCostsOfOtherLayoutsIsRefusedNamingTheProblem) {
  mpcd::v1::BackwardRequest request =
      BackwardOf({TrackingProblem({}, false, 75), TrackingProblem({.terminal = true}, false, 76)});
  request.set_stacked_response(true);
  EXPECT_THAT(ToBackwardProblems(request, RequestLimits{}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("stacked_response: the gradients of problems[1]")));
}

}  // namespace
}  // namespace mpc
