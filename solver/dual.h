#ifndef MPC_SOLVER_DUAL_H_
#define MPC_SOLVER_DUAL_H_

#include <cmath>
#include <type_traits>

#include "solver/host_device.h"

namespace mpc {

// Forward-mode automatic differentiation: a value and N directional derivatives. `S` may itself be
// a Dual, which gives second derivatives (forward over forward). Plain data so it works on the
// device.
template <typename S, int N>
struct Dual {
  S v{};
  S d[N]{};

  Dual() = default;  // defaulted: host and device alike (nvcc ignores annotations here)
  MPC_HOST_DEVICE Dual(const S& value) : v(value) {}  // NOLINT: constants promote implicitly

  // A variable: value `value`, derivative 1 in direction `direction`.
  MPC_HOST_DEVICE static Dual Variable(const S& value, int direction) {
    Dual r(value);
    r.d[direction] = S(1);
    return r;
  }

  MPC_HOST_DEVICE Dual& operator+=(const Dual& b) {
    v += b.v;
    for (int i = 0; i < N; ++i) d[i] += b.d[i];
    return *this;
  }
  MPC_HOST_DEVICE Dual& operator-=(const Dual& b) {
    v -= b.v;
    for (int i = 0; i < N; ++i) d[i] -= b.d[i];
    return *this;
  }
  MPC_HOST_DEVICE Dual& operator*=(const Dual& b) { return *this = *this * b; }
  MPC_HOST_DEVICE Dual& operator/=(const Dual& b) { return *this = *this / b; }

