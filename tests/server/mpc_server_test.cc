// End-to-end tests of the service: a real MpcServer on real loopback sockets (gRPC and /metrics
// on ports picked by the kernel), real clients, the real CPU backend (wrapped, where a test must
// hold the backend busy, in a gated FakeBackend).
#include "server/mpc_server.h"

#include <arpa/inet.h>
#include <grpcpp/client_context.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/mpc_client.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "mpcd/v1/mpcd.pb.h"
#include "proto/proto_conversion.h"
#include "server/retained_solves.h"
#include "solver/cpu/cpu_backend.h"
#include "solver/models/model_registry.h"
#include "tests/testing/fake_backend.h"
#include "tests/testing/metric_value.h"
#include "tests/testing/random_problems.h"
#include "tests/testing/service_fixtures.h"
#include "tests/testing/status_matchers.h"

namespace mpc {
namespace {

using ::mpc::testing::Connect;
using ::mpc::testing::Eventually;
using ::mpc::testing::FakeBackend;
using ::mpc::testing::IsOk;
using ::mpc::testing::MakeTensor;
using ::mpc::testing::MetricValue;
using ::mpc::testing::Scrape;
using ::mpc::testing::ScrapedValue;
using ::mpc::testing::StartServer;
using ::mpc::testing::StatusIs;
using ::mpc::testing::TestConfig;
using ::mpc::testing::ToProto;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr absl::Duration kTimeout = testing::kServiceTimeout;

// --- Building requests from solver problems ---

// A request of `count` problems of one random kind and shape (problems of a request share T and
// the options), seeded.
mpcd::v1::SolveRequest RandomRequest(std::uint64_t seed, int count) {
  testing::Rng rng(seed);
  const int kind = static_cast<int>(rng.Uniform() * 4);
  mpcd::v1::SolveRequest request;
  for (int i = 0; i < count; ++i) {
    Problem problem;
    const std::uint64_t problem_seed = seed * 100 + i;
    if (kind == 0) {
      testing::RandomModelOptions options;
      options.horizon = 15;
      problem = testing::RandomCartpoleProblem(options, problem_seed);
    } else if (kind == 1) {
      testing::RandomModelOptions options;
      options.horizon = 12;
      problem = testing::RandomPendulumProblem(options, problem_seed);
    } else {
      testing::RandomLqrOptions options;
      options.state_dim = kind == 2 ? 3 : 5;
      options.control_dim = 2;
      options.horizon = 10;
      options.bounded = true;
      options.time_varying = seed % 2 == 0;
      problem = testing::RandomLqrProblem(options, problem_seed);
    }
    request.set_horizon(problem.shape.horizon);
    request.mutable_options()->set_max_iterations(problem.options.max_iterations);
    request.mutable_options()->set_tolerance(problem.options.tolerance);
    *request.add_problems() = ToProto(problem);
  }
  request.set_return_gains(seed % 3 == 0);
  return request;
}

// The oracle: the same request solved in this process, one problem at a time.
mpcd::v1::SolveResponse LocalSolve(const mpcd::v1::SolveRequest& request) {
  absl::StatusOr<std::vector<Problem>> problems = ToProblems(request, RequestLimits{});
  EXPECT_THAT(problems, IsOk());
  if (!problems.ok()) return {};
  absl::StatusOr<std::unique_ptr<CpuBackend>> backend = CpuBackend::Create({1});
  std::vector<Solution> solutions(problems->size());
  for (std::size_t i = 0; i < problems->size(); ++i) {
    const Problem* problem = &(*problems)[i];
    Solution* solution = &solutions[i];
    EXPECT_THAT((*backend)->SolveBatch({&problem, 1}, {&solution, 1}), IsOk());
  }
  mpcd::v1::SolveResponse response;
  ToSolveResponse(solutions, *problems, &response);
  return response;
}

// --- Servers and clients ---

// A gated fake over the real CPU backend; the raw pointer stays valid while the server lives.
std::unique_ptr<FakeBackend> GatedCpuBackend(FakeBackend** raw) {
  absl::StatusOr<std::unique_ptr<CpuBackend>> cpu = CpuBackend::Create({2});
  auto backend = std::make_unique<FakeBackend>(*std::move(cpu));
  *raw = backend.get();
  return backend;
}

// One async Solve whose outcome a test can wait for.
class PendingSolve {
 public:
  PendingSolve(MpcClient& client, const mpcd::v1::SolveRequest& request,
               absl::Duration timeout = kTimeout) {
    call_ = client.SolveAsync(request, timeout,
                              [this](absl::StatusOr<mpcd::v1::SolveResponse> response) {
                                result_ = std::move(response);
                                done_.Notify();
                              });
  }
  ~PendingSolve() { done_.WaitForNotificationWithTimeout(kTimeout); }
  void Cancel() { call_->Cancel(); }
  const absl::StatusOr<mpcd::v1::SolveResponse>& Wait() {
    EXPECT_TRUE(done_.WaitForNotificationWithTimeout(kTimeout));
    return result_;
  }

