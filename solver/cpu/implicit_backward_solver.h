#ifndef MPC_SOLVER_CPU_IMPLICIT_BACKWARD_SOLVER_H_
#define MPC_SOLVER_CPU_IMPLICIT_BACKWARD_SOLVER_H_

// The template behind MakeShapeBackward (the math is described in implicit_backward.h). Internal to
// solver/cpu: instantiated in implicit_backward_models.cc and implicit_backward_linear.cc (split so
// the two cores of a build machine share the work).

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "Eigen/Core"
#include "solver/core/regularization.h"
#include "solver/cpu/cholesky_substitution.h"
#include "solver/cpu/dynamics_adapters.h"
#include "solver/cpu/implicit_backward.h"
#include "solver/dual.h"
#include "solver/models/model_derivatives.h"
#include "solver/models/model_registry.h"

namespace mpc {
namespace backward_internal {

using cpu_internal::kDyn;
using cpu_internal::LinearDynamics;
using cpu_internal::ModelDynamics;
using cpu_internal::Series;

// Above this estimated condition number of a stage's Quu (free controls) the result is flagged.
constexpr double kIllConditioned = 1e12;

// x_next = f(x, u; p) with A = df/dx, B = df/du and P = df/dp from one model evaluation with
// n+m+p tangents. x: (n); u: (m); p: (kParamDim); A: (n, n), B: (n, m), P: (n, p), Eigen views.
template <class Model, class MA, class MB, class MP>
void StepFirstDerivatives(const double* x, const double* u, const double* p, double dt,
                          double* x_next, MA& A, MB& B, MP& P) {
  constexpr int n = Model::kStateDim;
  constexpr int m = Model::kControlDim;
  constexpr int np = Model::kParamDim;
  using D = Dual<double, n + m + np>;
  D xd[n], ud[m], pd[np], out[n];
  for (int i = 0; i < n; ++i) xd[i] = D::Variable(x[i], i);
  for (int j = 0; j < m; ++j) ud[j] = D::Variable(u[j], n + j);
  for (int k = 0; k < np; ++k) pd[k] = D::Variable(p[k], n + m + k);
  Model::Step(xd, ud, pd, dt, out);
  for (int i = 0; i < n; ++i) {
    x_next[i] = out[i].v;
    for (int j = 0; j < n; ++j) A(i, j) = out[i].d[j];
    for (int j = 0; j < m; ++j) B(i, j) = out[i].d[n + j];
    for (int k = 0; k < np; ++k) P(i, k) = out[i].d[n + m + k];
  }
}

// Second derivatives of phi(tau, p) = lambda' f(x, u; p), tau = [x; u], by forward-over-forward AD
// (nested duals over the model's templated Step). Each helper seeds only the tangents its block
// needs, because the cost of a nested evaluation grows with the product of the two tangent counts.

// Htt = d2 phi / d tau^2: (n+m, n+m), an Eigen view. Outer and inner tangents both run over tau.
template <class Model, class MH>
void StepTauHessian(const double* x, const double* u, const double* p, double dt,
                    const double* lambda, MH& Htt) {
  constexpr int n = Model::kStateDim;
  constexpr int m = Model::kControlDim;
  constexpr int nt = n + m;
  using Inner = Dual<double, nt>;
  using Outer = Dual<Inner, nt>;
  Outer xd[n], ud[m], out[n];
  for (int i = 0; i < n; ++i) xd[i] = Outer::Variable(Inner::Variable(x[i], i), i);
  for (int j = 0; j < m; ++j) ud[j] = Outer::Variable(Inner::Variable(u[j], n + j), n + j);
  // The parameters carry no tangent: a plain double Step parameter would not mix with nested
  // duals in the models' expressions, so they are constants of the nested type.
  Outer pd[Model::kParamDim];
  for (int k = 0; k < Model::kParamDim; ++k) pd[k] = Outer(Inner(p[k]));
  Model::Step(xd, ud, pd, dt, out);
  for (int a = 0; a < nt; ++a) {
    for (int b = 0; b < nt; ++b) {
      double s = 0.0;
      for (int i = 0; i < n; ++i) s += lambda[i] * out[i].d[a].d[b];
      Htt(a, b) = s;
    }
  }
}

// Htp = d2 phi / d tau d p: (n+m, p), an Eigen view. Outer tangents over p, inner over tau.
template <class Model, class MM>
void StepMixedSecondDerivatives(const double* x, const double* u, const double* p, double dt,
                                const double* lambda, MM& Htp) {
  constexpr int n = Model::kStateDim;
  constexpr int m = Model::kControlDim;
  constexpr int np = Model::kParamDim;
  constexpr int nt = n + m;
  using Inner = Dual<double, nt>;
  using Outer = Dual<Inner, np>;
  Outer xd[n], ud[m], pd[np], out[n];
  for (int i = 0; i < n; ++i) xd[i] = Outer(Inner::Variable(x[i], i));
  for (int j = 0; j < m; ++j) ud[j] = Outer(Inner::Variable(u[j], n + j));
  for (int k = 0; k < np; ++k) pd[k] = Outer::Variable(Inner(p[k]), k);
  Model::Step(xd, ud, pd, dt, out);
  for (int a = 0; a < nt; ++a) {
    for (int k = 0; k < np; ++k) {
      double s = 0.0;
      for (int i = 0; i < n; ++i) s += lambda[i] * out[i].d[k].d[a];
      Htp(a, k) = s;
    }
  }
}

// Implicit backward pass and forward-mode Jacobians for one shape. Every buffer is sized in the
// constructor; Backward and Jacobians only read the inputs and write these buffers and the outputs.
template <class Dynamics, int NX, int NU>
class ImplicitBackwardSolver final : public ShapeBackward {
 public:
  static constexpr int NT = cpu_internal::TauDim(NX, NU);
  using VecX = Eigen::Matrix<double, NX, 1>;
  using VecU = Eigen::Matrix<double, NU, 1>;
  using MatXX = Eigen::Matrix<double, NX, NX>;
  using MatXU = Eigen::Matrix<double, NX, NU>;
  using MatUX = Eigen::Matrix<double, NU, NX>;
  using MatUU = Eigen::Matrix<double, NU, NU>;
  using MatTT = Eigen::Matrix<double, NT, NT>;
  using MatXP = Eigen::Matrix<double, NX, kDyn>;
  using MatTP = Eigen::Matrix<double, NT, kDyn>;
  using TrajX = Eigen::Matrix<double, NX, kDyn>;  // column t = x_t
  using TrajU = Eigen::Matrix<double, NU, kDyn>;  // column t = u_t

