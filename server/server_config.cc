#include "server/server_config.h"

#include <limits>

#include "absl/strings/str_cat.h"

namespace mpc {
namespace {

absl::Status AtLeast(const char* name, std::int64_t value, std::int64_t minimum) {
  if (value >= minimum) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(name, ": must be >= ", minimum, ", got ", value));
}

absl::Status InRange(const char* name, std::int64_t value, std::int64_t minimum,
                     std::int64_t maximum) {
  if (value >= minimum && value <= maximum) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(name, ": must be in [", minimum, ", ", maximum, "], got ", value));
}

// Durations given in seconds on the command line; `minimum` keeps a typo such as 1e-9 from
// turning the server unusable (every call timing out, every connection closed at once).
absl::Status AtLeastSeconds(const char* name, absl::Duration value, absl::Duration minimum) {
  if (value >= minimum) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(name,
                                                 ": must be >= ", absl::ToDoubleSeconds(minimum),
                                                 " s, got ", absl::ToDoubleSeconds(value), " s"));
}

absl::Status ValidateSecurityConfig(const SecurityConfig& security) {
  if (security.tls_cert_file.empty() != security.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        security.tls_cert_file.empty() ? "tls_key: needs --tls_cert (the certificate it belongs to)"
                                       : "tls_cert: needs --tls_key (its private key)");
  }
  if (!security.tls_client_ca_file.empty() && !security.tls()) {
    return absl::InvalidArgumentError(
        "tls_client_ca: needs --tls_cert and --tls_key (client certificates are checked only over "
        "TLS)");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateServerConfig(const ServerConfig& config) {
  if (config.host.empty()) return absl::InvalidArgumentError("host: must not be empty");
  if (config.port < 0 || config.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("port: must be in [0, 65535], got ", config.port));
  }
  if (config.metrics_port < -1 || config.metrics_port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics_port: must be in [0, 65535] or -1 (no endpoint), got ", config.metrics_port));
  }
  for (absl::Status status : {
           InRange("threads", config.threads, 0, kMaxThreads),
           InRange("max_batch_size", config.batcher.batching.max_batch_size, 1, 1 << 20),
           InRange("max_queue_problems", config.batcher.max_queue_problems, 1, 1 << 24),
           AtLeast("max_queue_bytes", static_cast<std::int64_t>(config.batcher.max_queue_bytes), 1),
           InRange("max_horizon", config.limits.problem.max_horizon, 1, 1 << 20),
           InRange("max_state_dim", config.limits.problem.max_state_dim, 1, 1 << 12),
           InRange("max_control_dim", config.limits.problem.max_control_dim, 1, 1 << 12),
           InRange("max_iterations", config.limits.problem.max_iterations, 1, 1 << 24),
           AtLeast("max_problems_per_request", config.limits.max_problems, 1),
           AtLeast("max_problem_size", config.max_problem_size, 1),
           InRange("max_message_bytes", config.max_message_bytes, 1024, 1 << 30),
           InRange("max_response_bytes", config.admission.max_response_bytes, 1024,
                   kMaxResponseBytes),
           AtLeast("max_session_bytes", config.max_session_bytes, 1),
           AtLeast("retained_solve_bytes", config.retained_solve_bytes, 0),
           AtLeast("max_workspace_bytes", config.max_workspace_bytes, 0),
           AtLeast("max_concurrent_streams", config.max_concurrent_streams, 1),
           AtLeast("graph_cache_size", config.graphs.capacity, 1),
           AtLeast("max_graph_bytes", config.graphs.limits.max_bytes, 1),
           AtLeast("max_graph_nodes", config.graphs.limits.max_nodes, 1),
           AtLeast("max_graph_parameters", config.graphs.limits.max_parameters, 0),
           AtLeast("max_graph_elements", config.graphs.limits.max_elements, 1),
           InRange("listener_watchdog_failures", config.listener_watchdog_failures, 1, 1000),
       }) {
    if (!status.ok()) return status;
  }
  if (!(config.admission.max_request_work >= 1.0) ||
      config.admission.max_request_work == std::numeric_limits<double>::infinity()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_request_work: must be a finite number >= 1, got ", config.admission.max_request_work));
  }
  if (config.backend == BackendKind::kCpu && config.cuda_precision == CudaPrecision::kFloat32) {
    return absl::InvalidArgumentError(
        "cuda_precision: float32 applies to the CUDA backend only (--backend=cpu always computes "
        "in float64; use --backend=cuda or auto)");
  }
  if (config.batcher.batching.max_queue_delay < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("max_queue_delay_us: must be >= 0");
  }
  for (absl::Status status : {
           AtLeastSeconds("max_connection_age_s", config.max_connection_age,
                          absl::Milliseconds(100)),
           AtLeastSeconds("max_connection_idle_s", config.max_connection_idle,
                          absl::Milliseconds(100)),
           AtLeastSeconds("handshake_timeout_s", config.handshake_timeout, absl::Milliseconds(100)),
           AtLeastSeconds("listener_watchdog_s", config.listener_watchdog_period,
                          absl::ZeroDuration()),
       }) {
    if (!status.ok()) return status;
  }
  if (config.keepalive_min_ping_interval < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("keepalive_min_ping_interval_s: must be >= 0");
  }
  if (config.shutdown_grace < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("shutdown_grace: must be >= 0");
  }
  // Submit is all or nothing per request, so a request larger than the queue could never be
  // accepted: it would get UNAVAILABLE (retry) forever instead of a clear INVALID_ARGUMENT.
  if (config.limits.max_problems > config.batcher.max_queue_problems) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_problems_per_request: must be <= max_queue_problems (",
                     config.batcher.max_queue_problems, "), got ", config.limits.max_problems));
  }
  return ValidateSecurityConfig(config.security);
}

}  // namespace mpc
