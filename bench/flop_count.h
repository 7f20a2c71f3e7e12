#ifndef MPC_BENCH_FLOP_COUNT_H_
#define MPC_BENCH_FLOP_COUNT_H_

// Floating-point operation counts of one iLQR iteration, for the distance-to-peak figures in
// docs/benchmarks.md. Model evaluations are counted exactly by running the model's templated Step
// on a counting scalar (inside dual numbers for the Jacobians); the linear algebra is counted
// analytically from the shapes (a multiply-add is 2 flops, a transcendental function 1).

#include <cmath>

#include "solver/dual.h"
#include "solver/problem.h"

namespace mpc::bench {

// A double that counts the arithmetic done on it.
struct Flop {
  double v = 0.0;
  static inline long count = 0;
  Flop() = default;
  Flop(double value) : v(value) {}  // NOLINT: constants promote implicitly
  Flop& operator+=(const Flop& b) {
    ++count;
    v += b.v;
    return *this;
  }
  Flop& operator-=(const Flop& b) {
    ++count;
    v -= b.v;
    return *this;
  }
};
inline Flop operator+(Flop a, Flop b) {
  ++Flop::count;
  return a.v + b.v;
}
inline Flop operator-(Flop a, Flop b) {
  ++Flop::count;
  return a.v - b.v;
}
inline Flop operator*(Flop a, Flop b) {
  ++Flop::count;
  return a.v * b.v;
}
inline Flop operator/(Flop a, Flop b) {
  ++Flop::count;
  return a.v / b.v;
}
inline Flop operator-(Flop a) { return -a.v; }
inline bool operator<(Flop a, double b) { return a.v < b; }
inline bool operator>(Flop a, double b) { return a.v > b; }
inline Flop sin(Flop a) {
  ++Flop::count;
  return std::sin(a.v);
}
inline Flop cos(Flop a) {
  ++Flop::count;
  return std::cos(a.v);
}
inline Flop sqrt(Flop a) {
  ++Flop::count;
  return std::sqrt(a.v);
}
inline void SinCos(const Flop& a, Flop* s, Flop* c) {
  *s = sin(a);
  *c = cos(a);
}
inline Flop atan2(Flop a, Flop b) {
  ++Flop::count;
  return std::atan2(a.v, b.v);
}
inline const double& ValueOf(const Flop& a) { return a.v; }

// A plain (parameter) Flop meeting a dual number: the same arithmetic as the solver's
// Dual-with-double operators, counted.
template <int N>
Dual<Flop, N> operator*(const Flop& a, const Dual<Flop, N>& b) {
  Dual<Flop, N> r(a * b.v);
  for (int i = 0; i < N; ++i) r.d[i] = a * b.d[i];
  return r;
}
template <int N>
Dual<Flop, N> operator*(const Dual<Flop, N>& a, const Flop& b) {
  return b * a;
}
template <int N>
Dual<Flop, N> operator/(const Dual<Flop, N>& a, const Flop& b) {
  return a * (Flop(1.0) / b);
}
template <int N>
Dual<Flop, N> operator+(const Dual<Flop, N>& a, const Flop& b) {
  Dual<Flop, N> r = a;
  r.v = a.v + b;
  return r;
}
template <int N>
Dual<Flop, N> operator+(const Flop& a, const Dual<Flop, N>& b) {
  return b + a;
}
template <int N>
Dual<Flop, N> operator-(const Dual<Flop, N>& a, const Flop& b) {
  Dual<Flop, N> r = a;
  r.v = a.v - b;
  return r;
}

// Flops of one model step (its default integrator included) on plain numbers (Jacobians = false) or
// on dual numbers carrying all n+m tangents (Jacobians = true).
template <class Model, bool kJacobians>
long ModelStepFlops() {
  constexpr int n = Model::kStateDim, m = Model::kControlDim, np = Model::kParamDim;
  using T = std::conditional_t<kJacobians, Dual<Flop, n + m>, Flop>;
  T x[n], u[m], out[n];
  Flop p[np];
  for (auto& v : x) v = T(Flop(0.3));
  for (auto& v : u) v = T(Flop(0.1));
  for (auto& v : p) v = Flop(1.0);
  Flop::count = 0;
  ModelStep<Model>(x, u, p, Model::kDefaultDt, out);
  return Flop::count;
}

struct IterationFlops {
  double riccati = 0;    // backward pass
  double rollout = 0;    // one line-search trial: controls, dynamics, cost
  double linearize = 0;  // dynamics Jacobians (models only)
  double total() const { return riccati + rollout + linearize; }
};

// One iteration with a single line-search trial (the floor: more trials only add work).
inline IterationFlops CountIterationFlops(const ProblemShape& shape, long step_flops,
                                          long jacobian_flops, bool bounded) {
  const double n = shape.state_dim, m = shape.control_dim, T = shape.horizon;
  IterationFlops f;
  // Per step: cost gradient (2n^2 + 4nm + 2m^2), V A and V B (2n^3 + 2n^2 m), A'VA, B'VA, B'VB
  // (2n^3 + 2mn^2 + 2m^2 n), A'v and B'v (2n^2 + 2nm), Cholesky (m^3/3), gains (2m^2 (n+1)), V and
  // v updates (V = sym((2 Qux + Quu K)'K): 2m^2 n + nm + 2mn^2; v: 2nm + 2m^2 + 2nm).
  const double per_step = 2 * n * n + 4 * n * m + 2 * m * m + 2 * n * n * n + 2 * n * n * m +
                          2 * n * n * n + 2 * m * n * n + 2 * m * m * n + 2 * n * n + 2 * n * m +
                          m * m * m / 3 + 2 * m * m * (n + 1) + 2 * m * m * n + n * m +
                          2 * m * n * n + 4 * n * m + 2 * m * m;
  f.riccati =
      T * per_step + (bounded ? T * 2 * m * m : 0);  // one box-QP gradient per step at least
  // Per step: dx, K dx + alpha k, cost (n^2 + 2nm + m^2 + 2n + 2m), dynamics.
  f.rollout = T * (n + 2 * m * n + 2 * m + n * n + 2 * n * m + m * m + 2 * n + 2 * m) +
              (T - 1) * step_flops;
  f.linearize = (T - 1) * jacobian_flops;
  return f;
}

}  // namespace mpc::bench

#endif  // MPC_BENCH_FLOP_COUNT_H_
