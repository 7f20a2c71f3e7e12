#ifndef MPC_SOLVER_HOST_DEVICE_H_
#define MPC_SOLVER_HOST_DEVICE_H_

// Marks functions that run on the host and, under nvcc, on the device too.
#if defined(__CUDACC__)
#define MPC_HOST_DEVICE __host__ __device__
#else
#define MPC_HOST_DEVICE
#endif

// For the small kernels whose loop bounds are the caller's compile-time sizes: inlined, the loops
// get constant trip counts (unrolled, vectorised); called, they would run with run-time bounds.
#if defined(__CUDACC__)
#define MPC_FORCE_INLINE __forceinline__
#else
#define MPC_FORCE_INLINE inline __attribute__((always_inline))
#endif

// For the forward-mode AD entry points (model_derivatives.h): the model's Step and every dual
// operation inlined into them, so the tangents live in registers instead of going through memory
// at each call. The device compiler inlines these on its own.
#if defined(__CUDACC__)
#define MPC_FLATTEN
#else
#define MPC_FLATTEN __attribute__((flatten))
#endif

// For a host function kept out of its callers: GCC decides such inlining by the size of the whole
// translation unit, so code added for other instantiations could otherwise move it into a hot
// loop's registers. The device compiler decides on its own.
#if defined(__CUDACC__)
#define MPC_NOINLINE_ON_HOST
#else
#define MPC_NOINLINE_ON_HOST __attribute__((noinline))
#endif

#endif  // MPC_SOLVER_HOST_DEVICE_H_
