#ifndef MPC_PROTO_PROTO_CONVERSION_H_
#define MPC_PROTO_PROTO_CONVERSION_H_

// Proto <-> solver types. The only code that knows both mpcd::v1 messages and mpc:: structs, so the
// solver never sees protobuf and the transport never sees Eigen.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "mpcd/v1/mpcd.pb.h"
#include "solver/gradients.h"
#include "solver/graph/graph_registry.h"
#include "solver/models/model_registry.h"
#include "solver/problem.h"

namespace mpc {

// Limits on one request: the per-problem limits plus what only a request has.
struct RequestLimits {
  ProblemLimits problem;
  int max_problems = 65536;  // problems per request
  // Where dynamics.graph finds and registers graphs (owned by the server; its GraphLimits bound a
  // graph). nullptr: graph dynamics are refused with INVALID_ARGUMENT.
  GraphRegistry* graphs = nullptr;
};

// Converts and validates a SolveRequest: request-level checks (horizon, problem count, options,
// Jacobian requests, batched tensors as a whole), each problem merged from its own fields, its
// batched slices and the template (mpcd.proto's merge rule), every Tensor's shape against the
// accepted alternatives, then
// ValidateProblemSizes and ValidateProblem per problem. Errors are INVALID_ARGUMENT naming the
// proto field path, e.g. "problems[2].cost.quadratic: expected shape (5,5) or (20,5,5), got (4,4)".
// On success there is one Problem per request problem, in order, with the request's options (and
// return_gains as options.compute_gains, return_x_init_jacobian / return_params_jacobian /
// jacobian_mode as options.compute_*_jacobian / jacobian_mode).
absl::StatusOr<std::vector<Problem>> ToProblems(const mpcd::v1::SolveRequest& request,
                                                const RequestLimits& limits);

// Converts one proto problem for horizon `horizon` (already checked to be in [1, limit]) with
// `options`. Messages start with `field_prefix` (e.g. "problems[2]."). Shared by Solve, Backward
// and Control.
absl::StatusOr<Problem> ToProblem(const mpcd::v1::Problem& proto, int horizon,
                                  const SolverOptions& options, const RequestLimits& limits,
                                  const std::string& field_prefix);

// The solver's workspace grows with T (n+m)^2; the per-field limits on T, n and m still let a
// few-kilobyte request (time-invariant C and F) ask for gigabytes. INVALID_ARGUMENT naming
// "horizon" and `which` (e.g. "problems[3]") when T (n+m)^2 > limit.
absl::Status CheckWorkspaceSize(const ProblemShape& shape, std::int64_t limit,
                                const std::string& which);

// Options with mpc.pytorch's defaults (mpc::SolverOptions{}) for every unset field. Values are not
// range-checked here (ValidateSolverOptions does that).
SolverOptions ToSolverOptions(const mpcd::v1::SolverOptions& proto);

// Range checks for request-level options; messages name "options.<field>".
absl::Status ValidateSolverOptions(const mpcd::v1::SolverOptions& proto,
                                   const ProblemLimits& limits);

mpcd::v1::SolveStatus ToProtoSolveStatus(SolveStatus status);

// Fills response->solutions (replacing any) from solutions[i], solved for problems[i]: x (T,n),
// u (T,m) and, when present, feedback (T,m,n) and feedforward (T,m). When problems[i].options asks
// for Jacobians, it copies those the backend computed into the Solution (x_init_jacobian
// (T,n+m,n), params_jacobian (T,n+m,p) and jacobian_diagnostics; see ComputeRequestedJacobians in
// solver/solution_jacobians.h); it computes nothing. Timing, batch size and backend are the
// caller's to set.
void ToSolveResponse(absl::Span<const Solution> solutions, const std::vector<Problem>& problems,
                     mpcd::v1::SolveResponse* response);

// Rewrites every Tensor of a response built with repeated doubles (ToSolveResponse,
// ToBackwardResponse) into `encoding` (the request's response_encoding; see mpcd.proto's Tensor
// for the precision rule). REPEATED_FLOAT64 leaves the response as it is.
void EncodeResponseTensors(mpcd::v1::TensorEncoding encoding, mpcd::v1::SolveResponse* response);
void EncodeResponseTensors(mpcd::v1::TensorEncoding encoding, mpcd::v1::BackwardResponse* response);

// A Solve's answer in the form its request asked for: one Solution per problem (ToSolveResponse,
// then EncodeResponseTensors) or, when `stacked` (the request's stacked_response), every output
// stacked along a leading batch axis in response->stacked, written in `encoding` straight from
// the solutions. Timing, batch size and backend are the caller's to set.
void WriteSolutions(absl::Span<const Solution> solutions, const std::vector<Problem>& problems,
                    mpcd::v1::TensorEncoding encoding, bool stacked,
                    mpcd::v1::SolveResponse* response);

GradientMode ToGradientMode(mpcd::v1::BackwardMode mode);
// An unknown value is ILQR (ValidateSolverOptions refuses it first).
SolverMethod ToSolverMethod(mpcd::v1::SolverMethod method);
mpcd::v1::SolverMethod ToProtoSolverMethod(SolverMethod method);
mpcd::v1::GradientStatus ToProtoGradientStatus(GradientStatus status);

// A converted BackwardRequest: the problems and, pointing into them, one BackwardProblem each.
// Moving it keeps the pointers valid (the vectors' buffers move with it); copying does not, so it
// is move-only.
struct BackwardInputs {
  std::vector<Problem> problems;
  std::vector<BackwardProblem> items;

