// The device backward pass (solver/core/implicit_backward.h), run on the host through the CUDA
// backend's own packing and unpacking (BackwardBatchOnHost, tests/testing/device_layout_on_host.h),
// against the CPU's implicit backward pass (ComputeGradient): element by element on every reference
// case and on seeded random problems with active bounds (STYLE rule 21, "CUDA against CPU"). The
// GPU test (cuda_backend_test.cc) then only has to show that the device runs the same code.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "solver/cpu/ilqr.h"
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

BackwardProblem MakeBackward(const Problem& problem, std::vector<double> x, std::vector<double> u,
                             std::vector<double> dl_dx, std::vector<double> dl_du,
                             GradientMode mode) {
  BackwardProblem bp;
  bp.problem = &problem;
  bp.x = std::move(x);
  bp.u = std::move(u);
  bp.dl_dx = std::move(dl_dx);
  bp.dl_du = std::move(dl_du);
  bp.mode = mode;
  return bp;
}

// A seeded cotangent: L = sum(wx * x) + sum(wu * u).
std::vector<double> RandomCotangent(std::size_t size, std::uint64_t seed) {
  testing::Rng rng(seed);
  std::vector<double> v(size);
  for (double& x : v) x = rng.Normal();
  return v;
}

template <typename S>
std::vector<ProblemGradient> GradientsOnHost(const std::vector<BackwardProblem>& problems) {
  std::vector<const BackwardProblem*> inputs;
  for (const BackwardProblem& bp : problems) inputs.push_back(&bp);
  std::vector<ProblemGradient> gradients(problems.size());
  std::vector<ProblemGradient*> outputs;
  for (ProblemGradient& g : gradients) outputs.push_back(&g);
  EXPECT_THAT(BackwardBatchOnHost<S>(inputs, outputs), IsOk());
  return gradients;
}

double ExpectSameAsCpu(const std::vector<BackwardProblem>& problems, const std::string& label) {
  const std::vector<ProblemGradient> device = GradientsOnHost<double>(problems);
  double worst = 0.0;
  for (std::size_t i = 0; i < problems.size(); ++i) {
    const ProblemGradient cpu = ComputeGradient(problems[i]);
    worst = std::max(worst, ExpectGradientMatchesCpu(device[i], cpu, kDoubleTolerance,
                                                     absl::StrCat(label, " #", i)));
  }
  std::printf("[backward-device-vs-cpu] %s: %zu problems, max relative difference %.1e\n",
              label.c_str(), problems.size(), worst);
  return worst;
}

class DeviceBackwardReferenceTest : public testing::ReferenceCaseFixture {};

// mpc.pytorch's loss at mpc.pytorch's answer and at the exact optimum of every element, in every
// mode the device computes.
TEST_P(DeviceBackwardReferenceTest, MatchesCpuBackwardPass) {
  const nlohmann::json& loss = rc_.raw.at("loss");
  std::vector<GradientMode> modes = {GradientMode::kDefault};
  if (!rc_.is_lqr()) {
    modes.push_back(GradientMode::kFullChain);
    modes.push_back(GradientMode::kExact);
  }
  std::vector<BackwardProblem> problems;
  for (int b = 0; b < rc_.n_batch; ++b) {
    for (const std::vector<testing::ReferenceTrajectory>* points : {&rc_.outputs, &rc_.exact}) {
      if (points->empty()) continue;
      for (GradientMode mode : modes) {
        problems.push_back(MakeBackward(rc_.problems[b], (*points)[b].x, (*points)[b].u,
                                        testing::ElementOfTimeFirst(loss.at("Wx"), b),
                                        testing::ElementOfTimeFirst(loss.at("Wu"), b), mode));
        ASSERT_THAT(ValidateBackwardProblem(problems.back()), IsOk());
        ASSERT_TRUE(DeviceSupportsBackward(problems.back()));
      }
    }
  }
  ExpectSameAsCpu(problems, GetParam());
}

INSTANTIATE_TEST_SUITE_P(EveryCase, DeviceBackwardReferenceTest,
                         ::testing::ValuesIn(testing::ReferenceCaseIds()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return testing::ReferenceCaseTestName(info.param);
                         });

// At the converged solution of seeded random problems: the compile-time (8, 4) pass and the
// generic one at several shapes, time-invariant and time-varying data, offsets and active bounds,
// all shapes in one batch with their inputs' slice counts mixed.
TEST(DeviceBackwardTest, MatchesCpuBackwardPassOnRandomLqrProblems) {
  std::vector<Problem> problems;
  std::uint64_t seed = 500;
  for (const auto& [n, m] :
       std::vector<std::pair<int, int>>{{8, 4}, {1, 1}, {3, 2}, {6, 3}, {16, 8}}) {
    for (int variant = 0; variant < 8; ++variant) {
      problems.push_back(RandomLqrProblem({.state_dim = n,
                                           .control_dim = m,
                                           .horizon = 5 + variant,
                                           .time_varying = (variant & 1) != 0,
                                           .with_offset = (variant & 2) != 0,
                                           .bounded = (variant & 4) != 0},
                                          ++seed));
    }
  }
  std::vector<BackwardProblem> backward;
  int active = 0;
  for (const Problem& p : problems) {
    const Solution s = SolveProblem(p);
    seed += 2;
    backward.push_back(MakeBackward(p, s.x, s.u, RandomCotangent(s.x.size(), seed),
                                    RandomCotangent(s.u.size(), seed + 1), GradientMode::kDefault));
    active += ComputeGradient(backward.back()).active_controls;
  }
  // dL/du only, dL/dx only, and the exact mode (the same as the default for linear dynamics).
  backward[0].dl_dx.clear();
  backward[1].dl_du.clear();
  backward[2].mode = GradientMode::kExact;
  EXPECT_GT(active, 20) << "the bounded problems should pin controls";
  ExpectSameAsCpu(backward, "random lqr");
}