 private:
  std::shared_ptr<AsyncCall> call_;
  absl::Notification done_;
  absl::StatusOr<mpcd::v1::SolveResponse> result_ = absl::UnknownError("not answered");
};

mpcd::v1::SolveRequest CartpoleRequest(std::uint64_t seed, int count = 1) {
  mpcd::v1::SolveRequest request;
  for (int i = 0; i < count; ++i) {
    testing::RandomModelOptions options;
    options.horizon = 10;
    const Problem problem = testing::RandomCartpoleProblem(options, seed * 10 + i);
    request.set_horizon(problem.shape.horizon);
    request.mutable_options()->set_max_iterations(5);
    *request.add_problems() = ToProto(problem);
  }
  return request;
}

// --- Tests ---

TEST(MpcServerTest, ConcurrentClientsGetExactlyTheAnswersOfALocalSolve) {
  std::unique_ptr<MpcServer> server = StartServer(TestConfig());
  ASSERT_NE(server, nullptr);
  constexpr int kClients = 12;
  constexpr int kRequestsPerClient = 5;
  std::vector<std::thread> clients;
  absl::Mutex mu;
  int compared = 0;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      std::unique_ptr<MpcClient> client = Connect(*server, /*own_connection=*/c % 2 == 0);
      for (int r = 0; r < kRequestsPerClient; ++r) {
        const std::uint64_t seed = 1 + c * kRequestsPerClient + r;
        const mpcd::v1::SolveRequest request = RandomRequest(seed, 1 + seed % 3);
        absl::StatusOr<mpcd::v1::SolveResponse> response = client->Solve(request);
        ASSERT_THAT(response, IsOk());
        const mpcd::v1::SolveResponse local = LocalSolve(request);
        ASSERT_EQ(response->solutions_size(), local.solutions_size());
        for (int i = 0; i < local.solutions_size(); ++i) {
          // Bitwise: every double, status and count of the serialized solution.
          EXPECT_EQ(response->solutions(i).SerializeAsString(),
                    local.solutions(i).SerializeAsString())
              << "seed " << seed << " problem " << i;
        }
        EXPECT_EQ(response->backend(), "cpu");
        EXPECT_GE(response->batch_size(), 1u);
        EXPECT_GE(response->timing().solve_seconds(), 0.0);
        EXPECT_GE(response->timing().queue_seconds(), 0.0);
        absl::MutexLock lock(&mu);
        ++compared;
      }
    });
  }
  for (std::thread& thread : clients) thread.join();
  EXPECT_EQ(compared, kClients * kRequestsPerClient);
}

TEST(MpcServerTest, ProblemsFromConcurrentClientsShareOneBackendLaunch) {
  ServerConfig config = TestConfig();
  config.metrics_port = 0;
  config.batcher.batching.max_batch_size = 8;
  // Only a full batch can launch within the test's timeout: the 8 callers must share it.
  config.batcher.batching.max_queue_delay = absl::Hours(1);
  FakeBackend* backend = nullptr;
  std::unique_ptr<MpcServer> server = StartServer(config, GatedCpuBackend(&backend));
  ASSERT_NE(server, nullptr);
  std::vector<std::thread> clients;
  std::vector<absl::StatusOr<mpcd::v1::SolveResponse>> responses(8);
  // Five clients with one problem each and one with three.
  for (int c = 0; c < 6; ++c) {
    clients.emplace_back([&, c] {
      std::unique_ptr<MpcClient> client = Connect(*server, /*own_connection=*/true);
      responses[c] = client->Solve(CartpoleRequest(c, c == 5 ? 3 : 1));
    });
  }
  for (std::thread& thread : clients) thread.join();
  for (int c = 0; c < 6; ++c) {
    ASSERT_THAT(responses[c], IsOk()) << c;
    EXPECT_EQ(responses[c]->batch_size(), 8u) << c;
    EXPECT_EQ(responses[c]->solutions_size(), c == 5 ? 3 : 1);
  }
  EXPECT_THAT(backend->batch_sizes(), ElementsAre(8));
  // The same seen from outside, in a real scrape of /metrics.
  const std::string text = Scrape(server->metrics_port());
  const testing::MetricLabels solve = {{"kind", "solve"}, {"backend", "cpu"}};
  EXPECT_EQ(ScrapedValue(text, "mpcd_batch_size_count", solve), 1.0) << text;
  EXPECT_EQ(ScrapedValue(text, "mpcd_batch_size_sum", solve), 8.0);
  EXPECT_EQ(ScrapedValue(text, "mpcd_requests_total", {{"method", "Solve"}, {"code", "OK"}}), 6.0);
}

// gRPC still holds an async call's callback for a moment after running it. Destroying the client
// waits for that, so the channel's last reference never goes on a gRPC callback thread (gRPC 1.51
// would then shut its callback queue down from the queue's own thread and free it twice: ASan's
// double free in mpcctl at exit). Here: every callback, and what it captured, is gone once the
// client is.
TEST(MpcServerTest, DestroyingAClientWaitsUntilGrpcHasLetGoOfEveryCallback) {
  std::unique_ptr<MpcServer> server = StartServer(TestConfig());
  ASSERT_NE(server, nullptr);
  for (int round = 0; round < 5; ++round) {
    std::unique_ptr<MpcClient> client = Connect(*server, /*own_connection=*/true);
    auto captured = std::make_shared<int>(0);
    constexpr int kCalls = 8;
    absl::Mutex mu;
    int answered = 0;
    for (int i = 0; i < kCalls; ++i) {
      client->SolveAsync(CartpoleRequest(round * kCalls + i), kTimeout,
                         [captured, &mu, &answered](absl::StatusOr<mpcd::v1::SolveResponse> r) {
                           EXPECT_TRUE(r.ok()) << r.status();
                           {
                             absl::MutexLock lock(&mu);
                             ++answered;
                           }
                           // Still running (so still held by gRPC) when the test goes on.
                           absl::SleepFor(absl::Milliseconds(20));
                         });
    }
    {
      absl::MutexLock lock(&mu);
      ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(
                                          +[](int* n) { return *n == kCalls; }, &answered),
                                      kTimeout));
    }
    client.reset();
    EXPECT_EQ(captured.use_count(), 1) << "round " << round;
  }
}

