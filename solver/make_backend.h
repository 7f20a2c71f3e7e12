#ifndef MPC_SOLVER_MAKE_BACKEND_H_
#define MPC_SOLVER_MAKE_BACKEND_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "solver/solver_backend.h"

namespace mpc {

enum class BackendKind { kCpu, kCuda, kAuto };

// Parses "cpu" | "cuda" | "auto".
absl::StatusOr<BackendKind> ParseBackendKind(absl::string_view name);

// Whether this build has the CUDA backend and a usable device.
bool CudaAvailable();

// The backend of `kind`; kAuto picks CUDA when CudaAvailable(), else CPU. kCuda without a device or
// without CUDA in the build is an error with a clear message. `threads` sizes the CPU pool (0 = all).
absl::StatusOr<std::unique_ptr<SolverBackend>> MakeBackend(BackendKind kind, int threads);

}  // namespace mpc

#endif  // MPC_SOLVER_MAKE_BACKEND_H_
