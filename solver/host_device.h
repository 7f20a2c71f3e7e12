#ifndef MPC_SOLVER_HOST_DEVICE_H_
#define MPC_SOLVER_HOST_DEVICE_H_

// Marks functions that run on the host and, under nvcc, on the device too.
#if defined(__CUDACC__)
#define MPC_HOST_DEVICE __host__ __device__
#else
#define MPC_HOST_DEVICE
#endif

#endif  // MPC_SOLVER_HOST_DEVICE_H_
