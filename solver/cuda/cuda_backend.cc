#include "solver/cuda/cuda_backend.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "solver/core/dispatch.h"
#include "solver/cuda/backward_launch.h"
#include "solver/cuda/cuda_status.h"
#include "solver/cuda/device_buffer.h"
#include "solver/cuda/ilqr_launch.h"
#include "solver/cuda/sampling_launch.h"
#include "solver/gradients.h"
#include "solver/graph/graph_program.h"
#include "solver/packing.h"
#include "solver/sampling_packing.h"

namespace mpc {

using core::BackwardBatchLayout;
using core::BackwardResult;
using core::BackwardSettings;
using core::IlqrBatchLayout;
using core::ProblemResult;
using core::ProblemSettings;

// Solves and backward passes of one shape share it (one batch runs at a time).
struct CudaBackend::ShapeWorkspace {
  DeviceBuffer scalars;  // the whole batch buffer (ilqr_batch.h or backward_batch.h layout)
  DeviceBuffer settings;
  DeviceBuffer results;
  PinnedBuffer host_inputs;   // [0, input_size) of the layout
  PinnedBuffer host_outputs;  // the output range
  PinnedBuffer host_settings;
  PinnedBuffer host_results;
  // Batches that sample (sampling_packing.h): the elite sets and the sampling settings/results.
  DeviceBuffer elites;
  DeviceBuffer sampling_settings;
  DeviceBuffer sampling_results;
  PinnedBuffer host_sampling_settings;
  // [batch] flags the kernels read between iterations (mapped: the host raises them mid-launch).
  PinnedBuffer stop_flags;
  // A dynamics graph solved on the device (DeviceSolvesGraph): its element records and initial
  // buffer (copied in once per batch), and each problem's evaluation buffers (values, tangents).
  DeviceBuffer graph_elements;
  DeviceBuffer graph_initial;
  DeviceBuffer graph_values;
  DeviceBuffer graph_lanes;
};

namespace {

// Shapes whose device and pinned buffers are kept between batches.
constexpr int kMaxCachedShapes = 16;

// One shape's share of a batch.
struct ShapeGroup {
  std::vector<const Problem*> problems;
  std::vector<Solution*> solutions;
  ProblemShape shape;
  IlqrBatchLayout layout;
  // Set when some problem samples: the layout then has the sampling buffers after `layout`'s.
  std::optional<core::SamplingBatchLayout> sampling;
  CudaBackend::ShapeWorkspace* workspace = nullptr;
  std::optional<StopFlagsWatch> stops;  // the problems' interrupts, once enqueued
  // Graph dynamics solved on the device (DeviceSolvesGraph): the group's program (one per shape:
  // the shape carries the graph's fingerprint); null otherwise.
  std::shared_ptr<const GraphProgram> graph;
};

// Whether the device solves `problems` (one shape, graph dynamics) on the graph's element
// records (core::GraphTapeDynamics, the sweeps the CPU's GraphEvaluator runs): a forward iLQR
// solve in double of a discrete-time graph whose tape has no matrix products, without cost or
// constraint graphs, at sizes core::DispatchGraphTape has. The rest of graphs (continuous-time
// graphs, tapes with matrix products, cost and constraint graphs, sampling, float32, and every
// backward pass) is solved by the CPU fallback.
bool DeviceSolvesGraph(const std::vector<const Problem*>& problems, bool use_float32) {
  if (use_float32 || problems.empty() || !problems[0]->shape.dynamics.is_graph()) return false;
  bool dispatched = false;
  core::DispatchGraphTape(problems[0]->shape, [&]<class, int, int, bool>() { dispatched = true; });
  if (!dispatched) return false;
  return std::all_of(problems.begin(), problems.end(), [](const Problem* p) {
    return p->graph != nullptr && !p->graph->elements.empty() && !p->graph->is_cost &&
           p->integrator == Integrator::kDefault && !UsesSampling(p->options.method);
  });
}

// Copies a graph group's element records and initial buffer to the device, sizes each problem's
// evaluation buffers and points `view` at them (enqueued on `stream`; the program, which the
// problems hold, outlives the batch).
absl::Status AttachGraphTape(const ShapeGroup& group, core::IlqrBatchView<double>* view,
                             cudaStream_t stream) {
  const GraphProgram& program = *group.graph;
  CudaBackend::ShapeWorkspace& ws = *group.workspace;
  const std::size_t batch = group.problems.size();
  const std::size_t values = program.initial_buffer.size();
  const std::size_t lanes = values * (program.state_dim + program.control_dim);
  const std::size_t record_bytes = program.elements.size() * sizeof(ElementInstruction);
  for (absl::Status status :
       {ws.graph_elements.Reserve(record_bytes), ws.graph_initial.Reserve(values * sizeof(double)),
        ws.graph_values.Reserve(batch * values * sizeof(double)),
        ws.graph_lanes.Reserve(batch * lanes * sizeof(double))}) {
    if (!status.ok()) return status;
  }
  cudaError_t error =
      cudaMemcpyAsync(ws.graph_elements.as<ElementInstruction>(), program.elements.data(),
                      record_bytes, cudaMemcpyHostToDevice, stream);
  if (error != cudaSuccess) return CudaStatus(error, "copy the graph's records to the device");
  error = cudaMemcpyAsync(ws.graph_initial.as<double>(), program.initial_buffer.data(),
                          values * sizeof(double), cudaMemcpyHostToDevice, stream);
  if (error != cudaSuccess) return CudaStatus(error, "copy the graph's buffer to the device");
  view->graph_tape = program.ElementView();
  view->graph_tape.elements = ws.graph_elements.as<ElementInstruction>();
  view->graph_tape.initial_buffer = ws.graph_initial.as<double>();
  view->graph_values = ws.graph_values.as<double>();
  view->graph_lanes = ws.graph_lanes.as<double>();
  return absl::OkStatus();
}

// How often the host looks at the interrupts of a running launch that has some.
constexpr auto kStopPollInterval = std::chrono::microseconds(200);

// Clears the group's stop flags, raises those whose interrupts already ask to stop, and returns
// the flags' device address.
absl::StatusOr<const volatile std::int32_t*> ArmStopFlags(ShapeGroup& group) {
  CudaBackend::ShapeWorkspace& ws = *group.workspace;
  const std::size_t batch = group.problems.size();
  if (absl::Status status = ws.stop_flags.Reserve(batch * sizeof(std::int32_t)); !status.ok()) {
    return status;
  }
  volatile std::int32_t* flags = ws.stop_flags.as<std::int32_t>();
  for (std::size_t b = 0; b < batch; ++b) flags[b] = 0;
  group.stops.emplace(group.problems);
  group.stops->Raise(flags);
  void* device = nullptr;
  const cudaError_t error = cudaHostGetDevicePointer(&device, ws.stop_flags.as<void>(), 0);
  if (error != cudaSuccess) return CudaStatus(error, "map the stop flags");
  return static_cast<const volatile std::int32_t*>(device);
}

// Waits for the batch on `stream`; meanwhile raises the stop flags of the problems whose callers'
// deadlines near or who left, so that they stop at their next iteration.
absl::Status WaitRaisingStopFlags(cudaStream_t stream, std::vector<ShapeGroup>& groups) {
  const bool watching = std::any_of(groups.begin(), groups.end(), [](const ShapeGroup& group) {
    return group.stops.has_value() && !group.stops->empty();
  });
  if (!watching) return CudaStatus(cudaStreamSynchronize(stream), "run the batch");
  for (;;) {
    const cudaError_t state = cudaStreamQuery(stream);
    if (state != cudaErrorNotReady) return CudaStatus(state, "run the batch");
    for (ShapeGroup& group : groups) {
      if (group.stops.has_value())
        group.stops->Raise(group.workspace->stop_flags.as<std::int32_t>());
    }
    std::this_thread::sleep_for(kStopPollInterval);
  }
}

// The sampling part of EnqueueGroup: its buffers, settings and launch (the iLQR's inputs are
// already on the device).
template <typename S>
absl::Status EnqueueSampling(ShapeGroup& group, const volatile std::int32_t* stop_flags,
                             cudaStream_t stream) {
  const core::SamplingBatchLayout& layout = *group.sampling;
  CudaBackend::ShapeWorkspace& ws = *group.workspace;
  const std::size_t batch = layout.problem.batch;
  for (absl::Status status : {ws.elites.Reserve(layout.elite_size * sizeof(int)),
                              ws.sampling_settings.Reserve(batch * sizeof(core::SamplingSettings)),
                              ws.sampling_results.Reserve(batch * sizeof(core::SamplingResult))}) {
    if (!status.ok()) return status;
  }
  cudaError_t error =
      cudaMemcpyAsync(ws.sampling_settings.as<core::SamplingSettings>(),
                      ws.host_sampling_settings.as<core::SamplingSettings>(),
                      batch * sizeof(core::SamplingSettings), cudaMemcpyHostToDevice, stream);
  if (error != cudaSuccess) return CudaStatus(error, "copy sampling settings to the device");
  core::SamplingBatchView<S> view = core::MakeSamplingBatchView<S>(
      layout, ws.scalars.as<S>(), ws.elites.as<int>(), ws.settings.as<ProblemSettings>(),
      ws.results.as<ProblemResult>(), ws.sampling_settings.as<core::SamplingSettings>(),
      ws.sampling_results.as<core::SamplingResult>());
  view.problem.stop_flags = stop_flags;
  error = core::LaunchSamplingSolve(group.shape, view, layout.max_samples, layout.max_iterations,
                                    stream);
  return CudaStatus(error, "launch the sampling kernels");
}

// Sizes the workspace, packs the group's inputs and enqueues copy in, solve and copy out on
// `stream`. Nothing waits.
template <typename S>
absl::Status EnqueueGroup(ShapeGroup& group, cudaStream_t stream) {
  const IlqrBatchLayout& layout = group.layout;
  CudaBackend::ShapeWorkspace& ws = *group.workspace;
  const std::size_t batch = layout.batch;
  const std::size_t total_size = group.sampling ? group.sampling->total_size : layout.total_size;
  for (absl::Status status :
       {ws.scalars.Reserve(total_size * sizeof(S)),
        ws.settings.Reserve(batch * sizeof(ProblemSettings)),
        ws.results.Reserve(batch * sizeof(ProblemResult)),
        ws.host_inputs.Reserve(layout.input_size * sizeof(S)),
        ws.host_outputs.Reserve(layout.output_size * sizeof(S)),
        ws.host_settings.Reserve(batch * sizeof(ProblemSettings)),
        ws.host_results.Reserve(batch * sizeof(ProblemResult)),
        ws.host_sampling_settings.Reserve(batch * sizeof(core::SamplingSettings))}) {
    if (!status.ok()) return status;
  }
  if (group.sampling) {
    core::PackSamplingInputs<S>(group.problems, *group.sampling, ws.host_inputs.as<S>(),
                                ws.host_settings.as<ProblemSettings>(),
                                ws.host_sampling_settings.as<core::SamplingSettings>());
  } else {
    core::PackIlqrInputs<S>(group.problems, layout, ws.host_inputs.as<S>(),
                            ws.host_settings.as<ProblemSettings>());
  }
  S* device = ws.scalars.as<S>();
  cudaError_t error = cudaMemcpyAsync(device, ws.host_inputs.as<S>(), layout.input_size * sizeof(S),
                                      cudaMemcpyHostToDevice, stream);
  if (error != cudaSuccess) return CudaStatus(error, "copy inputs to the device");
  error = cudaMemcpyAsync(ws.settings.as<ProblemSettings>(), ws.host_settings.as<ProblemSettings>(),
                          batch * sizeof(ProblemSettings), cudaMemcpyHostToDevice, stream);
  if (error != cudaSuccess) return CudaStatus(error, "copy settings to the device");
  const absl::StatusOr<const volatile std::int32_t*> stop_flags = ArmStopFlags(group);
  if (!stop_flags.ok()) return stop_flags.status();
  if (group.sampling) {
    if (absl::Status status = EnqueueSampling<S>(group, *stop_flags, stream); !status.ok()) {
      return status;
    }
  } else {
    core::IlqrBatchView<S> view = core::MakeIlqrBatchView<S>(
        layout, device, ws.settings.as<ProblemSettings>(), ws.results.as<ProblemResult>());
    view.stop_flags = *stop_flags;
    if constexpr (std::is_same_v<S, double>) {
      if (group.graph != nullptr) {
        if (absl::Status status = AttachGraphTape(group, &view, stream); !status.ok()) {
          return status;
        }
      }
    }
    error = core::LaunchIlqrSolve(group.shape, view, stream);
    if (error != cudaSuccess) return CudaStatus(error, "launch the iLQR kernel");
  }
  error = cudaMemcpyAsync(ws.host_outputs.as<S>(), device + layout.best_x,
                          layout.output_size * sizeof(S), cudaMemcpyDeviceToHost, stream);
  if (error != cudaSuccess) return CudaStatus(error, "copy solutions from the device");
  error = cudaMemcpyAsync(ws.host_results.as<ProblemResult>(), ws.results.as<ProblemResult>(),
                          batch * sizeof(ProblemResult), cudaMemcpyDeviceToHost, stream);
  return CudaStatus(error, "copy statuses from the device");
}

template <typename S>
void UnpackGroup(const ShapeGroup& group) {
  const CudaBackend::ShapeWorkspace& ws = *group.workspace;
  core::UnpackIlqrOutputs<S>(group.problems, group.layout, ws.host_outputs.as<S>(),
                             ws.host_results.as<ProblemResult>(), group.solutions);
}

// One shape's share of a backward batch.
struct BackwardGroup {
  std::vector<const BackwardProblem*> problems;
  std::vector<ProblemGradient*> gradients;
  ProblemShape shape;
  BackwardBatchLayout layout;
  CudaBackend::ShapeWorkspace* workspace = nullptr;
};

// As EnqueueGroup, for a backward pass: copy in, backward kernel, copy the gradients out.
template <typename S>
absl::Status EnqueueBackwardGroup(BackwardGroup& group, cudaStream_t stream) {
  const BackwardBatchLayout& layout = group.layout;
  CudaBackend::ShapeWorkspace& ws = *group.workspace;
  const std::size_t batch = group.problems.size();
  for (absl::Status status : {ws.scalars.Reserve(layout.total_size * sizeof(S)),
                              ws.settings.Reserve(batch * sizeof(BackwardSettings)),
                              ws.results.Reserve(batch * sizeof(BackwardResult)),
                              ws.host_inputs.Reserve(layout.input_size * sizeof(S)),
                              ws.host_outputs.Reserve(layout.output_size * sizeof(S)),
                              ws.host_settings.Reserve(batch * sizeof(BackwardSettings)),
                              ws.host_results.Reserve(batch * sizeof(BackwardResult))}) {
    if (!status.ok()) return status;
  }
  core::PackBackwardInputs<S>(group.problems, layout, ws.host_inputs.as<S>(),
                              ws.host_settings.as<BackwardSettings>());
  S* device = ws.scalars.as<S>();
  cudaError_t error = cudaMemcpyAsync(device, ws.host_inputs.as<S>(), layout.input_size * sizeof(S),
                                      cudaMemcpyHostToDevice, stream);
  if (error != cudaSuccess) return CudaStatus(error, "copy backward inputs to the device");
  error =
      cudaMemcpyAsync(ws.settings.as<BackwardSettings>(), ws.host_settings.as<BackwardSettings>(),
                      batch * sizeof(BackwardSettings), cudaMemcpyHostToDevice, stream);
  if (error != cudaSuccess) return CudaStatus(error, "copy backward settings to the device");
  const core::BackwardBatchView<S> view = core::MakeBackwardBatchView<S>(
      layout, device, ws.settings.as<BackwardSettings>(), ws.results.as<BackwardResult>());
  error = core::LaunchBackward(group.shape, view, stream);
  if (error != cudaSuccess) return CudaStatus(error, "launch the backward kernel");
  error = cudaMemcpyAsync(ws.host_outputs.as<S>(), device + layout.grad_x_init,
                          layout.output_size * sizeof(S), cudaMemcpyDeviceToHost, stream);
  if (error != cudaSuccess) return CudaStatus(error, "copy gradients from the device");
  error = cudaMemcpyAsync(ws.host_results.as<BackwardResult>(), ws.results.as<BackwardResult>(),
                          batch * sizeof(BackwardResult), cudaMemcpyDeviceToHost, stream);
  return CudaStatus(error, "copy gradient statuses from the device");
}

template <typename S>
void UnpackBackwardGroup(const BackwardGroup& group) {
  const CudaBackend::ShapeWorkspace& ws = *group.workspace;
  core::UnpackBackwardOutputs<S>(group.problems, group.layout, ws.host_outputs.as<S>(),
                                 ws.host_results.as<BackwardResult>(), group.gradients);
}

}  // namespace

int CudaDeviceCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;
  return count;
}

