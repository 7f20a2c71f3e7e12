#include "solver/cuda/backward_dispatch.cuh"
#include "solver/cuda/backward_launch.h"

namespace mpc::core {

cudaError_t LaunchBackward(const ProblemShape& shape, const BackwardBatchView<float>& view,
                           cudaStream_t stream) {
  return DispatchBackward(shape, view, stream);
}

}  // namespace mpc::core
