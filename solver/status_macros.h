#ifndef MPC_SOLVER_STATUS_MACROS_H_
#define MPC_SOLVER_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Abseil's ABSL_RETURN_IF_ERROR / ABSL_ASSIGN_OR_RETURN arrive only in LTS 20260526; Debian 12
// ships 20220623. These have the same semantics, so upgrading is a rename.
#define MPC_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::absl::Status mpc_status_ = (expr);       \
    if (!mpc_status_.ok()) return mpc_status_; \
  } while (false)

#define MPC_STATUS_CONCAT_INNER_(a, b) a##b
#define MPC_STATUS_CONCAT_(a, b) MPC_STATUS_CONCAT_INNER_(a, b)

#define MPC_ASSIGN_OR_RETURN(lhs, expr) \
  MPC_ASSIGN_OR_RETURN_IMPL_(MPC_STATUS_CONCAT_(mpc_statusor_, __LINE__), lhs, expr)

#define MPC_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr)    \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = *std::move(statusor)

#endif  // MPC_SOLVER_STATUS_MACROS_H_
