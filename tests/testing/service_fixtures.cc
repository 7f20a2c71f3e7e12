#include "tests/testing/service_fixtures.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "solver/models/model_registry.h"
#include "tests/testing/status_matchers.h"

namespace mpc::testing {

mpcd::v1::Problem ToProto(const Problem& problem) {
  const std::uint32_t T = problem.shape.horizon;
  const std::uint32_t n = problem.shape.state_dim;
  const std::uint32_t m = problem.shape.control_dim;
  const std::uint32_t tau = n + m;
  mpcd::v1::Problem proto;
  *proto.mutable_x_init() = MakeTensor({n}, problem.x_init);
  auto* cost = proto.mutable_cost();
  *cost->mutable_quadratic() = problem.cost_quadratic.size() == tau * tau
                                   ? MakeTensor({tau, tau}, problem.cost_quadratic)
                                   : MakeTensor({T, tau, tau}, problem.cost_quadratic);
  *cost->mutable_linear() = problem.cost_linear.size() == tau
                                ? MakeTensor({tau}, problem.cost_linear)
                                : MakeTensor({T, tau}, problem.cost_linear);
  if (problem.shape.dynamics.is_linear()) {
    auto* linear = proto.mutable_dynamics()->mutable_linear();
    *linear->mutable_transition() = problem.transition.size() == n * tau
                                        ? MakeTensor({n, tau}, problem.transition)
                                        : MakeTensor({T - 1, n, tau}, problem.transition);
    if (!problem.offset.empty()) {
      *linear->mutable_offset() = problem.offset.size() == n
                                      ? MakeTensor({n}, problem.offset)
                                      : MakeTensor({T - 1, n}, problem.offset);
    }
  } else {
    auto* model = proto.mutable_dynamics()->mutable_model();
    model->set_name(FindModel(problem.shape.dynamics)->name);
    model->mutable_params()->Assign(problem.params.begin(), problem.params.end());
    model->set_dt(problem.dt);
  }
  auto bound = [&](const std::vector<double>& values) {
    return values.size() == m ? MakeTensor({m}, values) : MakeTensor({T, m}, values);
  };
  if (!problem.u_lower.empty()) *proto.mutable_u_lower() = bound(problem.u_lower);
  if (!problem.u_upper.empty()) *proto.mutable_u_upper() = bound(problem.u_upper);
  if (!problem.u_init.empty()) *proto.mutable_u_init() = MakeTensor({T, m}, problem.u_init);
  return proto;
}

ServerConfig TestConfig() {
  ServerConfig config;
  config.host = "127.0.0.1";
  config.port = 0;
  // No /metrics endpoint unless a test scrapes it: civetweb takes up to 2 s to stop. Tests read
  // the registry directly otherwise.
  config.metrics_port = -1;
  config.backend = BackendKind::kCpu;
  config.threads = 2;
  config.shutdown_grace = absl::Seconds(10);
  return config;
}

std::unique_ptr<MpcServer> StartServer(const ServerConfig& config,
                                       std::unique_ptr<SolverBackend> backend) {
  absl::StatusOr<std::unique_ptr<MpcServer>> server = MpcServer::Create(config, std::move(backend));
  EXPECT_THAT(server, IsOk());
  return server.ok() ? *std::move(server) : nullptr;
}

std::unique_ptr<MpcClient> Connect(const MpcServer& server, bool own_connection,
                                   bool wait_for_ready) {
  MpcClientOptions options;
  options.timeout = kServiceTimeout;
  options.own_connection = own_connection;
  // Many connections open at once on a loaded 2-core machine: ride out transient connect failures.
  options.wait_for_ready = wait_for_ready;
  absl::StatusOr<std::unique_ptr<MpcClient>> client = MpcClient::Create(server.target(), options);
  EXPECT_THAT(client, IsOk());
  return *std::move(client);
}

std::string Scrape(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) {
    const std::string get = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, get.data(), get.size()) == static_cast<ssize_t>(get.size())) {
      char buffer[65536];
      ssize_t n;
      while ((n = read(fd, buffer, sizeof(buffer))) > 0) response.append(buffer, n);
    }
  }
  close(fd);
  return response;
}

bool Eventually(const std::function<bool()>& condition, absl::Duration timeout) {
  const absl::Time end = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > end) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

}  // namespace mpc::testing
