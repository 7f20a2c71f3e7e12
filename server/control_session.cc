#include "server/control_session.h"

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
    EndStep(status);
    EndSession(status);
    return;
  }
  SubmitStep();
}

absl::Status ControlSession::PrepareStep() {
  if (const std::int64_t size = static_cast<std::int64_t>(request_.ByteSizeLong());
      size > deps_.max_message_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("request: ", size, " bytes, over the server's limit of ",
                     deps_.max_message_bytes, " bytes (--max_message_bytes)"));
  }
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
    started_ = true;
    return absl::OkStatus();
  }
  MPC_RETURN_IF_ERROR(ApplyControlStep(request_, &problem_));
  ShiftPlanIntoWarmStart(plan_, &problem_);
  return absl::OkStatus();
}

void ControlSession::SubmitStep() {
  SolveJob job;
  job.kind = JobKind::kSolve;
  job.problem = &problem_;
  job.solution = &plan_;
  job.bytes = ApproximateBytes(problem_);
  job.deadline = deadline_;
  job.cancelled = &cancelled_;
  job.done = [this](const JobResult& result) { StepDone(result); };
  std::vector<SolveJob> jobs;
  jobs.push_back(std::move(job));
  deps_.batcher->Submit(std::move(jobs));
}

void ControlSession::StepDone(const JobResult& result) {
  if (!result.status.ok()) {
    EndStep(result.status);
    EndSession(result.status);
    return;
  }
  ToControlResponse(problem_, plan_, &response_);
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
  EndStep(absl::OkStatus());
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
