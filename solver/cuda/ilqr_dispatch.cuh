#ifndef MPC_SOLVER_CUDA_ILQR_DISPATCH_CUH_
#define MPC_SOLVER_CUDA_ILQR_DISPATCH_CUH_

// The launcher template behind LaunchIlqrSolve (ilqr_launch.h): one switch from the run-time
// kernel choice to the compile-time specialisations (STYLE rule 12). Included by one .cu per
// scalar type, so that the two halves compile in parallel.

#include "solver/cuda/ilqr_kernels.cuh"
#include "solver/cuda/ilqr_launch.h"
#include "solver/models/cartpole.h"
#include "solver/models/pendulum.h"

namespace mpc::device_ilqr {

template <typename S, class Dynamics, int NX, int NU, bool kFixedSize = true>
cudaError_t LaunchSpecialisation(const IlqrBatchView<S>& view, cudaStream_t stream) {
  if (view.batch <= 0) return cudaSuccess;
  const int blocks = (view.batch + kSolveThreadsPerBlock - 1) / kSolveThreadsPerBlock;
  IlqrSolveKernel<S, Dynamics, NX, NU, kFixedSize>
      <<<blocks, kSolveThreadsPerBlock, 0, stream>>>(view);
  return cudaGetLastError();
}

template <typename S>
cudaError_t DispatchIlqrSolve(DeviceKernel kernel, const IlqrBatchView<S>& view,
                              cudaStream_t stream) {
  switch (kernel) {
    case DeviceKernel::kPendulum:
      return LaunchSpecialisation<S, ModelDynamics<PendulumModel>, 3, 1>(view, stream);
    case DeviceKernel::kCartpole:
      return LaunchSpecialisation<S, ModelDynamics<CartpoleModel>, 5, 1>(view, stream);
    case DeviceKernel::kLinear8x4:
      return LaunchSpecialisation<S, LinearDynamics, 8, 4>(view, stream);
    case DeviceKernel::kLinearGeneric:
      return LaunchSpecialisation<S, LinearDynamics, kGenericMaxStateDim, kGenericMaxControlDim,
                                  false>(view, stream);
    case DeviceKernel::kNone:
      break;
  }
  return cudaErrorInvalidValue;
}

}  // namespace mpc::device_ilqr

#endif  // MPC_SOLVER_CUDA_ILQR_DISPATCH_CUH_
