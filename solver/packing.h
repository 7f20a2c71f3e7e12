#ifndef MPC_SOLVER_PACKING_H_
#define MPC_SOLVER_PACKING_H_

// Host side of the core's batch layout (solver/core/batch_view.h): where every array lives in the
// one batch buffer, and the packing of Problems (and backward problems) into it and of its results
// into Solutions (and gradients). One packing for both layouts: the CUDA backend packs a batch
// interleaved, a CPU worker packs one problem (a batch of one, contiguous). Plain C++ (no CUDA).

#include <cstddef>
#include <vector>

#include "absl/types/span.h"
#include "solver/core/batch_view.h"
#include "solver/gradients.h"
#include "solver/problem.h"

namespace mpc::core {

// Offsets, in scalars, of every array of one batch in its buffer. The buffer is
// [inputs | outputs: best_x, best_u, K, k | scratch], so inputs go to the device in one copy and
// outputs (with or without the gains) come back in one.
struct IlqrBatchLayout {
  ProblemShape shape;
  int batch = 0;
  int param_dim = 0;
  int cost_param_dim = 0;           // a cost graph's parameters (0 without one)
  int terminal_cost_param_dim = 0;  // a terminal cost graph's parameters (0 without one)
  int constraint_param_dim = 0;     // a constraint graph's parameters (0 without one)
  int cost_slices = 1;
  int linear_slices = 1;
  int transition_slices = 1;
  int offset_slices = 0;
  int bound_slices = 1;
  int constraint_rows = 0;  // the most stage constraint rows of a problem (stage_constraints.h)
  int constraint_graph_rows = 0;  // the last constraint_rows: a constraint graph's (a batch of one)
  int constraint_slices = 0;      // 0 | 1 | T
  bool any_gains = false;         // some problem asked for K, k

  std::size_t cost_quadratic = 0, cost_linear = 0, transition = 0, offset = 0, params = 0,
              cost_params = 0, terminal_cost_params = 0, constraint_params = 0, u_lower = 0,
              u_upper = 0, constraint_G = 0, constraint_h = 0, x_init = 0, u_init = 0;
  std::size_t best_x = 0, best_u = 0, K = 0, k = 0;
  std::size_t x = 0, u = 0, x_try = 0, u_try = 0, A = 0, B = 0, multipliers = 0;
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

// Whether the device computes `problem`: its shape runs on the GPU (core::RunsOnDevice).
bool DeviceSupportsBackward(const BackwardProblem& problem);

// Offsets, in scalars, of every array of one backward batch in its buffer:
// [inputs: the problems' (as a solve packs them), x, u, dl_dx, dl_du | outputs: the gradients |
// scratch], so the inputs go to the device in one copy and the gradients come back in one.
struct BackwardBatchLayout {
  IlqrBatchLayout problem;  // only its input range [0, problem.input_size) is used
  int offset_gradient_slices = 1;

  std::size_t x = 0, u = 0, dl_dx = 0, dl_du = 0;
  std::size_t grad_x_init = 0, grad_cost_quadratic = 0, grad_cost_linear = 0, grad_transition = 0,
              grad_offset = 0, grad_params = 0, grad_cost_params = 0, grad_terminal_cost_params = 0,
              grad_constraint_params = 0, grad_constraint_G = 0, grad_constraint_h = 0;
  JacobianSettings jacobians;  // a Jacobian pass's outputs (none in a backward pass)
  std::size_t jac_x_init = 0, jac_params = 0;
  std::size_t constraint_curvature = 0;
  std::size_t A = 0, B = 0, P = 0, curvature = 0, mixed = 0, lambda = 0, free = 0, K = 0, L = 0,
              Qux = 0, V = 0, k = 0, dx = 0, du = 0, mu = 0;
  // Stage constraints (BackwardBatchView's): at most T * min(k, m) rows are active, the most that
  // can be independent on the T * m directions the dynamics leave free (more: kNotFinite).
  int max_active_rows = 0;
  std::size_t nu = 0, dnu = 0, row_weight = 0, active_rows = 0, row_rhs = 0, schur = 0,
              schur_factor = 0;
  std::size_t input_size = 0;   // scalars in [0, input_size)
  std::size_t output_size = 0;  // scalars from grad_x_init on that come back
  std::size_t total_size = 0;   // scalars in the whole buffer
};

// The layout for `problems`, which must all have one shape and be valid
// (ValidateBackwardProblem); with `jacobians`, the outputs of a Jacobian pass
// (ProblemBackward::RunJacobians) follow the gradients'.
BackwardBatchLayout PlanBackwardBatch(absl::Span<const BackwardProblem* const> problems,
                                      const JacobianSettings& jacobians = {});

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

// Problem b's Jacobians from a Jacobian pass's outputs (as UnpackBackwardOutputs reads them):
// x_init (T, n+m, n) and params (T, n+m, p), each sized when layout.jacobians asks for it, else
// emptied; the diagnostics into `diagnostics`.
template <typename S>
void UnpackJacobianOutputs(const BackwardBatchLayout& layout, const S* outputs,
                           const BackwardResult* results, std::size_t b,
                           std::vector<double>* x_init, std::vector<double>* params,
                           ProblemGradient* diagnostics);

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

}  // namespace mpc::core

#endif  // MPC_SOLVER_PACKING_H_
