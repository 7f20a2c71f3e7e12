#include "tests/testing/dense_kkt.h"

#include <algorithm>
#include <cmath>

#include "Eigen/Dense"
#include "absl/status/status.h"
#include "solver/models/cartpole.h"
#include "solver/models/model_list.h"
#include "solver/models/model_registry.h"
#include "solver/models/pendulum.h"

namespace mpc::testing {
namespace {

using Matrix = Eigen::MatrixXd;
using Vector = Eigen::VectorXd;
using RowMajorMap =
    Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;

template <class Model>
std::vector<double> RolloutModel(const Problem& problem, const std::vector<double>& u) {
  constexpr std::ptrdiff_t n = Model::kStateDim;
  constexpr std::ptrdiff_t m = Model::kControlDim;
  const std::ptrdiff_t horizon = problem.shape.horizon;
  const ModelInfo* info = FindModel(problem.shape.dynamics);
  const std::vector<double>& params =
      problem.params.empty() ? info->default_params : problem.params;
  const double dt = problem.dt == 0.0 ? info->default_dt : problem.dt;
  std::vector<double> x(static_cast<std::size_t>(horizon * n));
  std::copy(problem.x_init.begin(), problem.x_init.end(), x.begin());
  for (std::ptrdiff_t t = 0; t + 1 < horizon; ++t) {
    ModelStep<Model>(&x[t * n], &u[t * m], params.data(), TimeStep(dt, problem.integrator),
                     &x[(t + 1) * n]);
  }
  return x;
}

}  // namespace

const double* SliceAt(const std::vector<double>& array, int t, int slice_size) {
  const auto size = static_cast<std::size_t>(slice_size);
  const bool time_invariant = array.size() == size;
  return array.data() + (time_invariant ? 0 : static_cast<std::size_t>(t) * size);
}

absl::StatusOr<DenseKktSolution> SolveDenseKkt(const Problem& problem) {
  if (!problem.shape.dynamics.is_linear()) {
    return absl::InvalidArgumentError("SolveDenseKkt needs linear dynamics");
  }
  if (!problem.u_lower.empty() || !problem.u_upper.empty()) {
    return absl::InvalidArgumentError("SolveDenseKkt cannot take control bounds");
  }
  const Eigen::Index n = problem.shape.state_dim;
  const Eigen::Index m = problem.shape.control_dim;
  const Eigen::Index horizon = problem.shape.horizon;
  const Eigen::Index nt = n + m;
  const Eigen::Index num_vars = horizon * nt;  // z = [tau_0; ...; tau_{T-1}]
  const Eigen::Index num_cons = horizon * n;   // x_0 = x_init, then T-1 dynamics constraints
  const Eigen::Index size = num_vars + num_cons;

  // [H A'; A 0] [z; nu] = [-g; b] with rows of A: x_0 = x_init; x_{t+1} - F_t tau_t = f_t.
  Matrix kkt = Matrix::Zero(size, size);
  Vector rhs = Vector::Zero(size);
  for (std::ptrdiff_t t = 0; t < horizon; ++t) {
    const RowMajorMap c_mat(SliceAt(problem.cost_quadratic, t, nt * nt), nt, nt);
    kkt.block(t * nt, t * nt, nt, nt) = 0.5 * (c_mat + c_mat.transpose());
    const double* c_vec = SliceAt(problem.cost_linear, t, nt);
    for (std::ptrdiff_t i = 0; i < nt; ++i) rhs(t * nt + i) = -c_vec[i];
  }
  for (std::ptrdiff_t i = 0; i < n; ++i) {
    kkt(num_vars + i, i) = 1.0;
    rhs(num_vars + i) = problem.x_init[i];
  }
  for (std::ptrdiff_t t = 0; t + 1 < horizon; ++t) {
    const Eigen::Index row = num_vars + (t + 1) * n;
    const RowMajorMap f_mat(SliceAt(problem.transition, t, n * nt), n, nt);
    kkt.block(row, t * nt, n, nt) = -f_mat;
    for (std::ptrdiff_t i = 0; i < n; ++i) {
      kkt(row + i, (t + 1) * nt + i) = 1.0;
      rhs(row + i) = problem.offset.empty() ? 0.0 : SliceAt(problem.offset, t, n)[i];
    }
  }
  kkt.topRightCorner(num_vars, num_cons) = kkt.bottomLeftCorner(num_cons, num_vars).transpose();

  const Eigen::FullPivLU<Matrix> lu(kkt);
  if (!lu.isInvertible()) return absl::FailedPreconditionError("singular KKT matrix");
  const Vector sol = lu.solve(rhs);

  DenseKktSolution out;
  out.residual = (kkt * sol - rhs).cwiseAbs().maxCoeff();
  out.x.resize(static_cast<std::size_t>(horizon * n));
  out.u.resize(static_cast<std::size_t>(horizon * m));
  out.costate.resize(static_cast<std::size_t>(horizon * n));
  for (std::ptrdiff_t t = 0; t < horizon; ++t) {
    for (std::ptrdiff_t i = 0; i < n; ++i) {
      out.x[t * n + i] = sol(t * nt + i);
      // Stationarity in x_t reads C_{t,x:} tau_t + c_{t,x} + nu_t - A_t' nu_{t+1} = 0, so
      // mpc.pytorch's lambda_t is -nu_t.
      out.costate[t * n + i] = -sol(num_vars + t * n + i);
    }
    for (std::ptrdiff_t j = 0; j < m; ++j) out.u[t * m + j] = sol(t * nt + n + j);
  }
  out.cost = ProblemCost(problem, out.x, out.u);
  return out;
}

double ProblemCost(const Problem& problem, const std::vector<double>& x,
                   const std::vector<double>& u) {
  const std::ptrdiff_t n = problem.shape.state_dim;
  const std::ptrdiff_t m = problem.shape.control_dim;
  const std::ptrdiff_t nt = n + m;
  double cost = 0.0;
  std::vector<double> tau(nt);
  for (std::ptrdiff_t t = 0; t < problem.shape.horizon; ++t) {
    std::copy(x.begin() + t * n, x.begin() + (t + 1) * n, tau.begin());
    std::copy(u.begin() + t * m, u.begin() + (t + 1) * m, tau.begin() + n);
    const double* c_mat = SliceAt(problem.cost_quadratic, t, nt * nt);
    const double* c_vec = SliceAt(problem.cost_linear, t, nt);
    for (std::ptrdiff_t i = 0; i < nt; ++i) {
      double row = 0.0;
      for (std::ptrdiff_t k = 0; k < nt; ++k) row += c_mat[i * nt + k] * tau[k];
      cost += 0.5 * tau[i] * row + c_vec[i] * tau[i];
    }
  }
  return cost;
}

std::vector<double> Rollout(const Problem& problem, const std::vector<double>& u) {
  std::vector<double> x;
  if (VisitBuiltinModel(problem.shape.dynamics,
                        [&]<class Model>() { x = RolloutModel<Model>(problem, u); })) {
    return x;
  }
  const std::ptrdiff_t n = problem.shape.state_dim;
  const std::ptrdiff_t m = problem.shape.control_dim;
  const std::ptrdiff_t nt = n + m;
  const std::ptrdiff_t horizon = problem.shape.horizon;
  x.assign(static_cast<std::size_t>(horizon * n), 0.0);
  std::copy(problem.x_init.begin(), problem.x_init.end(), x.begin());
  for (std::ptrdiff_t t = 0; t + 1 < horizon; ++t) {
    const double* f_mat = SliceAt(problem.transition, t, n * nt);
    for (std::ptrdiff_t i = 0; i < n; ++i) {
      double v = problem.offset.empty() ? 0.0 : SliceAt(problem.offset, t, n)[i];
      for (std::ptrdiff_t k = 0; k < n; ++k) v += f_mat[i * nt + k] * x[t * n + k];
      for (std::ptrdiff_t j = 0; j < m; ++j) v += f_mat[i * nt + n + j] * u[t * m + j];
      x[(t + 1) * n + i] = v;
    }
  }
  return x;
}

}  // namespace mpc::testing
