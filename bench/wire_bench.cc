// The server's serialisation cost per problem (docs/benchmarks.md §5): parsing a request and
// converting it into solver problems, and writing and serialising the answer, for the training
// step's problems (cartpole T=25, every problem its own C (T, 6, 6) and c (T, 6), float64 raw
// tensors) sent one message per problem or in the batched layout (BatchedProblems, stacked
// answers), and a Backward by the name of a retained Solve. Solving is not timed.
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "mpcd/v1/mpcd.pb.h"
#include "proto/proto_conversion.h"
#include "server/retained_solves.h"
#include "solver/make_backend.h"
#include "solver/problem.h"

namespace mpc {
namespace {

constexpr int kHorizon = 25;
constexpr int kN = 5;
constexpr int kM = 1;
constexpr int kTau = kN + kM;

// A raw float64 Tensor of `shape` with values that are not all alike.
mpcd::v1::Tensor RawTensor(const std::vector<std::uint32_t>& shape, double salt) {
  mpcd::v1::Tensor tensor;
  std::size_t count = 1;
  for (std::uint32_t dim : shape) {
    tensor.add_shape(dim);
    count *= dim;
  }
  std::vector<double> values(count);
  for (std::size_t i = 0; i < count; ++i) values[i] = 0.01 * std::sin(salt + 0.3 * i);
  tensor.set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), 8 * count));
  return tensor;
}

// C (T, 6, 6): diagonal weights plus small noise (symmetric enough for the solver's (C + C')/2).
std::vector<double> CostValues(int b) {
  std::vector<double> C(kHorizon * kTau * kTau, 0.0);
  for (int t = 0; t < kHorizon; ++t) {
    for (int i = 0; i < kTau; ++i) C[(t * kTau + i) * kTau + i] = 1.0 + 0.001 * b;
  }
  return C;
}

mpcd::v1::Tensor FromValues(const std::vector<std::uint32_t>& shape,
                            const std::vector<double>& values) {
  mpcd::v1::Tensor tensor;
  for (std::uint32_t dim : shape) tensor.add_shape(dim);
  tensor.set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), 8 * values.size()));
  return tensor;
}

// The cartpole model, bounds and options every problem shares (in the template).
void SetShared(mpcd::v1::Problem* shared) {
  shared->mutable_dynamics()->mutable_model()->set_name("cartpole");
  *shared->mutable_u_lower() = FromValues({kM}, {-100.0});
  *shared->mutable_u_upper() = FromValues({kM}, {100.0});
}

// B problems, one Problem message each (x_init, C, c per problem), or stacked (batched).
mpcd::v1::SolveRequest MakeSolveRequest(int batch, bool batched) {
  mpcd::v1::SolveRequest request;
  request.set_horizon(kHorizon);
  request.mutable_options()->set_max_iterations(10);
  request.set_response_encoding(mpcd::v1::RAW_FLOAT64);
  request.set_stacked_response(batched);
  SetShared(request.mutable_problem_template());
  if (!batched) {
    for (int b = 0; b < batch; ++b) {
      mpcd::v1::Problem* problem = request.add_problems();
      *problem->mutable_x_init() =
          FromValues({kN}, {0.1, 0.0, std::cos(0.1 * b), std::sin(0.1 * b), 0.0});
      *problem->mutable_cost()->mutable_quadratic() =
          FromValues({kHorizon, kTau, kTau}, CostValues(b));
      *problem->mutable_cost()->mutable_linear() = RawTensor({kHorizon, kTau}, b);
    }
    return request;
  }
  const auto B = static_cast<std::uint32_t>(batch);
  mpcd::v1::BatchedProblems* stacked = request.mutable_batched();
  stacked->set_count(B);
  std::vector<double> x;
  std::vector<double> C;
  std::string c;
  for (int b = 0; b < batch; ++b) {
    for (double v : {0.1, 0.0, std::cos(0.1 * b), std::sin(0.1 * b), 0.0}) x.push_back(v);
    const std::vector<double> one = CostValues(b);
    C.insert(C.end(), one.begin(), one.end());
    c += RawTensor({kHorizon, kTau}, b).raw_data();
  }
  *stacked->mutable_x_init() = FromValues({B, kN}, x);
  *stacked->mutable_cost_quadratic() = FromValues({B, kHorizon, kTau, kTau}, C);
  stacked->mutable_cost_linear()->add_shape(B);
  stacked->mutable_cost_linear()->add_shape(kHorizon);
  stacked->mutable_cost_linear()->add_shape(kTau);
  stacked->mutable_cost_linear()->set_raw_data(c);
  return request;
}

