#ifndef MPC_TESTS_TESTING_MAX_ABS_H_
#define MPC_TESTS_TESTING_MAX_ABS_H_

// Infinity norms of flattened arrays, for comparing solutions and gradients in tests.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace mpc::testing {

// max_i |a_i|; 0 for an empty array.
inline double MaxAbs(const std::vector<double>& a) {
  double m = 0.0;
  for (double v : a) m = std::max(m, std::abs(v));
  return m;
}

// max_i |a_i - b_i| over the indices both arrays have (check the sizes separately).
inline double MaxAbsDiff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0.0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    m = std::max(m, std::abs(a[i] - b[i]));
  }
  return m;
}

}  // namespace mpc::testing

#endif  // MPC_TESTS_TESTING_MAX_ABS_H_
