#ifndef MPC_SERVER_CONTROL_SESSION_H_
#define MPC_SERVER_CONTROL_SESSION_H_

// One Control stream (DESIGN §5): a receding-horizon session. Each ControlRequest becomes one
// SolveJob in the dynamic batcher, so the steps of many robots' sessions (and Solve requests of the
// same shape) share backend launches. Steps are strictly sequential within a session: read a
// request, solve it, write its answer, then read the next, warm-starting from the shifted plan.
//
// A robot's session outlives any one step's trouble: each step has its own deadline (the message's
// step_timeout_seconds, within the stream's), and a later message that is refused (a bad
// measurement) or that expires in the queue is answered with ControlResponse.error while the
// template and warm start stay as they were. Only a bad first message, the stream's deadline, the
// client leaving or the server stopping end the session. With real_time_iteration, every later
// step runs one iLQR iteration (SQP-RTI).
//
// A step, not the stream, is what the CallTracker counts: a drain waits for steps being solved
// and refuses new ones with UNAVAILABLE, but never waits for an idle robot to hang up.

#include <atomic>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "mpcd/v1/mpcd.grpc.pb.h"
#include "proto/proto_conversion.h"
#include "server/admission.h"
#include "server/call_log.h"
#include "server/call_tracker.h"
#include "server/dynamic_batcher.h"
#include "server/service_metrics.h"
#include "server/session_budget.h"
#include "server/solve_job.h"
#include "solver/problem.h"

namespace mpc {

class ControlSession final
    : public grpc::ServerBidiReactor<mpcd::v1::ControlRequest, mpcd::v1::ControlResponse> {
 public:
  struct Dependencies {
    RequestLimits limits;
    std::int64_t max_problem_size = 0;   // see ServiceOptions
    std::int64_t max_message_bytes = 0;  // see ServiceOptions
    AdmissionLimits admission;           // checked on the template
    SessionBudget* sessions = nullptr;   // the template's bytes are held here until OnDone
    DynamicBatcher* batcher = nullptr;
    ServiceMetrics* metrics = nullptr;
    CallTracker* calls = nullptr;
  };

  // Starts reading the first message. gRPC owns the session until OnDone. Each step is counted
  // and logged through `log` (the stream's request id).
  ControlSession(const Dependencies& dependencies, const CallLog& log, absl::Time deadline);
  ~ControlSession() override;

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override { delete this; }

 private:
  // Validates the request just read into problem_ (template or step) and sets the step's
  // deadline; the step is counted.
  absl::Status PrepareStep();
  absl::Status CheckStepTimeout() const;
  // The step's deadline: the stream's, or sooner by the message's step_timeout_seconds.
  void SetStepDeadline();
  // Answers the step being read with `status` in ControlResponse.error; the session goes on.
  void AnswerStepError(const absl::Status& status);
  void SubmitStep();
  // From the batcher's thread: the step's solve finished (or was dropped).
  void StepDone(const JobResult& result);
  // Ends the step being answered (metrics, log line, call count); `status` is how it ended.
  void EndStep(const absl::Status& status);
  // Ends the stream. Nothing may touch `this` afterwards.
  void EndSession(const absl::Status& status);

  const Dependencies deps_;
  CallLog log_;
  const absl::Time deadline_;
  std::int64_t steps_ = 0;  // steps begun, the template's included
  std::atomic<bool> cancelled_{false};
  // Stops a step's solve when its deadline passes or the client leaves (the deadline is set
  // before each step is submitted, and read only while it is solved).
  SolveInterrupt interrupt_{absl::InfiniteFuture(), &cancelled_};
  absl::Time step_deadline_ = absl::InfiniteFuture();
  bool real_time_iteration_ = false;  // the template asked for SQP-RTI steps
  absl::Status step_status_;          // how the step being answered ended (counted at its write)
  std::int64_t reserved_bytes_ = 0;   // held in deps_.sessions

  mpcd::v1::ControlRequest request_;
  mpcd::v1::ControlResponse response_;
  bool started_ = false;  // the template has been accepted
  Problem problem_;       // the template, updated by every step
  Solution plan_;         // the last step's answer
};

}  // namespace mpc

#endif  // MPC_SERVER_CONTROL_SESSION_H_
