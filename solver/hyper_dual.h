#ifndef MPC_SOLVER_HYPER_DUAL_H_
#define MPC_SOLVER_HYPER_DUAL_H_

#include <cmath>

#include "solver/dual.h"
#include "solver/host_device.h"

namespace mpc {

// Second-order forward-mode automatic differentiation in N directions: a value, its gradient g
// and its Hessian h, stored once per pair i <= j (packed upper triangle, row by row). A Dual of
// Duals carries the same derivatives in (N+1)^2 numbers, the gradient twice and every mixed
// second derivative twice; this carries 1 + N + N(N+1)/2 and forms each once. Plain data so it
// works on the device; S is double, float or (on a host) four lanes of doubles.
template <typename S, int N>
struct HyperDual {
  using Scalar = S;
  static constexpr int kPairs = N * (N + 1) / 2;

  S v{};
  S g[N]{};
  S h[kPairs]{};

  HyperDual() = default;  // defaulted: host and device alike (nvcc ignores annotations here)
  MPC_HOST_DEVICE HyperDual(const S& value) : v(value) {}  // NOLINT: constants promote implicitly

  // A variable: value `value`, first derivative 1 in direction `direction`.
  MPC_HOST_DEVICE static HyperDual Variable(const S& value, int direction) {
    HyperDual r(value);
    r.g[direction] = S(1);
    return r;
  }

  MPC_HOST_DEVICE HyperDual& operator+=(const HyperDual& b) { return *this = *this + b; }
  MPC_HOST_DEVICE HyperDual& operator-=(const HyperDual& b) { return *this = *this - b; }
  MPC_HOST_DEVICE HyperDual& operator*=(const HyperDual& b) { return *this = *this * b; }
  MPC_HOST_DEVICE HyperDual& operator/=(const HyperDual& b) { return *this = *this / b; }

