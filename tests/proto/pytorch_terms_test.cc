// mpc.pytorch's slew_rate_penalty (with prev_ctrl), u_zero_I (Problem.u_zero_mask) and delta_u
// (SolverOptions.delta_u) through the request layer and the CPU backend: solutions against a dense
// condensed QP written here (no code shared with the augmentation of solver/pytorch_terms.h),
// gradients against central differences of whole solves, the trust region's step bound, and every
// invalid input named.

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "Eigen/Dense"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mpcd/v1/mpcd.pb.h"
#include "proto/proto_conversion.h"
#include "solver/cpu/cpu_backend.h"
#include "tests/testing/conversion_calls.h"
#include "tests/testing/dense_kkt.h"
#include "tests/testing/proto_tensors.h"
#include "tests/testing/random_problems.h"
#include "tests/testing/status_matchers.h"

namespace mpc {
namespace {

using ::mpc::testing::DataOf;
using ::mpc::testing::IsOk;
using ::mpc::testing::MakeTensor;
using ::mpc::testing::StatusIs;
using ::mpc::testing::TightOptions;
using ::testing::HasSubstr;

constexpr int kN = 3;
constexpr int kM = 2;
constexpr int kT = 6;

// A random linear problem (kN, kM, kT; time-varying or not) and the same problem as a proto.
struct TestProblem {
  Problem problem;
  mpcd::v1::Problem proto;
};

TestProblem LinearProblem(bool time_varying, bool bounded, std::uint64_t seed) {
  TestProblem out;
  out.problem = testing::RandomLqrProblem({.state_dim = kN,
                                           .control_dim = kM,
                                           .horizon = kT,
                                           .time_varying = time_varying,
                                           .bounded = bounded},
                                          seed);
  const Problem& p = out.problem;
  const std::uint32_t nt = kN + kM;
  mpcd::v1::Problem& proto = out.proto;
  *proto.mutable_x_init() = MakeTensor({kN}, p.x_init);
  *proto.mutable_cost()->mutable_quadratic() = time_varying
                                                   ? MakeTensor({kT, nt, nt}, p.cost_quadratic)
                                                   : MakeTensor({nt, nt}, p.cost_quadratic);
  *proto.mutable_cost()->mutable_linear() =
      time_varying ? MakeTensor({kT, nt}, p.cost_linear) : MakeTensor({nt}, p.cost_linear);
  mpcd::v1::LinearDynamics* linear = proto.mutable_dynamics()->mutable_linear();
  *linear->mutable_transition() = time_varying ? MakeTensor({kT - 1, kN, nt}, p.transition)
                                               : MakeTensor({kN, nt}, p.transition);
  *linear->mutable_offset() =
      time_varying ? MakeTensor({kT - 1, kN}, p.offset) : MakeTensor({kN}, p.offset);
  if (bounded) {
    const bool varying_bounds = static_cast<int>(p.u_lower.size()) != kM;
    const std::vector<std::uint32_t> shape =
        varying_bounds ? std::vector<std::uint32_t>{kT, kM} : std::vector<std::uint32_t>{kM};
    *proto.mutable_u_lower() = MakeTensor(shape, p.u_lower);
    *proto.mutable_u_upper() = MakeTensor(shape, p.u_upper);
  }
  return out;
}

using Solved = testing::FirstSolution;

absl::StatusOr<Solved> Solve(const mpcd::v1::Problem& proto,
                             const mpcd::v1::SolverOptions& options = {}) {
  mpcd::v1::SolveRequest request;
  request.set_horizon(kT);
  *request.add_problems() = proto;
  *request.mutable_options() = options;
  return testing::SolveFirstThroughConversion(request);
}

// The condensed QP over U = (u_0..u_{T-1}) of a linear problem with the slew-rate term
// 0.5 gamma sum_t ||u_t - u_{t-1}||^2 (u_{-1} = prev) and the controls where mask != 0 fixed at
// zero: x_t = a_t + X_t U, then H U = -g on the free controls. Returns U (T, m).
std::vector<double> CondensedQpControls(const Problem& p, double gamma,
                                        const std::vector<double>& prev,
                                        const std::vector<double>& mask) {
  const int n = kN, m = kM, T = kT, nt = kN + kM, dim = kT * kM;
  Eigen::MatrixXd H = Eigen::MatrixXd::Zero(dim, dim);
  Eigen::VectorXd g = Eigen::VectorXd::Zero(dim);
  Eigen::MatrixXd X = Eigen::MatrixXd::Zero(n, dim);
  Eigen::VectorXd a = Eigen::Map<const Eigen::VectorXd>(p.x_init.data(), n);
  for (int t = 0; t < T; ++t) {
    Eigen::MatrixXd E = Eigen::MatrixXd::Zero(m, dim);
    E.block(0, t * m, m, m).setIdentity();
    Eigen::MatrixXd M(nt, dim);
    M << X, E;
    Eigen::VectorXd d = Eigen::VectorXd::Zero(nt);
    d.head(n) = a;
    const Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>
        C(testing::SliceAt(p.cost_quadratic, t, nt * nt), nt, nt);
    const Eigen::Map<const Eigen::VectorXd> c(testing::SliceAt(p.cost_linear, t, nt), nt);
    const Eigen::MatrixXd Cs = 0.5 * (C + C.transpose());
    H += M.transpose() * Cs * M;
    g += M.transpose() * (Cs * d + c);
    Eigen::MatrixXd D = E;
    if (t > 0) D.block(0, (t - 1) * m, m, m) -= Eigen::MatrixXd::Identity(m, m);
    H += gamma * D.transpose() * D;
    if (t == 0 && !prev.empty()) {
      g -= gamma * E.transpose() * Eigen::Map<const Eigen::VectorXd>(prev.data(), m);
    }
    if (t + 1 < T) {
      const Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>
          F(testing::SliceAt(p.transition, t, n * nt), n, nt);
      Eigen::VectorXd next = F.leftCols(n) * a;
      if (!p.offset.empty())
        next += Eigen::Map<const Eigen::VectorXd>(testing::SliceAt(p.offset, t, n), n);
      X = F.leftCols(n) * X + F.rightCols(m) * E;
      a = next;
    }
  }
  std::vector<int> free;
  for (int e = 0; e < dim; ++e) {
    if (mask.empty() || mask[e] == 0.0) free.push_back(e);
  }
  Eigen::MatrixXd Hf(free.size(), free.size());
  Eigen::VectorXd gf(free.size());
  for (std::size_t i = 0; i < free.size(); ++i) {
    gf[i] = g[free[i]];
    for (std::size_t j = 0; j < free.size(); ++j) Hf(i, j) = H(free[i], free[j]);
  }
  const Eigen::VectorXd Uf = Hf.ldlt().solve(-gf);
  std::vector<double> U(dim, 0.0);
  for (std::size_t i = 0; i < free.size(); ++i) U[free[i]] = Uf[i];
  return U;
}

double SlewCost(double gamma, const std::vector<double>& prev, const std::vector<double>& u) {
  double total = 0;
  for (int t = 0; t < kT; ++t) {
    for (int j = 0; j < kM; ++j) {
      const double before = t == 0 ? (prev.empty() ? 0.0 : prev[j]) : u[(t - 1) * kM + j];
      const double d = u[t * kM + j] - before;
      total += 0.5 * gamma * d * d;
    }
  }
  return total;
}

double MaxAbsDiff(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    worst = std::max(worst, std::abs(a[i] - b[i]));
  }
  return worst;
}

TEST(SlewRate, SolutionIsTheCondensedQpOptimum) {
  const std::vector<double> prev = {0.3, -0.8};
  for (bool time_varying : {false, true}) {
    SCOPED_TRACE(time_varying ? "time-varying" : "time-invariant");
    TestProblem tp = LinearProblem(time_varying, false, 11);
    tp.proto.set_slew_rate_penalty(0.7);
    *tp.proto.mutable_prev_ctrl() = MakeTensor({kM}, prev);
    MPC_ASSERT_OK_AND_ASSIGN(const Solved solved, Solve(tp.proto, TightOptions()));
    EXPECT_EQ(solved.status, mpcd::v1::CONVERGED);
    ASSERT_EQ(solved.x.size(), static_cast<std::size_t>(kT * kN));  // the caller's state
    const std::vector<double> u = CondensedQpControls(tp.problem, 0.7, prev, {});
    EXPECT_LT(MaxAbsDiff(solved.u, u), 1e-9);
    EXPECT_LT(MaxAbsDiff(solved.x, testing::Rollout(tp.problem, u)), 1e-9);
    // Solution.cost includes the slew term, as mpc.pytorch's returned costs do.
    const double expected =
        testing::ProblemCost(tp.problem, solved.x, solved.u) + SlewCost(0.7, prev, solved.u);
    EXPECT_NEAR(solved.cost, expected, 1e-9 * (1 + std::abs(expected)));
  }
}

TEST(SlewRate, GainsHaveTheCallersStateDimension) {
  TestProblem tp = LinearProblem(false, true, 12);
  tp.proto.set_slew_rate_penalty(1.0);
  mpcd::v1::SolveRequest request;
  request.set_horizon(kT);
  *request.add_problems() = tp.proto;
  request.set_return_gains(true);
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> problems, ToProblems(request, RequestLimits{}));
  EXPECT_EQ(problems[0].shape.state_dim, kN + kM);  // solved with u_{t-1} in the state
  MPC_ASSERT_OK_AND_ASSIGN(auto backend, CpuBackend::Create({1}));
  std::vector<Solution> solutions(1);
  const Problem* problem_ptrs[] = {&problems[0]};
  Solution* solution_ptrs[] = {&solutions[0]};
  ASSERT_THAT(backend->SolveBatch(problem_ptrs, solution_ptrs), IsOk());
  mpcd::v1::SolveResponse response;
  ToSolveResponse(solutions, problems, &response);
  const mpcd::v1::Solution& out = response.solutions(0);
  EXPECT_THAT(std::vector<std::uint32_t>(out.x().shape().begin(), out.x().shape().end()),
              ::testing::ElementsAre(kT, kN));
  EXPECT_THAT(
      std::vector<std::uint32_t>(out.feedback().shape().begin(), out.feedback().shape().end()),
      ::testing::ElementsAre(kT, kM, kN));
  // K's x block of the augmented gains.
  for (int t = 0; t < kT; ++t) {
    for (int j = 0; j < kM; ++j) {
      for (int i = 0; i < kN; ++i) {
        EXPECT_EQ(out.feedback().data((t * kM + j) * kN + i),
                  solutions[0].feedback[(t * kM + j) * (kN + kM) + kM + i]);
      }
    }
  }
}

