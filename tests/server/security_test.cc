// TLS, mutual TLS and the bearer token: the checks on their own, then a real MpcServer (mutual TLS
// + token) on a loopback port with real MpcClients. Certificates are made when the suite starts by
// tests/testing/make_test_certs.sh (the openssl CLI): a CA, a server certificate for localhost and
// 127.0.0.1, a client certificate from that CA and one from an unrelated CA.
#include "server/security.h"

#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/support/string_ref.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "client/mpc_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mpcd/v1/mpcd.pb.h"
#include "proto/proto_conversion.h"
#include "server/mpc_server.h"
#include "server/server_config.h"
#include "solver/cpu/cpu_backend.h"
#include "tests/testing/metric_value.h"
#include "tests/testing/status_matchers.h"

namespace mpc {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::mpc::testing::IsOk;
using ::mpc::testing::MetricValue;
using ::mpc::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kToken[] = "0123456789abcdef-test-token";

// --- BearerTokenCheck ---

absl::Status CheckWith(const BearerTokenCheck& check,
                       const std::vector<std::pair<std::string, std::string>>& entries) {
  BearerTokenCheck::Metadata metadata;
  for (const auto& [key, value] : entries) metadata.emplace(key, value);
  return check.Check(metadata);
}

TEST(BearerTokenCheck, WithoutATokenEveryCallPasses) {
  const BearerTokenCheck check("");
  EXPECT_FALSE(check.required());
  EXPECT_THAT(CheckWith(check, {}), IsOk());
}

TEST(BearerTokenCheck, AcceptsTheTokenWithAnyCaseOfTheScheme) {
  const BearerTokenCheck check(kToken);
  EXPECT_TRUE(check.required());
  EXPECT_THAT(CheckWith(check, {{"authorization", absl::StrCat("Bearer ", kToken)}}), IsOk());
  EXPECT_THAT(CheckWith(check, {{"authorization", absl::StrCat("bearer  ", kToken, " ")}}), IsOk());
}

TEST(BearerTokenCheck, RefusesMissingMalformedAndWrongTokens) {
  const BearerTokenCheck check(kToken);
  const std::string token = kToken;
  EXPECT_THAT(CheckWith(check, {}),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("missing")));
  EXPECT_THAT(CheckWith(check, {{"x-token", token}}),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("missing")));
  EXPECT_THAT(CheckWith(check, {{"authorization", token}}),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("Bearer")));
  EXPECT_THAT(CheckWith(check, {{"authorization", "Basic " + token}}),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("Bearer")));
  for (const std::string& wrong :
       {std::string(""), token.substr(0, token.size() - 1), token + "x", "X" + token.substr(1)}) {
    SCOPED_TRACE(wrong);
    EXPECT_THAT(CheckWith(check, {{"authorization", "Bearer " + wrong}}),
                StatusIs(absl::StatusCode::kUnauthenticated, "invalid bearer token"));
  }
  EXPECT_THAT(
      CheckWith(check, {{"authorization", "Bearer " + token}, {"authorization", "Bearer other"}}),
      StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("more than one")));
}

// --- Certificates and files ---

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream(path, std::ios::binary) << contents;
}

class SecurityFiles : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(absl::StrCat(::testing::TempDir(), "mpcd_security_test_", getpid()));
    const std::string command = absl::StrCat(MPCD_MAKE_TEST_CERTS, " ", *dir_);
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
    WriteFile(Path("token"), absl::StrCat(kToken, "\n"));
  }
  static void TearDownTestSuite() {
    std::system(absl::StrCat("rm -rf ", *dir_).c_str());
    delete dir_;
    dir_ = nullptr;
  }
  static std::string Path(const std::string& name) { return absl::StrCat(*dir_, "/", name); }

  static SecurityConfig MutualTlsWithToken() {
    SecurityConfig config;
    config.tls_cert_file = Path("server.pem");
    config.tls_key_file = Path("server.key");
    config.tls_client_ca_file = Path("ca.pem");
    config.auth_token_file = Path("token");
    return config;
  }

 private:
  static std::string* dir_;
};