absl::StatusOr<std::unique_ptr<CudaBackend>> CudaBackend::Create(
    const CudaBackendOptions& options) {
  const int count = CudaDeviceCount();
  if (count == 0) {
    return absl::FailedPreconditionError(
        "backend: cuda was requested but no CUDA device is visible (cudaGetDeviceCount found none; "
        "check the driver and CUDA_VISIBLE_DEVICES, or use --backend=cpu)");
  }
  if (options.device < 0 || options.device >= count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cuda device: ", options.device, " is not one of the ", count, " visible devices"));
  }
  absl::Status status = CudaStatus(cudaSetDevice(options.device), "cudaSetDevice");
  if (!status.ok()) return status;
  cudaDeviceProp properties;
  status =
      CudaStatus(cudaGetDeviceProperties(&properties, options.device), "cudaGetDeviceProperties");
  if (!status.ok()) return status;
  absl::StatusOr<std::unique_ptr<CpuBackend>> cpu = CpuBackend::Create({options.cpu_threads});
  if (!cpu.ok()) return cpu.status();
  cudaStream_t stream = nullptr;
  status =
      CudaStatus(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  if (!status.ok()) return status;
  return std::unique_ptr<CudaBackend>(
      new CudaBackend(options, stream, properties.name, *std::move(cpu)));
}

CudaBackend::CudaBackend(const CudaBackendOptions& options, cudaStream_t stream,
                         std::string device_name, std::unique_ptr<CpuBackend> cpu)
    : options_(options),
      stream_(stream),
      device_name_(std::move(device_name)),
      cpu_(std::move(cpu)) {}

CudaBackend::~CudaBackend() {
  {
    absl::MutexLock lock(&mu_);
    workspaces_.clear();  // frees device memory before the stream goes
  }
  cudaStreamDestroy(stream_);
}

absl::Status CudaBackend::SolveBatch(absl::Span<const Problem* const> problems,
                                     absl::Span<Solution* const> solutions) {
  if (problems.size() != solutions.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SolveBatch: ", problems.size(), " problems but ", solutions.size(), " solutions"));
  }
  absl::MutexLock lock(&mu_);
  absl::Status status = CudaStatus(cudaSetDevice(options_.device), "cudaSetDevice");
  if (!status.ok()) return status;

  const std::vector<std::vector<int>> groups = core::GroupByShape(problems);
  std::vector<ProblemShape> shapes;
  for (const std::vector<int>& indices : groups) shapes.push_back(problems[indices[0]]->shape);
  MakeRoomForShapes(shapes);

  std::vector<ShapeGroup> device_groups;
  std::vector<const Problem*> cpu_problems;
  std::vector<Solution*> cpu_solutions;
  for (const std::vector<int>& indices : groups) {
    const ProblemShape& shape = problems[indices[0]]->shape;
    std::vector<const Problem*> members;
    for (int i : indices) members.push_back(problems[i]);
    const bool graph_on_device = DeviceSolvesGraph(members, options_.use_float32);
    if (!core::RunsOnDevice(shape) && !graph_on_device) {
      for (int i : indices) {
        cpu_problems.push_back(problems[i]);
        cpu_solutions.push_back(solutions[i]);
      }
      continue;
    }
    ShapeGroup& group = device_groups.emplace_back();
    group.problems = std::move(members);
    for (int i : indices) group.solutions.push_back(solutions[i]);
    group.shape = shape;
    if (graph_on_device) group.graph = problems[indices[0]]->graph;
    if (core::AnyUsesSampling(group.problems)) {
      group.sampling = core::PlanSamplingBatch(group.problems);
      group.layout = group.sampling->problem;
    } else {
      group.layout = core::PlanIlqrBatch(group.problems);
    }
    group.workspace = WorkspaceFor(shape);
  }

  for (ShapeGroup& group : device_groups) {
    status = options_.use_float32 ? EnqueueGroup<float>(group, stream_)
                                  : EnqueueGroup<double>(group, stream_);
    if (!status.ok()) break;
  }
  // Shapes without a device solver run on the CPU while the device works.
  absl::Status cpu_status = absl::OkStatus();
  if (!cpu_problems.empty()) cpu_status = cpu_->SolveBatch(cpu_problems, cpu_solutions);
  // The one synchronisation of the batch (also after a failed enqueue: nothing may still be
  // writing into the pinned buffers when this returns); the interrupts are watched meanwhile.
  const absl::Status sync = WaitRaisingStopFlags(stream_, device_groups);
  if (!status.ok()) return status;
  if (!sync.ok()) return sync;
  if (!cpu_status.ok()) return cpu_status;
  std::vector<const Problem*> device_problems;
  std::vector<Solution*> device_solutions;
  for (const ShapeGroup& group : device_groups) {
    if (options_.use_float32) {
      UnpackGroup<float>(group);
    } else {
      UnpackGroup<double>(group);
    }
    device_problems.insert(device_problems.end(), group.problems.begin(), group.problems.end());
    device_solutions.insert(device_solutions.end(), group.solutions.begin(), group.solutions.end());
  }
  // The Jacobians the options ask for, on the CPU pool after the device solve (cpu_->SolveBatch
  // computed those of its own problems); still inside this launch.
  cpu_->ComputeJacobians(device_problems, device_solutions);
  return absl::OkStatus();
}

void CudaBackend::MakeRoomForShapes(const std::vector<ProblemShape>& shapes) {
  // Device memory stays bounded whatever shapes arrive: past kMaxCachedShapes the cache starts
  // afresh (nothing is in flight between batches, so freeing here waits for nothing).
  int new_shapes = 0;
  for (const ProblemShape& shape : shapes) {
    if (!workspaces_.contains(shape)) ++new_shapes;
  }
  if (static_cast<int>(workspaces_.size()) + new_shapes > kMaxCachedShapes) workspaces_.clear();
}

CudaBackend::ShapeWorkspace* CudaBackend::WorkspaceFor(const ProblemShape& shape) {
  std::unique_ptr<ShapeWorkspace>& workspace = workspaces_[shape];
  if (workspace == nullptr) workspace = std::make_unique<ShapeWorkspace>();
  return workspace.get();
}

absl::Status CudaBackend::BackwardBatch(absl::Span<const BackwardProblem* const> problems,
                                        absl::Span<ProblemGradient* const> gradients) {
  // The device pass reads every array by the problem's shape: sizes are checked first.
  if (absl::Status status = ValidateBackwardBatch(problems, gradients.size()); !status.ok()) {
    return status;
  }
  absl::MutexLock lock(&mu_);
  absl::Status status = CudaStatus(cudaSetDevice(options_.device), "cudaSetDevice");
  if (!status.ok()) return status;

  // What the device computes, grouped by shape; the rest (shapes without a device kernel, graph
  // dynamics) goes to the CPU.
  std::vector<const BackwardProblem*> cpu_problems;
  std::vector<ProblemGradient*> cpu_gradients;
  std::vector<const Problem*> device_problems;
  std::vector<int> device_indices;
  for (int i = 0; i < static_cast<int>(problems.size()); ++i) {
    // As on the CPU: nothing is launched for a caller that is gone (the device pass of one
    // problem has no iterations to stop between).
    if (StopRequestedBefore(*problems[i])) {
      gradients[i]->status = GradientStatus::kStopped;
      continue;
    }
    if (core::DeviceSupportsBackward(*problems[i])) {
      device_problems.push_back(problems[i]->problem);
      device_indices.push_back(i);
    } else {
      cpu_problems.push_back(problems[i]);
      cpu_gradients.push_back(gradients[i]);
    }
  }
  const std::vector<std::vector<int>> groups = core::GroupByShape(device_problems);
  std::vector<ProblemShape> shapes;
  for (const std::vector<int>& members : groups)
    shapes.push_back(device_problems[members[0]]->shape);
  MakeRoomForShapes(shapes);
  std::vector<BackwardGroup> device_groups(groups.size());
  for (std::size_t g = 0; g < groups.size(); ++g) {
    BackwardGroup& group = device_groups[g];
    for (int member : groups[g]) {
      group.problems.push_back(problems[device_indices[member]]);
      group.gradients.push_back(gradients[device_indices[member]]);
    }
    group.shape = shapes[g];
    group.layout = core::PlanBackwardBatch(group.problems);
    group.workspace = WorkspaceFor(shapes[g]);
  }

  for (BackwardGroup& group : device_groups) {
    status = options_.use_float32 ? EnqueueBackwardGroup<float>(group, stream_)
                                  : EnqueueBackwardGroup<double>(group, stream_);
    if (!status.ok()) break;
  }
  absl::Status cpu_status = absl::OkStatus();
  if (!cpu_problems.empty()) cpu_status = cpu_->BackwardBatch(cpu_problems, cpu_gradients);
  const absl::Status sync = CudaStatus(cudaStreamSynchronize(stream_), "run the backward batch");
  if (!status.ok()) return status;
  if (!sync.ok()) return sync;
  if (!cpu_status.ok()) return cpu_status;
  for (const BackwardGroup& group : device_groups) {
    if (options_.use_float32) {
      UnpackBackwardGroup<float>(group);
    } else {
      UnpackBackwardGroup<double>(group);
    }
    for (std::size_t i = 0; i < group.problems.size(); ++i) {
      const BackwardProblem& problem = *group.problems[i];
      MarkUnlessSolution(*problem.problem, problem.x, problem.u, group.gradients[i]);
    }
  }
  return absl::OkStatus();
}

}  // namespace mpc
