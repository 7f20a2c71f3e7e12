#ifndef MPC_SOLVER_CUDA_SAMPLING_DISPATCH_CUH_
#define MPC_SOLVER_CUDA_SAMPLING_DISPATCH_CUH_

// The launcher template behind LaunchSamplingSolve (sampling_launch.h): the shape's compile-time
// specialisation (core/dispatch.h) launched step by step. Included by one .cu per scalar type.

#include "solver/core/dispatch.h"
#include "solver/cuda/ilqr_launch.h"
#include "solver/cuda/sampling_kernels.cuh"
#include "solver/cuda/sampling_launch.h"

namespace mpc::core {

// Threads per block of the (problem, sample) rollouts.
constexpr int kSampleThreadsPerBlock = 128;

template <typename S, class Dynamics, int NX, int NU, bool kFixedSize>
cudaError_t LaunchSamplingSpecialisation(const SamplingBatchView<S>& view, int max_samples,
                                         int max_iterations, cudaStream_t stream) {
  const int batch = view.problem.batch;
  if (batch <= 0) return cudaSuccess;
  const int problem_blocks = (batch + kSolveThreadsPerBlock - 1) / kSolveThreadsPerBlock;
  const long long sample_threads = static_cast<long long>(batch) * max_samples;
  const int sample_blocks =
      static_cast<int>((sample_threads + kSampleThreadsPerBlock - 1) / kSampleThreadsPerBlock);
  SamplingBeginKernel<S, Dynamics, NX, NU, kFixedSize>
      <<<problem_blocks, kSolveThreadsPerBlock, 0, stream>>>(view);
  cudaError_t error = cudaGetLastError();
  for (int iteration = 0; error == cudaSuccess && iteration < max_iterations; ++iteration) {
    SampleCostKernel<S, Dynamics, NX, NU, kFixedSize>
        <<<sample_blocks, kSampleThreadsPerBlock, 0, stream>>>(view, iteration, max_samples);
    error = cudaGetLastError();
    if (error != cudaSuccess) break;
    SamplingUpdateKernel<S, Dynamics, NX, NU, kFixedSize>
        <<<problem_blocks, kSolveThreadsPerBlock, 0, stream>>>(view, iteration);
    error = cudaGetLastError();
  }
  if (error != cudaSuccess) return error;
  SamplingPolishKernel<S, Dynamics, NX, NU, kFixedSize>
      <<<problem_blocks, kSolveThreadsPerBlock, 0, stream>>>(view);
  return cudaGetLastError();
}

template <typename S>
cudaError_t DispatchSamplingSolve(const ProblemShape& shape, const SamplingBatchView<S>& view,
                                  int max_samples, int max_iterations, cudaStream_t stream) {
  cudaError_t error = cudaErrorInvalidValue;
  DispatchShape<Executor::kGpu>(shape, [&]<class Dynamics, int NX, int NU, bool kFixedSize>() {
    error = LaunchSamplingSpecialisation<S, Dynamics, NX, NU, kFixedSize>(view, max_samples,
                                                                          max_iterations, stream);
  });
  return error;
}

}  // namespace mpc::core

#endif  // MPC_SOLVER_CUDA_SAMPLING_DISPATCH_CUH_
