// Four steps' Jacobians in one lane evaluation (solver/cpu/model_lanes.h) against the scalar
// StepWithJacobians and StepParamJacobian of every built-in model: the same Jacobians to the
// rounding of libmvec's transcendentals, each lane's bits its own point's whatever the neighbouring
// lanes hold, and the dual Clamp of the lanes with the scalar dual Clamp's values and derivatives.

#include "solver/cpu/model_lanes.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "solver/dual.h"
#include "solver/models/model_derivatives.h"
#include "solver/models/model_list.h"
#include "tests/testing/same_bits.h"

namespace mpc {
namespace {

constexpr int kLanes = kModelLanes;

using testing::SameBits;

// Random points of one model: (kLanes, n) states and (kLanes, m) controls within +-1 (away from
// the quadrotor's gimbal lock, as in double_lanes_test.cc) and controls beyond the pendulum's
// clamp.
template <class Model>
struct Points {
  static constexpr int n = Model::kStateDim;
  static constexpr int m = Model::kControlDim;
  std::vector<double> x = std::vector<double>(kLanes * n);
  std::vector<double> u = std::vector<double>(kLanes * m);

  explicit Points(std::mt19937_64* random) {
    std::uniform_real_distribution<double> value(-1.0, 1.0);
    for (double& v : x) v = value(*random);
    for (double& v : u) v = 3.0 * value(*random);
  }
};

// A (count, n, n) and B (count, n, m) of StepJacobiansInLanes at the first `count` points.
template <class Model>
void JacobiansInLanes(const double* x, const double* u, const double* params, TimeStep step,
                      int count, std::vector<double>* A, std::vector<double>* B) {
  constexpr int n = Model::kStateDim, m = Model::kControlDim;
  A->assign(count * n * n, std::numeric_limits<double>::quiet_NaN());
  B->assign(count * n * m, std::numeric_limits<double>::quiet_NaN());
  double* A_targets[kLanes];
  double* B_targets[kLanes];
  for (int k = 0; k < count; ++k) {
    A_targets[k] = A->data() + k * n * n;
    B_targets[k] = B->data() + k * n * m;
  }
  StepJacobiansInLanes<Model>(x, u, params, step, count, A_targets, B_targets);
}

// next (count, n) and P (count, n, p) of StepParamJacobianInLanes at the first `count` points.
template <class Model>
void ParamJacobianInLanes(const double* x, const double* u, const double* params, TimeStep step,
                          int count, std::vector<double>* next, std::vector<double>* P) {
  constexpr int n = Model::kStateDim, np = Model::kParamDim;
  next->assign(count * n, std::numeric_limits<double>::quiet_NaN());
  P->assign(count * n * np, std::numeric_limits<double>::quiet_NaN());
  double* P_targets[kLanes];
  for (int k = 0; k < count; ++k) P_targets[k] = P->data() + k * n * np;
  StepParamJacobianInLanes<Model>(x, u, params, step, count, next->data(), P_targets);
}

// max(1, the largest |entry|) of want_a (size_a) and want_b (size_b): the scale of the tolerance.
double Scale(const double* want_a, int size_a, const double* want_b = nullptr, int size_b = 0) {
  double scale = 1.0;
  for (int e = 0; e < size_a; ++e) scale = std::max(scale, std::abs(want_a[e]));
  for (int e = 0; e < size_b; ++e) scale = std::max(scale, std::abs(want_b[e]));
  return scale;
}

// Every entry of got within 1e-12 * scale of want's, reported by entry.
void ExpectNearScaled(const double* got, const double* want, int size, double scale,
                      const std::string& what) {
  for (int e = 0; e < size; ++e) {
    EXPECT_NEAR(got[e], want[e], 1e-12 * scale) << what << ", entry " << e;
  }
}

std::string Where(int count, int k) {
  return "count " + std::to_string(count) + ", point " + std::to_string(k);
}

// A, B (StepWithJacobians) and df/dp with the step (StepParamJacobian) in lanes against the
// scalar functions.
TEST(ModelLanesTest, EveryBuiltinModelsFirstDerivativesAreTheScalarOnesAtEachPoint) {
  ForEachBuiltinModel([]<class Model>() {
    SCOPED_TRACE(Model::kName);
    constexpr int n = Model::kStateDim, m = Model::kControlDim, np = Model::kParamDim;
    std::mt19937_64 random(17);
    const TimeStep step(Model::kDefaultDt, Integrator::kDefault);
    for (int trial = 0; trial < 40; ++trial) {
      const Points<Model> points(&random);
      for (int count = 1; count <= kLanes; ++count) {
        std::vector<double> A, B, next, P;
        JacobiansInLanes<Model>(points.x.data(), points.u.data(), Model::kDefaultParams, step,
                                count, &A, &B);
        ParamJacobianInLanes<Model>(points.x.data(), points.u.data(), Model::kDefaultParams, step,
                                    count, &next, &P);
        for (int k = 0; k < count; ++k) {
          double want_next[n], want_A[n * n], want_B[n * m], want_P[n * np];
          StepWithJacobians<Model, MatrixOrder::kRowMajor>(&points.x[k * n], &points.u[k * m],
                                                           Model::kDefaultParams, step, want_next,
                                                           want_A, want_B);
          const double jacobian_scale = Scale(want_A, n * n, want_B, n * m);
          ExpectNearScaled(&A[k * n * n], want_A, n * n, jacobian_scale, Where(count, k) + ", A");
          ExpectNearScaled(&B[k * n * m], want_B, n * m, jacobian_scale, Where(count, k) + ", B");
          StepParamJacobian<Model>(&points.x[k * n], &points.u[k * m], Model::kDefaultParams, step,
                                   want_next, want_P);
          const double param_scale = Scale(want_P, n * np, want_next, n);
          ExpectNearScaled(&next[k * n], want_next, n, param_scale, Where(count, k) + ", next");
          ExpectNearScaled(&P[k * n * np], want_P, n * np, param_scale, Where(count, k) + ", P");
        }
      }
    }
  });
}

// The second derivatives (StepMixedDirectional, StepTauHessian, StepMixedSecondDerivatives: the
// backward pass's full-chain and exact modes) in lanes against the scalar functions, nested duals
// of DoubleLanes included.
TEST(ModelLanesTest, EveryBuiltinModelsSecondDerivativesAreTheScalarOnesAtEachPoint) {
  ForEachBuiltinModel([]<class Model>() {
    SCOPED_TRACE(Model::kName);
    constexpr int n = Model::kStateDim, m = Model::kControlDim, np = Model::kParamDim;
    constexpr int nt = n + m;
    std::mt19937_64 random(31);
    const TimeStep step(Model::kDefaultDt, Integrator::kDefault);
    for (int trial = 0; trial < 10; ++trial) {
      const Points<Model> points(&random), direction(&random), costate(&random);
      for (int count = 1; count <= kLanes; ++count) {
        std::vector<double> mixed(count * np), hessian(count * nt * nt), cross(count * nt * np);
        double* mixed_targets[kLanes];
        double* hessian_targets[kLanes];
        double* cross_targets[kLanes];
        for (int k = 0; k < count; ++k) {
          mixed_targets[k] = &mixed[k * np];
          hessian_targets[k] = &hessian[k * nt * nt];
          cross_targets[k] = &cross[k * nt * np];
        }
        const double* x = points.x.data();
        const double* u = points.u.data();
        const double* lambda = costate.x.data();
        StepMixedDirectionalInLanes<Model>(x, u, Model::kDefaultParams, step, lambda,
                                           direction.x.data(), direction.u.data(), count,
                                           mixed_targets);
        StepSecondDerivativesInLanes<Model, false>(x, u, Model::kDefaultParams, step, lambda, count,
                                                   hessian_targets);
        StepSecondDerivativesInLanes<Model, true>(x, u, Model::kDefaultParams, step, lambda, count,
                                                  cross_targets);
        for (int k = 0; k < count; ++k) {
          const std::string where = Where(count, k);
          double want_mixed[np], want_hessian[nt * nt], want_cross[nt * np];
          StepMixedDirectional<Model>(&x[k * n], &u[k * m], Model::kDefaultParams, step,
                                      &lambda[k * n], &direction.x[k * n], &direction.u[k * m],
                                      want_mixed);
          StepTauHessian<Model>(&x[k * n], &u[k * m], Model::kDefaultParams, step, &lambda[k * n],
                                want_hessian);
          StepMixedSecondDerivatives<Model>(&x[k * n], &u[k * m], Model::kDefaultParams, step,
                                            &lambda[k * n], want_cross);
          ExpectNearScaled(&mixed[k * np], want_mixed, np, Scale(want_mixed, np),
                           where + ", mixed directional");
          ExpectNearScaled(&hessian[k * nt * nt], want_hessian, nt * nt,
                           Scale(want_hessian, nt * nt), where + ", tau Hessian");
          ExpectNearScaled(&cross[k * nt * np], want_cross, nt * np, Scale(want_cross, nt * np),
                           where + ", mixed block");
        }
      }
    }
  });
}

// A point's Jacobians do not depend on its lane or on the points beside it (or on how many lanes
// are in use): the solver's result for a step never depends on the steps it is evaluated with.
TEST(ModelLanesTest, EachPointsJacobiansAreItsOwnBitsInAnyLaneBesideAnyPoints) {
  ForEachBuiltinModel([]<class Model>() {
    SCOPED_TRACE(Model::kName);
    constexpr int n = Model::kStateDim, m = Model::kControlDim, np = Model::kParamDim;
    std::mt19937_64 random(29);
    const TimeStep step(Model::kDefaultDt, Integrator::kDefault);
    for (int trial = 0; trial < 20; ++trial) {
      const Points<Model> points(&random);
      std::vector<double> alone_A, alone_B, A, B, alone_next, alone_P, next, P;
      for (int k = 0; k < kLanes; ++k) {
        JacobiansInLanes<Model>(&points.x[k * n], &points.u[k * m], Model::kDefaultParams, step, 1,
                                &alone_A, &alone_B);
        ParamJacobianInLanes<Model>(&points.x[k * n], &points.u[k * m], Model::kDefaultParams, step,
                                    1, &alone_next, &alone_P);
        // Point k in lane `lane` of a fresh set of neighbours.
        for (int lane = 0; lane < kLanes; ++lane) {
          Points<Model> mixed(&random);
          std::copy_n(&points.x[k * n], n, &mixed.x[lane * n]);
          std::copy_n(&points.u[k * m], m, &mixed.u[lane * m]);
          JacobiansInLanes<Model>(mixed.x.data(), mixed.u.data(), Model::kDefaultParams, step,
                                  kLanes, &A, &B);
          for (int e = 0; e < n * n; ++e) {
            EXPECT_TRUE(SameBits(A[lane * n * n + e], alone_A[e]))
                << "point " << k << " in lane " << lane << ", A entry " << e;
          }
          for (int e = 0; e < n * m; ++e) {
            EXPECT_TRUE(SameBits(B[lane * n * m + e], alone_B[e]))
                << "point " << k << " in lane " << lane << ", B entry " << e;
          }
          ParamJacobianInLanes<Model>(mixed.x.data(), mixed.u.data(), Model::kDefaultParams, step,
                                      kLanes, &next, &P);
          for (int e = 0; e < n; ++e) {
            EXPECT_TRUE(SameBits(next[lane * n + e], alone_next[e]))
                << "point " << k << " in lane " << lane << ", next entry " << e;
          }
          for (int e = 0; e < n * np; ++e) {
            EXPECT_TRUE(SameBits(P[lane * n * np + e], alone_P[e]))
                << "point " << k << " in lane " << lane << ", P entry " << e;
          }
        }
      }
    }
  });
}

// The nested duals of the second derivatives: the value and every inner and outer derivative as
// the scalar nested Clamp's, lane by lane.
TEST(ModelLanesTest, TheNestedDualClampOfLanesIsTheScalarNestedClampLaneByLane) {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  const double values[] = {-3.0, -2.0, 0.0, 2.0001, 1.5, kNaN, 7.0, -1.999};
  constexpr int kCount = sizeof(values) / sizeof(values[0]);
  static_assert(kCount % kLanes == 0);
  using Lanes = Dual<Dual<DoubleLanes, 2>, 2>;
  using Scalar = Dual<Dual<double, 2>, 2>;
  for (int k = 0; k < kCount; k += kLanes) {
    // Element e of lane `lane`: e = 0 the value, then the inner derivatives, the outer ones.
    const auto element = [&](int lane, int e) {
      return e == 0 ? values[k + lane] : e + 0.25 * lane;
    };
    const auto lanes_of = [&](int e) {
      double v[kLanes];
      for (int lane = 0; lane < kLanes; ++lane) v[lane] = element(lane, e);
      return DoubleLanes::Load(v);
    };
    Lanes a;
    a.v.v = lanes_of(0);
    a.v.d[0] = lanes_of(1);
    a.v.d[1] = lanes_of(2);
    for (int i = 0; i < 2; ++i) {
      a.d[i].v = lanes_of(3 + 3 * i);
      a.d[i].d[0] = lanes_of(4 + 3 * i);
      a.d[i].d[1] = lanes_of(5 + 3 * i);
    }
    const Lanes clamped = Clamp(a, -2.0, 2.0);
    for (int lane = 0; lane < kLanes; ++lane) {
      Scalar s;
      s.v.v = element(lane, 0);
      s.v.d[0] = element(lane, 1);
      s.v.d[1] = element(lane, 2);
      for (int i = 0; i < 2; ++i) {
        s.d[i].v = element(lane, 3 + 3 * i);
        s.d[i].d[0] = element(lane, 4 + 3 * i);
        s.d[i].d[1] = element(lane, 5 + 3 * i);
      }
      const Scalar want = Clamp(s, -2.0, 2.0);
      SCOPED_TRACE(::testing::Message() << "a = " << values[k + lane]);
      EXPECT_TRUE(SameBits(clamped.v.v[lane], want.v.v) ||
                  (std::isnan(want.v.v) && std::isnan(clamped.v.v[lane])));
      for (int j = 0; j < 2; ++j) EXPECT_TRUE(SameBits(clamped.v.d[j][lane], want.v.d[j]));
      for (int i = 0; i < 2; ++i) {
        EXPECT_TRUE(SameBits(clamped.d[i].v[lane], want.d[i].v));
        for (int j = 0; j < 2; ++j) EXPECT_TRUE(SameBits(clamped.d[i].d[j][lane], want.d[i].d[j]));
      }
    }
  }
}

TEST(ModelLanesTest, TheDualClampOfLanesIsTheScalarDualClampLaneByLane) {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  const double values[] = {-3.0,   -2.0, -1.999, 0.0,  1.5,   2.0,
                           2.0001, 7.0,  kNaN,   -0.0, 1e300, -1e300};
  constexpr int kCount = sizeof(values) / sizeof(values[0]);
  static_assert(kCount % kLanes == 0);
  using Lanes = Dual<DoubleLanes, 2>;
  using Scalar = Dual<double, 2>;
  for (int k = 0; k < kCount; k += kLanes) {
    double slopes[kLanes], second[kLanes];
    for (int lane = 0; lane < kLanes; ++lane) {
      slopes[lane] = 1.0 + lane;
      second[lane] = -0.5 * lane;
    }
    Lanes a(DoubleLanes::Load(&values[k]));
    a.d[0] = DoubleLanes::Load(slopes);
    a.d[1] = DoubleLanes::Load(second);
    const Lanes clamped = Clamp(a, -2.0, 2.0);
    for (int lane = 0; lane < kLanes; ++lane) {
      Scalar s(values[k + lane]);
      s.d[0] = slopes[lane];
      s.d[1] = second[lane];
      const Scalar want = Clamp(s, -2.0, 2.0);
      SCOPED_TRACE(::testing::Message() << "a = " << values[k + lane]);
      EXPECT_TRUE(SameBits(clamped.v[lane], want.v) ||
                  (std::isnan(want.v) && std::isnan(clamped.v[lane])));
      EXPECT_TRUE(SameBits(clamped.d[0][lane], want.d[0]));
      EXPECT_TRUE(SameBits(clamped.d[1][lane], want.d[1]));
    }
  }
}

}  // namespace
}  // namespace mpc
