#include <algorithm>
#include <cmath>
#include <random>
#include <type_traits>

#include "gtest/gtest.h"
#include "solver/dual.h"
#include "solver/hyper_dual.h"
#include "solver/models/integrators.h"
#include "solver/models/model_derivatives.h"
#include "solver/models/model_list.h"
#include "solver/models/model_registry.h"
#include "tests/testing/model_types.h"

namespace mpc {
namespace {

// Central differences have error O(h^2) + O(eps/h); h = eps^(1/3) balances them.
constexpr double kStep = 6e-6;
constexpr double kTolerance = 1e-7;

template <class Model>
void RandomPoint(std::mt19937_64& rng, double* x, double* u) {
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  for (int i = 0; i < Model::kStateDim; ++i) x[i] = uniform(rng);
  for (int j = 0; j < Model::kControlDim; ++j) u[j] = 0.5 * uniform(rng);
}

template <class Model>
void ExpectJacobiansMatchFiniteDifferences(const double* p, int trials, TimeStep dt) {
  constexpr int n = Model::kStateDim;
  constexpr int m = Model::kControlDim;
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < trials; ++trial) {
    double x[n], u[m], next[n], A[n * n], B[n * m];
    RandomPoint<Model>(rng, x, u);
    StepWithJacobians<Model>(x, u, p, dt, next, A, B);
    double plain[n];
    ModelStep<Model>(x, u, p, dt, plain);
    // Same formula, but the compiler may fuse multiply-adds differently in the two instantiations.
    for (int i = 0; i < n; ++i) EXPECT_NEAR(next[i], plain[i], 1e-14 * (1 + std::abs(plain[i])));
    for (int j = 0; j < n + m; ++j) {
      double* v = j < n ? &x[j] : &u[j - n];
      const double saved = *v;
      double plus[n], minus[n];
      *v = saved + kStep;
      ModelStep<Model>(x, u, p, dt, plus);
      *v = saved - kStep;
      ModelStep<Model>(x, u, p, dt, minus);
      *v = saved;
      for (int i = 0; i < n; ++i) {
        const double fd = (plus[i] - minus[i]) / (2 * kStep);
        const double ad = j < n ? A[j * n + i] : B[(j - n) * n + i];
        EXPECT_NEAR(ad, fd, kTolerance * (1 + std::abs(fd)))
            << Model::kName << " d x_next[" << i << "] / d tau[" << j << "], trial " << trial;
      }
    }
  }
}

template <class Model>
void ExpectParamJacobianMatchesFiniteDifferences(const double* p0, TimeStep dt) {
  constexpr int n = Model::kStateDim;
  constexpr int m = Model::kControlDim;
  constexpr int np = Model::kParamDim;
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 10; ++trial) {
    double x[n], u[m], next[n], P[n * np], p[np];
    RandomPoint<Model>(rng, x, u);
    for (int k = 0; k < np; ++k) p[k] = p0[k];
    StepParamJacobian<Model>(x, u, p, dt, next, P);
    for (int k = 0; k < np; ++k) {
      // Relative to a small parameter (a quadrotor's inertia, 0.01), which an absolute step
      // would move by a large fraction of itself.
      const double h = kStep * (p0[k] != 0.0 ? std::min(1.0, std::abs(p0[k])) : 1.0);
      double plus[n], minus[n];
      p[k] = p0[k] + h;
      ModelStep<Model>(x, u, p, dt, plus);
      p[k] = p0[k] - h;
      ModelStep<Model>(x, u, p, dt, minus);
      p[k] = p0[k];
      for (int i = 0; i < n; ++i) {
        const double fd = (plus[i] - minus[i]) / (2 * h);
        EXPECT_NEAR(P[k * n + i], fd, kTolerance * (1 + std::abs(fd)))
            << Model::kName << " d x_next[" << i << "] / d p[" << k << "]";
      }
    }
  }
}

