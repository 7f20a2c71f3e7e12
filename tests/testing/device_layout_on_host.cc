#include "tests/testing/device_layout_on_host.h"

#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "solver/core/dispatch.h"
#include "solver/core/ilqr.h"
#include "solver/core/implicit_backward.h"
#include "solver/core/sampling.h"
#include "solver/cpu/dense_kernels.h"
#include "solver/packing.h"
#include "solver/sampling_packing.h"

namespace mpc::core {

namespace {

// The device's own loops (LoopKernels) with the linearisation a CPU worker takes: a built-in
// model's steps four at a time in vector lanes (LaneLinearization), where a device thread takes
// one step per evaluation of the same dual-number Step. Only the transcendentals' last bits can
// tell the two apart, and the device's libm differs from the host's anyway (cuda_backend_test
// compares the GPU with the CPU to a tolerance); every other step is the kernel's code path, whose
// bits must be the CPU executor's.
struct DeviceKernelsOnHost : LoopKernels, LaneLinearization {
  using LaneLinearization::kLinearizationLanes;
  using LaneLinearization::kLinearizesInLanes;
};

// A batch that samples, in the order the CUDA launcher enqueues its kernels
// (sampling_dispatch.cuh), each kernel's threads in turn.
template <typename S>
void SampleBatchOnHost(const ProblemShape& shape, absl::Span<const Problem* const> members,
                       absl::Span<Solution* const> outputs) {
  const SamplingBatchLayout layout = PlanSamplingBatch(members);
  const int batch = layout.problem.batch;
  std::vector<S> buffer(layout.total_size);
  std::vector<int> elites(layout.elite_size);
  std::vector<ProblemSettings> settings(batch);
  std::vector<ProblemResult> results(batch);
  std::vector<SamplingSettings> sampling_settings(batch);
  std::vector<SamplingResult> sampling_results(batch);
  PackSamplingInputs<S>(members, layout, buffer.data(), settings.data(), sampling_settings.data());
  std::vector<std::int32_t> stop_flags(batch, 0);
  StopFlagsWatch stops(std::vector<const Problem*>(members.begin(), members.end()));
  SamplingBatchView<S> view =
      MakeSamplingBatchView<S>(layout, buffer.data(), elites.data(), settings.data(),
                               results.data(), sampling_settings.data(), sampling_results.data());
  view.problem.stop_flags = stop_flags.data();
  DispatchShape<Executor::kGpu>(shape, [&]<class Dynamics, int NX, int NU, bool kFixedSize>() {
    using Sampler = ProblemSampler<S, Dynamics, NX, NU, kFixedSize>;
    for (int b = 0; b < batch; ++b) Sampler(view, b).Begin();
    for (int iteration = 0; iteration < layout.max_iterations; ++iteration) {
      stops.Raise(stop_flags.data());  // the backend's host, between two kernels
      for (int sample = 0; sample < layout.max_samples; ++sample) {
        for (int b = 0; b < batch; ++b) {
          SampleCostIfSampled<S, Dynamics, NX, NU, kFixedSize>(view, b, iteration, sample);
        }
      }
      for (int b = 0; b < batch; ++b) Sampler(view, b).Update(iteration);
    }
    for (int b = 0; b < batch; ++b) {
      PolishAndFinish<S, Dynamics, NX, NU, kFixedSize, Interleaved, DeviceKernelsOnHost>(view, b);
    }
  });
  UnpackIlqrOutputs<S>(members, layout.problem, buffer.data() + layout.problem.best_x,
                       results.data(), outputs);
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
    if (!RunsOnDevice(shape)) {
      return absl::UnimplementedError(
          absl::StrCat("no device solver for n=", shape.state_dim, ", m=", shape.control_dim));
    }
    if (AnyUsesSampling(members)) {
      SampleBatchOnHost<S>(shape, members, outputs);
      continue;
    }
    const IlqrBatchLayout layout = PlanIlqrBatch(members);
    std::vector<S> buffer(layout.total_size);
    std::vector<ProblemSettings> settings(layout.batch);
    std::vector<ProblemResult> results(layout.batch);
    PackIlqrInputs<S>(members, layout, buffer.data(), settings.data());
    std::vector<std::int32_t> stop_flags(layout.batch, 0);
    StopFlagsWatch stops(members);
    IlqrBatchView<S> view =
        MakeIlqrBatchView<S>(layout, buffer.data(), settings.data(), results.data());
    view.stop_flags = stop_flags.data();
    // What the kernel does with each thread index, for every index in turn; the backend's host
    // raises the stop flags meanwhile.
    DispatchShape<Executor::kGpu>(shape, [&]<class Dynamics, int NX, int NU, bool kFixedSize>() {
      for (int b = 0; b < view.batch; ++b) {
        stops.Raise(stop_flags.data());
        ProblemSolver<S, Dynamics, NX, NU, kFixedSize, Interleaved, DeviceKernelsOnHost>(view, b)
            .Solve();
      }
    });
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
    DispatchShape<Executor::kGpu>(
        members[0]->problem->shape, [&]<class Dynamics, int NX, int NU, bool kFixedSize>() {
          for (int b = 0; b < view.problem.batch; ++b) {
            ProblemBackward<S, Dynamics, NX, NU, kFixedSize, Interleaved, DeviceKernelsOnHost>(view,
                                                                                               b)
                .Run();
          }
        });
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

}  // namespace mpc::core
