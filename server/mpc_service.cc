#include "server/mpc_service.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "proto/error_details.h"
#include "server/control_session.h"
#include "server/status_conversion.h"
#include "solver/gradients.h"
#include "solver/models/model_registry.h"
#include "solver/status_macros.h"

namespace mpc {
namespace {

// The call's deadline as absl::Time; InfiniteFuture when the client set none.
absl::Time DeadlineOf(const grpc::CallbackServerContext& context) {
  const std::chrono::system_clock::time_point deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

// gRPC reads messages up to twice the limit (see MpcServer::Create) so that this can name it.
absl::Status CheckMessageSize(const google::protobuf::Message& request, std::int64_t limit) {
  const std::int64_t size = static_cast<std::int64_t>(request.ByteSizeLong());
  if (size <= limit) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("request: ", size, " bytes, over the server's limit of ", limit,
                   " bytes (--max_message_bytes); split the problems over several requests"));
}

absl::Status CheckProblemSizes(const std::vector<Problem>& problems, std::int64_t limit) {
  for (std::size_t i = 0; i < problems.size(); ++i) {
    MPC_RETURN_IF_ERROR(
        CheckWorkspaceSize(problems[i].shape, limit, absl::StrCat("problems[", i, "]")));
  }
  return absl::OkStatus();
}

// One Solve or Backward RPC whose problems go through the batcher. It owns the converted problems
// and their answers, counts its jobs down, and answers the call when the last one is done. gRPC
// owns it from the moment the handler returns it until OnDone, which runs only after Finish, and
// Finish runs only after every job is done: so no job ever outlives it.
class BatchedCall : public grpc::ServerUnaryReactor {
 public:
  BatchedCall(const CallLog& log, DynamicBatcher* batcher, ServiceMetrics* metrics,
              CallTracker* calls)
      : log_(log), batcher_(batcher), metrics_(metrics), calls_(calls) {}

  void OnCancel() override {
    // Queued jobs see the flag and are dropped; problems being solved stop at their next iteration
    // (SolveInterrupt).
    cancelled_.store(true, std::memory_order_release);
    metrics_->RequestCancelled(log_.method());
    batcher_->Wake();
  }
  void OnDone() override { delete this; }

  // The request's launch_immediately, for every job Submit makes (set before Start).
  void set_launch_immediately(bool launch_immediately) { launch_immediately_ = launch_immediately; }

 protected:
  // Lets the solver stop this call's problems when its deadline passes or its client leaves
  // (deadline_ is set before any job is submitted).
  const SolveInterrupt* interrupt() const { return &interrupt_; }

  // Submits one job per problem; job i reports into results_[i]. `make_job(i)` fills the kind and
  // the pointers; the rest is common.
  template <typename MakeJob>
  void Submit(int count, absl::Time deadline, MakeJob make_job) {
    interrupt_.deadline = SolveDeadline(deadline, absl::Now());
    results_.resize(count);
    remaining_.store(count, std::memory_order_relaxed);
    std::vector<SolveJob> jobs;
    jobs.reserve(count);
    for (int i = 0; i < count; ++i) {
      SolveJob job = make_job(i);
      job.deadline = deadline;
      job.launch_immediately = launch_immediately_;
      job.cancelled = &cancelled_;
      job.done = [this, i](const JobResult& result) { JobDone(i, result); };
      jobs.push_back(std::move(job));
    }
    batcher_->Submit(std::move(jobs));
  }

  // Writes the answers into the response (called once, when every job succeeded).
  virtual void FillResponse(double queue_seconds, double solve_seconds, int batch_size) = 0;

