#ifndef MPC_TESTS_TESTING_SERVICE_FIXTURES_H_
#define MPC_TESTS_TESTING_SERVICE_FIXTURES_H_

// Fixtures for the tests that run a real MpcServer on loopback sockets: protos built from solver
// problems, a server config with kernel-picked ports, clients, a plain-socket /metrics scrape.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "client/mpc_client.h"
#include "mpcd/v1/mpcd.pb.h"
#include "server/mpc_server.h"
#include "solver/problem.h"
#include "solver/solver_backend.h"
#include "tests/testing/proto_tensors.h"

namespace mpc::testing {

inline constexpr absl::Duration kServiceTimeout = absl::Seconds(30);

// The proto of `problem`, with each array's shape recovered from its size.
mpcd::v1::Problem ToProto(const Problem& problem);

// 127.0.0.1, kernel-picked port, no /metrics endpoint (civetweb takes up to 2 s to stop; tests
// that scrape set metrics_port = 0), CPU backend with 2 threads.
ServerConfig TestConfig();

// Null (and a test failure) if the server cannot start.
std::unique_ptr<MpcServer> StartServer(const ServerConfig& config,
                                       std::unique_ptr<SolverBackend> backend = nullptr);

// A client with kServiceTimeout; `wait_for_ready` rides out transient connect failures when many
// connections open at once on a loaded machine.
std::unique_ptr<MpcClient> Connect(const MpcServer& server, bool own_connection = false,
                                   bool wait_for_ready = true);

// GET /metrics over a plain socket (what Prometheus does); the whole HTTP response.
std::string Scrape(int port);

// Polls `condition` (for state only the server's own threads change, with no event to wait on).
bool Eventually(const std::function<bool()>& condition, absl::Duration timeout = kServiceTimeout);

}  // namespace mpc::testing

#endif  // MPC_TESTS_TESTING_SERVICE_FIXTURES_H_
