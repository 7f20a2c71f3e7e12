#include "server/mpc_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <exception>
#include <limits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/security.h"
#include "solver/status_macros.h"

namespace mpc {
namespace {

// "[::1]:50051" for IPv6 literals, "127.0.0.1:50051" otherwise.
std::string JoinHostPort(const std::string& host, int port) {
  if (host.find(':') != std::string::npos && host.front() != '[') {
    return absl::StrCat("[", host, "]:", port);
  }
  return absl::StrCat(host, ":", port);
}

// A duration as a gRPC channel argument in milliseconds (an int), clamped to what fits.
int MillisecondsForGrpc(absl::Duration duration) {
  return static_cast<int>(
      std::min<std::int64_t>(absl::ToInt64Milliseconds(duration), std::numeric_limits<int>::max()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<MpcServer>> MpcServer::Create(
    const ServerConfig& config, std::unique_ptr<SolverBackend> backend,
    absl::AnyInvocable<void()> on_listener_failure) {
  MPC_RETURN_IF_ERROR(ValidateServerConfig(config));
  std::unique_ptr<MpcServer> server(new MpcServer());
  server->config_ = config;
  server->logger_ = std::make_unique<Logger>(config.log);

  if (backend == nullptr) {
    MPC_ASSIGN_OR_RETURN(backend, MakeBackend(config.backend, config.threads, config.cuda_precision,
                                              config.max_workspace_bytes));
  }
  server->backend_ = std::move(backend);
  server->metrics_ = std::make_unique<ServiceMetrics>(server->backend_->name());
  ServiceMetrics* metrics = server->metrics_.get();
  MPC_ASSIGN_OR_RETURN(ServerSecurity security, LoadServerSecurity(config.security, [metrics] {
                         metrics->ClientCertificateRefused();
                       }));
  MPC_ASSIGN_OR_RETURN(
      server->batcher_,
      DynamicBatcher::Create(config.batcher, server->backend_.get(), server->metrics_.get()));
  server->graphs_ = std::make_unique<GraphRegistry>(config.graphs);
  if (!config.model_dir.empty())
    MPC_RETURN_IF_ERROR(server->graphs_->LoadDirectory(config.model_dir));
  ServiceOptions service_options;
  service_options.limits = config.limits;
  service_options.limits.graphs = server->graphs_.get();
  service_options.max_problem_size = config.max_problem_size;
  service_options.max_message_bytes = config.max_message_bytes;
  service_options.admission = config.admission;
  service_options.max_session_bytes = config.max_session_bytes;
  service_options.retained_solve_bytes = config.retained_solve_bytes;
  service_options.backend_name = std::string(server->backend_->name());
  service_options.auth_token = std::move(security.auth_token);
  service_options.logger = server->logger_.get();
  server->service_ =
      std::make_unique<MpcService>(service_options, server->batcher_.get(), server->metrics_.get());

  // Both are process-wide switches read by every ServerBuilder built afterwards.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(JoinHostPort(config.host, config.port), security.credentials,
                           &server->port_);
  // Up to twice the limit is read, so that the service can say which limit a request broke
  // (INVALID_ARGUMENT); beyond that gRPC refuses it unread (RESOURCE_EXHAUSTED), bounding memory.
  builder.SetMaxReceiveMessageSize(static_cast<int>(std::min<std::int64_t>(
      2 * std::int64_t{config.max_message_bytes}, std::numeric_limits<int>::max())));
  // Answers are bounded at admission (--max_response_bytes); this only keeps gRPC's own check
  // consistent with it (the framing of a response adds a little).
  builder.SetMaxSendMessageSize(static_cast<int>(
      std::min<std::int64_t>(config.admission.max_response_bytes + (std::int64_t{1} << 20),
                             std::numeric_limits<int>::max())));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, config.max_concurrent_streams);
  // Every connection holds a descriptor: idle ones (and ones that never finish their handshake or
  // send their HTTP/2 settings) are closed so that they cannot pile up (docs/robustness.md §7).
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                             MillisecondsForGrpc(config.max_connection_idle));
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
                             MillisecondsForGrpc(config.handshake_timeout));
  // gRPC sets SO_REUSEPORT by default, which would let a second server silently share the port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             MillisecondsForGrpc(config.keepalive_min_ping_interval));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS,
                             config.keepalive_permit_without_calls ? 1 : 0);
  if (config.max_connection_age != absl::InfiniteDuration()) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                               MillisecondsForGrpc(config.max_connection_age));
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                               MillisecondsForGrpc(config.shutdown_grace));
  }
  builder.RegisterService(server->service_.get());
  // Reflection v1 beside the plugin's v1alpha; list_services names every service registered here.
  server->reflection_v1_ = std::make_unique<ReflectionV1Service>(std::vector<std::string>{
      kServiceName, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
      "grpc.reflection.v1.ServerReflection"});
  builder.RegisterService(server->reflection_v1_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    server->batcher_->Stop();
    return absl::UnavailableError(absl::StrCat("cannot listen on ",
                                               JoinHostPort(config.host, config.port),
                                               " (address in use or not available?)"));
  }

  if (config.metrics_port >= 0) {
    // prometheus-cpp reports a failed bind by throwing; this is the only exception we catch, and
    // it becomes a Status here so nothing above sees it.
    try {
      server->exposer_ =
          std::make_unique<prometheus::Exposer>(JoinHostPort(config.host, config.metrics_port));
    } catch (const std::exception& e) {
      server->Shutdown(absl::ZeroDuration());
      return absl::UnavailableError(absl::StrCat("cannot serve metrics on ",
                                                 JoinHostPort(config.host, config.metrics_port),
                                                 ": ", e.what()));
    }
    server->exposer_->RegisterCollectable(server->metrics_->registry());
    server->exposer_->RegisterCollectable(server->process_metrics_);
    const std::vector<int> ports = server->exposer_->GetListeningPorts();
    server->metrics_port_ = ports.empty() ? -1 : ports.front();
  }

  grpc::HealthCheckServiceInterface* health = server->server_->GetHealthCheckService();
  if (health != nullptr) {
    health->SetServingStatus(true);
    health->SetServingStatus(kServiceName, true);
  }
  if (config.listener_watchdog_period > absl::ZeroDuration()) {
    const std::string dial = server->target();
    ListenerWatchdogOptions watchdog;
    watchdog.host = dial.substr(0, dial.rfind(':'));
    if (!watchdog.host.empty() && watchdog.host.front() == '[') {
      watchdog.host = watchdog.host.substr(1, watchdog.host.size() - 2);
    }
    watchdog.port = server->port_;
    watchdog.period = config.listener_watchdog_period;
    watchdog.answer_timeout = std::max(absl::Seconds(2), config.listener_watchdog_period);
    watchdog.failures = config.listener_watchdog_failures;
    MpcServer* self = server.get();
    server->watchdog_ = std::make_unique<ListenerWatchdog>(
        watchdog, [self, on_failure = std::move(on_listener_failure)]() mutable {
          if (grpc::HealthCheckServiceInterface* h = self->server_->GetHealthCheckService()) {
            h->SetServingStatus(false);
            h->SetServingStatus(kServiceName, false);
          }
          if (on_failure) on_failure();
        });
  }
  return server;
}

