#ifndef MPC_SOLVER_CUDA_BACKWARD_BATCH_H_
#define MPC_SOLVER_CUDA_BACKWARD_BATCH_H_

// Host side of the device backward pass's batch layout (backward_batch_view.h): which backward
// problems the device computes, where every array lives in the one batch buffer, and the packing
// of BackwardProblems into it and of its results into ProblemGradients. Plain C++ (no CUDA), shared
// by the CUDA backend and the host emulation, so the packing is tested without a GPU.

#include <cstddef>

#include "absl/types/span.h"
#include "solver/cuda/backward_batch_view.h"
#include "solver/cuda/ilqr_batch.h"
#include "solver/gradients.h"

namespace mpc::device_ilqr {

// Whether the device backward pass computes `problem`: its shape has a device kernel
// (SelectDeviceKernel) and its mode is not kExact on a model (that mode needs the dynamics'
// curvature in every stage and is left to the CPU).
bool DeviceSupportsBackward(const BackwardProblem& problem);

// Offsets, in scalars, of every array of one backward batch in its buffer:
// [inputs: the problems' (as a solve packs them), x, u, dl_dx, dl_du | outputs: the gradients |
// scratch], so the inputs go to the device in one copy and the gradients come back in one.
struct BackwardBatchLayout {
  IlqrBatchLayout problem;  // only its input range [0, problem.input_size) is used
  int offset_gradient_slices = 1;

  std::size_t x = 0, u = 0, dl_dx = 0, dl_du = 0;
  std::size_t grad_x_init = 0, grad_cost_quadratic = 0, grad_cost_linear = 0, grad_transition = 0,
              grad_offset = 0, grad_params = 0;
  std::size_t A = 0, B = 0, P = 0, lambda = 0, free = 0, K = 0, k = 0, dx = 0, du = 0, mu = 0;
  std::size_t input_size = 0;   // scalars in [0, input_size)
  std::size_t output_size = 0;  // scalars from grad_x_init on that come back
  std::size_t total_size = 0;   // scalars in the whole buffer
};

// The layout for `problems`, which must all have one shape and be valid
// (ValidateBackwardProblem).
BackwardBatchLayout PlanBackwardBatch(absl::Span<const BackwardProblem* const> problems);

// Pointers into `buffer` (layout.total_size scalars), `settings` and `results` (batch each).
template <typename S>
BackwardBatchView<S> MakeBackwardBatchView(const BackwardBatchLayout& layout, S* buffer,
                                           const BackwardSettings* settings,
                                           BackwardResult* results);

// Writes the inputs of `problems` into buffer[0, layout.input_size) and their settings into
// settings[0, batch).
template <typename S>
void PackBackwardInputs(absl::Span<const BackwardProblem* const> problems,
                        const BackwardBatchLayout& layout, S* buffer, BackwardSettings* settings);

// Reads the gradients and `results` into gradients[i] (resized as ProblemGradient documents; a
// time-invariant input's gradient summed over t). `outputs` holds the buffer's output range:
// layout.output_size scalars that start at offset layout.grad_x_init.
template <typename S>
void UnpackBackwardOutputs(absl::Span<const BackwardProblem* const> problems,
                           const BackwardBatchLayout& layout, const S* outputs,
                           const BackwardResult* results,
                           absl::Span<ProblemGradient* const> gradients);

extern template BackwardBatchView<double> MakeBackwardBatchView(const BackwardBatchLayout&, double*,
                                                                const BackwardSettings*,
                                                                BackwardResult*);
extern template BackwardBatchView<float> MakeBackwardBatchView(const BackwardBatchLayout&, float*,
                                                               const BackwardSettings*,
                                                               BackwardResult*);
extern template void PackBackwardInputs(absl::Span<const BackwardProblem* const>,
                                        const BackwardBatchLayout&, double*, BackwardSettings*);
extern template void PackBackwardInputs(absl::Span<const BackwardProblem* const>,
                                        const BackwardBatchLayout&, float*, BackwardSettings*);
extern template void UnpackBackwardOutputs(absl::Span<const BackwardProblem* const>,
                                           const BackwardBatchLayout&, const double*,
                                           const BackwardResult*,
                                           absl::Span<ProblemGradient* const>);
extern template void UnpackBackwardOutputs(absl::Span<const BackwardProblem* const>,
                                           const BackwardBatchLayout&, const float*,
                                           const BackwardResult*,
                                           absl::Span<ProblemGradient* const>);

}  // namespace mpc::device_ilqr

#endif  // MPC_SOLVER_CUDA_BACKWARD_BATCH_H_
