// The Control RPC (receding-horizon sessions) against a real MpcServer on loopback sockets: every
// answer equals a local solve of the same step (template, measured state, shifted warm start, new
// cost), sessions of many robots share launches, a bad first message ends only its own session and
// a bad later one only its step, a step's own timeout bounds it without ending the session,
// real-time iteration runs one iteration per step, and a drain does not wait for idle robots.
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/mpc_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mpcd/v1/mpcd.pb.h"
#include "proto/proto_conversion.h"
#include "server/mpc_server.h"
#include "solver/cpu/cpu_backend.h"
#include "tests/testing/metric_value.h"
#include "tests/testing/random_problems.h"
#include "tests/testing/service_fixtures.h"
#include "tests/testing/status_matchers.h"

namespace mpc {
namespace {

using ::mpc::testing::Connect;
using ::mpc::testing::IsOk;
using ::mpc::testing::MakeTensor;
using ::mpc::testing::MetricValue;
using ::mpc::testing::StartServer;
using ::mpc::testing::StatusIs;
using ::mpc::testing::TestConfig;
using ::mpc::testing::ToProto;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

std::vector<double> Data(const mpcd::v1::Tensor& tensor) {
  return std::vector<double>(tensor.data().begin(), tensor.data().end());
}

Problem PendulumTemplate(std::uint64_t seed) {
  testing::RandomModelOptions options;
  options.horizon = 10;
  // Near upright, so the plan is not pinned at the torque limit: a wrong warm start shows.
  options.th_half_width = 0.5;
  options.thdot_half_width = 0.5;
  Problem problem = testing::RandomPendulumProblem(options, seed);
  // The session's options are the request's: mpc.pytorch's defaults but for max_iterations.
  problem.options = SolverOptions{};
  problem.options.max_iterations = 8;
  return problem;
}

mpcd::v1::ControlRequest FirstMessage(const Problem& problem) {
  mpcd::v1::ControlRequest request;
  request.set_horizon(problem.shape.horizon);
  *request.mutable_problem() = ToProto(problem);
  request.mutable_options()->set_max_iterations(problem.options.max_iterations);
  return request;
}

mpcd::v1::ControlRequest StateMessage(const std::vector<double>& x) {
  mpcd::v1::ControlRequest request;
  *request.mutable_x() = MakeTensor({static_cast<std::uint32_t>(x.size())}, x);
  return request;
}

// The oracle for one step: `problem` solved in this process, with gains.
Solution LocalSolve(Problem problem) {
  problem.options.compute_gains = true;
  absl::StatusOr<std::unique_ptr<CpuBackend>> backend = CpuBackend::Create({1});
  EXPECT_THAT(backend, IsOk());
  Solution solution;
  const Problem* problems[] = {&problem};
  Solution* solutions[] = {&solution};
  EXPECT_THAT((*backend)->SolveBatch(problems, solutions), IsOk());
  return solution;
}

// The answer must be exactly the local solution: same plan, u0 = u[0], feedback0 = K_0.
void ExpectAnswerIs(const mpcd::v1::ControlResponse& answer, const Solution& expected, int n,
                    int m) {
  EXPECT_THAT(Data(answer.plan().x()), ElementsAreArray(expected.x));
  EXPECT_THAT(Data(answer.plan().u()), ElementsAreArray(expected.u));
  EXPECT_THAT(Data(answer.plan().feedback()), ElementsAreArray(expected.feedback));
  EXPECT_EQ(answer.plan().cost(), expected.cost);
  EXPECT_EQ(answer.plan().iterations(), static_cast<std::uint32_t>(expected.iterations));
  EXPECT_THAT(Data(answer.u0()), ElementsAreArray(expected.u.begin(), expected.u.begin() + m));
  EXPECT_THAT(answer.feedback0().shape(), ElementsAreArray({m, n}));
  EXPECT_THAT(Data(answer.feedback0()),
              ElementsAreArray(expected.feedback.begin(), expected.feedback.begin() + m * n));
}

void ExpectSamePlan(const mpcd::v1::ControlResponse& answer,
                    const mpcd::v1::ControlResponse& expected) {
  EXPECT_THAT(Data(answer.plan().x()), ElementsAreArray(Data(expected.plan().x())));
  EXPECT_THAT(Data(answer.plan().u()), ElementsAreArray(Data(expected.plan().u())));
  EXPECT_EQ(answer.plan().iterations(), expected.plan().iterations());
}

// The state the plan predicts one step ahead (what a perfect plant would measure), nudged so the
// next step has something to correct.
std::vector<double> NextState(const mpcd::v1::ControlResponse& answer, int n, double nudge) {
  std::vector<double> x(answer.plan().x().data().begin() + n,
                        answer.plan().x().data().begin() + 2 * n);
  for (double& value : x) value += nudge;
  return x;
}

std::vector<double> ShiftedPlan(const mpcd::v1::ControlResponse& answer, int m) {
  std::vector<double> u = Data(answer.plan().u());
  std::vector<double> shifted(u.begin() + m, u.end());
  shifted.insert(shifted.end(), u.end() - m, u.end());
  return shifted;
}

TEST(ControlSessionTest, EveryStepIsTheLocalSolveWarmStartedFromTheShiftedPlan) {
  std::unique_ptr<MpcServer> server = StartServer(TestConfig());
  ASSERT_NE(server, nullptr);
  std::unique_ptr<MpcClient> client = Connect(*server);
  std::unique_ptr<ControlStream> session = client->OpenControl();
  Problem problem = PendulumTemplate(7);
  const int n = problem.shape.state_dim;
  const int m = problem.shape.control_dim;

  absl::StatusOr<mpcd::v1::ControlResponse> answer = session->Step(FirstMessage(problem));
  ASSERT_THAT(answer, IsOk());
  ExpectAnswerIs(*answer, LocalSolve(problem), n, m);

  for (int step = 1; step <= 3; ++step) {
    mpcd::v1::ControlRequest request = StateMessage(NextState(*answer, n, 0.01 * step));
    problem.x_init = Data(request.x());
    problem.u_init = ShiftedPlan(*answer, m);
    if (step == 3) {
      // A new goal: the cost is replaced from this step on.
      for (double& value : problem.cost_linear) value += 0.5;
      const std::uint32_t tau = n + m;
      *request.mutable_cost()->mutable_quadratic() = MakeTensor({tau, tau}, problem.cost_quadratic);
      *request.mutable_cost()->mutable_linear() = MakeTensor({tau}, problem.cost_linear);
    }
    answer = session->Step(request);
    ASSERT_THAT(answer, IsOk()) << "step " << step;
    ExpectAnswerIs(*answer, LocalSolve(problem), n, m);
  }
  EXPECT_THAT(session->Close(), IsOk());
  EXPECT_EQ(MetricValue(*server->metrics().registry(), "mpcd_requests_total",
                        {{"method", "Control"}, {"code", "OK"}}),
            4.0);
}

TEST(ControlSessionTest, SessionsOfManyRobotsShareBackendLaunches) {
  ServerConfig config = TestConfig();
  constexpr int kRobots = 6;
  constexpr int kSteps = 4;
  config.batcher.batching.max_batch_size = kRobots;
  // Only full batches launch within the test's timeout: every step of every robot is shared.
  config.batcher.batching.max_queue_delay = absl::Hours(1);
  std::unique_ptr<MpcServer> server = StartServer(config);
  ASSERT_NE(server, nullptr);
  std::vector<std::thread> robots;
  std::vector<int> exact_steps(kRobots, 0);
  for (int r = 0; r < kRobots; ++r) {
    robots.emplace_back([&, r] {
      std::unique_ptr<MpcClient> client = Connect(*server, /*own_connection=*/true);
      std::unique_ptr<ControlStream> session = client->OpenControl();
      Problem problem = PendulumTemplate(100 + r);
      absl::StatusOr<mpcd::v1::ControlResponse> answer = session->Step(FirstMessage(problem));
      for (int step = 0; step < kSteps && answer.ok(); ++step) {
        if (step > 0) {
          mpcd::v1::ControlRequest request = StateMessage(NextState(*answer, 3, 0.02));
          problem.x_init = Data(request.x());
          problem.u_init = ShiftedPlan(*answer, 1);
          answer = session->Step(request);
          if (!answer.ok()) break;
        }
        const Solution expected = LocalSolve(problem);
        if (Data(answer->plan().u()) == expected.u && Data(answer->plan().x()) == expected.x) {
          ++exact_steps[r];
        }
      }
      EXPECT_THAT(answer, IsOk()) << "robot " << r;
      EXPECT_THAT(session->Close(), IsOk());
    });
  }
  for (std::thread& robot : robots) robot.join();
  EXPECT_THAT(exact_steps, ::testing::Each(kSteps));
  EXPECT_EQ(server->batcher().launches(), static_cast<std::uint64_t>(kSteps));
}

struct InvalidControlCase {
  std::string name;
  // Applied to the first message (when `later` is false) or to a valid second message.
  bool later = false;
  std::function<void(mpcd::v1::ControlRequest&)> corrupt;
  std::string field;
};

TEST(ControlSessionTest, ABadFirstMessageEndsItsSessionABadLaterOneOnlyItsStep) {
  std::unique_ptr<MpcServer> server = StartServer(TestConfig());
  ASSERT_NE(server, nullptr);
  std::unique_ptr<MpcClient> client = Connect(*server);
  const std::vector<InvalidControlCase> cases = {
      {"no template", false, [](auto& r) { r.clear_problem(); }, "problem: required"},
      {"no horizon", false, [](auto& r) { r.set_horizon(0); }, "horizon: must be >= 1"},
      {"state in the first message", false,
       [](auto& r) {
         *r.mutable_x() = MakeTensor({3}, {0, 0, 0});
       },
       "x: only later messages"},
      {"bad template cost", false,
       [](auto& r) {
         *r.mutable_problem()->mutable_cost()->mutable_quadratic() =
             MakeTensor({2, 2}, {1, 0, 0, 1});
       },
       "problem.cost.quadratic: expected shape (4,4) or (10,4,4), got (2,2)"},
      {"unknown model", false,
       [](auto& r) { r.mutable_problem()->mutable_dynamics()->mutable_model()->set_name("kite"); },
       "problem.dynamics.model.name"},
      {"bad options", false, [](auto& r) { r.mutable_options()->set_tolerance(-1); },
       "options.tolerance"},
      {"state of the wrong size", true,
       [](auto& r) {
         *r.mutable_x() = MakeTensor({2}, {0, 0});
       },
       "x: expected shape (3), got (2)"},
      {"no state", true, [](auto& r) { r.clear_x(); }, "x: required"},
      {"state not finite", true,
       [](auto& r) { r.mutable_x()->set_data(1, std::numeric_limits<double>::quiet_NaN()); },
       "x: not finite at [1]"},
      {"template fields later", true, [](auto& r) { r.set_horizon(10); },
       "horizon: only the first message"},
      {"new cost of the wrong shape", true,
       [](auto& r) {
         *r.mutable_cost()->mutable_quadratic() = MakeTensor({3, 3}, {1, 0, 0, 0, 1, 0, 0, 0, 1});
       },
       "cost.quadratic: expected shape (4,4) or (10,4,4), got (3,3)"},
      {"new cost not finite", true,
       [](auto& r) {
         *r.mutable_cost()->mutable_quadratic() =
             MakeTensor({4, 4}, {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0,
                                 std::numeric_limits<double>::infinity()});
       },
       "cost.quadratic: not finite at [3,3]"},
  };
  const Problem problem = PendulumTemplate(3);
  // What a session that never sees a bad message answers to its second step.
  const mpcd::v1::ControlRequest good_step = StateMessage({0.1, 0.2, 0.3});
  absl::StatusOr<mpcd::v1::ControlResponse> reference;
  {
    std::unique_ptr<ControlStream> session = client->OpenControl();
    ASSERT_THAT(session->Step(FirstMessage(problem)), IsOk());
    reference = session->Step(good_step);
    ASSERT_THAT(reference, IsOk());
  }
  for (const InvalidControlCase& c : cases) {
    SCOPED_TRACE(c.name);
    std::unique_ptr<ControlStream> session = client->OpenControl();
    mpcd::v1::ControlRequest first = FirstMessage(problem);
    if (c.later) {
      ASSERT_THAT(session->Step(first), IsOk());
      mpcd::v1::ControlRequest next = StateMessage({0.1, 0.2, 0.3});
      c.corrupt(next);
      EXPECT_THAT(session->Step(next),
                  StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.field)));
      // Only that step failed: the session goes on from the same template and warm start, so the
      // next good step gets the answer of a session that never saw the bad message.
      absl::StatusOr<mpcd::v1::ControlResponse> after = session->Step(good_step);
      ASSERT_THAT(after, IsOk());
      ExpectSamePlan(*after, *reference);
      EXPECT_THAT(session->Close(), IsOk());
    } else {
      c.corrupt(first);
      EXPECT_THAT(session->Step(first),
                  StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.field)));
      EXPECT_THAT(session->Close(), StatusIs(absl::StatusCode::kInvalidArgument));
    }
  }
  // Nothing was harmed: a good session on the same server still gets the local answer.
  std::unique_ptr<ControlStream> session = client->OpenControl();
  absl::StatusOr<mpcd::v1::ControlResponse> answer = session->Step(FirstMessage(problem));
  ASSERT_THAT(answer, IsOk());
  ExpectAnswerIs(*answer, LocalSolve(problem), 3, 1);
}