 private:
  void JobDone(int index, const JobResult& result) {
    results_[index] = result;
    // acq_rel: the last job's thread sees every other job's result and answer.
    if (remaining_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    Complete();
  }

  void Complete() {
    absl::Status status;
    for (const JobResult& result : results_) {
      if (!result.status.ok()) {
        status = result.status;
        break;
      }
    }
    if (status.ok()) {
      // A request spread over several launches spent the sum of their times in the backend.
      double queue_seconds = 0.0;
      double solve_seconds = 0.0;
      int batch_size = 0;
      absl::flat_hash_map<std::uint64_t, double> launches;
      for (const JobResult& result : results_) {
        queue_seconds = std::max(queue_seconds, absl::ToDoubleSeconds(result.queue_time));
        batch_size = std::max(batch_size, result.batch_size);
        launches.emplace(result.batch_id, absl::ToDoubleSeconds(result.solve_time));
      }
      for (const auto& [id, seconds] : launches) solve_seconds += seconds;
      FillResponse(queue_seconds, solve_seconds, batch_size);
    }
    log_.Finished(status, {LogField("problems", static_cast<std::int64_t>(results_.size()))});
    CallTracker* calls = calls_;
    // Nothing may touch `this` after Finish: OnDone may already be deleting it.
    Finish(ToGrpcStatus(status));
    calls->Finish();
  }

  const CallLog log_;
  DynamicBatcher* const batcher_;
  ServiceMetrics* const metrics_;
  CallTracker* const calls_;
  std::atomic<bool> cancelled_{false};
  SolveInterrupt interrupt_{absl::InfiniteFuture(), &cancelled_};
  std::atomic<int> remaining_{0};
  std::vector<JobResult> results_;
  bool launch_immediately_ = false;
};

class SolveCall final : public BatchedCall {
 public:
  // `request` is gRPC's, valid until OnDone. With its retain_for_backward, `retained` keeps the
  // problems and the answer.
  SolveCall(const CallLog& log, DynamicBatcher* batcher, ServiceMetrics* metrics,
            CallTracker* calls, std::vector<Problem> problems,
            const mpcd::v1::SolveRequest* request, RetainedSolves* retained, std::string backend,
            mpcd::v1::SolveResponse* response)
      : BatchedCall(log, batcher, metrics, calls),
        problems_(std::move(problems)),
        solutions_(problems_.size()),
        request_(request),
        retained_(request->retain_for_backward() ? retained : nullptr),
        backend_(std::move(backend)),
        response_(response) {}

  void Start(absl::Time deadline) {
    for (Problem& problem : problems_) problem.interrupt = interrupt();
    Submit(static_cast<int>(problems_.size()), deadline, [this](int i) {
      SolveJob job;
      job.kind = JobKind::kSolve;
      job.problem = &problems_[i];
      job.solution = &solutions_[i];
      job.bytes = ApproximateBytes(problems_[i]);
      return job;
    });
  }

 private:
  void FillResponse(double queue_seconds, double solve_seconds, int batch_size) override {
    WriteSolutions(solutions_, problems_, request_->response_encoding(),
                   request_->stacked_response(), response_);
    if (retained_ != nullptr) {
      // The problems are done with: the retained Solve takes them.
      response_->set_retained_solve(retained_->Retain(
          RetainedSolves::BackwardPart(*request_, *response_), std::move(problems_)));
    }
    response_->mutable_timing()->set_queue_seconds(queue_seconds);
    response_->mutable_timing()->set_solve_seconds(solve_seconds);
    response_->set_batch_size(static_cast<std::uint32_t>(batch_size));
    response_->set_backend(backend_);
  }

  std::vector<Problem> problems_;  // their interrupt is set at Start; retained after the answer
  std::vector<Solution> solutions_;
  const mpcd::v1::SolveRequest* const request_;
  RetainedSolves* const retained_;  // null: nothing kept
  const std::string backend_;
  mpcd::v1::SolveResponse* const response_;
};

class BackwardCall final : public BatchedCall {
 public:
  // `request` is gRPC's, valid until OnDone; the answer's shapes follow the request's inputs.
  // `merged` (when not null) is `request` with a retained Solve's part merged in, and what the
  // inputs were read from.
  BackwardCall(const CallLog& log, DynamicBatcher* batcher, ServiceMetrics* metrics,
               CallTracker* calls, BackwardInputs inputs, const mpcd::v1::BackwardRequest* request,
               std::unique_ptr<mpcd::v1::BackwardRequest> merged, std::string backend,
               mpcd::v1::BackwardResponse* response)
      : BatchedCall(log, batcher, metrics, calls),
        inputs_(std::move(inputs)),
        gradients_(inputs_.items.size()),
        merged_(std::move(merged)),
        request_(merged_ != nullptr ? merged_.get() : request),
        backend_(std::move(backend)),
        response_(response) {}

