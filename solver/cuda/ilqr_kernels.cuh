#ifndef MPC_SOLVER_CUDA_ILQR_KERNELS_CUH_
#define MPC_SOLVER_CUDA_ILQR_KERNELS_CUH_

// __global__ kernels of the CUDA backend (STYLE rule 12: kernels here, launchers in
// ilqr_launch.cu, the backend in cuda_backend.cc). For the small problems of control (n+m up to
// ~16) one thread solves one problem: the whole iteration loop runs in one launch and every
// problem stops on its own (its thread returns), which is the per-problem convergence mask.

#include "solver/core/batch_view.h"
#include "solver/core/ilqr.h"

namespace mpc::core {

// view: the batch's buffers (ilqr_batch_view.h); thread b solves problem b < view.batch.
template <typename S, class Dynamics, int NX, int NU, bool kFixedSize>
__global__ void __launch_bounds__(64) IlqrSolveKernel(const IlqrBatchView<S> view) {
  const int b = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (b >= view.batch) return;
  ProblemSolver<S, Dynamics, NX, NU, kFixedSize>(view, b).Solve();
}

}  // namespace mpc::core

#endif  // MPC_SOLVER_CUDA_ILQR_KERNELS_CUH_