// L = sum r . tau of the solution of `proto`.
double Loss(const mpcd::v1::Problem& proto, const std::vector<double>& rx,
            const std::vector<double>& ru) {
  const absl::StatusOr<Solved> solved = Solve(proto, TightOptions());
  EXPECT_THAT(solved.status(), IsOk());
  double total = 0;
  for (std::size_t e = 0; e < rx.size(); ++e) total += rx[e] * solved->x[e];
  for (std::size_t e = 0; e < ru.size(); ++e) total += ru[e] * solved->u[e];
  return total;
}

// Checks every gradient the Backward RPC's conversion returns for `proto` against central
// differences of whole solves: x_init, c, f entry by entry, C on symmetric pairs, F entry by entry.
void ExpectGradientsMatchCentralDifferences(const mpcd::v1::Problem& proto) {
  absl::StatusOr<Solved> solved = Solve(proto, TightOptions());
  ASSERT_THAT(solved.status(), IsOk());
  testing::Rng rng(5);
  std::vector<double> rx(kT * kN), ru(kT * kM);
  for (double& v : rx) v = rng.Normal();
  for (double& v : ru) v = rng.Normal();

  mpcd::v1::BackwardRequest request;
  request.set_horizon(kT);
  *request.add_problems() = proto;
  mpcd::v1::Solution* point = request.add_solutions();
  *point->mutable_x() = solved->proto.x();
  *point->mutable_u() = solved->proto.u();
  mpcd::v1::Cotangent* cotangent = request.add_cotangents();
  *cotangent->mutable_x() = MakeTensor({kT, kN}, rx);
  *cotangent->mutable_u() = MakeTensor({kT, kM}, ru);
  MPC_ASSERT_OK_AND_ASSIGN(const mpcd::v1::BackwardResponse response,
                           testing::BackwardThroughConversion(request));
  const mpcd::v1::Problem& grad = response.gradients(0);
  EXPECT_EQ(response.diagnostics(0).status(), mpcd::v1::GRADIENT_OK);

  constexpr double kEps = 1e-5;
  struct Field {
    const char* name;
    mpcd::v1::Tensor* (*input)(mpcd::v1::Problem*);
    const mpcd::v1::Tensor& (*gradient)(const mpcd::v1::Problem&);
  };
  const Field fields[] = {
      {"x_init", [](mpcd::v1::Problem* p) { return p->mutable_x_init(); },
       [](const mpcd::v1::Problem& p) -> const mpcd::v1::Tensor& { return p.x_init(); }},
      {"cost.linear", [](mpcd::v1::Problem* p) { return p->mutable_cost()->mutable_linear(); },
       [](const mpcd::v1::Problem& p) -> const mpcd::v1::Tensor& { return p.cost().linear(); }},
      {"offset",
       [](mpcd::v1::Problem* p) {
         return p->mutable_dynamics()->mutable_linear()->mutable_offset();
       },
       [](const mpcd::v1::Problem& p) -> const mpcd::v1::Tensor& {
         return p.dynamics().linear().offset();
       }},
      {"transition",
       [](mpcd::v1::Problem* p) {
         return p->mutable_dynamics()->mutable_linear()->mutable_transition();
       },
       [](const mpcd::v1::Problem& p) -> const mpcd::v1::Tensor& {
         return p.dynamics().linear().transition();
       }},
  };
  for (const Field& field : fields) {
    SCOPED_TRACE(field.name);
    const std::vector<double> analytic = DataOf(field.gradient(grad));
    mpcd::v1::Problem probe = proto;
    ASSERT_EQ(analytic.size(), static_cast<std::size_t>(field.input(&probe)->data_size()));
    for (std::size_t e = 0; e < analytic.size(); ++e) {
      mpcd::v1::Problem plus = proto, minus = proto;
      field.input(&plus)->set_data(e, field.input(&plus)->data(e) + kEps);
      field.input(&minus)->set_data(e, field.input(&minus)->data(e) - kEps);
      const double numeric = (Loss(plus, rx, ru) - Loss(minus, rx, ru)) / (2 * kEps);
      EXPECT_NEAR(analytic[e], numeric, 1e-6 * (1 + std::abs(numeric))) << "entry " << e;
    }
  }
  // C enters through its symmetric part: perturb (i, j) and (j, i) together.
  const std::vector<double> analytic = DataOf(grad.cost().quadratic());
  const int nt = kN + kM;
  const int slices = static_cast<int>(analytic.size()) / (nt * nt);
  for (int s = 0; s < slices; ++s) {
    for (int i = 0; i < nt; ++i) {
      for (int j = i; j < nt; ++j) {
        const int ij = (s * nt + i) * nt + j, ji = (s * nt + j) * nt + i;
        mpcd::v1::Problem plus = proto, minus = proto;
        for (mpcd::v1::Problem* p : {&plus, &minus}) {
          mpcd::v1::Tensor* C = p->mutable_cost()->mutable_quadratic();
          const double step = p == &plus ? kEps : -kEps;
          C->set_data(ij, C->data(ij) + step);
          if (ji != ij) C->set_data(ji, C->data(ji) + step);
        }
        const double numeric = (Loss(plus, rx, ru) - Loss(minus, rx, ru)) / (2 * kEps);
        const double sum = analytic[ij] + (ji != ij ? analytic[ji] : 0.0);
        EXPECT_NEAR(sum, numeric, 1e-6 * (1 + std::abs(numeric)))
            << "C[" << s << "," << i << "," << j << "]";
      }
    }
  }
}

