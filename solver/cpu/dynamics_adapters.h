#ifndef MPC_SOLVER_CPU_DYNAMICS_ADAPTERS_H_
#define MPC_SOLVER_CPU_DYNAMICS_ADAPTERS_H_

// What the CPU shape templates (IlqrSolver, ImplicitBackwardSolver) share: the dynamics tags they
// are instantiated with, their per-step storage, and the loading of a Problem's cost, linear
// dynamics and model parameters into that storage. Internal to solver/cpu.

#include <vector>

#include "Eigen/Core"
#include "solver/models/dynamics_tags.h"
#include "solver/models/model_registry.h"
#include "solver/problem.h"

namespace mpc {
namespace cpu_internal {

constexpr int kDyn = Eigen::Dynamic;

using ::mpc::LinearDynamics;
using ::mpc::ModelDynamics;

// Size of tau = [x; u], dynamic when either part is.
constexpr int TauDim(int nx, int nu) { return (nx == kDyn || nu == kDyn) ? kDyn : nx + nu; }

// One matrix or vector per time step.
template <class M>
using Series = std::vector<M, Eigen::aligned_allocator<M>>;

using RowMajorMap = Eigen::Map<const Eigen::Matrix<double, kDyn, kDyn, Eigen::RowMajor>>;

// Splits the problem's cost into blocks for every step t (one shared C and c when the problem gives
// a single slice). Only the symmetric part of C enters the objective, so that part is kept.
template <class MatXX, class MatUX, class MatUU, class VecX, class VecU>
void LoadSymmetricCost(const Problem& problem, int n, int m, int T, Series<MatXX>* Cxx,
                       Series<MatUX>* Cux, Series<MatUU>* Cuu, Series<VecX>* cx, Series<VecU>* cu) {
  const int nt = n + m;
  const bool cost_varying = static_cast<int>(problem.cost_quadratic.size()) == T * nt * nt;
  const bool linear_varying = static_cast<int>(problem.cost_linear.size()) == T * nt;
  for (int t = 0; t < T; ++t) {
    const RowMajorMap C(problem.cost_quadratic.data() + (cost_varying ? t * nt * nt : 0), nt, nt);
    (*Cxx)[t] = 0.5 * (C.topLeftCorner(n, n) + C.topLeftCorner(n, n).transpose());
    (*Cux)[t] = 0.5 * (C.bottomLeftCorner(m, n) + C.topRightCorner(n, m).transpose());
    (*Cuu)[t] = 0.5 * (C.bottomRightCorner(m, m) + C.bottomRightCorner(m, m).transpose());
    const double* c = problem.cost_linear.data() + (linear_varying ? t * nt : 0);
    (*cx)[t] = Eigen::Map<const VecX>(c, n);
    (*cu)[t] = Eigen::Map<const VecU>(c + n, m);
  }
}

// Splits the problem's transition [A_t B_t] and offset f_t (zero when absent) for every step
// t < T-1 (one shared slice when the problem gives a single one).
template <class MatXX, class MatXU, class VecX>
void LoadLinearDynamics(const Problem& problem, int n, int m, int T, Series<MatXX>* A,
                        Series<MatXU>* B, Series<VecX>* f) {
  const int nt = n + m;
  const int slices = static_cast<int>(problem.transition.size()) / (n * nt);
  const bool offset_varying = static_cast<int>(problem.offset.size()) == (T - 1) * n;
  for (int t = 0; t + 1 < T; ++t) {
    const RowMajorMap F(problem.transition.data() + (slices > 1 ? t * n * nt : 0), n, nt);
    (*A)[t] = F.leftCols(n);
    (*B)[t] = F.rightCols(m);
    if (problem.offset.empty()) {
      (*f)[t].setZero();
    } else {
      (*f)[t] = Eigen::Map<const VecX>(problem.offset.data() + (offset_varying ? t * n : 0), n);
    }
  }
}

// Writes the model's parameters (the problem's, else the model's defaults) into params
// (Model::kParamDim entries); returns the step length (the problem's, else the default).
template <class Model>
double LoadModelParams(const Problem& problem, std::vector<double>* params) {
  for (int k = 0; k < Model::kParamDim; ++k) {
    (*params)[k] = problem.params.empty() ? Model::kDefaultParams[k] : problem.params[k];
  }
  return problem.dt > 0.0 ? problem.dt : Model::kDefaultDt;
}

}  // namespace cpu_internal
}  // namespace mpc

#endif  // MPC_SOLVER_CPU_DYNAMICS_ADAPTERS_H_
