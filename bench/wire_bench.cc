// The server's serialisation cost per problem (docs/benchmarks.md §5): parsing a request and
// converting it into solver problems, and writing and serialising the answer, for the training
// step's problems (cartpole T=25, every problem its own C (T, 6, 6) and c (T, 6), float64 raw
// tensors) sent one message per problem or in the batched layout (BatchedProblems, stacked
// answers). Solving is not timed.
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "mpcd/v1/mpcd.pb.h"
#include "proto/proto_conversion.h"
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
  state.counters["per_problem"] = benchmark::Counter(
      batch, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

// Write the answer (per-problem Solutions re-encoded as bytes, or stacked straight from the
// solutions) and serialise it.
void BM_SolveAnswerOut(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0));
  const bool stacked = state.range(1) != 0;
  const mpcd::v1::SolveRequest request = MakeSolveRequest(batch, stacked);
  absl::StatusOr<std::vector<Problem>> problems = ToProblems(request, RequestLimits{});
  absl::StatusOr<std::unique_ptr<SolverBackend>> backend = MakeBackend(BackendKind::kCpu, 1);
  if (!problems.ok() || !backend.ok()) {
    state.SkipWithError("setup failed");
    return;
  }
  std::vector<Solution> solutions(problems->size());
  std::vector<const Problem*> in;
  std::vector<Solution*> out;
  for (std::size_t i = 0; i < solutions.size(); ++i) {
    in.push_back(&(*problems)[i]);
    out.push_back(&solutions[i]);
  }
  if (!(*backend)->SolveBatch(in, out).ok()) state.SkipWithError("solve failed");
  std::size_t size = 0;
  for (auto _ : state) {
    mpcd::v1::SolveResponse response;
    WriteSolutions(solutions, *problems, mpcd::v1::RAW_FLOAT64, stacked, &response);
    const std::string bytes = response.SerializeAsString();
    size = bytes.size();
    benchmark::DoNotOptimize(bytes);
  }
  state.counters["answer_bytes"] = static_cast<double>(size);
  state.counters["per_problem"] = benchmark::Counter(
      batch, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
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

}  // namespace
}  // namespace mpc

BENCHMARK_MAIN();