// lambda' dF/dp_k at (x + s dx, u + s du).
template <class Model>
double LambdaParamJacobianAlong(const double* x, const double* u, const double* dx,
                                const double* du, const double* p, const double* lambda, double s,
                                int k, TimeStep dt) {
  constexpr int n = Model::kStateDim;
  constexpr int m = Model::kControlDim;
  double xs[n], us[m], next[n], P[n * Model::kParamDim];
  for (int i = 0; i < n; ++i) xs[i] = x[i] + s * dx[i];
  for (int j = 0; j < m; ++j) us[j] = u[j] + s * du[j];
  StepParamJacobian<Model>(xs, us, p, dt, next, P);
  double total = 0.0;
  for (int i = 0; i < n; ++i) total += lambda[i] * P[k * n + i];
  return total;
}

// d2 (lambda' f) / d p d tau applied to a direction (the mixed block the backward pass uses)
// against central differences of lambda' dF/dp along that direction.
template <class Model>
void ExpectMixedDirectionalMatchesFiniteDifferences(const double* p0, TimeStep dt) {
  constexpr int n = Model::kStateDim;
  constexpr int m = Model::kControlDim;
  constexpr int np = Model::kParamDim;
  std::mt19937_64 rng(13);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  for (int trial = 0; trial < 5; ++trial) {
    double x[n], u[m], lambda[n], dx[n], du[m], g[np], p[np];
    RandomPoint<Model>(rng, x, u);
    for (int i = 0; i < n; ++i) lambda[i] = uniform(rng), dx[i] = uniform(rng);
    for (int j = 0; j < m; ++j) du[j] = uniform(rng);
    for (int k = 0; k < np; ++k) p[k] = p0[k];
    StepMixedDirectional<Model>(x, u, p, dt, lambda, dx, du, g);
    for (int k = 0; k < np; ++k) {
      const double fd = (LambdaParamJacobianAlong<Model>(x, u, dx, du, p, lambda, kStep, k, dt) -
                         LambdaParamJacobianAlong<Model>(x, u, dx, du, p, lambda, -kStep, k, dt)) /
                        (2 * kStep);
      EXPECT_NEAR(g[k], fd, 1e-6 * (1 + std::abs(fd))) << Model::kName << " parameter " << k;
    }
  }
}

// d2 (lambda' f) / d tau2 (EXACT mode's curvature) against central differences of lambda' [A B]
// (whose own exactness the Jacobian test checks).
// row (n+m) = lambda' [A B] at (x, u).
template <class Model>
void LambdaJacobian(const double* x, const double* u, const double* p, TimeStep dt,
                    const double* lambda, double* row) {
  constexpr int n = Model::kStateDim;
  constexpr int m = Model::kControlDim;
  double next[n], A[n * n], B[n * m];
  StepWithJacobians<Model>(x, u, p, dt, next, A, B);
  for (int j = 0; j < n + m; ++j) {
    row[j] = 0.0;
    for (int i = 0; i < n; ++i) row[j] += lambda[i] * (j < n ? A[j * n + i] : B[(j - n) * n + i]);
  }
}

// A random point and costate lambda (n), each in [-1, 1] (controls in [-0.5, 0.5]).
template <class Model>
void RandomPointAndCostate(std::mt19937_64& rng, double* x, double* u, double* lambda) {
  RandomPoint<Model>(rng, x, u);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  for (int i = 0; i < Model::kStateDim; ++i) lambda[i] = uniform(rng);
}

template <class Model>
void ExpectTauHessianMatchesFiniteDifferences(const double* p, TimeStep dt) {
  constexpr int n = Model::kStateDim;
  constexpr int m = Model::kControlDim;
  constexpr int nt = n + m;
  std::mt19937_64 rng(17);
  for (int trial = 0; trial < 3; ++trial) {
    double x[n], u[m], lambda[n], H[nt * nt];
    RandomPointAndCostate<Model>(rng, x, u, lambda);
    StepTauHessian<Model>(x, u, p, dt, lambda, H);
    for (int b = 0; b < nt; ++b) {
      double* v = b < n ? &x[b] : &u[b - n];
      const double saved = *v;
      double plus[nt], minus[nt];
      *v = saved + kStep;
      LambdaJacobian<Model>(x, u, p, dt, lambda, plus);
      *v = saved - kStep;
      LambdaJacobian<Model>(x, u, p, dt, lambda, minus);
      *v = saved;
      for (int a = 0; a < nt; ++a) {
        const double fd = (plus[a] - minus[a]) / (2 * kStep);
        EXPECT_NEAR(H[a * nt + b], fd, 1e-6 * (1 + std::abs(fd)))
            << Model::kName << " d2 phi / d tau[" << a << "] d tau[" << b << "]";
      }
    }
  }
}