  explicit ImplicitBackwardSolver(const ProblemShape& shape)
      : shape_(shape),
        n_(shape.state_dim),
        m_(shape.control_dim),
        T_(shape.horizon),
        np_(Dynamics::kParamDim) {
    const int n = n_, m = m_, T = T_, nt = n + m, np = np_;
    const int steps = std::max(T - 1, 1);
    A_.assign(steps, MatXX::Zero(n, n));
    B_.assign(steps, MatXU::Zero(n, m));
    f_.assign(steps, VecX::Zero(n));
    P_.assign(steps, MatXP::Zero(n, np));
    Mx_.assign(steps, MatXP::Zero(n, np));
    Mu_.assign(steps, Eigen::Matrix<double, NU, kDyn>::Zero(m, np));
    Hxx_.assign(T, MatXX::Zero(n, n));
    Hux_.assign(T, MatUX::Zero(m, n));
    Huu_.assign(T, MatUU::Zero(m, m));
    cx_.assign(T, VecX::Zero(n));
    cu_.assign(T, VecU::Zero(m));
    V_.assign(T, MatXX::Zero(n, n));
    K_.assign(T, MatUX::Zero(m, n));
    Qux_.assign(T, MatUX::Zero(m, n));
    L_.assign(T, MatUU::Zero(m, m));
    for (TrajX* traj : {&x_, &lambda_, &gx_, &dx_, &mu_}) traj->setZero(n, T);
    for (TrajU* traj : {&u_, &free_, &gu_, &du_, &k_}) traj->setZero(m, T);
    h_.setZero(n, steps);
    d0_.setZero(n);
    VA_.setZero(n, n);
    VB_.setZero(n, m);
    Qxx_.setZero(n, n);
    Quu_.setZero(m, m);
    w_.setZero(n);
    v_.setZero(n);
    qx_.setZero(n);
    qu_.setZero(m);
    tmp_u_.setZero(m);
    x_next_.setZero(n);
    Htt_.setZero(nt, nt);
    Htp_.setZero(nt, np);
    params_.assign(Dynamics::kParamDim, 0.0);
  }

