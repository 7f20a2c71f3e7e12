// CudaBackend on a real device (label `gpu`; every test skips when no device is visible): the GPU
// against the CPU solver element by element on every reference case and on seeded random problems,
// against the host emulation of the same device code, float32, the CPU fallback for shapes without
// a device solver, and one launch serving a mixed batch; the same for the backward pass.

#include "solver/cuda/cuda_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "solver/cpu/ilqr.h"
#include "solver/make_backend.h"
#include "solver/solution_jacobians.h"
#include "tests/solver/cuda/device_comparison.h"
#include "tests/testing/device_layout_on_host.h"
#include "tests/testing/random_problems.h"
#include "tests/testing/reference_case.h"
#include "tests/testing/status_matchers.h"

namespace mpc::core {
namespace {

using ::mpc::testing::IsOk;
using ::mpc::testing::RandomCartpoleProblem;
using ::mpc::testing::RandomLqrProblem;
using ::mpc::testing::RandomModelOptions;
using ::mpc::testing::RandomPendulumProblem;

std::vector<Solution> Solve(SolverBackend& backend, const std::vector<Problem>& problems) {
  std::vector<const Problem*> inputs;
  for (const Problem& p : problems) inputs.push_back(&p);
  std::vector<Solution> solutions(problems.size());
  std::vector<Solution*> outputs;
  for (Solution& s : solutions) outputs.push_back(&s);
  EXPECT_THAT(backend.SolveBatch(inputs, outputs), IsOk());
  return solutions;
}

std::vector<Solution> SolveOnCpu(const std::vector<Problem>& problems) {
  std::vector<Solution> solutions;
  for (const Problem& p : problems) solutions.push_back(SolveProblem(p));
  return solutions;
}

// The device's answers against the host emulation's, problem by problem.
void ExpectMatchesTheHostEmulation(CudaBackend& backend, const std::vector<Problem>& problems) {
  std::vector<const Problem*> inputs;
  for (const Problem& p : problems) inputs.push_back(&p);
  std::vector<Solution> host(problems.size());
  std::vector<Solution*> outputs;
  for (Solution& s : host) outputs.push_back(&s);
  ASSERT_THAT(SolveBatchOnHost<double>(inputs, outputs), IsOk());
  const std::vector<Solution> device = Solve(backend, problems);
  for (std::size_t i = 0; i < problems.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(device[i].status, host[i].status);
    EXPECT_EQ(device[i].iterations, host[i].iterations);
    EXPECT_LE(MaxRelativeDifference(device[i].u, host[i].u), kDoubleTolerance);
    EXPECT_LE(MaxRelativeDifference(device[i].x, host[i].x), kDoubleTolerance);
  }
}

class CudaBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA device visible";
    absl::StatusOr<std::unique_ptr<CudaBackend>> backend = CudaBackend::Create({});
    ASSERT_THAT(backend.status(), IsOk());
    backend_ = *std::move(backend);
    std::printf("[cuda] device: %s\n", backend_->device_name().c_str());
  }

  std::unique_ptr<CudaBackend> backend_;
};

// The Jacobians a problem asks for come back from the launch (computed on the CPU pool after the
// device solve, or by the CPU fallback), equal to ComputeRequestedJacobians at the returned point.
TEST_F(CudaBackendTest, ReturnsTheRequestedJacobians) {
  RandomModelOptions model;
  model.horizon = 25;
  std::vector<Problem> problems = {
      RandomCartpoleProblem(model, 1), RandomPendulumProblem(model, 2),
      RandomLqrProblem({.state_dim = 8, .control_dim = 4, .horizon = 30}, 3),
      RandomLqrProblem({.state_dim = 20, .control_dim = 3, .horizon = 9}, 4)};  // CPU fallback
  for (Problem& p : problems) {
    p.options.compute_x_init_jacobian = true;
    p.options.compute_params_jacobian = !p.shape.dynamics.is_linear();
  }
  const std::vector<Solution> solved = Solve(*backend_, problems);
  for (std::size_t i = 0; i < problems.size(); ++i) {
    Solution expected = solved[i];
    ComputeRequestedJacobians(problems[i], &expected);
    const std::size_t T = problems[i].shape.horizon;
    EXPECT_EQ(solved[i].x_init_jacobian.size(),
              T * problems[i].shape.tau_dim() * problems[i].shape.state_dim);
    EXPECT_EQ(solved[i].x_init_jacobian, expected.x_init_jacobian) << "problem " << i;
    EXPECT_EQ(solved[i].params_jacobian, expected.params_jacobian) << "problem " << i;
    EXPECT_EQ(solved[i].jacobian_diagnostics.status, expected.jacobian_diagnostics.status);
  }
}

