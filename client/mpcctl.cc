// mpcctl: command-line client for mpcd.
//
//   mpcctl solve --local --request=FILE.json   solve a SolveRequest (protobuf JSON) in-process
//   mpcctl backward --local --request=FILE.json  gradients for a BackwardRequest, in-process
//   mpcctl models --local                      list the built-in models (ListModelsResponse JSON)
//   mpcctl demo                                solve a built-in cartpole swing-up, print a summary
//
// Against a server (--target=HOST:PORT):
//   mpcctl solve --target=ADDR --request=FILE.json  Solve on the server, print the SolveResponse
//   mpcctl backward --target=ADDR --request=FILE.json  Backward on the server
//   mpcctl models --target=ADDR                     ListModels on the server
//   mpcctl health --target=ADDR [--service=NAME]    grpc.health.v1 Check; exit 0 only when SERVING
//   mpcctl bench --target=ADDR --model=cartpole --horizon=25 --batch=1 --concurrency=N
//                --duration=S [--json]             closed-loop load: throughput and latency
//                [--verify]                        ... and check every answer against a local solve
//   --target=ipv4:H1:P1,H2:P2 --round_robin         replicas: round-robin, retry UNAVAILABLE
//   --target=PROXY:PORT --retry                     retry UNAVAILABLE (one address, e.g. nginx)
//   mpcctl bench --target=ADDR --rate=R ...         open-loop load: R requests/s whatever the
//                                                   answers (overload: what is refused, how fast)
//
// Every --target command also takes the TLS and token flags: --tls (system roots), --tls_ca=PEM,
// --tls_cert=PEM --tls_key=PEM (mutual TLS), --tls_server_name=NAME, --auth_token_file=FILE.
//
// Output JSON goes to stdout. Any error is exactly one line "mpcctl: <message>" on stderr, with
// exit code 2 for bad input or usage and 1 for a failure of the solver itself. With --target every
// error exits 2, and an error from the server reads "mpcctl: CODE: message" (gRPC's code name).

#include <google/protobuf/util/json_util.h>
#include <grpc/support/log.h>
#include <grpcpp/support/validate_service_config.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/load_generator.h"
#include "client/mpc_client.h"
#include "client/mpcctl_help.h"
#include "client/output_format.h"
#include "common/process_lifetime.h"
#include "mpcd/v1/mpcd.pb.h"
#include "proto/error_details.h"
#include "proto/proto_conversion.h"
#include "solver/make_backend.h"
#include "solver/models/model_registry.h"
#include "solver/problem.h"
#include "solver/status_macros.h"

ABSL_FLAG(bool, local, false, "Run in this process on the CPU backend (no server needed).");
ABSL_FLAG(std::string, request, "",
          "solve: the SolveRequest (backward: the BackwardRequest) as JSON (protobuf JSON "
          "mapping, snake_case or lowerCamelCase field names); --request=- reads stdin.");
ABSL_FLAG(std::string, target, "", "Server address HOST:PORT: run the command against mpcd there.");
ABSL_FLAG(double, timeout, 60.0, "--target: deadline of each call, in seconds.");
ABSL_FLAG(bool, tls, false,
          "--target: connect over TLS, trusting the system's root certificates (or --tls_ca).");
ABSL_FLAG(std::string, tls_ca, "",
          "--target: PEM CA certificate(s) the server's certificate must chain to (implies "
          "--tls).");
ABSL_FLAG(std::string, tls_cert, "",
          "--target: PEM client certificate, for servers that require mutual TLS (implies --tls; "
          "needs --tls_key).");
ABSL_FLAG(std::string, tls_key, "", "--target: PEM private key of --tls_cert.");
ABSL_FLAG(std::string, tls_server_name, "",
          "--target: the name the server's certificate must carry when it is not the target's "
          "host, e.g. 127.0.0.1 inside the server's pod (implies --tls).");
ABSL_FLAG(std::string, auth_token_file, "",
          "--target: file holding a bearer token to send with every call (\"authorization: "
          "Bearer <token>\").");
ABSL_FLAG(std::string, service, "", "health: the service to check (\"\" = the whole server).");
ABSL_FLAG(std::string, model, "cartpole", "bench: cartpole, pendulum or linear.");
ABSL_FLAG(int, horizon, 25, "bench: horizon T of every problem.");
ABSL_FLAG(int, batch, 1, "bench: problems per request.");
ABSL_FLAG(int, concurrency, 1, "bench: callers, each with one request in flight.");
ABSL_FLAG(double, duration, 10.0, "bench: measured seconds.");
ABSL_FLAG(double, warmup, 1.0, "bench: seconds of load before measuring.");
ABSL_FLAG(int, iterations, 10,
          "bench: exactly this many iLQR iterations per problem (tolerance 0, as the solver "
          "benchmark's fixed10); 0 = solve to convergence with the default options.");
ABSL_FLAG(int, state_dim, 8, "bench --model=linear: n.");
ABSL_FLAG(int, control_dim, 4, "bench --model=linear: m.");
ABSL_FLAG(int, channels, 1,
          "bench: TCP connections to spread the callers over (one HTTP/2 connection carries many "
          "concurrent calls; more connections cost more CPU on a small machine).");
ABSL_FLAG(bool, json, false,
          "bench: print one JSON object instead of text; control: print each ControlResponse.");
ABSL_FLAG(int, steps, 10, "control: steps of the receding-horizon session.");
ABSL_FLAG(bool, round_robin, false,
          "--target: spread calls round-robin over every address the target resolves to "
          "(ipv4:HOST:PORT,HOST:PORT,... or a DNS name with several addresses), skipping replicas "
          "that are down or not SERVING, and retry calls that fail with UNAVAILABLE on another "
          "replica.");
ABSL_FLAG(bool, retry, false,
          "--target: retry calls that fail with UNAVAILABLE (for one address: a single server or "
          "a proxy in front of replicas).");
ABSL_FLAG(std::string, service_config, "",
          "--target: a gRPC service config (JSON) for the channel; overrides --round_robin and "
          "--retry.");