  // As Dual::WithValue: the value `value` with this number's derivatives, or zeros where `zero`.
  MPC_HOST_DEVICE HyperDual WithValue(const S& value, bool zero) const {
    HyperDual r(value);
    for (int i = 0; i < N; ++i) r.g[i] = zero ? S(0) : g[i];
    for (int e = 0; e < kPairs; ++e) r.h[e] = zero ? S(0) : h[e];
    return r;
  }
};

template <typename S, int N>
struct IsForwardMode<HyperDual<S, N>> : std::true_type {};

// A scalar beside a HyperDual<S, N>: S (or what converts to it: a double constant, a parameter),
// by value (a reference would odr-use a model's constexpr constant, which device code cannot).
// Not deduced, so `2.0 * x` and `p[0] * x` find the operators below for any S.
template <typename S, int N>
using HyperScalar = typename HyperDual<S, N>::Scalar;

template <typename S, int N>
MPC_HOST_DEVICE inline const auto& ValueOf(const HyperDual<S, N>& x) {
  return ValueOf(x.v);
}

// The Hessian of f(a) for f(a.v) = f0, f'(a.v) = f1, f''(a.v) = f2: f1 h_a + f2 g_a g_a'.
template <typename S, int N>
MPC_HOST_DEVICE inline HyperDual<S, N> ChainSecond(const HyperDual<S, N>& a, const S& f0,
                                                   const S& f1, const S& f2) {
  HyperDual<S, N> r(f0);
  for (int i = 0; i < N; ++i) r.g[i] = f1 * a.g[i];
  int e = 0;
  for (int i = 0; i < N; ++i) {
    const S f2_gi = f2 * a.g[i];
    for (int j = i; j < N; ++j, ++e) r.h[e] = f1 * a.h[e] + f2_gi * a.g[j];
  }
  return r;
}

template <typename S, int N>
MPC_HOST_DEVICE inline HyperDual<S, N> operator-(const HyperDual<S, N>& a) {
  HyperDual<S, N> r(-a.v);
  for (int i = 0; i < N; ++i) r.g[i] = -a.g[i];
  for (int e = 0; e < HyperDual<S, N>::kPairs; ++e) r.h[e] = -a.h[e];
  return r;
}
template <typename S, int N>
MPC_HOST_DEVICE inline HyperDual<S, N> operator+(const HyperDual<S, N>& a,
                                                 const HyperDual<S, N>& b) {
  HyperDual<S, N> r(a.v + b.v);
  for (int i = 0; i < N; ++i) r.g[i] = a.g[i] + b.g[i];
  for (int e = 0; e < HyperDual<S, N>::kPairs; ++e) r.h[e] = a.h[e] + b.h[e];
  return r;
}
template <typename S, int N>
MPC_HOST_DEVICE inline HyperDual<S, N> operator-(const HyperDual<S, N>& a,
                                                 const HyperDual<S, N>& b) {
  HyperDual<S, N> r(a.v - b.v);
  for (int i = 0; i < N; ++i) r.g[i] = a.g[i] - b.g[i];
  for (int e = 0; e < HyperDual<S, N>::kPairs; ++e) r.h[e] = a.h[e] - b.h[e];
  return r;
}
// (ab)_ij = a_ij b + a b_ij + a_i b_j + a_j b_i.
template <typename S, int N>
MPC_HOST_DEVICE inline HyperDual<S, N> operator*(const HyperDual<S, N>& a,
                                                 const HyperDual<S, N>& b) {
  HyperDual<S, N> r(a.v * b.v);
  for (int i = 0; i < N; ++i) r.g[i] = a.g[i] * b.v + a.v * b.g[i];
  int e = 0;
  for (int i = 0; i < N; ++i) {
    for (int j = i; j < N; ++j, ++e) {
      r.h[e] = a.h[e] * b.v + a.v * b.h[e] + (a.g[i] * b.g[j] + a.g[j] * b.g[i]);
    }
  }
  return r;
}
// q = a / b from a = q b: q_i = (a_i - q b_i) / b, q_ij = (a_ij - q b_ij - q_i b_j - q_j b_i) / b.
template <typename S, int N>
MPC_HOST_DEVICE inline HyperDual<S, N> operator/(const HyperDual<S, N>& a,
                                                 const HyperDual<S, N>& b) {
  const S inv = S(1) / b.v;
  HyperDual<S, N> r(a.v * inv);
  for (int i = 0; i < N; ++i) r.g[i] = (a.g[i] - r.v * b.g[i]) * inv;
  int e = 0;
  for (int i = 0; i < N; ++i) {
    for (int j = i; j < N; ++j, ++e) {
      r.h[e] = (a.h[e] - r.v * b.h[e] - (r.g[i] * b.g[j] + r.g[j] * b.g[i])) * inv;
    }
  }
  return r;
}

// Mixed operations with a scalar (a constant or a parameter without derivatives).
template <typename S, int N>
MPC_HOST_DEVICE inline HyperDual<S, N> operator+(const HyperDual<S, N>& a,
                                                 const HyperScalar<S, N> b) {
  HyperDual<S, N> r = a;
  r.v = a.v + b;
  return r;
}
template <typename S, int N>
MPC_HOST_DEVICE inline HyperDual<S, N> operator+(const HyperScalar<S, N> a,
                                                 const HyperDual<S, N>& b) {
  return b + a;
}
template <typename S, int N>
MPC_HOST_DEVICE inline HyperDual<S, N> operator-(const HyperDual<S, N>& a,
                                                 const HyperScalar<S, N> b) {
  HyperDual<S, N> r = a;
  r.v = a.v - b;
  return r;
}
template <typename S, int N>
MPC_HOST_DEVICE inline HyperDual<S, N> operator-(const HyperScalar<S, N> a,
                                                 const HyperDual<S, N>& b) {
  HyperDual<S, N> r = -b;
  r.v = a - b.v;
  return r;
}
template <typename S, int N>
MPC_HOST_DEVICE inline HyperDual<S, N> operator*(const HyperDual<S, N>& a,
                                                 const HyperScalar<S, N> b) {
  HyperDual<S, N> r(a.v * b);
  for (int i = 0; i < N; ++i) r.g[i] = a.g[i] * b;
  for (int e = 0; e < HyperDual<S, N>::kPairs; ++e) r.h[e] = a.h[e] * b;
  return r;
}
template <typename S, int N>
MPC_HOST_DEVICE inline HyperDual<S, N> operator*(const HyperScalar<S, N> a,
                                                 const HyperDual<S, N>& b) {
  return b * a;
}
template <typename S, int N>
MPC_HOST_DEVICE inline HyperDual<S, N> operator/(const HyperDual<S, N>& a,
                                                 const HyperScalar<S, N> b) {
  return a * (S(1) / b);
}
// a / b: f(b) = a / b, f' = -f / b, f'' = -2 f' / b.
template <typename S, int N>
MPC_HOST_DEVICE inline HyperDual<S, N> operator/(const HyperScalar<S, N> a,
                                                 const HyperDual<S, N>& b) {
  const S inv = S(1) / b.v;
  const S f0 = a * inv;
  const S f1 = -f0 * inv;
  return ChainSecond(b, f0, f1, S(-2) * f1 * inv);
}

template <typename S, int N>
MPC_HOST_DEVICE inline HyperDual<S, N> sin(const HyperDual<S, N>& a) {
  S s, c;
  SinCos(a.v, &s, &c);
  return ChainSecond(a, s, c, S(-s));
}
template <typename S, int N>
MPC_HOST_DEVICE inline HyperDual<S, N> cos(const HyperDual<S, N>& a) {
  S s, c;
  SinCos(a.v, &s, &c);
  return ChainSecond(a, c, S(-s), S(-c));
}
template <typename S, int N>
MPC_HOST_DEVICE inline void SinCos(const HyperDual<S, N>& a, HyperDual<S, N>* s,
                                   HyperDual<S, N>* c) {
  S sin_v, cos_v;
  SinCos(a.v, &sin_v, &cos_v);
  *s = ChainSecond(a, sin_v, cos_v, S(-sin_v));
  *c = ChainSecond(a, cos_v, S(-sin_v), S(-cos_v));
}
template <typename S, int N>
MPC_HOST_DEVICE inline HyperDual<S, N> sqrt(const HyperDual<S, N>& a) {
  using std::sqrt;
  const S root = sqrt(a.v);
  const S f1 = S(0.5) / root;
  return ChainSecond(a, root, f1, S(-0.5) * f1 / a.v);
}
template <typename S, int N>
MPC_HOST_DEVICE inline HyperDual<S, N> tanh(const HyperDual<S, N>& a) {
  using std::tanh;
  const S t = tanh(a.v);
  const S f1 = S(1) - t * t;
  return ChainSecond(a, t, f1, S(-2) * t * f1);
}
// atan2(y, x) with r2 = x^2 + y^2: g_i = (x y_i - y x_i) / r2,
// h_ij = (x y_ij - y x_ij + x_j y_i - y_j x_i) / r2 - 2 g_i (x x_j + y y_j) / r2 (symmetric).
template <typename S, int N>
MPC_HOST_DEVICE inline HyperDual<S, N> atan2(const HyperDual<S, N>& y, const HyperDual<S, N>& x) {
  using std::atan2;
  const S inv_r2 = S(1) / (x.v * x.v + y.v * y.v);
  HyperDual<S, N> r(atan2(y.v, x.v));
  for (int i = 0; i < N; ++i) r.g[i] = (x.v * y.g[i] - y.v * x.g[i]) * inv_r2;
  int e = 0;
  for (int i = 0; i < N; ++i) {
    for (int j = i; j < N; ++j, ++e) {
      const S curvature = x.v * y.h[e] - y.v * x.h[e] + (x.g[j] * y.g[i] - y.g[j] * x.g[i]);
      const S radial = S(2) * r.g[i] * (x.v * x.g[j] + y.v * y.g[j]);
      r.h[e] = (curvature - radial) * inv_r2;
    }
  }
  return r;
}

}  // namespace mpc

#endif  // MPC_SOLVER_HYPER_DUAL_H_
