#include "solver/cuda/ilqr_dispatch.cuh"
#include "solver/cuda/ilqr_launch.h"

namespace mpc::device_ilqr {

cudaError_t LaunchIlqrSolve(DeviceKernel kernel, const IlqrBatchView<double>& view,
                            cudaStream_t stream) {
  return DispatchIlqrSolve(kernel, view, stream);
}

}  // namespace mpc::device_ilqr