ABSL_FLAG(bool, verify, false,
          "bench: solve every distinct request in this process first and check each answer "
          "against it; a mismatch counts as a WRONG_ANSWER error.");
ABSL_FLAG(double, verify_tolerance, 1e-9,
          "bench --verify: largest relative difference allowed in costs and trajectories (the "
          "server's CPU backend, built from the same source, agrees bitwise).");
ABSL_FLAG(double, rate, 0.0,
          "bench: open loop, send this many requests per second whatever the answers "
          "(--concurrency is then unused); 0 = closed loop.");
ABSL_FLAG(int, max_in_flight, 10000,
          "bench --rate: most unanswered requests; a request due beyond it is skipped (counted).");
ABSL_FLAG(int, threads, 0, "--local: CPU solver threads (0 = one per hardware thread).");
ABSL_FLAG(std::string, output, "json",
          "solve, backward, models: print the answer as json (pretty), compact (JSON on one line) "
          "or table (one row per problem or model).");

namespace {

constexpr char kUsage[] =
    "usage: mpcctl solve --local --request=FILE.json|- [--threads=N]\n"
    "       mpcctl solve --target=HOST:PORT --request=FILE.json|- [--timeout=S]\n"
    "       mpcctl backward --local --request=FILE.json|- [--threads=N]\n"
    "       mpcctl backward --target=HOST:PORT --request=FILE.json|- [--timeout=S]\n"
    "       mpcctl models --local | --target=HOST:PORT\n"
    "       mpcctl health --target=HOST:PORT [--service=NAME]\n"
    "       mpcctl control --target=HOST:PORT --request=FIRST.json|- [--steps=10] [--json]\n"
    "       mpcctl bench --target=HOST:PORT [--model=cartpole] [--horizon=25] [--batch=1]\n"
    "                    [--concurrency=N | --rate=R] [--duration=S] [--warmup=S]\n"
    "                    [--iterations=10] [--json] [--verify]\n"
    "       (with --target: [--round_robin | --retry | --service_config=JSON]; replicas as\n"
    "        --target=ipv4:HOST:PORT,HOST:PORT,... or a DNS name with several addresses)\n"
    "       mpcctl demo [--threads=N]\n"
    "  with --target, also: [--tls] [--tls_ca=CA.pem] [--tls_cert=CERT.pem --tls_key=KEY.pem]\n"
    "                       [--tls_server_name=NAME] [--auth_token_file=FILE]";

// Problems with the input (usage, files, JSON, validation) exit with 2; solver failures with 1.
int ExitCode(const absl::Status& status) {
  if (!absl::GetFlag(FLAGS_target).empty()) return 2;  // talking to a server: every error is 2
  switch (status.code()) {
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kDataLoss:
      return 1;
    default:
      return 2;
  }
}

// The one-line error contract: never let a multi-line message (e.g. from the JSON parser) through.
int Fail(const absl::Status& status) {
  std::string message = absl::StrReplaceAll(status.message(), {{"\r\n", "; "}, {"\n", "; "}});
  std::cerr << "mpcctl: " << message << "\n";
  return ExitCode(status);
}

absl::StatusOr<std::string> ReadInput(const std::string& path) {
  if (path == "-") {
    std::string contents((std::istreambuf_iterator<char>(std::cin)),
                         std::istreambuf_iterator<char>());
    if (std::cin.bad()) return absl::InvalidArgumentError("cannot read the request from stdin");
    return contents;
  }
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", path, ": is a directory"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  }
  std::string contents((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
  return contents;
}

// A request message of type Request (named `type` in messages) from protobuf JSON.
template <class Request>
absl::StatusOr<Request> ParseJsonRequest(const std::string& json, const std::string& source,
                                         const char* type) {
  Request request;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;  // a misspelt field must not be silently dropped
  const auto status = google::protobuf::util::JsonStringToMessage(json, &request, options);
  if (!status.ok()) {
    // The parser's first line says what is wrong; the rest echoes the input around the error.
    const std::string message = status.message().ToString();
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": not a valid ", type, " JSON: ", message.substr(0, message.find('\n'))));
  }
  return request;
}

struct LocalSolve {
  mpcd::v1::SolveResponse response;
  std::vector<mpc::Problem> problems;
  std::vector<mpc::Solution> solutions;
  int threads = 0;
};

// The CPU backend's pool size for --threads (0 = one per hardware thread, as MakeBackend sizes it).
int ResolvedThreads(int threads) {
  return threads > 0 ? threads
                     : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

// Converts, validates and solves `request` on an in-process CPU backend (the solver's public
// MakeBackend; Jacobians the request asks for are computed in the launch).
absl::StatusOr<LocalSolve> SolveLocally(const mpcd::v1::SolveRequest& request, int threads) {
  LocalSolve result;
  MPC_ASSIGN_OR_RETURN(result.problems, mpc::ToProblems(request, mpc::RequestLimits{}));
  MPC_ASSIGN_OR_RETURN(std::unique_ptr<mpc::SolverBackend> backend,
                       mpc::MakeBackend(mpc::BackendKind::kCpu, threads));
  result.threads = ResolvedThreads(threads);

  result.solutions.resize(result.problems.size());
  std::vector<const mpc::Problem*> problem_ptrs;
  std::vector<mpc::Solution*> solution_ptrs;
  for (std::size_t i = 0; i < result.problems.size(); ++i) {
    problem_ptrs.push_back(&result.problems[i]);
    solution_ptrs.push_back(&result.solutions[i]);
  }
  const absl::Time start = absl::Now();
  MPC_RETURN_IF_ERROR(backend->SolveBatch(problem_ptrs, solution_ptrs));
  const absl::Duration elapsed = absl::Now() - start;

  mpc::ToSolveResponse(result.solutions, result.problems, &result.response);
  result.response.mutable_timing()->set_queue_seconds(0.0);
  result.response.mutable_timing()->set_solve_seconds(absl::ToDoubleSeconds(elapsed));
  result.response.set_batch_size(static_cast<std::uint32_t>(result.problems.size()));
  result.response.set_backend(std::string(backend->name()));
  return result;
}

// The --request file (or stdin with "-") as a `type` JSON message; `command` names the subcommand
// in the message when --request is missing.
template <class Request>
absl::StatusOr<Request> ReadRequestFlag(const char* command, const char* type) {
  const std::string path = absl::GetFlag(FLAGS_request);
  if (path.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(command, " needs --request=FILE.json (or --request=- for stdin)"));
  }
  MPC_ASSIGN_OR_RETURN(const std::string json, ReadInput(path));
  return ParseJsonRequest<Request>(json, path == "-" ? "stdin" : path, type);
}

absl::Status PrintJson(const google::protobuf::Message& message) {
  MPC_ASSIGN_OR_RETURN(const mpc::OutputFormat format,
                       mpc::ParseOutputFormat(absl::GetFlag(FLAGS_output)));
  MPC_ASSIGN_OR_RETURN(const std::string out, mpc::FormatMessage(message, format));
  std::cout << out << "\n";
  return absl::OkStatus();
}

// Both subcommands that talk to mpcd need to know where: in-process or a server.
absl::Status CheckMode(const char* command) {
  if (!absl::GetFlag(FLAGS_target).empty()) {
    return absl::InvalidArgumentError("--local and --target exclude each other");
  }
  if (!absl::GetFlag(FLAGS_local)) {
    return absl::InvalidArgumentError(
        absl::StrCat(command, " needs --local (solve in this process) or --target=HOST:PORT"));
  }
  if (absl::GetFlag(FLAGS_threads) < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--threads: must be >= 0, got ", absl::GetFlag(FLAGS_threads)));
  }
  return absl::OkStatus();
}

absl::Status RunSolveRemote();
absl::Status RunBackwardRemote();
absl::Status RunModelsRemote();

absl::Status RunSolve() {
  if (!absl::GetFlag(FLAGS_target).empty() && !absl::GetFlag(FLAGS_local)) return RunSolveRemote();
  MPC_RETURN_IF_ERROR(CheckMode("solve"));
  MPC_ASSIGN_OR_RETURN(const mpcd::v1::SolveRequest request,
                       ReadRequestFlag<mpcd::v1::SolveRequest>("solve", "SolveRequest"));
  MPC_ASSIGN_OR_RETURN(const LocalSolve solved,
                       SolveLocally(request, absl::GetFlag(FLAGS_threads)));
  return PrintJson(solved.response);
}

// A BackwardRequest (protobuf JSON) to a BackwardResponse on an in-process CPU backend, one
// backend call for all problems.
absl::Status RunBackward() {
  if (!absl::GetFlag(FLAGS_target).empty() && !absl::GetFlag(FLAGS_local)) {
    return RunBackwardRemote();
  }
  MPC_RETURN_IF_ERROR(CheckMode("backward"));
  MPC_ASSIGN_OR_RETURN(const mpcd::v1::BackwardRequest request,
                       ReadRequestFlag<mpcd::v1::BackwardRequest>("backward", "BackwardRequest"));
  MPC_ASSIGN_OR_RETURN(const mpc::BackwardInputs batch,
                       mpc::ToBackwardProblems(request, mpc::RequestLimits{}));
  MPC_ASSIGN_OR_RETURN(std::unique_ptr<mpc::SolverBackend> backend,
                       mpc::MakeBackend(mpc::BackendKind::kCpu, absl::GetFlag(FLAGS_threads)));
  std::vector<const mpc::BackwardProblem*> inputs;
  for (const mpc::BackwardProblem& item : batch.items) inputs.push_back(&item);
  std::vector<mpc::ProblemGradient> gradients(inputs.size());
  std::vector<mpc::ProblemGradient*> outputs;
  for (mpc::ProblemGradient& gradient : gradients) outputs.push_back(&gradient);
  const absl::Time start = absl::Now();
  MPC_RETURN_IF_ERROR(backend->BackwardBatch(inputs, outputs));
  const absl::Duration elapsed = absl::Now() - start;

  mpcd::v1::BackwardResponse response;
  mpc::ToBackwardResponse(request, gradients, &response, batch.problems);
  response.mutable_timing()->set_queue_seconds(0.0);
  response.mutable_timing()->set_solve_seconds(absl::ToDoubleSeconds(elapsed));
  response.set_batch_size(static_cast<std::uint32_t>(gradients.size()));
  response.set_backend(std::string(backend->name()));
  return PrintJson(response);
}

absl::Status RunModels() {
  if (!absl::GetFlag(FLAGS_target).empty() && !absl::GetFlag(FLAGS_local)) {
    return RunModelsRemote();
  }
  MPC_RETURN_IF_ERROR(CheckMode("models"));
  mpcd::v1::ListModelsResponse response;
  mpc::ToListModelsResponse(mpc::BuiltinModels(), &response);
  return PrintJson(response);
}

void SetTensor(std::vector<std::uint32_t> shape, const std::vector<double>& data,
               mpcd::v1::Tensor* tensor) {
  tensor->mutable_shape()->Assign(shape.begin(), shape.end());
  tensor->mutable_data()->Assign(data.begin(), data.end());
}

// mpc.pytorch's cartpole swing-up (its notebook's cost): C = diag(0.1, 0.1, 1, 1, 0.1, 0.001),
// c = [0, 0, -1, 0, 0, 0], |force| <= 100, T = 25, from two of the reference case
// cartpole_swingup_b100's initial states (mpc.pytorch's costs there: 34.5404 and 34.5657).
// mpc.pytorch's cartpole swing-up (the notebook's cost, |u| <= 100) from `x_init` (5).
void SetCartpoleSwingup(const std::vector<double>& x_init, mpcd::v1::Problem* problem) {
  SetTensor({5}, x_init, problem->mutable_x_init());
  std::vector<double> quadratic(36, 0.0);
  const double weights[] = {0.1, 0.1, 1.0, 1.0, 0.1, 0.001};
  for (int i = 0; i < 6; ++i) quadratic[i * 6 + i] = weights[i];
  SetTensor({6, 6}, quadratic, problem->mutable_cost()->mutable_quadratic());
  SetTensor({6}, {0.0, 0.0, -1.0, 0.0, 0.0, 0.0}, problem->mutable_cost()->mutable_linear());
  problem->mutable_dynamics()->mutable_model()->set_name("cartpole");
  SetTensor({1}, {-100.0}, problem->mutable_u_lower());
  SetTensor({1}, {100.0}, problem->mutable_u_upper());
}

mpcd::v1::SolveRequest DemoRequest() {
  mpcd::v1::SolveRequest request;
  request.set_horizon(25);
  request.mutable_options()->set_max_iterations(200);
  const std::vector<std::vector<double>> initial_states = {
      {0.3259886368846646, 0.32759316218145784, 0.3582862788381984, 0.9336117728457994,
       0.21492598676692765},
      {0.41814550060546896, 0.48702242360349446, 0.23946567396161964, -0.9709048310695068,
       0.3367193040365547},
  };
  for (const std::vector<double>& x_init : initial_states) {
    mpcd::v1::Problem* problem = request.add_problems();
    SetCartpoleSwingup(x_init, problem);
  }
  return request;
}

absl::Status RunDemo() {
  if (absl::GetFlag(FLAGS_threads) < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--threads: must be >= 0, got ", absl::GetFlag(FLAGS_threads)));
  }
  const mpcd::v1::SolveRequest request = DemoRequest();
  MPC_ASSIGN_OR_RETURN(const LocalSolve solved,
                       SolveLocally(request, absl::GetFlag(FLAGS_threads)));
  std::cout << absl::StrFormat(
      "cartpole swing-up, T = %d, %d problems, %s backend with %d threads: %.3f ms\n",
      request.horizon(), request.problems_size(), solved.response.backend(), solved.threads,
      1e3 * solved.response.timing().solve_seconds());
  for (std::size_t i = 0; i < solved.solutions.size(); ++i) {
    const mpc::Solution& solution = solved.solutions[i];
    const int n = solved.problems[i].shape.state_dim;
    const int T = solved.problems[i].shape.horizon;
    std::vector<std::string> final_state;
    for (int j = 0; j < n; ++j) {
      final_state.push_back(absl::StrFormat("%.3f", solution.x[(T - 1) * n + j]));
    }
    std::cout << absl::StrFormat(
        "problem %d: %s after %d iterations, cost %.6f, final state [%s] (x, dx, cos th, sin th, "
        "dth)\n",
        i, mpc::SolveStatusName(solution.status), solution.iterations, solution.cost,
        absl::StrJoin(final_state, ", "));
  }
  return absl::OkStatus();
}

// --- Against a server (--target) ---

// An error from the server (or from reaching it), as "CODE: message" with gRPC's code name, then
// the error's details when they say more: every field violation of a request with several, and
// how long the server asks a client to wait before retrying.
absl::Status RemoteError(const absl::Status& status) {
  std::string message =
      absl::StrCat(absl::StatusCodeToString(status.code()), ": ", status.message());
  if (const std::optional<google::rpc::BadRequest> bad = mpc::BadRequestOf(status);
      bad.has_value() && bad->field_violations_size() > 1) {
    std::vector<std::string> violations;
    for (const auto& violation : bad->field_violations()) {
      violations.push_back(absl::StrCat(violation.field(), ": ", violation.description()));
    }
    absl::StrAppend(&message, "; violations: ", absl::StrJoin(violations, "; "));
  }
  if (const std::optional<google::rpc::RetryInfo> retry = mpc::RetryInfoOf(status);
      retry.has_value()) {
    absl::StrAppend(&message, "; retry after ",
                    retry->retry_delay().seconds() + retry->retry_delay().nanos() * 1e-9, " s");
  }
  return absl::Status(status.code(), message);
}

// The channel's service config from --service_config, --round_robin or --retry.
absl::Status SetServiceConfig(mpc::MpcClientOptions* options) {
  options->service_config_json = absl::GetFlag(FLAGS_service_config);
  if (!options->service_config_json.empty()) {
    const std::string error =
        grpc::experimental::ValidateServiceConfigJSON(options->service_config_json);
    if (!error.empty())
      return absl::InvalidArgumentError(absl::StrCat("--service_config: ", error));
  } else if (absl::GetFlag(FLAGS_round_robin)) {
    options->service_config_json = mpc::ReplicatedServiceConfig();
  } else if (absl::GetFlag(FLAGS_retry)) {
    options->service_config_json = mpc::RetryServiceConfig();
  }
  return absl::OkStatus();
}

// The contents of the file a --flag names; errors start with the flag.
absl::StatusOr<std::string> ReadFlagFile(const char* flag, const std::string& path) {
  absl::StatusOr<std::string> contents = ReadInput(path);
  if (!contents.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", contents.status().message()));
  }
  return contents;
}

// Timeout, TLS and token from the flags.
absl::StatusOr<mpc::MpcClientOptions> ClientOptionsFromFlags() {
  const double timeout = absl::GetFlag(FLAGS_timeout);
  if (!(timeout > 0.0)) {
    return absl::InvalidArgumentError(absl::StrCat("--timeout: must be > 0, got ", timeout));
  }
  mpc::MpcClientOptions options;
  options.timeout = absl::Seconds(timeout);
  MPC_RETURN_IF_ERROR(SetServiceConfig(&options));
  const std::string ca = absl::GetFlag(FLAGS_tls_ca);
  const std::string cert = absl::GetFlag(FLAGS_tls_cert);
  const std::string key = absl::GetFlag(FLAGS_tls_key);
  options.tls_server_name = absl::GetFlag(FLAGS_tls_server_name);
  options.use_tls = absl::GetFlag(FLAGS_tls) || !ca.empty() || !cert.empty() || !key.empty() ||
                    !options.tls_server_name.empty();
  if (cert.empty() != key.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key: give both or neither");
  }
  if (!ca.empty()) {
    MPC_ASSIGN_OR_RETURN(options.tls_root_certs, ReadFlagFile("--tls_ca", ca));
  }
  if (!cert.empty()) {
    MPC_ASSIGN_OR_RETURN(options.tls_cert_chain, ReadFlagFile("--tls_cert", cert));
    MPC_ASSIGN_OR_RETURN(options.tls_private_key, ReadFlagFile("--tls_key", key));
  }
  const std::string token_file = absl::GetFlag(FLAGS_auth_token_file);
  if (!token_file.empty()) {
    MPC_ASSIGN_OR_RETURN(const std::string token, ReadFlagFile("--auth_token_file", token_file));
    // A final newline (echo, Kubernetes secrets) is not part of the token.
    options.auth_token = std::string(absl::StripAsciiWhitespace(token));
    if (options.auth_token.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--auth_token_file: ", token_file, " is empty"));
    }
  }
  return options;
}

absl::StatusOr<std::unique_ptr<mpc::MpcClient>> Connect() {
  MPC_ASSIGN_OR_RETURN(const mpc::MpcClientOptions options, ClientOptionsFromFlags());
  return mpc::MpcClient::Create(absl::GetFlag(FLAGS_target), options);
}

// A call's answer as JSON, or its gRPC status as the error.
template <class Response>
absl::Status PrintRemote(const absl::StatusOr<Response>& response) {
  if (!response.ok()) return RemoteError(response.status());
  return PrintJson(*response);
}

absl::Status RunSolveRemote() {
  MPC_ASSIGN_OR_RETURN(const mpcd::v1::SolveRequest request,
                       ReadRequestFlag<mpcd::v1::SolveRequest>("solve", "SolveRequest"));
  MPC_ASSIGN_OR_RETURN(std::unique_ptr<mpc::MpcClient> client, Connect());
  return PrintRemote(client->Solve(request));
}

absl::Status RunBackwardRemote() {
  MPC_ASSIGN_OR_RETURN(const mpcd::v1::BackwardRequest request,
                       ReadRequestFlag<mpcd::v1::BackwardRequest>("backward", "BackwardRequest"));
  MPC_ASSIGN_OR_RETURN(std::unique_ptr<mpc::MpcClient> client, Connect());
  return PrintRemote(client->Backward(request));
}

absl::Status RunModelsRemote() {
  MPC_ASSIGN_OR_RETURN(std::unique_ptr<mpc::MpcClient> client, Connect());
  return PrintRemote(client->ListModels());
}

// A receding-horizon session against a perfect plant: the first message is --request (a
// ControlRequest); each later one measures the state the previous plan predicts one step ahead.
// Prints one JSON line per step (--json: the whole ControlResponse).
absl::Status RunControl() {
  if (absl::GetFlag(FLAGS_target).empty()) {
    return absl::InvalidArgumentError("control needs --target=HOST:PORT");
  }
  const int steps = absl::GetFlag(FLAGS_steps);
  if (steps < 1)
    return absl::InvalidArgumentError(absl::StrCat("--steps: must be >= 1, got ", steps));
  MPC_ASSIGN_OR_RETURN(const mpcd::v1::ControlRequest first,
                       ReadRequestFlag<mpcd::v1::ControlRequest>("control", "ControlRequest"));
  MPC_ASSIGN_OR_RETURN(std::unique_ptr<mpc::MpcClient> client, Connect());
  std::unique_ptr<mpc::ControlStream> session = client->OpenControl();
  mpcd::v1::ControlRequest request = first;
  for (int step = 0; step < steps; ++step) {
    absl::StatusOr<mpcd::v1::ControlResponse> answer = session->Step(request);
    if (!answer.ok()) return RemoteError(answer.status());
    const mpcd::v1::Tensor& x = answer->plan().x();
    const int n = x.shape_size() == 2 ? static_cast<int>(x.shape(1)) : 0;
    if (absl::GetFlag(FLAGS_json)) {
      MPC_RETURN_IF_ERROR(PrintJson(*answer));
    } else {
      std::cout << absl::StrFormat(
          "step %d: x = [%s]  u0 = [%s]  cost %.6g  %s in %d iterations\n", step,
          absl::StrJoin(x.data().begin(), x.data().begin() + n, ", "),
          absl::StrJoin(answer->u0().data(), ", "), answer->plan().cost(),
          mpcd::v1::SolveStatus_Name(answer->plan().status()), answer->plan().iterations());
    }
    request.Clear();
    request.mutable_x()->add_shape(static_cast<std::uint32_t>(n));
    if (x.shape_size() == 2 && x.shape(0) >= 2) {
      request.mutable_x()->mutable_data()->Assign(x.data().begin() + n, x.data().begin() + 2 * n);
    } else {  // T = 1: the plan predicts nothing further; hold the state
      request.mutable_x()->mutable_data()->Assign(x.data().begin(), x.data().begin() + n);
    }
  }
  absl::Status closed = session->Close();
  return closed.ok() ? closed : RemoteError(closed);
}

// Prints the serving status; true when SERVING.
absl::StatusOr<bool> RunHealth() {
  if (absl::GetFlag(FLAGS_target).empty()) {
    return absl::InvalidArgumentError("health needs --target=HOST:PORT");
  }
  MPC_ASSIGN_OR_RETURN(std::unique_ptr<mpc::MpcClient> client, Connect());
  absl::StatusOr<mpc::ServingStatus> status = client->CheckHealth(absl::GetFlag(FLAGS_service));
  if (!status.ok()) return RemoteError(status.status());
  std::cout << mpc::ServingStatusName(*status) << "\n";
  return *status == mpc::ServingStatus::kServing;
}

// Uniform on [lo, hi) from 53 bits of a fixed generator, so every run sends the same problems.
double Uniform(std::mt19937_64& rng, double lo, double hi) {
  return lo + (hi - lo) * (static_cast<double>(rng() >> 11) * 0x1.0p-53);
}

// One bench problem. cartpole and pendulum use mpc.pytorch's notebook costs and random initial
// states (as the solver benchmark does); linear is a random stable LQR with bounded controls.
absl::Status AddBenchProblem(const std::string& model, std::mt19937_64& rng,
                             mpcd::v1::SolveRequest* request) {
  constexpr double kPi = 3.14159265358979323846;
  mpcd::v1::Problem* problem = request->add_problems();
  if (model == "cartpole") {
    const double th = Uniform(rng, -kPi, kPi);
    SetCartpoleSwingup({Uniform(rng, -0.5, 0.5), Uniform(rng, -0.5, 0.5), std::cos(th),
                        std::sin(th), Uniform(rng, -0.5, 0.5)},
                       problem);
  } else if (model == "pendulum") {
    const double th = Uniform(rng, -kPi, kPi);
    SetTensor({3}, {std::cos(th), std::sin(th), Uniform(rng, -1.0, 1.0)},
              problem->mutable_x_init());
    std::vector<double> quadratic(16, 0.0);
    const double weights[] = {1.0, 1.0, 0.1, 0.001};
    for (int i = 0; i < 4; ++i) quadratic[i * 4 + i] = weights[i];
    SetTensor({4, 4}, quadratic, problem->mutable_cost()->mutable_quadratic());
    SetTensor({4}, {-1.0, 0.0, 0.0, 0.0}, problem->mutable_cost()->mutable_linear());
    problem->mutable_dynamics()->mutable_model()->set_name("pendulum");
    SetTensor({1}, {-2.0}, problem->mutable_u_lower());
    SetTensor({1}, {2.0}, problem->mutable_u_upper());
  } else if (model == "linear") {
    const int n = absl::GetFlag(FLAGS_state_dim);
    const int m = absl::GetFlag(FLAGS_control_dim);
    if (n < 1 || m < 1) {
      return absl::InvalidArgumentError("--state_dim and --control_dim: must be >= 1");
    }
    const int tau = n + m;
    std::vector<double> x_init(n);
    for (double& v : x_init) v = Uniform(rng, -1.0, 1.0);
    SetTensor({static_cast<std::uint32_t>(n)}, x_init, problem->mutable_x_init());
    // C = I + 0.1 (symmetric noise): positive definite; c small.
    std::vector<double> quadratic(tau * tau, 0.0);
    for (int i = 0; i < tau; ++i) {
      quadratic[i * tau + i] = 1.0;
      for (int j = 0; j < i; ++j) {
        const double v = Uniform(rng, -0.1, 0.1) / tau;
        quadratic[i * tau + j] = v;
        quadratic[j * tau + i] = v;
      }
    }
    std::vector<double> linear(tau);
    for (double& v : linear) v = Uniform(rng, -0.5, 0.5);
    SetTensor({static_cast<std::uint32_t>(tau), static_cast<std::uint32_t>(tau)}, quadratic,
              problem->mutable_cost()->mutable_quadratic());
    SetTensor({static_cast<std::uint32_t>(tau)}, linear, problem->mutable_cost()->mutable_linear());
    // F = [A B], A = 0.9 I + noise / sqrt(n), B = noise / sqrt(n).
    std::vector<double> transition(n * tau);
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < tau; ++j) {
        transition[i * tau + j] = (i == j ? 0.9 : 0.0) + Uniform(rng, -0.3, 0.3) / std::sqrt(n);
      }
    }
    SetTensor({static_cast<std::uint32_t>(n), static_cast<std::uint32_t>(tau)}, transition,
              problem->mutable_dynamics()->mutable_linear()->mutable_transition());
    SetTensor({static_cast<std::uint32_t>(m)}, std::vector<double>(m, -0.5),
              problem->mutable_u_lower());
    SetTensor({static_cast<std::uint32_t>(m)}, std::vector<double>(m, 0.5),
              problem->mutable_u_upper());
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--model: unknown \"", model, "\" (cartpole, pendulum or linear)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<mpcd::v1::SolveRequest> BenchRequest(std::uint64_t seed) {
  const std::string model = absl::GetFlag(FLAGS_model);
  const int horizon = absl::GetFlag(FLAGS_horizon);
  const int batch = absl::GetFlag(FLAGS_batch);
  const int iterations = absl::GetFlag(FLAGS_iterations);
  if (horizon < 1) return absl::InvalidArgumentError("--horizon: must be >= 1");
  if (batch < 1) return absl::InvalidArgumentError("--batch: must be >= 1");
  if (iterations < 0) return absl::InvalidArgumentError("--iterations: must be >= 0");
  std::mt19937_64 rng(seed);
  mpcd::v1::SolveRequest request;
  request.set_horizon(horizon);
  for (int i = 0; i < batch; ++i) MPC_RETURN_IF_ERROR(AddBenchProblem(model, rng, &request));
  if (iterations > 0) {
    // Fixed work per problem, as the solver benchmark (and mpc.pytorch's fixed10 timings), so the
    // end-to-end and solver-only figures compare like with like.
    mpcd::v1::SolverOptions* options = request.mutable_options();
    options->set_max_iterations(iterations);
    options->set_tolerance(0.0);
    options->set_not_improved_limit(iterations + 1);
    if (model == "cartpole") {
      options->set_linesearch_decay(0.5);
      options->set_max_linesearch_iterations(2);
    } else if (model == "pendulum") {
      options->set_linesearch_decay(0.2);
      options->set_max_linesearch_iterations(5);
    }
  }
  return request;
}