TEST_F(CudaBackendTest, MatchesCpuSolverOnEveryReferenceCase) {
  const std::string dir = testing::ReferenceDir();
  absl::StatusOr<std::vector<std::string>> ids = testing::ListReferenceCases(dir);
  ASSERT_THAT(ids.status(), IsOk());
  for (const std::string& id : *ids) {
    absl::StatusOr<testing::ReferenceCase> rc = testing::LoadReferenceCase(dir, id);
    ASSERT_THAT(rc.status(), IsOk());
    std::vector<Problem> problems = rc->problems;
    for (Problem& p : problems) p.options.compute_gains = true;
    ExpectMatchesCpu(problems, Solve(*backend_, problems), SolveOnCpu(problems), id);
  }
}

TEST_F(CudaBackendTest, MatchesCpuSolverOnRandomProblemsInOneMixedBatch) {
  std::vector<Problem> problems;
  for (std::uint64_t seed = 0; seed < 8; ++seed) {
    problems.push_back(RandomLqrProblem({.state_dim = 8,
                                         .control_dim = 4,
                                         .horizon = 30,
                                         .time_varying = seed % 2 == 0,
                                         .bounded = seed % 3 == 0,
                                         .warm_start = seed % 4 == 0},
                                        seed));
    problems.push_back(RandomLqrProblem(
        {.state_dim = 5, .control_dim = 2, .horizon = 12, .bounded = seed % 2 == 1}, seed));
    RandomModelOptions model;
    problems.push_back(RandomPendulumProblem(model, seed));
    model.horizon = 25;
    problems.push_back(RandomCartpoleProblem(model, seed));
    // No device solver for this shape: the backend's CPU fallback answers it.
    problems.push_back(RandomLqrProblem({.state_dim = 20, .control_dim = 2, .horizon = 6}, seed));
  }
  for (std::size_t i = 0; i < problems.size(); i += 2) problems[i].options.compute_gains = true;
  const Comparison comparison =
      ExpectMatchesCpu(problems, Solve(*backend_, problems), SolveOnCpu(problems), "random");
  std::printf("[cuda] %d of %d problems beyond %.0e (models only)\n", comparison.beyond_double,
              comparison.problems, kDoubleTolerance);
}

// The device runs the host emulation's code; only FMA contraction (nvcc fuses, the host
// emulation does not) may separate them.
TEST_F(CudaBackendTest, MatchesTheHostEmulationOnLqrProblems) {
  std::vector<Problem> problems;
  for (std::uint64_t seed = 0; seed < 16; ++seed) {
    problems.push_back(RandomLqrProblem(
        {.state_dim = 8, .control_dim = 4, .horizon = 30, .bounded = seed % 2 == 0}, seed));
  }
  ExpectMatchesTheHostEmulation(*backend_, problems);
}

// Sampling on the device ((problem, sample) threads) runs the host emulation's code; on linear
// problems only MPPI's exp (CUDA's libm against glibc) may separate them, by ulps.
TEST_F(CudaBackendTest, SamplingMatchesTheHostEmulationOnLqrProblems) {
  const SolverMethod methods[] = {SolverMethod::kCem, SolverMethod::kMppi,
                                  SolverMethod::kCemThenIlqr, SolverMethod::kMppiThenIlqr};
  std::vector<Problem> problems;
  for (std::uint64_t seed = 0; seed < 16; ++seed) {
    problems.push_back(RandomLqrProblem(
        {.state_dim = 8, .control_dim = 4, .horizon = 30, .bounded = seed % 2 == 0}, seed));
    problems.back().options.method = methods[seed % 4];
    problems.back().options.sampling = {.samples = 512,
                                        .elites = 32,
                                        .iterations = 4,
                                        .knot_spacing = 1 + static_cast<int>(seed % 3)};
    problems.back().sampling_stream = static_cast<std::uint32_t>(seed);
  }
  ExpectMatchesTheHostEmulation(*backend_, problems);
}

