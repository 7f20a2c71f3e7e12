#include "solver/cuda/backward_dispatch.cuh"
#include "solver/cuda/backward_launch.h"

namespace mpc::device_ilqr {

cudaError_t LaunchBackward(DeviceKernel kernel, const BackwardBatchView<float>& view,
                           cudaStream_t stream) {
  return DispatchBackward(kernel, view, stream);
}

}  // namespace mpc::device_ilqr