TEST(ControlSessionTest, AStepTimeoutBoundsItsStepAndTheSessionGoesOn) {
  std::unique_ptr<MpcServer> server = StartServer(TestConfig());
  ASSERT_NE(server, nullptr);
  std::unique_ptr<MpcClient> client = Connect(*server);
  testing::RandomModelOptions random;
  random.horizon = 200;
  Problem problem = testing::RandomPendulumProblem(random, 5);
  problem.options = SolverOptions{};
  problem.options.max_iterations = 10000;
  problem.options.tolerance = 0.0;
  problem.options.not_improved_limit = 10000;
  std::unique_ptr<ControlStream> session = client->OpenControl();  // the stream: no deadline
  mpcd::v1::ControlRequest first = FirstMessage(problem);
  first.mutable_options()->set_tolerance(0.0);
  first.mutable_options()->set_not_improved_limit(10000);
  first.set_step_timeout_seconds(0.05);
  const absl::Time start = absl::Now();
  absl::StatusOr<mpcd::v1::ControlResponse> answer = session->Step(first);
  // 10,000 iterations take far longer than 50 ms: the solve stops at its step's deadline and
  // answers its best iterate.
  ASSERT_THAT(answer, IsOk());
  EXPECT_EQ(answer->plan().status(), mpcd::v1::DEADLINE);
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  for (int step = 0; step < 3; ++step) {
    mpcd::v1::ControlRequest next = StateMessage(NextState(*answer, 3, 0.01));
    next.set_step_timeout_seconds(0.02);
    answer = session->Step(next);
    ASSERT_THAT(answer, IsOk());
    EXPECT_EQ(answer->plan().status(), mpcd::v1::DEADLINE);
  }
  mpcd::v1::ControlRequest negative = StateMessage({0.0, 1.0, 0.0});
  negative.set_step_timeout_seconds(-1);
  EXPECT_THAT(session->Step(negative),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("step_timeout_seconds")));
  EXPECT_THAT(session->Close(), IsOk());
}

