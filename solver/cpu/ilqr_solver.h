#ifndef MPC_SOLVER_CPU_ILQR_SOLVER_H_
#define MPC_SOLVER_CPU_ILQR_SOLVER_H_

// The box-constrained iLQR template behind MakeShapeSolver. Internal to solver/cpu: instantiated in
// ilqr_models.cc and ilqr_linear.cc (split so the two cores of a build machine share the work).

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include "Eigen/Cholesky"
#include "Eigen/Core"
#include "solver/cpu/cholesky_substitution.h"
#include "solver/cpu/dynamics_adapters.h"
#include "solver/cpu/ilqr.h"
#include "solver/cpu/regularization.h"
#include "solver/models/model_derivatives.h"
#include "solver/models/model_registry.h"

namespace mpc {
namespace ilqr_internal {

using cpu_internal::kDyn;
using cpu_internal::LinearDynamics;
using cpu_internal::ModelDynamics;
using cpu_internal::Series;

// Projected-Newton box QP: iteration cap, Armijo constant, backtracking factor.
constexpr int kMaxBoxQpIterations = 50;
constexpr int kMaxBoxQpBacktracks = 40;
constexpr double kBoxQpArmijo = 0.1;

// Box-constrained iLQR for one shape. Every buffer is sized in the constructor (Crocoddyl's
// allocateData); Solve only reads the problem and writes these buffers and the solution.
template <class Dynamics, int NX, int NU>
class IlqrSolver final : public ShapeSolver {
 public:
  using VecX = Eigen::Matrix<double, NX, 1>;
  using VecU = Eigen::Matrix<double, NU, 1>;
  using MatXX = Eigen::Matrix<double, NX, NX>;
  using MatXU = Eigen::Matrix<double, NX, NU>;
  using MatUX = Eigen::Matrix<double, NU, NX>;
  using MatUU = Eigen::Matrix<double, NU, NU>;
  using TrajX = Eigen::Matrix<double, NX, kDyn>;  // column t = x_t
  using TrajU = Eigen::Matrix<double, NU, kDyn>;  // column t = u_t

  explicit IlqrSolver(const ProblemShape& shape)
      : shape_(shape),
        n_(shape.state_dim),
        m_(shape.control_dim),
        T_(shape.horizon),
        llt_(shape.control_dim) {
    const int n = n_, m = m_, T = T_;
    const int dyn_steps = std::max(T - 1, 1);
    A_.assign(dyn_steps, MatXX::Zero(n, n));
    B_.assign(dyn_steps, MatXU::Zero(n, m));
    f_.assign(dyn_steps, VecX::Zero(n));
    Cxx_.assign(T, MatXX::Zero(n, n));
    Cux_.assign(T, MatUX::Zero(m, n));
    Cuu_.assign(T, MatUU::Zero(m, m));
    cx_.assign(T, VecX::Zero(n));
    cu_.assign(T, VecU::Zero(m));
    K_.assign(T, MatUX::Zero(m, n));
    k_.assign(T, VecU::Zero(m));
    for (TrajX* traj : {&x_, &x_try_, &best_x_}) traj->setZero(n, T);
    for (TrajU* traj : {&u_, &u_try_, &best_u_, &lower_, &upper_}) traj->setZero(m, T);
    params_.assign(cpu_internal::kMaxModelParams, 0.0);
    V_.setZero(n, n);
    VA_.setZero(n, n);
    VB_.setZero(n, m);
    v_.setZero(n);
    Qxx_.setZero(n, n);
    Qux_.setZero(m, n);
    Quu_.setZero(m, m);
    qx_.setZero(n);
    qu_.setZero(m);
    gx_.setZero(n);
    gu_.setZero(m);
    H_.setZero(m, m);
    Hfree_.setZero(m, m);
    Qux_free_.setZero(m, n);
    QuuK_.setZero(m, n);
    KtQux_.setZero(n, n);
    qp_x_.setZero(m);
    qp_g_.setZero(m);
    qp_grad_.setZero(m);
    qp_dx_.setZero(m);
    qp_trial_.setZero(m);
    qp_lo_.setZero(m);
    qp_hi_.setZero(m);
    qp_free_.setZero(m);
    qp_free_prev_.setZero(m);
    dx_.setZero(n);
    tmp_u_.setZero(m);
    cost_x_.setZero(n);
    cost_u_.setZero(m);
  }