  const ProblemShape& shape() const override { return shape_; }

  void Backward(const BackwardProblem& bp, ProblemGradient* gradient) override {
    const Problem& problem = *bp.problem;
    ProblemGradient& out = *gradient;
    ResizeGradient(problem, &out);
    const bool loaded =
        Load(problem, bp.x.data(), bp.u.data(), bp.mode, /*with_mixed_block=*/false);
    WriteDiagnostics(&out);
    if (!loaded || !Factorize(&out)) {
      ZeroGradient(&out);
      return;
    }
    // The cotangent is the LQR's negated linear term (mpc.pytorch: cost (C, -r)).
    const int n = n_, m = m_, T = T_;
    if (bp.dl_dx.empty()) {
      gx_.setZero();
    } else {
      gx_ = -Eigen::Map<const TrajX>(bp.dl_dx.data(), n, T);
    }
    if (bp.dl_du.empty()) {
      gu_.setZero();
    } else {
      gu_ = -Eigen::Map<const TrajU>(bp.dl_du.data(), m, T);
    }
    d0_.setZero();
    SolveLqr(/*with_offsets=*/false);
    if (!dx_.allFinite() || !du_.allFinite() || !mu_.allFinite()) {
      out.status = GradientStatus::kNotFinite;
      ZeroGradient(&out);
      return;
    }
    AssembleGradient(bp.mode, &out);
  }

  void Jacobians(const Problem& problem, absl::Span<const double> x, absl::Span<const double> u,
                 const JacobianRequest& request, SolutionJacobians* jacobians) override {
    const int n = n_, m = m_, T = T_, nt = n + m, np = np_;
    SolutionJacobians& out = *jacobians;
    const bool want_params = request.params && !Dynamics::kIsLinear;
    out.x_init.assign(request.x_init ? static_cast<std::size_t>(T) * nt * n : 0, 0.0);
    out.params.assign(want_params ? static_cast<std::size_t>(T) * nt * np : 0, 0.0);
    const bool loaded = Load(problem, x.data(), u.data(), request.mode,
                             want_params && request.mode != GradientMode::kDefault);
    WriteDiagnostics(&out.diagnostics);
    if (!loaded || !Factorize(&out.diagnostics)) return;
    // Column j of d tau/d x_init: the LQR from dx_0 = e_j with no linear term and no offsets.
    if (request.x_init) {
      gx_.setZero();
      gu_.setZero();
      for (int j = 0; j < n; ++j) {
        d0_.setZero();
        d0_[j] = 1.0;
        SolveLqr(/*with_offsets=*/false);
        WriteColumn(j, n, &out.x_init);
      }
    }
    // Column k of d tau/d params: offsets df/dp_k and, beyond kDefault, the linear term
    // M_t e_k = d(F_t' lambda_{t+1})/dp_k of the stationarity conditions.
    if (want_params) {
      d0_.setZero();
      for (int k = 0; k < np; ++k) {
        gx_.setZero();
        gu_.setZero();
        for (int t = 0; t + 1 < T; ++t) {
          h_.col(t) = P_[t].col(k);
          if (request.mode != GradientMode::kDefault) {
            gx_.col(t) = Mx_[t].col(k);
            gu_.col(t) = Mu_[t].col(k);
          }
        }
        SolveLqr(/*with_offsets=*/true);
        WriteColumn(k, np, &out.params);
      }
    }
    const bool finite = std::all_of(out.x_init.begin(), out.x_init.end(),
                                    [](double v) { return std::isfinite(v); }) &&
                        std::all_of(out.params.begin(), out.params.end(),
                                    [](double v) { return std::isfinite(v); });
    if (!finite) {
      out.diagnostics.status = GradientStatus::kNotFinite;
      std::fill(out.x_init.begin(), out.x_init.end(), 0.0);
      std::fill(out.params.begin(), out.params.end(), 0.0);
    }
  }