TEST(MpcServerTest, AProblemThatExpiresInTheQueueIsNeverSolved) {
  FakeBackend* backend = nullptr;
  std::unique_ptr<MpcServer> server = StartServer(TestConfig(), GatedCpuBackend(&backend));
  ASSERT_NE(server, nullptr);
  std::unique_ptr<MpcClient> client = Connect(*server);
  backend->CloseGate();
  PendingSolve busy(*client, CartpoleRequest(1));
  ASSERT_TRUE(backend->AwaitLaunches(1, kTimeout));
  // Its deadline must pass in the queue, not on the way there (a loaded machine can take a few
  // hundred milliseconds to deliver it): wait until it is queued, then until it expires.
  PendingSolve late(*client, CartpoleRequest(2), absl::Seconds(1));
  ASSERT_TRUE(server->batcher().AwaitQueuedProblems(1, kTimeout));
  EXPECT_THAT(late.Wait(), StatusIs(absl::StatusCode::kDeadlineExceeded));
  // The server's deadline is the client's plus the time the call took to arrive: free the backend
  // only once gRPC has ended the call on the server side too.
  const prometheus::Registry& metrics = *server->metrics().registry();
  ASSERT_TRUE(Eventually([&] {
    return MetricValue(metrics, "mpcd_cancelled_requests_total", {{"method", "Solve"}}) == 1.0;
  }));
  backend->OpenGate();
  EXPECT_THAT(busy.Wait(), IsOk());
  // A later request runs after the scheduler has dropped the expired one (same loop turn).
  EXPECT_THAT(client->Solve(CartpoleRequest(3)), IsOk());
  EXPECT_THAT(backend->batch_sizes(), ElementsAre(1, 1));
  // Past its deadline and cancelled: the scheduler drops it for whichever it checks first.
  EXPECT_EQ(MetricValue(metrics, "mpcd_dropped_problems_total", {{"reason", "deadline"}}) +
                MetricValue(metrics, "mpcd_dropped_problems_total", {{"reason", "cancelled"}}),
            1.0);
}

TEST(MpcServerTest, ACancelledRequestIsDroppedBeforeLaunch) {
  FakeBackend* backend = nullptr;
  std::unique_ptr<MpcServer> server = StartServer(TestConfig(), GatedCpuBackend(&backend));
  ASSERT_NE(server, nullptr);
  std::unique_ptr<MpcClient> client = Connect(*server);
  backend->CloseGate();
  PendingSolve busy(*client, CartpoleRequest(1));
  ASSERT_TRUE(backend->AwaitLaunches(1, kTimeout));
  PendingSolve leaving(*client, CartpoleRequest(2, 2));
  ASSERT_TRUE(server->batcher().AwaitQueuedProblems(2, kTimeout));
  leaving.Cancel();
  EXPECT_THAT(leaving.Wait(), StatusIs(absl::StatusCode::kCancelled));
  // The server learns of it through the transport; wait until it has before freeing the backend.
  const prometheus::Registry& metrics = *server->metrics().registry();
  ASSERT_TRUE(Eventually([&] {
    return MetricValue(metrics, "mpcd_cancelled_requests_total", {{"method", "Solve"}}) == 1.0;
  }));
  backend->OpenGate();
  EXPECT_THAT(busy.Wait(), IsOk());
  EXPECT_THAT(client->Solve(CartpoleRequest(3)), IsOk());
  EXPECT_THAT(backend->batch_sizes(), ElementsAre(1, 1));
  EXPECT_EQ(MetricValue(metrics, "mpcd_dropped_problems_total", {{"reason", "cancelled"}}), 2.0);
}

TEST(MpcServerTest, AFullQueueAnswersUnavailable) {
  ServerConfig config = TestConfig();
  config.batcher.max_queue_problems = 2;
  config.limits.max_problems = 2;
  FakeBackend* backend = nullptr;
  std::unique_ptr<MpcServer> server = StartServer(config, GatedCpuBackend(&backend));
  ASSERT_NE(server, nullptr);
  std::unique_ptr<MpcClient> client = Connect(*server);
  backend->CloseGate();
  PendingSolve busy(*client, CartpoleRequest(1));
  ASSERT_TRUE(backend->AwaitLaunches(1, kTimeout));
  PendingSolve queued(*client, CartpoleRequest(2, 2));
  ASSERT_TRUE(server->batcher().AwaitQueuedProblems(2, kTimeout));
  EXPECT_THAT(client->Solve(CartpoleRequest(3)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("queue full")));
  backend->OpenGate();
  EXPECT_THAT(busy.Wait(), IsOk());
  EXPECT_THAT(queued.Wait(), IsOk());
  EXPECT_THAT(client->Solve(CartpoleRequest(4)), IsOk());  // room again
}