TEST(SlewRate, GradientsMatchCentralDifferences) {
  for (bool time_varying : {false, true}) {
    SCOPED_TRACE(time_varying ? "time-varying" : "time-invariant");
    TestProblem tp = LinearProblem(time_varying, false, 13);
    tp.proto.set_slew_rate_penalty(0.5);
    *tp.proto.mutable_prev_ctrl() = MakeTensor({kM}, {0.2, 0.1});
    ExpectGradientsMatchCentralDifferences(tp.proto);
  }
}

TEST(SlewRate, GradientsWithActiveBoundsMatchCentralDifferences) {
  TestProblem tp = LinearProblem(false, true, 14);
  tp.proto.set_slew_rate_penalty(0.5);
  MPC_ASSERT_OK_AND_ASSIGN(const Solved solved, Solve(tp.proto, TightOptions()));
  int active = 0;
  for (int e = 0; e < kT * kM; ++e) {
    const int j = e % kM;
    if (std::abs(solved.u[e] - tp.problem.u_lower[j]) < 1e-9 ||
        std::abs(solved.u[e] - tp.problem.u_upper[j]) < 1e-9) {
      ++active;
    }
  }
  EXPECT_GT(active, 0);
  ExpectGradientsMatchCentralDifferences(tp.proto);
}