std::string* SecurityFiles::dir_ = nullptr;

TEST_F(SecurityFiles, LoadsTlsCredentialsAndTheTokenWithoutItsNewline) {
  absl::StatusOr<ServerSecurity> security = LoadServerSecurity(MutualTlsWithToken());
  ASSERT_THAT(security, IsOk());
  EXPECT_NE(security->credentials, nullptr);
  EXPECT_EQ(security->auth_token, kToken);
  EXPECT_EQ(DescribeSecurity(MutualTlsWithToken()), "mutual TLS + bearer token");
  EXPECT_EQ(DescribeSecurity(SecurityConfig{}), "plaintext");
}

TEST_F(SecurityFiles, BadFilesAreInvalidArgumentsNamingTheFlag) {
  WriteFile(Path("not_pem"), "hello\n");
  WriteFile(Path("empty_token"), " \n");
  WriteFile(Path("spaced_token"), "two words\n");
  struct Case {
    const char* what;
    void (*edit)(SecurityConfig&);
    const char* message;
  };
  const Case cases[] = {
      {"missing cert", [](SecurityConfig& c) { c.tls_cert_file = Path("nope.pem"); },
       "tls_cert: cannot read"},
      {"cert not PEM", [](SecurityConfig& c) { c.tls_cert_file = Path("not_pem"); }, "tls_cert: "},
      {"key is a directory", [](SecurityConfig& c) { c.tls_key_file = Path(""); },
       "tls_key: cannot read"},
      {"key not PEM", [](SecurityConfig& c) { c.tls_key_file = Path("not_pem"); }, "tls_key: "},
      {"key of another cert", [](SecurityConfig& c) { c.tls_key_file = Path("client.key"); },
       "is not the key of the certificate"},
      {"client CA not PEM", [](SecurityConfig& c) { c.tls_client_ca_file = Path("not_pem"); },
       "tls_client_ca: "},
      {"missing token", [](SecurityConfig& c) { c.auth_token_file = Path("nope"); },
       "auth_token_file: cannot read"},
      {"empty token", [](SecurityConfig& c) { c.auth_token_file = Path("empty_token"); },
       "is empty"},
      {"token with a space", [](SecurityConfig& c) { c.auth_token_file = Path("spaced_token"); },
       "without spaces"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    SecurityConfig config = MutualTlsWithToken();
    c.edit(config);
    EXPECT_THAT(LoadServerSecurity(config).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)));
  }
}

