#ifndef MPC_SOLVER_CPU_DOUBLE_LANES_H_
#define MPC_SOLVER_CPU_DOUBLE_LANES_H_

// One quantity of four independent evaluations at once, four doubles in one AVX2 register: the
// CPU's scalar for the sampling rollouts (core/sampling.h, four samples), the line search's trials
// (core/ilqr.h, four step sizes) and, inside dual numbers, for the linearisation (model_lanes.h,
// four time steps), so that the core's rollout and the models' Step<T, P> (which call sin, cos,
// atan2, SinCos and Clamp unqualified, found here by argument-dependent lookup) run four
// evaluations per instruction. The transcendentals are glibc's vector variants
// (solver/cpu/vector_math.h: their last bits may differ from the scalar libm's); the arithmetic is
// lane by lane the scalar's. Every lane does the same operations on its own inputs, so a lane's
// value never depends on the lanes beside it. Host only (not for nvcc).

#include "solver/cpu/double4.h"
#include "solver/cpu/vector_math.h"
#include "solver/dual.h"
#include "solver/hyper_dual.h"

namespace mpc {

class DoubleLanes {
 public:
  static constexpr int kLanes = 4;
  using Vector = Double4;

  DoubleLanes() = default;
  // Every lane `value` (so that the core's and the models' double constants mix in).
  DoubleLanes(double value) : v_(BroadcastDouble4(value)) {}  // NOLINT(google-explicit-*)
  explicit DoubleLanes(Vector v) : v_(v) {}

  // lanes[0..kLanes) into the lanes.
  static DoubleLanes Load(const double* lanes) { return DoubleLanes(LoadDouble4(lanes)); }
  // The lanes into lanes[0..kLanes).
  void Store(double* lanes) const { StoreDouble4(lanes, v_); }
  double operator[](int lane) const { return v_[lane]; }
  const Vector& vector() const { return v_; }

  friend DoubleLanes operator+(const DoubleLanes& a, const DoubleLanes& b) {
    return DoubleLanes(a.v_ + b.v_);
  }
  friend DoubleLanes operator-(const DoubleLanes& a, const DoubleLanes& b) {
    return DoubleLanes(a.v_ - b.v_);
  }
  friend DoubleLanes operator*(const DoubleLanes& a, const DoubleLanes& b) {
    return DoubleLanes(a.v_ * b.v_);
  }
  friend DoubleLanes operator/(const DoubleLanes& a, const DoubleLanes& b) {
    return DoubleLanes(a.v_ / b.v_);
  }
  friend DoubleLanes operator-(const DoubleLanes& a) { return DoubleLanes(-a.v_); }
  DoubleLanes& operator+=(const DoubleLanes& b) { return *this = *this + b; }
  DoubleLanes& operator-=(const DoubleLanes& b) { return *this = *this - b; }
  DoubleLanes& operator*=(const DoubleLanes& b) { return *this = *this * b; }
  DoubleLanes& operator/=(const DoubleLanes& b) { return *this = *this / b; }

  // The core's scalar max and min lane by lane (core/lanes.h: a NaN a stays NaN).
  friend DoubleLanes LanesMax(const DoubleLanes& a, const DoubleLanes& b) {
    return DoubleLanes(a.v_ < b.v_ ? b.v_ : a.v_);
  }
  friend DoubleLanes LanesMin(const DoubleLanes& a, const DoubleLanes& b) {
    return DoubleLanes(b.v_ < a.v_ ? b.v_ : a.v_);
  }

 private:
  Vector v_{};
};

inline DoubleLanes sin(const DoubleLanes& a) { return DoubleLanes(Sin4(a.vector())); }

inline DoubleLanes cos(const DoubleLanes& a) { return DoubleLanes(Cos4(a.vector())); }

inline DoubleLanes atan2(const DoubleLanes& y, const DoubleLanes& x) {
  return DoubleLanes(Atan2_4(y.vector(), x.vector()));
}

inline void SinCos(const DoubleLanes& a, DoubleLanes* s, DoubleLanes* c) {
  *s = sin(a);
  *c = cos(a);
}

// The scalar Clamp of solver/dual.h lane by lane: lo below lo, hi above hi, else a (NaN stays).
inline DoubleLanes Clamp(const DoubleLanes& a, double lo, double hi) {
  const DoubleLanes::Vector v = a.vector();
  return DoubleLanes(v < lo ? BroadcastDouble4(lo) : (v > hi ? BroadcastDouble4(hi) : v));
}

// The lanes of a whose value lies outside [lo, hi] (a dual's: of its innermost value), as a mask.
inline auto LanesOutside(const DoubleLanes& a, double lo, double hi) {
  const DoubleLanes::Vector v = a.vector();
  return (v < lo) | (v > hi);
}
template <typename S, int N>
inline auto LanesOutside(const Dual<S, N>& a, double lo, double hi) {
  return LanesOutside(a.v, lo, hi);
}
template <typename S, int N>
inline auto LanesOutside(const HyperDual<S, N>& a, double lo, double hi) {
  return LanesOutside(a.v, lo, hi);
}

// a with every element zero in the lanes of `mask`.
template <typename Mask>
inline DoubleLanes ZeroLanes(const DoubleLanes& a, Mask mask) {
  return DoubleLanes(mask ? BroadcastDouble4(0.0) : a.vector());
}
template <typename S, int N, typename Mask>
inline Dual<S, N> ZeroLanes(const Dual<S, N>& a, Mask mask) {
  Dual<S, N> r(ZeroLanes(a.v, mask));
  for (int i = 0; i < N; ++i) r.d[i] = ZeroLanes(a.d[i], mask);
  return r;
}

template <typename S, int N, typename Mask>
inline HyperDual<S, N> ZeroLanes(const HyperDual<S, N>& a, Mask mask) {
  HyperDual<S, N> r(ZeroLanes(a.v, mask));
  for (int i = 0; i < N; ++i) r.g[i] = ZeroLanes(a.g[i], mask);
  for (int e = 0; e < HyperDual<S, N>::kPairs; ++e) r.h[e] = ZeroLanes(a.h[e], mask);
  return r;
}

// solver/dual.h's and solver/hyper_dual.h's Clamp of a derivative type lane by lane: the value
// clamped, every derivative zero in the lanes outside [lo, hi] (torch.clamp's derivative).
template <typename D>
inline D ClampLanes(const D& a, double lo, double hi) {
  D r = ZeroLanes(a, LanesOutside(a, lo, hi));
  r.v = Clamp(a.v, lo, hi);
  return r;
}
template <int N>
inline Dual<DoubleLanes, N> Clamp(const Dual<DoubleLanes, N>& a, double lo, double hi) {
  return ClampLanes(a, lo, hi);
}
// A dual of duals, as the second derivatives nest them.
template <int M, int N>
inline Dual<Dual<DoubleLanes, M>, N> Clamp(const Dual<Dual<DoubleLanes, M>, N>& a, double lo,
                                           double hi) {
  return ClampLanes(a, lo, hi);
}
// Second-order duals (the tau-Hessian of model_derivatives.h).
template <int N>
inline HyperDual<DoubleLanes, N> Clamp(const HyperDual<DoubleLanes, N>& a, double lo, double hi) {
  return ClampLanes(a, lo, hi);
}

}  // namespace mpc

#endif  // MPC_SOLVER_CPU_DOUBLE_LANES_H_
