#include "solver/make_backend.h"

#include "absl/strings/str_cat.h"
#include "solver/cpu/cpu_backend.h"
#if MPCD_WITH_CUDA
#include "solver/cuda/cuda_backend.h"
#endif

namespace mpc {

absl::StatusOr<BackendKind> ParseBackendKind(absl::string_view name) {
  if (name == "cpu") return BackendKind::kCpu;
  if (name == "cuda") return BackendKind::kCuda;
  if (name == "auto") return BackendKind::kAuto;
  return absl::InvalidArgumentError(
      absl::StrCat("backend: unknown backend \"", name, "\" (known: cpu, cuda, auto)"));
}

absl::StatusOr<CudaPrecision> ParseCudaPrecision(absl::string_view name) {
  if (name == "float64") return CudaPrecision::kFloat64;
  if (name == "float32") return CudaPrecision::kFloat32;
  return absl::InvalidArgumentError(
      absl::StrCat("cuda_precision: unknown precision \"", name, "\" (known: float64, float32)"));
}

bool CudaAvailable() {
#if MPCD_WITH_CUDA
  return CudaDeviceCount() > 0;
#else
  return false;
#endif
}

absl::StatusOr<std::unique_ptr<SolverBackend>> MakeBackend(BackendKind kind, int threads,
                                                           CudaPrecision cuda_precision,
                                                           std::int64_t max_workspace_bytes) {
  if (kind == BackendKind::kCuda || (kind == BackendKind::kAuto && CudaAvailable())) {
#if MPCD_WITH_CUDA
    // Without a device, Create fails with FAILED_PRECONDITION and says so.
    absl::StatusOr<std::unique_ptr<CudaBackend>> cuda = CudaBackend::Create(
        {.use_float32 = cuda_precision == CudaPrecision::kFloat32, .cpu_threads = threads});
    if (!cuda.ok()) return cuda.status();
    return std::unique_ptr<SolverBackend>(std::move(*cuda));
#else
    (void)cuda_precision;
    return absl::UnimplementedError(
        "backend: cuda was requested but this build has no CUDA backend (configure with nvcc "
        "installed, -DMPCD_WITH_CUDA=ON); use --backend=cpu");
#endif
  }
  absl::StatusOr<std::unique_ptr<CpuBackend>> cpu =
      CpuBackend::Create({.threads = threads, .max_workspace_bytes = max_workspace_bytes});
  if (!cpu.ok()) return cpu.status();
  return std::unique_ptr<SolverBackend>(std::move(*cpu));
}

}  // namespace mpc
