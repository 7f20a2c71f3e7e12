// The integrators of solver/models/integrators.h. Oracles: on a linear ODE dx/dt = A x + B u an
// s-stage method of order s (Euler, midpoint, RK4) is exactly the degree-s Taylor polynomial of
// the matrix exponential, x_next = sum_{k<=s} (hA)^k/k! x + h sum_{k<s} (hA)^k/(k+1)! B u, and so
// are its Jacobians; against the full exponential, the one-step error shrinks as h^(s+1).

#include "solver/models/integrators.h"

#include <cmath>
#include <random>
#include <vector>

#include "Eigen/Dense"
#include "gtest/gtest.h"
#include "solver/models/model_derivatives.h"
#include "solver/models/quadrotor.h"

namespace mpc {
namespace {

constexpr int kN = 3;
constexpr int kM = 2;
using MatrixN = Eigen::Matrix<double, kN, kN>;
using MatrixNM = Eigen::Matrix<double, kN, kM>;

// dx/dt = A x + B u with A and B, row-major, as the parameters.
struct LinearOdeModel {
  static constexpr int kStateDim = kN;
  static constexpr int kControlDim = kM;
  static constexpr int kParamDim = kN * kN + kN * kM;
  static constexpr bool kContinuous = true;
  static constexpr Integrator kDefaultIntegrator = Integrator::kRk4;

