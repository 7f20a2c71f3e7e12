#include "solver/cpu/core_executor.h"

#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "solver/core/dispatch.h"
#include "solver/core/ilqr.h"
#include "solver/core/implicit_backward.h"
#include "solver/core/sampling.h"
#include "solver/core/scratch.h"
#include "solver/cpu/dense_kernels.h"
#include "solver/cpu/double_lanes.h"
#include "solver/cpu/implicit_backward.h"
#include "solver/graph/graph_program.h"
#include "solver/packing.h"
#include "solver/sampling_packing.h"

namespace mpc {
namespace {

using core::Contiguous;

// Runs `run` with the compile-time sizes of `shape` (core/dispatch.h); a CPU worker runs every
// shape (linear ones without a specialisation with run-time sizes). A dynamics graph (CPU only)
// with the (n, m) of a built-in model runs at that model's compile-time sizes, so a model written
// as a graph gets the built-in model's fixed-size kernels; other graphs run with run-time sizes.
template <class Run>
void DispatchSizes(const ProblemShape& shape, CoreSizes sizes, Run&& run) {
  if (shape.dynamics.is_graph() && sizes == CoreSizes::kSpecialised &&
      core::VisitBuiltinModelSizes(shape.state_dim, shape.control_dim, [&]<int NX, int NU>() {
        run.template operator()<GraphDynamics, NX, NU, true>();
      })) {
    return;
  }
  core::DispatchShape<core::Executor::kCpu>(
      shape, run,
      sizes == CoreSizes::kSpecialised ? core::Sizes::kSpecialised : core::Sizes::kRunTime);
}

// The worker's evaluator of a graph problem's program, made on first use (a worker's cache is per
// shape, and a graph's shape carries its fingerprint); nullptr for other dynamics.
GraphEvaluator* EvaluatorFor(const Problem& problem, std::unique_ptr<GraphEvaluator>* evaluator) {
  if (problem.graph == nullptr) return nullptr;
  if (*evaluator == nullptr) *evaluator = std::make_unique<GraphEvaluator>(problem.graph);
  return evaluator->get();
}

// The worker's evaluator of a problem's cost or constraint graph, made on first use (the shape
// fixes the graph); nullptr without one.
GraphEvaluator* EvaluatorOf(const std::shared_ptr<const GraphProgram>& graph,
                            std::unique_ptr<GraphEvaluator>* evaluator) {
  if (graph == nullptr) return nullptr;
  if (*evaluator == nullptr) *evaluator = std::make_unique<GraphEvaluator>(graph);
  return evaluator->get();
}

// A worker's evaluators of a shape's graphs (dynamics, stage and terminal cost, constraints), each
// made on first use; Attach points a problem's view at them.
class WorkerGraphs {
 public:
  void Attach(const Problem& problem, core::IlqrBatchView<double>* view) {
    view->graph = EvaluatorFor(problem, &dynamics_);
    view->cost_graph = EvaluatorOf(problem.cost_graph, &cost_);
    view->terminal_cost_graph = EvaluatorOf(problem.terminal_cost_graph, &terminal_cost_);
    view->constraint_graph = EvaluatorOf(problem.constraint_graph, &constraint_);
  }

 private:
  std::unique_ptr<GraphEvaluator> dynamics_;
  std::unique_ptr<GraphEvaluator> cost_;
  std::unique_ptr<GraphEvaluator> terminal_cost_;
  std::unique_ptr<GraphEvaluator> constraint_;
};

// While it lives, a dynamics graph's evaluator keeps `theta` (problem 0's packed parameters, which
// do not change while the problem runs) in its buffers between evaluations
// (GraphEvaluator::BindParameters). Nothing without a graph.
class ParameterBinding {
 public:
  ParameterBinding(GraphEvaluator* evaluator, const double* theta) : evaluator_(evaluator) {
    if (evaluator_ != nullptr) evaluator_->BindParameters(theta);
  }
  ~ParameterBinding() {
    if (evaluator_ != nullptr) evaluator_->UnbindParameters();
  }
  ParameterBinding(const ParameterBinding&) = delete;
  ParameterBinding& operator=(const ParameterBinding&) = delete;

