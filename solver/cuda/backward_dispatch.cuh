#ifndef MPC_SOLVER_CUDA_BACKWARD_DISPATCH_CUH_
#define MPC_SOLVER_CUDA_BACKWARD_DISPATCH_CUH_

// The launcher template behind LaunchBackward (backward_launch.h): one switch from the run-time
// kernel choice to the compile-time specialisations, as ilqr_dispatch.cuh does for the solve.
// Included by one .cu per scalar type, so that the two halves compile in parallel.

#include "solver/cuda/backward_kernels.cuh"
#include "solver/cuda/backward_launch.h"
#include "solver/models/cartpole.h"
#include "solver/models/pendulum.h"

namespace mpc::device_ilqr {

template <typename S, class Dynamics, int NX, int NU, bool kFixedSize = true>
cudaError_t LaunchBackwardSpecialisation(const BackwardBatchView<S>& view, cudaStream_t stream) {
  if (view.problem.batch <= 0) return cudaSuccess;
  const int blocks = (view.problem.batch + kBackwardThreadsPerBlock - 1) / kBackwardThreadsPerBlock;
  BackwardKernel<S, Dynamics, NX, NU, kFixedSize>
      <<<blocks, kBackwardThreadsPerBlock, 0, stream>>>(view);
  return cudaGetLastError();
}

template <typename S>
cudaError_t DispatchBackward(DeviceKernel kernel, const BackwardBatchView<S>& view,
                             cudaStream_t stream) {
  switch (kernel) {
    case DeviceKernel::kPendulum:
      return LaunchBackwardSpecialisation<S, ModelDynamics<PendulumModel>, 3, 1>(view, stream);
    case DeviceKernel::kCartpole:
      return LaunchBackwardSpecialisation<S, ModelDynamics<CartpoleModel>, 5, 1>(view, stream);
    case DeviceKernel::kLinear8x4:
      return LaunchBackwardSpecialisation<S, LinearDynamics, 8, 4>(view, stream);
    case DeviceKernel::kLinearGeneric:
      return LaunchBackwardSpecialisation<S, LinearDynamics, kGenericMaxStateDim,
                                          kGenericMaxControlDim, false>(view, stream);
    case DeviceKernel::kNone:
      break;
  }
  return cudaErrorInvalidValue;
}

}  // namespace mpc::device_ilqr

#endif  // MPC_SOLVER_CUDA_BACKWARD_DISPATCH_CUH_