  template <typename T, typename P>
  static void Derivative(const T* x, const T* u, const P* p, T* dxdt) {
    for (int i = 0; i < kN; ++i) {
      T sum = T(0.0);
      for (int j = 0; j < kN; ++j) sum += p[i * kN + j] * x[j];
      for (int j = 0; j < kM; ++j) sum += p[kN * kN + i * kM + j] * u[j];
      dxdt[i] = sum;
    }
  }
};

struct LinearOde {
  MatrixN A;
  MatrixNM B;
  std::vector<double> params;
};

LinearOde RandomLinearOde(unsigned seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  LinearOde ode;
  for (int i = 0; i < kN; ++i) {
    for (int j = 0; j < kN; ++j) ode.A(i, j) = uniform(rng);
  }
  for (int i = 0; i < kN; ++i) {
    for (int j = 0; j < kM; ++j) ode.B(i, j) = uniform(rng);
  }
  ode.params.reserve(LinearOdeModel::kParamDim);
  for (int i = 0; i < kN; ++i) {
    for (int j = 0; j < kN; ++j) ode.params.push_back(ode.A(i, j));
  }
  for (int i = 0; i < kN; ++i) {
    for (int j = 0; j < kM; ++j) ode.params.push_back(ode.B(i, j));
  }
  return ode;
}

// sum_{k<=degree} (hA)^k / k! and h sum_{k<degree} (hA)^k / (k+1)!: the discrete A and the factor
// of B u of the exponential's Taylor polynomial.
struct Taylor {
  MatrixN state;
  MatrixN input;
};
Taylor TaylorPolynomial(const MatrixN& A, double h, int degree) {
  Taylor taylor{MatrixN::Identity(), h * MatrixN::Identity()};
  MatrixN term = MatrixN::Identity();
  for (int k = 1; k <= degree; ++k) {
    term = term * (h * A) / k;  // (hA)^k / k!
    taylor.state += term;
    if (k < degree) taylor.input += h * term / (k + 1);
  }
  return taylor;
}

int Stages(Integrator integrator) { return TableauOf(integrator).stages; }

TEST(IntegratorTest, OnALinearOdeEachMethodIsTheTaylorPolynomialOfItsOrder) {
  const LinearOde ode = RandomLinearOde(3);
  const double h = 0.1;
  const double x[kN] = {0.3, -0.7, 0.2}, u[kM] = {0.5, -0.4};
  for (Integrator integrator : {Integrator::kEuler, Integrator::kMidpoint, Integrator::kRk4}) {
    SCOPED_TRACE(IntegratorName(integrator));
    const Taylor taylor = TaylorPolynomial(ode.A, h, Stages(integrator));
    const Eigen::Vector<double, kN> want =
        taylor.state * Eigen::Map<const Eigen::Vector<double, kN>>(x) +
        taylor.input * ode.B * Eigen::Map<const Eigen::Vector<double, kM>>(u);
    double next[kN], A[kN * kN], B[kN * kM];
    const TimeStep step(h, integrator);
    StepWithJacobians<LinearOdeModel>(x, u, ode.params.data(), step, next, A, B);
    const MatrixNM want_B = taylor.input * ode.B;
    for (int i = 0; i < kN; ++i) {
      EXPECT_NEAR(next[i], want[i], 1e-15);
      for (int j = 0; j < kN; ++j) EXPECT_NEAR(A[j * kN + i], taylor.state(i, j), 1e-15);
      for (int j = 0; j < kM; ++j) EXPECT_NEAR(B[j * kN + i], want_B(i, j), 1e-15);
    }
  }
}

// The one-step error against exp(hA) (its Taylor series to convergence) is O(h^(s+1)): halving h
// divides it by about 2^(s+1).
TEST(IntegratorTest, LocalErrorAgainstTheMatrixExponentialHasTheMethodsOrder) {
  const LinearOde ode = RandomLinearOde(5);
  const double x[kN] = {1.0, 0.5, -0.25}, u[kM] = {0.0, 0.0};
  for (Integrator integrator : {Integrator::kEuler, Integrator::kMidpoint, Integrator::kRk4}) {
    SCOPED_TRACE(IntegratorName(integrator));
    double errors[2];
    for (int halving = 0; halving < 2; ++halving) {
      const double h = 0.2 / (1 << halving);
      const Eigen::Vector<double, kN> exact =
          TaylorPolynomial(ode.A, h, 30).state * Eigen::Map<const Eigen::Vector<double, kN>>(x);
      double next[kN];
      ModelStep<LinearOdeModel>(x, u, ode.params.data(), TimeStep(h, integrator), next);
      errors[halving] = (Eigen::Map<const Eigen::Vector<double, kN>>(next) - exact).norm();
    }
    const double order = std::log2(errors[0] / errors[1]);
    EXPECT_NEAR(order, Stages(integrator) + 1, 0.3) << errors[0] << " then " << errors[1];
  }
}

TEST(IntegratorTest, EulerIsOneDerivativeStepToTheLastBit) {
  const double* p = QuadrotorModel::kDefaultParams;
  double x[12], u[4] = {9.0, 0.1, -0.2, 0.05};
  for (int i = 0; i < 12; ++i) x[i] = 0.1 * (i - 5);
  double dxdt[12], next[12];
  QuadrotorModel::Derivative(x, u, p, dxdt);
  ModelStep<QuadrotorModel>(x, u, p, TimeStep(0.05, Integrator::kEuler), next);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(next[i], x[i] + 0.05 * dxdt[i]) << i;
}

TEST(IntegratorTest, APlainTimeStepTakesTheModelsDefaultIntegrator) {
  const double* p = QuadrotorModel::kDefaultParams;
  double x[12] = {0.1, 0.2, 0.3, 0.1, -0.1, 0.2, 0.5, 0.0, -0.5, 0.3, 0.2, 0.1};
  double u[4] = {10.0, 0.1, -0.1, 0.01};
  double by_default[12], rk4[12], euler[12];
  ModelStep<QuadrotorModel>(x, u, p, 0.05, by_default);
  ModelStep<QuadrotorModel>(x, u, p, TimeStep(0.05, Integrator::kRk4), rk4);
  ModelStep<QuadrotorModel>(x, u, p, TimeStep(0.05, Integrator::kEuler), euler);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(by_default[i], rk4[i]) << i;
  double difference = 0.0;
  for (int i = 0; i < 12; ++i) difference += std::abs(rk4[i] - euler[i]);
  EXPECT_GT(difference, 1e-4);  // the choice is not ignored
}

TEST(IntegratorTest, TheQuadrotorHoversAtWeightThrust) {
  const double* p = QuadrotorModel::kDefaultParams;
  double x[12] = {1.0, -2.0, 3.0, 0.0, 0.0, 0.7, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  const double u[4] = {p[0] * QuadrotorModel::kGravity, 0.0, 0.0, 0.0};
  double next[12];
  ModelStep<QuadrotorModel>(x, u, p, 0.05, next);
  for (int i = 0; i < 12; ++i) EXPECT_NEAR(next[i], x[i], 1e-15) << i;
}

}  // namespace
}  // namespace mpc
