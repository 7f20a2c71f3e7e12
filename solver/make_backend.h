#ifndef MPC_SOLVER_MAKE_BACKEND_H_
#define MPC_SOLVER_MAKE_BACKEND_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "solver/solver_backend.h"

namespace mpc {

enum class BackendKind { kCpu, kCuda, kAuto };

// Parses "cpu" | "cuda" | "auto".
absl::StatusOr<BackendKind> ParseBackendKind(absl::string_view name);

// The scalar the CUDA backend solves and differentiates in (DESIGN §7: float64 by default, float32
// on request). Requests and answers are float64 either way; the CPU backend is always float64.
enum class CudaPrecision { kFloat64, kFloat32 };

// Parses "float64" | "float32".
absl::StatusOr<CudaPrecision> ParseCudaPrecision(absl::string_view name);

// Whether this build has the CUDA backend and a usable device.
bool CudaAvailable();

// The backend of `kind`; kAuto picks CUDA when CudaAvailable(), else CPU. kCuda without a device or
// without CUDA in the build is an error with a clear message. `threads` sizes the CPU pool (0 =
// all); `cuda_precision` applies when the CUDA backend is made; `max_workspace_bytes` bounds the
// CPU backend's cached workspaces (CpuBackendOptions).
absl::StatusOr<std::unique_ptr<SolverBackend>> MakeBackend(
    BackendKind kind, int threads, CudaPrecision cuda_precision = CudaPrecision::kFloat64,
    std::int64_t max_workspace_bytes = std::int64_t{256} << 20);

}  // namespace mpc

#endif  // MPC_SOLVER_MAKE_BACKEND_H_
