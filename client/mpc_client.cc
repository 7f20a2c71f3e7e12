#include "client/mpc_client.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <grpcpp/support/validate_service_config.h>

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/process_lifetime.h"
#include "proto/error_details.h"

namespace mpc {
namespace {

// Before main: every binary with the client links this file (common/process_lifetime.h says why).
[[maybe_unused]] const bool kOpenSslKeptUntilExit = KeepOpenSslUntilExit();

// One async call's state, alive until its callback has run (the gRPC callback holds a reference).
template <typename Request, typename Response>
class CallState final : public AsyncCall {
 public:
  CallState(Request request, MpcClient::Callback<Response> done)
      : request_(std::move(request)), done_(std::move(done)) {}

  grpc::ClientContext* context() { return &context_; }
  const Request* request() const { return &request_; }
  Response* response() { return &response_; }
  void Done(const grpc::Status& status) {
    if (status.ok()) {
      done_(std::move(response_));
    } else {
      done_(FromGrpcStatus(status));
    }
  }

 private:
  Request request_;
  Response response_;
  MpcClient::Callback<Response> done_;
};

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(
    const MpcClientOptions& options) {
  if (!options.use_tls) {
    if (!options.tls_root_certs.empty() || !options.tls_cert_chain.empty() ||
        !options.tls_private_key.empty() || !options.tls_server_name.empty()) {
      return absl::InvalidArgumentError("tls_*: set use_tls to use TLS settings");
    }
    return grpc::InsecureChannelCredentials();
  }
  if (options.tls_cert_chain.empty() != options.tls_private_key.empty()) {
    return absl::InvalidArgumentError(
        "tls_cert_chain and tls_private_key: give both (mutual TLS) or neither");
  }
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = options.tls_root_certs;
  ssl.pem_cert_chain = options.tls_cert_chain;
  ssl.pem_private_key = options.tls_private_key;
  return grpc::SslCredentials(ssl);
}

// The callback gRPC holds for an async call: runs the call's Done, and counts in the client's
// CallbacksHeld for as long as gRPC holds it. It lets go of the call's state first (and with the
// last handle gone, of its context and the channel reference that holds), then counts out.
template <class State>
class HeldCallback {
 public:
  HeldCallback(std::shared_ptr<MpcClient::CallbacksHeld> held, std::shared_ptr<State> state)
      : held_(std::move(held)), state_(std::move(state)) {
    held_->Add();
  }
  HeldCallback(const HeldCallback& other) : held_(other.held_), state_(other.state_) {
    held_->Add();
  }
  HeldCallback& operator=(const HeldCallback&) = delete;
  ~HeldCallback() {
    state_.reset();
    held_->Remove();
  }

  void operator()(const grpc::Status& status) { state_->Done(status); }

 private:
  const std::shared_ptr<MpcClient::CallbacksHeld> held_;
  std::shared_ptr<State> state_;
};

}  // namespace

void MpcClient::CallbacksHeld::Add() {
  absl::MutexLock lock(&mu_);
  ++count_;
}

void MpcClient::CallbacksHeld::Remove() {
  absl::MutexLock lock(&mu_);
  --count_;
}

void MpcClient::CallbacksHeld::WaitForNone() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int* count) { return *count == 0; }, &count_));
}

MpcClient::~MpcClient() { callbacks_held_->WaitForNone(); }

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return FromRichStatus(static_cast<absl::StatusCode>(status.error_code()), status.error_message(),
                        status.error_details());
}

const char* ServingStatusName(ServingStatus status) {
  switch (status) {
    case ServingStatus::kUnknown:
      return "UNKNOWN";
    case ServingStatus::kServing:
      return "SERVING";
    case ServingStatus::kNotServing:
      return "NOT_SERVING";
    case ServingStatus::kServiceUnknown:
      return "SERVICE_UNKNOWN";
  }
  return "UNKNOWN";
}

namespace {

std::string ServiceConfig(absl::string_view balancing, int max_attempts) {
  return absl::StrCat(R"({)", balancing, R"(
  "retryThrottling": {"maxTokens": 100, "tokenRatio": 0.1},
  "methodConfig": [{
    "name": [{"service": "mpcd.v1.MpcService"}],
    "retryPolicy": {
      "maxAttempts": )",
                      max_attempts, R"(,
      "initialBackoff": "0.02s",
      "maxBackoff": "0.5s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
})");
}

}  // namespace

std::string RetryServiceConfig(int max_attempts) { return ServiceConfig("", max_attempts); }

std::string ReplicatedServiceConfig(int max_attempts) {
  return ServiceConfig(R"(
  "loadBalancingConfig": [{"round_robin": {}}],
  "healthCheckConfig": {"serviceName": ""},)",
                       max_attempts);
}

absl::StatusOr<std::unique_ptr<MpcClient>> MpcClient::Create(const std::string& target,
                                                             const MpcClientOptions& options) {
  if (target.empty()) return absl::InvalidArgumentError("target: must not be empty");
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("timeout: must be > 0");
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  args.SetMaxSendMessageSize(-1);
  if (options.own_connection) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  if (!options.service_config_json.empty()) {
    const std::string error =
        grpc::experimental::ValidateServiceConfigJSON(options.service_config_json);
    if (!error.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("service_config_json: ", error));
    }
    args.SetServiceConfigJSON(options.service_config_json);
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      ChannelCredentials(options);
  if (!credentials.ok()) return credentials.status();
  if (!options.tls_server_name.empty()) {
    args.SetSslTargetNameOverride(options.tls_server_name);
  }
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(target, *credentials, args);
  if (channel == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("target: cannot make a channel to ", target));
  }
  return std::make_unique<MpcClient>(std::move(channel), options);
}

