#ifndef MPC_SOLVER_MODELS_DYNAMICS_TAGS_H_
#define MPC_SOLVER_MODELS_DYNAMICS_TAGS_H_

// The dynamics the solver templates are instantiated with, shared by the CPU shape templates
// (solver/cpu/) and the device code (solver/cuda/). Plain types: nvcc translation units include
// this.

namespace mpc {

// Linear dynamics x' = A_t x + B_t u + f_t, read from the problem's transition and offset.
struct LinearDynamics {
  static constexpr bool kIsLinear = true;
  static constexpr bool kIsGraph = false;
  static constexpr bool kIsGraphTape = false;
  static constexpr int kParamDim = 0;
};

// A built-in model; Jacobians come from forward-mode AD of the model's templated Step
// (model_derivatives.h).
template <class Model>
struct ModelDynamics {
  static constexpr bool kIsLinear = false;
  static constexpr bool kIsGraph = false;
  static constexpr bool kIsGraphTape = false;
  static constexpr int kParamDim = Model::kParamDim;
  using ModelType = Model;
};

// A dynamics graph (DESIGN §12, solver/graph/graph_program.h): run-time sizes and parameter count,
// host only. The core calls the batch's GraphEvaluator (IlqrBatchView::graph) for the step, its
// Jacobians (reverse sweeps) and the parameter products of the backward pass.
struct GraphDynamics {
  static constexpr bool kIsLinear = false;
  static constexpr bool kIsGraph = true;
  static constexpr bool kIsGraphTape = false;
  static constexpr int kParamDim = 0;  // the graph's count is known at run time only
};

// A discrete-time dynamics graph whose tape has no matrix products, run by the core itself on the
// graph's element records (solver/graph/element_sweeps.h, the same sweeps the host's
// GraphEvaluator runs) over IlqrBatchView::graph_tape and each problem's evaluation buffers:
// what the device runs for a forward solve. Not a kIsGraph: nothing of the host's evaluator is
// used (the backward pass, continuous-time graphs, MLP tapes and cost graphs stay there).
struct GraphTapeDynamics {
  static constexpr bool kIsLinear = false;
  static constexpr bool kIsGraph = false;
  static constexpr bool kIsGraphTape = true;
  static constexpr int kParamDim = 0;  // the graph's count is known at run time only
};

}  // namespace mpc

#endif  // MPC_SOLVER_MODELS_DYNAMICS_TAGS_H_