 private:
  // Sizes every output array after the input it differentiates (see ProblemGradient).
  void ResizeGradient(const Problem& problem, ProblemGradient* out) const {
    out->x_init.resize(n_);
    out->cost_quadratic.resize(problem.cost_quadratic.size());
    out->cost_linear.resize(problem.cost_linear.size());
    if constexpr (Dynamics::kIsLinear) {
      out->transition.resize(problem.transition.size());
      const bool invariant = problem.transition.size() == static_cast<std::size_t>(n_ * (n_ + m_));
      const std::size_t offset_size = !problem.offset.empty()
                                          ? problem.offset.size()
                                          : static_cast<std::size_t>(invariant ? 1 : T_ - 1) * n_;
      out->offset.resize(offset_size);
      out->params.clear();
    } else {
      out->transition.clear();
      out->offset.clear();
      out->params.resize(np_);
    }
    out->status = GradientStatus::kOk;
    out->regularization = 0.0;
    out->condition_estimate = 0.0;
  }

  static void ZeroGradient(ProblemGradient* out) {
    for (std::vector<double>* v : {&out->x_init, &out->cost_quadratic, &out->cost_linear,
                                   &out->transition, &out->offset, &out->params}) {
      std::fill(v->begin(), v->end(), 0.0);
    }
  }

  void WriteDiagnostics(ProblemGradient* out) const {
    out->status = load_status_;
    out->stationarity_residual = stationarity_residual_;
    out->dynamics_residual = dynamics_residual_;
    out->active_controls = active_controls_;
    out->regularization = 0.0;
    out->condition_estimate = 0.0;
  }

