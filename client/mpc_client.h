#ifndef MPC_CLIENT_MPC_CLIENT_H_
#define MPC_CLIENT_MPC_CLIENT_H_

// A typed C++ client for mpcd (used by mpcctl and the tests): sync and async calls with deadlines,
// gRPC errors as absl::Status (same code, same message).

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/support/status.h>

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "mpcd/v1/mpcd.grpc.pb.h"

namespace mpc {

struct MpcClientOptions {
  // Deadline of each call, from when it starts; absl::InfiniteDuration() = none.
  absl::Duration timeout = absl::Seconds(60);
  // Largest response accepted; gRPC's default (4 MiB) is too small for big batches with gains.
  int max_receive_message_bytes = 512 << 20;
  // A TCP connection of its own instead of one shared by every channel to the same target (load
  // generators use several clients to spread calls over connections).
  bool own_connection = false;
  // Wait (until the deadline) for the connection to become ready instead of failing at once with
  // UNAVAILABLE on a transient connection failure. Errors the server returns are unaffected.
  bool wait_for_ready = false;
  // A gRPC service config (JSON) for the channel: load balancing, retries, client-side health
  // checking. Empty = gRPC's defaults (pick_first over the target's addresses, no retries). See
  // ReplicatedServiceConfig for a target with several replicas.
  std::string service_config_json;

  // Transport security: TLS when use_tls, else plaintext. The tls_* fields hold PEM text.
  bool use_tls = false;
  // CA certificates the server's certificate must chain to ("" = gRPC's default roots).
  std::string tls_root_certs;
  // A client certificate and its key, for servers that require mutual TLS ("" = none).
  std::string tls_cert_chain;
  std::string tls_private_key;
  // The name the server's certificate must carry, when it differs from the target's host (e.g.
  // dialing 127.0.0.1 inside a pod whose certificate names the Service); "" = the target's host.
  std::string tls_server_name;
  // Sent with every call as "authorization: Bearer <auth_token>"; "" = none. Without use_tls it
  // crosses the network in clear text.
  std::string auth_token;
};

// Service configs for calls that must survive a replica going away. Calls that fail with
// UNAVAILABLE (a replica killed, draining, or refusing excess work) are retried with backoff, up
// to `max_attempts` attempts in all (2 to 5; gRPC caps it at 5). Every MpcService method is
// idempotent, so a retry cannot do anything twice that matters. Retries are throttled: when more
// than about 1 call in 10 fails, the channel stops retrying until successes return, so an
// overloaded fleet is not hit by a retry storm. Requests over 256 KiB (gRPC's per-call retry
// buffer) are not retried.
//
// RetryServiceConfig: retries only, for one address (a single server, or a proxy such as nginx
// or a Kubernetes ClusterIP Service in front of the replicas).
std::string RetryServiceConfig(int max_attempts = 5);
// ReplicatedServiceConfig: for a target that resolves to every replica, e.g.
// "ipv4:10.0.0.1:50051,10.0.0.2:50051" or "dns:///mpcd-headless.ns.svc.cluster.local:50051" (a
// headless Kubernetes Service): round-robin over the addresses that are up and SERVING
// (grpc.health.v1 Watch, so a draining replica stops getting calls), plus the retries.
std::string ReplicatedServiceConfig(int max_attempts = 5);

// The grpc::Status as an absl::Status: the codes are the same numbers (google/rpc/code.proto),
// and the details of its google.rpc.Status become payloads (proto/error_details.h).
absl::Status FromGrpcStatus(const grpc::Status& status);

// An asynchronous call in flight.
class AsyncCall {
 public:
  virtual ~AsyncCall() = default;
  // Asks gRPC to cancel the call; its callback still runs exactly once (with CANCELLED unless the
  // answer won the race). Safe from any thread, any number of times.
  void Cancel() { context_.TryCancel(); }

 protected:
  grpc::ClientContext context_;
};

// One Control stream (a receding-horizon session), used from one thread: Step sends a request
// and waits for its answer. The first Step carries the template; later ones the measured state.
class ControlStream {
 public:
  ControlStream(
      std::unique_ptr<grpc::ClientContext> context,
      std::unique_ptr<grpc::ClientReaderWriter<mpcd::v1::ControlRequest, mpcd::v1::ControlResponse>>
          stream);
  ~ControlStream();  // Close()s

