#ifndef MPC_SOLVER_CORE_DISPATCH_H_
#define MPC_SOLVER_CORE_DISPATCH_H_

// From a problem's shape (its dynamics identity, n, m) to the compile-time sizes the core runs it
// with, generated from the model list: the one switch every executor uses (the CPU workers, the
// CUDA launchers, the host runs of the device layout in the tests). Plain C++: nvcc compiles it.

#include "solver/core/scratch.h"
#include "solver/models/dynamics_tags.h"
#include "solver/models/model_list.h"
#include "solver/problem_shape.h"

namespace mpc::core {

// The generic device solver (linear dynamics of any size up to these) keeps its small matrices in
// arrays of this capacity; larger linear shapes are solved on the CPU.
constexpr int kGenericMaxStateDim = 16;
constexpr int kGenericMaxControlDim = 8;

// Where the core runs: a CPU worker (run-time sizes from the workspace's arena for any linear
// shape) or a GPU thread (fixed capacities only).
enum class Executor { kCpu, kGpu };

// Whether the shape has a compile-time specialisation or, on the CPU, only run-time sizes.
enum class Sizes { kSpecialised, kRunTime };

// Calls run.template operator()<Dynamics, NX, NU, kFixedSize>() with the sizes `executor` runs
// `shape` with: every built-in model at its own (n, m); linear (8, 4) specialised; other linear
// shapes with run-time sizes (CPU) or within the generic capacities (GPU); a graph with run-time
// sizes on the CPU only; a shape with a cost or constraint graph on the CPU only. Returns false,
// calling nothing, when the executor cannot run the shape.
template <Executor kExecutor, class Run>
bool DispatchShape(const ProblemShape& shape, Run&& run, Sizes sizes = Sizes::kSpecialised) {
  // A cost graph is interpreted on the host only, like a dynamics graph.
  if (kExecutor == Executor::kGpu &&
      (shape.has_cost_graph() || shape.has_terminal_cost_graph() || shape.has_constraint_graph())) {
    return false;
  }
  if (shape.dynamics.is_graph()) {
    // A graph is interpreted on the host only, with run-time sizes.
    if constexpr (kExecutor == Executor::kCpu) {
      run.template operator()<GraphDynamics, kDynamic, kDynamic, true>();
      return true;
    }
    return false;
  }
  if (!shape.dynamics.is_linear()) {
    return VisitBuiltinModel(shape.dynamics, [&]<class Model>() {
      run.template operator()<ModelDynamics<Model>, Model::kStateDim, Model::kControlDim, true>();
    });
  }
  const int n = shape.state_dim, m = shape.control_dim;
  if (sizes == Sizes::kSpecialised && n == 8 && m == 4) {
    run.template operator()<LinearDynamics, 8, 4, true>();
    return true;
  }
  if constexpr (kExecutor == Executor::kCpu) {
    run.template operator()<LinearDynamics, kDynamic, kDynamic, true>();
    return true;
  } else {
    if (n > kGenericMaxStateDim || m > kGenericMaxControlDim) return false;
    run.template operator()<LinearDynamics, kGenericMaxStateDim, kGenericMaxControlDim, false>();
    return true;
  }
}

// Calls fn.template operator()<NX, NU>() with the sizes of the first built-in model whose state
// and control dimensions are (n, m); false, calling nothing, when no model has them.
template <class Fn>
bool VisitBuiltinModelSizes(int n, int m, Fn&& fn) {
  bool found = false;
  ForEachBuiltinModel([&]<class Model>() {
    if (found || Model::kStateDim != n || Model::kControlDim != m) return;
    found = true;
    fn.template operator()<Model::kStateDim, Model::kControlDim>();
  });
  return found;
}

// Calls run.template operator()<GraphTapeDynamics, NX, NU, kFixedSize>() with the sizes the
// device solves a dynamics graph `shape` with on its element records (GraphTapeDynamics): a
// built-in model's compile-time sizes when the graph's (n, m) are one's (as a CPU worker runs the
// graph), else the generic capacities. Returns false, calling nothing, for other shapes, graphs
// larger than the capacities, and shapes with a cost or constraint graph. Which graph problems
// qualify besides their shape (element records, discrete time, a forward solve in double) is the
// backend's to check (cuda_backend.cc).
template <class Run>
bool DispatchGraphTape(const ProblemShape& shape, Run&& run) {
  if (!shape.dynamics.is_graph() || shape.has_cost_graph() || shape.has_terminal_cost_graph() ||
      shape.has_constraint_graph()) {
    return false;
  }
  const int n = shape.state_dim, m = shape.control_dim;
  if (VisitBuiltinModelSizes(n, m, [&]<int NX, int NU>() {
        run.template operator()<GraphTapeDynamics, NX, NU, true>();
      })) {
    return true;
  }
  if (n > kGenericMaxStateDim || m > kGenericMaxControlDim) return false;
  run.template operator()<GraphTapeDynamics, kGenericMaxStateDim, kGenericMaxControlDim, false>();
  return true;
}

// Whether the GPU runs `shape` (else the CUDA backend solves it on CPU threads).
inline bool RunsOnDevice(const ProblemShape& shape) {
  bool runs = false;
  DispatchShape<Executor::kGpu>(shape, [&runs]<class, int, int, bool>() { runs = true; });
  return runs;
}

}  // namespace mpc::core

#endif  // MPC_SOLVER_CORE_DISPATCH_H_
