// The CPU's rollout scalar of four samples (solver/cpu/double_lanes.h) against double, lane by
// lane: arithmetic bitwise, libmvec's sin, cos and atan2 within their documented 4 ulp of the
// scalar libm's, Clamp with the scalar Clamp's semantics, and every built-in model's step.

#include "solver/cpu/double_lanes.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "solver/dual.h"
#include "solver/models/integrators.h"
#include "solver/models/model_list.h"
#include "tests/testing/same_bits.h"

namespace mpc {
namespace {

constexpr int kLanes = DoubleLanes::kLanes;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

using testing::SameBits;

// Units in the last place between two finite doubles of the same sign (or both zero).
std::int64_t UlpDistance(double a, double b) {
  std::int64_t ia, ib;
  std::memcpy(&ia, &a, sizeof(double));
  std::memcpy(&ib, &b, sizeof(double));
  if (ia < 0) ia = std::numeric_limits<std::int64_t>::min() - ia;
  if (ib < 0) ib = std::numeric_limits<std::int64_t>::min() - ib;
  return ia > ib ? ia - ib : ib - ia;
}

// Values of every kind a rollout meets: small and large angles, zeros of both signs, non-finite.
std::vector<double> Arguments() {
  std::vector<double> values = {0.0,  -0.0,  1e-300, -1e-300, 1e-8, 0.5,  -0.5,  3.14159,
                                -7.0, 100.0, 1e6,    -1e6,    1e22, kInf, -kInf, kNaN};
  std::mt19937_64 random(5);
  std::uniform_real_distribution<double> angle(-20.0, 20.0);
  for (int i = 0; i < 400; ++i) values.push_back(angle(random));
  while (values.size() % kLanes != 0) values.push_back(1.0);
  return values;
}

// Expects f's lanes within max_ulp of g on each lane (NaN where g is NaN).
template <class F, class G>
void ExpectUnaryLanes(F f, G g, std::int64_t max_ulp) {
  const std::vector<double> values = Arguments();
  for (std::size_t k = 0; k < values.size(); k += kLanes) {
    const DoubleLanes result = f(DoubleLanes::Load(&values[k]));
    for (int lane = 0; lane < kLanes; ++lane) {
      const double x = values[k + lane], expected = g(x);
      SCOPED_TRACE(::testing::Message() << "x = " << x);
      if (std::isnan(expected)) {
        EXPECT_TRUE(std::isnan(result[lane]));
      } else {
        EXPECT_LE(UlpDistance(result[lane], expected), max_ulp) << result[lane] << " " << expected;
      }
    }
  }
}

TEST(DoubleLanesTest, ArithmeticIsDoublesLaneByLaneBitwise) {
  const std::vector<double> a = Arguments();
  std::vector<double> b = a;
  std::mt19937_64 random(3);
  std::shuffle(b.begin(), b.end(), random);
  for (std::size_t k = 0; k < a.size(); k += kLanes) {
    const DoubleLanes x = DoubleLanes::Load(&a[k]), y = DoubleLanes::Load(&b[k]);
    DoubleLanes accumulated = x;
    accumulated += y;
    accumulated *= y;
    for (int lane = 0; lane < kLanes; ++lane) {
      const double p = a[k + lane], q = b[k + lane];
      EXPECT_TRUE(SameBits((x + y)[lane], p + q));
      EXPECT_TRUE(SameBits((x - y)[lane], p - q));
      EXPECT_TRUE(SameBits((x * y)[lane], p * q));
      EXPECT_TRUE(SameBits((x / y)[lane], p / q));
      EXPECT_TRUE(SameBits((-x)[lane], -p));
      EXPECT_TRUE(SameBits((2.5 * x + y / 3.0)[lane], 2.5 * p + q / 3.0));
      EXPECT_TRUE(SameBits(accumulated[lane], (p + q) * q));
    }
  }
}

// glibc documents at most 4 ulp for the AVX2 variants (and the scalar ones are within 1).
TEST(DoubleLanesTest, TranscendentalsAreWithinLibmvecsUlpsOfTheScalarLibm) {
  ExpectUnaryLanes([](const DoubleLanes& x) { return sin(x); },
                   [](double x) { return std::sin(x); }, 5);
  ExpectUnaryLanes([](const DoubleLanes& x) { return cos(x); },
                   [](double x) { return std::cos(x); }, 5);
  ExpectUnaryLanes(
      [](const DoubleLanes& x) {
        DoubleLanes s, c;
        SinCos(x, &s, &c);
        return s * s + c * c;
      },
      [](double x) { return std::sin(x) * std::sin(x) + std::cos(x) * std::cos(x); }, 16);
  const std::vector<double> values = Arguments();
  for (std::size_t k = 0; k < values.size(); k += kLanes) {
    for (std::size_t j = 0; j < values.size(); j += 97 * kLanes) {
      const DoubleLanes y = DoubleLanes::Load(&values[k]), x = DoubleLanes::Load(&values[j]);
      const DoubleLanes result = atan2(y, x);
      for (int lane = 0; lane < kLanes; ++lane) {
        const double expected = std::atan2(values[k + lane], values[j + lane]);
        SCOPED_TRACE(::testing::Message()
                     << "atan2(" << values[k + lane] << ", " << values[j + lane] << ")");
        if (std::isnan(expected)) {
          EXPECT_TRUE(std::isnan(result[lane]));
        } else {
          EXPECT_LE(UlpDistance(result[lane], expected), 5) << result[lane] << " " << expected;
        }
      }
    }
  }
}

TEST(DoubleLanesTest, ClampHasTheScalarClampsSemantics) {
  const std::vector<double> values = Arguments();
  for (std::size_t k = 0; k < values.size(); k += kLanes) {
    const DoubleLanes clamped = Clamp(DoubleLanes::Load(&values[k]), -2.0, 2.0);
    for (int lane = 0; lane < kLanes; ++lane) {
      const double expected = Clamp(values[k + lane], -2.0, 2.0);
      EXPECT_TRUE(SameBits(clamped[lane], expected) ||
                  (std::isnan(expected) && std::isnan(clamped[lane])))
          << values[k + lane];
    }
  }
}

// Every built-in model steps four random states at once as four doubles do, to the rounding of
// libmvec's transcendentals (lanes of different states, so each lane has its own branch values).
// States within +-1: away from the quadrotor's gimbal lock at pitch +-pi/2, where tan(pitch)
// magnifies the last bits of cos by orders of magnitude.
TEST(DoubleLanesTest, EveryBuiltinModelStepsEachLaneAsDoubleDoes) {
  ForEachBuiltinModel([]<class Model>() {
    SCOPED_TRACE(Model::kName);
    constexpr int n = Model::kStateDim, m = Model::kControlDim;
    std::mt19937_64 random(11);
    std::uniform_real_distribution<double> value(-1.0, 1.0);
    double params[Model::kParamDim];
    for (int k = 0; k < Model::kParamDim; ++k) params[k] = Model::kDefaultParams[k];
    const TimeStep step(Model::kDefaultDt, Integrator::kDefault);
    double x[kLanes][n], u[kLanes][m], next[kLanes][n];
    DoubleLanes x_lanes[n], u_lanes[m], next_lanes[n];
    for (int trial = 0; trial < 50; ++trial) {
      for (int lane = 0; lane < kLanes; ++lane) {
        for (int i = 0; i < n; ++i) x[lane][i] = value(random);
        // Beyond the pendulum's clamp (|u| <= 2) too; larger controls spin the quadrotor through
        // gimbal lock within one RK4 step (Clamp itself is tested above).
        for (int j = 0; j < m; ++j) u[lane][j] = 3.0 * value(random);
        ModelStep<Model>(x[lane], u[lane], params, step, next[lane]);
      }
      for (int i = 0; i < n; ++i) {
        const double column[kLanes] = {x[0][i], x[1][i], x[2][i], x[3][i]};
        x_lanes[i] = DoubleLanes::Load(column);
      }
      for (int j = 0; j < m; ++j) {
        const double column[kLanes] = {u[0][j], u[1][j], u[2][j], u[3][j]};
        u_lanes[j] = DoubleLanes::Load(column);
      }
      ModelStep<Model>(x_lanes, u_lanes, params, step, next_lanes);
      for (int lane = 0; lane < kLanes; ++lane) {
        for (int i = 0; i < n; ++i) {
          EXPECT_NEAR(next_lanes[i][lane], next[lane][i], 1e-12 * (1.0 + std::abs(next[lane][i])))
              << "lane " << lane << ", state " << i;
        }
      }
    }
  });
}

}  // namespace
}  // namespace mpc
