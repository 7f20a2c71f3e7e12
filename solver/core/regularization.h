#ifndef MPC_SOLVER_CORE_REGULARIZATION_H_
#define MPC_SOLVER_CORE_REGULARIZATION_H_

namespace mpc {

// Levenberg-Marquardt on Quu, shared by the forward solver and the implicit backward pass so that
// both regularise the same way: the first mu, its growth factor, and the mu at which we give up.
constexpr double kMinRegularization = 1e-8;
constexpr double kRegularizationFactor = 10.0;
constexpr double kMaxRegularization = 1e10;

// The next mu after a failed factorisation.
constexpr double IncreasedRegularization(double mu) {
  return mu == 0.0 ? kMinRegularization : mu * kRegularizationFactor;
}

}  // namespace mpc

#endif  // MPC_SOLVER_CORE_REGULARIZATION_H_
