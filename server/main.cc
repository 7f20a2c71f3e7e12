// mpcd: the MPC server. Flags become a ServerConfig here and nowhere else (STYLE rule 7).
//
//   build/bin/mpcd --port=50051 --metrics_port=9464 --backend=auto
//   build/bin/mpcd --flagfile=deploy/mpcd.flags
//   build/bin/mpcd --tls_cert=server.pem --tls_key=server.key [--tls_client_ca=clients-ca.pem]
//                  [--auth_token_file=token]
//
// SIGTERM or SIGINT: health turns NOT_SERVING, new calls are refused, calls in flight are answered,
// then the process exits 0.

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/cli.h"
#include "common/process_lifetime.h"
#include "server/logger.h"
#include "server/mpc_server.h"
#include "server/security.h"
#include "server/server_config.h"
#include "solver/make_backend.h"

// Every default comes from ServerConfig, so the flags and the library cannot disagree.
static const mpc::ServerConfig kDefaults;

ABSL_FLAG(std::string, host, kDefaults.host,
          "Interface to listen on, for gRPC and /metrics (127.0.0.1 = this machine only).");
ABSL_FLAG(int, port, kDefaults.port, "gRPC port (0 = pick a free one and print it).");
ABSL_FLAG(int, metrics_port, kDefaults.metrics_port,
          "Prometheus /metrics port (0 = pick a free one and print it, -1 = no endpoint).");
ABSL_FLAG(std::string, backend, "auto", "Solver backend: cpu, cuda or auto (cuda when present).");
ABSL_FLAG(int, threads, kDefaults.threads, "CPU backend threads (0 = one per core).");
ABSL_FLAG(std::string, cuda_precision, "float64",
          "Scalar of the CUDA backend's solves and gradients: float64 or float32 (requests and "
          "answers stay float64; the CPU backend is always float64).");
ABSL_FLAG(int, max_batch_size, kDefaults.batcher.batching.max_batch_size,
          "Most problems in one backend launch.");
ABSL_FLAG(int64_t, max_queue_delay_us,
          absl::ToInt64Microseconds(kDefaults.batcher.batching.max_queue_delay),
          "Longest a queued problem waits for more to batch with, in microseconds.");
ABSL_FLAG(int, max_queue_problems, kDefaults.batcher.max_queue_problems,
          "Most problems queued at once; beyond it requests get UNAVAILABLE.");
ABSL_FLAG(int64_t, max_queue_bytes, static_cast<int64_t>(kDefaults.batcher.max_queue_bytes),
          "Most bytes of problems queued at once; beyond it requests get UNAVAILABLE.");
ABSL_FLAG(int, max_horizon, kDefaults.limits.problem.max_horizon,
          "Largest horizon T a request may have.");
ABSL_FLAG(int, max_state_dim, kDefaults.limits.problem.max_state_dim, "Largest state dimension n.");
ABSL_FLAG(int, max_control_dim, kDefaults.limits.problem.max_control_dim,
          "Largest control dimension m.");
ABSL_FLAG(int, max_iterations, kDefaults.limits.problem.max_iterations,
          "Largest options.max_iterations a request may ask for.");
ABSL_FLAG(int, max_problems_per_request, kDefaults.limits.max_problems,
          "Most problems in one request (<= --max_queue_problems).");
ABSL_FLAG(int64_t, max_problem_size, kDefaults.max_problem_size,
          "Largest T*(n+m)^2 of one problem (bounds the solver memory a request can demand).");
ABSL_FLAG(int64_t, max_response_bytes, kDefaults.admission.max_response_bytes,
          "Largest answer of one request in bytes (x, u, gains, Jacobians); larger requests are "
          "refused INVALID_ARGUMENT before they are solved (at most 2 GiB - 16 MiB).");
