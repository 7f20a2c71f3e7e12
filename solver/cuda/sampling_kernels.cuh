#ifndef MPC_SOLVER_CUDA_SAMPLING_KERNELS_CUH_
#define MPC_SOLVER_CUDA_SAMPLING_KERNELS_CUH_

// __global__ kernels of the sampling methods (solver/core/sampling.h; STYLE rule 12): a few lines
// over the core's steps. Rollouts run one thread per (problem, sample), the natural GPU workload
// (problems x samples threads, each over the horizon); the updates, which read every sample of a
// problem, one thread per problem.

#include "solver/core/sampling.h"

namespace mpc::core {

// view: the batch's buffers (sampling.h); thread b begins problem b < view.problem.batch.
template <typename S, class Dynamics, int NX, int NU, bool kFixedSize>
__global__ void __launch_bounds__(64) SamplingBeginKernel(const SamplingBatchView<S> view) {
  const int b = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (b >= view.problem.batch) return;
  ProblemSampler<S, Dynamics, NX, NU, kFixedSize>(view, b).Begin();
}

// Thread (sample s, problem b) = s * batch + b, so the threads of a warp share s and read
// neighbouring problems' data (the interleaved layout's coalescing); max_samples rows of threads.
template <typename S, class Dynamics, int NX, int NU, bool kFixedSize>
__global__ void __launch_bounds__(128)
    SampleCostKernel(const SamplingBatchView<S> view, int iteration, int max_samples) {
  const long long thread = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int batch = view.problem.batch;
  if (thread >= static_cast<long long>(batch) * max_samples) return;
  SampleCostIfSampled<S, Dynamics, NX, NU, kFixedSize>(view, static_cast<int>(thread % batch),
                                                       iteration, static_cast<int>(thread / batch));
}

template <typename S, class Dynamics, int NX, int NU, bool kFixedSize>
__global__ void __launch_bounds__(64)
    SamplingUpdateKernel(const SamplingBatchView<S> view, int iteration) {
  const int b = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (b >= view.problem.batch) return;
  ProblemSampler<S, Dynamics, NX, NU, kFixedSize>(view, b).Update(iteration);
}

template <typename S, class Dynamics, int NX, int NU, bool kFixedSize>
__global__ void __launch_bounds__(64) SamplingPolishKernel(const SamplingBatchView<S> view) {
  const int b = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (b >= view.problem.batch) return;
  PolishAndFinish<S, Dynamics, NX, NU, kFixedSize>(view, b);
}

}  // namespace mpc::core

#endif  // MPC_SOLVER_CUDA_SAMPLING_KERNELS_CUH_