  const ProblemShape& shape() const override { return shape_; }

  void Solve(const Problem& problem, Solution* solution) override {
    const SolverOptions& options = problem.options;
    Load(problem);
    Solution& out = *solution;
    out.Resize(shape_, options.compute_gains);
    out.iterations = 0;
    out.regularization = 0.0;
    out.step_norm = std::numeric_limits<double>::infinity();

    double cost = Rollout();
    if (!std::isfinite(cost) || !x_.allFinite()) {
      best_x_ = x_;
      best_u_ = u_;
      Finish(cost, SolveStatus::kNotFinite, &out);
      return;
    }

    bool have_best = false;
    double best_cost = 0.0;
    double best_step_norm = std::numeric_limits<double>::infinity();
    int not_improved = 0;
    bool stalled = false;
    bool broke_down = false;
    mu_ = 0.0;
    for (int iteration = 1; iteration <= options.max_iterations; ++iteration) {
      out.iterations = iteration;
      Linearize();
      if (!BackwardPassWithRegularization()) {
        broke_down = true;
        break;
      }
      double step_norm = 0.0;
      const bool finite = LineSearch(options, cost, &cost, &step_norm);
      ++not_improved;
      if (finite && (!have_best || cost <= best_cost + options.best_cost_eps)) {
        have_best = true;
        best_cost = cost;
        best_step_norm = step_norm;
        best_x_ = x_;
        best_u_ = u_;
        not_improved = 0;
      }
      if (finite && step_norm < options.tolerance) break;
      if (not_improved > options.not_improved_limit) {
        stalled = true;
        break;
      }
      // A step that went well lets the regularisation relax towards plain Newton.
      if (finite) {
        mu_ /= kRegularizationFactor;
        if (mu_ < kMinRegularization) mu_ = 0.0;
      } else if (!IncreaseRegularization()) {
        stalled = true;
        break;
      }
    }
    out.regularization = mu_;
    if (!have_best) {
      // Only reachable when the very first backward pass or line search failed.
      best_x_ = x_;
      best_u_ = u_;
      best_cost = cost;
      Finish(best_cost, broke_down ? SolveStatus::kNotFinite : SolveStatus::kLinesearchFailed, &out);
      return;
    }
    out.step_norm = best_step_norm;
    SolveStatus status;
    if (best_step_norm < options.tolerance) {
      status = SolveStatus::kConverged;
    } else if (broke_down) {
      status = SolveStatus::kNotFinite;
    } else if (stalled) {
      status = SolveStatus::kLinesearchFailed;
    } else {
      status = SolveStatus::kMaxIterations;
    }
    Finish(best_cost, status, &out);
  }