ABSL_FLAG(double, max_request_work, kDefaults.admission.max_request_work,
          "Largest solver work of one request: sum over its problems of T*(n+m)^2*(n+m+"
          "max_linesearch_iterations)*(max_iterations+1), plus the Jacobians' (0.5-5 ns a unit "
          "on one core; the default is about a minute of an idle core; docs/robustness.md).");
ABSL_FLAG(int64_t, max_session_bytes, kDefaults.max_session_bytes,
          "Bytes all open Control sessions may hold together (gauge mpcd_session_bytes).");
ABSL_FLAG(int64_t, retained_solve_bytes, kDefaults.retained_solve_bytes,
          "Bytes the Solves kept for their Backward (SolveRequest.retain_for_backward) may hold "
          "together, the least recently used given up first; 0 keeps none (gauge "
          "mpcd_retained_solve_bytes).");
ABSL_FLAG(int64_t, max_workspace_bytes, kDefaults.max_workspace_bytes,
          "Bytes of solver workspaces the CPU backend keeps cached between launches, over all "
          "threads; larger workspaces are freed after each use.");
ABSL_FLAG(int64_t, malloc_mmap_threshold_bytes, 4 << 20,
          "glibc malloc: blocks up to this size come from the heap and are reused instead of "
          "being mapped afresh (and page-faulted) for every large request; at most 32 MiB. Both "
          "malloc flags 0: glibc's adaptive thresholds (one 0 alone: glibc's initial 128 KiB).");
ABSL_FLAG(int64_t, malloc_trim_threshold_bytes, 32 << 20,
          "glibc malloc: free memory a heap keeps before returning it to the system. Both malloc "
          "flags 0: glibc's adaptive thresholds (one 0 alone: glibc's initial 128 KiB).");
ABSL_FLAG(int, max_message_bytes, kDefaults.max_message_bytes, "Largest request message in bytes.");
ABSL_FLAG(int, max_concurrent_streams, kDefaults.max_concurrent_streams,
          "Most calls open at once on one client connection; a client waits for a free one.");
ABSL_FLAG(std::string, model_dir, "",
          "Folder whose *.onnx dynamics graphs are loaded at start, named by file (\"\" = none).");
ABSL_FLAG(int, graph_cache_size, kDefaults.graphs.capacity,
          "Dynamics graphs kept by SHA-256 (least recently used evicted).");
ABSL_FLAG(int64_t, max_graph_bytes, kDefaults.graphs.limits.max_bytes,
          "Largest dynamics graph (serialized ONNX) in bytes.");
ABSL_FLAG(int, max_graph_nodes, kDefaults.graphs.limits.max_nodes,
          "Most nodes of one dynamics graph.");
ABSL_FLAG(int64_t, max_graph_parameters, kDefaults.graphs.limits.max_parameters,
          "Most parameters (initializer scalars) of one dynamics graph.");
ABSL_FLAG(int64_t, max_graph_elements, kDefaults.graphs.limits.max_elements,
          "Most scalars one evaluation of a dynamics graph may hold.");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain: serve TLS (with --tls_key) instead of plaintext.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert (unencrypted).");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA certificate(s): require every client to present a certificate they signed "
          "(mutual TLS; needs --tls_cert).");
ABSL_FLAG(std::string, auth_token_file, "",
          "File holding a bearer token: every mpcd.v1.MpcService call must carry "
          "\"authorization: Bearer <token>\" or is answered UNAUTHENTICATED (health and "
          "reflection are exempt).");
ABSL_FLAG(double, shutdown_grace_s, absl::ToDoubleSeconds(kDefaults.shutdown_grace),
          "On SIGTERM, how long calls in flight may take before they are cancelled, in seconds.");
ABSL_FLAG(double, max_connection_age_s, 0.0,
          "Ask clients to reconnect (and so re-resolve DNS, finding new replicas) after a "
          "connection has been open this many seconds; 0 = never.");
