#ifndef MPC_TESTS_SOLVER_CUDA_DEVICE_COMPARISON_H_
#define MPC_TESTS_SOLVER_CUDA_DEVICE_COMPARISON_H_

// Element-by-element comparison of the device solver's answers (host-emulated or from the GPU)
// with the CPU solver's, shared by host_emulation_test.cc and cuda_backend_test.cc.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "solver/gradients.h"
#include "solver/problem.h"

namespace mpc::core {

// float64: CPU (Eigen) and device code (plain loops) differ only in rounding. For linear dynamics
// that rounding never changes the iteration path, and every output agrees to this, relative to
// max(1, |value|) (observed: a few 1e-16).
constexpr double kDoubleTolerance = 1e-9;

// On slowly converging nonlinear problems (the swing-ups) last-bit differences grow over tens of
// iterations and can change when the stopping test ||du|| < tolerance fires. Both answers are
// then as close as that test promises: x, u and the gains within max(kDoubleTolerance, this many
// tolerances) of each other (the bound reference_test.cc uses against the exact optimum), the cost
// (stationary there) still within kDoubleTolerance. Observed on the reference swing-ups: up to
// 8e-9 in u at tolerance 1e-8.
constexpr double kModelTolerances = 10.0;

// Largest |a - b| / max(1, |b|) over the elements.
inline double MaxRelativeDifference(const std::vector<double>& a, const std::vector<double>& b) {
  double worst = 0.0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    worst = std::max(worst, std::abs(a[i] - b[i]) / std::max(1.0, std::abs(b[i])));
  }
  return worst;
}

inline double RelativeDifference(double a, double b) {
  return std::abs(a - b) / std::max(1.0, std::abs(b));
}

// How many problems of a comparison differ by more than kDoubleTolerance somewhere (allowed for
// models only; counted so that a run documents it).
struct Comparison {
  int problems = 0;
  int beyond_double = 0;
};

// Device (host-emulated, float64) against CPU, element by element: same status; cost, and for
// linear dynamics iterations, x, u, step norm, regularisation and gains, within kDoubleTolerance;
// for models x, u and gains within the bound of kModelTolerances.
inline Comparison ExpectMatchesCpu(const std::vector<Problem>& problems,
                                   const std::vector<Solution>& device,
                                   const std::vector<Solution>& cpu, const std::string& label) {
  Comparison comparison;
  EXPECT_EQ(device.size(), cpu.size());
  for (std::size_t i = 0; i < std::min(cpu.size(), device.size()); ++i) {
    SCOPED_TRACE(absl::StrCat(label, " problem ", i));
    const Problem& p = problems[i];
    const Solution& d = device[i];
    const Solution& c = cpu[i];
    ++comparison.problems;
    const double dx = MaxRelativeDifference(d.x, c.x);
    const double du = MaxRelativeDifference(d.u, c.u);
    const double dK = MaxRelativeDifference(d.feedback, c.feedback);
    const double dk = MaxRelativeDifference(d.feedforward, c.feedforward);
    const bool beyond_double = std::max({dx, du, dK, dk}) > kDoubleTolerance;
    if (beyond_double) ++comparison.beyond_double;
    std::printf(
        "[device-vs-cpu] %s #%zu %s/%s iters %d/%d | x %.1e u %.1e cost %.1e K %.1e k %.1e\n",
        label.c_str(), i, SolveStatusName(d.status), SolveStatusName(c.status), d.iterations,
        c.iterations, dx, du, RelativeDifference(d.cost, c.cost), dK, dk);
    EXPECT_EQ(d.status, c.status);
    EXPECT_EQ(d.x.size(), c.x.size());
    EXPECT_EQ(d.u.size(), c.u.size());
    EXPECT_EQ(d.feedback.size(), c.feedback.size());
    EXPECT_EQ(d.feedforward.size(), c.feedforward.size());
    if (std::isfinite(c.cost)) {
      EXPECT_LE(RelativeDifference(d.cost, c.cost), kDoubleTolerance);
    } else {
      EXPECT_FALSE(std::isfinite(d.cost));
    }
    if (p.shape.dynamics.is_linear()) {
      EXPECT_EQ(d.iterations, c.iterations);
      EXPECT_LE(dx, kDoubleTolerance);
      EXPECT_LE(du, kDoubleTolerance);
      EXPECT_LE(dK, kDoubleTolerance);
      EXPECT_LE(dk, kDoubleTolerance);
      if (std::isfinite(c.step_norm)) {
        EXPECT_LE(std::abs(d.step_norm - c.step_norm),
                  kDoubleTolerance * std::max(1.0, c.step_norm));
      } else {
        EXPECT_EQ(d.step_norm, c.step_norm);
      }
      EXPECT_LE(std::abs(d.regularization - c.regularization),
                kDoubleTolerance * std::max(1.0, c.regularization));
    } else {
      const double bound = std::max(kDoubleTolerance, kModelTolerances * p.options.tolerance);
      EXPECT_LE(dx, bound);
      EXPECT_LE(du, bound);
      EXPECT_LE(dK, bound);
      EXPECT_LE(dk, bound);
    }
  }
  return comparison;
}

// A device backward pass (host-emulated or from the GPU) against the CPU's: every gradient array
// relative to max(1, |value|), and the diagnostics; same status and active set. Returns the largest
// relative difference.
inline double ExpectGradientMatchesCpu(const ProblemGradient& d, const ProblemGradient& c,
                                       double tolerance, const std::string& label) {
  SCOPED_TRACE(label);
  EXPECT_EQ(d.status, c.status) << GradientStatusName(d.status) << " vs "
                                << GradientStatusName(c.status);
  EXPECT_EQ(d.active_controls, c.active_controls);
  double worst = 0.0;
  const std::pair<const char*, std::pair<const std::vector<double>*, const std::vector<double>*>>
      arrays[] = {{"x_init", {&d.x_init, &c.x_init}},
                  {"cost_quadratic", {&d.cost_quadratic, &c.cost_quadratic}},
                  {"cost_linear", {&d.cost_linear, &c.cost_linear}},
                  {"transition", {&d.transition, &c.transition}},
                  {"offset", {&d.offset, &c.offset}},
                  {"params", {&d.params, &c.params}}};
  for (const auto& [name, pair] : arrays) {
    EXPECT_EQ(pair.first->size(), pair.second->size()) << name;
    const double diff = MaxRelativeDifference(*pair.first, *pair.second);
    EXPECT_LE(diff, tolerance) << name;
    worst = std::max(worst, diff);
  }
  for (const auto& [name, values] :
       {std::pair{"regularization", std::pair{d.regularization, c.regularization}},
        std::pair{"condition_estimate", std::pair{d.condition_estimate, c.condition_estimate}},
        std::pair{"stationarity_residual",
                  std::pair{d.stationarity_residual, c.stationarity_residual}},
        std::pair{"dynamics_residual", std::pair{d.dynamics_residual, c.dynamics_residual}}}) {
    EXPECT_LE(RelativeDifference(values.first, values.second), tolerance) << name;
  }
  return worst;
}

}  // namespace mpc::core

#endif  // MPC_TESTS_SOLVER_CUDA_DEVICE_COMPARISON_H_