 private:
  // Copies the problem into the workspace: symmetric cost blocks, dynamics, bounds, warm start.
  void Load(const Problem& problem) {
    const int n = n_, m = m_, T = T_;
    cpu_internal::LoadSymmetricCost(problem, n, m, T, &Cxx_, &Cux_, &Cuu_, &cx_, &cu_);
    if constexpr (Dynamics::kIsLinear) {
      cpu_internal::LoadLinearDynamics(problem, n, m, T, &A_, &B_, &f_);
    } else {
      dt_ = cpu_internal::LoadModelParams<typename Dynamics::ModelType>(problem, &params_);
    }
    has_bounds_ = !problem.u_lower.empty();
    if (has_bounds_) {
      const bool lower_varying = static_cast<int>(problem.u_lower.size()) == T * m;
      const bool upper_varying = static_cast<int>(problem.u_upper.size()) == T * m;
      for (int t = 0; t < T; ++t) {
        lower_.col(t) = Eigen::Map<const VecU>(problem.u_lower.data() + (lower_varying ? t * m : 0), m);
        upper_.col(t) = Eigen::Map<const VecU>(problem.u_upper.data() + (upper_varying ? t * m : 0), m);
      }
    }
    x_.col(0) = Eigen::Map<const VecX>(problem.x_init.data(), n);
    if (problem.u_init.empty()) {
      u_.setZero();
    } else {
      u_ = Eigen::Map<const TrajU>(problem.u_init.data(), m, T);
    }
    if (has_bounds_) u_ = u_.cwiseMax(lower_).cwiseMin(upper_);
  }

  // x_{t+1} = f(x_t, u_t) for the dynamics of step t.
  void Step(int t, const double* x, const double* u, double* x_next) {
    if constexpr (Dynamics::kIsLinear) {
      Eigen::Map<VecX> next(x_next, n_);
      next.noalias() = A_[t] * Eigen::Map<const VecX>(x, n_);
      next.noalias() += B_[t] * Eigen::Map<const VecU>(u, m_);
      next += f_[t];
    } else {
      Dynamics::ModelType::Step(x, u, params_.data(), dt_, x_next);
    }
  }

  // 0.5 tau' C_t tau + c_t' tau with C_t symmetric. Products go through scratch vectors so that
  // dynamic sizes allocate nothing.
  template <class DX, class DU>
  double StageCost(int t, const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DU>& u) {
    cost_x_.noalias() = Cxx_[t] * x;
    cost_x_ *= 0.5;
    cost_x_ += cx_[t];
    cost_u_.noalias() = Cux_[t] * x;
    cost_u_.noalias() += 0.5 * (Cuu_[t] * u);
    cost_u_ += cu_[t];
    return x.dot(cost_x_) + u.dot(cost_u_);
  }

  // out = -H^-1 rhs with the factorisation in llt_ (H = L L').
  template <class Rhs, class Out>
  void SolveNegated(const Rhs& rhs, Out& out) const {
    out = -rhs;
    cpu_internal::CholeskySolveInPlace(llt_.matrixLLT(), m_, out);
  }

  // Rolls x_ out from x_[0] under u_; returns the cost.
  double Rollout() {
    double cost = 0.0;
    for (int t = 0; t < T_; ++t) {
      cost += StageCost(t, x_.col(t), u_.col(t));
      if (t + 1 < T_) Step(t, x_.col(t).data(), u_.col(t).data(), x_.col(t + 1).data());
    }
    return cost;
  }

  // A_t, B_t at the current trajectory (linear dynamics are already in place).
  void Linearize() {
    if constexpr (!Dynamics::kIsLinear) {
      using Model = typename Dynamics::ModelType;
      double x_next[Model::kStateDim];
      for (int t = 0; t + 1 < T_; ++t) {
        StepWithJacobians<Model>(x_.col(t).data(), u_.col(t).data(), params_.data(), dt_, x_next,
                                 A_[t].data(), B_[t].data());
      }
    }
  }

  bool IncreaseRegularization() {
    mu_ = IncreasedRegularization(mu_);
    return mu_ <= kMaxRegularization;
  }

  // Repeats the backward pass with growing mu until every Quu + mu I is positive definite.
  bool BackwardPassWithRegularization() {
    while (true) {
      switch (BackwardPass()) {
        case PassResult::kOk:
          return true;
        case PassResult::kNotPositiveDefinite:
          if (!IncreaseRegularization()) return false;
          break;
        case PassResult::kNotFinite:
          return false;
      }
    }
  }

  enum class PassResult { kOk, kNotPositiveDefinite, kNotFinite };

