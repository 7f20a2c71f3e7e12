#ifndef MPC_TESTS_TESTING_RANDOM_PROBLEMS_H_
#define MPC_TESTS_TESTING_RANDOM_PROBLEMS_H_

// Seeded problem factories (STYLE rule 21). Every number is a function of the seed alone: the
// generator is std::mt19937_64, whose output the C++ standard fixes, and the uniform and normal
// transforms are our own, because std::*_distribution differ between standard libraries.

#include <cstdint>
#include <random>

#include "solver/problem.h"

namespace mpc::testing {

// Deterministic random numbers.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : engine_(seed) {}

  // Uniform on [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  // Standard normal (Box-Muller, one value per two uniforms).
  double Normal();

 private:
  std::mt19937_64 engine_;
};

struct RandomLqrOptions {
  int state_dim = 3;    // n
  int control_dim = 2;  // m
  int horizon = 10;     // T
  // Time-varying C, c, F, f (T or T-1 slices) rather than one slice each.
  bool time_varying = false;
  // A nonzero affine term f; false leaves `offset` empty.
  bool with_offset = true;
  // Box bounds on u, placed so that the unconstrained optimum violates them: some are then active
  // at the constrained optimum (the cost is strictly convex, so an optimum with no active bound
  // would be the unconstrained one). Time-varying problems get (T, m) bounds, others (m).
  bool bounded = false;
  // A random warm start u_init (T, m), inside the bounds when there are bounds.
  bool warm_start = false;
};

// A random LQR problem: A = 0.9 I + 0.1 G / sqrt(n) (G standard normal, so the spectral radius is
// about 1: stable-ish over long horizons), B standard normal / sqrt(n), C = L L' + 0.1 I with L
// standard normal / sqrt(n+m) (positive definite), c, f, x_init standard normal.
// options are mpcd's defaults.
Problem RandomLqrProblem(const RandomLqrOptions& options, std::uint64_t seed);

struct RandomModelOptions {
  int horizon = 20;
  // Bounds |u| <= control_bound; control_bound <= 0 means the model's own limit (the clamp inside
  // the dynamics: pendulum max_torque, cartpole force_mag).
  bool bounded = true;
  double control_bound = 0.0;
  double ctrl_penalty = 0.001;
  // Half-widths of the uniform initial-state distribution: th, thdot and (cartpole) x, xdot.
  // Negative values mean the notebook distributions (README "Cost" and TIMINGS.md): pendulum
  // th ~ U(-pi, pi), thdot ~ U(-1, 1); cartpole th ~ U(-2 pi, 2 pi), x, xdot, thdot ~ U(-.5, .5).
  double th_half_width = -1.0;
  double thdot_half_width = -1.0;
  double x_half_width = -1.0;
  double xdot_half_width = -1.0;
};

// mpc.pytorch's pendulum with the notebook cost (dx.get_true_obj()): goal [1, 0, 0], weights
// [1, 1, 0.1], C = diag(weights, ctrl_penalty), c = [-sqrt(weights) * goal, 0], one time-invariant
// slice; default params and dt; options max_iterations 300, tolerance 1e-8.
Problem RandomPendulumProblem(const RandomModelOptions& options, std::uint64_t seed);

// mpc.pytorch's cartpole with the notebook cost: goal [0, 0, 1, 0, 0], weights
// [0.1, 0.1, 1, 1, 0.1]; otherwise as RandomPendulumProblem. Pass horizon 25 for the notebook's.
Problem RandomCartpoleProblem(const RandomModelOptions& options, std::uint64_t seed);

}  // namespace mpc::testing

#endif  // MPC_TESTS_TESTING_RANDOM_PROBLEMS_H_