  // The value `value` with this number's derivatives, or with zeros where `zero` (every element
  // selected, no branch).
  MPC_HOST_DEVICE Dual WithValue(const S& value, bool zero) const {
    Dual r(value);
    for (int i = 0; i < N; ++i) r.d[i] = zero ? S(0) : d[i];
    return r;
  }
};

// The forward-mode number types (Dual; HyperDual in hyper_dual.h): what looks at the value only,
// or treats every derivative alike, is written once for all of them below.
template <typename T>
struct IsForwardMode : std::false_type {};
template <typename S, int N>
struct IsForwardMode<Dual<S, N>> : std::true_type {};
template <typename T>
using IfForwardMode = std::enable_if_t<IsForwardMode<T>::value, int>;
template <typename T>
using IfNotForwardMode = std::enable_if_t<!IsForwardMode<T>::value, int>;

// Makes the zero dual *x the variable Dual::Variable(value, direction), in place.
template <typename S, int N>
MPC_HOST_DEVICE inline void SeedVariable(const S& value, int direction, Dual<S, N>* x) {
  x->v = value;
  x->d[direction] = S(1);
}

// The value of a (possibly nested) dual number, or the number itself.
template <typename S>
MPC_HOST_DEVICE inline const S& ValueOf(const S& x) {
  return x;
}
template <typename S, int N>
MPC_HOST_DEVICE inline const auto& ValueOf(const Dual<S, N>& x) {
  return ValueOf(x.v);
}

// Builds the result of a unary function g with g(a.v) = value and g'(a.v) = slope.
template <typename S, int N>
MPC_HOST_DEVICE inline Dual<S, N> Chain(const Dual<S, N>& a, const S& value, const S& slope) {
  Dual<S, N> r(value);
  for (int i = 0; i < N; ++i) r.d[i] = slope * a.d[i];
  return r;
}

template <typename S, int N>
MPC_HOST_DEVICE inline Dual<S, N> operator-(const Dual<S, N>& a) {
  Dual<S, N> r(-a.v);
  for (int i = 0; i < N; ++i) r.d[i] = -a.d[i];
  return r;
}
// Built element by element rather than as a copy of `a` updated in place: a copy written with
// narrow stores and read back with wider loads stalls store forwarding. Same sums, same order.
template <typename S, int N>
MPC_HOST_DEVICE inline Dual<S, N> operator+(const Dual<S, N>& a, const Dual<S, N>& b) {
  Dual<S, N> r(a.v + b.v);
  for (int i = 0; i < N; ++i) r.d[i] = a.d[i] + b.d[i];
  return r;
}
template <typename S, int N>
MPC_HOST_DEVICE inline Dual<S, N> operator-(const Dual<S, N>& a, const Dual<S, N>& b) {
  Dual<S, N> r(a.v - b.v);
  for (int i = 0; i < N; ++i) r.d[i] = a.d[i] - b.d[i];
  return r;
}
template <typename S, int N>
MPC_HOST_DEVICE inline Dual<S, N> operator*(const Dual<S, N>& a, const Dual<S, N>& b) {
  Dual<S, N> r(a.v * b.v);
  for (int i = 0; i < N; ++i) r.d[i] = a.d[i] * b.v + a.v * b.d[i];
  return r;
}
template <typename S, int N>
MPC_HOST_DEVICE inline Dual<S, N> operator/(const Dual<S, N>& a, const Dual<S, N>& b) {
  const S inv = S(1) / b.v;
  const S q = a.v * inv;
  Dual<S, N> r(q);
  for (int i = 0; i < N; ++i) r.d[i] = (a.d[i] - q * b.d[i]) * inv;
  return r;
}

// Mixed operations with a plain double (any nesting depth).
template <typename S, int N>
MPC_HOST_DEVICE inline Dual<S, N> operator+(const Dual<S, N>& a, double b) {
  return a + Dual<S, N>(S(b));
}
template <typename S, int N>
MPC_HOST_DEVICE inline Dual<S, N> operator+(double a, const Dual<S, N>& b) {
  return Dual<S, N>(S(a)) + b;
}
template <typename S, int N>
MPC_HOST_DEVICE inline Dual<S, N> operator-(const Dual<S, N>& a, double b) {
  return a - Dual<S, N>(S(b));
}
template <typename S, int N>
MPC_HOST_DEVICE inline Dual<S, N> operator-(double a, const Dual<S, N>& b) {
  return Dual<S, N>(S(a)) - b;
}
template <typename S, int N>
MPC_HOST_DEVICE inline Dual<S, N> operator*(const Dual<S, N>& a, double b) {
  Dual<S, N> r(a.v * b);
  for (int i = 0; i < N; ++i) r.d[i] = a.d[i] * b;
  return r;
}
template <typename S, int N>
MPC_HOST_DEVICE inline Dual<S, N> operator*(double a, const Dual<S, N>& b) {
  return b * a;
}
template <typename S, int N>
MPC_HOST_DEVICE inline Dual<S, N> operator/(const Dual<S, N>& a, double b) {
  return a * (1.0 / b);
}
template <typename S, int N>
MPC_HOST_DEVICE inline Dual<S, N> operator/(double a, const Dual<S, N>& b) {
  return Dual<S, N>(S(a)) / b;
}

// Comparisons look at values only (used for clamps and branches).
template <typename T, IfForwardMode<T> = 0>
MPC_HOST_DEVICE inline bool operator<(const T& a, double b) {
  return ValueOf(a) < b;
}
template <typename T, IfForwardMode<T> = 0>
MPC_HOST_DEVICE inline bool operator>(const T& a, double b) {
  return ValueOf(a) > b;
}

template <typename S, int N>
MPC_HOST_DEVICE inline Dual<S, N> sin(const Dual<S, N>& a) {
  using std::cos;
  using std::sin;
  return Chain(a, S(sin(a.v)), S(cos(a.v)));
}
template <typename S, int N>
MPC_HOST_DEVICE inline Dual<S, N> cos(const Dual<S, N>& a) {
  using std::cos;
  using std::sin;
  return Chain(a, S(cos(a.v)), S(-sin(a.v)));
}
template <typename S, int N>
MPC_HOST_DEVICE inline Dual<S, N> sqrt(const Dual<S, N>& a) {
  using std::sqrt;
  const S root = sqrt(a.v);
  return Chain(a, root, S(0.5 / root));
}
template <typename S, int N>
MPC_HOST_DEVICE inline Dual<S, N> tanh(const Dual<S, N>& a) {
  using std::tanh;
  const S t = tanh(a.v);
  return Chain(a, t, S(1.0 - t * t));
}
// atan2(y, x): d = (x dy - y dx) / (x^2 + y^2).
template <typename S, int N>
MPC_HOST_DEVICE inline Dual<S, N> atan2(const Dual<S, N>& y, const Dual<S, N>& x) {
  using std::atan2;
  const S inv_r2 = S(1) / (x.v * x.v + y.v * y.v);
  Dual<S, N> r(atan2(y.v, x.v));
  for (int i = 0; i < N; ++i) r.d[i] = (x.v * y.d[i] - y.v * x.d[i]) * inv_r2;
  return r;
}

// sin(a) and cos(a) together: one sincos of the value serves both results and their derivatives.
MPC_HOST_DEVICE inline void SinCos(double a, double* s, double* c) {
  *s = std::sin(a);
  *c = std::cos(a);
}
MPC_HOST_DEVICE inline void SinCos(float a, float* s, float* c) {
  *s = std::sin(a);
  *c = std::cos(a);
}
template <typename S, int N>
MPC_HOST_DEVICE inline void SinCos(const Dual<S, N>& a, Dual<S, N>* s, Dual<S, N>* c) {
  S sin_v, cos_v;
  SinCos(a.v, &sin_v, &cos_v);
  *s = Chain(a, sin_v, cos_v);
  *c = Chain(a, cos_v, S(-sin_v));
}

// torch.clamp's derivative: 1 on the closed interval [lo, hi], 0 outside.
template <typename T, IfNotForwardMode<T> = 0>
MPC_HOST_DEVICE inline T Clamp(const T& a, double lo, double hi) {
  if (a < lo) return T(lo);
  if (a > hi) return T(hi);
  return a;
}
// The same for a forward-mode number, as one object whose every element is selected: three
// candidate objects (two constants and a copy of `a`) merge only in memory, where the copy's
// narrow stores are read back at once by wider loads that straddle them and stall store
// forwarding.
template <typename T, IfForwardMode<T> = 0>
MPC_HOST_DEVICE inline T Clamp(const T& a, double lo, double hi) {
  const bool below = a < lo;
  const bool above = !below && a > hi;
  return a.WithValue(below ? decltype(a.v)(lo) : above ? decltype(a.v)(hi) : a.v, below || above);
}

}  // namespace mpc

#endif  // MPC_SOLVER_DUAL_H_