TEST_F(SecurityFiles, BadCombinationsAreRefusedBeforeAnyFileIsRead) {
  ServerConfig config;
  config.security.tls_key_file = Path("server.key");
  EXPECT_THAT(ValidateServerConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tls_key: needs --tls_cert")));
  config.security = {};
  config.security.tls_cert_file = Path("server.pem");
  EXPECT_THAT(ValidateServerConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tls_cert: needs --tls_key")));
  config.security = {};
  config.security.tls_client_ca_file = Path("ca.pem");
  EXPECT_THAT(ValidateServerConfig(config), StatusIs(absl::StatusCode::kInvalidArgument,
                                                     HasSubstr("tls_client_ca: needs --tls_cert")));
}

// --- A real server with mutual TLS and a token ---

void SetTensor(const std::vector<std::uint32_t>& shape, const std::vector<double>& data,
               mpcd::v1::Tensor* tensor) {
  tensor->mutable_shape()->Assign(shape.begin(), shape.end());
  tensor->mutable_data()->Assign(data.begin(), data.end());
}

// min sum x'x + u'u for a double integrator from x0 = (1, 0), |u| <= 0.5, T = 10.
mpcd::v1::SolveRequest DoubleIntegratorRequest() {
  mpcd::v1::SolveRequest request;
  request.set_horizon(10);
  mpcd::v1::Problem* problem = request.add_problems();
  SetTensor({2}, {1.0, 0.0}, problem->mutable_x_init());
  SetTensor({3, 3}, {1, 0, 0, 0, 1, 0, 0, 0, 1}, problem->mutable_cost()->mutable_quadratic());
  SetTensor({2, 3}, {1, 0.1, 0, 0, 1, 0.1},
            problem->mutable_dynamics()->mutable_linear()->mutable_transition());
  SetTensor({1}, {-0.5}, problem->mutable_u_lower());
  SetTensor({1}, {0.5}, problem->mutable_u_upper());
  return request;
}

// The first message of a Control session on the same problem.
mpcd::v1::ControlRequest ControlStart() {
  const mpcd::v1::SolveRequest solve = DoubleIntegratorRequest();
  mpcd::v1::ControlRequest request;
  request.set_horizon(solve.horizon());
  *request.mutable_problem() = solve.problems(0);
  return request;
}

// The oracle: the same request solved in this process.
mpcd::v1::SolveResponse LocalSolve(const mpcd::v1::SolveRequest& request) {
  absl::StatusOr<std::vector<Problem>> problems = ToProblems(request, RequestLimits{});
  EXPECT_THAT(problems, IsOk());
  absl::StatusOr<std::unique_ptr<CpuBackend>> backend = CpuBackend::Create({1});
  EXPECT_THAT(backend, IsOk());
  std::vector<Solution> solutions(problems->size());
  std::vector<const Problem*> inputs;
  std::vector<Solution*> outputs;
  for (std::size_t i = 0; i < problems->size(); ++i) {
    inputs.push_back(&(*problems)[i]);
    outputs.push_back(&solutions[i]);
  }
  EXPECT_THAT((*backend)->SolveBatch(inputs, outputs), IsOk());
  mpcd::v1::SolveResponse response;
  ToSolveResponse(solutions, *problems, &response);
  return response;
}

class SecureServer : public SecurityFiles {
 protected:
  static void SetUpTestSuite() {
    SecurityFiles::SetUpTestSuite();
    ServerConfig config;
    config.host = "127.0.0.1";
    config.port = 0;
    config.metrics_port = -1;  // the tests read the registry directly
    config.backend = BackendKind::kCpu;
    config.threads = 1;
    config.shutdown_grace = absl::Seconds(5);
    config.security = MutualTlsWithToken();
    absl::StatusOr<std::unique_ptr<MpcServer>> server = MpcServer::Create(config);
    ASSERT_THAT(server, IsOk());
    server_ = server->release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    SecurityFiles::TearDownTestSuite();
  }
  void SetUp() override { ASSERT_NE(server_, nullptr) << "the server did not start"; }

  // A client that trusts the test CA and shows the good client certificate and the token.
  static MpcClientOptions GoodOptions() {
    MpcClientOptions options;
    options.timeout = absl::Seconds(10);
    options.use_tls = true;
    options.tls_root_certs = ReadFile(Path("ca.pem"));
    options.tls_cert_chain = ReadFile(Path("client.pem"));
    options.tls_private_key = ReadFile(Path("client.key"));
    options.auth_token = kToken;
    return options;
  }

  static std::unique_ptr<MpcClient> Client(const MpcClientOptions& options,
                                           const std::string& target = "") {
    absl::StatusOr<std::unique_ptr<MpcClient>> client =
        MpcClient::Create(target.empty() ? server_->target() : target, options);
    EXPECT_THAT(client, IsOk());
    return *std::move(client);
  }

  // Problems that entered the batcher's queue, and calls answered with `code`.
  static double QueuedProblems() {
    return MetricValue(*server_->metrics().registry(), "mpcd_queue_duration_seconds",
                       {{"kind", "solve"}}) +
           MetricValue(*server_->metrics().registry(), "mpcd_queue_duration_seconds",
                       {{"kind", "backward"}});
  }
  static double Answered(const char* method, const char* code) {
    return MetricValue(*server_->metrics().registry(), "mpcd_requests_total",
                       {{"method", method}, {"code", code}});
  }
  static double RefusedCertificates() {
    return MetricValue(*server_->metrics().registry(), "mpcd_refused_client_certificates_total");
  }
  static double AllAnswered() {
    double total = 0;
    for (const char* method : {"Solve", "Backward", "ListModels", "Control"}) {
      for (const char* code : {"OK", "UNAUTHENTICATED", "UNAVAILABLE", "INVALID_ARGUMENT"}) {
        total += Answered(method, code);
      }
    }
    return total;
  }

  static MpcServer* server_;
};

MpcServer* SecureServer::server_ = nullptr;

TEST_F(SecureServer, TheRightCertificateAndTokenSolveCorrectly) {
  const mpcd::v1::SolveRequest request = DoubleIntegratorRequest();
  const double queued_before = QueuedProblems();
  for (const std::string& target :
       {server_->target(), absl::StrCat("localhost:", server_->port())}) {
    SCOPED_TRACE(target);
    absl::StatusOr<mpcd::v1::SolveResponse> response =
        Client(GoodOptions(), target)->Solve(request);
    ASSERT_THAT(response, IsOk());
    const mpcd::v1::SolveResponse expected = LocalSolve(request);
    ASSERT_EQ(response->solutions_size(), 1);
    // The same numbers as in this process: x, u, cost, status, iterations.
    EXPECT_TRUE(MessageDifferencer::Equals(response->solutions(0), expected.solutions(0)))
        << response->solutions(0).DebugString() << "\nvs\n"
        << expected.solutions(0).DebugString();
  }
  EXPECT_EQ(QueuedProblems(), queued_before + 2);
  EXPECT_THAT(Client(GoodOptions())->ListModels(), IsOk());
  EXPECT_THAT(Client(GoodOptions())->OpenControl(absl::Seconds(10))->Step(ControlStart()), IsOk());
  EXPECT_EQ(QueuedProblems(), queued_before + 3);
}

TEST_F(SecureServer, MissingOrWrongTokensAreUnauthenticatedAndNothingIsQueued) {
  const double queued_before = QueuedProblems();
  auto refused = [] {
    double total = 0;
    for (const char* method : {"Solve", "Backward", "ListModels", "Control"}) {
      total += Answered(method, "UNAUTHENTICATED");
    }
    return total;
  };
  const double refused_before = refused();
  const double certificates_refused_before = RefusedCertificates();
  MpcClientOptions no_token = GoodOptions();
  no_token.auth_token = "";
  MpcClientOptions wrong_token = GoodOptions();
  wrong_token.auth_token = std::string(kToken) + "x";
  for (const MpcClientOptions& options : {no_token, wrong_token}) {
    std::unique_ptr<MpcClient> client = Client(options);
    EXPECT_THAT(client->Solve(DoubleIntegratorRequest()),
                StatusIs(absl::StatusCode::kUnauthenticated));
    // Refused before validation: an empty (invalid) request gets no INVALID_ARGUMENT either.
    EXPECT_THAT(client->Backward(mpcd::v1::BackwardRequest()),
                StatusIs(absl::StatusCode::kUnauthenticated));
    EXPECT_THAT(client->ListModels(), StatusIs(absl::StatusCode::kUnauthenticated));
    // A Control stream is refused before its first message is read.
    EXPECT_THAT(client->OpenControl(absl::Seconds(10))->Step(ControlStart()),
                StatusIs(absl::StatusCode::kUnauthenticated));
    // Health is exempt, so Kubernetes probes need no token.
    absl::StatusOr<ServingStatus> health = client->CheckHealth();
    ASSERT_THAT(health, IsOk());
    EXPECT_EQ(*health, ServingStatus::kServing);
  }
  EXPECT_EQ(QueuedProblems(), queued_before);
  EXPECT_EQ(refused(), refused_before + 8);
  EXPECT_EQ(RefusedCertificates(), certificates_refused_before);
}

TEST_F(SecureServer, ClientsWithoutTheRightCertificateAreUnauthenticatedAndReachNoService) {
  const double answered_before = AllAnswered();
  const double queued_before = QueuedProblems();
  const double refused_before = RefusedCertificates();
  MpcClientOptions no_certificate = GoodOptions();
  no_certificate.tls_cert_chain = no_certificate.tls_private_key = "";
  MpcClientOptions other_ca_certificate = GoodOptions();
  other_ca_certificate.tls_cert_chain = ReadFile(Path("other_client.pem"));
  other_ca_certificate.tls_private_key = ReadFile(Path("other_client.key"));
  MpcClientOptions expired_certificate = GoodOptions();
  expired_certificate.tls_cert_chain = ReadFile(Path("expired_client.pem"));
  expired_certificate.tls_private_key = ReadFile(Path("expired_client.key"));
  // Signed by the right CA, but for servers only (extendedKeyUsage serverAuth).
  MpcClientOptions server_certificate = GoodOptions();
  server_certificate.tls_cert_chain = ReadFile(Path("server.pem"));
  server_certificate.tls_private_key = ReadFile(Path("server.key"));
  const struct {
    const char* what;
    MpcClientOptions options;
    const char* reason;
  } cases[] = {
      {"no client certificate", no_certificate, "no client certificate"},
      {"client certificate from another CA", other_ca_certificate, "not trusted"},
      {"expired client certificate", expired_certificate, "expired"},
      {"server certificate as a client's", server_certificate, "purpose"},
  };
  for (const auto& [what, options, reason] : cases) {
    SCOPED_TRACE(what);
    std::unique_ptr<MpcClient> client = Client(options);
    const auto refused = StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr(reason));
    EXPECT_THAT(client->Solve(DoubleIntegratorRequest()), refused);
    EXPECT_THAT(client->Backward(mpcd::v1::BackwardRequest()), refused);
    EXPECT_THAT(client->ListModels(), refused);
    EXPECT_THAT(client->OpenControl(absl::Seconds(10))->Step(ControlStart()), refused);
    EXPECT_THAT(client->CheckHealth().status(), refused);
  }
  // Refused before any handler: nothing answered by the service or queued, every call counted
  // as a refused certificate.
  EXPECT_EQ(AllAnswered(), answered_before);
  EXPECT_EQ(QueuedProblems(), queued_before);
  EXPECT_EQ(RefusedCertificates(), refused_before + std::size(cases) * 5);
}

TEST_F(SecureServer, WithoutATlsSessionThereIsNoCallToRefuse) {
  const double answered_before = AllAnswered();
  MpcClientOptions plaintext;
  plaintext.timeout = absl::Seconds(10);
  plaintext.auth_token = kToken;
  MpcClientOptions distrusts_the_server = GoodOptions();
  distrusts_the_server.tls_root_certs = ReadFile(Path("other_ca.pem"));
  for (const auto& [what, options] :
       {std::pair{"plaintext", plaintext},
        std::pair{"server certificate not trusted", distrusts_the_server}}) {
    SCOPED_TRACE(what);
    std::unique_ptr<MpcClient> client = Client(options);
    // No TLS session, so no call: gRPC reports the failed connection as UNAVAILABLE.
    EXPECT_THAT(client->Solve(DoubleIntegratorRequest()), StatusIs(absl::StatusCode::kUnavailable));
    EXPECT_THAT(client->CheckHealth().status(), StatusIs(absl::StatusCode::kUnavailable));
  }
  EXPECT_EQ(AllAnswered(), answered_before);
}

TEST(MpcClientTls, InconsistentOptionsAreInvalidArguments) {
  MpcClientOptions options;
  options.tls_root_certs = "x";
  EXPECT_THAT(MpcClient::Create("127.0.0.1:1", options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("use_tls")));
  options = {};
  options.use_tls = true;
  options.tls_cert_chain = "x";
  EXPECT_THAT(MpcClient::Create("127.0.0.1:1", options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tls_private_key")));
}

}  // namespace
}  // namespace mpc
