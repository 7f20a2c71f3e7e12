// The device solver (solver/core/ilqr.h), run on the host through the CUDA backend's own
// packing and unpacking (tests/testing/device_layout_on_host.h), against the CPU solver: element by
// element on every reference case and on seeded random problems (STYLE rule 21, "CUDA against
// CPU"). This is what vouches for the CUDA backend's numerics on machines without a GPU; the GPU
// tests (cuda_backend_test.cc) then only have to show that the device runs the same code.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "solver/core/dispatch.h"
#include "solver/cpu/ilqr.h"
#include "solver/models/model_list.h"
#include "solver/models/model_registry.h"
#include "solver/packing.h"
#include "tests/solver/cuda/device_comparison.h"
#include "tests/testing/device_layout_on_host.h"
#include "tests/testing/random_problems.h"
#include "tests/testing/reference_case.h"
#include "tests/testing/reference_case_fixture.h"
#include "tests/testing/status_matchers.h"

namespace mpc::core {
namespace {

using ::mpc::testing::IsOk;
using ::mpc::testing::RandomCartpoleProblem;
using ::mpc::testing::RandomLqrOptions;
using ::mpc::testing::RandomLqrProblem;
using ::mpc::testing::RandomModelOptions;
using ::mpc::testing::RandomPendulumProblem;
using ::mpc::testing::StatusIs;

template <typename S>
std::vector<Solution> SolveOnHost(const std::vector<const Problem*>& problems) {
  std::vector<Solution> solutions(problems.size());
  std::vector<Solution*> outputs;
  for (Solution& s : solutions) outputs.push_back(&s);
  EXPECT_THAT(SolveBatchOnHost<S>(problems, outputs), IsOk());
  return solutions;
}

std::vector<const Problem*> Pointers(const std::vector<Problem>& problems) {
  std::vector<const Problem*> pointers;
  for (const Problem& p : problems) pointers.push_back(&p);
  return pointers;
}

std::vector<Solution> SolveOnCpu(const std::vector<Problem>& problems) {
  std::vector<Solution> solutions;
  for (const Problem& p : problems) solutions.push_back(SolveProblem(p));
  return solutions;
}

// The CPU executor, rolling a sampling problem's samples out one at a time (as the GPU does).
std::vector<Solution> SolveOnCpuOneSampleAtATime(const std::vector<Problem>& problems) {
  std::vector<Solution> solutions(problems.size());
  for (std::size_t i = 0; i < problems.size(); ++i) {
    MakeOneSampleAtATimeShapeSolver(problems[i].shape)->Solve(problems[i], &solutions[i]);
  }
  return solutions;
}

Comparison ExpectSameAsCpu(const std::vector<Problem>& problems, const std::string& label) {
  return ExpectMatchesCpu(problems, SolveOnHost<double>(Pointers(problems)), SolveOnCpu(problems),
                          label);
}

std::vector<std::string> CaseIds() { return testing::ReferenceCaseIds(); }

class DeviceSolverReferenceTest : public testing::ReferenceCaseFixture {};

TEST_P(DeviceSolverReferenceTest, MatchesCpuSolverWithAndWithoutGains) {
  std::vector<Problem> problems = rc_.problems;
  ASSERT_TRUE(RunsOnDevice(problems[0].shape));
  ExpectSameAsCpu(problems, GetParam());
  for (Problem& p : problems) p.options.compute_gains = true;
  ExpectSameAsCpu(problems, absl::StrCat(GetParam(), " with gains"));
}

std::string CaseName(const ::testing::TestParamInfo<std::string>& info) {
  std::string name;
  for (char c : info.param) {
    if (std::isalnum(static_cast<unsigned char>(c)) != 0) name += c;
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(EveryCase, DeviceSolverReferenceTest, ::testing::ValuesIn(CaseIds()),
                         CaseName);

// Seeded random LQR problems of every kind of input: the compile-time (8, 4) solver and the
// generic one at several shapes, time-invariant and time-varying data, offsets, bounds, warm
// starts and gains.
TEST(DeviceSolverTest, MatchesCpuSolverOnRandomLqrProblems) {
  std::vector<Problem> problems;
  std::uint64_t seed = 100;
  for (const auto& [n, m] :
       std::vector<std::pair<int, int>>{{8, 4}, {1, 1}, {3, 2}, {6, 3}, {16, 8}}) {
    for (int variant = 0; variant < 8; ++variant) {
      RandomLqrOptions options{.state_dim = n,
                               .control_dim = m,
                               .horizon = 5 + variant,
                               .time_varying = (variant & 1) != 0,
                               .with_offset = (variant & 2) != 0,
                               .bounded = (variant & 4) != 0,
                               .warm_start = variant % 3 == 0};
      Problem p = RandomLqrProblem(options, ++seed);
      p.options.compute_gains = variant % 2 == 0;
      problems.push_back(std::move(p));
    }
  }
  // Problems of one shape share a launch even when some inputs are time-varying and others not.
  const Comparison comparison = ExpectSameAsCpu(problems, "random lqr");
  EXPECT_EQ(comparison.beyond_double, 0);
}

TEST(DeviceSolverTest, MatchesCpuSolverOnRandomPendulumAndCartpoleProblems) {
  std::vector<Problem> problems;
  for (std::uint64_t seed = 0; seed < 6; ++seed) {
    RandomModelOptions options;
    options.bounded = seed % 2 == 0;
    problems.push_back(RandomPendulumProblem(options, seed));
    options.horizon = 25;
    problems.push_back(RandomCartpoleProblem(options, seed));
    problems.back().params = {9.81, 1.2, 0.15, 0.6};
    problems.back().dt = 0.04;
  }
  for (Problem& p : problems) p.options.compute_gains = true;
  const Comparison comparison = ExpectSameAsCpu(problems, "random models");
  std::printf("[device-vs-cpu] random models: %d of %d beyond %.0e (within the model bound)\n",
              comparison.beyond_double, comparison.problems, kDoubleTolerance);
}

// Every way a solve can end, as the CPU solver ends it.
TEST(DeviceSolverTest, ReportsTheCpuSolversStatuses) {
  std::vector<Problem> problems;
  // MAX_ITERATIONS: one iteration of a nonlinear swing-up.
  RandomModelOptions model;
  problems.push_back(RandomPendulumProblem(model, 7));
  problems.back().options.max_iterations = 1;
  // NOT_FINITE: dynamics that overflow in the first rollout.
  problems.push_back(RandomLqrProblem({.state_dim = 3, .control_dim = 1, .horizon = 6}, 2));
  for (double& v : problems.back().transition) v *= 1e200;
  // Levenberg-Marquardt: a negative control weight makes Quu indefinite.
  problems.push_back(
      RandomLqrProblem({.state_dim = 2, .control_dim = 1, .horizon = 5, .bounded = true}, 4));
  problems.back().cost_quadratic[2 * 3 + 2] = -1.0;
  problems.back().options.max_iterations = 30;
  // LINESEARCH_FAILED or MAX_ITERATIONS: a tolerance no step can meet, few line-search trials.
  problems.push_back(RandomCartpoleProblem(model, 3));
  problems.back().options.tolerance = 0.0;
  problems.back().options.max_linesearch_iterations = 1;
  problems.back().options.not_improved_limit = 1;
  problems.back().options.max_iterations = 40;
  const std::vector<Solution> cpu = SolveOnCpu(problems);
  EXPECT_EQ(cpu[0].status, SolveStatus::kMaxIterations);
  EXPECT_EQ(cpu[1].status, SolveStatus::kNotFinite);
  EXPECT_GT(cpu[2].regularization + (cpu[2].status == SolveStatus::kConverged ? 0.0 : 1.0), 0.0);
  ExpectSameAsCpu(problems, "statuses");
}

// DESIGN §3: a problem's result is bitwise the same alone or in any batch.
TEST(DeviceSolverTest, EveryProblemIsBitwiseTheSameAloneOrInAnyBatch) {
  std::vector<Problem> problems;
  for (std::uint64_t seed = 0; seed < 4; ++seed) {
    problems.push_back(RandomLqrProblem({.state_dim = 8,
                                         .control_dim = 4,
                                         .horizon = 7,
                                         .time_varying = seed % 2 == 0,
                                         .with_offset = seed != 1,
                                         .bounded = seed >= 2},
                                        seed));
    problems.push_back(RandomPendulumProblem(RandomModelOptions(), seed));
  }
  std::vector<const Problem*> batch = Pointers(problems);
  std::vector<const Problem*> reversed(batch.rbegin(), batch.rend());
  const std::vector<Solution> together = SolveOnHost<double>(batch);
  const std::vector<Solution> backwards = SolveOnHost<double>(reversed);
  for (std::size_t i = 0; i < problems.size(); ++i) {
    SCOPED_TRACE(i);
    const std::vector<Solution> alone = SolveOnHost<double>({&problems[i]});
    for (const Solution* other : {&together[i], &backwards[problems.size() - 1 - i]}) {
      EXPECT_EQ(alone[0].x, other->x);
      EXPECT_EQ(alone[0].u, other->u);
      EXPECT_EQ(alone[0].cost, other->cost);
      EXPECT_EQ(alone[0].iterations, other->iterations);
    }
  }
}

// float32 on request: the same algorithm in single precision. Its stopping test cannot reach the
// float64 tolerances (so statuses differ), and only the answers are compared, on problems with a
// well-conditioned optimum, relative to max(1, |value|). LQR: x and u to 1e-4 (float's epsilon is
// 1.2e-7; the Riccati recursion loses a digit or two over the horizon). Models, whose Gauss-Newton
// iterations stall in float near the optimum: x and u to 1e-2 (observed: 4e-3 on a cartpole).
// The cost (stationary at the optimum) to 1e-4 (observed: 2e-5).
TEST(DeviceSolverTest, Float32MatchesTheCpuSolverToSinglePrecision) {
  std::vector<Problem> problems;
  for (std::uint64_t seed = 0; seed < 4; ++seed) {
    problems.push_back(RandomLqrProblem(
        {.state_dim = 8, .control_dim = 4, .horizon = 30, .bounded = seed % 2 == 1}, seed));
    problems.push_back(RandomLqrProblem({.state_dim = 3, .control_dim = 2, .horizon = 12}, seed));
    // Near upright: the unique, well-conditioned optimum of the balance task.
    RandomModelOptions near_upright;
    near_upright.th_half_width = 0.2;
    near_upright.thdot_half_width = 0.2;
    near_upright.x_half_width = 0.2;
    near_upright.xdot_half_width = 0.2;
    problems.push_back(RandomPendulumProblem(near_upright, seed));
    near_upright.horizon = 25;
    problems.push_back(RandomCartpoleProblem(near_upright, seed));
  }
  const std::vector<Solution> single = SolveOnHost<float>(Pointers(problems));
  const std::vector<Solution> cpu = SolveOnCpu(problems);
  for (std::size_t i = 0; i < problems.size(); ++i) {
    SCOPED_TRACE(i);
    const double dx = MaxRelativeDifference(single[i].x, cpu[i].x);
    const double du = MaxRelativeDifference(single[i].u, cpu[i].u);
    const double dcost =
        std::abs(single[i].cost - cpu[i].cost) / std::max(1.0, std::abs(cpu[i].cost));
    std::printf("[float32-vs-cpu] #%zu %s/%s | x %.1e u %.1e cost %.1e\n", i,
                SolveStatusName(single[i].status), SolveStatusName(cpu[i].status), dx, du, dcost);
    EXPECT_NE(single[i].status, SolveStatus::kNotFinite);
    const bool linear = problems[i].shape.dynamics.is_linear();
    EXPECT_LE(dx, linear ? 1e-4 : 1e-2);
    EXPECT_LE(du, linear ? 1e-4 : 1e-2);
    EXPECT_LE(dcost, 1e-4);
  }
}

// The sampling methods in the device layout (interleaved, the kernels' order: every sample of an
// iteration, then every update) against the CPU executor (contiguous, one problem at a time):
// bitwise equal, whatever the batch mixes (methods, sample counts, plain iLQR problems). The CPU
// executor rolls out one sample at a time here, in double as a GPU thread does: its default, four
// samples at once with libmvec's sin and cos, differs in the last bits of the transcendentals (what
// the lanes do is tested against double in sample_lanes_test and sampling_test).
TEST(DeviceSolverTest, SamplingInTheDeviceLayoutIsBitwiseTheCpuExecutors) {
  const SolverMethod methods[] = {SolverMethod::kCem, SolverMethod::kMppi,
                                  SolverMethod::kCemThenIlqr, SolverMethod::kMppiThenIlqr,
                                  SolverMethod::kIlqr};
  std::vector<Problem> problems;
  for (int seed = 0; seed < 10; ++seed) {
    RandomModelOptions model;
    model.horizon = 20;
    Problem pendulum = RandomPendulumProblem(model, seed);
    Problem cartpole = RandomCartpoleProblem(model, seed);
    Problem lqr = RandomLqrProblem(
        {.state_dim = 4, .control_dim = 2, .horizon = 12, .bounded = seed % 2 == 0}, seed);
    for (Problem* p : {&pendulum, &cartpole, &lqr}) {
      p->options.method = methods[seed % 5];
      p->options.sampling = {.samples = 16 + 8 * (seed % 3),
                             .elites = 4 + seed % 3,
                             .iterations = 2 + seed % 3,
                             .knot_spacing = 1 + seed % 4,
                             .seed = static_cast<std::uint64_t>(seed)};
      p->options.compute_gains = seed % 2 == 1;
      p->sampling_stream = static_cast<std::uint32_t>(seed);
      problems.push_back(*p);
    }
  }
  const std::vector<Solution> expected = SolveOnCpuOneSampleAtATime(problems);
  const std::vector<Solution> device_layout = SolveOnHost<double>(Pointers(problems));
  for (std::size_t i = 0; i < problems.size(); ++i) {
    SCOPED_TRACE(::testing::Message()
                 << "problem " << i << " " << SolverMethodName(problems[i].options.method));
    EXPECT_EQ(device_layout[i].x, expected[i].x);
    EXPECT_EQ(device_layout[i].u, expected[i].u);
    EXPECT_EQ(device_layout[i].feedback, expected[i].feedback);
    EXPECT_EQ(device_layout[i].status, expected[i].status);
    EXPECT_EQ(device_layout[i].iterations, expected[i].iterations);
  }
}

// Interrupts reach the device layout through the stop flags the backend's host raises during a
// launch: a cancelled problem and one past its deadline stop with kDeadline before their first
// iteration (iLQR and sampling alike), exactly as on the CPU executor; their batch-mates do not
// change a bit.
TEST(DeviceSolverTest, StopFlagsEndInterruptedProblemsAsTheCpuExecutorDoes) {
  std::vector<Problem> problems;
  for (int seed = 0; seed < 6; ++seed) {
    RandomModelOptions model;
    model.horizon = 20;
    problems.push_back(RandomPendulumProblem(model, seed));
    if (seed >= 3) {
      problems.back().options.method = SolverMethod::kCemThenIlqr;
      problems.back().options.sampling = {.samples = 16, .elites = 4, .iterations = 3};
    }
  }
  const std::vector<Solution> undisturbed = SolveOnHost<double>(Pointers(problems));
  std::atomic<bool> cancelled{true};
  const SolveInterrupt gone{absl::InfiniteFuture(), &cancelled};
  const SolveInterrupt late{absl::Now() - absl::Seconds(1), nullptr};
  const SolveInterrupt never{absl::InfiniteFuture(), nullptr};
  problems[1].interrupt = &gone;
  problems[4].interrupt = &late;
  problems[5].interrupt = &never;
  const std::vector<Solution> device_layout = SolveOnHost<double>(Pointers(problems));
  for (std::size_t i = 0; i < problems.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << "problem " << i);
    const Solution cpu = SolveOnCpuOneSampleAtATime({problems[i]})[0];
    EXPECT_EQ(device_layout[i].x, cpu.x);
    EXPECT_EQ(device_layout[i].u, cpu.u);
    EXPECT_EQ(device_layout[i].status, cpu.status);
    EXPECT_EQ(device_layout[i].iterations, cpu.iterations);
    if (i == 1 || i == 4) {
      EXPECT_EQ(device_layout[i].status, SolveStatus::kDeadline);
      EXPECT_EQ(device_layout[i].iterations, 0);
    } else {
      EXPECT_EQ(device_layout[i].x, undisturbed[i].x);
      EXPECT_EQ(device_layout[i].u, undisturbed[i].u);
      EXPECT_EQ(device_layout[i].status, undisturbed[i].status);
    }
  }
}

TEST(DeviceSolverTest, RefusesShapesWithoutADeviceSolver) {
  Problem big = RandomLqrProblem({.state_dim = 17, .control_dim = 2, .horizon = 4}, 1);
  EXPECT_FALSE(RunsOnDevice(big.shape));
  Solution solution;
  EXPECT_THAT(SolveBatchOnHost<double>({&big}, {&solution}),
              StatusIs(absl::StatusCode::kUnimplemented));
  EXPECT_TRUE(RunsOnDevice({DynamicsId::Linear(), 8, 4, 30}));
  EXPECT_TRUE(RunsOnDevice({DynamicsId::Linear(), 16, 8, 30}));
  EXPECT_FALSE(RunsOnDevice({DynamicsId::Linear(), 16, 9, 30}));
  // Every built-in model has a device kernel (generated from the model list).
  ForEachBuiltinModel([]<class Model>() {
    EXPECT_TRUE(RunsOnDevice({ModelId<Model>(), Model::kStateDim, Model::kControlDim, 30}))
        << Model::kName;
  });
}

}  // namespace
}  // namespace mpc::core
