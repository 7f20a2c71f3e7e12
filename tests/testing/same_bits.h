#ifndef MPC_TESTS_TESTING_SAME_BITS_H_
#define MPC_TESTS_TESTING_SAME_BITS_H_

// Bit-for-bit comparisons of doubles (a NaN equals the same NaN, and 0.0 differs from -0.0), for
// the tests that hold two code paths to the same bits.

#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "solver/problem.h"

namespace mpc::testing {

inline bool SameBits(double a, double b) { return std::memcmp(&a, &b, sizeof(double)) == 0; }

// The same sizes and every element's bits (two empty arrays are the same).
inline bool SameBits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
}

// Two solves of one problem gave the same answer, bit for bit: trajectories, gains, cost, step
// norm, status and iteration count.
inline void ExpectSameSolutionBits(const Solution& a, const Solution& b) {
  EXPECT_TRUE(SameBits(a.x, b.x));
  EXPECT_TRUE(SameBits(a.u, b.u));
  EXPECT_TRUE(SameBits(a.feedback, b.feedback));
  EXPECT_TRUE(SameBits(a.cost, b.cost));
  EXPECT_TRUE(SameBits(a.step_norm, b.step_norm));
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.iterations, b.iterations);
}

}  // namespace mpc::testing

#endif  // MPC_TESTS_TESTING_SAME_BITS_H_