bool Close(double actual, double expected, double tolerance) {
  return std::abs(actual - expected) <= tolerance * std::max(1.0, std::abs(expected));
}

absl::Status CompareTensor(const char* name, int problem, const mpcd::v1::Tensor& actual,
                           const mpcd::v1::Tensor& expected, double tolerance) {
  if (actual.data_size() != expected.data_size()) {
    return absl::DataLossError(absl::StrFormat("solutions[%d].%s: %d values, expected %d", problem,
                                               name, actual.data_size(), expected.data_size()));
  }
  for (int i = 0; i < actual.data_size(); ++i) {
    if (!Close(actual.data(i), expected.data(i), tolerance)) {
      return absl::DataLossError(absl::StrFormat("solutions[%d].%s[%d]: %.17g, expected %.17g",
                                                 problem, name, i, actual.data(i),
                                                 expected.data(i)));
    }
  }
  return absl::OkStatus();
}

// bench --verify: does a server's answer match the one solved in this process?
absl::Status CompareSolveResponses(const mpcd::v1::SolveResponse& actual,
                                   const mpcd::v1::SolveResponse& expected, double tolerance) {
  if (actual.solutions_size() != expected.solutions_size()) {
    return absl::DataLossError(absl::StrFormat("%d solutions, expected %d", actual.solutions_size(),
                                               expected.solutions_size()));
  }
  for (int p = 0; p < actual.solutions_size(); ++p) {
    const mpcd::v1::Solution& a = actual.solutions(p);
    const mpcd::v1::Solution& e = expected.solutions(p);
    if (a.status() != e.status()) {
      return absl::DataLossError(absl::StrFormat("solutions[%d].status: %s, expected %s", p,
                                                 mpcd::v1::SolveStatus_Name(a.status()),
                                                 mpcd::v1::SolveStatus_Name(e.status())));
    }
    if (!Close(a.cost(), e.cost(), tolerance)) {
      return absl::DataLossError(
          absl::StrFormat("solutions[%d].cost: %.17g, expected %.17g", p, a.cost(), e.cost()));
    }
    MPC_RETURN_IF_ERROR(CompareTensor("x", p, a.x(), e.x(), tolerance));
    MPC_RETURN_IF_ERROR(CompareTensor("u", p, a.u(), e.u(), tolerance));
  }
  return absl::OkStatus();
}