TEST(MpcServerTest, ShutdownWhileBusyAnswersTheCallsInFlight) {
  FakeBackend* backend = nullptr;
  std::unique_ptr<MpcServer> server = StartServer(TestConfig(), GatedCpuBackend(&backend));
  ASSERT_NE(server, nullptr);
  std::unique_ptr<MpcClient> client = Connect(*server);

  // A load balancer's view: an open health Watch stream.
  auto health = grpc::health::v1::Health::NewStub(client->channel());
  grpc::ClientContext watch_context;
  grpc::health::v1::HealthCheckRequest watch_request;
  watch_request.set_service(MpcServer::kServiceName);
  auto watch = health->Watch(&watch_context, watch_request);
  grpc::health::v1::HealthCheckResponse watched;
  ASSERT_TRUE(watch->Read(&watched));
  EXPECT_EQ(watched.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  backend->CloseGate();
  PendingSolve running(*client, CartpoleRequest(1));
  ASSERT_TRUE(backend->AwaitLaunches(1, kTimeout));
  PendingSolve queued(*client, CartpoleRequest(2, 2));
  ASSERT_TRUE(server->batcher().AwaitQueuedProblems(2, kTimeout));

  absl::Notification stopped;
  std::thread stopper([&] {
    server->Shutdown(absl::Seconds(20));
    stopped.Notify();
  });
  ASSERT_TRUE(watch->Read(&watched));
  EXPECT_EQ(watched.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  // Shutdown waits for the calls in flight, which wait for the backend; new work is refused
  // meanwhile (retryable).
  EXPECT_FALSE(stopped.HasBeenNotified());
  EXPECT_THAT(
      Connect(*server, true, /*wait_for_ready=*/false)->Solve(CartpoleRequest(4), absl::Seconds(5)),
      StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_FALSE(stopped.HasBeenNotified());
  backend->OpenGate();
  EXPECT_THAT(running.Wait(), IsOk());
  const absl::StatusOr<mpcd::v1::SolveResponse>& answered = queued.Wait();
  ASSERT_THAT(answered, IsOk());
  EXPECT_EQ(answered->solutions_size(), 2);
  // Well within the 20 s grace: the open Watch stream does not hold the shutdown.
  EXPECT_TRUE(stopped.WaitForNotificationWithTimeout(absl::Seconds(10)));
  stopper.join();
  grpc::health::v1::HealthCheckResponse last;
  while (watch->Read(&last)) {
  }
  EXPECT_FALSE(watch->Finish().ok());
  // No new work once stopped.
  EXPECT_THAT(
      Connect(*server, true, /*wait_for_ready=*/false)->Solve(CartpoleRequest(3), absl::Seconds(5)),
      StatusIs(absl::StatusCode::kUnavailable));
}

struct InvalidCase {
  std::string name;
  std::function<void(mpcd::v1::SolveRequest&)> mutate;
  std::string field;  // the message must contain it
};

TEST(MpcServerTest, EveryInvalidInputClassIsInvalidArgumentNamingTheField) {
  ServerConfig config = TestConfig();
  config.limits.problem.max_horizon = 50;
  config.limits.problem.max_state_dim = 6;
  config.limits.max_problems = 4;
  config.max_problem_size = 40 * 8 * 8;
  std::unique_ptr<MpcServer> server = StartServer(config);
  ASSERT_NE(server, nullptr);
  std::unique_ptr<MpcClient> client = Connect(*server);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const auto linear = [](mpcd::v1::SolveRequest& r) -> mpcd::v1::Problem& {
    r = RandomRequest(2, 2);  // seed 2: a time-varying 3x2 LQR pair
    return *r.mutable_problems(1);
  };
  const std::vector<InvalidCase> cases = {
      {"no horizon", [](auto& r) { r.set_horizon(0); }, "horizon"},
      {"horizon over the limit", [](auto& r) { r.set_horizon(51); }, "horizon"},
      {"no problems", [](auto& r) { r.clear_problems(); }, "problems"},
      {"too many problems",
       [](auto& r) {
         for (int i = 0; i < 4; ++i) *r.add_problems() = r.problems(0);
       },
       "problems"},
      {"missing x_init", [](auto& r) { r.mutable_problems(0)->clear_x_init(); },
       "problems[0].x_init"},
      {"x_init of the wrong shape",
       [](auto& r) {
         *r.mutable_problems(0)->mutable_x_init() = MakeTensor({2}, {1, 2});
       },
       "problems[0].x_init"},
      {"data that does not fill the shape",
       [](auto& r) { r.mutable_problems(0)->mutable_x_init()->add_data(1.0); },
       "problems[0].x_init"},
      {"cost of the wrong shape",
       [](auto& r) {
         *r.mutable_problems(0)->mutable_cost()->mutable_quadratic() = MakeTensor({1, 1}, {1});
       },
       "problems[0].cost.quadratic"},
      {"NaN in the cost",
       [&](auto& r) {
         r.mutable_problems(0)->mutable_cost()->mutable_quadratic()->set_data(0, nan);
       },
       "problems[0].cost.quadratic"},
      {"Inf in x_init", [&](auto& r) { r.mutable_problems(0)->mutable_x_init()->set_data(0, inf); },
       "problems[0].x_init"},
      {"transition of the wrong shape",
       [&](auto& r) {
         *linear(r).mutable_dynamics()->mutable_linear()->mutable_transition() =
             MakeTensor({3, 3}, std::vector<double>(9, 0.0));
       },
       "problems[1].dynamics.linear.transition"},
      {"u_lower above u_upper",
       [&](auto& r) {
         mpcd::v1::Problem& p = linear(r);
         p.mutable_u_lower()->set_data(0, p.u_upper().data(0) + 1.0);
       },
       "problems[1].u_"},
      {"only one bound", [&](auto& r) { linear(r).clear_u_upper(); }, "problems[1].u_"},
      {"unknown model",
       [](auto& r) {
         r.mutable_problems(0)->mutable_dynamics()->mutable_model()->set_name("segway");
       },
       "problems[0].dynamics.model.name"},
      {"no dynamics", [](auto& r) { r.mutable_problems(0)->clear_dynamics(); },
       "problems[0].dynamics"},
      {"state dimension over the limit",
       [&](auto& r) {
         mpcd::v1::Problem& p = linear(r);
         *p.mutable_x_init() = MakeTensor({7}, std::vector<double>(7, 0.0));
       },
       "problems[1].x_init"},
      {"bad option", [](auto& r) { r.mutable_options()->set_max_iterations(0); },
       "options.max_iterations"},
      {"problem too large for the server",
       [](auto& r) {
         r = RandomRequest(2, 1);
         r.set_horizon(45);
         mpcd::v1::Problem& p = *r.mutable_problems(0);
         // Time-invariant inputs: a small message for a large workspace (45 * 5^2 fits, so
         // grow n to 6: 45 * 8^2 = 2880 > 2560).
         *p.mutable_x_init() = MakeTensor({6}, std::vector<double>(6, 0.0));
         std::vector<double> identity(64, 0.0);
         for (int i = 0; i < 8; ++i) identity[i * 8 + i] = 1.0;
         *p.mutable_cost()->mutable_quadratic() = MakeTensor({8, 8}, identity);
         *p.mutable_cost()->mutable_linear() = MakeTensor({8}, std::vector<double>(8, 0.0));
         *p.mutable_dynamics()->mutable_linear()->mutable_transition() =
             MakeTensor({6, 8}, std::vector<double>(48, 0.0));
         p.mutable_dynamics()->mutable_linear()->clear_offset();
         p.clear_u_lower();
         p.clear_u_upper();
         p.clear_u_init();
       },
       "horizon: T*(n+m)^2"},
  };
  for (const InvalidCase& c : cases) {
    mpcd::v1::SolveRequest request = CartpoleRequest(7, 2);
    c.mutate(request);
    EXPECT_THAT(client->Solve(request),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.field)))
        << c.name;
  }
  // Nothing of that reached the backend or hurt the server.
  EXPECT_EQ(server->batcher().launches(), 0u);
  EXPECT_THAT(client->Solve(CartpoleRequest(8)), IsOk());
  EXPECT_EQ(MetricValue(*server->metrics().registry(), "mpcd_requests_total",
                        {{"method", "Solve"}, {"code", "INVALID_ARGUMENT"}}),
            static_cast<double>(cases.size()));
}

TEST(MpcServerTest, AMessageOverTheSizeLimitIsInvalidArgumentNamingTheLimit) {
  ServerConfig config = TestConfig();
  config.max_message_bytes = 64 << 10;
  std::unique_ptr<MpcServer> server = StartServer(config);
  ASSERT_NE(server, nullptr);
  std::unique_ptr<MpcClient> client = Connect(*server);
  mpcd::v1::SolveRequest request = CartpoleRequest(1);
  // About 100 KB: over the limit, under twice it (read, then refused by the service).
  request.mutable_problems(0)->mutable_u_init()->mutable_data()->Resize(12000, 0.0);
  EXPECT_THAT(client->Solve(request),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("over the server's limit of 65536 bytes (--max_message_bytes)")));
  mpcd::v1::BackwardRequest backward;
  *backward.add_problems() = request.problems(0);
  EXPECT_THAT(client->Backward(backward),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--max_message_bytes")));
  // Far over (200 KB): gRPC refuses it unread.
  request.mutable_problems(0)->mutable_u_init()->mutable_data()->Resize(25000, 0.0);
  EXPECT_THAT(client->Solve(request), StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(client->Solve(CartpoleRequest(1)), IsOk());
}

TEST(MpcServerTest, ListModelsDescribesTheBuiltinModels) {
  std::unique_ptr<MpcServer> server = StartServer(TestConfig());
  ASSERT_NE(server, nullptr);
  absl::StatusOr<mpcd::v1::ListModelsResponse> models = Connect(*server)->ListModels();
  ASSERT_THAT(models, IsOk());
  mpcd::v1::ListModelsResponse expected;
  ToListModelsResponse(BuiltinModels(), &expected);
  EXPECT_EQ(models->SerializeAsString(), expected.SerializeAsString());
  ASSERT_GE(models->models_size(), 2);
}

TEST(MpcServerTest, HealthIsServingForTheServerAndTheService) {
  std::unique_ptr<MpcServer> server = StartServer(TestConfig());
  ASSERT_NE(server, nullptr);
  std::unique_ptr<MpcClient> client = Connect(*server);
  const std::vector<std::pair<std::string, ServingStatus>> cases = {
      {"", ServingStatus::kServing},
      {MpcServer::kServiceName, ServingStatus::kServing},
      {"no.such.Service", ServingStatus::kServiceUnknown}};
  for (const auto& [service, expected] : cases) {
    absl::StatusOr<ServingStatus> status = client->CheckHealth(service);
    ASSERT_THAT(status, IsOk()) << service;
    EXPECT_EQ(*status, expected) << service;
  }
}

// A BackwardRequest for the problems of `solve` at their solutions, with seeded cotangents.
mpcd::v1::BackwardRequest BackwardFor(const mpcd::v1::SolveRequest& solve,
                                      const mpcd::v1::SolveResponse& solved, std::uint64_t seed,
                                      mpcd::v1::BackwardMode mode = mpcd::v1::DEFAULT) {
  testing::Rng rng(seed);
  mpcd::v1::BackwardRequest request;
  request.set_horizon(solve.horizon());
  request.set_mode(mode);
  for (int i = 0; i < solve.problems_size(); ++i) {
    *request.add_problems() = solve.problems(i);
    mpcd::v1::Solution* solution = request.add_solutions();
    *solution->mutable_x() = solved.solutions(i).x();
    *solution->mutable_u() = solved.solutions(i).u();
    mpcd::v1::Cotangent* cotangent = request.add_cotangents();
    *cotangent->mutable_x() = solved.solutions(i).x();
    *cotangent->mutable_u() = solved.solutions(i).u();
    for (double& v : *cotangent->mutable_x()->mutable_data()) v = rng.Normal();
    for (double& v : *cotangent->mutable_u()->mutable_data()) v = rng.Normal();
  }
  return request;
}

// The oracle for Backward: the same request on an in-process CPU backend, one problem at a time.
mpcd::v1::BackwardResponse LocalBackward(const mpcd::v1::BackwardRequest& request) {
  absl::StatusOr<BackwardInputs> inputs = ToBackwardProblems(request, RequestLimits{});
  EXPECT_THAT(inputs, IsOk());
  if (!inputs.ok()) return {};
  absl::StatusOr<std::unique_ptr<CpuBackend>> backend = CpuBackend::Create({1});
  std::vector<ProblemGradient> gradients(inputs->items.size());
  for (std::size_t i = 0; i < gradients.size(); ++i) {
    const BackwardProblem* item = &inputs->items[i];
    ProblemGradient* gradient = &gradients[i];
    EXPECT_THAT((*backend)->BackwardBatch({&item, 1}, {&gradient, 1}), IsOk());
  }
  mpcd::v1::BackwardResponse response;
  ToBackwardResponse(request, gradients, &response);
  return response;
}

TEST(MpcServerTest, ConcurrentBackwardCallsShareALaunchAndMatchALocalBackward) {
  ServerConfig config = TestConfig();
  config.batcher.batching.max_batch_size = 4;
  config.batcher.batching.max_queue_delay = absl::Hours(1);  // only a full batch launches
  std::unique_ptr<MpcServer> server = StartServer(config);
  ASSERT_NE(server, nullptr);
  // Four cartpole problems (one shape, so one queue), differentiated at their solutions (a local
  // solve gives the server's answers bitwise), in both modes: options may differ inside a batch.
  std::vector<mpcd::v1::BackwardRequest> requests;
  for (int c = 0; c < 4; ++c) {
    const mpcd::v1::SolveRequest solve = CartpoleRequest(20 + c);
    requests.push_back(BackwardFor(solve, LocalSolve(solve), 100 + c,
                                   c % 2 == 0 ? mpcd::v1::DEFAULT : mpcd::v1::EXACT));
  }
  std::vector<std::thread> clients;
  std::vector<absl::StatusOr<mpcd::v1::BackwardResponse>> responses(4);
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] { responses[c] = Connect(*server, true)->Backward(requests[c]); });
  }
  for (std::thread& thread : clients) thread.join();
  for (int c = 0; c < 4; ++c) {
    ASSERT_THAT(responses[c], IsOk()) << c;
    EXPECT_EQ(responses[c]->batch_size(), 4u) << c;
    EXPECT_EQ(responses[c]->backend(), "cpu");
    const mpcd::v1::BackwardResponse local = LocalBackward(requests[c]);
    ASSERT_EQ(responses[c]->gradients_size(), local.gradients_size());
    for (int i = 0; i < local.gradients_size(); ++i) {
      EXPECT_EQ(responses[c]->gradients(i).SerializeAsString(),
                local.gradients(i).SerializeAsString())
          << c;
      EXPECT_EQ(responses[c]->diagnostics(i).SerializeAsString(),
                local.diagnostics(i).SerializeAsString())
          << c;
    }
  }
  const prometheus::Registry& metrics = *server->metrics().registry();
  EXPECT_EQ(MetricValue(metrics, "mpcd_batch_size", {{"kind", "backward"}}), 1.0);
  EXPECT_EQ(MetricValue(metrics, "mpcd_requests_total", {{"method", "Backward"}, {"code", "OK"}}),
            4.0);
}

