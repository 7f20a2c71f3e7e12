#ifndef MPC_SERVER_MPC_SERVER_H_
#define MPC_SERVER_MPC_SERVER_H_

// A running mpcd: backend, metrics, batcher, MpcService, the standard health and reflection
// services, the gRPC server (plaintext or TLS) and the Prometheus endpoint, wired from a
// ServerConfig. main.cc adds
// flags and signals; tests start one on port 0.

#include <grpcpp/server.h>

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "prometheus/exposer.h"
#include "server/dynamic_batcher.h"
#include "server/listener_watchdog.h"
#include "server/logger.h"
#include "server/mpc_service.h"
#include "server/process_metrics.h"
#include "server/reflection_v1.h"
#include "server/server_config.h"
#include "server/service_metrics.h"
#include "solver/solver_backend.h"

namespace mpc {

class MpcServer {
 public:
  // The gRPC service name health reports on (besides "", the whole server).
  static constexpr char kServiceName[] = "mpcd.v1.MpcService";

  // Validates `config`, reads its TLS and token files, builds the backend (or takes `backend`, for
  // tests), starts serving and marks health SERVING. Fails (no exception, no exit) with
  // INVALID_ARGUMENT naming the flag when a security file is unreadable or wrong, and otherwise
  // when a port cannot be bound or the backend is unavailable.
  // With config.listener_watchdog_period > 0, a ListenerWatchdog checks the listener; when it
  // gives up, health turns NOT_SERVING and `on_listener_failure` runs (once, on the watchdog's
  // thread; mpcd exits 3 from it). Null: only health changes.
  static absl::StatusOr<std::unique_ptr<MpcServer>> Create(
      const ServerConfig& config, std::unique_ptr<SolverBackend> backend = nullptr,
      absl::AnyInvocable<void()> on_listener_failure = nullptr);

  // Shutdown(config.shutdown_grace) if it has not run.
  ~MpcServer();
  MpcServer(const MpcServer&) = delete;
  MpcServer& operator=(const MpcServer&) = delete;

  // Graceful stop: health turns NOT_SERVING (open Watch streams see it), the listener closes and
  // new calls are refused, calls in flight are answered (those still running after `grace` are
  // cancelled), then the batcher stops. Blocks until done; idempotent. True when every call in
  // flight was answered within `grace` (false when some were cancelled, or on a second call).
  bool Shutdown(absl::Duration grace);

  int port() const { return port_; }                  // the bound gRPC port
  int metrics_port() const { return metrics_port_; }  // the bound /metrics port; -1 if none
  // "host:port" a client on this machine can dial.
  std::string target() const;
  // "host:port" the gRPC listener is bound to ("0.0.0.0:50051" = every IPv4 interface).
  std::string bound_address() const;

  DynamicBatcher& batcher() { return *batcher_; }
  ServiceMetrics& metrics() { return *metrics_; }
  SolverBackend& backend() { return *backend_; }

 private:
  MpcServer() = default;

  ServerConfig config_;
  int port_ = 0;
  int metrics_port_ = -1;
  // Declared in construction order, so destruction runs the other way: the endpoint and the gRPC
  // server go before the service, batcher, metrics and backend they use.
  std::unique_ptr<Logger> logger_;         // before service_, which points to it
  std::unique_ptr<GraphRegistry> graphs_;  // before service_, which points to it
  std::unique_ptr<SolverBackend> backend_;
  std::unique_ptr<ServiceMetrics> metrics_;
  std::unique_ptr<DynamicBatcher> batcher_;
  std::unique_ptr<MpcService> service_;
  std::unique_ptr<ReflectionV1Service> reflection_v1_;
  std::unique_ptr<grpc::Server> server_;
  // process_* (the exposer holds it weakly: declared before it, destroyed after it).
  std::shared_ptr<ProcessMetrics> process_metrics_ = std::make_shared<ProcessMetrics>();
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::unique_ptr<ListenerWatchdog> watchdog_;

  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

}  // namespace mpc

#endif  // MPC_SERVER_MPC_SERVER_H_