absl::Status RunBench() {
  if (absl::GetFlag(FLAGS_target).empty()) {
    return absl::InvalidArgumentError("bench needs --target=HOST:PORT");
  }
  const int concurrency = absl::GetFlag(FLAGS_concurrency);
  if (concurrency < 1 || concurrency > 100000) {
    return absl::InvalidArgumentError(
        absl::StrCat("--concurrency: must be in [1, 100000], got ", concurrency));
  }
  const double duration = absl::GetFlag(FLAGS_duration);
  const double warmup = absl::GetFlag(FLAGS_warmup);
  if (!(duration > 0.0)) return absl::InvalidArgumentError("--duration: must be > 0");
  if (!(warmup >= 0.0)) return absl::InvalidArgumentError("--warmup: must be >= 0");
  const int channels = absl::GetFlag(FLAGS_channels);
  if (channels < 1) return absl::InvalidArgumentError("--channels: must be >= 1");
  const double rate = absl::GetFlag(FLAGS_rate);
  if (!(rate >= 0.0 && rate <= 1e7)) {
    return absl::InvalidArgumentError(absl::StrCat("--rate: must be in [0, 1e7], got ", rate));
  }
  const bool open_loop = rate > 0.0;
  const int max_in_flight = absl::GetFlag(FLAGS_max_in_flight);
  if (max_in_flight < 1) return absl::InvalidArgumentError("--max_in_flight: must be >= 1");

  // Distinct problems per caller (up to 64 distinct requests), the same on every run.
  std::vector<mpcd::v1::SolveRequest> requests;
  for (int i = 0; i < (open_loop ? 64 : std::min(concurrency, 64)); ++i) {
    MPC_ASSIGN_OR_RETURN(mpcd::v1::SolveRequest request, BenchRequest(1000 + i));
    requests.push_back(std::move(request));
  }
  MPC_ASSIGN_OR_RETURN(mpc::MpcClientOptions client_options, ClientOptionsFromFlags());
  client_options.own_connection = true;
  std::vector<std::unique_ptr<mpc::MpcClient>> clients;
  std::vector<mpc::MpcClient*> client_ptrs;
  for (int i = 0; i < channels; ++i) {
    MPC_ASSIGN_OR_RETURN(std::unique_ptr<mpc::MpcClient> client,
                         mpc::MpcClient::Create(absl::GetFlag(FLAGS_target), client_options));
    client_ptrs.push_back(client.get());
    clients.push_back(std::move(client));
  }
  // Fail fast (and clearly) when the server is not there or rejects the request.
  absl::StatusOr<mpcd::v1::SolveResponse> probe = clients.front()->Solve(requests.front());
  if (!probe.ok()) return RemoteError(probe.status());

  mpc::LoadOptions options;
  options.concurrency = concurrency;
  options.duration = absl::Seconds(duration);
  options.warmup = absl::Seconds(warmup);
  options.timeout = client_options.timeout;
  std::vector<mpcd::v1::SolveResponse> expected;
  if (absl::GetFlag(FLAGS_verify)) {
    const double tolerance = absl::GetFlag(FLAGS_verify_tolerance);
    if (!(tolerance >= 0.0)) return absl::InvalidArgumentError("--verify_tolerance: must be >= 0");
    for (const mpcd::v1::SolveRequest& request : requests) {
      MPC_ASSIGN_OR_RETURN(LocalSolve solved, SolveLocally(request, /*threads=*/1));
      expected.push_back(std::move(solved.response));
    }
    options.check = [&expected, tolerance](std::size_t index,
                                           const mpcd::v1::SolveResponse& response) {
      return CompareSolveResponses(response, expected[index], tolerance);
    };
  }
  options.rate = rate;
  options.max_in_flight = max_in_flight;
  const bool json = absl::GetFlag(FLAGS_json);
  options.progress = [](absl::Duration elapsed, std::int64_t problems, std::int64_t errors) {
    const double seconds = absl::ToDoubleSeconds(elapsed);
    std::cerr << absl::StrFormat("bench: %5.1f s  %9d problems  %9.0f problems/s  %d errors\n",
                                 seconds, problems, seconds > 0 ? problems / seconds : 0.0, errors);
  };
  MPC_ASSIGN_OR_RETURN(const mpc::LoadResult result,
                       open_loop ? mpc::RunOpenLoop(client_ptrs, requests, options)
                                 : mpc::RunClosedLoop(client_ptrs, requests, options));
  std::vector<std::string> errors;
  for (const auto& [code, count] : result.errors_by_code) {
    errors.push_back(absl::StrFormat("\"%s\": %d", code, count));
  }
  if (json) {
    std::cout << absl::StrFormat(
        "{\"target\": \"%s\", \"model\": \"%s\", \"horizon\": %d, \"batch\": %d, "
        "\"iterations\": %d, \"concurrency\": %d, \"channels\": %d, \"duration_s\": %.3f, "
        "\"requests\": %d, \"problems\": %d, \"errors\": %d, \"errors_by_code\": {%s}, "
        "\"problems_per_s\": %.1f, \"requests_per_s\": %.1f, \"latency_s\": {\"mean\": %.6g, "
        "\"p50\": %.6g, \"p90\": %.6g, \"p99\": %.6g, \"max\": %.6g}, "
        "\"server\": {\"mean_batch_size\": %.2f, \"mean_queue_s\": %.6g, \"max_queue_s\": %.6g, "
        "\"mean_solve_s\": %.6g}, \"backend\": \"%s\", \"total_ok\": %d, \"total_failed\": %d, "
        "\"wrong_answers\": %d, \"verified\": %s, \"rate\": %.1f, \"sent\": %d, \"skipped\": %d}\n",
        absl::GetFlag(FLAGS_target), absl::GetFlag(FLAGS_model), absl::GetFlag(FLAGS_horizon),
        absl::GetFlag(FLAGS_batch), absl::GetFlag(FLAGS_iterations), concurrency, channels,
        absl::ToDoubleSeconds(result.elapsed), result.requests, result.problems, result.errors,
        absl::StrJoin(errors, ", "), result.problems_per_second, result.requests_per_second,
        result.latency_mean, result.latency_p50, result.latency_p90, result.latency_p99,
        result.latency_max, result.mean_batch_size, result.mean_queue_seconds,
        result.max_queue_seconds, result.mean_solve_seconds, probe->backend(), result.total_ok,
        result.total_failed, result.wrong_answers, expected.empty() ? "false" : "true", rate,
        result.sent, result.skipped);
  } else {
    std::cout << absl::StrFormat(
        "%s T=%d batch=%d concurrency=%d (%d connections), %.1f s on %s (%s backend)\n"
        "  throughput  %.1f problems/s (%.1f requests/s), %d requests, %d errors%s\n"
        "  latency     p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  max %.3f ms\n"
        "  server      mean batch %.1f, mean queue %.3f ms, mean solve %.3f ms\n"
        "  whole run   %d calls OK, %d failed (warm-up and tail included)%s\n",
        absl::GetFlag(FLAGS_model), absl::GetFlag(FLAGS_horizon), absl::GetFlag(FLAGS_batch),
        concurrency, channels, absl::ToDoubleSeconds(result.elapsed), absl::GetFlag(FLAGS_target),
        probe->backend(), result.problems_per_second, result.requests_per_second, result.requests,
        result.errors,
        result.first_error.empty() ? "" : absl::StrCat(" (first: ", result.first_error, ")"),
        1e3 * result.latency_p50, 1e3 * result.latency_p90, 1e3 * result.latency_p99,
        1e3 * result.latency_max, result.mean_batch_size, 1e3 * result.mean_queue_seconds,
        1e3 * result.mean_solve_seconds, result.total_ok, result.total_failed,
        expected.empty()
            ? ""
            : absl::StrFormat(", every answer checked: %d wrong", result.wrong_answers));
    if (open_loop) {
      std::cout << absl::StrFormat(
          "  open loop   %.1f requests/s offered: %d sent, %d skipped (--max_in_flight=%d)\n", rate,
          result.sent, result.skipped, max_in_flight);
    }
  }
  return absl::OkStatus();
}

