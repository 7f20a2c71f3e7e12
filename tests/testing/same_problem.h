#ifndef MPC_TESTS_TESTING_SAME_PROBLEM_H_
#define MPC_TESTS_TESTING_SAME_PROBLEM_H_

// Two converted problems hold the same values, bit for bit (e.g. one request spelled out and the
// same request with shared or stacked fields).

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "solver/problem.h"

namespace mpc::testing {

inline void ExpectSameProblem(const Problem& a, const Problem& b) {
  using ::testing::ElementsAreArray;
  EXPECT_THAT(a.x_init, ElementsAreArray(b.x_init));
  EXPECT_THAT(a.cost_quadratic, ElementsAreArray(b.cost_quadratic));
  EXPECT_THAT(a.cost_linear, ElementsAreArray(b.cost_linear));
  EXPECT_THAT(a.transition, ElementsAreArray(b.transition));
  EXPECT_THAT(a.offset, ElementsAreArray(b.offset));
  EXPECT_THAT(a.params, ElementsAreArray(b.params));
  EXPECT_THAT(a.u_lower, ElementsAreArray(b.u_lower));
  EXPECT_THAT(a.u_upper, ElementsAreArray(b.u_upper));
  EXPECT_THAT(a.u_init, ElementsAreArray(b.u_init));
  EXPECT_EQ(a.shape.dynamics, b.shape.dynamics);
  EXPECT_EQ(a.shape.state_dim, b.shape.state_dim);
  EXPECT_EQ(a.shape.control_dim, b.shape.control_dim);
  EXPECT_EQ(a.shape.horizon, b.shape.horizon);
  EXPECT_EQ(a.dt, b.dt);
}

}  // namespace mpc::testing

#endif  // MPC_TESTS_TESTING_SAME_PROBLEM_H_
