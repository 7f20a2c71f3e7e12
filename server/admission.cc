#include "server/admission.h"

#include "absl/strings/str_cat.h"
#include "solver/models/model_registry.h"

namespace mpc {
namespace {

// Protobuf's framing of one Solution or gradient message and its Tensors' shapes, generously.
constexpr std::int64_t kMessageOverheadBytes = 256;

std::int64_t ParamCount(const Problem& problem) {
  const ModelInfo* model = FindModel(problem.shape.dynamics);
  return model == nullptr ? 0 : static_cast<std::int64_t>(model->param_names.size());
}

absl::Status CheckTotals(double bytes, double work, const AdmissionLimits& limits) {
  if (bytes > static_cast<double>(limits.max_response_bytes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request: its answer would be ", static_cast<std::int64_t>(bytes),
        " bytes, over the server's --max_response_bytes=", limits.max_response_bytes,
        "; split the problems over several requests or ask for fewer Jacobians/gains"));
  }
  if (work > limits.max_request_work) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request: needs up to ", work,
        " units of solver work (problems x T (n+m)^3 x iterations), over the server's "
        "--max_request_work=",
        limits.max_request_work,
        "; lower options.max_iterations or the horizon, or split the problems over several "
        "requests"));
  }
  return absl::OkStatus();
}

}  // namespace

std::int64_t SolveAnswerDoubles(const Problem& problem) {
  const std::int64_t T = problem.shape.horizon;
  const std::int64_t n = problem.shape.state_dim;
  const std::int64_t m = problem.shape.control_dim;
  std::int64_t doubles = T * (n + m);
  if (problem.options.compute_gains) doubles += T * m * (n + 1);
  if (problem.options.compute_x_init_jacobian) doubles += T * (n + m) * n;
  if (problem.options.compute_params_jacobian) doubles += T * (n + m) * ParamCount(problem);
  return doubles;
}

std::int64_t BackwardAnswerDoubles(const Problem& problem) {
  const std::int64_t T = problem.shape.horizon;
  const std::int64_t n = problem.shape.state_dim;
  std::int64_t offset = static_cast<std::int64_t>(problem.offset.size());
  if (problem.shape.dynamics.is_linear() && offset == 0) {
    offset = problem.transition.size() > static_cast<std::size_t>(n * problem.shape.tau_dim())
                 ? (T - 1) * n
                 : n;
  }
  return static_cast<std::int64_t>(problem.x_init.size() + problem.cost_quadratic.size() +
                                   problem.cost_linear.size() + problem.transition.size()) +
         offset + ParamCount(problem);
}

double SolveWork(const Problem& problem) {
  const double T = problem.shape.horizon;
  const double tau = problem.shape.tau_dim();
  const SolverOptions& options = problem.options;
  const double iteration = T * tau * tau * (tau + options.max_linesearch_iterations);
  double columns = 0;
  if (options.compute_x_init_jacobian) columns += problem.shape.state_dim;
  if (options.compute_params_jacobian) columns += static_cast<double>(ParamCount(problem));
  const double jacobians = columns > 0 ? T * tau * tau * (tau + columns) : 0.0;
  // Gains are one more Riccati pass.
  return (options.max_iterations + 1) * iteration + jacobians;
}

double BackwardWork(const Problem& problem) {
  const double T = problem.shape.horizon;
  const double tau = problem.shape.tau_dim();
  return T * tau * tau * (tau + 2);
}

namespace {

// Sums `answer_doubles` and `work` over the problems and checks them against the limits.
absl::Status CheckRequest(absl::Span<const Problem> problems, const AdmissionLimits& limits,
                          std::int64_t (*answer_doubles)(const Problem&),
                          double (*work)(const Problem&)) {
  double bytes = 0;
  double total_work = 0;
  for (const Problem& problem : problems) {
    bytes += sizeof(double) * static_cast<double>(answer_doubles(problem)) + kMessageOverheadBytes;
    total_work += work(problem);
  }
  return CheckTotals(bytes, total_work, limits);
}

}  // namespace

absl::Status CheckSolveAdmission(absl::Span<const Problem> problems,
                                 const AdmissionLimits& limits) {
  return CheckRequest(problems, limits, &SolveAnswerDoubles, &SolveWork);
}

absl::Status CheckBackwardAdmission(absl::Span<const Problem> problems,
                                    const AdmissionLimits& limits) {
  return CheckRequest(problems, limits, &BackwardAnswerDoubles, &BackwardWork);
}

}  // namespace mpc