ABSL_FLAG(double, max_connection_idle_s, absl::ToDoubleSeconds(kDefaults.max_connection_idle),
          "Close a client connection that has had no call open for this many seconds (it "
          "reconnects when it next calls).");
ABSL_FLAG(double, handshake_timeout_s, absl::ToDoubleSeconds(kDefaults.handshake_timeout),
          "Close a new connection that has not finished its TLS handshake and sent its HTTP/2 "
          "settings within this many seconds.");
ABSL_FLAG(double, listener_watchdog_s, absl::ToDoubleSeconds(kDefaults.listener_watchdog_period),
          "Every this many seconds, connect to the server's own port; after "
          "--listener_watchdog_failures failures in a row (the listener stopped accepting), turn "
          "health NOT_SERVING and exit 3 so the supervisor restarts mpcd. 0 = off.");
ABSL_FLAG(int, listener_watchdog_failures, kDefaults.listener_watchdog_failures,
          "Failed self-connects in a row after which the listener watchdog gives up.");

ABSL_FLAG(double, keepalive_min_ping_interval_s,
          absl::ToDoubleSeconds(kDefaults.keepalive_min_ping_interval),
          "Shortest interval at which a client may ping without sending data, in seconds; a "
          "client pinging more often is disconnected (GOAWAY too_many_pings). Set it to the "
          "keepalive time of your clients (e.g. 5 for a 5 s keepalive).");
ABSL_FLAG(bool, keepalive_permit_without_calls, kDefaults.keepalive_permit_without_calls,
          "Allow keepalive pings from a client that has no call open (otherwise each counts "
          "against it as above).");

ABSL_FLAG(std::string, log_level, "info",
          "Least severe log line written to stderr: debug (also every request answered), info, "
          "warning (every request refused, with its reason) or error.");
ABSL_FLAG(std::string, log_format, "text",
          "Log lines on stderr as text or json (one JSON object per line: time, level, msg, "
          "request_id, method, code, duration_ms, peer, reason, ...).");

