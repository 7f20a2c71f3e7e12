#ifndef MPC_SOLVER_CPU_VECTOR_MATH_H_
#define MPC_SOLVER_CPU_VECTOR_MATH_H_

// Elementary functions of four doubles at once: glibc's AVX2 vector variants (libmvec,
// _ZGVdN4v_sin and friends, linked by solver/CMakeLists.txt). They are within 4 ulp of the scalar
// libm, so their last bits may differ from it; each lane's result depends on that lane's input
// only. Without AVX2 every lane calls the scalar function. Host only (not for nvcc).

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
__m256d _ZGVdN4v_exp(__m256d x);
__m256d _ZGVdN4v_tanh(__m256d x);
__m256d _ZGVdN4vv_atan2(__m256d y, __m256d x);
}

inline Double4 Sin4(Double4 a) { return _ZGVdN4v_sin(a); }
inline Double4 Cos4(Double4 a) { return _ZGVdN4v_cos(a); }
inline Double4 Exp4(Double4 a) { return _ZGVdN4v_exp(a); }
inline Double4 Tanh4(Double4 a) { return _ZGVdN4v_tanh(a); }
inline Double4 Atan2_4(Double4 y, Double4 x) { return _ZGVdN4vv_atan2(y, x); }

#else

namespace vector_math_internal {

// f lane by lane: the scalar libm.
template <class F>
inline Double4 PerLane(Double4 a, F f) {
  return Double4{f(a[0]), f(a[1]), f(a[2]), f(a[3])};
}

}  // namespace vector_math_internal

inline Double4 Sin4(Double4 a) {
  return vector_math_internal::PerLane(a, [](double v) { return std::sin(v); });
}
inline Double4 Cos4(Double4 a) {
  return vector_math_internal::PerLane(a, [](double v) { return std::cos(v); });
}
inline Double4 Exp4(Double4 a) {
  return vector_math_internal::PerLane(a, [](double v) { return std::exp(v); });
}
inline Double4 Tanh4(Double4 a) {
  return vector_math_internal::PerLane(a, [](double v) { return std::tanh(v); });
}
inline Double4 Atan2_4(Double4 y, Double4 x) {
  return Double4{std::atan2(y[0], x[0]), std::atan2(y[1], x[1]), std::atan2(y[2], x[2]),
                 std::atan2(y[3], x[3])};
}

#endif

}  // namespace mpc

#endif  // MPC_SOLVER_CPU_VECTOR_MATH_H_
