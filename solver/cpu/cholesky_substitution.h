#ifndef MPC_SOLVER_CPU_CHOLESKY_SUBSTITUTION_H_
#define MPC_SOLVER_CPU_CHOLESKY_SUBSTITUTION_H_

// The small solve both CPU shape templates do with a control-space Cholesky factor. Internal to
// solver/cpu.

namespace mpc {
namespace cpu_internal {

// rhs <- (L L')^-1 rhs, column by column, for the (m, m) lower-triangular factor L (only its lower
// triangle is read). Plain substitution loops: for the small m of control problems they beat
// Eigen's blocked triangular solver, which packs its operands first.
template <class Factor, class Rhs>
void CholeskySolveInPlace(const Factor& L, int m, Rhs& rhs) {
  for (int c = 0; c < rhs.cols(); ++c) {
    for (int i = 0; i < m; ++i) {
      double s = rhs(i, c);
      for (int k = 0; k < i; ++k) s -= L(i, k) * rhs(k, c);
      rhs(i, c) = s / L(i, i);
    }
    for (int i = m - 1; i >= 0; --i) {
      double s = rhs(i, c);
      for (int k = i + 1; k < m; ++k) s -= L(k, i) * rhs(k, c);
      rhs(i, c) = s / L(i, i);
    }
  }
}

}  // namespace cpu_internal
}  // namespace mpc

#endif  // MPC_SOLVER_CPU_CHOLESKY_SUBSTITUTION_H_