std::vector<double> Mask() {
  std::vector<double> mask(kT * kM, 0.0);
  mask[0 * kM + 1] = 1;
  mask[2 * kM + 0] = 1;
  mask[5 * kM + 1] = 1;
  return mask;
}

TEST(ZeroMask, PinsTheControlsAtZeroAndOptimisesTheRest) {
  TestProblem tp = LinearProblem(true, false, 21);
  *tp.proto.mutable_u_zero_mask() = MakeTensor({kT, kM}, Mask());
  MPC_ASSERT_OK_AND_ASSIGN(const Solved solved, Solve(tp.proto, TightOptions()));
  EXPECT_EQ(solved.status, mpcd::v1::CONVERGED);
  const std::vector<double> u = CondensedQpControls(tp.problem, 0.0, {}, Mask());
  EXPECT_LT(MaxAbsDiff(solved.u, u), 1e-9);
  for (int e = 0; e < kT * kM; ++e) {
    if (Mask()[e] != 0) {
      EXPECT_EQ(solved.u[e], 0.0);
    }
  }
}

TEST(ZeroMask, GradientsTreatPinnedControlsAsFixed) {
  TestProblem tp = LinearProblem(false, false, 22);
  *tp.proto.mutable_u_zero_mask() = MakeTensor({kT, kM}, Mask());
  ExpectGradientsMatchCentralDifferences(tp.proto);
}

