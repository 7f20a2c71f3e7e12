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

#endif  // MPC_SOLVER_HOST_DEVICE_H_