// The tau-Hessian by nested duals (forward over forward, (n+m+1)^2 numbers per value): an
// independent evaluation of what StepTauHessian forms with second-order duals.
template <class Model>
void NestedDualTauHessian(const double* x, const double* u, const double* p, TimeStep dt,
                          const double* lambda, double* Htt) {
  constexpr int n = Model::kStateDim;
  constexpr int m = Model::kControlDim;
  constexpr int nt = n + m;
  using Inner = Dual<double, nt>;
  using Outer = Dual<Inner, nt>;
  Outer xd[n], ud[m], pd[Model::kParamDim], out[n];
  for (int i = 0; i < n; ++i) xd[i] = Outer::Variable(Inner::Variable(x[i], i), i);
  for (int j = 0; j < m; ++j) ud[j] = Outer::Variable(Inner::Variable(u[j], n + j), n + j);
  for (int k = 0; k < Model::kParamDim; ++k) pd[k] = Outer(Inner(p[k]));
  ModelStep<Model>(xd, ud, pd, dt, out);
  for (int a = 0; a < nt; ++a) {
    for (int b = 0; b < nt; ++b) {
      double s = 0;
      for (int i = 0; i < n; ++i) s += lambda[i] * out[i].d[a].d[b];
      Htt[a * nt + b] = s;
    }
  }
}

template <class Model>
void ExpectTauHessianMatchesNestedDuals(const double* p, TimeStep dt) {
  constexpr int n = Model::kStateDim;
  constexpr int m = Model::kControlDim;
  constexpr int nt = n + m;
  std::mt19937_64 rng(23);
  for (int trial = 0; trial < 20; ++trial) {
    double x[n], u[m], lambda[n], H[nt * nt], want[nt * nt];
    RandomPointAndCostate<Model>(rng, x, u, lambda);
    // Every other trial with controls beyond the models' bounds (clamped: zero derivatives).
    if (trial % 2 == 1) {
      for (int j = 0; j < m; ++j) u[j] *= 1e3;
    }
    StepTauHessian<Model>(x, u, p, dt, lambda, H);
    NestedDualTauHessian<Model>(x, u, p, dt, lambda, want);
    double scale = 0;
    for (double w : want) scale = std::max(scale, std::abs(w));
    for (int e = 0; e < nt * nt; ++e) {
      EXPECT_NEAR(H[e], want[e], 1e-13 * (1 + scale))
          << Model::kName << " d2 phi / d tau[" << e / nt << "] d tau[" << e % nt << "]";
    }
  }
}

// Every built-in model (generated from the model list: a new model is covered without an edit).
template <class Model>
class BuiltinModelTest : public ::testing::Test {};
TYPED_TEST_SUITE(BuiltinModelTest, testing::BuiltinModelTypes, testing::ModelTypeName);

TYPED_TEST(BuiltinModelTest, JacobiansMatchCentralDifferences) {
  ExpectJacobiansMatchFiniteDifferences<TypeParam>(TypeParam::kDefaultParams, 50,
                                                   TypeParam::kDefaultDt);
}

TYPED_TEST(BuiltinModelTest, ParamJacobianMatchesCentralDifferences) {
  ExpectParamJacobianMatchesFiniteDifferences<TypeParam>(TypeParam::kDefaultParams,
                                                         TypeParam::kDefaultDt);
}

