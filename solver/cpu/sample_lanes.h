#ifndef MPC_SOLVER_CPU_SAMPLE_LANES_H_
#define MPC_SOLVER_CPU_SAMPLE_LANES_H_

// The CPU's rollout scalar for sampling (core/sampling.h): one quantity of four samples at once,
// four doubles in one AVX2 register, so that the core's rollout and the models' Step<T, P> (which
// call sin, cos, atan2, SinCos and Clamp unqualified, found here by argument-dependent lookup) run
// four samples per instruction. The transcendentals are glibc's vector variants (libmvec,
// _ZGVdN4v_sin and friends; within 4 ulp, so their last bits may differ from the scalar libm's);
// without AVX2 each lane calls the scalar function. Every lane does the same operations on its own
// inputs, so a sample's value never depends on the samples beside it. Host only (not for nvcc).

#include <cmath>

#include "solver/cpu/double4.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace mpc {

#if defined(__AVX2__)
extern "C" {
__m256d _ZGVdN4v_sin(__m256d x);
__m256d _ZGVdN4v_cos(__m256d x);
__m256d _ZGVdN4vv_atan2(__m256d y, __m256d x);
}
#endif

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

namespace sample_lanes_internal {

// f applied lane by lane (the scalar libm): where no vector variant is available.
template <class F>
SampleLanes PerLane(const SampleLanes& a, F f) {
  double out[SampleLanes::kLanes];
  for (int lane = 0; lane < SampleLanes::kLanes; ++lane) out[lane] = f(a[lane]);
  return SampleLanes::Load(out);
}

}  // namespace sample_lanes_internal

inline SampleLanes sin(const SampleLanes& a) {
#if defined(__AVX2__)
  return SampleLanes(_ZGVdN4v_sin(a.vector()));
#else
  return sample_lanes_internal::PerLane(a, [](double v) { return std::sin(v); });
#endif
}

inline SampleLanes cos(const SampleLanes& a) {
#if defined(__AVX2__)
  return SampleLanes(_ZGVdN4v_cos(a.vector()));
#else
  return sample_lanes_internal::PerLane(a, [](double v) { return std::cos(v); });
#endif
}

inline SampleLanes atan2(const SampleLanes& y, const SampleLanes& x) {
#if defined(__AVX2__)
  return SampleLanes(_ZGVdN4vv_atan2(y.vector(), x.vector()));
#else
  double out[SampleLanes::kLanes];
  for (int lane = 0; lane < SampleLanes::kLanes; ++lane) out[lane] = std::atan2(y[lane], x[lane]);
  return SampleLanes::Load(out);
#endif
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