// A problem whose caller's deadline passes during the launch stops there (the host raises its stop
// flag, the kernel reads it between iterations) with kDeadline and its best iterate; its
// batch-mate runs to its own end and agrees with its solve alone.
TEST_F(CudaBackendTest, ADeadlineStopsItsProblemDuringTheLaunch) {
  Problem endless = RandomLqrProblem({.state_dim = 8, .control_dim = 4, .horizon = 400}, 3);
  endless.options.max_iterations = 1000000;
  endless.options.tolerance = 0.0;
  endless.options.not_improved_limit = 1000000000;
  Problem short_one = endless;
  short_one.options.max_iterations = 5;
  const absl::Time start = absl::Now();
  const SolveInterrupt interrupt{start + absl::Milliseconds(300), nullptr};
  endless.interrupt = &interrupt;
  std::vector<Solution> solutions(2);
  ASSERT_THAT(backend_->SolveBatch({&endless, &short_one}, {&solutions[0], &solutions[1]}), IsOk());
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_EQ(solutions[0].status, SolveStatus::kDeadline);
  EXPECT_LT(solutions[0].iterations, 1000000);
  EXPECT_TRUE(std::isfinite(solutions[0].cost));
  Solution alone;
  ASSERT_THAT(backend_->SolveBatch({&short_one}, {&alone}), IsOk());
  EXPECT_EQ(solutions[1].u, alone.u);
  EXPECT_EQ(solutions[1].status, SolveStatus::kMaxIterations);
}

TEST_F(CudaBackendTest, Float32MatchesTheCpuSolverToSinglePrecision) {
  absl::StatusOr<std::unique_ptr<CudaBackend>> single = CudaBackend::Create({.use_float32 = true});
  ASSERT_THAT(single.status(), IsOk());
  std::vector<Problem> problems;
  for (std::uint64_t seed = 0; seed < 8; ++seed) {
    problems.push_back(RandomLqrProblem(
        {.state_dim = 8, .control_dim = 4, .horizon = 30, .bounded = seed % 2 == 1}, seed));
  }
  const std::vector<Solution> device = Solve(**single, problems);
  const std::vector<Solution> cpu = SolveOnCpu(problems);
  for (std::size_t i = 0; i < problems.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_LE(MaxRelativeDifference(device[i].u, cpu[i].u), 1e-4);
    EXPECT_LE(RelativeDifference(device[i].cost, cpu[i].cost), 1e-4);
  }
}

TEST_F(CudaBackendTest, ReusesItsBuffersAcrossBatchesOfDifferentSizes) {
  for (int batch : {1, 64, 3, 200, 7}) {
    std::vector<Problem> problems;
    for (int i = 0; i < batch; ++i) {
      problems.push_back(
          RandomPendulumProblem(RandomModelOptions(), static_cast<std::uint64_t>(i)));
    }
    const std::vector<Solution> device = Solve(*backend_, problems);
    ASSERT_EQ(device.size(), problems.size());
    EXPECT_EQ(device.back().x.size(), problems.back().x_init.size() * 20);
  }
}

// mpcd --cuda_precision=float32 reaches the device: MakeBackend's CUDA backend then computes in
// float32 (answers differ from float64 by rounding, within single precision).
TEST_F(CudaBackendTest, MakeBackendAppliesTheCudaPrecision) {
  absl::StatusOr<std::unique_ptr<SolverBackend>> single =
      MakeBackend(BackendKind::kCuda, 1, CudaPrecision::kFloat32);
  ASSERT_THAT(single.status(), IsOk());
  std::vector<Problem> problems;
  for (std::uint64_t seed = 0; seed < 4; ++seed) {
    problems.push_back(RandomLqrProblem({.state_dim = 8, .control_dim = 4, .horizon = 30}, seed));
  }
  const std::vector<Solution> f32 = Solve(**single, problems);
  const std::vector<Solution> f64 = Solve(*backend_, problems);
  for (std::size_t i = 0; i < problems.size(); ++i) {
    SCOPED_TRACE(i);
    const double diff = MaxRelativeDifference(f32[i].u, f64[i].u);
    EXPECT_GT(diff, 0.0) << "float32 gave float64's bits";
    EXPECT_LE(diff, 1e-4);
  }
}

