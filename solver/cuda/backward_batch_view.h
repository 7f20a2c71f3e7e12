#ifndef MPC_SOLVER_CUDA_BACKWARD_BATCH_VIEW_H_
#define MPC_SOLVER_CUDA_BACKWARD_BATCH_VIEW_H_

// The batch layout the per-problem device backward pass (backward_device.h) reads and writes,
// shared by its CUDA kernel and its host emulation. Plain data, like ilqr_batch_view.h, whose
// interleaving it uses: element e of problem b lives at array[e * batch + b].

#include <cstdint>

#include "solver/cuda/ilqr_batch_view.h"

namespace mpc::device_ilqr {

// GradientStatus values, in the same order (solver/gradients.h; checked in backward_batch.cc).
enum DeviceGradientStatus : std::int32_t {
  kDeviceGradientOk = 0,
  kDeviceGradientIllConditioned = 1,
  kDeviceGradientRegularized = 2,
  kDeviceGradientNotFinite = 3,
};

// GradientMode values the device computes (solver/problem.h order; kExact on models is left to the
// CPU, see DeviceSupportsBackward in backward_batch.h).
enum DeviceGradientMode : std::int32_t {
  kDeviceModeDefault = 0,
  kDeviceModeFullChain = 1,
  kDeviceModeExact = 2,
};

// Per-problem scalars of a backward pass, one struct per problem (not interleaved).
struct BackwardSettings {
  double dt;                // model time step in seconds (models only)
  std::int32_t has_bounds;  // 0 | 1
  std::int32_t mode;        // DeviceGradientMode
};

// The diagnostics of ProblemGradient (solver/gradients.h), per problem.
struct BackwardResult {
  double regularization;
  double condition_estimate;
  double stationarity_residual;
  double dynamics_residual;
  std::int32_t status;  // DeviceGradientStatus
  std::int32_t active_controls;
};

// Pointers into one backward batch's buffer. S is the scalar (double, or float on request).
// Shapes are per problem, before interleaving. A gradient array has as many slices as the input
// array it differentiates has in the batch (problem.cost_slices, ...): with one slice the pass sums
// over t itself, with one per step the unpacking sums for the problems whose input has one.
template <typename S>
struct BackwardBatchView {
  // The problems' inputs (cost, dynamics, bounds, x_init and slice counts), packed as for a solve;
  // its settings, outputs and scratch pointers are unused.
  IlqrBatchView<S> problem;
  int offset_gradient_slices = 1;  // linear dynamics: 1 | T-1 (ProblemGradient::offset's rule)
  const BackwardSettings* settings = nullptr;  // [batch], not interleaved

  // The point and the cotangent.
  const S* x = nullptr;      // (T, n): x*
  const S* u = nullptr;      // (T, m): u*
  const S* dl_dx = nullptr;  // (T, n): dL/dx* (zeros when absent)
  const S* dl_du = nullptr;  // (T, m): dL/du* (zeros when absent)

  // Outputs (zeroed by the pass itself).
  S* grad_x_init = nullptr;           // (n)
  S* grad_cost_quadratic = nullptr;   // problem.cost_slices x (n+m, n+m)
  S* grad_cost_linear = nullptr;      // problem.linear_slices x (n+m)
  S* grad_transition = nullptr;       // problem.transition_slices x (n, n+m); linear only
  S* grad_offset = nullptr;           // offset_gradient_slices x (n); linear only
  S* grad_params = nullptr;           // (p); models only
  BackwardResult* results = nullptr;  // [batch], not interleaved

  // Scratch.
  S* A = nullptr;       // (T-1, n, n), row-major: df/dx at the point; models only
  S* B = nullptr;       // (T-1, n, m), row-major: df/du; models only
  S* P = nullptr;       // (T-1, n, p), column-major per step: df/dparams; models only
  S* lambda = nullptr;  // (T, n): costates at the point
  S* free = nullptr;    // (T, m): 1 = free control, 0 = pinned at a bound
  S* K = nullptr;       // (T, m, n): feedback of the pinned LQR
  S* k = nullptr;       // (T, m): its feedforward for the cotangent
  S* dx = nullptr;      // (T, n): the LQR's solution dtau = (dx, du)
  S* du = nullptr;      // (T, m)
  S* mu = nullptr;      // (T, n): its multipliers dlambda
};

}  // namespace mpc::device_ilqr

#endif  // MPC_SOLVER_CUDA_BACKWARD_BATCH_VIEW_H_
