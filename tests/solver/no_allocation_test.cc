// Proves the iteration loop allocates nothing once a ShapeSolver and its Solution are sized:
// Eigen's runtime malloc guard catches Eigen temporaries, and a counting global operator new
// catches every other heap allocation (std::vector growth, std::function, ...). Single-threaded on
// purpose: Eigen's flag is global.

#include <utility>

#include "Eigen/Core"
#include "gtest/gtest.h"
#include "solver/cpu/ilqr.h"
#include "tests/testing/heap_allocations.h"
#include "tests/testing/random_problems.h"

namespace mpc {
namespace {

using testing::RandomCartpoleProblem;
using testing::RandomLqrProblem;
using testing::RandomModelOptions;
using testing::RandomPendulumProblem;

void ExpectSolveAllocatesNothing(const Problem& problem, bool dynamic_size) {
  auto solver =
      dynamic_size ? MakeDynamicSizeShapeSolver(problem.shape) : MakeShapeSolver(problem.shape);
  Solution solution;
  solver->Solve(problem, &solution);  // sizes the solution, warms statics
  const long allocations = testing::HeapAllocationsOf([&] {
    Eigen::internal::set_is_malloc_allowed(false);
    solver->Solve(problem, &solution);
    Eigen::internal::set_is_malloc_allowed(true);
  });
  EXPECT_EQ(allocations, 0) << "heap allocations inside Solve";
  EXPECT_GT(solution.iterations, 0);
}

TEST(NoAllocationTest, PendulumWithBoundsAndGains) {
  RandomModelOptions model;
  Problem problem = RandomPendulumProblem(model, 1);
  problem.options.max_iterations = 30;
  problem.options.compute_gains = true;
  ExpectSolveAllocatesNothing(problem, false);
  ExpectSolveAllocatesNothing(problem, true);
}

TEST(NoAllocationTest, Cartpole) {
  RandomModelOptions model;
  model.horizon = 25;
  Problem problem = RandomCartpoleProblem(model, 2);
  problem.options.max_iterations = 30;
  ExpectSolveAllocatesNothing(problem, false);
  ExpectSolveAllocatesNothing(problem, true);
}

TEST(NoAllocationTest, LinearFixedAndDynamicSizes) {
  for (bool bounded : {false, true}) {
    Problem problem = RandomLqrProblem(
        {.state_dim = 8, .control_dim = 4, .horizon = 30, .time_varying = true, .bounded = bounded},
        3);
    ExpectSolveAllocatesNothing(problem, false);
    Problem odd =
        RandomLqrProblem({.state_dim = 7, .control_dim = 3, .horizon = 15, .bounded = bounded}, 4);
    ExpectSolveAllocatesNothing(odd, true);
  }
}

// Shapes beyond the device's take the CPU's packed products (cpu/dense_kernels.h).
TEST(NoAllocationTest, PackedShapes) {
  for (bool bounded : {false, true}) {
    for (auto [n, m] : {std::pair{20, 5}, {64, 16}}) {
      Problem problem = RandomLqrProblem(
          {.state_dim = n, .control_dim = m, .horizon = 6, .bounded = bounded}, n + m);
      ExpectSolveAllocatesNothing(problem, true);
    }
  }
}

// The sampling methods run from the same worker buffers (grown on the first solve).
TEST(NoAllocationTest, EverySamplingMethod) {
  for (SolverMethod method : {SolverMethod::kCem, SolverMethod::kMppi, SolverMethod::kCemThenIlqr,
                              SolverMethod::kMppiThenIlqr}) {
    RandomModelOptions model;
    Problem pendulum = RandomPendulumProblem(model, 5);
    pendulum.options.method = method;
    pendulum.options.compute_gains = true;
    pendulum.options.sampling = {.samples = 64, .elites = 8, .iterations = 3, .knot_spacing = 4};
    ExpectSolveAllocatesNothing(pendulum, false);
    Problem odd = RandomLqrProblem({.state_dim = 7, .control_dim = 3, .horizon = 15}, 6);
    odd.options.method = method;
    odd.options.sampling = pendulum.options.sampling;
    ExpectSolveAllocatesNothing(odd, true);
  }
}

}  // namespace
}  // namespace mpc