  // Riccati recursion in delta space around (x_, u_) (mpc.pytorch's LQRStep with delta_space=True):
  // Q_t = C_t + F_t' V_{t+1} F_t, q_t = C_t tau_t + c_t + F_t' v_{t+1}; writes K_, k_.
  PassResult BackwardPass() {
    for (int t = T_ - 1; t >= 0; --t) {
      const auto x = x_.col(t);
      const auto u = u_.col(t);
      gx_.noalias() = Cxx_[t] * x;
      gx_.noalias() += Cux_[t].transpose() * u;
      gx_ += cx_[t];
      gu_.noalias() = Cux_[t] * x;
      gu_.noalias() += Cuu_[t] * u;
      gu_ += cu_[t];
      Qxx_ = Cxx_[t];
      Qux_ = Cux_[t];
      Quu_ = Cuu_[t];
      qx_ = gx_;
      qu_ = gu_;
      if (t < T_ - 1) {
        VA_.noalias() = V_ * A_[t];
        VB_.noalias() = V_ * B_[t];
        Qxx_.noalias() += A_[t].transpose() * VA_;
        Qux_.noalias() += B_[t].transpose() * VA_;
        Quu_.noalias() += B_[t].transpose() * VB_;
        qx_.noalias() += A_[t].transpose() * v_;
        qu_.noalias() += B_[t].transpose() * v_;
      }
      H_ = Quu_;
      if (mu_ > 0.0) H_.diagonal().array() += mu_;
      llt_.compute(H_);
      if (llt_.info() != Eigen::Success) return PassResult::kNotPositiveDefinite;
      if (has_bounds_) {
        SolveBoxQp(t);
      } else {
        SolveNegated(qu_, k_[t]);
        SolveNegated(Qux_, K_[t]);
      }
      // V = Qxx + Qux'K + K'Qux + K'Quu K, v = qx + Qux'k + K'(qu + Quu k), with the true Quu.
      const MatUX& K = K_[t];
      const VecU& k = k_[t];
      QuuK_.noalias() = Quu_ * K;
      KtQux_.noalias() = Qux_.transpose() * K;
      V_ = Qxx_;
      V_ += KtQux_;
      V_ += KtQux_.transpose();
      V_.noalias() += K.transpose() * QuuK_;
      VA_ = V_.transpose();  // VA_ is free scratch here
      V_ += VA_;
      V_ *= 0.5;
      tmp_u_ = qu_;
      tmp_u_.noalias() += Quu_ * k;
      v_ = qx_;
      v_.noalias() += Qux_.transpose() * k;
      v_.noalias() += K.transpose() * tmp_u_;
    }
    if (!V_.allFinite() || !v_.allFinite()) return PassResult::kNotFinite;
    return PassResult::kOk;
  }

  double QpObjective(const VecU& x) {
    tmp_u_.noalias() = H_ * x;
    return 0.5 * x.dot(tmp_u_) + qu_.dot(x);
  }

  // Marks the free coordinates of the box QP at qp_x_ (a coordinate at a bound whose gradient points
  // out of the box is clamped) and factorises H restricted to them, with identity on the clamped
  // ones, into llt_.
  void FactorFreeSubspace() {
    qp_grad_.noalias() = H_ * qp_x_;
    qp_grad_ += qu_;
    qp_g_ = qp_grad_;
    Hfree_ = H_;
    for (int i = 0; i < m_; ++i) {
      const bool clamped = (qp_x_[i] <= qp_lo_[i] && qp_g_[i] > 0.0) ||
                           (qp_x_[i] >= qp_hi_[i] && qp_g_[i] < 0.0);
      qp_free_[i] = clamped ? 0.0 : 1.0;
      if (clamped) {
        Hfree_.row(i).setZero();
        Hfree_.col(i).setZero();
        Hfree_(i, i) = 1.0;
        qp_g_[i] = 0.0;
      }
    }
    llt_.compute(Hfree_);
  }

