#include "solver/cuda/host_emulation.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "solver/cuda/backward_batch.h"
#include "solver/cuda/backward_device.h"
#include "solver/cuda/ilqr_batch.h"
#include "solver/cuda/ilqr_device.h"
#include "solver/models/cartpole.h"
#include "solver/models/pendulum.h"

namespace mpc::device_ilqr {
namespace {

// What the kernel does with its thread index, for every index in turn.
template <typename S, class Dynamics, int NX, int NU, bool kFixedSize = true>
void RunEveryProblem(const IlqrBatchView<S>& view) {
  for (int b = 0; b < view.batch; ++b) {
    ProblemSolver<S, Dynamics, NX, NU, kFixedSize>(view, b).Solve();
  }
}

template <typename S, class Dynamics, int NX, int NU, bool kFixedSize = true>
void RunEveryBackward(const BackwardBatchView<S>& view) {
  for (int b = 0; b < view.problem.batch; ++b) {
    ProblemBackward<S, Dynamics, NX, NU, kFixedSize>(view, b).Run();
  }
}

}  // namespace

template <typename S>
absl::Status SolveBatchOnHost(absl::Span<const Problem* const> problems,
                              absl::Span<Solution* const> solutions) {
  if (problems.size() != solutions.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SolveBatchOnHost: ", problems.size(), " problems but ", solutions.size(), " solutions"));
  }
  for (const std::vector<int>& group : GroupByShape(problems)) {
    std::vector<const Problem*> members;
    std::vector<Solution*> outputs;
    for (int i : group) {
      members.push_back(problems[i]);
      outputs.push_back(solutions[i]);
    }
    const ProblemShape& shape = members[0]->shape;
    const DeviceKernel kernel = SelectDeviceKernel(shape);
    if (kernel == DeviceKernel::kNone) {
      return absl::UnimplementedError(
          absl::StrCat("no device solver for n=", shape.state_dim, ", m=", shape.control_dim));
    }
    const IlqrBatchLayout layout = PlanIlqrBatch(members);
    std::vector<S> buffer(layout.total_size);
    std::vector<ProblemSettings> settings(layout.batch);
    std::vector<ProblemResult> results(layout.batch);
    PackIlqrInputs<S>(members, layout, buffer.data(), settings.data());
    const IlqrBatchView<S> view =
        MakeIlqrBatchView<S>(layout, buffer.data(), settings.data(), results.data());
    switch (kernel) {
      case DeviceKernel::kPendulum:
        RunEveryProblem<S, ModelDynamics<PendulumModel>, 3, 1>(view);
        break;
      case DeviceKernel::kCartpole:
        RunEveryProblem<S, ModelDynamics<CartpoleModel>, 5, 1>(view);
        break;
      case DeviceKernel::kLinear8x4:
        RunEveryProblem<S, LinearDynamics, 8, 4>(view);
        break;
      case DeviceKernel::kLinearGeneric:
        RunEveryProblem<S, LinearDynamics, kGenericMaxStateDim, kGenericMaxControlDim, false>(view);
        break;
      case DeviceKernel::kNone:
        break;
    }
    UnpackIlqrOutputs<S>(members, layout, buffer.data() + layout.best_x, results.data(), outputs);
  }
  return absl::OkStatus();
}

template <typename S>
absl::Status BackwardBatchOnHost(absl::Span<const BackwardProblem* const> problems,
                                 absl::Span<ProblemGradient* const> gradients) {
  if (problems.size() != gradients.size()) {
    return absl::InvalidArgumentError(absl::StrCat("BackwardBatchOnHost: ", problems.size(),
                                                   " problems but ", gradients.size(),
                                                   " gradients"));
  }
  std::vector<const Problem*> of_problems;
  for (const BackwardProblem* bp : problems) {
    if (!DeviceSupportsBackward(*bp)) {
      const ProblemShape& shape = bp->problem->shape;
      return absl::UnimplementedError(
          absl::StrCat("no device backward pass for n=", shape.state_dim, ", m=", shape.control_dim,
                       " in mode ", GradientModeName(bp->mode)));
    }
    of_problems.push_back(bp->problem);
  }
  for (const std::vector<int>& group : GroupByShape(of_problems)) {
    std::vector<const BackwardProblem*> members;
    std::vector<ProblemGradient*> outputs;
    for (int i : group) {
      members.push_back(problems[i]);
      outputs.push_back(gradients[i]);
    }
    const BackwardBatchLayout layout = PlanBackwardBatch(members);
    std::vector<S> buffer(layout.total_size);
    std::vector<BackwardSettings> settings(members.size());
    std::vector<BackwardResult> results(members.size());
    PackBackwardInputs<S>(members, layout, buffer.data(), settings.data());
    const BackwardBatchView<S> view =
        MakeBackwardBatchView<S>(layout, buffer.data(), settings.data(), results.data());
    switch (SelectDeviceKernel(members[0]->problem->shape)) {
      case DeviceKernel::kPendulum:
        RunEveryBackward<S, ModelDynamics<PendulumModel>, 3, 1>(view);
        break;
      case DeviceKernel::kCartpole:
        RunEveryBackward<S, ModelDynamics<CartpoleModel>, 5, 1>(view);
        break;
      case DeviceKernel::kLinear8x4:
        RunEveryBackward<S, LinearDynamics, 8, 4>(view);
        break;
      case DeviceKernel::kLinearGeneric:
        RunEveryBackward<S, LinearDynamics, kGenericMaxStateDim, kGenericMaxControlDim, false>(
            view);
        break;
      case DeviceKernel::kNone:
        break;
    }
    UnpackBackwardOutputs<S>(members, layout, buffer.data() + layout.grad_x_init, results.data(),
                             outputs);
  }
  return absl::OkStatus();
}

template absl::Status SolveBatchOnHost<double>(absl::Span<const Problem* const>,
                                               absl::Span<Solution* const>);
template absl::Status SolveBatchOnHost<float>(absl::Span<const Problem* const>,
                                              absl::Span<Solution* const>);

template absl::Status BackwardBatchOnHost<double>(absl::Span<const BackwardProblem* const>,
                                                  absl::Span<ProblemGradient* const>);
template absl::Status BackwardBatchOnHost<float>(absl::Span<const BackwardProblem* const>,
                                                 absl::Span<ProblemGradient* const>);

}  // namespace mpc::device_ilqr