TEST(ZeroMask, AMaskedControlOutsideItsBoundsIsClampedIntoThem) {
  TestProblem tp = LinearProblem(false, true, 23);
  *tp.proto.mutable_u_lower() = MakeTensor({kM}, {0.5, -1.0});
  *tp.proto.mutable_u_upper() = MakeTensor({kM}, {2.0, 1.0});
  std::vector<double> mask(kT * kM, 0.0);
  mask[0] = 1;  // u_0[0]: 0 clamped into [0.5, 2] is 0.5 (mpc.pytorch's forward pass)
  *tp.proto.mutable_u_zero_mask() = MakeTensor({kT, kM}, mask);
  MPC_ASSERT_OK_AND_ASSIGN(const Solved solved, Solve(tp.proto, TightOptions()));
  EXPECT_EQ(solved.u[0], 0.5);
}

// mpc.pytorch's test_lqr_linear_bounded_delta: n = 3, m = 4, T = 5, small B, one iteration with
// delta_u = 0.1 from u = 0 keeps every |u| <= 0.1.
TEST(DeltaU, OneIterationMovesEveryControlAtMostDeltaU) {
  for (bool bounded : {true, false}) {
    SCOPED_TRACE(bounded ? "bounded" : "unbounded");
    Problem p = testing::RandomLqrProblem(
        {.state_dim = 3, .control_dim = 4, .horizon = 5, .time_varying = true, .bounded = bounded},
        31);
    for (std::size_t e = 0; e < p.transition.size(); ++e) {
      if (e % 7 >= 3) p.transition[e] *= 0.01;  // S = 0.01 randn: the step wants large controls
    }
    p.options.max_iterations = 1;
    p.options.delta_u = 0.1;
    MPC_ASSERT_OK_AND_ASSIGN(auto backend, CpuBackend::Create({1}));
    Solution limited, free;
    const Problem* problem_ptrs[] = {&p};
    Solution* solution_ptrs[] = {&limited};
    ASSERT_THAT(backend->SolveBatch(problem_ptrs, solution_ptrs), IsOk());
    p.options.delta_u = 0;
    solution_ptrs[0] = &free;
    ASSERT_THAT(backend->SolveBatch(problem_ptrs, solution_ptrs), IsOk());
    double largest_free = 0;
    for (std::size_t e = 0; e < limited.u.size(); ++e) {
      EXPECT_LE(std::abs(limited.u[e]), 0.1);
      largest_free = std::max(largest_free, std::abs(free.u[e]));
    }
    EXPECT_GT(largest_free, 0.1);  // the trust region did bind
  }
}

