#ifndef MPC_SOLVER_STAGE_CONSTRAINTS_H_
#define MPC_SOLVER_STAGE_CONSTRAINTS_H_

// A Problem's state bounds and general affine constraints as the core solves them: rows of one
// stage constraint G_t tau_t <= h_t (solver/core/ilqr.h, SolveConstrained). The state bounds come
// first (x_upper's rows e_i' tau <= x_upper_i, then x_lower's -e_i' tau <= -x_lower_i), then the
// problem's own rows, then a constraint graph's k rows g(x, u) <= 0, packed as zero rows here: the
// core linearises them at every iteration. An infinite bound and every state bound at t = 0 (x_0
// is given) are a zero row, 0 <= 0, which never acts.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "solver/problem.h"

namespace mpc {

// Rows per step (0: the problem has no stage constraints), the constraint graph's included.
int StageConstraintRows(const Problem& problem);

// The constraint graph's rows per step (its output_dim; 0 without one): the last of the rows.
int GraphConstraintRows(const Problem& problem);

// Whether some row differs between steps (state bounds always do: none at t = 0).
bool StageConstraintsVary(const Problem& problem);

// Row r of step t: entry e (of n+m) of g, and h. Rows from r = StageConstraintRows(problem) on
// (the padding of a batch) are zero rows.
double StageConstraintCoefficient(const Problem& problem, int t, int r, int e);
double StageConstraintBound(const Problem& problem, int t, int r);

// x_lower, x_upper, constraints.G and constraints.h of a problem whose other arrays are valid:
// shapes, no NaN (G finite, h finite, bounds may be +-inf), x_lower <= x_upper, and the solver
// method (the iLQR alone solves constraints): INVALID_ARGUMENT naming the field after
// `field_prefix`.
absl::Status ValidateStageConstraints(const Problem& problem, const std::string& field_prefix);

// Gathers the gradients of the packed rows (dL/dg over a row's n+m coefficients and dL/d its bound
// h, as the backward pass writes them per step) into the gradients of the problem's inputs,
// shaped as sent (empty when the input is): x_upper's row i takes dh, x_lower's -dh (its row is
// -e_i' tau <= -x_lower_i; a bound's coefficients are fixed, their dg dropped), a row of
// constraints.G takes dg and dh; a time-invariant input sums over t.
class StageConstraintGradient {
 public:
  StageConstraintGradient(const Problem& problem, std::vector<double>* x_lower,
                          std::vector<double>* x_upper, std::vector<double>* constraint_G,
                          std::vector<double>* constraint_h);
  void Add(int t, int r, absl::Span<const double> dg, double dh);

 private:
  const Problem& problem_;
  std::vector<double>* const x_lower_;
  std::vector<double>* const x_upper_;
  std::vector<double>* const constraint_G_;
  std::vector<double>* const constraint_h_;
};

}  // namespace mpc

#endif  // MPC_SOLVER_STAGE_CONSTRAINTS_H_
