#ifndef MPC_SOLVER_CUDA_HOST_EMULATION_H_
#define MPC_SOLVER_CUDA_HOST_EMULATION_H_

// The CUDA backend's solve, run on the host: the same batch packing (ilqr_batch.h), the same
// per-problem device code (ilqr_device.h) called once per "thread" in a loop, the same unpacking.
// Only the kernel launch and the copies are missing. Exists so that the device solver is tested
// on machines without a GPU (CI); never used to serve.

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "solver/problem.h"

namespace mpc::device_ilqr {

// Solves problems[i] into *solutions[i] with the device solver in scalar S (double or float).
// Problems may differ in shape; every shape must have a device kernel (SelectDeviceKernel), else
// the batch is refused with UNIMPLEMENTED naming the shape.
template <typename S>
absl::Status SolveBatchOnHost(absl::Span<const Problem* const> problems,
                              absl::Span<Solution* const> solutions);

extern template absl::Status SolveBatchOnHost<double>(absl::Span<const Problem* const>,
                                                      absl::Span<Solution* const>);
extern template absl::Status SolveBatchOnHost<float>(absl::Span<const Problem* const>,
                                                     absl::Span<Solution* const>);

}  // namespace mpc::device_ilqr

#endif  // MPC_SOLVER_CUDA_HOST_EMULATION_H_