TYPED_TEST(BuiltinModelTest, MixedSecondDerivativeMatchesCentralDifferences) {
  ExpectMixedDirectionalMatchesFiniteDifferences<TypeParam>(TypeParam::kDefaultParams,
                                                            TypeParam::kDefaultDt);
}

TYPED_TEST(BuiltinModelTest, TauHessianMatchesCentralDifferences) {
  ExpectTauHessianMatchesFiniteDifferences<TypeParam>(TypeParam::kDefaultParams,
                                                      TypeParam::kDefaultDt);
}

TYPED_TEST(BuiltinModelTest, TauHessianMatchesNestedDuals) {
  ExpectTauHessianMatchesNestedDuals<TypeParam>(TypeParam::kDefaultParams, TypeParam::kDefaultDt);
}

// A continuous-time model's derivatives are those of the integrated step, for every integrator
// (the default one is covered above).
template <class Model>
class ContinuousModelTest : public ::testing::Test {};
TYPED_TEST_SUITE(ContinuousModelTest, testing::ContinuousModelTypes, testing::ModelTypeName);

TYPED_TEST(ContinuousModelTest, EveryIntegratorsDerivativesMatchCentralDifferences) {
  using Model = TypeParam;
  for (Integrator integrator : {Integrator::kEuler, Integrator::kMidpoint, Integrator::kRk4}) {
    SCOPED_TRACE(IntegratorName(integrator));
    const TimeStep dt(Model::kDefaultDt, integrator);
    ExpectJacobiansMatchFiniteDifferences<Model>(Model::kDefaultParams, 10, dt);
    ExpectParamJacobianMatchesFiniteDifferences<Model>(Model::kDefaultParams, dt);
    ExpectMixedDirectionalMatchesFiniteDifferences<Model>(Model::kDefaultParams, dt);
    ExpectTauHessianMatchesFiniteDifferences<Model>(Model::kDefaultParams, dt);
    ExpectTauHessianMatchesNestedDuals<Model>(Model::kDefaultParams, dt);
  }
}

TYPED_TEST(BuiltinModelTest, RegistryDescribesIt) {
  using Model = TypeParam;
  const ModelInfo* info = FindModel(Model::kName);
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->id, ModelId<Model>());
  EXPECT_EQ(FindModel(info->id), info);
  EXPECT_EQ(info->state_dim, Model::kStateDim);
  EXPECT_EQ(info->control_dim, Model::kControlDim);
  EXPECT_EQ(info->default_dt, Model::kDefaultDt);
  EXPECT_EQ(info->continuous, Model::kContinuous);
  if constexpr (Model::kContinuous) {
    EXPECT_EQ(info->default_integrator, Model::kDefaultIntegrator);
    ASSERT_EQ(info->integrators.size(), 3u);
    EXPECT_EQ(info->integrators.front(), IntegratorName(Model::kDefaultIntegrator));
  } else {
    EXPECT_TRUE(info->integrators.empty());
  }
  ASSERT_EQ(info->param_names.size(), static_cast<std::size_t>(Model::kParamDim));
  ASSERT_EQ(info->default_params.size(), static_cast<std::size_t>(Model::kParamDim));
  for (int k = 0; k < Model::kParamDim; ++k) {
    EXPECT_EQ(info->param_names[k], Model::kParamNames[k]);
    EXPECT_EQ(info->default_params[k], Model::kDefaultParams[k]);
  }
  ASSERT_EQ(info->state_names.size(), static_cast<std::size_t>(Model::kStateDim));
  ASSERT_EQ(info->control_names.size(), static_cast<std::size_t>(Model::kControlDim));
  EXPECT_FALSE(info->id.is_linear());
}

TEST(ModelTest, TheRegistryListsTheModelsInListOrderAndNothingElse) {
  const std::vector<ModelInfo>& models = BuiltinModels();
  ASSERT_EQ(models.size(), static_cast<std::size_t>(BuiltinModelList::kSize));
  for (std::size_t i = 0; i < models.size(); ++i)
    EXPECT_EQ(models[i].id.model, static_cast<int>(i));
  EXPECT_EQ(FindModel("unicorn"), nullptr);
  EXPECT_EQ(FindModel(DynamicsId::Linear()), nullptr);
  EXPECT_EQ(FindModel(DynamicsId::Builtin(BuiltinModelList::kSize)), nullptr);
}