TEST(MpcServerTest, InvalidBackwardRequestsNameTheField) {
  std::unique_ptr<MpcServer> server = StartServer(TestConfig());
  ASSERT_NE(server, nullptr);
  std::unique_ptr<MpcClient> client = Connect(*server);
  const mpcd::v1::SolveRequest solve = RandomRequest(4, 2);
  absl::StatusOr<mpcd::v1::SolveResponse> solved = client->Solve(solve);
  ASSERT_THAT(solved, IsOk());
  const mpcd::v1::BackwardRequest valid = BackwardFor(solve, *solved, 1);
  ASSERT_THAT(client->Backward(valid), IsOk());
  const std::vector<std::pair<std::string, std::function<void(mpcd::v1::BackwardRequest&)>>> cases =
      {
          {"solutions", [](auto& r) { r.mutable_solutions()->RemoveLast(); }},
          {"cotangents", [](auto& r) { r.clear_cotangents(); }},
          {"solutions[1].x", [](auto& r) { r.mutable_solutions(1)->clear_x(); }},
          {"cotangents[0].u",
           [](auto& r) { r.mutable_cotangents(0)->mutable_u()->set_data(0, NAN); }},
          {"problems[1].cost.quadratic",
           [](auto& r) { r.mutable_problems(1)->mutable_cost()->clear_quadratic(); }},
          {"horizon", [](auto& r) { r.set_horizon(0); }},
      };
  for (const auto& [field, mutate] : cases) {
    mpcd::v1::BackwardRequest request = valid;
    mutate(request);
    EXPECT_THAT(client->Backward(request),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(field)))
        << field;
  }
}