MpcServer::~MpcServer() { Shutdown(config_.shutdown_grace); }

bool MpcServer::Shutdown(absl::Duration grace) {
  absl::MutexLock lock(&shutdown_mu_);
  if (shut_down_) return false;
  shut_down_ = true;
  watchdog_.reset();  // a listener closed on purpose is no failure
  bool drained = true;
  if (server_ != nullptr) {
    // Refuse new calls first, so nobody who has already seen NOT_SERVING can still get work in.
    // Our own calls in flight are answered while new ones are refused. gRPC's Shutdown(deadline)
    // alone would also wait out the grace period for every open health Watch stream (they never
    // end by themselves), so it is called only once our calls are done, with no grace left.
    service_->StartDraining();
    // NOT_SERVING for every service (open Watch streams are told), and later SetServingStatus
    // calls are ignored.
    if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
      health->Shutdown();
    }
    drained = service_->AwaitIdle(grace);
    // Closes the listener and cancels what is left (Watch streams; our calls past the grace,
    // whose queued problems the batcher then drops); returns when every call is done.
    server_->Shutdown(std::chrono::system_clock::now());
  }
  if (batcher_ != nullptr) batcher_->Stop();
  return drained;
}

std::string MpcServer::bound_address() const { return JoinHostPort(config_.host, port_); }

std::string MpcServer::target() const {
  const std::string host = (config_.host == "0.0.0.0" || config_.host.empty()) ? "127.0.0.1"
                           : config_.host == "::" || config_.host == "[::]"    ? "[::1]"
                                                                               : config_.host;
  return JoinHostPort(host, port_);
}

}  // namespace mpc