TEST(DeviceBackwardTest, MatchesCpuBackwardPassOnRandomPendulumAndCartpoleProblems) {
  std::vector<Problem> problems;
  for (std::uint64_t seed = 0; seed < 4; ++seed) {
    RandomModelOptions options;
    options.bounded = seed % 2 == 0;
    problems.push_back(RandomPendulumProblem(options, seed));
    options.horizon = 25;
    problems.push_back(RandomCartpoleProblem(options, seed));
    if (seed == 1) {
      problems.back().params = {9.81, 1.2, 0.15, 0.6};
      problems.back().dt = 0.04;
    }
  }
  std::vector<BackwardProblem> backward;
  int active = 0;
  std::uint64_t seed = 900;
  for (const Problem& p : problems) {
    const Solution s = SolveProblem(p);
    for (GradientMode mode :
         {GradientMode::kDefault, GradientMode::kFullChain, GradientMode::kExact}) {
      seed += 2;
      backward.push_back(MakeBackward(p, s.x, s.u, RandomCotangent(s.x.size(), seed),
                                      RandomCotangent(s.u.size(), seed + 1), mode));
      active += ComputeGradient(backward.back()).active_controls;
    }
  }
  EXPECT_GT(active, 0) << "the bounded swing-ups should saturate";
  ExpectSameAsCpu(backward, "random models");
}

// The statuses of cpu/implicit_backward_test.cc's GradientStatusTest, as the CPU reports them.
TEST(DeviceBackwardTest, ReportsTheCpuBackwardPassStatuses) {
  std::vector<Problem> problems;
  // Regularised: no control cost and controls without effect, Quu = 0 at every stage.
  problems.push_back(RandomLqrProblem({.state_dim = 3, .control_dim = 2, .horizon = 6}, 4));
  for (int i = 3; i < 5; ++i) {
    for (int j = 0; j < 5; ++j) {
      problems.back().cost_quadratic[i * 5 + j] = problems.back().cost_quadratic[j * 5 + i] = 0;
    }
  }
  for (int i = 0; i < 3; ++i) {
    for (int j = 3; j < 5; ++j) problems.back().transition[i * 5 + j] = 0.0;
  }
  // Ill-conditioned: the second control costs 1e-15 and moves nothing.
  problems.push_back(RandomLqrProblem({.state_dim = 3, .control_dim = 2, .horizon = 6}, 5));
  for (int j = 0; j < 5; ++j) {
    problems.back().cost_quadratic[4 * 5 + j] = problems.back().cost_quadratic[j * 5 + 4] = 0;
  }
  problems.back().cost_quadratic[4 * 5 + 4] = 1e-15;
  for (int i = 0; i < 3; ++i) problems.back().transition[i * 5 + 4] = 0.0;
  // Not finite: cos th = sin th = 0 has no angle derivative.
  problems.push_back(RandomPendulumProblem(RandomModelOptions(), 1));
  std::vector<BackwardProblem> backward;
  for (const Problem& p : problems) {
    const Solution s = SolveProblem(p);
    backward.push_back(MakeBackward(p, s.x, s.u, RandomCotangent(s.x.size(), 1),
                                    RandomCotangent(s.u.size(), 2), GradientMode::kDefault));
  }
  backward[2].x[9] = 0.0;
  backward[2].x[10] = 0.0;
  const std::vector<GradientStatus> expected = {
      GradientStatus::kRegularized, GradientStatus::kIllConditioned, GradientStatus::kNotFinite};
  for (std::size_t i = 0; i < backward.size(); ++i) {
    EXPECT_EQ(ComputeGradient(backward[i]).status, expected[i]) << i;
  }
  ExpectSameAsCpu(backward, "statuses");
  const std::vector<ProblemGradient> device = GradientsOnHost<double>(backward);
  EXPECT_EQ(*std::max_element(device[2].params.begin(), device[2].params.end()), 0.0);
}

