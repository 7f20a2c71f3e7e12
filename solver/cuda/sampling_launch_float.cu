#include "solver/cuda/sampling_dispatch.cuh"
#include "solver/cuda/sampling_launch.h"

namespace mpc::core {

cudaError_t LaunchSamplingSolve(const ProblemShape& shape, const SamplingBatchView<float>& view,
                                int max_samples, int max_iterations, cudaStream_t stream) {
  return DispatchSamplingSolve(shape, view, max_samples, max_iterations, stream);
}

}  // namespace mpc::core
