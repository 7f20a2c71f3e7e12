#ifndef MPC_SERVER_SERVER_CONFIG_H_
#define MPC_SERVER_SERVER_CONFIG_H_

// Everything that configures a server, as values. main.cc is the only place flags become a
// ServerConfig; libraries and tests build one directly.

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "proto/proto_conversion.h"
#include "server/admission.h"
#include "server/dynamic_batcher.h"
#include "server/logger.h"
#include "solver/make_backend.h"

namespace mpc {

// Transport security and authentication (docs/operations.md, "TLS and authentication"). File
// names, read when the server starts; "" = off.
struct SecurityConfig {
  // PEM certificate chain and private key: serve TLS instead of plaintext. Both or neither.
  std::string tls_cert_file;
  std::string tls_key_file;
  // PEM CA certificates: require every client to present a certificate they sign (mutual TLS).
  // Needs tls_cert_file.
  std::string tls_client_ca_file;
  // A file holding one bearer token: every mpcd.v1.MpcService call must carry
  // "authorization: Bearer <token>". grpc.health.v1 and reflection are exempt.
  std::string auth_token_file;

  bool tls() const { return !tls_cert_file.empty(); }
};

struct ServerConfig {
  // Interface both listeners bind to ("0.0.0.0": every IPv4 interface; "127.0.0.1": loopback).
  std::string host = "0.0.0.0";
  int port = 50051;         // gRPC; 0 = pick a free port (MpcServer::port() tells which)
  int metrics_port = 9464;  // Prometheus /metrics; 0 = pick a free port, -1 = no endpoint
  BackendKind backend = BackendKind::kAuto;
  int threads = 0;  // CPU backend threads, the batcher's own included; 0 = one per core
  // The CUDA backend's scalar. float32 needs a backend that may be CUDA (cuda or auto); the CPU
  // backend is always float64 (ValidateServerConfig).
  CudaPrecision cuda_precision = CudaPrecision::kFloat64;
  DynamicBatcherOptions batcher;
  // Tighter than the solver's own limits: a server faces untrusted clients. max_problems must not
  // exceed batcher.max_queue_problems (ValidateServerConfig).
  RequestLimits limits{.problem = {.max_horizon = 1000,
                                   .max_state_dim = 256,
                                   .max_control_dim = 256,
                                   .max_iterations = 10000},
                       .max_problems = 4096};
  // Largest T * (n+m)^2 of one problem: the solver's workspace grows with it, so this bounds the
  // memory a small request (time-invariant C and F) can make the server allocate.
  std::int64_t max_problem_size = std::int64_t{1} << 22;
  // Largest answer and solver work of one request: a request over either is refused
  // INVALID_ARGUMENT before anything is queued (server/admission.h).
  AdmissionLimits admission;
  // Bytes the open Control sessions may hold together (templates, plans); a session that would
  // go over is refused RESOURCE_EXHAUSTED (INVALID_ARGUMENT when it alone is over).
  std::int64_t max_session_bytes = std::int64_t{256} << 20;
  // Bytes the Solves kept for their Backward (SolveRequest.retain_for_backward) may hold
  // together; the least recently used are given up first (0: none is kept).
  std::int64_t retained_solve_bytes = std::int64_t{256} << 20;
  // Bytes of solver workspaces the CPU backend keeps cached between launches, over all threads.
  std::int64_t max_workspace_bytes = std::int64_t{256} << 20;
  // Largest request message, in bytes: larger ones are answered INVALID_ARGUMENT naming the limit.
  // (gRPC itself refuses messages over twice this with RESOURCE_EXHAUSTED before reading them.)
  int max_message_bytes = 64 << 20;
  // Most calls one HTTP/2 connection may have open at once (gRPC's default is unlimited). A client
  // opening more waits for a free stream on its side: the server never holds more than this many
  // unanswered requests per connection, whatever a client sends (server memory stays bounded).
  int max_concurrent_streams = 1024;
  // How long Shutdown waits for calls in flight before cancelling them.
  absl::Duration shutdown_grace = absl::Seconds(30);
  // After this long a client connection is asked to close (HTTP/2 GOAWAY; calls in flight get
  // shutdown_grace to finish) and the client reconnects, resolving the target's addresses again:
  // that is how long-lived clients of a headless Kubernetes Service find new replicas.
  // Infinite = never.
  absl::Duration max_connection_age = absl::InfiniteDuration();
  // A connection with no call open for this long is closed (GOAWAY); clients reconnect when they
  // next call. Bounds the descriptors idle or preface-only connections hold.
  absl::Duration max_connection_idle = absl::Minutes(5);
  // A new connection must finish its handshake (TLS, and the client's HTTP/2 SETTINGS) within
  // this, or it is closed.
  absl::Duration handshake_timeout = absl::Seconds(10);
  // How often the listener watchdog connects to the server's own port; when the listener has
  // stopped accepting for `listener_watchdog_failures` checks in a row, health turns NOT_SERVING
  // and the process exits 3 so its supervisor restarts it. Zero = no watchdog.
  absl::Duration listener_watchdog_period = absl::Seconds(5);
  int listener_watchdog_failures = 3;
  // Keepalive enforcement. A client may ping (HTTP/2 PING without data, e.g. gRPC keepalive) at
  // most once per keepalive_min_ping_interval; one that pings more often is disconnected with
  // GOAWAY "too_many_pings" after two strikes. Without keepalive_permit_without_calls, every ping
  // while the client has no call open is a strike. The defaults are gRPC's (5 minutes, not
  // permitted), so a client with a 5 s keepalive needs an interval <= 5 s and, when it idles
  // between calls, the permission.
  absl::Duration keepalive_min_ping_interval = absl::Minutes(5);
  bool keepalive_permit_without_calls = false;
  SecurityConfig security;
  // Dynamics graphs (DESIGN §12): the limits on one graph and how many graphs are kept by hash
  // (GraphRegistry), and a folder whose *.onnx files are loaded at start as named graphs ("" =
  // none).
  GraphRegistryOptions graphs;
  std::string model_dir;
  // The log lines on stderr (server/logger.h, server/call_log.h): level and format.
  LogConfig log;
};

// More threads than any machine mpcd runs on has cores (thread creation fails long before).
inline constexpr int kMaxThreads = 1024;
// protobuf refuses to serialise 2 GiB; the answer's framing needs a little room below that.
inline constexpr std::int64_t kMaxResponseBytes =
    (std::int64_t{2} << 30) - (std::int64_t{16} << 20);

// Checks ranges and consistency; messages name the flag (e.g. "max_batch_size: must be >= 1").
// Only the combination of the security files is checked here; MpcServer::Create reads them.
absl::Status ValidateServerConfig(const ServerConfig& config);

}  // namespace mpc

#endif  // MPC_SERVER_SERVER_CONFIG_H_
