#include "server/server_config.h"

#include "absl/strings/str_cat.h"

namespace mpc {
namespace {

absl::Status AtLeast(const char* name, std::int64_t value, std::int64_t minimum) {
  if (value >= minimum) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(name, ": must be >= ", minimum, ", got ", value));
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
           AtLeast("threads", config.threads, 0),
           AtLeast("max_batch_size", config.batcher.batching.max_batch_size, 1),
           AtLeast("max_queue_problems", config.batcher.max_queue_problems, 1),
           AtLeast("max_queue_bytes", static_cast<std::int64_t>(config.batcher.max_queue_bytes), 1),
           AtLeast("max_horizon", config.limits.problem.max_horizon, 1),
           AtLeast("max_state_dim", config.limits.problem.max_state_dim, 1),
           AtLeast("max_control_dim", config.limits.problem.max_control_dim, 1),
           AtLeast("max_iterations", config.limits.problem.max_iterations, 1),
           AtLeast("max_problems_per_request", config.limits.max_problems, 1),
           AtLeast("max_problem_size", config.max_problem_size, 1),
           AtLeast("max_message_bytes", config.max_message_bytes, 1024),
           AtLeast("max_concurrent_streams", config.max_concurrent_streams, 1),
           AtLeast("graph_cache_size", config.graphs.capacity, 1),
           AtLeast("max_graph_bytes", config.graphs.limits.max_bytes, 1),
           AtLeast("max_graph_nodes", config.graphs.limits.max_nodes, 1),
           AtLeast("max_graph_parameters", config.graphs.limits.max_parameters, 0),
           AtLeast("max_graph_elements", config.graphs.limits.max_elements, 1),
       }) {
    if (!status.ok()) return status;
  }
  if (config.backend == BackendKind::kCpu && config.cuda_precision == CudaPrecision::kFloat32) {
    return absl::InvalidArgumentError(
        "cuda_precision: float32 applies to the CUDA backend only (--backend=cpu always computes "
        "in float64; use --backend=cuda or auto)");
  }
  if (config.batcher.batching.max_queue_delay < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("max_queue_delay_us: must be >= 0");
  }
  if (config.max_connection_age <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("max_connection_age: must be > 0");
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
