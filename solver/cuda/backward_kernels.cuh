#ifndef MPC_SOLVER_CUDA_BACKWARD_KERNELS_CUH_
#define MPC_SOLVER_CUDA_BACKWARD_KERNELS_CUH_

// __global__ kernel of the device backward pass (STYLE rule 12: kernels here, launchers in
// backward_launch_*.cu, the backend in cuda_backend.cc). One thread computes one problem's
// gradient, as the solve kernels do (ilqr_kernels.cuh).

#include "solver/core/batch_view.h"
#include "solver/core/implicit_backward.h"

namespace mpc::core {

// view: the batch's buffers (backward_batch_view.h); thread b computes problem b < batch.
template <typename S, class Dynamics, int NX, int NU, bool kFixedSize>
__global__ void __launch_bounds__(64) BackwardKernel(const BackwardBatchView<S> view) {
  const int b = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (b >= view.problem.batch) return;
  ProblemBackward<S, Dynamics, NX, NU, kFixedSize>(view, b).Run();
}

}  // namespace mpc::core

#endif  // MPC_SOLVER_CUDA_BACKWARD_KERNELS_CUH_
