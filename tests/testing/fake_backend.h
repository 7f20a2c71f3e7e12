#ifndef MPC_TESTS_TESTING_FAKE_BACKEND_H_
#define MPC_TESTS_TESTING_FAKE_BACKEND_H_

// A scriptable SolverBackend for batcher and service tests: it records every launch, can hold
// launches at a gate (so a test decides when the backend is "busy" without sleeping), can fail the
// next launch, and either delegates to a real backend or writes marker answers.

#include <deque>
#include <memory>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "solver/gradients.h"
#include "solver/solver_backend.h"

namespace mpc::testing {

class FakeBackend final : public SolverBackend {
 public:
  struct Launch {
    bool backward = false;
    std::vector<const Problem*> problems;  // for backward: each BackwardProblem's problem
  };

  // With `inner`, launches are solved by it; without, each solution gets the marker
  // cost = x_init[0], iterations = 1, status kConverged (gradients: x_init = {x_init[0]}).
  explicit FakeBackend(std::unique_ptr<SolverBackend> inner = nullptr) : inner_(std::move(inner)) {}

  absl::string_view name() const override { return inner_ ? inner_->name() : "fake"; }
  int max_concurrent_launches() const override { return concurrent_launches_; }
  // How many launches the batcher may run at once (1 by default); set before making the batcher.
  void set_max_concurrent_launches(int launches) { concurrent_launches_ = launches; }

  absl::Status SolveBatch(absl::Span<const Problem* const> problems,
                          absl::Span<Solution* const> solutions) override {
    absl::Status status = Enter(Launch{false, {problems.begin(), problems.end()}});
    if (!status.ok()) return status;
    if (inner_ != nullptr) return inner_->SolveBatch(problems, solutions);
    for (std::size_t i = 0; i < problems.size(); ++i) {
      solutions[i]->Resize(problems[i]->shape, problems[i]->options.compute_gains);
      solutions[i]->cost = problems[i]->x_init[0];
      solutions[i]->iterations = 1;
      solutions[i]->status = SolveStatus::kConverged;
    }
    return absl::OkStatus();
  }

  absl::Status BackwardBatch(absl::Span<const BackwardProblem* const> problems,
                             absl::Span<ProblemGradient* const> gradients) override {
    Launch launch{true, {}};
    for (const BackwardProblem* problem : problems) launch.problems.push_back(problem->problem);
    absl::Status status = Enter(std::move(launch));
    if (!status.ok()) return status;
    if (inner_ != nullptr) return inner_->BackwardBatch(problems, gradients);
    for (std::size_t i = 0; i < problems.size(); ++i) {
      gradients[i]->x_init = {problems[i]->problem->x_init[0]};
    }
    return absl::OkStatus();
  }

  // While closed, launches wait inside the backend (after being recorded).
  void CloseGate() {
    absl::MutexLock lock(&mu_);
    gate_open_ = false;
  }
  void OpenGate() {
    absl::MutexLock lock(&mu_);
    gate_open_ = true;
  }
  // While set, launches whose first problem has this horizon wait inside the backend (after being
  // recorded) until ReleaseHorizon; others pass. 0 = none held.
  void HoldHorizon(int horizon) {
    absl::MutexLock lock(&mu_);
    held_horizon_ = horizon;
  }
  void ReleaseHorizon() {
    absl::MutexLock lock(&mu_);
    held_horizon_ = 0;
  }
  // The next launch to enter that has not been given a failure returns `status` (after passing
  // the gate) instead of solving. Calls queue up: one failure per launch, in order.
  void FailNextLaunch(absl::Status status) {
    absl::MutexLock lock(&mu_);
    failures_.push_back(std::move(status));
  }

  // Waits until `count` launches have entered the backend; false on timeout.
  bool AwaitLaunches(int count, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    struct Args {
      FakeBackend* self;
      int count;
    };
    Args args{this, count};
    bool (*reached)(Args*) = [](Args* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return static_cast<int>(a->self->launches_.size()) >= a->count;
    };
    return mu_.AwaitWithTimeout(absl::Condition(reached, &args), timeout);
  }

  std::vector<Launch> launches() const {
    absl::MutexLock lock(&mu_);
    return launches_;
  }
  std::vector<int> batch_sizes() const {
    absl::MutexLock lock(&mu_);
    std::vector<int> sizes;
    for (const Launch& launch : launches_)
      sizes.push_back(static_cast<int>(launch.problems.size()));
    return sizes;
  }

 private:
  absl::Status Enter(Launch launch) {
    const int horizon = launch.problems.front()->shape.horizon;
    absl::MutexLock lock(&mu_);
    launches_.push_back(std::move(launch));
    absl::Status status;
    if (!failures_.empty()) {
      status = std::move(failures_.front());
      failures_.pop_front();
    }
    mu_.Await(absl::Condition(&gate_open_));
    struct Args {
      FakeBackend* self;
      int horizon;
    };
    Args args{this, horizon};
    bool (*released)(Args*) = [](Args* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return a->self->held_horizon_ != a->horizon;
    };
    mu_.Await(absl::Condition(released, &args));
    return status;
  }

  std::unique_ptr<SolverBackend> inner_;
  int concurrent_launches_ = 1;
  mutable absl::Mutex mu_;
  int held_horizon_ ABSL_GUARDED_BY(mu_) = 0;
  bool gate_open_ ABSL_GUARDED_BY(mu_) = true;
  std::deque<absl::Status> failures_ ABSL_GUARDED_BY(mu_);
  std::vector<Launch> launches_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mpc::testing

#endif  // MPC_TESTS_TESTING_FAKE_BACKEND_H_
