#ifndef MPC_SOLVER_CUDA_CUDA_STATUS_H_
#define MPC_SOLVER_CUDA_CUDA_STATUS_H_

// cudaError_t -> absl::Status, in one place (host only: used by cuda_backend.cc).

#include <cuda_runtime_api.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace mpc {

// OK for cudaSuccess, else INTERNAL naming `what` and the CUDA error.
inline absl::Status CudaStatus(cudaError_t error, absl::string_view what) {
  if (error == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("cuda: ", what, ": ", cudaGetErrorName(error), " (",
                                          cudaGetErrorString(error), ")"));
}

}  // namespace mpc

#endif  // MPC_SOLVER_CUDA_CUDA_STATUS_H_