  // k_t from min 0.5 k'Hk + qu'k s.t. lower - u_t <= k <= upper - u_t by projected Newton (as
  // mpc.pytorch's pnqp), run until the active set is exact rather than to a 1e-4 step; K_t on the
  // free controls only (rows of clamped controls are zero).
  void SolveBoxQp(int t) {
    qp_lo_ = lower_.col(t) - u_.col(t);
    qp_hi_ = upper_.col(t) - u_.col(t);
    // llt_ holds H: when the unconstrained minimiser is inside the box it is the answer.
    SolveNegated(qu_, qp_x_);
    if ((qp_x_.array() >= qp_lo_.array()).all() && (qp_x_.array() <= qp_hi_.array()).all()) {
      k_[t] = qp_x_;
      SolveNegated(Qux_, K_[t]);
      return;
    }
    if (t < T_ - 1) qp_x_ = k_[t + 1];  // warm start from the previous stage, as pnqp
    qp_x_ = qp_x_.cwiseMax(qp_lo_).cwiseMin(qp_hi_);
    bool exact_on_face = false;
    bool factored_at_x = false;
    for (int iteration = 0; iteration < kMaxBoxQpIterations; ++iteration) {
      qp_free_prev_ = qp_free_;
      FactorFreeSubspace();
      factored_at_x = true;
      // After a full, unclipped Newton step on an unchanged face, qp_x_ is that face's minimiser.
      if (exact_on_face && qp_free_ == qp_free_prev_) break;
      SolveNegated(qp_g_, qp_dx_);
      if (qp_dx_.template lpNorm<Eigen::Infinity>() == 0.0) break;
      const double objective = QpObjective(qp_x_);
      double alpha = 1.0;
      for (int backtrack = 0; backtrack < kMaxBoxQpBacktracks; ++backtrack) {
        qp_trial_ = (qp_x_ + alpha * qp_dx_).cwiseMax(qp_lo_).cwiseMin(qp_hi_);
        // Armijo along the projection arc, with the gradient at the current point.
        const double predicted = qp_grad_.dot(qp_x_ - qp_trial_);
        if (objective - QpObjective(qp_trial_) >= kBoxQpArmijo * predicted) break;
        alpha *= 0.5;
      }
      const bool clipped = (qp_trial_ - (qp_x_ + alpha * qp_dx_)).squaredNorm() > 0.0;
      exact_on_face = alpha == 1.0 && !clipped;
      if (qp_trial_ == qp_x_) break;
      qp_x_ = qp_trial_;
      factored_at_x = false;
    }
    if (!factored_at_x) FactorFreeSubspace();
    k_[t] = qp_x_;
    Qux_free_ = Qux_;
    for (int i = 0; i < m_; ++i) {
      if (qp_free_[i] == 0.0) Qux_free_.row(i).setZero();
    }
    SolveNegated(Qux_free_, K_[t]);
  }

  // Backtracking line search on alpha (mpc.pytorch's lqr_forward, per problem): trial controls
  // u = clamp(u_t + K_t (x'_t - x_t) + alpha k_t); accept at the first trial whose cost does not
  // increase, else after max_linesearch_iterations trials take the last one anyway. Moves the
  // accepted trial into x_, u_. Returns false (and keeps x_, u_) if the last trial is not finite.
  bool LineSearch(const SolverOptions& options, double old_cost, double* new_cost,
                  double* step_norm) {
    double alpha = 1.0;
    double cost = std::numeric_limits<double>::quiet_NaN();
    for (int trial = 0; trial < options.max_linesearch_iterations; ++trial) {
      cost = TrialRollout(alpha);
      if (trial == 0) *step_norm = (u_try_ - u_).norm();
      if (std::isfinite(cost) && cost <= old_cost) break;
      alpha *= options.linesearch_decay;
    }
    if (!std::isfinite(cost) || !x_try_.allFinite()) {
      *new_cost = old_cost;
      return false;
    }
    x_.swap(x_try_);
    u_.swap(u_try_);
    *new_cost = cost;
    return true;
  }

