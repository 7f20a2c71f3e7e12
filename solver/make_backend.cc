#include "solver/make_backend.h"

#include "absl/strings/str_cat.h"
#include "solver/cpu/cpu_backend.h"

namespace mpc {

absl::StatusOr<BackendKind> ParseBackendKind(absl::string_view name) {
  if (name == "cpu") return BackendKind::kCpu;
  if (name == "cuda") return BackendKind::kCuda;
  if (name == "auto") return BackendKind::kAuto;
  return absl::InvalidArgumentError(
      absl::StrCat("backend: unknown backend \"", name, "\" (known: cpu, cuda, auto)"));
}

// The CUDA backend arrives with its own issue; until then no build has it.
bool CudaAvailable() { return false; }

absl::StatusOr<std::unique_ptr<SolverBackend>> MakeBackend(BackendKind kind, int threads) {
  if (kind == BackendKind::kCuda) {
    return absl::UnimplementedError(
        "backend: cuda was requested but this build has no CUDA backend; use --backend=cpu");
  }
  absl::StatusOr<std::unique_ptr<CpuBackend>> cpu = CpuBackend::Create({threads});
  if (!cpu.ok()) return cpu.status();
  return std::unique_ptr<SolverBackend>(std::move(*cpu));
}

}  // namespace mpc
