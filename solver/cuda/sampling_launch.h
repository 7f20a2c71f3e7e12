#ifndef MPC_SOLVER_CUDA_SAMPLING_LAUNCH_H_
#define MPC_SOLVER_CUDA_SAMPLING_LAUNCH_H_

// Launchers of the sampling methods (sampling_kernels.cuh): stream in, cudaError_t out, nothing
// synchronised. No absl, no Eigen: included by nvcc and host translation units alike.

#include <cuda_runtime_api.h>

#include "solver/core/sampling.h"
#include "solver/problem_shape.h"

namespace mpc::core {

// Enqueues the whole solve of every problem of `view` (device pointers, sampling.h) on `stream`
// with the specialisation of the batch's `shape` (which core::RunsOnDevice): Begin, then per
// iteration up to `max_iterations` (the batch's largest) the rollouts of up to `max_samples`
// samples per problem and the updates, then the iLQR from the plans. Returns the first launch
// error, if any.
cudaError_t LaunchSamplingSolve(const ProblemShape& shape, const SamplingBatchView<double>& view,
                                int max_samples, int max_iterations, cudaStream_t stream);
cudaError_t LaunchSamplingSolve(const ProblemShape& shape, const SamplingBatchView<float>& view,
                                int max_samples, int max_iterations, cudaStream_t stream);

}  // namespace mpc::core

#endif  // MPC_SOLVER_CUDA_SAMPLING_LAUNCH_H_