namespace {

absl::StatusOr<mpc::ServerConfig> ConfigFromFlags() {
  mpc::ServerConfig config;
  config.host = absl::GetFlag(FLAGS_host);
  config.port = absl::GetFlag(FLAGS_port);
  config.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  absl::StatusOr<mpc::BackendKind> backend = mpc::ParseBackendKind(absl::GetFlag(FLAGS_backend));
  if (!backend.ok()) return backend.status();
  config.backend = *backend;
  config.threads = absl::GetFlag(FLAGS_threads);
  absl::StatusOr<mpc::CudaPrecision> precision =
      mpc::ParseCudaPrecision(absl::GetFlag(FLAGS_cuda_precision));
  if (!precision.ok()) return precision.status();
  config.cuda_precision = *precision;
  config.batcher.batching.max_batch_size = absl::GetFlag(FLAGS_max_batch_size);
  const int64_t delay_us = absl::GetFlag(FLAGS_max_queue_delay_us);
  if (delay_us < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_queue_delay_us: must be >= 0, got ", delay_us));
  }
  config.batcher.batching.max_queue_delay = absl::Microseconds(delay_us);
  config.batcher.max_queue_problems = absl::GetFlag(FLAGS_max_queue_problems);
  const int64_t queue_bytes = absl::GetFlag(FLAGS_max_queue_bytes);
  if (queue_bytes < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_queue_bytes: must be >= 1, got ", queue_bytes));
  }
  config.batcher.max_queue_bytes = static_cast<std::size_t>(queue_bytes);
  config.limits.problem.max_horizon = absl::GetFlag(FLAGS_max_horizon);
  config.limits.problem.max_state_dim = absl::GetFlag(FLAGS_max_state_dim);
  config.limits.problem.max_control_dim = absl::GetFlag(FLAGS_max_control_dim);
  config.limits.problem.max_iterations = absl::GetFlag(FLAGS_max_iterations);
  config.limits.max_problems = absl::GetFlag(FLAGS_max_problems_per_request);
  config.max_problem_size = absl::GetFlag(FLAGS_max_problem_size);
  config.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  config.admission.max_response_bytes = absl::GetFlag(FLAGS_max_response_bytes);
  config.admission.max_request_work = absl::GetFlag(FLAGS_max_request_work);
  config.max_session_bytes = absl::GetFlag(FLAGS_max_session_bytes);
  config.retained_solve_bytes = absl::GetFlag(FLAGS_retained_solve_bytes);
  config.max_workspace_bytes = absl::GetFlag(FLAGS_max_workspace_bytes);
  config.max_concurrent_streams = absl::GetFlag(FLAGS_max_concurrent_streams);
  const double grace = absl::GetFlag(FLAGS_shutdown_grace_s);
  if (!(grace >= 0.0)) {
    return absl::InvalidArgumentError(absl::StrCat("shutdown_grace_s: must be >= 0, got ", grace));
  }
  config.shutdown_grace = absl::Seconds(grace);
  const double connection_age = absl::GetFlag(FLAGS_max_connection_age_s);
  if (!(connection_age >= 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_connection_age_s: must be >= 0, got ", connection_age));
  }
  if (connection_age > 0.0) config.max_connection_age = absl::Seconds(connection_age);
  for (const auto& [name, value, field] : {
           std::tuple{"max_connection_idle_s", absl::GetFlag(FLAGS_max_connection_idle_s),
                      &config.max_connection_idle},
           std::tuple{"handshake_timeout_s", absl::GetFlag(FLAGS_handshake_timeout_s),
                      &config.handshake_timeout},
           std::tuple{"listener_watchdog_s", absl::GetFlag(FLAGS_listener_watchdog_s),
                      &config.listener_watchdog_period},
       }) {
    if (!(value >= 0.0)) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": must be >= 0, got ", value));
    }
    *field = absl::Seconds(value);
  }
  config.listener_watchdog_failures = absl::GetFlag(FLAGS_listener_watchdog_failures);
  const double ping_interval = absl::GetFlag(FLAGS_keepalive_min_ping_interval_s);
  if (!(ping_interval >= 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("keepalive_min_ping_interval_s: must be >= 0, got ", ping_interval));
  }
  config.keepalive_min_ping_interval = absl::Seconds(ping_interval);
  config.keepalive_permit_without_calls = absl::GetFlag(FLAGS_keepalive_permit_without_calls);
  config.security.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  config.security.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  config.security.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  config.security.auth_token_file = absl::GetFlag(FLAGS_auth_token_file);
  config.model_dir = absl::GetFlag(FLAGS_model_dir);
  config.graphs.capacity = absl::GetFlag(FLAGS_graph_cache_size);
  config.graphs.limits.max_bytes = absl::GetFlag(FLAGS_max_graph_bytes);
  config.graphs.limits.max_nodes = absl::GetFlag(FLAGS_max_graph_nodes);
  config.graphs.limits.max_parameters = absl::GetFlag(FLAGS_max_graph_parameters);
  config.graphs.limits.max_elements = absl::GetFlag(FLAGS_max_graph_elements);
  absl::StatusOr<mpc::LogLevel> log_level = mpc::ParseLogLevel(absl::GetFlag(FLAGS_log_level));
  if (!log_level.ok()) return log_level.status();
  config.log.level = *log_level;
  absl::StatusOr<mpc::LogFormat> log_format = mpc::ParseLogFormat(absl::GetFlag(FLAGS_log_format));
  if (!log_format.ok()) return log_format.status();
  config.log.format = *log_format;
  absl::Status valid = mpc::ValidateServerConfig(config);
  if (!valid.ok()) return valid;
  return config;
}

