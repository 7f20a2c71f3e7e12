#ifndef MPC_TESTS_SOLVER_DUMP_PATHS_H_
#define MPC_TESTS_SOLVER_DUMP_PATHS_H_

// The solver entry points hexfloat_dump.cc compares: kept apart so that a rewrite changes only
// this file while the dump itself stays as it was.

#include <memory>
#include <string>
#include <vector>

#include "solver/core/dispatch.h"
#include "solver/cpu/implicit_backward.h"
#include "solver/gradients.h"
#include "solver/make_backend.h"
#include "solver/packing.h"
#include "tests/testing/device_layout_on_host.h"

namespace mpc::testing {

inline bool DumpSolve(const std::string& path, const std::vector<const Problem*>& problems,
                      const std::vector<Solution*>& solutions) {
  if (path == "cpu") {
    auto backend = MakeBackend(BackendKind::kCpu, 1);
    return backend.ok() && (*backend)->SolveBatch(problems, solutions).ok();
  }
  std::vector<const Problem*> supported;
  std::vector<Solution*> out;
  for (std::size_t i = 0; i < problems.size(); ++i) {
    if (!core::RunsOnDevice(problems[i]->shape)) continue;
    supported.push_back(problems[i]);
    out.push_back(solutions[i]);
  }
  return core::SolveBatchOnHost<double>(supported, out).ok();
}

inline bool DumpBackward(const std::string& path,
                         const std::vector<const BackwardProblem*>& problems,
                         const std::vector<ProblemGradient*>& gradients,
                         std::vector<bool>* computed) {
  if (path == "cpu") {
    auto backend = MakeBackend(BackendKind::kCpu, 1);
    computed->assign(problems.size(), true);
    return backend.ok() && (*backend)->BackwardBatch(problems, gradients).ok();
  }
  std::vector<const BackwardProblem*> supported;
  std::vector<ProblemGradient*> out;
  for (std::size_t i = 0; i < problems.size(); ++i) {
    if (!core::DeviceSupportsBackward(*problems[i])) continue;
    (*computed)[i] = true;
    supported.push_back(problems[i]);
    out.push_back(gradients[i]);
  }
  return core::BackwardBatchOnHost<double>(supported, out).ok();
}

inline bool DumpJacobians(const std::string& path, const Problem& problem, const Solution& solution,
                          GradientMode mode, std::vector<double>* x_init,
                          std::vector<double>* params) {
  if (path != "cpu") return false;
  JacobianRequest request;
  request.x_init = true;
  request.params = !problem.shape.dynamics.is_linear();
  request.mode = mode;
  SolutionJacobians jacobians;
  if (!ComputeSolutionJacobians(problem, solution.x, solution.u, request, &jacobians).ok()) {
    return false;
  }
  *x_init = jacobians.x_init;
  *params = jacobians.params;
  return true;
}

}  // namespace mpc::testing

#endif  // MPC_TESTS_SOLVER_DUMP_PATHS_H_
