#ifndef MPC_SOLVER_CUDA_ILQR_BATCH_VIEW_H_
#define MPC_SOLVER_CUDA_ILQR_BATCH_VIEW_H_

// The batch layout the per-problem device solver reads and writes (STYLE rule 11), shared by the
// CUDA kernels and their host emulation. Plain data: no absl, no Eigen, no std containers, so nvcc
// translation units can include it.
//
// Every per-problem array is interleaved over the batch: element e of problem b lives at
// array[e * batch + b]. Neighbouring threads (problems) then touch neighbouring addresses, so a
// warp's loads coalesce. Matrices are row-major inside a slice; a time-varying input has one slice
// per step, a time-invariant one a single slice (the batch takes the larger count over its
// problems, repeating a time-invariant problem's slice, which keeps every result independent of the
// batch).

#include <cstdint>

namespace mpc::device_ilqr {

// SolveStatus values, in the same order (solver/problem.h; checked by a static_assert there).
enum DeviceStatus : std::int32_t {
  kDeviceConverged = 0,
  kDeviceMaxIterations = 1,
  kDeviceLinesearchFailed = 2,
  kDeviceNotFinite = 3,
};

// The generic device solver (linear dynamics of any size up to these) keeps its small matrices in
// arrays of this capacity; larger shapes are solved on the CPU.
constexpr int kGenericMaxStateDim = 16;
constexpr int kGenericMaxControlDim = 8;

// The specialisations of the device solver (ProblemSolver<S, Dynamics, NX, NU, kFixedSize>):
// compile-time sizes for pendulum (3, 1), cartpole (5, 1) and linear (8, 4); any other linear
// shape up to (kGenericMaxStateDim, kGenericMaxControlDim) with run-time sizes.
enum class DeviceKernel { kNone, kPendulum, kCartpole, kLinear8x4, kLinearGeneric };

// Per-problem options (SolverOptions) and scalars, one struct per problem (not interleaved: read
// once per solve).
struct ProblemSettings {
  double tolerance;
  double linesearch_decay;
  double best_cost_eps;
  double dt;  // model time step in seconds (models only)
  std::int32_t max_iterations;
  std::int32_t max_linesearch_iterations;
  std::int32_t not_improved_limit;
  std::int32_t has_bounds;     // 0 | 1
  std::int32_t compute_gains;  // 0 | 1
};

// What a solve reports per problem, besides the trajectory.
struct ProblemResult {
  double cost;            // of the returned iterate
  double step_norm;       // full step norm of the returned iterate
  double regularization;  // Levenberg-Marquardt mu at the last iteration
  std::int32_t status;    // DeviceStatus
  std::int32_t iterations;
};

// Pointers into one batch's buffers. S is the solver's scalar (double, or float on request).
// Shapes below are per problem, before interleaving; `batch` is the interleaving stride.
template <typename S>
struct IlqrBatchView {
  int batch = 0;              // problems in the batch (the interleaving stride)
  int state_dim = 0;          // n
  int control_dim = 0;        // m
  int horizon = 0;            // T
  int cost_slices = 1;        // 1 | T
  int linear_slices = 1;      // 1 | T
  int transition_slices = 1;  // linear dynamics: 1 | T-1
  int offset_slices = 0;      // linear dynamics: 0 (no offset) | 1 | T-1
  int bound_slices = 1;       // 1 | T

  // Inputs.
  const S* cost_quadratic = nullptr;          // cost_slices x (n+m, n+m), already symmetrised
  const S* cost_linear = nullptr;             // linear_slices x (n+m)
  const S* transition = nullptr;              // transition_slices x (n, n+m); linear dynamics only
  const S* offset = nullptr;                  // offset_slices x (n); linear dynamics only
  const S* params = nullptr;                  // (p); models only
  const S* u_lower = nullptr;                 // bound_slices x (m)
  const S* u_upper = nullptr;                 // bound_slices x (m)
  const S* x_init = nullptr;                  // (n)
  const S* u_init = nullptr;                  // (T, m): zeros when the problem has no warm start
  const ProblemSettings* settings = nullptr;  // [batch], not interleaved

  // Outputs.
  S* best_x = nullptr;  // (T, n): the returned iterate
  S* best_u = nullptr;  // (T, m)
  S* K = nullptr;       // (T, m, n): feedback gains (the returned ones when compute_gains)
  S* k = nullptr;       // (T, m): feedforward gains
  ProblemResult* results = nullptr;  // [batch], not interleaved

  // Scratch.
  S* x = nullptr;      // (T, n): current iterate
  S* u = nullptr;      // (T, m)
  S* x_try = nullptr;  // (T, n): line-search trial
  S* u_try = nullptr;  // (T, m)
  S* A = nullptr;      // (T-1, n, n): linearised dynamics, models only
  S* B = nullptr;      // (T-1, n, m)
};

}  // namespace mpc::device_ilqr

#endif  // MPC_SOLVER_CUDA_ILQR_BATCH_VIEW_H_