// The Backward of `full` by the name of a retained Solve: only its cotangents and options.
mpcd::v1::BackwardRequest ByName(const mpcd::v1::BackwardRequest& full, const std::string& name) {
  mpcd::v1::BackwardRequest request;
  request.set_retained_solve(name);
  request.set_mode(full.mode());
  *request.mutable_cotangents() = full.cotangents();
  return request;
}

TEST(MpcServerTest, ABackwardByARetainedSolveAnswersAsOneThatSendsItAll) {
  std::unique_ptr<MpcServer> server = StartServer(TestConfig());
  ASSERT_NE(server, nullptr);
  std::unique_ptr<MpcClient> client = Connect(*server);
  for (std::uint64_t seed : {5, 6, 7, 8}) {
    mpcd::v1::SolveRequest solve = RandomRequest(seed, 3);
    absl::StatusOr<mpcd::v1::SolveResponse> plain = client->Solve(solve);
    ASSERT_THAT(plain, IsOk());
    EXPECT_EQ(plain->retained_solve(), "");
    solve.set_retain_for_backward(true);
    absl::StatusOr<mpcd::v1::SolveResponse> solved = client->Solve(solve);
    ASSERT_THAT(solved, IsOk());
    EXPECT_EQ(solved->retained_solve().size(), 32u);
    for (auto mode : {mpcd::v1::DEFAULT, mpcd::v1::EXACT}) {
      const mpcd::v1::BackwardRequest full = BackwardFor(solve, *solved, seed, mode);
      absl::StatusOr<mpcd::v1::BackwardResponse> expected = client->Backward(full);
      absl::StatusOr<mpcd::v1::BackwardResponse> by_name =
          client->Backward(ByName(full, solved->retained_solve()));
      ASSERT_THAT(expected, IsOk());
      ASSERT_THAT(by_name, IsOk());
      ASSERT_EQ(by_name->gradients_size(), 3);
      for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(by_name->gradients(i).SerializeAsString(),
                  expected->gradients(i).SerializeAsString())
            << seed << " " << i;
        EXPECT_EQ(by_name->diagnostics(i).SerializeAsString(),
                  expected->diagnostics(i).SerializeAsString())
            << seed << " " << i;
      }
    }
  }
  EXPECT_GT(MetricValue(*server->metrics().registry(), "mpcd_retained_solve_bytes", {}), 0.0);
}