  // Reads the problem and the point (x (T, n), u (T, m), row-major) into the workspace: the
  // symmetric cost blocks, the dynamics linearised at the point (and df/dp), the active set, the
  // costates lambda and, beyond kDefault, the second-order terms. Returns false (load_status_ =
  // kNotFinite) when a derivative at the point is not finite.
  bool Load(const Problem& problem, const double* x, const double* u, GradientMode mode,
            bool with_mixed_block) {
    const int n = n_, m = m_, T = T_;
    load_status_ = GradientStatus::kOk;
    stationarity_residual_ = 0.0;
    dynamics_residual_ = 0.0;
    active_controls_ = 0;
    reg_ = 0.0;
    // The symmetric part of C, as the forward solver uses it.
    cpu_internal::LoadSymmetricCost(problem, n, m, T, &Hxx_, &Hux_, &Huu_, &cx_, &cu_);
    x_ = Eigen::Map<const TrajX>(x, n, T);
    u_ = Eigen::Map<const TrajU>(u, m, T);
    dynamics_residual_ = (x_.col(0) - Eigen::Map<const VecX>(problem.x_init.data(), n))
                             .template lpNorm<Eigen::Infinity>();

    // Linearisation at the point, and how well x follows the dynamics.
    if constexpr (Dynamics::kIsLinear) {
      cpu_internal::LoadLinearDynamics(problem, n, m, T, &A_, &B_, &f_);
      for (int t = 0; t + 1 < T; ++t) {
        x_next_.noalias() = A_[t] * x_.col(t);
        x_next_.noalias() += B_[t] * u_.col(t);
        x_next_ += f_[t];
        dynamics_residual_ = std::max(dynamics_residual_,
                                      (x_next_ - x_.col(t + 1)).template lpNorm<Eigen::Infinity>());
      }
    } else {
      using Model = typename Dynamics::ModelType;
      dt_ = cpu_internal::LoadModelParams<Model>(problem, &params_);
      for (int t = 0; t + 1 < T; ++t) {
        StepFirstDerivatives<Model>(x_.col(t).data(), u_.col(t).data(), params_.data(), dt_,
                                    x_next_.data(), A_[t], B_[t], P_[t]);
        dynamics_residual_ = std::max(dynamics_residual_,
                                      (x_next_ - x_.col(t + 1)).template lpNorm<Eigen::Infinity>());
      }
    }

    // Active set: mpc.pytorch's rule, either bound within 1e-8.
    const bool bounded = !problem.u_lower.empty();
    const bool lower_varying = static_cast<int>(problem.u_lower.size()) == T * m;
    const bool upper_varying = static_cast<int>(problem.u_upper.size()) == T * m;
    free_.setOnes();
    if (bounded) {
      for (int t = 0; t < T; ++t) {
        const double* lo = problem.u_lower.data() + (lower_varying ? t * m : 0);
        const double* hi = problem.u_upper.data() + (upper_varying ? t * m : 0);
        for (int j = 0; j < m; ++j) {
          const double v = u_(j, t);
          if (std::abs(v - lo[j]) <= kActiveSetTolerance ||
              std::abs(v - hi[j]) <= kActiveSetTolerance) {
            free_(j, t) = 0.0;
            ++active_controls_;
          }
        }
      }
    }

    // Costates lambda_t = C_{t,x:} tau_t + c_{t,x} + A_t' lambda_{t+1}, and the stationarity of the
    // free controls, dcost/du_t + B_t' lambda_{t+1}, which is zero at an optimum.
    for (int t = T - 1; t >= 0; --t) {
      auto lambda = lambda_.col(t);
      lambda.noalias() = Hxx_[t] * x_.col(t);
      lambda.noalias() += Hux_[t].transpose() * u_.col(t);
      lambda += cx_[t];
      tmp_u_.noalias() = Hux_[t] * x_.col(t);
      tmp_u_.noalias() += Huu_[t] * u_.col(t);
      tmp_u_ += cu_[t];
      if (t + 1 < T) {
        lambda.noalias() += A_[t].transpose() * lambda_.col(t + 1);
        tmp_u_.noalias() += B_[t].transpose() * lambda_.col(t + 1);
      }
      for (int j = 0; j < m; ++j) {
        if (free_(j, t) != 0.0) {
          stationarity_residual_ = std::max(stationarity_residual_, std::abs(tmp_u_[j]));
        }
      }
    }

    // Second-order terms of the dynamics, weighted by lambda_{t+1}: the curvature in exact mode,
    // and the whole mixed block M_t when Jacobians in params need it (a vector-Jacobian product
    // applies M_t' to dtau after the solve instead, see AssembleGradient).
    if constexpr (!Dynamics::kIsLinear) {
      using Model = typename Dynamics::ModelType;
      for (int t = 0; t + 1 < T; ++t) {
        const double* xt = x_.col(t).data();
        const double* ut = u_.col(t).data();
        const double* lambda = lambda_.col(t + 1).data();
        if (mode == GradientMode::kExact) {
          StepTauHessian<Model>(xt, ut, params_.data(), dt_, lambda, Htt_);
          Hxx_[t] += Htt_.topLeftCorner(n, n);
          Hux_[t] += Htt_.bottomLeftCorner(m, n);
          Huu_[t] += Htt_.bottomRightCorner(m, m);
        }
        if (with_mixed_block) {
          StepMixedSecondDerivatives<Model>(xt, ut, params_.data(), dt_, lambda, Htp_);
          Mx_[t] = Htp_.topRows(n);
          Mu_[t] = Htp_.bottomRows(m);
        }
      }
    }

    bool finite = lambda_.allFinite();
    for (int t = 0; t < T && finite; ++t) {
      finite = Hxx_[t].allFinite() && Hux_[t].allFinite() && Huu_[t].allFinite();
      if (t + 1 < T) {
        finite = finite && A_[t].allFinite() && B_[t].allFinite() && P_[t].allFinite();
        // M_t is stale unless computed here (and then only read).
        if (with_mixed_block) {
          finite = finite && Mx_[t].allFinite() && Mu_[t].allFinite();
        }
      }
    }
    if (!finite || !std::isfinite(stationarity_residual_) || !std::isfinite(dynamics_residual_)) {
      load_status_ = GradientStatus::kNotFinite;
      return false;
    }
    return true;
  }

  // Riccati factorisation of the pinned LQR, retried with growing mu I on the free controls' Quu
  // until every stage is positive definite. Writes status, regularisation and conditioning.
  bool Factorize(ProblemGradient* out) {
    reg_ = 0.0;
    while (!FactorizeOnce()) {
      reg_ = IncreasedRegularization(reg_);
      if (reg_ > kMaxRegularization) {
        out->status = GradientStatus::kNotFinite;
        out->regularization = reg_;
        return false;
      }
    }
    out->regularization = reg_;
    out->condition_estimate = condition_;
    if (reg_ > 0.0) {
      out->status = GradientStatus::kRegularized;
    } else if (!(condition_ <= kIllConditioned)) {
      out->status = GradientStatus::kIllConditioned;
    }
    return true;
  }