TEST(DeltaU, ConvergesToTheSameOptimum) {
  for (bool bounded : {true, false}) {
    SCOPED_TRACE(bounded ? "bounded" : "unbounded");
    Problem p = testing::RandomLqrProblem(
        {.state_dim = 3, .control_dim = 2, .horizon = 8, .bounded = bounded}, 32);
    p.options.max_iterations = 200;
    p.options.tolerance = 1e-10;
    p.options.not_improved_limit = 200;
    MPC_ASSERT_OK_AND_ASSIGN(auto backend, CpuBackend::Create({1}));
    Solution reference, limited;
    const Problem* problem_ptrs[] = {&p};
    Solution* solution_ptrs[] = {&reference};
    ASSERT_THAT(backend->SolveBatch(problem_ptrs, solution_ptrs), IsOk());
    p.options.delta_u = 0.05;
    solution_ptrs[0] = &limited;
    ASSERT_THAT(backend->SolveBatch(problem_ptrs, solution_ptrs), IsOk());
    EXPECT_EQ(limited.status, SolveStatus::kConverged);
    EXPECT_GT(limited.iterations, reference.iterations);
    EXPECT_LT(MaxAbsDiff(limited.u, reference.u), 1e-8);
  }
}

TEST(Validation, EveryInvalidInputIsNamed) {
  const auto expect_invalid = [](const mpcd::v1::Problem& proto,
                                 const mpcd::v1::SolverOptions& options, const std::string& text) {
    mpcd::v1::SolveRequest request;
    request.set_horizon(kT);
    *request.add_problems() = proto;
    *request.mutable_options() = options;
    EXPECT_THAT(ToProblems(request, RequestLimits{}),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(text)));
  };
  const TestProblem tp = LinearProblem(false, false, 41);
  const mpcd::v1::SolverOptions none;
  mpcd::v1::Problem p = tp.proto;
  p.set_slew_rate_penalty(-1);
  expect_invalid(p, none, "problems[0].slew_rate_penalty: must be >= 0 and finite, got -1");
  p.set_slew_rate_penalty(std::numeric_limits<double>::quiet_NaN());
  expect_invalid(p, none, "problems[0].slew_rate_penalty: must be >= 0 and finite");
  p = tp.proto;
  *p.mutable_prev_ctrl() = MakeTensor({kM + 1}, {0, 0, 0});
  expect_invalid(p, none, "problems[0].prev_ctrl: expected shape (2), got (3)");
  *p.mutable_prev_ctrl() = MakeTensor({kM}, {0, std::numeric_limits<double>::infinity()});
  expect_invalid(p, none, "problems[0].prev_ctrl: not finite at [1]");
  p = tp.proto;
  *p.mutable_u_zero_mask() = MakeTensor({kM}, {0, 1});
  expect_invalid(p, none, "problems[0].u_zero_mask: expected shape (6,2), got (2)");
  std::vector<double> mask(kT * kM, 0.0);
  mask[3] = 0.5;
  *p.mutable_u_zero_mask() = MakeTensor({kT, kM}, mask);
  expect_invalid(p, none, "problems[0].u_zero_mask: must be 0 or 1, got 0.5 at [1,1]");
  mpcd::v1::Problem model;
  testing::RandomModelOptions o;
  o.horizon = kT;
  const Problem pendulum = testing::RandomPendulumProblem(o, 1);
  *model.mutable_x_init() = MakeTensor({3}, pendulum.x_init);
  *model.mutable_cost()->mutable_quadratic() = MakeTensor({4, 4}, pendulum.cost_quadratic);
  model.mutable_dynamics()->mutable_model()->set_name("pendulum");
  model.set_slew_rate_penalty(1.0);
  expect_invalid(model, none, "problems[0].slew_rate_penalty: needs linear or graph dynamics");
  mpcd::v1::SolverOptions options;
  options.set_delta_u(0);
  expect_invalid(tp.proto, options, "options.delta_u: must be > 0 and finite, got 0");
  options.set_delta_u(-std::numeric_limits<double>::infinity());
  expect_invalid(tp.proto, options, "options.delta_u: must be > 0 and finite, got -inf");

  mpcd::v1::SolveRequest request;
  request.set_horizon(kT);
  *request.add_problems() = tp.proto;
  request.mutable_problems(0)->set_slew_rate_penalty(1.0);
  request.set_return_x_init_jacobian(true);
  EXPECT_THAT(ToProblems(request, RequestLimits{}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("return_x_init_jacobian: not available with "
                                 "problems[0].slew_rate_penalty")));
  mpcd::v1::ControlRequest first;
  first.set_horizon(kT);
  *first.mutable_problem() = tp.proto;
  first.mutable_problem()->set_slew_rate_penalty(1.0);
  EXPECT_THAT(ToControlProblem(first, RequestLimits{}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("problem.slew_rate_penalty: not supported in Control sessions")));
}

TEST(Template, SharesTheNewFields) {
  const TestProblem tp = LinearProblem(false, false, 51);
  mpcd::v1::SolveRequest request;
  request.set_horizon(kT);
  *request.mutable_problem_template() = tp.proto;
  request.mutable_problem_template()->set_slew_rate_penalty(0.7);
  *request.mutable_problem_template()->mutable_prev_ctrl() = MakeTensor({kM}, {0.3, -0.8});
  request.add_problems();
  MPC_ASSERT_OK_AND_ASSIGN(std::vector<Problem> problems, ToProblems(request, RequestLimits{}));
  EXPECT_EQ(problems[0].slew_state_prefix, kM);
  EXPECT_EQ(problems[0].x_init[0], 0.3);
  EXPECT_EQ(problems[0].x_init[1], -0.8);
}

}  // namespace
}  // namespace mpc
