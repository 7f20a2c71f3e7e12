#ifndef MPC_SOLVER_CUDA_HOST_EMULATION_H_
#define MPC_SOLVER_CUDA_HOST_EMULATION_H_

// The CUDA backend's solve and backward pass, run on the host: the same batch packing
// (ilqr_batch.h), the same per-problem device code (ilqr_device.h) called once per "thread" in a
// loop, the same unpacking. Only the kernel launch and the copies are missing. Exists so that the
// device solver is tested on machines without a GPU (CI); never used to serve.

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "solver/gradients.h"
#include "solver/problem.h"

namespace mpc::core {

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

// Computes problems[i]'s gradient into *gradients[i] with the device backward pass
// (backward_device.h) in scalar S. Problems may differ in shape and mode; every one must be
// computable on the device (DeviceSupportsBackward), else the batch is refused with UNIMPLEMENTED.
// Problems must pass ValidateBackwardProblem.
template <typename S>
absl::Status BackwardBatchOnHost(absl::Span<const BackwardProblem* const> problems,
                                 absl::Span<ProblemGradient* const> gradients);

extern template absl::Status BackwardBatchOnHost<double>(absl::Span<const BackwardProblem* const>,
                                                         absl::Span<ProblemGradient* const>);
extern template absl::Status BackwardBatchOnHost<float>(absl::Span<const BackwardProblem* const>,
                                                        absl::Span<ProblemGradient* const>);

}  // namespace mpc::core

#endif  // MPC_SOLVER_CUDA_HOST_EMULATION_H_