 private:
  GraphEvaluator* const evaluator_;
};

// Lets the core ask the problem's interrupt (if any) between iterations; `watch` outlives the
// solve.
void WatchInterrupt(const Problem& problem, std::optional<InterruptWatch>* watch,
                    core::IlqrBatchView<double>* view) {
  if (problem.interrupt == nullptr) return;
  watch->emplace(problem.interrupt);
  view->should_stop = [](void* context, int /*problem*/) {
    return static_cast<InterruptWatch*>(context)->StopRequested();
  };
  view->stop_context = &**watch;
}

// The scalar a worker rolls samples (core/sampling.h) and line-search trials (core/ilqr.h) out
// with: four at once (double_lanes.h) where the sizes are compile-time and neither the dynamics
// nor the cost is a graph (HasCostGraph; graphs are interpreted one evaluation at a time); else
// one. A function of the shape alone, so a problem's rollouts are grouped the same way alone or in
// any batch.
bool HasCostGraph(const ProblemShape& shape) {
  return shape.has_cost_graph() || shape.has_terminal_cost_graph();
}
template <class Dynamics, int NX, int NU, bool kFixedSize>
using RolloutScalar = std::conditional_t<kFixedSize && NX != core::kDynamic &&
                                             NU != core::kDynamic && !Dynamics::kIsGraph,
                                         DoubleLanes, double>;

// Grows `buffer` to at least `size` scalars (never shrinks, so a worker's steady state allocates
// nothing).
// A worker's buffers, aligned as Eigen's vectorised kernels want them (EIGEN_MAX_ALIGN_BYTES):
// the dense kernels (dense_kernels.h) peel and vectorise by the operands' addresses, so with
// buffers at whatever address the heap gives, one problem's bits would depend on the heap's state.
using WorkerBuffer = std::vector<double, Eigen::aligned_allocator<double>>;

void Reserve(WorkerBuffer* buffer, std::size_t size) {
  if (buffer->size() < size) buffer->resize(size);
}

class CoreShapeSolver final : public ShapeSolver {
 public:
  CoreShapeSolver(const ProblemShape& shape, CoreSizes sizes, SampleRollouts rollouts)
      : shape_(shape),
        sizes_(sizes),
        rollouts_(rollouts),
        scratch_(
            static_cast<std::size_t>(core::ScratchCapacity(shape.state_dim, shape.control_dim))) {}

  const ProblemShape& shape() const override { return shape_; }

  void Solve(const Problem& problem, Solution* solution) override {
    if (UsesSampling(problem.options.method)) {
      SolveWithSampling(problem, solution);
      return;
    }
    const Problem* const problems[1] = {&problem};
    Solution* const solutions[1] = {solution};
    const core::IlqrBatchLayout layout = core::PlanIlqrBatch(problems);
    Reserve(&buffer_, layout.total_size);
    core::PackIlqrInputs<double>(problems, layout, buffer_.data(), &settings_);
    core::IlqrBatchView<double> view =
        core::MakeIlqrBatchView<double>(layout, buffer_.data(), &settings_, &result_);
    graphs_.Attach(problem, &view);
    const ParameterBinding parameters(view.graph, view.params);
    std::optional<InterruptWatch> watch;
    WatchInterrupt(problem, &watch, &view);
    core::ScratchArena<double> arena(scratch_.data(), static_cast<long long>(scratch_.size()));
    DispatchSizes(shape_, sizes_, [&]<class Dynamics, int NX, int NU, bool kFixedSize>() {
      using Trial = RolloutScalar<Dynamics, NX, NU, kFixedSize>;
      if (rollouts_ == SampleRollouts::kLanes && !HasCostGraph(shape_)) {
        view.trial_lanes = TrialLanes(core::kRolloutLanes<Trial>);
        core::ProblemSolver<double, Dynamics, NX, NU, kFixedSize, Contiguous, DenseKernels, Trial>(
            view, 0, &arena)
            .Solve();
      } else {
        core::ProblemSolver<double, Dynamics, NX, NU, kFixedSize, Contiguous, DenseKernels>(view, 0,
                                                                                            &arena)
            .Solve();
      }
    });
    core::UnpackIlqrOutputs<double>(problems, layout, buffer_.data() + layout.best_x, &result_,
                                    solutions);
  }

 private:
  // The buffer of `lanes` line-search trials side by side (IlqrBatchView::trial_lanes); null for
  // one lane.
  double* TrialLanes(int lanes) {
    if (lanes == 1) return nullptr;
    Reserve(&trial_lanes_, static_cast<std::size_t>(shape_.horizon) * shape_.tau_dim() * lanes);
    return trial_lanes_.data();
  }

  // CEM or MPPI (core/sampling.h), then the iLQR from its plan; the same buffers grown for the
  // sampling arrays, so a worker's steady state allocates nothing here either.
  void SolveWithSampling(const Problem& problem, Solution* solution) {
    const Problem* const problems[1] = {&problem};
    Solution* const solutions[1] = {solution};
    const core::SamplingBatchLayout layout = core::PlanSamplingBatch(problems);
    Reserve(&buffer_, layout.total_size);
    if (elites_.size() < layout.elite_size) elites_.resize(layout.elite_size);
    core::PackSamplingInputs<double>(problems, layout, buffer_.data(), &settings_,
                                     &sampling_settings_);
    core::SamplingBatchView<double> view =
        core::MakeSamplingBatchView<double>(layout, buffer_.data(), elites_.data(), &settings_,
                                            &result_, &sampling_settings_, &sampling_result_);
    graphs_.Attach(problem, &view.problem);
    const ParameterBinding parameters(view.problem.graph, view.problem.params);
    std::optional<InterruptWatch> watch;
    WatchInterrupt(problem, &watch, &view.problem);
    core::ScratchArena<double> arena(scratch_.data(), static_cast<long long>(scratch_.size()));
    DispatchSizes(shape_, sizes_, [&]<class Dynamics, int NX, int NU, bool kFixedSize>() {
      if (rollouts_ == SampleRollouts::kLanes && !HasCostGraph(shape_)) {
        using Rollout = RolloutScalar<Dynamics, NX, NU, kFixedSize>;
        view.problem.trial_lanes = TrialLanes(core::kRolloutLanes<Rollout>);
        core::SolveWithSampling<double, Dynamics, NX, NU, kFixedSize, Contiguous, DenseKernels,
                                Rollout>(view, 0, &arena);
      } else {
        core::SolveWithSampling<double, Dynamics, NX, NU, kFixedSize, Contiguous, DenseKernels>(
            view, 0, &arena);
      }
    });
    core::UnpackIlqrOutputs<double>(problems, layout.problem,
                                    buffer_.data() + layout.problem.best_x, &result_, solutions);
  }