// The training step's Backward: the problems again, their solutions and the cotangents, per
// problem or stacked; `problems` and `solutions` from the Solve it differentiates.
mpcd::v1::BackwardRequest MakeBackwardRequest(const mpcd::v1::SolveRequest& solve,
                                              const mpcd::v1::SolveResponse& answer, int batch,
                                              bool batched) {
  mpcd::v1::BackwardRequest request;
  request.set_horizon(kHorizon);
  request.set_response_encoding(mpcd::v1::RAW_FLOAT64);
  request.set_stacked_response(batched);
  *request.mutable_problem_template() = solve.problem_template();
  const auto B = static_cast<std::uint32_t>(batch);
  if (batched) {
    *request.mutable_batched() = solve.batched();
    *request.mutable_stacked_solutions()->mutable_x() = answer.stacked().x();
    *request.mutable_stacked_solutions()->mutable_u() = answer.stacked().u();
    *request.mutable_stacked_cotangents()->mutable_x() = RawTensor({B, kHorizon, kN}, 1.0);
    *request.mutable_stacked_cotangents()->mutable_u() = RawTensor({B, kHorizon, kM}, 2.0);
    return request;
  }
  *request.mutable_problems() = solve.problems();
  for (int b = 0; b < batch; ++b) {
    mpcd::v1::Solution* solution = request.add_solutions();
    *solution->mutable_x() = answer.solutions(b).x();
    *solution->mutable_u() = answer.solutions(b).u();
    mpcd::v1::Cotangent* cotangent = request.add_cotangents();
    *cotangent->mutable_x() = RawTensor({kHorizon, kN}, 1.0 + b);
    *cotangent->mutable_u() = RawTensor({kHorizon, kM}, 2.0 + b);
  }
  return request;
}

// Solves the request's problems (setup, not timed): the answer in the request's layout.
bool SolveForSetup(const mpcd::v1::SolveRequest& request, std::vector<Problem>* problems,
                   std::vector<Solution>* solutions, mpcd::v1::SolveResponse* answer) {
  absl::StatusOr<std::vector<Problem>> converted = ToProblems(request, RequestLimits{});
  absl::StatusOr<std::unique_ptr<SolverBackend>> backend = MakeBackend(BackendKind::kCpu, 1);
  if (!converted.ok() || !backend.ok()) return false;
  *problems = *std::move(converted);
  solutions->assign(problems->size(), Solution());
  std::vector<const Problem*> in;
  std::vector<Solution*> out;
  for (std::size_t i = 0; i < solutions->size(); ++i) {
    in.push_back(&(*problems)[i]);
    out.push_back(&(*solutions)[i]);
  }
  if (!(*backend)->SolveBatch(in, out).ok()) return false;
  WriteSolutions(*solutions, *problems, request.response_encoding(), request.stacked_response(),
                 answer);
  return true;
}

// Time per problem: the time per iteration divided by the batch.
void SetPerProblemCounter(benchmark::State& state, int batch) {
  state.counters["per_problem"] = benchmark::Counter(
      batch, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

// Parse the serialised request and convert it into solver problems, as the server does.
void BM_SolveRequestIn(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0));
  const std::string bytes = MakeSolveRequest(batch, state.range(1) != 0).SerializeAsString();
  for (auto _ : state) {
    mpcd::v1::SolveRequest request;
    request.ParseFromString(bytes);
    absl::StatusOr<std::vector<Problem>> problems = ToProblems(request, RequestLimits{});
    if (!problems.ok()) state.SkipWithError(std::string(problems.status().message()).c_str());
    benchmark::DoNotOptimize(problems);
  }
  state.counters["request_bytes"] = static_cast<double>(bytes.size());
  SetPerProblemCounter(state, batch);
}

