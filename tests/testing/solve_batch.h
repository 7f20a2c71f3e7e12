#ifndef MPC_TESTS_TESTING_SOLVE_BATCH_H_
#define MPC_TESTS_TESTING_SOLVE_BATCH_H_

// Solves problems as one SolveBatch call on a backend, expecting it to succeed; the solutions in
// the problems' order. For the tests that compare backends, batches and orders.

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "solver/problem.h"
#include "solver/solver_backend.h"
#include "tests/testing/status_matchers.h"

namespace mpc::testing {

inline std::vector<Solution> SolveAll(SolverBackend& backend,
                                      const std::vector<const Problem*>& problems) {
  std::vector<Solution> solutions(problems.size());
  std::vector<Solution*> outputs;
  for (Solution& s : solutions) outputs.push_back(&s);
  EXPECT_THAT(backend.SolveBatch(problems, outputs), IsOk());
  return solutions;
}

inline std::vector<Solution> SolveAll(SolverBackend& backend,
                                      const std::vector<Problem>& problems) {
  std::vector<const Problem*> pointers;
  for (const Problem& p : problems) pointers.push_back(&p);
  return SolveAll(backend, pointers);
}

}  // namespace mpc::testing

#endif  // MPC_TESTS_TESTING_SOLVE_BATCH_H_