  BackwardInputs() = default;
  BackwardInputs(BackwardInputs&&) = default;
  BackwardInputs& operator=(BackwardInputs&&) = default;
  BackwardInputs(const BackwardInputs&) = delete;
  BackwardInputs& operator=(const BackwardInputs&) = delete;
};

// Converts and validates a BackwardRequest: the problems as ToProblems does (with default
// options), one solution and one cotangent per problem, solutions[i].x (T,n) and .u (T,m)
// required, cotangents[i].x (T,n) and .u (T,m) optional (absent = zero), all finite, and a known
// mode. Errors are INVALID_ARGUMENT naming the field, e.g.
// "cotangents[1].u: expected shape (25,1), got (24,1)".
// `converted` (when not null): the request's problems as this conversion makes them (a retained
// Solve's, through AsBackwardProblem), one per problem, copied instead of converted again.
absl::StatusOr<BackwardInputs> ToBackwardProblems(const mpcd::v1::BackwardRequest& request,
                                                  const RequestLimits& limits,
                                                  const std::vector<Problem>* converted = nullptr);

// A Solve's converted problem as ToBackwardProblems converts the same problem message: the
// default options, no interrupt, sampling stream 0 (what a Solve sets beside the message).
void AsBackwardProblem(Problem* problem);

// Fills response->gradients and ->diagnostics (replacing any) from gradients[i], computed for
// request.problems(i): every gradient Tensor gets the shape the request gave its input (see
// BackwardResponse in the proto for absent inputs). Timing, batch size and backend are the
// caller's to set.
// `problems` (ToBackwardProblems' output, the same order) name and shape a graph's parameters and
// shape a tracking cost's gradients (without them, those gradients are left out).
void ToBackwardResponse(const mpcd::v1::BackwardRequest& request,
                        absl::Span<const ProblemGradient> gradients,
                        mpcd::v1::BackwardResponse* response,
                        absl::Span<const Problem> problems = {});

// A Backward's answer in the form `request` asked for: one gradient Problem per problem
// (ToBackwardResponse, then EncodeResponseTensors) or, with stacked_response,
// response->stacked_gradients (x_init (B, n), cost_quadratic (B, ...) ..., model_params (B, p) or
// graph_parameters) and the diagnostics, in the request's response_encoding.
void WriteGradients(const mpcd::v1::BackwardRequest& request,
                    absl::Span<const ProblemGradient> gradients, absl::Span<const Problem> problems,
                    mpcd::v1::BackwardResponse* response);

// Control sessions (DESIGN §5). The first ControlRequest sets the template: horizon, problem (its
// x_init is the first measured state; messages name "problem.<field>") and options; gains are
// always computed (the answer carries K_0). It may not carry the later messages' x or cost.
absl::StatusOr<Problem> ToControlProblem(const mpcd::v1::ControlRequest& first,
                                         const RequestLimits& limits);

// A later ControlRequest: x (n) becomes the problem's x_init and, when present, cost (same shapes
// as Problem.cost) replaces the cost from now on; it may not carry the first message's fields. On
// error (INVALID_ARGUMENT naming "x", "cost.quadratic", ...) `problem` is unchanged.
absl::Status ApplyControlStep(const mpcd::v1::ControlRequest& step, Problem* problem);

// Warm start for the next step of a receding horizon: the previous plan shifted one step earlier,
// its last control repeated (u_init (T,m)). A plan that is not finite leaves u_init empty (zeros).
void ShiftPlanIntoWarmStart(const Solution& plan, Problem* problem);

// u0 = u[0], feedback0 = K_0 and the whole plan (x, u, K, k, status, ...) of `solution`.
void ToControlResponse(const Problem& problem, const Solution& solution,
                       mpcd::v1::ControlResponse* response);

// Describes `models` (normally BuiltinModels()) into response->models (replacing any).
void ToListModelsResponse(absl::Span<const ModelInfo> models,
                          mpcd::v1::ListModelsResponse* response);

// Appends the graphs loaded from --model_dir: name, n, m, the initializers' names, values (as
// default_params) and shapes, and the graph's sha256.
void AddGraphModels(absl::Span<const NamedGraph> graphs, mpcd::v1::ListModelsResponse* response);

}  // namespace mpc

#endif  // MPC_PROTO_PROTO_CONVERSION_H_
