#ifndef MPC_SOLVER_CPU_DOUBLE4_H_
#define MPC_SOLVER_CPU_DOUBLE4_H_

// Four doubles in one AVX2 register, as a GCC/Clang vector: the host's kernels that the compiler
// leaves scalar when written as loops (the graph interpreter's products, the four-sample rollout
// lanes) are spelled in it. Arithmetic is lane by lane, as the scalar code's. Host only.

namespace mpc {

using Double4 = double __attribute__((vector_size(4 * sizeof(double))));

// Four doubles at any double's address (buffers are only 8-byte aligned, and the vector type
// asks for 32): copied, which the compilers turn into one unaligned vector load or store.
[[gnu::always_inline]] inline Double4 LoadDouble4(const double* p) {
  Double4 v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}

[[gnu::always_inline]] inline void StoreDouble4(double* p, Double4 v) {
  __builtin_memcpy(p, &v, sizeof(v));
}

// Every lane `value`.
[[gnu::always_inline]] inline Double4 BroadcastDouble4(double value) {
  return Double4{value, value, value, value};
}

}  // namespace mpc

#endif  // MPC_SOLVER_CPU_DOUBLE4_H_
