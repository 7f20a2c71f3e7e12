#ifndef MPC_TESTS_TESTING_DENSE_KKT_H_
#define MPC_TESTS_TESTING_DENSE_KKT_H_

// Independent oracles for solver tests: a dense KKT solve of an unconstrained LQR problem, and
// plain evaluations of a problem's cost and dynamics. They share no code with the solver (apart
// from the model definitions, which are the specification), so agreement is evidence.

#include <vector>

#include "absl/status/statusor.h"
#include "solver/problem.h"

namespace mpc::testing {

struct DenseKktSolution {
  std::vector<double> x;  // (T, n)
  std::vector<double> u;  // (T, m)
  std::vector<double>
      costate;  // (T, n): mpc.pytorch's lambda_t (lam_t = C_{t,x:} tau_t + c_{t,x}
                //         + A_t' lam_{t+1}), the negated multiplier of x_t's constraint
  double cost = 0.0;
  double residual = 0.0;  // max |KKT * solution - rhs|, a check on the linear solve
};

// Minimises sum_t 0.5 tau_t' C_t tau_t + c_t' tau_t subject to x_0 = x_init and
// x_{t+1} = F_t tau_t + f_t by assembling the full KKT system over every x_t, u_t and solving it
// with full-pivoting LU. The problem must have linear dynamics; bounds must be absent (they are not
// an equality constraint a KKT solve can take). C is symmetrised (0.5 (C + C')), as the cost only
// sees its symmetric part. Costs O((T (2n+m))^3): meant for small test problems.
absl::StatusOr<DenseKktSolution> SolveDenseKkt(const Problem& problem);

// sum_t 0.5 tau_t' C_t tau_t + c_t' tau_t for x (T, n), u (T, m).
double ProblemCost(const Problem& problem, const std::vector<double>& x,
                   const std::vector<double>& u);

// The states x (T, n) that the controls u (T, m) produce from x_init through the problem's true
// dynamics (linear, or the built-in model with its params and dt, control clamped inside the model
// as mpc.pytorch does). Bounds are not applied.
std::vector<double> Rollout(const Problem& problem, const std::vector<double>& u);

// The slice of a time-invariant-or-varying array for time t: `array` holds either one slice of
// `slice_size` numbers or one per time step. Returns a pointer to its first number.
const double* SliceAt(const std::vector<double>& array, int t, int slice_size);

}  // namespace mpc::testing

#endif  // MPC_TESTS_TESTING_DENSE_KKT_H_