  // One Riccati pass: V_t, K_t (rows of pinned controls zero), the Cholesky factor L_t of Quu with
  // pinned rows and columns replaced by the identity, and Qux_t with pinned rows zeroed.
  bool FactorizeOnce() {
    const int m = m_, T = T_;
    condition_ = 0.0;
    for (int t = T - 1; t >= 0; --t) {
      Qxx_ = Hxx_[t];
      MatUX& Qux = Qux_[t];
      Qux = Hux_[t];
      Quu_ = Huu_[t];
      if (t + 1 < T) {
        VA_.noalias() = V_[t + 1] * A_[t];
        VB_.noalias() = V_[t + 1] * B_[t];
        Qxx_.noalias() += A_[t].transpose() * VA_;
        Qux.noalias() += B_[t].transpose() * VA_;
        Quu_.noalias() += B_[t].transpose() * VB_;
      }
      for (int i = 0; i < m; ++i) {
        if (free_(i, t) == 0.0) {
          Quu_.row(i).setZero();
          Quu_.col(i).setZero();
          Quu_(i, i) = 1.0;
          Qux.row(i).setZero();
        } else {
          Quu_(i, i) += reg_;
        }
      }
      if (!Cholesky(Quu_, &L_[t])) return false;
      double lo = std::numeric_limits<double>::infinity(), hi = 0.0;
      for (int i = 0; i < m; ++i) {
        if (free_(i, t) == 0.0) continue;
        lo = std::min(lo, L_[t](i, i));
        hi = std::max(hi, L_[t](i, i));
      }
      if (hi > 0.0) condition_ = std::max(condition_, (hi / lo) * (hi / lo));
      K_[t] = -Qux;
      SolveInPlace(L_[t], K_[t]);
      MatXX& V = V_[t];
      V = Qxx_;
      V.noalias() += Qux.transpose() * K_[t];
      VA_ = V.transpose();  // free scratch here
      V += VA_;
      V *= 0.5;
      if (!V.allFinite() || !K_[t].allFinite()) return false;
    }
    return true;
  }

  // L L' = Q by the plain algorithm (m is small; Eigen's LLT would do, but a failed pivot must be
  // seen, not clamped). Returns false when Q is not (numerically) positive definite.
  bool Cholesky(const MatUU& Q, MatUU* L) const {
    const int m = m_;
    L->setZero();
    for (int j = 0; j < m; ++j) {
      double d = Q(j, j);
      for (int k = 0; k < j; ++k) d -= (*L)(j, k) * (*L)(j, k);
      if (!(d > 0.0)) return false;
      const double ljj = std::sqrt(d);
      (*L)(j, j) = ljj;
      for (int i = j + 1; i < m; ++i) {
        double s = Q(i, j);
        for (int k = 0; k < j; ++k) s -= (*L)(i, k) * (*L)(j, k);
        (*L)(i, j) = s / ljj;
      }
    }
    return true;
  }

  // rhs <- (L L')^-1 rhs for a stage's control-space factor L.
  template <class Rhs>
  void SolveInPlace(const MatUU& L, Rhs& rhs) const {
    cpu_internal::CholeskySolveInPlace(L, m_, rhs);
  }