  void Start(absl::Time deadline) {
    for (Problem& problem : inputs_.problems) problem.interrupt = interrupt();
    Submit(static_cast<int>(inputs_.items.size()), deadline, [this](int i) {
      const BackwardProblem& item = inputs_.items[i];
      SolveJob job;
      job.kind = JobKind::kBackward;
      job.backward = &item;
      job.gradient = &gradients_[i];
      job.bytes = ApproximateBytes(*item.problem) +
                  sizeof(double) * (item.x.size() + item.u.size() + item.dl_dx.size() +
                                    item.dl_du.size() + 2 * BackwardAnswerDoubles(*item.problem));
      return job;
    });
  }

 private:
  void FillResponse(double queue_seconds, double solve_seconds, int batch_size) override {
    WriteGradients(*request_, gradients_, inputs_.problems, response_);
    response_->mutable_timing()->set_queue_seconds(queue_seconds);
    response_->mutable_timing()->set_solve_seconds(solve_seconds);
    response_->set_batch_size(static_cast<std::uint32_t>(batch_size));
    response_->set_backend(backend_);
  }

  // Owns the problems its BackwardProblems point into (moving keeps those pointers valid); their
  // interrupt is set at Start.
  BackwardInputs inputs_;
  std::vector<ProblemGradient> gradients_;
  const std::unique_ptr<mpcd::v1::BackwardRequest> merged_;
  const mpcd::v1::BackwardRequest* const request_;
  const std::string backend_;
  mpcd::v1::BackwardResponse* const response_;
};

// Answers at once, for calls that never reach the batcher (the call was counted by TryStart).
grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context, const CallLog& log,
                                    const absl::Status& status, CallTracker* calls) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  log.Finished(status);
  reactor->Finish(ToGrpcStatus(status));
  calls->Finish();
  return reactor;
}

// Answers `status` at once, for calls Admit refused (not counted by the CallTracker).
grpc::ServerUnaryReactor* Refuse(grpc::CallbackServerContext* context, const CallLog& log,
                                 const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  log.Finished(status);
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// A Control stream refused before anything was read: it only finishes with `status`.
class RefusedStream final
    : public grpc::ServerBidiReactor<mpcd::v1::ControlRequest, mpcd::v1::ControlResponse> {
 public:
  explicit RefusedStream(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

MpcService::MpcService(const ServiceOptions& options, DynamicBatcher* batcher,
                       ServiceMetrics* metrics)
    : options_(options),
      batcher_(batcher),
      metrics_(metrics),
      auth_(options.auth_token),
      sessions_(options.max_session_bytes, metrics),
      retained_(options.retained_solve_bytes, metrics) {}

absl::Status MpcService::Admit(const grpc::CallbackServerContext& context) {
  MPC_RETURN_IF_ERROR(auth_.Check(context.client_metadata()));
  if (!calls_.TryStart()) {
    // Another replica can answer at once.
    return WithRetryDelay(
        absl::UnavailableError("server is shutting down; retry on another replica"),
        absl::ZeroDuration());
  }
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* MpcService::Solve(grpc::CallbackServerContext* context,
                                            const mpcd::v1::SolveRequest* request,
                                            mpcd::v1::SolveResponse* response) {
  CallLog log(RpcMethod::kSolve, context, metrics_, options_.logger);
  log.Started();
  if (absl::Status admitted = Admit(*context); !admitted.ok()) {
    return Refuse(context, log, admitted);
  }
  if (absl::Status status = CheckMessageSize(*request, options_.max_message_bytes); !status.ok()) {
    return FinishNow(context, log, status, &calls_);
  }
  absl::StatusOr<std::vector<Problem>> problems = ToProblems(*request, options_.limits);
  if (!problems.ok()) {
    return FinishNow(context, log, problems.status(), &calls_);
  }
  if (absl::Status status = CheckProblemSizes(*problems, options_.max_problem_size); !status.ok()) {
    return FinishNow(context, log, status, &calls_);
  }
  if (absl::Status status = CheckSolveAdmission(*problems, options_.admission); !status.ok()) {
    return FinishNow(context, log, status, &calls_);
  }
  auto* call = new SolveCall(log, batcher_, metrics_, &calls_, *std::move(problems), request,
                             &retained_, options_.backend_name, response);
  call->set_launch_immediately(request->launch_immediately());
  // The batcher may finish the call before this returns (e.g. a full queue): gRPC allows Finish
  // before the reactor is bound and runs OnDone only afterwards, so returning `call` stays valid.
  call->Start(DeadlineOf(*context));
  return call;
}

grpc::ServerUnaryReactor* MpcService::Backward(grpc::CallbackServerContext* context,
                                               const mpcd::v1::BackwardRequest* request,
                                               mpcd::v1::BackwardResponse* response) {
  CallLog log(RpcMethod::kBackward, context, metrics_, options_.logger);
  log.Started();
  if (absl::Status admitted = Admit(*context); !admitted.ok()) {
    return Refuse(context, log, admitted);
  }
  if (absl::Status status = CheckMessageSize(*request, options_.max_message_bytes); !status.ok()) {
    return FinishNow(context, log, status, &calls_);
  }
  absl::StatusOr<ResolvedBackward> resolved = retained_.Resolve(*request);
  if (!resolved.ok()) {
    return FinishNow(context, log, resolved.status(), &calls_);
  }
  std::unique_ptr<mpcd::v1::BackwardRequest> merged = std::move(resolved->merged);
  absl::StatusOr<BackwardInputs> inputs =
      ToBackwardProblems(merged != nullptr ? *merged : *request, options_.limits,
                         resolved->retained != nullptr ? &resolved->retained->problems : nullptr);
  if (!inputs.ok()) {
    return FinishNow(context, log, inputs.status(), &calls_);
  }
  if (absl::Status status = CheckProblemSizes(inputs->problems, options_.max_problem_size);
      !status.ok()) {
    return FinishNow(context, log, status, &calls_);
  }
  if (absl::Status status = CheckBackwardAdmission(inputs->problems, options_.admission);
      !status.ok()) {
    return FinishNow(context, log, status, &calls_);
  }
  // ToBackwardProblems validated every item with ValidateBackwardProblem, the check the backends'
  // size check (ValidateBackwardBatch) is a subset of, so one client's request never fails the
  // others' in its batch, and no value is scanned twice.
  auto* call = new BackwardCall(log, batcher_, metrics_, &calls_, *std::move(inputs), request,
                                std::move(merged), options_.backend_name, response);
  call->set_launch_immediately(request->launch_immediately());
  call->Start(DeadlineOf(*context));  // as in Solve: Finish may run before this returns
  return call;
}

grpc::ServerUnaryReactor* MpcService::ListModels(grpc::CallbackServerContext* context,
                                                 const mpcd::v1::ListModelsRequest* /*request*/,
                                                 mpcd::v1::ListModelsResponse* response) {
  CallLog log(RpcMethod::kListModels, context, metrics_, options_.logger);
  log.Started();
  if (absl::Status admitted = Admit(*context); !admitted.ok()) {
    return Refuse(context, log, admitted);
  }
  ToListModelsResponse(BuiltinModels(), response);
  if (options_.limits.graphs != nullptr) AddGraphModels(options_.limits.graphs->named(), response);
  return FinishNow(context, log, absl::OkStatus(), &calls_);
}

grpc::ServerBidiReactor<mpcd::v1::ControlRequest, mpcd::v1::ControlResponse>* MpcService::Control(
    grpc::CallbackServerContext* context) {
  // The token is checked once, before the first message is read; a refused stream counts as one
  // refused request.
  CallLog log(RpcMethod::kControl, context, metrics_, options_.logger);
  if (absl::Status auth = auth_.Check(context->client_metadata()); !auth.ok()) {
    log.Started();
    log.Finished(auth);
    return new RefusedStream(ToGrpcStatus(auth));
  }
  // Steps, not streams, are counted as calls (see ControlSession), so an idle session never holds
  // up a drain.
  return new ControlSession(
      ControlSession::Dependencies{options_.limits, options_.max_problem_size,
                                   options_.max_message_bytes, options_.admission, &sessions_,
                                   batcher_, metrics_, &calls_},
      log, DeadlineOf(*context));
}

}  // namespace mpc
