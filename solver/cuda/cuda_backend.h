#ifndef MPC_SOLVER_CUDA_CUDA_BACKEND_H_
#define MPC_SOLVER_CUDA_CUDA_BACKEND_H_

#include <cuda_runtime_api.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "solver/cpu/cpu_backend.h"
#include "solver/solver_backend.h"

namespace mpc {

struct CudaBackendOptions {
  int device = 0;  // CUDA device ordinal
  bool use_float32 =
      false;            // solve and differentiate in float32 (requests and answers stay float64)
  int cpu_threads = 0;  // threads of the CPU fallback (see CudaBackend); 0 = one per core
};

// CUDA devices this process can use; 0 when there is none or no driver.
int CudaDeviceCount();

// SolverBackend on one CUDA device (DESIGN §7): per batch, each problem shape becomes one launch of
// the device iLQR (solver/core/ilqr.h, one thread per problem, the whole iteration loop in
// the kernel), all on one stream, with one host synchronisation for the whole batch. Device and
// pinned buffers are kept per shape (up to 16 shapes) and reused.
//
// BackwardBatch likewise: per shape one launch of the device backward pass
// (solver/core/implicit_backward.h, one thread per problem), same stream, one synchronisation.
//
// What does not run on the device: shapes without a device solver (linear n > 16 or m > 8; see
// core::RunsOnDevice) are computed by an internal CpuBackend while the device works. Dynamics
// graphs run on the device only for a forward solve in double of a discrete-time graph whose tape
// has no matrix products, without cost or constraint graphs (the graph's element records, copied
// to the device once per batch, run by the core's own sweeps: core::GraphTapeDynamics); every
// other graph problem, and every backward pass of a graph, goes to the CpuBackend.
class CudaBackend final : public SolverBackend {
 public:
  static absl::StatusOr<std::unique_ptr<CudaBackend>> Create(const CudaBackendOptions& options);
  ~CudaBackend() override;

  absl::string_view name() const override { return "cuda"; }
  absl::Status SolveBatch(absl::Span<const Problem* const> problems,
                          absl::Span<Solution* const> solutions) override;
  absl::Status BackwardBatch(absl::Span<const BackwardProblem* const> problems,
                             absl::Span<ProblemGradient* const> gradients) override;

  // The device's name, e.g. "NVIDIA H100 80GB HBM3".
  const std::string& device_name() const { return device_name_; }

  struct ShapeWorkspace;  // buffers of one shape (cuda_backend.cc)

 private:
  CudaBackend(const CudaBackendOptions& options, cudaStream_t stream, std::string device_name,
              std::unique_ptr<CpuBackend> cpu);

  // Empties the workspace cache when `shapes` would take it past its bound.
  void MakeRoomForShapes(const std::vector<ProblemShape>& shapes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  ShapeWorkspace* WorkspaceFor(const ProblemShape& shape) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const CudaBackendOptions options_;
  const cudaStream_t stream_;
  const std::string device_name_;
  const std::unique_ptr<CpuBackend> cpu_;

  absl::Mutex mu_;  // one batch at a time on the stream and the workspaces
  absl::flat_hash_map<ProblemShape, std::unique_ptr<ShapeWorkspace>> workspaces_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace mpc

#endif  // MPC_SOLVER_CUDA_CUDA_BACKEND_H_