  double TrialRollout(double alpha) {
    double cost = 0.0;
    x_try_.col(0) = x_.col(0);
    for (int t = 0; t < T_; ++t) {
      dx_ = x_try_.col(t) - x_.col(t);
      auto u = u_try_.col(t);
      u = u_.col(t);
      u.noalias() += K_[t] * dx_;
      u += alpha * k_[t];
      if (has_bounds_) u = u.cwiseMax(lower_.col(t)).cwiseMin(upper_.col(t));
      cost += StageCost(t, x_try_.col(t), u);
      if (t + 1 < T_) Step(t, x_try_.col(t).data(), u.data(), x_try_.col(t + 1).data());
    }
    return cost;
  }

  // Writes the best iterate (and, when asked, the gains linearised at it) into the solution.
  void Finish(double cost, SolveStatus status, Solution* out) {
    std::memcpy(out->x.data(), best_x_.data(), sizeof(double) * n_ * T_);
    std::memcpy(out->u.data(), best_u_.data(), sizeof(double) * m_ * T_);
    out->cost = cost;
    out->status = status;
    if (out->feedback.empty()) return;
    x_ = best_x_;
    u_ = best_u_;
    Linearize();
    mu_ = 0.0;
    if (status == SolveStatus::kNotFinite || !BackwardPassWithRegularization()) {
      std::fill(out->feedback.begin(), out->feedback.end(), 0.0);
      std::fill(out->feedforward.begin(), out->feedforward.end(), 0.0);
      return;
    }
    for (int t = 0; t < T_; ++t) {
      // Row-major (m, n) per step.
      for (int i = 0; i < m_; ++i) {
        for (int j = 0; j < n_; ++j) out->feedback[(t * m_ + i) * n_ + j] = K_[t](i, j);
        out->feedforward[t * m_ + i] = k_[t][i];
      }
    }
  }

  const ProblemShape shape_;
  const int n_, m_, T_;

  // Problem data, loaded per solve.
  Series<MatXX> A_;   // (T-1) x (n, n)
  Series<MatXU> B_;   // (T-1) x (n, m)
  Series<VecX> f_;    // (T-1) x (n), linear dynamics only
  Series<MatXX> Cxx_;
  Series<MatUX> Cux_;
  Series<MatUU> Cuu_;
  Series<VecX> cx_;
  Series<VecU> cu_;
  TrajU lower_, upper_;
  bool has_bounds_ = false;
  std::vector<double> params_;
  double dt_ = 0.0;

  // Iterates and gains.
  TrajX x_, x_try_, best_x_;
  TrajU u_, u_try_, best_u_;
  Series<MatUX> K_;  // T x (m, n)
  Series<VecU> k_;   // T x (m)
  double mu_ = 0.0;

  // Scratch for the backward pass, box QP and line search.
  MatXX V_, VA_, KtQux_;
  MatXU VB_;
  VecX v_, qx_, gx_, dx_, cost_x_;
  MatXX Qxx_;
  MatUX Qux_, Qux_free_, QuuK_;
  MatUU Quu_, H_, Hfree_;
  VecU qu_, gu_, tmp_u_, cost_u_;
  Eigen::LLT<MatUU> llt_;
  VecU qp_x_, qp_g_, qp_grad_, qp_dx_, qp_trial_, qp_lo_, qp_hi_, qp_free_, qp_free_prev_;
};

}  // namespace ilqr_internal

// Factories, one per translation unit that instantiates the template.
std::unique_ptr<ShapeSolver> MakeModelShapeSolver(const ProblemShape& shape, bool fixed_size);
std::unique_ptr<ShapeSolver> MakeLinearShapeSolver(const ProblemShape& shape, bool fixed_size);

}  // namespace mpc

#endif  // MPC_SOLVER_CPU_ILQR_SOLVER_H_
