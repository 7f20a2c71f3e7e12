#ifndef MPC_SOLVER_CUDA_ILQR_DISPATCH_CUH_
#define MPC_SOLVER_CUDA_ILQR_DISPATCH_CUH_

// The launcher template behind LaunchIlqrSolve (ilqr_launch.h): the shape's compile-time
// specialisation (core/dispatch.h, generated from the model list) launched (STYLE rule 12).
// Included by one .cu per scalar type, so that the two halves compile in parallel.

#include <type_traits>

#include "solver/core/dispatch.h"
#include "solver/cuda/ilqr_kernels.cuh"
#include "solver/cuda/ilqr_launch.h"

namespace mpc::core {

template <typename S, class Dynamics, int NX, int NU, bool kFixedSize = true>
cudaError_t LaunchSpecialisation(const IlqrBatchView<S>& view, cudaStream_t stream) {
  if (view.batch <= 0) return cudaSuccess;
  const int blocks = (view.batch + kSolveThreadsPerBlock - 1) / kSolveThreadsPerBlock;
  IlqrSolveKernel<S, Dynamics, NX, NU, kFixedSize>
      <<<blocks, kSolveThreadsPerBlock, 0, stream>>>(view);
  return cudaGetLastError();
}

template <typename S>
cudaError_t DispatchIlqrSolve(const ProblemShape& shape, const IlqrBatchView<S>& view,
                              cudaStream_t stream) {
  cudaError_t error = cudaErrorInvalidValue;
  if (shape.dynamics.is_graph()) {
    // A dynamics graph on its element records (view.graph_tape), in double only: the backend
    // sends no other graph problem here (cuda_backend.cc, DeviceSolvesGraph).
    if constexpr (std::is_same_v<S, double>) {
      DispatchGraphTape(shape, [&]<class Dynamics, int NX, int NU, bool kFixedSize>() {
        error = LaunchSpecialisation<S, Dynamics, NX, NU, kFixedSize>(view, stream);
      });
    }
    return error;
  }
  DispatchShape<Executor::kGpu>(shape, [&]<class Dynamics, int NX, int NU, bool kFixedSize>() {
    error = LaunchSpecialisation<S, Dynamics, NX, NU, kFixedSize>(view, stream);
  });
  return error;
}

}  // namespace mpc::core

#endif  // MPC_SOLVER_CUDA_ILQR_DISPATCH_CUH_
