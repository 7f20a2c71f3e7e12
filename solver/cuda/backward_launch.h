#ifndef MPC_SOLVER_CUDA_BACKWARD_LAUNCH_H_
#define MPC_SOLVER_CUDA_BACKWARD_LAUNCH_H_

// Launchers of the device backward pass (backward_kernels.cuh): stream in, cudaError_t out,
// nothing synchronised. No absl, no Eigen: included by nvcc and host translation units alike.

#include <cuda_runtime_api.h>

#include "solver/core/batch_view.h"
#include "solver/problem_shape.h"

namespace mpc::core {

// Threads per block of the backward kernels (one thread per problem).
constexpr int kBackwardThreadsPerBlock = 64;

// Enqueues the backward pass of every problem of `view` (device pointers, backward_batch_view.h)
// on `stream` with the specialisation of the batch's shape (which core::RunsOnDevice). Returns the
// launch error, if any.
cudaError_t LaunchBackward(const ProblemShape& shape, const BackwardBatchView<double>& view,
                           cudaStream_t stream);
cudaError_t LaunchBackward(const ProblemShape& shape, const BackwardBatchView<float>& view,
                           cudaStream_t stream);

}  // namespace mpc::core

#endif  // MPC_SOLVER_CUDA_BACKWARD_LAUNCH_H_