TEST_F(CudaBackendTest, AutoPicksCuda) {
  absl::StatusOr<std::unique_ptr<SolverBackend>> automatic = MakeBackend(BackendKind::kAuto, 1);
  ASSERT_THAT(automatic.status(), IsOk());
  EXPECT_EQ((*automatic)->name(), "cuda");
}

BackwardProblem MakeBackward(const Problem& problem, const Solution& solution, std::uint64_t seed,
                             GradientMode mode) {
  testing::Rng rng(seed);
  BackwardProblem backward;
  backward.problem = &problem;
  backward.x = solution.x;
  backward.u = solution.u;
  for (std::vector<double>* cotangent : {&backward.dl_dx, &backward.dl_du}) {
    const std::size_t size = cotangent == &backward.dl_dx ? solution.x.size() : solution.u.size();
    for (std::size_t i = 0; i < size; ++i) cotangent->push_back(rng.Normal());
  }
  backward.mode = mode;
  return backward;
}

std::vector<ProblemGradient> Backward(SolverBackend& backend,
                                      const std::vector<BackwardProblem>& problems) {
  std::vector<const BackwardProblem*> inputs;
  for (const BackwardProblem& bp : problems) inputs.push_back(&bp);
  std::vector<ProblemGradient> gradients(problems.size());
  std::vector<ProblemGradient*> outputs;
  for (ProblemGradient& g : gradients) outputs.push_back(&g);
  EXPECT_THAT(backend.BackwardBatch(inputs, outputs), IsOk());
  return gradients;
}

// The device backward pass against the CPU's on every reference case: mpc.pytorch's loss at its
// answer, default and (models) full-chain modes, 1e-9 relative.
TEST_F(CudaBackendTest, BackwardMatchesCpuOnEveryReferenceCase) {
  const std::string dir = testing::ReferenceDir();
  absl::StatusOr<std::vector<std::string>> ids = testing::ListReferenceCases(dir);
  ASSERT_THAT(ids.status(), IsOk());
  double worst = 0.0;
  for (const std::string& id : *ids) {
    absl::StatusOr<testing::ReferenceCase> rc = testing::LoadReferenceCase(dir, id);
    ASSERT_THAT(rc.status(), IsOk());
    const nlohmann::json& loss = rc->raw.at("loss");
    std::vector<BackwardProblem> problems;
    for (int b = 0; b < rc->n_batch; ++b) {
      for (GradientMode mode : {GradientMode::kDefault, GradientMode::kFullChain}) {
        BackwardProblem bp;
        bp.problem = &rc->problems[b];
        bp.x = rc->outputs[b].x;
        bp.u = rc->outputs[b].u;
        bp.dl_dx = testing::ElementOfTimeFirst(loss.at("Wx"), b);
        bp.dl_du = testing::ElementOfTimeFirst(loss.at("Wu"), b);
        bp.mode = mode;
        problems.push_back(std::move(bp));
      }
    }
    const std::vector<ProblemGradient> device = Backward(*backend_, problems);
    for (std::size_t i = 0; i < problems.size(); ++i) {
      worst =
          std::max(worst, ExpectGradientMatchesCpu(device[i], ComputeGradient(problems[i]),
                                                   kDoubleTolerance, absl::StrCat(id, " #", i)));
    }
  }
  std::printf("[cuda] backward vs cpu on every reference case: max relative difference %.1e\n",
              worst);
}