// glibc's malloc maps every block above an adaptive threshold (128 KiB at first) afresh and gives
// freed memory back at once, so each large request's buffers (gRPC's, protobuf's, the
// conversion's) page-fault on every call: fixed thresholds reuse them (docs/benchmarks.md §5).
// Before any thread starts. Both zero: glibc's defaults.
absl::Status TuneMalloc(int64_t mmap_threshold, int64_t trim_threshold) {
  constexpr int64_t kMaxMmapThreshold = int64_t{32} << 20;  // glibc's HEAP_MAX_SIZE / 2
  if (mmap_threshold < 0 || mmap_threshold > kMaxMmapThreshold) {
    return absl::InvalidArgumentError(absl::StrCat("malloc_mmap_threshold_bytes: must be in [0, ",
                                                   kMaxMmapThreshold, "], got ", mmap_threshold));
  }
  if (trim_threshold < 0 || trim_threshold > std::numeric_limits<int>::max()) {
    return absl::InvalidArgumentError(absl::StrCat("malloc_trim_threshold_bytes: must be in [0, ",
                                                   std::numeric_limits<int>::max(), "], got ",
                                                   trim_threshold));
  }
  if (mmap_threshold == 0 && trim_threshold == 0) return absl::OkStatus();
#ifdef __GLIBC__
  // Setting either turns glibc's adaptation off for both, so both are set. Another allocator
  // (the sanitizers', or one preloaded) refuses them (returns 0): it has its own policy, so
  // that is not an error.
  mallopt(M_MMAP_THRESHOLD, static_cast<int>(mmap_threshold == 0 ? 128 << 10 : mmap_threshold));
  mallopt(M_TRIM_THRESHOLD, static_cast<int>(trim_threshold == 0 ? 128 << 10 : trim_threshold));
#endif
  return absl::OkStatus();
}

// Every connection holds a descriptor, and gRPC 1.51 stops accepting for good once accept4 fails
// with EMFILE: run with the most descriptors the hard limit allows (Debian's default soft limit is
// 1024). Returns the soft limit now in force.
rlim_t RaiseDescriptorLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) return raised.rlim_cur;
  }
  return limit.rlim_cur;
}

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

// Set by the listener watchdog before it signals main to stop.
std::atomic<bool> listener_failed{false};