TEST(MpcServerTest, ARetainedSolveNamedWrongIsRefusedNamingTheField) {
  std::unique_ptr<MpcServer> server = StartServer(TestConfig());
  ASSERT_NE(server, nullptr);
  std::unique_ptr<MpcClient> client = Connect(*server);
  mpcd::v1::SolveRequest solve = RandomRequest(9, 2);
  solve.set_retain_for_backward(true);
  absl::StatusOr<mpcd::v1::SolveResponse> solved = client->Solve(solve);
  ASSERT_THAT(solved, IsOk());
  const mpcd::v1::BackwardRequest full = BackwardFor(solve, *solved, 1);
  EXPECT_THAT(client->Backward(ByName(full, "0123456789abcdef0123456789abcdef")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("retained_solve")));
  // A name and part of what it names: which would count is ambiguous.
  mpcd::v1::BackwardRequest both = full;
  both.set_retained_solve(solved->retained_solve());
  EXPECT_THAT(client->Backward(both), StatusIs(absl::StatusCode::kInvalidArgument,
                                               HasSubstr("retained_solve: names the problems")));
  // The cotangents stay the request's to get right.
  mpcd::v1::BackwardRequest short_cotangents = ByName(full, solved->retained_solve());
  short_cotangents.mutable_cotangents()->RemoveLast();
  EXPECT_THAT(client->Backward(short_cotangents),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cotangents")));
}

TEST(MpcServerTest, RetainedSolvesStayWithinTheirBudgetLeastRecentlyUsedOut) {
  const mpcd::v1::SolveRequest solve = [] {
    mpcd::v1::SolveRequest request = CartpoleRequest(30);
    request.set_retain_for_backward(true);
    return request;
  }();
  const std::int64_t one =
      RetainedSolves::BytesOf({RetainedSolves::BackwardPart(solve, LocalSolve(solve)),
                               *ToProblems(solve, RequestLimits{})});
  ServerConfig config = TestConfig();
  config.retained_solve_bytes = one * 3 / 2;
  std::unique_ptr<MpcServer> server = StartServer(config);
  ASSERT_NE(server, nullptr);
  std::unique_ptr<MpcClient> client = Connect(*server);
  absl::StatusOr<mpcd::v1::SolveResponse> first = client->Solve(solve);
  absl::StatusOr<mpcd::v1::SolveResponse> second = client->Solve(solve);
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT(second, IsOk());
  ASSERT_FALSE(first->retained_solve().empty());
  EXPECT_NE(first->retained_solve(), second->retained_solve());
  EXPECT_EQ(MetricValue(*server->metrics().registry(), "mpcd_retained_solve_bytes", {}),
            static_cast<double>(one));
  const mpcd::v1::BackwardRequest full = BackwardFor(solve, *first, 2);
  EXPECT_THAT(client->Backward(ByName(full, first->retained_solve())),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("retained_solve")));
  EXPECT_THAT(client->Backward(ByName(full, second->retained_solve())), IsOk());

  // A budget below one Solve keeps nothing, and says so with an empty name.
  config.retained_solve_bytes = one - 1;
  std::unique_ptr<MpcServer> tight = StartServer(config);
  ASSERT_NE(tight, nullptr);
  absl::StatusOr<mpcd::v1::SolveResponse> unkept = Connect(*tight)->Solve(solve);
  ASSERT_THAT(unkept, IsOk());
  EXPECT_EQ(unkept->retained_solve(), "");
  EXPECT_EQ(MetricValue(*tight->metrics().registry(), "mpcd_retained_solve_bytes", {}), 0.0);
}

