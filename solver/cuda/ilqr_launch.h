#ifndef MPC_SOLVER_CUDA_ILQR_LAUNCH_H_
#define MPC_SOLVER_CUDA_ILQR_LAUNCH_H_

// Launchers of the device solver (ilqr_kernels.cuh): stream in, cudaError_t out, nothing
// synchronised. No absl, no Eigen: included by nvcc and host translation units alike.

#include <cuda_runtime_api.h>

#include "solver/core/batch_view.h"
#include "solver/problem_shape.h"

namespace mpc::core {

// Threads per block of the solve kernels (one thread per problem).
constexpr int kSolveThreadsPerBlock = 64;

// Enqueues the solve of every problem of `view` (device pointers, ilqr_batch_view.h) on `stream`
// with the specialisation of the batch's `shape` (which core::RunsOnDevice). Returns the launch
// error, if any.
cudaError_t LaunchIlqrSolve(const ProblemShape& shape, const IlqrBatchView<double>& view,
                            cudaStream_t stream);
cudaError_t LaunchIlqrSolve(const ProblemShape& shape, const IlqrBatchView<float>& view,
                            cudaStream_t stream);

}  // namespace mpc::core

#endif  // MPC_SOLVER_CUDA_ILQR_LAUNCH_H_