// mpcctl's whole run: its exit code.
int RunMpcctl(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  const mpc::cli::ProgramHelp help = mpc::MpcctlHelp(kUsage);
  mpc::cli::InstallUsageConfig(help);
  if (std::optional<int> code = mpc::cli::HandleHelp(argc, argv, help)) return *code;
  std::string env_error;
  if (!mpc::cli::ApplyEnvironment(help, &env_error)) {
    return Fail(absl::InvalidArgumentError(env_error));
  }
  // gRPC logs some failures itself (e.g. "Handshake failed ... certificate verify failed"), which
  // would break the one-line error contract; the status mpcctl prints carries the same reason.
  // Setting GRPC_VERBOSITY brings gRPC's log back.
  if (std::getenv("GRPC_VERBOSITY") == nullptr) gpr_set_log_function([](gpr_log_func_args*) {});
  const std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2) {
    return Fail(absl::InvalidArgumentError(
        args.size() < 2 ? "missing command (solve, backward, models, health, control, bench or "
                          "demo); see --help"
                        : absl::StrCat("unexpected argument \"", args[2], "\"; see --help")));
  }
  const std::string command = args[1];
  absl::Status status;
  if (command == "solve") {
    status = RunSolve();
  } else if (command == "backward") {
    status = RunBackward();
  } else if (command == "models") {
    status = RunModels();
  } else if (command == "demo") {
    status = RunDemo();
  } else if (command == "health") {
    absl::StatusOr<bool> serving = RunHealth();
    if (serving.ok()) return *serving ? 0 : 1;
    status = serving.status();
  } else if (command == "bench") {
    status = RunBench();
  } else if (command == "control") {
    status = RunControl();
  } else {
    status = absl::InvalidArgumentError(
        absl::StrCat("unknown command \"", command,
                     "\" (solve, backward, models, health, control, bench or demo); see --help"));
  }
  if (!status.ok()) return Fail(status);
  return 0;
}

}  // namespace

// Every object of the run is gone before the process ends; exit() would race gRPC's threads.
int main(int argc, char** argv) { mpc::ExitWithoutTeardown(RunMpcctl(argc, argv)); }
