#ifndef MPC_SOLVER_CPU_IMPLICIT_BACKWARD_H_
#define MPC_SOLVER_CPU_IMPLICIT_BACKWARD_H_

// Implicit differentiation of the MPC solution (DESIGN §4): gradients and Jacobians from the KKT
// conditions at the solution, never by unrolling iterations.
//
// At a solution (x*, u*) with the active set A fixed (|u - bound| <= 1e-8), the solution satisfies
//   G_tau_t  = dcost_t/dtau_t + F_t' lambda_{t+1} - [lambda_t; 0] = 0   (free components of tau_t)
//   G_lam_0  = x_init - x_0 = 0,   G_lam_t+1 = f(tau_t; theta) - x_{t+1} = 0,
// with lambda_t = C_{t,x:} tau_t + c_{t,x} + A_t' lambda_{t+1} (mpc.pytorch's costate, lambda_{T-1}
// without the A term). Its Jacobian J with respect to (tau, lambda) is the symmetric KKT matrix of
// an LQR with Hessian H_t, dynamics F_t = [A_t B_t] and the active controls pinned, so
//   * a vector-Jacobian product solves J [dtau; dlambda] = [r; 0] (the LQR with cost (H, -r),
//     dx_0 = 0, no offset: mpc.pytorch's backward), then dL/dp = -[dtau; dlambda]' dG/dp:
//     dL/dx_init = -dlambda_0, dL/dc_t = -dtau_t, dL/dC_t = -(dtau_t tau_t' + tau_t dtau_t')/2,
//     dL/dF_t = -(dlambda_{t+1} tau_t' + lambda_{t+1} dtau_t'), dL/df_t = -dlambda_{t+1},
//     dL/dtheta = -sum_t (df/dtheta_t' dlambda_{t+1} + M_t' dtau_t) with
//     M_t = sum_i lambda_{t+1,i} d2 f_i / dtau dtheta (M_t = 0 in GradientMode::kDefault);
//   * a Jacobian column d tau*/dp solves J dz = -dG/dp: the same LQR with dx_0 = dG_lam_0/dp,
//     offsets dG_lam/dp and linear term dG_tau/dp.
// H_t = C_t in kDefault/kFullChain (mpc.pytorch: a Gauss-Newton model of the Lagrangian) and
// H_t = C_t + sum_i lambda_{t+1,i} d2 f_i / dtau_t^2 in kExact (the true KKT matrix). The Riccati
// factorisation of that LQR (Cholesky of Quu on the free controls per stage) is computed once per
// problem and reused for every right-hand side. Backward is stateless (any replica answers it), so
// the forward solve's factors are not at hand: the pass refactorises, at the cost of one iLQR
// iteration's Riccati pass.

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "solver/gradients.h"
#include "solver/problem.h"

namespace mpc {

// What ComputeSolutionJacobians should return.
struct JacobianRequest {
  bool x_init = false;  // d tau*/d x_init
  bool params = false;  // d tau*/d params (models only)
  GradientMode mode = GradientMode::kDefault;
};

// Dense forward-mode derivatives of the solution, row-major, tau_t = [x_t; u_t].
struct SolutionJacobians {
  std::vector<double> x_init;  // (T, n+m, n): d tau_t / d x_init; empty unless requested
  std::vector<double> params;  // (T, n+m, p): d tau_t / d params; empty unless requested
  // As ProblemGradient's diagnostics (status, regularisation, residuals).
  ProblemGradient diagnostics;
};

// Backward passes for problems of one shape on the calling thread. The workspace is sized at
// construction; passes allocate nothing once the output arrays have their sizes.
class ShapeBackward {
 public:
  virtual ~ShapeBackward() = default;
  virtual const ProblemShape& shape() const = 0;

  // dL/d(inputs) for `problem` (which must pass ValidateBackwardProblem; problem.problem->shape
  // must equal shape()). Resizes *gradient's arrays as documented on ProblemGradient.
  virtual void Backward(const BackwardProblem& problem, ProblemGradient* gradient) = 0;

  // Dense Jacobians of the solution (x (T, n), u (T, m)) of `problem`, sharing one factorisation
  // across all columns. `request.params` is ignored for linear dynamics.
  virtual void Jacobians(const Problem& problem, absl::Span<const double> x,
                         absl::Span<const double> u, const JacobianRequest& request,
                         SolutionJacobians* jacobians) = 0;
};

// A backward workspace specialised for common sizes (pendulum, cartpole, n=8/m=4 linear), with a
// dynamic-size fallback.
std::unique_ptr<ShapeBackward> MakeShapeBackward(const ProblemShape& shape);

// Always the dynamic-size implementation (tests compare it with the specialised ones).
std::unique_ptr<ShapeBackward> MakeDynamicSizeShapeBackward(const ProblemShape& shape);

// Convenience: Jacobians of one solution on a fresh workspace. x (T, n) and u (T, m) must have the
// problem's sizes and be finite (InvalidArgument otherwise); request.params on linear dynamics is
// InvalidArgument (they have no parameters).
absl::Status ComputeSolutionJacobians(const Problem& problem, absl::Span<const double> x,
                                      absl::Span<const double> u, const JacobianRequest& request,
                                      SolutionJacobians* jacobians);

}  // namespace mpc

#endif  // MPC_SOLVER_CPU_IMPLICIT_BACKWARD_H_
