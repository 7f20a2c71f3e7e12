#include "solver/cuda/ilqr_dispatch.cuh"
#include "solver/cuda/ilqr_launch.h"

namespace mpc::core {

cudaError_t LaunchIlqrSolve(const ProblemShape& shape, const IlqrBatchView<double>& view,
                            cudaStream_t stream) {
  return DispatchIlqrSolve(shape, view, stream);
}

}  // namespace mpc::core