// Write the answer (per-problem Solutions re-encoded as bytes, or stacked straight from the
// solutions) and serialise it.
void BM_SolveAnswerOut(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0));
  const bool stacked = state.range(1) != 0;
  std::vector<Problem> problems;
  std::vector<Solution> solutions;
  mpcd::v1::SolveResponse answer;
  if (!SolveForSetup(MakeSolveRequest(batch, stacked), &problems, &solutions, &answer)) {
    state.SkipWithError("setup failed");
    return;
  }
  std::size_t size = 0;
  for (auto _ : state) {
    mpcd::v1::SolveResponse response;
    WriteSolutions(solutions, problems, mpcd::v1::RAW_FLOAT64, stacked, &response);
    const std::string bytes = response.SerializeAsString();
    size = bytes.size();
    benchmark::DoNotOptimize(bytes);
  }
  state.counters["answer_bytes"] = static_cast<double>(size);
  SetPerProblemCounter(state, batch);
}

// The Backward request of a solved training-step batch of `batch` problems (setup, not timed);
// false when the setup failed.
bool BackwardForSetup(int batch, bool batched, mpcd::v1::BackwardRequest* request) {
  const mpcd::v1::SolveRequest solve = MakeSolveRequest(batch, batched);
  std::vector<Problem> problems;
  std::vector<Solution> solutions;
  mpcd::v1::SolveResponse answer;
  if (!SolveForSetup(solve, &problems, &solutions, &answer)) return false;
  *request = MakeBackwardRequest(solve, answer, batch, batched);
  return true;
}

// Parse and convert a Backward request, as the server does.
void BM_BackwardRequestIn(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0));
  mpcd::v1::BackwardRequest setup;
  if (!BackwardForSetup(batch, state.range(1) != 0, &setup)) {
    state.SkipWithError("setup failed");
    return;
  }
  const std::string bytes = setup.SerializeAsString();
  for (auto _ : state) {
    mpcd::v1::BackwardRequest request;
    request.ParseFromString(bytes);
    absl::StatusOr<BackwardInputs> inputs = ToBackwardProblems(request, RequestLimits{});
    if (!inputs.ok()) state.SkipWithError(std::string(inputs.status().message()).c_str());
    benchmark::DoNotOptimize(inputs);
  }
  state.counters["request_bytes"] = static_cast<double>(bytes.size());
  SetPerProblemCounter(state, batch);
}

