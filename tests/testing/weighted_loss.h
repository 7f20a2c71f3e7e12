#ifndef MPC_TESTS_TESTING_WEIGHTED_LOSS_H_
#define MPC_TESTS_TESTING_WEIGHTED_LOSS_H_

// A fixed pseudo-random linear loss of a solution, L = w . [x; u], for checking Backward's
// dL/d(input) against central differences of whole solves.

#include <cmath>
#include <cstddef>
#include <vector>

#include "solver/gradients.h"
#include "solver/problem.h"

namespace mpc::testing {

class WeightedLoss {
 public:
  // Weights sin(1 + 3.7 e) over the entries of x then u: no two alike, none zero, fixed.
  explicit WeightedLoss(const Solution& shape) : weights_(shape.x.size() + shape.u.size()) {
    for (std::size_t e = 0; e < weights_.size(); ++e) weights_[e] = std::sin(1.0 + 3.7 * e);
  }

  double operator()(const Solution& s) const {
    double sum = 0.0;
    for (std::size_t e = 0; e < s.x.size(); ++e) sum += weights_[e] * s.x[e];
    for (std::size_t e = 0; e < s.u.size(); ++e) sum += weights_[s.x.size() + e] * s.u[e];
    return sum;
  }

  // The Backward of `problem` at its solution `s` with this loss's cotangents.
  BackwardProblem At(const Problem* problem, const Solution& s, GradientMode mode) const {
    BackwardProblem backward;
    backward.problem = problem;
    backward.x = s.x;
    backward.u = s.u;
    backward.dl_dx.assign(weights_.begin(), weights_.begin() + s.x.size());
    backward.dl_du.assign(weights_.begin() + s.x.size(), weights_.end());
    backward.mode = mode;
    return backward;
  }

 private:
  std::vector<double> weights_;
};

}  // namespace mpc::testing

#endif  // MPC_TESTS_TESTING_WEIGHTED_LOSS_H_
