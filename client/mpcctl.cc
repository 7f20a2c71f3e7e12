// mpcctl: command-line client for mpcd.
//
//   mpcctl solve --local --request=FILE.json   solve a SolveRequest (protobuf JSON) in-process
//   mpcctl models --local                      list the built-in models (ListModelsResponse JSON)
//   mpcctl demo                                solve a built-in cartpole swing-up, print a summary
//
// Output JSON goes to stdout. Any error is exactly one line "mpcctl: <message>" on stderr, with
// exit code 2 for bad input or usage and 1 for a failure of the solver itself.

#include <google/protobuf/util/json_util.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "mpcd/v1/mpcd.pb.h"
#include "server/proto_conversion.h"
#include "solver/cpu/cpu_backend.h"
#include "solver/models/model_registry.h"
#include "solver/problem.h"
#include "solver/status_macros.h"

ABSL_FLAG(bool, local, false, "Run in this process on the CPU backend (no server needed).");
ABSL_FLAG(std::string, request, "",
          "solve: the SolveRequest as JSON (protobuf JSON mapping, snake_case or lowerCamelCase "
          "field names); --request=- reads stdin.");
ABSL_FLAG(std::string, target, "", "Server address HOST:PORT (not implemented yet: use --local).");
ABSL_FLAG(int, threads, 0, "--local: CPU solver threads (0 = one per hardware thread).");

namespace {

constexpr char kUsage[] =
    "usage: mpcctl solve --local --request=FILE.json|- [--threads=N]\n"
    "       mpcctl models --local\n"
    "       mpcctl demo [--threads=N]";

// Problems with the input (usage, files, JSON, validation) exit with 2; solver failures with 1.
int ExitCode(const absl::Status& status) {
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

absl::StatusOr<mpcd::v1::SolveRequest> ParseRequest(const std::string& json,
                                                    const std::string& source) {
  mpcd::v1::SolveRequest request;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;  // a misspelt field must not be silently dropped
  const auto status = google::protobuf::util::JsonStringToMessage(json, &request, options);
  if (!status.ok()) {
    // The parser's first line says what is wrong; the rest echoes the input around the error.
    const std::string message = status.message().ToString();
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": not a valid SolveRequest JSON: ", message.substr(0, message.find('\n'))));
  }
  return request;
}

absl::StatusOr<std::string> ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  // Print zeros too (cost 0, iterations 0, ...) so scripts see the same keys every time.
  options.always_print_primitive_fields = true;
  std::string json;
  const auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat("cannot print JSON: ", status.message().ToString()));
  }
  return json;
}

struct LocalSolve {
  mpcd::v1::SolveResponse response;
  std::vector<mpc::Problem> problems;
  std::vector<mpc::Solution> solutions;
  int threads = 0;
};

// Converts, validates and solves `request` on an in-process CpuBackend.
absl::StatusOr<LocalSolve> SolveLocally(const mpcd::v1::SolveRequest& request, int threads) {
  LocalSolve result;
  MPC_ASSIGN_OR_RETURN(result.problems, mpc::ToProblems(request, mpc::RequestLimits{}));
  mpc::CpuBackendOptions backend_options;
  backend_options.threads = threads;
  MPC_ASSIGN_OR_RETURN(std::unique_ptr<mpc::CpuBackend> backend,
                       mpc::CpuBackend::Create(backend_options));
  result.threads = backend->threads();

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

// Both subcommands that talk to mpcd need to know where: in-process or a server.
absl::Status CheckMode(const char* command) {
  if (!absl::GetFlag(FLAGS_target).empty()) {
    return absl::UnimplementedError("--target is not implemented yet: use --local");
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

absl::Status RunSolve() {
  MPC_RETURN_IF_ERROR(CheckMode("solve"));
  const std::string path = absl::GetFlag(FLAGS_request);
  if (path.empty()) {
    return absl::InvalidArgumentError("solve needs --request=FILE.json (or --request=- for stdin)");
  }
  MPC_ASSIGN_OR_RETURN(const std::string json, ReadInput(path));
  MPC_ASSIGN_OR_RETURN(const mpcd::v1::SolveRequest request,
                       ParseRequest(json, path == "-" ? "stdin" : path));
  MPC_ASSIGN_OR_RETURN(const LocalSolve solved,
                       SolveLocally(request, absl::GetFlag(FLAGS_threads)));
  MPC_ASSIGN_OR_RETURN(const std::string out, ToJson(solved.response));
  std::cout << out << "\n";
  return absl::OkStatus();
}

absl::Status RunModels() {
  MPC_RETURN_IF_ERROR(CheckMode("models"));
  mpcd::v1::ListModelsResponse response;
  mpc::ToListModelsResponse(mpc::BuiltinModels(), &response);
  MPC_ASSIGN_OR_RETURN(const std::string out, ToJson(response));
  std::cout << out << "\n";
  return absl::OkStatus();
}

void SetTensor(std::vector<std::uint32_t> shape, const std::vector<double>& data,
               mpcd::v1::Tensor* tensor) {
  tensor->mutable_shape()->Assign(shape.begin(), shape.end());
  tensor->mutable_data()->Assign(data.begin(), data.end());
}

// mpc.pytorch's cartpole swing-up (its notebook's cost): C = diag(0.1, 0.1, 1, 1, 0.1, 0.001),
// c = [0, 0, -1, 0, 0, 0], |force| <= 100, T = 25, from two of the reference case
// cartpole_swingup_b100's initial states (mpc.pytorch's costs there: 34.5404 and 34.5657).
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

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  const std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2) {
    return Fail(absl::InvalidArgumentError(
        args.size() < 2 ? "missing command (solve, models or demo); see --help"
                        : absl::StrCat("unexpected argument \"", args[2], "\"; see --help")));
  }
  const std::string command = args[1];
  absl::Status status;
  if (command == "solve") {
    status = RunSolve();
  } else if (command == "models") {
    status = RunModels();
  } else if (command == "demo") {
    status = RunDemo();
  } else {
    status = absl::InvalidArgumentError(
        absl::StrCat("unknown command \"", command, "\" (solve, models or demo); see --help"));
  }
  if (!status.ok()) return Fail(status);
  return 0;
}
