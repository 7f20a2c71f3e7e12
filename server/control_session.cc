#include "server/control_session.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "proto/error_details.h"
#include "server/status_conversion.h"
#include "solver/status_macros.h"

namespace mpc {

ControlSession::ControlSession(const Dependencies& dependencies, const CallLog& log,
                               absl::Time deadline)
    : deps_(dependencies), log_(log), deadline_(deadline) {
  StartRead(&request_);
}

ControlSession::~ControlSession() {
  if (reserved_bytes_ > 0) deps_.sessions->Release(reserved_bytes_);
}

void ControlSession::OnReadDone(bool ok) {
  if (!ok) {
    // The client closed its side (or left): no step is in flight, so the session is over.
    EndSession(absl::OkStatus());
    return;
  }
  ++steps_;
  log_.Started();
  if (!deps_.calls->TryStart()) {
    const absl::Status status = WithRetryDelay(
        absl::UnavailableError("server is shutting down; reconnect to another replica"),
        absl::ZeroDuration());
    log_.Finished(status, {LogField("step", steps_)});
    EndSession(status);
    return;
  }
  if (absl::Status status = PrepareStep(); !status.ok()) {
    if (started_) {
      // A bad later message costs its own step only: the template and the warm start are as
      // they were (ApplyControlStep changes nothing on error).
      AnswerStepError(status);
      return;
    }
    EndStep(status);
    EndSession(status);
    return;
  }
  SubmitStep();
}

absl::Status ControlSession::CheckStepTimeout() const {
  const double seconds = request_.step_timeout_seconds();
  if (!(seconds >= 0.0) || std::isinf(seconds)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "step_timeout_seconds: must be a finite number of seconds >= 0, got ", seconds));
  }
  return absl::OkStatus();
}

void ControlSession::SetStepDeadline() {
  step_deadline_ = deadline_;
  const double seconds = request_.step_timeout_seconds();
  if (seconds > 0.0) {
    step_deadline_ = std::min(step_deadline_, absl::Now() + absl::Seconds(seconds));
  }
  interrupt_.deadline = SolveDeadline(step_deadline_, absl::Now());
}

absl::Status ControlSession::PrepareStep() {
  if (const std::int64_t size = static_cast<std::int64_t>(request_.ByteSizeLong());
      size > deps_.max_message_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("request: ", size, " bytes, over the server's limit of ",
                     deps_.max_message_bytes, " bytes (--max_message_bytes)"));
  }
  MPC_RETURN_IF_ERROR(CheckStepTimeout());
  if (!started_) {
    MPC_ASSIGN_OR_RETURN(problem_, ToControlProblem(request_, deps_.limits));
    MPC_RETURN_IF_ERROR(CheckWorkspaceSize(problem_.shape, deps_.max_problem_size, "problem"));
    MPC_RETURN_IF_ERROR(CheckSolveAdmission({problem_}, deps_.admission));
    // What the session keeps between steps: the template (as a Problem and as the last message
    // read, whose buffers protobuf keeps) and the plan.
    const std::int64_t bytes = static_cast<std::int64_t>(ApproximateBytes(problem_)) +
                               static_cast<std::int64_t>(request_.SpaceUsedLong());
    MPC_RETURN_IF_ERROR(deps_.sessions->Reserve(bytes));
    reserved_bytes_ = bytes;
    problem_.interrupt = &interrupt_;
    real_time_iteration_ = request_.real_time_iteration();
    started_ = true;
    SetStepDeadline();
    return absl::OkStatus();
  }
  MPC_RETURN_IF_ERROR(ApplyControlStep(request_, &problem_));
  ShiftPlanIntoWarmStart(plan_, &problem_);
  // SQP-RTI: one iteration from the shifted plan (the template's step solved to convergence).
  if (real_time_iteration_) problem_.options.max_iterations = 1;
  SetStepDeadline();
  return absl::OkStatus();
}

void ControlSession::SubmitStep() {
  SolveJob job;
  job.kind = JobKind::kSolve;
  job.problem = &problem_;
  job.solution = &plan_;
  job.bytes = ApproximateBytes(problem_);
  job.deadline = step_deadline_;
  job.cancelled = &cancelled_;
  job.done = [this](const JobResult& result) { StepDone(result); };
  std::vector<SolveJob> jobs;
  jobs.push_back(std::move(job));
  deps_.batcher->Submit(std::move(jobs));
}

void ControlSession::StepDone(const JobResult& result) {
  // A step whose own timeout passed in the queue has no plan, but the session goes on; any other
  // failure (the client left, the stream's deadline, the server stopping) ends it.
  const bool step_expired = result.status.code() == absl::StatusCode::kDeadlineExceeded &&
                            step_deadline_ < deadline_ &&
                            !cancelled_.load(std::memory_order_acquire);
  if (step_expired) {
    AnswerStepError(result.status);
    return;
  }
  if (!result.status.ok()) {
    EndStep(result.status);
    EndSession(result.status);
    return;
  }
  response_.Clear();
  ToControlResponse(problem_, plan_, &response_);
  step_status_ = absl::OkStatus();
  StartWrite(&response_);
}

void ControlSession::AnswerStepError(const absl::Status& status) {
  response_.Clear();
  response_.mutable_error()->set_code(static_cast<std::int32_t>(status.code()));
  response_.mutable_error()->set_message(BoundedMessage(status.message()));
  step_status_ = status;
  StartWrite(&response_);
}

void ControlSession::OnWriteDone(bool ok) {
  if (!ok) {
    // The stream broke (the client left); the answer was computed but could not be delivered.
    const absl::Status left = absl::CancelledError("the client left the Control session");
    EndStep(left);
    EndSession(left);
    return;
  }
  EndStep(step_status_);
  StartRead(&request_);
}

void ControlSession::OnCancel() {
  cancelled_.store(true, std::memory_order_release);
  deps_.metrics->RequestCancelled(RpcMethod::kControl);
  deps_.batcher->Wake();
}

void ControlSession::EndStep(const absl::Status& status) {
  log_.Finished(status, {LogField("step", steps_)});
  deps_.calls->Finish();
}

void ControlSession::EndSession(const absl::Status& status) { Finish(ToGrpcStatus(status)); }

}  // namespace mpc
