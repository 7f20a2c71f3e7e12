#ifndef MPC_SOLVER_CUDA_BACKWARD_DISPATCH_CUH_
#define MPC_SOLVER_CUDA_BACKWARD_DISPATCH_CUH_

// The launcher template behind LaunchBackward (backward_launch.h): the shape's compile-time
// specialisation (core/dispatch.h) launched, as ilqr_dispatch.cuh does for the solve.
// Included by one .cu per scalar type, so that the two halves compile in parallel.

#include "solver/core/dispatch.h"
#include "solver/cuda/backward_kernels.cuh"
#include "solver/cuda/backward_launch.h"

namespace mpc::core {

template <typename S, class Dynamics, int NX, int NU, bool kFixedSize = true>
cudaError_t LaunchBackwardSpecialisation(const BackwardBatchView<S>& view, cudaStream_t stream) {
  if (view.problem.batch <= 0) return cudaSuccess;
  const int blocks = (view.problem.batch + kBackwardThreadsPerBlock - 1) / kBackwardThreadsPerBlock;
  BackwardKernel<S, Dynamics, NX, NU, kFixedSize>
      <<<blocks, kBackwardThreadsPerBlock, 0, stream>>>(view);
  return cudaGetLastError();
}

template <typename S>
cudaError_t DispatchBackward(const ProblemShape& shape, const BackwardBatchView<S>& view,
                             cudaStream_t stream) {
  cudaError_t error = cudaErrorInvalidValue;
  DispatchShape<Executor::kGpu>(shape, [&]<class Dynamics, int NX, int NU, bool kFixedSize>() {
    error = LaunchBackwardSpecialisation<S, Dynamics, NX, NU, kFixedSize>(view, stream);
  });
  return error;
}

}  // namespace mpc::core

#endif  // MPC_SOLVER_CUDA_BACKWARD_DISPATCH_CUH_