  // The answer to `request`; the step's error (ControlResponse.error: the session goes on); or
  // the status the server ended the session with.
  absl::StatusOr<mpcd::v1::ControlResponse> Step(const mpcd::v1::ControlRequest& request);
  // Ends the session (half-close, then the server's final status). Idempotent.
  absl::Status Close();
  // Abandons the session at once (the server sees CANCELLED).
  void Cancel() { context_->TryCancel(); }

 private:
  absl::Status FinishStream();

  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientReaderWriter<mpcd::v1::ControlRequest, mpcd::v1::ControlResponse>>
      stream_;
  bool finished_ = false;
  absl::Status final_status_;
};

enum class ServingStatus { kUnknown, kServing, kNotServing, kServiceUnknown };
const char* ServingStatusName(ServingStatus status);  // "SERVING", "NOT_SERVING", ...

class MpcClient {
 public:
  template <typename Response>
  using Callback = absl::AnyInvocable<void(absl::StatusOr<Response>)>;

  // A channel to `target` ("host:port", or any gRPC target URI), plaintext or TLS per `options`.
  static absl::StatusOr<std::unique_ptr<MpcClient>> Create(const std::string& target,
                                                           const MpcClientOptions& options = {});
  MpcClient(std::shared_ptr<grpc::Channel> channel, const MpcClientOptions& options = {});

  // Blocking calls with options.timeout, or with `timeout`.
  absl::StatusOr<mpcd::v1::SolveResponse> Solve(const mpcd::v1::SolveRequest& request);
  absl::StatusOr<mpcd::v1::SolveResponse> Solve(const mpcd::v1::SolveRequest& request,
                                                absl::Duration timeout);
  absl::StatusOr<mpcd::v1::BackwardResponse> Backward(const mpcd::v1::BackwardRequest& request);
  absl::StatusOr<mpcd::v1::ListModelsResponse> ListModels();
  // grpc.health.v1.Health/Check for `service` ("" = the whole server).
  absl::StatusOr<ServingStatus> CheckHealth(const std::string& service = "");

  // Opens a Control session; `timeout` bounds the whole session (InfiniteDuration = none).
  std::unique_ptr<ControlStream> OpenControl(absl::Duration timeout = absl::InfiniteDuration());

  // Non-blocking calls: `done` runs exactly once, on a gRPC thread (it must not block for long).
  // The returned handle may be dropped; keep it to Cancel().
  std::shared_ptr<AsyncCall> SolveAsync(mpcd::v1::SolveRequest request, absl::Duration timeout,
                                        Callback<mpcd::v1::SolveResponse> done);
  std::shared_ptr<AsyncCall> BackwardAsync(mpcd::v1::BackwardRequest request,
                                           absl::Duration timeout,
                                           Callback<mpcd::v1::BackwardResponse> done);

  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  const MpcClientOptions& options() const { return options_; }

  // Waits until gRPC has let go of every async call's callback (each has run), then releases the
  // channel: so the channel's last reference is dropped here, never on a gRPC callback thread,
  // where gRPC 1.51 would shut its callback queue down from one of that queue's own threads (the
  // thread joins itself, the queue is freed, the thread polls it again: a double free). Must not
  // run inside one of this client's callbacks.
  ~MpcClient();

  // How many async calls' callbacks gRPC still holds.
  class CallbacksHeld {
   public:
    void Add();
    void Remove();
    void WaitForNone();

   private:
    absl::Mutex mu_;
    int count_ ABSL_GUARDED_BY(mu_) = 0;
  };

 private:
  // Deadline, wait-for-ready and the bearer token of one call.
  void PrepareContext(absl::Duration timeout, grpc::ClientContext* context) const;

  MpcClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<mpcd::v1::MpcService::Stub> stub_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_stub_;
  const std::shared_ptr<CallbacksHeld> callbacks_held_ = std::make_shared<CallbacksHeld>();
};

}  // namespace mpc

#endif  // MPC_CLIENT_MPC_CLIENT_H_
