#include "solver/cuda/cuda_backend.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "solver/cuda/cuda_status.h"
#include "solver/cuda/device_buffer.h"
#include "solver/cuda/ilqr_batch.h"
#include "solver/cuda/ilqr_launch.h"

namespace mpc {

using device_ilqr::DeviceKernel;
using device_ilqr::IlqrBatchLayout;
using device_ilqr::ProblemResult;
using device_ilqr::ProblemSettings;

struct CudaBackend::ShapeWorkspace {
  DeviceBuffer scalars;  // the whole batch buffer (ilqr_batch.h layout)
  DeviceBuffer settings;
  DeviceBuffer results;
  PinnedBuffer host_inputs;   // [0, input_size) of the layout
  PinnedBuffer host_outputs;  // the output range
  PinnedBuffer host_settings;
  PinnedBuffer host_results;
};

namespace {

// Shapes whose device and pinned buffers are kept between batches.
constexpr int kMaxCachedShapes = 16;

// One shape's share of a batch.
struct ShapeGroup {
  std::vector<const Problem*> problems;
  std::vector<Solution*> solutions;
  DeviceKernel kernel = DeviceKernel::kNone;
  IlqrBatchLayout layout;
  CudaBackend::ShapeWorkspace* workspace = nullptr;
};

// Sizes the workspace, packs the group's inputs and enqueues copy in, solve and copy out on
// `stream`. Nothing waits.
template <typename S>
absl::Status EnqueueGroup(ShapeGroup& group, cudaStream_t stream) {
  const IlqrBatchLayout& layout = group.layout;
  CudaBackend::ShapeWorkspace& ws = *group.workspace;
  const std::size_t batch = layout.batch;
  for (absl::Status status : {ws.scalars.Reserve(layout.total_size * sizeof(S)),
                              ws.settings.Reserve(batch * sizeof(ProblemSettings)),
                              ws.results.Reserve(batch * sizeof(ProblemResult)),
                              ws.host_inputs.Reserve(layout.input_size * sizeof(S)),
                              ws.host_outputs.Reserve(layout.output_size * sizeof(S)),
                              ws.host_settings.Reserve(batch * sizeof(ProblemSettings)),
                              ws.host_results.Reserve(batch * sizeof(ProblemResult))}) {
    if (!status.ok()) return status;
  }
  device_ilqr::PackIlqrInputs<S>(group.problems, layout, ws.host_inputs.as<S>(),
                                 ws.host_settings.as<ProblemSettings>());
  S* device = ws.scalars.as<S>();
  cudaError_t error = cudaMemcpyAsync(device, ws.host_inputs.as<S>(), layout.input_size * sizeof(S),
                                      cudaMemcpyHostToDevice, stream);
  if (error != cudaSuccess) return CudaStatus(error, "copy inputs to the device");
  error = cudaMemcpyAsync(ws.settings.as<ProblemSettings>(), ws.host_settings.as<ProblemSettings>(),
                          batch * sizeof(ProblemSettings), cudaMemcpyHostToDevice, stream);
  if (error != cudaSuccess) return CudaStatus(error, "copy settings to the device");
  const device_ilqr::IlqrBatchView<S> view = device_ilqr::MakeIlqrBatchView<S>(
      layout, device, ws.settings.as<ProblemSettings>(), ws.results.as<ProblemResult>());
  error = device_ilqr::LaunchIlqrSolve(group.kernel, view, stream);
  if (error != cudaSuccess) return CudaStatus(error, "launch the iLQR kernel");
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
  device_ilqr::UnpackIlqrOutputs<S>(group.problems, group.layout, ws.host_outputs.as<S>(),
                                    ws.host_results.as<ProblemResult>(), group.solutions);
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

  const std::vector<std::vector<int>> groups = device_ilqr::GroupByShape(problems);
  // Device memory stays bounded whatever shapes arrive: past kMaxCachedShapes the cache starts
  // afresh (nothing is in flight between batches, so freeing here waits for nothing).
  int new_shapes = 0;
  for (const std::vector<int>& indices : groups) {
    if (!workspaces_.contains(problems[indices[0]]->shape)) ++new_shapes;
  }
  if (static_cast<int>(workspaces_.size()) + new_shapes > kMaxCachedShapes) workspaces_.clear();

  std::vector<ShapeGroup> device_groups;
  std::vector<const Problem*> cpu_problems;
  std::vector<Solution*> cpu_solutions;
  for (const std::vector<int>& indices : groups) {
    const ProblemShape& shape = problems[indices[0]]->shape;
    const DeviceKernel kernel = device_ilqr::SelectDeviceKernel(shape);
    if (kernel == DeviceKernel::kNone) {
      for (int i : indices) {
        cpu_problems.push_back(problems[i]);
        cpu_solutions.push_back(solutions[i]);
      }
      continue;
    }
    ShapeGroup& group = device_groups.emplace_back();
    for (int i : indices) {
      group.problems.push_back(problems[i]);
      group.solutions.push_back(solutions[i]);
    }
    group.kernel = kernel;
    group.layout = device_ilqr::PlanIlqrBatch(group.problems);
    std::unique_ptr<ShapeWorkspace>& workspace = workspaces_[shape];
    if (workspace == nullptr) workspace = std::make_unique<ShapeWorkspace>();
    group.workspace = workspace.get();
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
  // writing into the pinned buffers when this returns).
  const absl::Status sync = CudaStatus(cudaStreamSynchronize(stream_), "run the batch");
  if (!status.ok()) return status;
  if (!sync.ok()) return sync;
  if (!cpu_status.ok()) return cpu_status;
  for (const ShapeGroup& group : device_groups) {
    if (options_.use_float32) {
      UnpackGroup<float>(group);
    } else {
      UnpackGroup<double>(group);
    }
  }
  return absl::OkStatus();
}

absl::Status CudaBackend::BackwardBatch(absl::Span<const BackwardProblem* const> problems,
                                        absl::Span<ProblemGradient* const> gradients) {
  return cpu_->BackwardBatch(problems, gradients);
}

}  // namespace mpc