  // Solves min sum_t 0.5 dtau_t' H_t dtau_t + g_t' dtau_t s.t. dx_0 = d0_, dx_{t+1} = F_t dtau_t +
  // h_t (h_ used only if with_offsets), pinned controls 0, with the stored factorisation:
  // g = (gx_, gu_) in, dx_, du_ and the multipliers mu_ (mu_t = Hxx dx + Hxu du + gx + A' mu_{t+1},
  // the LQR's costate) out.
  void SolveLqr(bool with_offsets) {
    const int m = m_, T = T_;
    // Backward: feedforward k_t and the value function's linear term v_t.
    for (int t = T - 1; t >= 0; --t) {
      qx_ = gx_.col(t);
      qu_ = gu_.col(t);
      if (t + 1 < T) {
        w_ = v_;
        if (with_offsets) w_.noalias() += V_[t + 1] * h_.col(t);
        qx_.noalias() += A_[t].transpose() * w_;
        qu_.noalias() += B_[t].transpose() * w_;
      }
      for (int i = 0; i < m; ++i) {
        if (free_(i, t) == 0.0) qu_[i] = 0.0;
      }
      tmp_u_ = -qu_;
      SolveInPlace(L_[t], tmp_u_);
      k_.col(t) = tmp_u_;
      v_ = qx_;
      v_.noalias() += Qux_[t].transpose() * tmp_u_;
    }
    // Forward: the closed loop from d0.
    dx_.col(0) = d0_;
    for (int t = 0; t < T; ++t) {
      auto du = du_.col(t);
      du = k_.col(t);
      du.noalias() += K_[t] * dx_.col(t);
      if (t + 1 < T) {
        auto next = dx_.col(t + 1);
        next.noalias() = A_[t] * dx_.col(t);
        next.noalias() += B_[t] * du;
        if (with_offsets) next += h_.col(t);
      }
    }
    // Multipliers of the LQR (mpc.pytorch's dlambda).
    for (int t = T - 1; t >= 0; --t) {
      auto mu = mu_.col(t);
      mu = gx_.col(t);
      mu.noalias() += Hxx_[t] * dx_.col(t);
      mu.noalias() += Hux_[t].transpose() * du_.col(t);
      if (t + 1 < T) mu.noalias() += A_[t].transpose() * mu_.col(t + 1);
    }
  }

  // out[(t * (n+m) + i) * cols + col] = dtau_t[i].
  void WriteColumn(int col, int cols, std::vector<double>* out) const {
    const int n = n_, m = m_, nt = n + m;
    for (int t = 0; t < T_; ++t) {
      double* row = out->data() + static_cast<std::size_t>(t) * nt * cols + col;
      for (int i = 0; i < n; ++i) row[i * cols] = dx_(i, t);
      for (int j = 0; j < m; ++j) row[(n + j) * cols] = du_(j, t);
    }
  }

  // The gradient formulas of implicit_backward.h from dtau = (dx_, du_), dlambda = mu_ and the
  // point; time-invariant inputs get the sum over t.
  void AssembleGradient(GradientMode mode, ProblemGradient* out) {
    const int n = n_, m = m_, T = T_, nt = n + m;
    for (int i = 0; i < n; ++i) out->x_init[i] = -mu_(i, 0);

    const bool cost_varying = static_cast<int>(out->cost_quadratic.size()) == T * nt * nt;
    const bool linear_varying = static_cast<int>(out->cost_linear.size()) == T * nt;
    std::fill(out->cost_quadratic.begin(), out->cost_quadratic.end(), 0.0);
    std::fill(out->cost_linear.begin(), out->cost_linear.end(), 0.0);
    for (int t = 0; t < T; ++t) {
      double* dC = out->cost_quadratic.data() + (cost_varying ? t * nt * nt : 0);
      double* dc = out->cost_linear.data() + (linear_varying ? t * nt : 0);
      for (int i = 0; i < nt; ++i) {
        const double tau_i = i < n ? x_(i, t) : u_(i - n, t);
        const double dtau_i = i < n ? dx_(i, t) : du_(i - n, t);
        dc[i] -= dtau_i;
        for (int j = 0; j < nt; ++j) {
          const double tau_j = j < n ? x_(j, t) : u_(j - n, t);
          const double dtau_j = j < n ? dx_(j, t) : du_(j - n, t);
          dC[i * nt + j] -= 0.5 * (dtau_i * tau_j + tau_i * dtau_j);
        }
      }
    }

    if constexpr (Dynamics::kIsLinear) {
      const bool transition_varying = static_cast<int>(out->transition.size()) == (T - 1) * n * nt;
      const bool offset_varying = static_cast<int>(out->offset.size()) == (T - 1) * n;
      std::fill(out->transition.begin(), out->transition.end(), 0.0);
      std::fill(out->offset.begin(), out->offset.end(), 0.0);
      for (int t = 0; t + 1 < T; ++t) {
        double* dF = out->transition.data() + (transition_varying ? t * n * nt : 0);
        double* df = out->offset.data() + (offset_varying ? t * n : 0);
        for (int i = 0; i < n; ++i) {
          const double dlam = mu_(i, t + 1);
          const double lam = lambda_(i, t + 1);
          df[i] -= dlam;
          for (int j = 0; j < nt; ++j) {
            const double tau_j = j < n ? x_(j, t) : u_(j - n, t);
            const double dtau_j = j < n ? dx_(j, t) : du_(j - n, t);
            dF[i * nt + j] -= dlam * tau_j + lam * dtau_j;
          }
        }
      }
    } else {
      // dL/dp = -sum_t (df/dp' dlambda_{t+1} + M_t' dtau_t); M_t = 0 in mpc.pytorch's definition.
      using Model = typename Dynamics::ModelType;
      std::fill(out->params.begin(), out->params.end(), 0.0);
      double mixed[Model::kParamDim];
      for (int t = 0; t + 1 < T; ++t) {
        if (mode != GradientMode::kDefault) {
          StepMixedDirectional<Model>(x_.col(t).data(), u_.col(t).data(), params_.data(), dt_,
                                      lambda_.col(t + 1).data(), dx_.col(t).data(),
                                      du_.col(t).data(), mixed);
        }
        for (int k = 0; k < np_; ++k) {
          double s = P_[t].col(k).dot(mu_.col(t + 1));
          if (mode != GradientMode::kDefault) s += mixed[k];
          out->params[k] -= s;
        }
      }
    }
  }

