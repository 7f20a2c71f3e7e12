// The core's Cholesky substitution (solver/core/small_linalg.h): all columns at once (the host's
// order for many columns) gives the bits of one column at a time (the device's), both solve the
// system, and the CPU's kernel policy (cpu/dense_kernels.h) picks either without changing a bit.

#include "solver/core/small_linalg.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "solver/cpu/dense_kernels.h"
#include "tests/testing/random_problems.h"

namespace mpc {
namespace {

struct System {
  std::vector<double> Q;    // (m, m), symmetric positive definite
  std::vector<double> L;    // CholeskyLower(Q)
  std::vector<double> rhs;  // (m, cols)
};

System RandomSystem(int m, int cols, std::uint64_t seed) {
  testing::Rng rng(seed);
  std::vector<double> G(m * m);
  for (double& g : G) g = rng.Normal();
  System s;
  s.Q.assign(m * m, 0.0);
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < m; ++j) {
      double sum = i == j ? 0.5 : 0.0;
      for (int k = 0; k < m; ++k) sum += G[i * m + k] * G[j * m + k];
      s.Q[i * m + j] = sum;
    }
  }
  s.L.assign(m * m, 0.0);
  EXPECT_TRUE(core::CholeskyLower(s.Q.data(), s.L.data(), m));
  s.rhs.resize(m * cols);
  for (double& r : s.rhs) r = rng.Normal();
  return s;
}

bool SameBits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

TEST(CholeskySolve, AllColumnsAtOnceGiveOneColumnAtATimesBitsAndSolveTheSystem) {
  for (int m : {1, 2, 3, 5, 8, 9, 16, 33}) {
    for (int cols : {1, 2, 5, 8, 17, 40, 128}) {
      const System s = RandomSystem(m, cols, 100 * m + cols);
      std::vector<double> by_columns = s.rhs, by_rows = s.rhs, chosen = s.rhs;
      core::CholeskySolveInPlace(s.L.data(), m, by_columns.data(), cols);
      core::CholeskySolveColumnsInPlace(s.L.data(), m, by_rows.data(), cols, cols);
      DenseKernels::CholeskySolveInPlace(s.L.data(), m, chosen.data(), cols);
      EXPECT_TRUE(SameBits(by_rows, by_columns)) << "m " << m << " cols " << cols;
      EXPECT_TRUE(SameBits(chosen, by_columns)) << "m " << m << " cols " << cols;
      // Q x = rhs, to the conditioning of Q.
      double worst = 0.0;
      for (int i = 0; i < m; ++i) {
        for (int c = 0; c < cols; ++c) {
          double q_x = 0.0;
          for (int k = 0; k < m; ++k) q_x += s.Q[i * m + k] * by_rows[k * cols + c];
          worst = std::max(worst, std::abs(q_x - s.rhs[i * cols + c]));
        }
      }
      EXPECT_LT(worst, 1e-8) << "m " << m << " cols " << cols;
    }
  }
}

TEST(CholeskySolve, ABlockOfColumnsLeavesTheOthersAsTheyWere) {
  const int m = 6, cols = 9, first = 2, width = 4;
  const System s = RandomSystem(m, cols, 7);
  std::vector<double> all = s.rhs, block = s.rhs;
  core::CholeskySolveInPlace(s.L.data(), m, all.data(), cols);
  core::CholeskySolveColumnsInPlace(s.L.data(), m, block.data() + first, cols, width);
  for (int i = 0; i < m; ++i) {
    for (int c = 0; c < cols; ++c) {
      const bool solved = c >= first && c < first + width;
      const double expected = solved ? all[i * cols + c] : s.rhs[i * cols + c];
      EXPECT_EQ(std::memcmp(&block[i * cols + c], &expected, sizeof(double)), 0)
          << "row " << i << " column " << c;
    }
  }
}

}  // namespace
}  // namespace mpc
