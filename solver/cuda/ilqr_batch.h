#ifndef MPC_SOLVER_CUDA_ILQR_BATCH_H_
#define MPC_SOLVER_CUDA_ILQR_BATCH_H_

// Host side of the device solver's batch layout (ilqr_batch_view.h): which shapes have a
// compile-time device solver, where every array lives in the one batch buffer, and the packing of
// Problems into it and of its results into Solutions. Plain C++ (no CUDA), shared by the CUDA
// backend and the host emulation, so the packing is tested without a GPU.

#include <cstddef>
#include <vector>

#include "absl/types/span.h"
#include "solver/cuda/ilqr_batch_view.h"
#include "solver/problem.h"

namespace mpc::device_ilqr {

// The device solver for `shape`, or kNone when the shape has no specialisation (the CUDA backend
// then solves it on the CPU).
DeviceKernel SelectDeviceKernel(const ProblemShape& shape);

// Offsets, in scalars, of every array of one batch in its buffer. The buffer is
// [inputs | outputs: best_x, best_u, K, k | scratch], so inputs go to the device in one copy and
// outputs (with or without the gains) come back in one.
struct IlqrBatchLayout {
  ProblemShape shape;
  int batch = 0;
  int param_dim = 0;
  int cost_slices = 1;
  int linear_slices = 1;
  int transition_slices = 1;
  int offset_slices = 0;
  int bound_slices = 1;
  bool any_gains = false;  // some problem asked for K, k

  std::size_t cost_quadratic = 0, cost_linear = 0, transition = 0, offset = 0, params = 0,
              u_lower = 0, u_upper = 0, x_init = 0, u_init = 0;
  std::size_t best_x = 0, best_u = 0, K = 0, k = 0;
  std::size_t x = 0, u = 0, x_try = 0, u_try = 0, A = 0, B = 0;
  std::size_t input_size = 0;   // scalars in [0, input_size)
  std::size_t output_size = 0;  // scalars from best_x on that come back (gains only if any_gains)
  std::size_t total_size = 0;   // scalars in the whole buffer
};

// The layout for `problems`, which must all have one shape and be valid (ValidateProblem*).
IlqrBatchLayout PlanIlqrBatch(absl::Span<const Problem* const> problems);

// Pointers into `buffer` (layout.total_size scalars), `settings` and `results` (layout.batch each).
template <typename S>
IlqrBatchView<S> MakeIlqrBatchView(const IlqrBatchLayout& layout, S* buffer,
                                   const ProblemSettings* settings, ProblemResult* results);

// Writes the inputs of `problems` into buffer[0, layout.input_size) (symmetrised cost blocks,
// expanded slices, defaults filled in) and their settings into settings[0, batch).
template <typename S>
void PackIlqrInputs(absl::Span<const Problem* const> problems, const IlqrBatchLayout& layout,
                    S* buffer, ProblemSettings* settings);

// Reads the outputs and `results` into solutions[i] (resized as needed). `outputs` holds the
// buffer's output range: layout.output_size scalars that start at offset layout.best_x.
template <typename S>
void UnpackIlqrOutputs(absl::Span<const Problem* const> problems, const IlqrBatchLayout& layout,
                       const S* outputs, const ProblemResult* results,
                       absl::Span<Solution* const> solutions);

// Indices of `problems` grouped by shape, groups in order of first appearance.
std::vector<std::vector<int>> GroupByShape(absl::Span<const Problem* const> problems);

extern template IlqrBatchView<double> MakeIlqrBatchView(const IlqrBatchLayout&, double*,
                                                        const ProblemSettings*, ProblemResult*);
extern template IlqrBatchView<float> MakeIlqrBatchView(const IlqrBatchLayout&, float*,
                                                       const ProblemSettings*, ProblemResult*);
extern template void PackIlqrInputs(absl::Span<const Problem* const>, const IlqrBatchLayout&,
                                    double*, ProblemSettings*);
extern template void PackIlqrInputs(absl::Span<const Problem* const>, const IlqrBatchLayout&,
                                    float*, ProblemSettings*);
extern template void UnpackIlqrOutputs(absl::Span<const Problem* const>, const IlqrBatchLayout&,
                                       const double*, const ProblemResult*,
                                       absl::Span<Solution* const>);
extern template void UnpackIlqrOutputs(absl::Span<const Problem* const>, const IlqrBatchLayout&,
                                       const float*, const ProblemResult*,
                                       absl::Span<Solution* const>);

}  // namespace mpc::device_ilqr

#endif  // MPC_SOLVER_CUDA_ILQR_BATCH_H_