// One backward batch of every kind: device shapes with active bounds and mixed slice counts, exact
// mode on a model and a shape without a device kernel (both answered by the CPU fallback), in
// float64 and float32.
TEST_F(CudaBackendTest, BackwardMatchesCpuOnRandomProblemsInOneMixedBatch) {
  std::vector<Problem> problems;
  for (std::uint64_t seed = 0; seed < 4; ++seed) {
    problems.push_back(RandomLqrProblem({.state_dim = 8,
                                         .control_dim = 4,
                                         .horizon = 30,
                                         .time_varying = seed % 2 == 0,
                                         .bounded = true},
                                        seed));
    problems.push_back(RandomLqrProblem(
        {.state_dim = 5, .control_dim = 2, .horizon = 12, .bounded = seed % 2 == 1}, seed));
    RandomModelOptions model;
    problems.push_back(RandomPendulumProblem(model, seed));
    model.horizon = 25;
    problems.push_back(RandomCartpoleProblem(model, seed));
    problems.push_back(RandomLqrProblem({.state_dim = 20, .control_dim = 2, .horizon = 6}, seed));
  }
  std::vector<Solution> solutions = SolveOnCpu(problems);
  std::vector<BackwardProblem> backward;
  for (std::size_t i = 0; i < problems.size(); ++i) {
    const bool model = !problems[i].shape.dynamics.is_linear();
    const GradientMode mode = model && i % 3 == 0 ? GradientMode::kExact : GradientMode::kFullChain;
    backward.push_back(MakeBackward(problems[i], solutions[i], 100 + i, mode));
  }
  const std::vector<ProblemGradient> device = Backward(*backend_, backward);
  double worst = 0.0;
  for (std::size_t i = 0; i < backward.size(); ++i) {
    worst = std::max(worst, ExpectGradientMatchesCpu(device[i], ComputeGradient(backward[i]),
                                                     kDoubleTolerance, absl::StrCat("#", i)));
  }
  std::printf("[cuda] backward vs cpu, mixed batch: max relative difference %.1e\n", worst);

  absl::StatusOr<std::unique_ptr<CudaBackend>> single = CudaBackend::Create({.use_float32 = true});
  ASSERT_THAT(single.status(), IsOk());
  const std::vector<ProblemGradient> device32 = Backward(**single, backward);
  for (std::size_t i = 0; i < backward.size(); ++i) {
    if (!problems[i].shape.dynamics.is_linear()) continue;
    SCOPED_TRACE(i);
    EXPECT_LE(MaxRelativeDifference(device32[i].cost_linear, device[i].cost_linear), 1e-3);
    EXPECT_LE(MaxRelativeDifference(device32[i].x_init, device[i].x_init), 1e-3);
  }
}

// The device runs the host emulation's backward code: the two agree to rounding (FMA contraction).
TEST_F(CudaBackendTest, BackwardMatchesTheHostEmulation) {
  std::vector<Problem> problems;
  for (std::uint64_t seed = 0; seed < 8; ++seed) {
    problems.push_back(RandomLqrProblem(
        {.state_dim = 8, .control_dim = 4, .horizon = 30, .bounded = seed % 2 == 0}, seed));
    problems.push_back(RandomCartpoleProblem(RandomModelOptions(), seed));
  }
  const std::vector<Solution> solutions = SolveOnCpu(problems);
  std::vector<BackwardProblem> backward;
  for (std::size_t i = 0; i < problems.size(); ++i) {
    backward.push_back(MakeBackward(problems[i], solutions[i], 7 + i, GradientMode::kDefault));
  }
  std::vector<const BackwardProblem*> inputs;
  for (const BackwardProblem& bp : backward) inputs.push_back(&bp);
  std::vector<ProblemGradient> host(backward.size());
  std::vector<ProblemGradient*> outputs;
  for (ProblemGradient& g : host) outputs.push_back(&g);
  ASSERT_THAT(BackwardBatchOnHost<double>(inputs, outputs), IsOk());
  const std::vector<ProblemGradient> device = Backward(*backend_, backward);
  for (std::size_t i = 0; i < backward.size(); ++i) {
    ExpectGradientMatchesCpu(device[i], host[i], kDoubleTolerance, absl::StrCat("#", i));
  }
}

}  // namespace
}  // namespace mpc::core
