// The core's Cholesky substitution (solver/core/small_linalg.h): all columns at once (the host's
// order for many columns) gives the bits of one column at a time (the device's), both solve the
// system, and the CPU's kernel policy (cpu/dense_kernels.h) picks either without changing a bit.
// The CPU's packed kernels for large shapes compute what the core's loops compute.

#include "solver/core/small_linalg.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "solver/cpu/dense_kernels.h"
#include "tests/testing/random_problems.h"
#include "tests/testing/same_bits.h"

namespace mpc {
namespace {

using testing::SameBits;

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

TEST(CholeskyLower, OneControlKeepsTheReciprocalOfQWithoutASquareRoot) {
  // 3 has no exact square root: through sqrt(3) the solve would round differently.
  const double q = 3.0;
  double L = 0.0;
  ASSERT_TRUE(core::CholeskyLower(&q, &L, 1));
  EXPECT_TRUE(SameBits(L, 1.0 / q));
  double rhs[3] = {1.0, -2.5, 7.0};
  core::CholeskySolveColumnsInPlace(&L, 1, rhs, 3, 3);
  EXPECT_TRUE(SameBits(rhs[0], 1.0 * (1.0 / q)));
  EXPECT_TRUE(SameBits(rhs[1], -2.5 * (1.0 / q)));
  EXPECT_TRUE(SameBits(rhs[2], 7.0 * (1.0 / q)));
  for (double not_positive : {0.0, -1.0, std::nan("")}) {
    EXPECT_FALSE(core::CholeskyLower(&not_positive, &L, 1)) << not_positive;
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
      EXPECT_TRUE(SameBits(block[i * cols + c], expected)) << "row " << i << " column " << c;
    }
  }
}

std::vector<double> NormalVector(testing::Rng& rng, int size) {
  std::vector<double> v(size);
  for (double& e : v) e = rng.Normal();
  return v;
}

double MaxAbsDifference(const std::vector<double>& a, const std::vector<double>& b) {
  double worst = 0.0;
  for (std::size_t e = 0; e < a.size(); ++e) worst = std::max(worst, std::abs(a[e] - b[e]));
  return worst;
}

TEST(PackedKernels, TheValueFunctionOfGainsIsTheCoreLoopsOne) {
  for (auto [n, m] : {std::pair{20, 5}, {33, 4}, {12, 9}, {64, 16}}) {
    ASSERT_TRUE(DenseKernels::UsesPackedProducts(n, m));
    testing::Rng rng(n * 100 + m);
    std::vector<double> Qxx = NormalVector(rng, n * n), Qux = NormalVector(rng, m * n),
                        qx = NormalVector(rng, n), qu = NormalVector(rng, m),
                        K = NormalVector(rng, m * n), k = NormalVector(rng, m);
    const System quu = RandomSystem(m, 1, n + m);  // Quu symmetric, as a stage's is
    std::vector<double> QuuK(m * n), tmp(m), V_core(n * n), v_core(n), V_packed(n * n), v_packed(n);
    core::ValueFunctionOfGains(Qxx.data(), Qux.data(), quu.Q.data(), qx.data(), qu.data(), K.data(),
                               k.data(), n, m, QuuK.data(), tmp.data(), V_core.data(),
                               v_core.data());
    DenseKernels::ValueFunctionOfGains(Qxx.data(), Qux.data(), quu.Q.data(), qx.data(), qu.data(),
                                       K.data(), k.data(), n, m, QuuK.data(), tmp.data(),
                                       V_packed.data(), v_packed.data());
    EXPECT_LT(MaxAbsDifference(V_packed, V_core), 1e-11) << "n " << n << " m " << m;
    EXPECT_LT(MaxAbsDifference(v_packed, v_core), 1e-11) << "n " << n << " m " << m;
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < n; ++j) EXPECT_EQ(V_packed[i * n + j], V_packed[j * n + i]);
    }
  }
}

TEST(PackedKernels, TheStageCostAndItsPartOfQReadTheBlocksTheCoreReads) {
  const int n = 20, m = 6, nt = n + m;
  testing::Rng rng(11);
  // Not symmetric, so that reading the upper-right block where the core reads the lower-left
  // one would show.
  const std::vector<double> C = NormalVector(rng, nt * nt), c = NormalVector(rng, nt),
                            x = NormalVector(rng, n), u = NormalVector(rng, m);
  std::vector<double> Qxx(n * n), Qux(m * n), Quu(m * m), qx(n), qu(m);
  DenseKernels::PackedCostToQ(C.data(), c.data(), x.data(), u.data(), n, m, Qxx.data(), Qux.data(),
                              Quu.data(), qx.data(), qu.data());
  for (int i = 0; i < n; ++i) {
    double expected = c[i];
    for (int j = 0; j < n; ++j) expected += C[i * nt + j] * x[j];
    for (int j = 0; j < m; ++j) expected += C[(n + j) * nt + i] * u[j];
    EXPECT_NEAR(qx[i], expected, 1e-12) << "qx " << i;
    for (int j = 0; j < n; ++j) EXPECT_EQ(Qxx[i * n + j], C[i * nt + j]);
  }
  for (int i = 0; i < m; ++i) {
    double expected = c[n + i];
    for (int j = 0; j < n; ++j) expected += C[(n + i) * nt + j] * x[j];
    for (int j = 0; j < m; ++j) expected += C[(n + i) * nt + n + j] * u[j];
    EXPECT_NEAR(qu[i], expected, 1e-12) << "qu " << i;
    for (int j = 0; j < n; ++j) EXPECT_EQ(Qux[i * n + j], C[(n + i) * nt + j]);
    for (int j = 0; j < m; ++j) EXPECT_EQ(Quu[i * m + j], C[(n + i) * nt + n + j]);
  }
  double cost = 0.0;
  for (int i = 0; i < n; ++i) {
    double s = 0.0;
    for (int j = 0; j < n; ++j) s += C[i * nt + j] * x[j];
    cost += x[i] * (0.5 * s + c[i]);
  }
  for (int i = 0; i < m; ++i) {
    double sx = 0.0, su = 0.0;
    for (int j = 0; j < n; ++j) sx += C[(n + i) * nt + j] * x[j];
    for (int j = 0; j < m; ++j) su += C[(n + i) * nt + n + j] * u[j];
    cost += u[i] * (sx + 0.5 * su + c[n + i]);
  }
  EXPECT_NEAR(DenseKernels::PackedStageCost(C.data(), c.data(), x.data(), u.data(), n, m), cost,
              1e-11);
}

TEST(PackedKernels, TheLinearStepIsFTimesTauPlusF) {
  const int n = 24, m = 7, nt = n + m;
  testing::Rng rng(12);
  const std::vector<double> F = NormalVector(rng, n * nt), f = NormalVector(rng, n),
                            x = NormalVector(rng, n), u = NormalVector(rng, m);
  std::vector<double> with_offset(n), without(n);
  DenseKernels::PackedLinearStep(F.data(), f.data(), x.data(), u.data(), n, m, with_offset.data());
  DenseKernels::PackedLinearStep(F.data(), static_cast<const double*>(nullptr), x.data(), u.data(),
                                 n, m, without.data());
  for (int i = 0; i < n; ++i) {
    double expected = 0.0;
    for (int j = 0; j < n; ++j) expected += F[i * nt + j] * x[j];
    for (int j = 0; j < m; ++j) expected += F[i * nt + n + j] * u[j];
    EXPECT_NEAR(without[i], expected, 1e-12) << i;
    EXPECT_NEAR(with_offset[i], expected + f[i], 1e-12) << i;
  }
}

}  // namespace
}  // namespace mpc