TEST(ModelTest, ClampedControlHasZeroDerivativeOutsideTheBox) {
  const double* p = FindModel("pendulum")->default_params.data();
  double x[3] = {1.0, 0.0, 0.0}, next[3], A[9], B[3];
  for (double torque : {-5.0, 5.0}) {
    double u[1] = {torque};
    StepWithJacobians<PendulumModel>(x, u, p, PendulumModel::kDefaultDt, next, A, B);
    for (double b : B) EXPECT_EQ(b, 0.0);
  }
  // torch.clamp passes the gradient on the closed interval, so at the bound it is still 1.
  double u[1] = {PendulumModel::kMaxTorque};
  StepWithJacobians<PendulumModel>(x, u, p, PendulumModel::kDefaultDt, next, A, B);
  EXPECT_NE(B[2], 0.0);
}

TEST(ModelTest, NestedDualsGiveSecondDerivatives) {
  // f(a) = sin(a) * atan2(a, 2): check f'' against a central difference of f'.
  using Inner = Dual<double, 1>;
  using Outer = Dual<Inner, 1>;
  const double a0 = 0.7;
  Outer a;
  a.v = Inner::Variable(a0, 0);
  a.d[0] = Inner(1.0);
  const Outer f = sin(a) * atan2(a, Outer(2.0));
  auto first = [](double x) {
    Inner y = Inner::Variable(x, 0);
    return (sin(y) * atan2(y, Inner(2.0))).d[0];
  };
  EXPECT_NEAR(f.v.d[0], first(a0), 1e-15);
  EXPECT_NEAR(f.d[0].d[0], (first(a0 + kStep) - first(a0 - kStep)) / (2 * kStep), 1e-8);
}

// Every operation of HyperDual against nested duals, on a function of three variables that uses
// each of them (the models use only some).
TEST(ModelTest, HyperDualsGiveTheSecondDerivativesOfNestedDuals) {
  auto f = [](const auto& a, const auto& b, const auto& c) {
    using T = std::decay_t<decltype(a)>;
    T s, co;
    SinCos(a * b, &s, &co);
    const T q = (s + 2.0) / (c * c + 1.5) - 3.0 / (b + 2.0) + (1.0 - a) * 0.5 - c / 4.0;
    return atan2(q - co, b + 3.0) * tanh(c - a) + sqrt(a * a + 2.0) * cos(c) -
           sin(-b) * Clamp(c, -0.5, 0.5) + (-q) * q;
  };
  using Inner = Dual<double, 3>;
  using Outer = Dual<Inner, 3>;
  using H = HyperDual<double, 3>;
  for (const double c0 : {0.3, 0.9}) {  // c inside, then outside the clamp
    const double v[3] = {0.7, -0.4, c0};
    const Outer nested = f(Outer::Variable(Inner::Variable(v[0], 0), 0),
                           Outer::Variable(Inner::Variable(v[1], 1), 1),
                           Outer::Variable(Inner::Variable(v[2], 2), 2));
    const H hyper = f(H::Variable(v[0], 0), H::Variable(v[1], 1), H::Variable(v[2], 2));
    EXPECT_NEAR(hyper.v, nested.v.v, 1e-15);
    int e = 0;
    for (int i = 0; i < 3; ++i) {
      EXPECT_NEAR(hyper.g[i], nested.v.d[i], 1e-14) << i;
      for (int j = i; j < 3; ++j, ++e) {
        EXPECT_NEAR(hyper.h[e], nested.d[i].d[j], 1e-13) << i << ", " << j;
        EXPECT_NEAR(hyper.h[e], nested.d[j].d[i], 1e-13) << j << ", " << i;
      }
    }
  }
}

}  // namespace
}  // namespace mpc
