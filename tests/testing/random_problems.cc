#include "tests/testing/random_problems.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "solver/models/cartpole.h"
#include "solver/models/model_list.h"
#include "solver/models/model_registry.h"
#include "solver/models/pendulum.h"
#include "tests/testing/dense_kkt.h"

namespace mpc::testing {
namespace {

std::vector<double> NormalVector(Rng& rng, int size, double scale) {
  std::vector<double> v(size);
  for (double& e : v) e = scale * rng.Normal();
  return v;
}

// C = L L' + 0.1 I, row-major (nt, nt): symmetric positive definite with eigenvalues >= 0.1.
void AppendCostMatrix(Rng& rng, int nt, std::vector<double>* out) {
  const std::vector<double> l = NormalVector(rng, nt * nt, 1.0 / std::sqrt(nt));
  for (int i = 0; i < nt; ++i) {
    for (int j = 0; j < nt; ++j) {
      double v = i == j ? 0.1 : 0.0;
      for (int k = 0; k < nt; ++k) v += l[i * nt + k] * l[j * nt + k];
      out->push_back(v);
    }
  }
}

// F = [A B] with A = 0.9 I + 0.1 G / sqrt(n), B = G' / sqrt(n), row-major (n, n+m).
void AppendTransition(Rng& rng, int n, int m, std::vector<double>* out) {
  const double scale = 1.0 / std::sqrt(n);
  for (int i = 0; i < n; ++i) {
    for (int k = 0; k < n; ++k) out->push_back((i == k ? 0.9 : 0.0) + 0.1 * scale * rng.Normal());
    for (int j = 0; j < m; ++j) out->push_back(scale * rng.Normal());
  }
}

Problem ModelProblem(const RandomModelOptions& options, DynamicsId kind,
                     const std::vector<double>& goal, const std::vector<double>& weights,
                     double model_control_limit, const std::vector<double>& x_init) {
  const ModelInfo* info = FindModel(kind);
  const int n = info->state_dim;
  const int m = info->control_dim;
  const int nt = n + m;
  Problem p;
  p.shape = {kind, n, m, options.horizon};
  p.x_init = x_init;
  p.cost_quadratic.assign(static_cast<std::size_t>(nt) * nt, 0.0);
  p.cost_linear.assign(nt, 0.0);
  for (int i = 0; i < n; ++i) {
    p.cost_quadratic[i * nt + i] = weights[i];
    // -sqrt(w) * goal, as dx.get_true_obj() writes it (README "Cost").
    p.cost_linear[i] = -std::sqrt(weights[i]) * goal[i];
  }
  for (int j = n; j < nt; ++j) p.cost_quadratic[j * nt + j] = options.ctrl_penalty;
  p.params = info->default_params;
  p.dt = info->default_dt;
  if (options.bounded) {
    const double bound = options.control_bound > 0.0 ? options.control_bound : model_control_limit;
    p.u_lower.assign(m, -bound);
    p.u_upper.assign(m, bound);
  }
  p.options.max_iterations = 300;
  p.options.tolerance = 1e-8;
  return p;
}

double HalfWidth(double requested, double notebook) {
  return requested >= 0.0 ? requested : notebook;
}

}  // namespace

double Rng::Normal() {
  // 1 - Uniform() lies in (0, 1], so the logarithm is finite.
  const double radius = std::sqrt(-2.0 * std::log(1.0 - Uniform()));
  return radius * std::cos(2.0 * std::numbers::pi * Uniform());
}

Problem RandomLqrProblem(const RandomLqrOptions& options, std::uint64_t seed) {
  Rng rng(seed);
  const int n = options.state_dim;
  const int m = options.control_dim;
  const int nt = n + m;
  const int horizon = options.horizon;
  const int cost_slices = options.time_varying ? horizon : 1;
  const int dyn_slices = options.time_varying ? std::max(horizon - 1, 1) : 1;

  Problem p;
  p.shape = {DynamicsId::Linear(), n, m, horizon};
  p.x_init = NormalVector(rng, n, 1.0);
  for (int s = 0; s < cost_slices; ++s) AppendCostMatrix(rng, nt, &p.cost_quadratic);
  p.cost_linear = NormalVector(rng, cost_slices * nt, 1.0);
  for (int s = 0; s < dyn_slices; ++s) AppendTransition(rng, n, m, &p.transition);
  if (options.with_offset) p.offset = NormalVector(rng, dyn_slices * n, 1.0);

  if (options.bounded) {
    // Bounds strictly inside the range of the unconstrained optimum's controls: for each j the
    // bound on the side where |u*_j| peaks is at most 0.9 max_t |u*_tj|, so that peak is cut off.
    const DenseKktSolution free = *SolveDenseKkt(p);
    const int bound_slices = options.time_varying ? horizon : 1;
    p.u_lower.resize(static_cast<std::size_t>(bound_slices) * m);
    p.u_upper.resize(static_cast<std::size_t>(bound_slices) * m);
    for (int j = 0; j < m; ++j) {
      double peak = 0.0;
      for (int t = 0; t < horizon; ++t) peak = std::max(peak, std::abs(free.u[t * m + j]));
      for (int s = 0; s < bound_slices; ++s) {
        p.u_lower[s * m + j] = -0.6 * peak * rng.Uniform(0.5, 1.5);
        p.u_upper[s * m + j] = 0.6 * peak * rng.Uniform(0.5, 1.5);
      }
    }
  }
  if (options.warm_start) {
    p.u_init = NormalVector(rng, horizon * m, 1.0);
    if (options.bounded) {
      for (int t = 0; t < horizon; ++t) {
        for (int j = 0; j < m; ++j) {
          const double* lo = SliceAt(p.u_lower, t, m);
          const double* hi = SliceAt(p.u_upper, t, m);
          p.u_init[t * m + j] = std::clamp(p.u_init[t * m + j], lo[j], hi[j]);
        }
      }
    }
  }
  return p;
}

Problem RandomPendulumProblem(const RandomModelOptions& options, std::uint64_t seed) {
  Rng rng(seed);
  const double th_w = HalfWidth(options.th_half_width, std::numbers::pi);
  const double thdot_w = HalfWidth(options.thdot_half_width, 1.0);
  const double th = rng.Uniform(-th_w, th_w);
  const double thdot = rng.Uniform(-thdot_w, thdot_w);
  return ModelProblem(options, ModelId<PendulumModel>(), {1.0, 0.0, 0.0}, {1.0, 1.0, 0.1},
                      PendulumModel::kMaxTorque, {std::cos(th), std::sin(th), thdot});
}

Problem RandomCartpoleProblem(const RandomModelOptions& options, std::uint64_t seed) {
  Rng rng(seed);
  const double th_w = HalfWidth(options.th_half_width, 2.0 * std::numbers::pi);
  const double thdot_w = HalfWidth(options.thdot_half_width, 0.5);
  const double x_w = HalfWidth(options.x_half_width, 0.5);
  const double xdot_w = HalfWidth(options.xdot_half_width, 0.5);
  const double th = rng.Uniform(-th_w, th_w);
  const double thdot = rng.Uniform(-thdot_w, thdot_w);
  const double x = rng.Uniform(-x_w, x_w);
  const double xdot = rng.Uniform(-xdot_w, xdot_w);
  return ModelProblem(options, ModelId<CartpoleModel>(), {0.0, 0.0, 1.0, 0.0, 0.0},
                      {0.1, 0.1, 1.0, 1.0, 0.1}, CartpoleModel::kForceMag,
                      {x, xdot, std::cos(th), std::sin(th), thdot});
}

}  // namespace mpc::testing
