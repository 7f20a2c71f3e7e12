#ifndef MPC_TESTS_TESTING_ACTIVE_SET_H_
#define MPC_TESTS_TESTING_ACTIVE_SET_H_

// Which controls of a solution sit at their bounds, for the tests that compare active sets.

#include <cmath>
#include <vector>

#include "solver/problem.h"
#include "tests/testing/dense_kkt.h"

namespace mpc::testing {

// -1 at the lower bound, +1 at the upper (within `tolerance`), 0 free, row-major (T, m); all 0
// without bounds.
inline std::vector<int> ControlActiveSet(const Problem& p, const std::vector<double>& u,
                                         double tolerance) {
  const int m = p.shape.control_dim;
  std::vector<int> active(u.size(), 0);
  if (p.u_lower.empty()) return active;
  for (int t = 0; t < p.shape.horizon; ++t) {
    const double* lo = SliceAt(p.u_lower, t, m);
    const double* hi = SliceAt(p.u_upper, t, m);
    for (int j = 0; j < m; ++j) {
      const double v = u[t * m + j];
      if (std::abs(v - lo[j]) <= tolerance) active[t * m + j] = -1;
      if (std::abs(v - hi[j]) <= tolerance) active[t * m + j] = 1;
    }
  }
  return active;
}

}  // namespace mpc::testing

#endif  // MPC_TESTS_TESTING_ACTIVE_SET_H_