// mpcd's whole run, from the command line to the drained shutdown: its exit code.
int RunMpcd(int argc, char** argv) {
  mpc::cli::ProgramHelp help;
  help.program = "mpcd";
  help.usage =
      "mpcd: differentiable MPC over gRPC.\n"
      "usage: mpcd [--host=127.0.0.1] [--port=50051] [--metrics_port=9464] [--backend=auto] "
      "[--flag=value ...]\n"
      "       mpcd --flagfile=FILE   (one --flag=value per line, e.g. deploy/mpcd.flags)\n"
      "       mpcd --version";
  help.main_file = "server/main.cc";
  help.env_prefix = "MPCD_FLAG_";
  absl::SetProgramUsageMessage(help.usage);
  mpc::cli::InstallUsageConfig(help);
  if (std::optional<int> code = mpc::cli::HandleHelp(argc, argv, help)) return *code;
  std::string env_error;
  if (!mpc::cli::ApplyEnvironment(help, &env_error)) {
    std::cerr << "mpcd: " << env_error << "\n";
    return 2;
  }
  const std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  // Debian's Abseil is built with assertions on, which turns on absl::Mutex's deadlock detector:
  // a lock-order graph updated on every lock (2-4% of the server's CPU under load in a profile).
  // The tests keep it on; the server does not pay for it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  if (args.size() > 1) {
    std::cerr << "mpcd: unexpected argument \"" << args[1] << "\"; see --help\n";
    return 2;
  }
  absl::StatusOr<mpc::ServerConfig> config = ConfigFromFlags();
  if (!config.ok()) {
    std::cerr << "mpcd: " << config.status().message() << "\n";
    return 2;
  }

  if (absl::Status tuned = TuneMalloc(absl::GetFlag(FLAGS_malloc_mmap_threshold_bytes),
                                      absl::GetFlag(FLAGS_malloc_trim_threshold_bytes));
      !tuned.ok()) {
    std::cerr << "mpcd: " << tuned.message() << "\n";
    return 2;
  }

  // Block the stop signals before any thread exists (gRPC, prometheus and the batcher start
  // threads), so every thread inherits the mask and only sigwait below ever sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  const rlim_t descriptors = RaiseDescriptorLimit();
  // Lives until the process exits: gRPC's threads may still log while it stops.
  const mpc::Logger* const logger = new mpc::Logger(config->log);
  mpc::RouteGrpcLogsTo(logger);

  absl::StatusOr<std::unique_ptr<mpc::MpcServer>> server =
      mpc::MpcServer::Create(*config, nullptr, [] {
        listener_failed.store(true);
        kill(getpid(), SIGTERM);  // main's sigwait takes it from here
      });
  if (!server.ok()) {
    logger->Log(mpc::LogLevel::kError, "cannot start", {{"reason", server.status().message()}});
    // A bad security file is a usage error like a bad flag; anything else failed at run time.
    return server.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  if (!config->security.auth_token_file.empty() && !config->security.tls()) {
    logger->Log(mpc::LogLevel::kWarning,
                "--auth_token_file without --tls_cert: the token crosses the network in clear "
                "text (acceptable only behind a TLS-terminating proxy or on loopback)");
  }
  if (!IsLoopback(config->host) && !config->security.tls() &&
      config->security.auth_token_file.empty()) {
    logger->Log(mpc::LogLevel::kWarning,
                absl::StrCat("listening on ", (*server)->bound_address(),
                             " (not loopback) in plaintext without --auth_token_file: anyone who "
                             "can reach this address can use the server; see docs/operations.md "
                             "(TLS and authentication)"));
  }
  // One line a person or a test script can read the bound ports from: the address the listener
  // is bound to (0.0.0.0 = every interface), then one to dial from this machine.
  std::cout << "mpcd: serving on " << (*server)->bound_address() << " (backend "
            << (*server)->backend().name() << ", metrics "
            << ((*server)->metrics_port() >= 0 ? absl::StrCat("http://", config->host, ":",
                                                              (*server)->metrics_port(), "/metrics")
                                               : std::string("off"))
            << ", dial " << (*server)->target() << ")" << std::endl;
  std::cout << "mpcd: security: " << mpc::DescribeSecurity(config->security) << std::endl;
  std::cout << "mpcd: version: " << mpc::cli::VersionString("mpcd") << std::endl;
  std::cout << "mpcd: open file limit: " << descriptors << std::endl;
  logger->Log(mpc::LogLevel::kInfo, "serving",
              {{"address", (*server)->bound_address()},
               {"backend", (*server)->backend().name()},
               {"metrics_port", (*server)->metrics_port()},
               {"version", mpc::cli::VersionString("mpcd")}});

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  if (listener_failed.load()) {
    logger->Log(mpc::LogLevel::kError,
                "the listener stopped accepting connections (--listener_watchdog_s); draining, "
                "then exiting 3 so that a supervisor restarts mpcd");
  } else {
    std::cout << "mpcd: " << (signal_number == SIGINT ? "SIGINT" : "SIGTERM")
              << ": draining calls in flight" << std::endl;
  }
  const bool drained = (*server)->Shutdown(config->shutdown_grace);
  server->reset();
  std::cout << "mpcd: stopped ("
            << (drained ? "every call in flight was answered"
                        : "the grace period ran out: calls still running were cancelled")
            << ")" << std::endl;
  return listener_failed.load() ? 3 : 0;
}

}  // namespace

// Every object of the run is gone before the process ends; exit() would race gRPC's threads.
int main(int argc, char** argv) { mpc::ExitWithoutTeardown(RunMpcd(argc, argv)); }