  const ProblemShape shape_;
  const CoreSizes sizes_;
  const SampleRollouts rollouts_;
  WorkerBuffer buffer_;
  WorkerBuffer scratch_;
  WorkerBuffer trial_lanes_;
  std::vector<int> elites_;
  core::ProblemSettings settings_{};
  core::ProblemResult result_{};
  WorkerGraphs graphs_;
  core::SamplingSettings sampling_settings_{};
  core::SamplingResult sampling_result_{};
};

class CoreShapeBackward final : public ShapeBackward {
 public:
  CoreShapeBackward(const ProblemShape& shape, CoreSizes sizes)
      : shape_(shape),
        sizes_(sizes),
        scratch_(
            static_cast<std::size_t>(core::ScratchCapacity(shape.state_dim, shape.control_dim))) {}

  const ProblemShape& shape() const override { return shape_; }

  void Backward(const BackwardProblem& problem, ProblemGradient* gradient) override {
    const BackwardProblem* const problems[1] = {&problem};
    ProblemGradient* const gradients[1] = {gradient};
    const core::BackwardBatchLayout layout = core::PlanBackwardBatch(problems);
    const core::BackwardBatchView<double> view = Pack(problems, layout);
    Run(view, [](auto&& backward) { backward.Run(); });
    core::UnpackBackwardOutputs<double>(problems, layout, buffer_.data() + layout.grad_x_init,
                                        &result_, gradients);
  }

  void Jacobians(const Problem& problem, absl::Span<const double> x, absl::Span<const double> u,
                 const JacobianRequest& request, SolutionJacobians* jacobians) override {
    BackwardProblem point;
    point.problem = &problem;
    point.x.assign(x.begin(), x.end());
    point.u.assign(u.begin(), u.end());
    point.mode = request.mode;
    const BackwardProblem* const problems[1] = {&point};
    const core::BackwardBatchLayout layout =
        core::PlanBackwardBatch(problems, {.x_init = request.x_init, .params = request.params});
    const core::BackwardBatchView<double> view = Pack(problems, layout);
    Run(view, [](auto&& backward) { backward.RunJacobians(); });
    core::UnpackJacobianOutputs<double>(layout, buffer_.data() + layout.grad_x_init, &result_, 0,
                                        &jacobians->x_init, &jacobians->params,
                                        &jacobians->diagnostics);
  }

 private:
  core::BackwardBatchView<double> Pack(absl::Span<const BackwardProblem* const> problems,
                                       const core::BackwardBatchLayout& layout) {
    Reserve(&buffer_, layout.total_size);
    core::PackBackwardInputs<double>(problems, layout, buffer_.data(), &settings_);
    core::BackwardBatchView<double> view =
        core::MakeBackwardBatchView<double>(layout, buffer_.data(), &settings_, &result_);
    graphs_.Attach(*problems[0]->problem, &view.problem);
    return view;
  }

  // Runs pass(ProblemBackward&) on problem 0 of `view` with this shape's sizes.
  template <class Pass>
  void Run(const core::BackwardBatchView<double>& view, Pass&& pass) {
    const ParameterBinding parameters(view.problem.graph, view.problem.params);
    core::ScratchArena<double> arena(scratch_.data(), static_cast<long long>(scratch_.size()));
    DispatchSizes(shape_, sizes_, [&]<class Dynamics, int NX, int NU, bool kFixedSize>() {
      pass(core::ProblemBackward<double, Dynamics, NX, NU, kFixedSize, Contiguous, DenseKernels>(
          view, 0, &arena));
    });
  }

  const ProblemShape shape_;
  const CoreSizes sizes_;
  WorkerBuffer buffer_;
  WorkerBuffer scratch_;
  core::BackwardSettings settings_{};
  core::BackwardResult result_{};
  WorkerGraphs graphs_;
};

}  // namespace

std::unique_ptr<ShapeSolver> MakeCoreShapeSolver(const ProblemShape& shape, CoreSizes sizes,
                                                 SampleRollouts rollouts) {
  return std::make_unique<CoreShapeSolver>(shape, sizes, rollouts);
}

std::unique_ptr<ShapeBackward> MakeCoreShapeBackward(const ProblemShape& shape, CoreSizes sizes) {
  return std::make_unique<CoreShapeBackward>(shape, sizes);
}

}  // namespace mpc