MpcClient::MpcClient(std::shared_ptr<grpc::Channel> channel, const MpcClientOptions& options)
    : options_(options),
      channel_(std::move(channel)),
      stub_(mpcd::v1::MpcService::NewStub(channel_)),
      health_stub_(grpc::health::v1::Health::NewStub(channel_)) {}

void MpcClient::PrepareContext(absl::Duration timeout, grpc::ClientContext* context) const {
  if (options_.wait_for_ready) context->set_wait_for_ready(true);
  if (!options_.auth_token.empty()) {
    context->AddMetadata("authorization", absl::StrCat("Bearer ", options_.auth_token));
  }
  if (timeout == absl::InfiniteDuration()) return;
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::microseconds(absl::ToInt64Microseconds(timeout)));
}

absl::StatusOr<mpcd::v1::SolveResponse> MpcClient::Solve(const mpcd::v1::SolveRequest& request) {
  return Solve(request, options_.timeout);
}

absl::StatusOr<mpcd::v1::SolveResponse> MpcClient::Solve(const mpcd::v1::SolveRequest& request,
                                                         absl::Duration timeout) {
  grpc::ClientContext context;
  PrepareContext(timeout, &context);
  mpcd::v1::SolveResponse response;
  const grpc::Status status = stub_->Solve(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

std::unique_ptr<ControlStream> MpcClient::OpenControl(absl::Duration timeout) {
  auto context = std::make_unique<grpc::ClientContext>();
  PrepareContext(timeout, context.get());
  auto stream = stub_->Control(context.get());
  return std::make_unique<ControlStream>(std::move(context), std::move(stream));
}

ControlStream::ControlStream(
    std::unique_ptr<grpc::ClientContext> context,
    std::unique_ptr<grpc::ClientReaderWriter<mpcd::v1::ControlRequest, mpcd::v1::ControlResponse>>
        stream)
    : context_(std::move(context)), stream_(std::move(stream)) {}

ControlStream::~ControlStream() { Close().IgnoreError(); }

absl::StatusOr<mpcd::v1::ControlResponse> ControlStream::Step(
    const mpcd::v1::ControlRequest& request) {
  if (finished_) {
    return absl::FailedPreconditionError(
        absl::StrCat("the Control session has ended: ", final_status_.ToString()));
  }
  mpcd::v1::ControlResponse response;
  // A failed Write or Read means the server ended the stream: its status says why.
  if (!stream_->Write(request) || !stream_->Read(&response)) {
    absl::Status status = FinishStream();
    if (status.ok()) status = absl::UnknownError("the server ended the Control session");
    return status;
  }
  // A step without a plan; the session goes on.
  if (response.has_error()) {
    return absl::Status(static_cast<absl::StatusCode>(response.error().code()),
                        response.error().message());
  }
  return response;
}

absl::Status ControlStream::Close() {
  if (finished_) return final_status_;
  stream_->WritesDone();
  return FinishStream();
}

absl::Status ControlStream::FinishStream() {
  final_status_ = FromGrpcStatus(stream_->Finish());
  finished_ = true;
  return final_status_;
}

absl::StatusOr<mpcd::v1::BackwardResponse> MpcClient::Backward(
    const mpcd::v1::BackwardRequest& request) {
  grpc::ClientContext context;
  PrepareContext(options_.timeout, &context);
  mpcd::v1::BackwardResponse response;
  const grpc::Status status = stub_->Backward(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<mpcd::v1::ListModelsResponse> MpcClient::ListModels() {
  grpc::ClientContext context;
  PrepareContext(options_.timeout, &context);
  mpcd::v1::ListModelsResponse response;
  const grpc::Status status = stub_->ListModels(&context, mpcd::v1::ListModelsRequest(), &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<ServingStatus> MpcClient::CheckHealth(const std::string& service) {
  grpc::ClientContext context;
  PrepareContext(options_.timeout, &context);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = health_stub_->Check(&context, request, &response);
  // The standard says an unknown service is NOT_FOUND; report it as a status, not an error.
  if (status.error_code() == grpc::StatusCode::NOT_FOUND) return ServingStatus::kServiceUnknown;
  if (!status.ok()) return FromGrpcStatus(status);
  switch (response.status()) {
    case grpc::health::v1::HealthCheckResponse::SERVING:
      return ServingStatus::kServing;
    case grpc::health::v1::HealthCheckResponse::NOT_SERVING:
      return ServingStatus::kNotServing;
    case grpc::health::v1::HealthCheckResponse::SERVICE_UNKNOWN:
      return ServingStatus::kServiceUnknown;
    default:
      return ServingStatus::kUnknown;
  }
}

std::shared_ptr<AsyncCall> MpcClient::SolveAsync(mpcd::v1::SolveRequest request,
                                                 absl::Duration timeout,
                                                 Callback<mpcd::v1::SolveResponse> done) {
  using State = CallState<mpcd::v1::SolveRequest, mpcd::v1::SolveResponse>;
  auto state = std::make_shared<State>(std::move(request), std::move(done));
  PrepareContext(timeout, state->context());
  stub_->async()->Solve(state->context(), state->request(), state->response(),
                        HeldCallback<State>(callbacks_held_, state));
  return state;
}

std::shared_ptr<AsyncCall> MpcClient::BackwardAsync(mpcd::v1::BackwardRequest request,
                                                    absl::Duration timeout,
                                                    Callback<mpcd::v1::BackwardResponse> done) {
  using State = CallState<mpcd::v1::BackwardRequest, mpcd::v1::BackwardResponse>;
  auto state = std::make_shared<State>(std::move(request), std::move(done));
  PrepareContext(timeout, state->context());
  stub_->async()->Backward(state->context(), state->request(), state->response(),
                           HeldCallback<State>(callbacks_held_, state));
  return state;
}

}  // namespace mpc