TEST(MpcServerTest, MetricsEndpointServesEveryFamily) {
  ServerConfig config = TestConfig();
  config.metrics_port = 0;
  std::unique_ptr<MpcServer> server = StartServer(config);
  ASSERT_NE(server, nullptr);
  std::unique_ptr<MpcClient> client = Connect(*server);
  ASSERT_THAT(client->Solve(CartpoleRequest(1, 3)), IsOk());
  ASSERT_THAT(client->ListModels(), IsOk());
  const std::string text = Scrape(server->metrics_port());
  ASSERT_THAT(text, HasSubstr("200 OK"));
  for (const char* family :
       {"mpcd_requests_total", "mpcd_request_duration_seconds", "mpcd_inflight_requests",
        "mpcd_cancelled_requests_total", "mpcd_queue_duration_seconds",
        "mpcd_solve_duration_seconds", "mpcd_batch_size", "mpcd_solver_iterations",
        "mpcd_solutions_total", "mpcd_gradients_total", "mpcd_queued_problems",
        "mpcd_inflight_problems", "mpcd_dropped_problems_total", "mpcd_backend_info"}) {
    EXPECT_THAT(text, HasSubstr(absl::StrCat("# TYPE ", family, " "))) << family;
  }
  EXPECT_EQ(ScrapedValue(text, "mpcd_requests_total", {{"method", "Solve"}, {"code", "OK"}}), 1.0);
  EXPECT_EQ(ScrapedValue(text, "mpcd_requests_total", {{"method", "ListModels"}, {"code", "OK"}}),
            1.0);
  EXPECT_EQ(ScrapedValue(text, "mpcd_request_duration_seconds_count", {{"method", "Solve"}}), 1.0);
  EXPECT_EQ(ScrapedValue(text, "mpcd_queue_duration_seconds_count", {{"kind", "solve"}}), 3.0);
  EXPECT_EQ(ScrapedValue(text, "mpcd_solver_iterations_count"), 3.0);
  EXPECT_EQ(ScrapedValue(text, "mpcd_backend_info", {{"backend", "cpu"}}), 1.0);
  EXPECT_EQ(ScrapedValue(text, "mpcd_queued_problems"), 0.0);
  EXPECT_EQ(ScrapedValue(text, "mpcd_inflight_problems"), 0.0);
  EXPECT_EQ(ScrapedValue(text, "mpcd_inflight_requests", {{"method", "Solve"}}), 0.0);
}

TEST(MpcServerTest, CreateFailsCleanlyOnABusyPortOrABadConfig) {
  ServerConfig config = TestConfig();
  config.metrics_port = 0;
  std::unique_ptr<MpcServer> first = StartServer(config);
  ASSERT_NE(first, nullptr);
  ServerConfig same_port = TestConfig();
  same_port.port = first->port();
  EXPECT_THAT(MpcServer::Create(same_port), StatusIs(absl::StatusCode::kUnavailable));
  ServerConfig same_metrics = TestConfig();
  same_metrics.metrics_port = first->metrics_port();
  EXPECT_THAT(MpcServer::Create(same_metrics),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("metrics")));
  ServerConfig bad = TestConfig();
  bad.batcher.batching.max_batch_size = 0;
  EXPECT_THAT(MpcServer::Create(bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_batch_size")));
  ServerConfig inconsistent = TestConfig();
  inconsistent.limits.max_problems = inconsistent.batcher.max_queue_problems + 1;
  EXPECT_THAT(MpcServer::Create(inconsistent),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_problems_per_request")));
}

}  // namespace
}  // namespace mpc
