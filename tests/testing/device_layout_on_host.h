#ifndef MPC_TESTS_TESTING_DEVICE_LAYOUT_ON_HOST_H_
#define MPC_TESTS_TESTING_DEVICE_LAYOUT_ON_HOST_H_

// What the CUDA backend launches, run on the host for the tests: the device's interleaved batch
// layout (solver/packing.h), the core instantiated with the device's sizes
// (DispatchShape<Executor::kGpu>) and the device's loops, called once per "thread" in a loop, the
// same unpacking; a built-in model is linearised as a CPU worker does it (four steps in vector
// lanes, device_layout_on_host.cc). Only the kernel launch and the copies are missing. The tests
// compare it bit for bit with the CPU backend (the contiguous layout) on machines without a GPU;
// never linked into the server.

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "solver/gradients.h"
#include "solver/problem.h"

namespace mpc::core {

// Solves problems[i] into *solutions[i] with the device solver in scalar S (double or float).
// Problems may differ in shape; every shape must run on the device (core::RunsOnDevice), else
// the batch is refused with UNIMPLEMENTED naming the shape.
template <typename S>
absl::Status SolveBatchOnHost(absl::Span<const Problem* const> problems,
                              absl::Span<Solution* const> solutions);

extern template absl::Status SolveBatchOnHost<double>(absl::Span<const Problem* const>,
                                                      absl::Span<Solution* const>);
extern template absl::Status SolveBatchOnHost<float>(absl::Span<const Problem* const>,
                                                     absl::Span<Solution* const>);

// Computes problems[i]'s gradient into *gradients[i] with the device backward pass
// (core/implicit_backward.h) in scalar S. Problems may differ in shape and mode; every one must be
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

#endif  // MPC_TESTS_TESTING_DEVICE_LAYOUT_ON_HOST_H_