// A Backward by the name of a retained Solve, as the server reads it: parse the request (the
// cotangents and the name), merge the retained part in, convert. Args: {B, batched, converted (1:
// the retained Solve's converted problems are copied, 0: converted again, as before they were
// kept)}.
void BM_BackwardByNameIn(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0));
  const bool batched = state.range(1) != 0;
  const bool take_converted = state.range(2) != 0;
  const mpcd::v1::SolveRequest solve = MakeSolveRequest(batch, batched);
  std::vector<Problem> problems;
  std::vector<Solution> solutions;
  mpcd::v1::SolveResponse answer;
  if (!SolveForSetup(solve, &problems, &solutions, &answer)) {
    state.SkipWithError("setup failed");
    return;
  }
  RetainedSolves retained(std::int64_t{1} << 40, nullptr);
  const mpcd::v1::BackwardRequest full = MakeBackwardRequest(solve, answer, batch, batched);
  mpcd::v1::BackwardRequest part = RetainedSolves::BackwardPart(solve, answer);
  // What the retained Solve counts against --retained_solve_bytes, beside its request's size.
  state.counters["retained_bytes"] = static_cast<double>(RetainedSolves::BytesOf({part, problems}));
  state.counters["part_bytes"] = static_cast<double>(part.SpaceUsedLong());  // kept before
  state.counters["solve_request_bytes"] = static_cast<double>(solve.ByteSizeLong());
  mpcd::v1::BackwardRequest by_name;
  by_name.set_retained_solve(retained.Retain(std::move(part), std::move(problems)));
  by_name.set_response_encoding(full.response_encoding());
  by_name.set_stacked_response(full.stacked_response());
  *by_name.mutable_cotangents() = full.cotangents();
  if (full.has_stacked_cotangents()) {
    *by_name.mutable_stacked_cotangents() = full.stacked_cotangents();
  }
  const std::string bytes = by_name.SerializeAsString();
  for (auto _ : state) {
    mpcd::v1::BackwardRequest request;
    request.ParseFromString(bytes);
    absl::StatusOr<ResolvedBackward> resolved = retained.Resolve(request);
    if (!resolved.ok()) {
      state.SkipWithError(std::string(resolved.status().message()).c_str());
      break;
    }
    absl::StatusOr<BackwardInputs> inputs =
        ToBackwardProblems(*resolved->merged, RequestLimits{},
                           take_converted ? &resolved->retained->problems : nullptr);
    if (!inputs.ok()) state.SkipWithError(std::string(inputs.status().message()).c_str());
    benchmark::DoNotOptimize(inputs);
  }
  state.counters["request_bytes"] = static_cast<double>(bytes.size());
  SetPerProblemCounter(state, batch);
}

// Write the gradients (per problem or stacked) and serialise them.
void BM_BackwardAnswerOut(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0));
  mpcd::v1::BackwardRequest request;
  absl::StatusOr<std::unique_ptr<SolverBackend>> backend = MakeBackend(BackendKind::kCpu, 1);
  if (!BackwardForSetup(batch, state.range(1) != 0, &request) || !backend.ok()) {
    state.SkipWithError("setup failed");
    return;
  }
  absl::StatusOr<BackwardInputs> inputs = ToBackwardProblems(request, RequestLimits{});
  if (!inputs.ok()) {
    state.SkipWithError("setup failed");
    return;
  }
  std::vector<ProblemGradient> gradients(inputs->items.size());
  std::vector<const BackwardProblem*> in;
  std::vector<ProblemGradient*> out;
  for (std::size_t i = 0; i < gradients.size(); ++i) {
    in.push_back(&inputs->items[i]);
    out.push_back(&gradients[i]);
  }
  if (!(*backend)->BackwardBatch(in, out).ok()) state.SkipWithError("backward failed");
  std::size_t size = 0;
  for (auto _ : state) {
    mpcd::v1::BackwardResponse response;
    WriteGradients(request, gradients, inputs->problems, &response);
    const std::string bytes = response.SerializeAsString();
    size = bytes.size();
    benchmark::DoNotOptimize(bytes);
  }
  state.counters["answer_bytes"] = static_cast<double>(size);
  SetPerProblemCounter(state, batch);
}

// Args: {B, batched (0: one message per problem, 1: BatchedProblems and stacked answers)}.
void Batches(benchmark::internal::Benchmark* b) {
  for (int batch : {1, 64, 256, 1024}) {
    for (int batched : {0, 1}) b->Args({batch, batched});
  }
  b->ArgNames({"B", "batched"})->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BM_SolveRequestIn)->Apply(Batches);
BENCHMARK(BM_SolveAnswerOut)->Apply(Batches);
BENCHMARK(BM_BackwardRequestIn)->Apply(Batches);
BENCHMARK(BM_BackwardAnswerOut)->Apply(Batches);
BENCHMARK(BM_BackwardByNameIn)
    ->ArgsProduct({{1, 64, 256, 1024}, {0, 1}, {0, 1}})
    ->ArgNames({"B", "batched", "converted"})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace mpc

BENCHMARK_MAIN();