// DESIGN §3: a problem's gradient is bitwise the same alone or in any batch, also when the batch
// mixes time-invariant and time-varying inputs (then the unpacking sums the per-step gradients the
// pass sums itself when alone).
TEST(DeviceBackwardTest, EveryGradientIsBitwiseTheSameAloneOrInAnyBatch) {
  std::vector<Problem> problems;
  for (std::uint64_t seed = 0; seed < 4; ++seed) {
    problems.push_back(RandomLqrProblem({.state_dim = 8,
                                         .control_dim = 4,
                                         .horizon = 7,
                                         .time_varying = seed % 2 == 0,
                                         .with_offset = seed != 1,
                                         .bounded = seed >= 2},
                                        seed));
    problems.push_back(RandomCartpoleProblem(RandomModelOptions(), seed));
  }
  std::vector<BackwardProblem> backward;
  for (const Problem& p : problems) {
    const Solution s = SolveProblem(p);
    backward.push_back(MakeBackward(p, s.x, s.u, RandomCotangent(s.x.size(), 7),
                                    RandomCotangent(s.u.size(), 8), GradientMode::kFullChain));
  }
  const std::vector<ProblemGradient> together = GradientsOnHost<double>(backward);
  const std::vector<BackwardProblem> reversed(backward.rbegin(), backward.rend());
  const std::vector<ProblemGradient> backwards = GradientsOnHost<double>(reversed);
  for (std::size_t i = 0; i < backward.size(); ++i) {
    SCOPED_TRACE(i);
    const std::vector<ProblemGradient> alone = GradientsOnHost<double>({backward[i]});
    for (const ProblemGradient* other : {&together[i], &backwards[backward.size() - 1 - i]}) {
      EXPECT_EQ(alone[0].x_init, other->x_init);
      EXPECT_EQ(alone[0].cost_quadratic, other->cost_quadratic);
      EXPECT_EQ(alone[0].cost_linear, other->cost_linear);
      EXPECT_EQ(alone[0].transition, other->transition);
      EXPECT_EQ(alone[0].offset, other->offset);
      EXPECT_EQ(alone[0].params, other->params);
    }
  }
}

// float32 on request: the same pass in single precision, on LQR problems solved in float64 (the
// point is exact in float64; rounding it to float moves it by ~6e-8 relative). Every gradient
// within 1e-3 of the float64 CPU answer, relative to max(1, |value|) (float's epsilon is 1.2e-7;
// the Riccati recursion and the sums over T lose two to three digits).
TEST(DeviceBackwardTest, Float32MatchesTheCpuBackwardPassToSinglePrecision) {
  std::vector<Problem> problems;
  for (std::uint64_t seed = 0; seed < 4; ++seed) {
    problems.push_back(RandomLqrProblem(
        {.state_dim = 8, .control_dim = 4, .horizon = 30, .time_varying = seed % 2 == 0},
        seed + 40));
    problems.push_back(RandomLqrProblem({.state_dim = 3, .control_dim = 2, .horizon = 12}, seed));
  }
  std::vector<BackwardProblem> backward;
  for (const Problem& p : problems) {
    const Solution s = SolveProblem(p);
    backward.push_back(MakeBackward(p, s.x, s.u, RandomCotangent(s.x.size(), 3),
                                    RandomCotangent(s.u.size(), 4), GradientMode::kDefault));
  }
  const std::vector<ProblemGradient> single = GradientsOnHost<float>(backward);
  double worst = 0.0;
  for (std::size_t i = 0; i < backward.size(); ++i) {
    SCOPED_TRACE(i);
    const ProblemGradient cpu = ComputeGradient(backward[i]);
    EXPECT_EQ(single[i].status, cpu.status);
    for (const auto& [a, b] : {std::pair{&single[i].x_init, &cpu.x_init},
                               std::pair{&single[i].cost_quadratic, &cpu.cost_quadratic},
                               std::pair{&single[i].cost_linear, &cpu.cost_linear},
                               std::pair{&single[i].transition, &cpu.transition},
                               std::pair{&single[i].offset, &cpu.offset}}) {
      const double diff = MaxRelativeDifference(*a, *b);
      EXPECT_LE(diff, 1e-3);
      worst = std::max(worst, diff);
    }
  }
  std::printf("[backward-float32-vs-cpu] max relative difference %.1e\n", worst);
}

TEST(DeviceBackwardTest, RefusesShapesBeyondTheDeviceCapacities) {
  const Problem big = RandomLqrProblem({.state_dim = 17, .control_dim = 2, .horizon = 4}, 1);
  const Solution sb = SolveProblem(big);
  const BackwardProblem too_big =
      MakeBackward(big, sb.x, sb.u, {}, RandomCotangent(sb.u.size(), 1), GradientMode::kDefault);
  EXPECT_FALSE(DeviceSupportsBackward(too_big));
  ProblemGradient gradient;
  EXPECT_THAT(BackwardBatchOnHost<double>({&too_big}, {&gradient}),
              StatusIs(absl::StatusCode::kUnimplemented));
}

TEST(DeviceBackwardTest, ComputesEveryModeOnEveryModel) {
  const Problem pendulum = RandomPendulumProblem(RandomModelOptions(), 1);
  const Solution s = SolveProblem(pendulum);
  for (GradientMode mode :
       {GradientMode::kDefault, GradientMode::kFullChain, GradientMode::kExact}) {
    EXPECT_TRUE(DeviceSupportsBackward(
        MakeBackward(pendulum, s.x, s.u, {}, RandomCotangent(s.u.size(), 1), mode)));
  }
}

}  // namespace
}  // namespace mpc::core