TEST(ControlSessionTest, RealTimeIterationRunsOneIterationPerLaterStep) {
  std::unique_ptr<MpcServer> server = StartServer(TestConfig());
  ASSERT_NE(server, nullptr);
  std::unique_ptr<MpcClient> client = Connect(*server);
  Problem problem = PendulumTemplate(6);
  std::unique_ptr<ControlStream> session = client->OpenControl();
  mpcd::v1::ControlRequest first = FirstMessage(problem);
  first.set_real_time_iteration(true);
  absl::StatusOr<mpcd::v1::ControlResponse> answer = session->Step(first);
  ASSERT_THAT(answer, IsOk());
  ExpectAnswerIs(*answer, LocalSolve(problem), 3, 1);  // the template's step: a full solve
  EXPECT_GT(answer->plan().iterations(), 1u);
  for (int step = 0; step < 3; ++step) {
    const std::vector<double> x = NextState(*answer, 3, 0.01);
    // The oracle: one iteration from the shifted plan, solved locally.
    Problem expected = problem;
    expected.x_init = x;
    expected.u_init = ShiftedPlan(*answer, 1);
    expected.options.max_iterations = 1;
    answer = session->Step(StateMessage(x));
    ASSERT_THAT(answer, IsOk());
    EXPECT_EQ(answer->plan().iterations(), 1u);
    ExpectAnswerIs(*answer, LocalSolve(expected), 3, 1);
  }
  mpcd::v1::ControlRequest late = StateMessage(NextState(*answer, 3, 0.0));
  late.set_real_time_iteration(true);
  EXPECT_THAT(session->Step(late),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("real_time_iteration")));
  EXPECT_THAT(session->Close(), IsOk());
}

TEST(ControlSessionTest, ADrainAnswersTheStepsInFlightButDoesNotWaitForIdleRobots) {
  ServerConfig config = TestConfig();
  config.shutdown_grace = absl::Seconds(60);
  std::unique_ptr<MpcServer> server = StartServer(config);
  ASSERT_NE(server, nullptr);
  std::unique_ptr<MpcClient> client = Connect(*server);
  std::unique_ptr<ControlStream> idle = client->OpenControl();
  ASSERT_THAT(idle->Step(FirstMessage(PendulumTemplate(5))), IsOk());

  // The idle robot holds its stream open; the drain must not wait the 60 s grace for it.
  const absl::Time start = absl::Now();
  server->Shutdown(config.shutdown_grace);
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  // Its next step is refused (the server has gone), never solved.
  EXPECT_THAT(idle->Step(StateMessage({0.1, 0.2, 0.3})), ::testing::Not(IsOk()));
  EXPECT_EQ(MetricValue(*server->metrics().registry(), "mpcd_requests_total",
                        {{"method", "Control"}, {"code", "OK"}}),
            1.0);
}

}  // namespace
}  // namespace mpc