  const ProblemShape shape_;
  const int n_, m_, T_, np_;

  // The problem linearised at the point.
  Series<MatXX> A_;                             // (T-1) x (n, n)
  Series<MatXU> B_;                             // (T-1) x (n, m)
  Series<VecX> f_;                              // (T-1) x (n), linear dynamics only
  Series<MatXP> P_;                             // (T-1) x (n, p): df/dparams, models only
  Series<MatXP> Mx_;                            // (T-1) x (n, p): x rows of M_t
  Series<Eigen::Matrix<double, NU, kDyn>> Mu_;  // (T-1) x (m, p): u rows of M_t
  Series<MatXX> Hxx_;                           // T x (n, n): the LQR's Hessian blocks
  Series<MatUX> Hux_;                           // T x (m, n)
  Series<MatUU> Huu_;                           // T x (m, m)
  Series<VecX> cx_;                             // T x (n)
  Series<VecU> cu_;                             // T x (m)
  TrajX x_, lambda_;                            // (n, T): the point and its costates
  TrajU u_, free_;                              // (m, T): controls; 1 = free, 0 = pinned
  std::vector<double> params_;
  double dt_ = 0.0;
  GradientStatus load_status_ = GradientStatus::kOk;
  double stationarity_residual_ = 0.0;
  double dynamics_residual_ = 0.0;
  int active_controls_ = 0;

  // The factorisation, shared by every right-hand side.
  Series<MatXX> V_;    // T x (n, n)
  Series<MatUX> K_;    // T x (m, n)
  Series<MatUX> Qux_;  // T x (m, n), pinned rows zero
  Series<MatUU> L_;    // T x (m, m): Cholesky factor of the pinned Quu
  double reg_ = 0.0;
  double condition_ = 0.0;

  // One right-hand side and its solution.
  TrajX gx_, dx_, mu_;
  TrajU gu_, du_, k_;
  Eigen::Matrix<double, NX, kDyn> h_;  // (n, T-1)
  VecX d0_;

  // Scratch.
  MatXX VA_, Qxx_;
  MatXU VB_;
  MatUU Quu_;
  VecX w_, v_, qx_, x_next_;
  VecU qu_, tmp_u_;
  MatTT Htt_;
  MatTP Htp_;
};

}  // namespace backward_internal

// Factories, one per translation unit that instantiates the template.
std::unique_ptr<ShapeBackward> MakeModelShapeBackward(const ProblemShape& shape, bool fixed_size);
std::unique_ptr<ShapeBackward> MakeLinearShapeBackward(const ProblemShape& shape, bool fixed_size);

}  // namespace mpc

#endif  // MPC_SOLVER_CPU_IMPLICIT_BACKWARD_SOLVER_H_
