#ifndef MPC_SOLVER_CPU_SAMPLE_LANES_H_
#define MPC_SOLVER_CPU_SAMPLE_LANES_H_

// The CPU's rollout scalar for sampling (core/sampling.h): one quantity of four samples at once,
// four doubles in one AVX2 register, so that the core's rollout and the models' Step<T, P> (which
// call sin, cos, atan2, SinCos and Clamp unqualified, found here by argument-dependent lookup) run
// four samples per instruction. The transcendentals are glibc's vector variants
// (solver/cpu/vector_math.h: their last bits may differ from the scalar libm's). Every lane does
// the same operations on its own inputs, so a sample's value never depends on the samples beside
// it. Host only (not for nvcc).

#include "solver/cpu/double4.h"
#include "solver/cpu/vector_math.h"

namespace mpc {

class SampleLanes {
 public:
  static constexpr int kLanes = 4;
  using Vector = Double4;

  SampleLanes() = default;
  // Every lane `value` (so that the core's and the models' double constants mix in).
  SampleLanes(double value) : v_(BroadcastDouble4(value)) {}  // NOLINT(google-explicit-*)
  explicit SampleLanes(Vector v) : v_(v) {}

  // lanes[0..kLanes) into the lanes.
  static SampleLanes Load(const double* lanes) { return SampleLanes(LoadDouble4(lanes)); }
  double operator[](int lane) const { return v_[lane]; }
  const Vector& vector() const { return v_; }

  friend SampleLanes operator+(const SampleLanes& a, const SampleLanes& b) {
    return SampleLanes(a.v_ + b.v_);
  }
  friend SampleLanes operator-(const SampleLanes& a, const SampleLanes& b) {
    return SampleLanes(a.v_ - b.v_);
  }
  friend SampleLanes operator*(const SampleLanes& a, const SampleLanes& b) {
    return SampleLanes(a.v_ * b.v_);
  }
  friend SampleLanes operator/(const SampleLanes& a, const SampleLanes& b) {
    return SampleLanes(a.v_ / b.v_);
  }
  friend SampleLanes operator-(const SampleLanes& a) { return SampleLanes(-a.v_); }
  SampleLanes& operator+=(const SampleLanes& b) { return *this = *this + b; }
  SampleLanes& operator-=(const SampleLanes& b) { return *this = *this - b; }
  SampleLanes& operator*=(const SampleLanes& b) { return *this = *this * b; }
  SampleLanes& operator/=(const SampleLanes& b) { return *this = *this / b; }

 private:
  Vector v_{};
};

inline SampleLanes sin(const SampleLanes& a) { return SampleLanes(Sin4(a.vector())); }

inline SampleLanes cos(const SampleLanes& a) { return SampleLanes(Cos4(a.vector())); }

inline SampleLanes atan2(const SampleLanes& y, const SampleLanes& x) {
  return SampleLanes(Atan2_4(y.vector(), x.vector()));
}

inline void SinCos(const SampleLanes& a, SampleLanes* s, SampleLanes* c) {
  *s = sin(a);
  *c = cos(a);
}

// The scalar Clamp of solver/dual.h lane by lane: lo below lo, hi above hi, else a (NaN stays).
inline SampleLanes Clamp(const SampleLanes& a, double lo, double hi) {
  const SampleLanes::Vector v = a.vector();
  return SampleLanes(v < lo ? BroadcastDouble4(lo) : (v > hi ? BroadcastDouble4(hi) : v));
}

}  // namespace mpc

#endif  // MPC_SOLVER_CPU_SAMPLE_LANES_H_
