// What converting a request costs the heap (docs/benchmarks.md §5, "The server's serialisation
// cost per problem"): the training step's batched request (a model and bounds in the template,
// x_init, C and c stacked) must allocate per problem only the solver's own vectors, which it
// decodes straight from the request's bytes. Its own binary: it replaces the global operator new
// to count allocations.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mpcd/v1/mpcd.pb.h"
#include "proto/proto_conversion.h"
#include "solver/problem.h"
#include "tests/testing/heap_allocations.h"

namespace mpc {
namespace {

constexpr int kHorizon = 25;
constexpr std::uint32_t kN = 5;  // cartpole
constexpr std::uint32_t kM = 1;
constexpr std::uint32_t kTau = kN + kM;

// A raw float64 Tensor of `shape` holding `values`.
mpcd::v1::Tensor Raw(const std::vector<std::uint32_t>& shape, const std::vector<double>& values) {
  mpcd::v1::Tensor tensor;
  for (std::uint32_t dim : shape) tensor.add_shape(dim);
  tensor.set_raw_data(
      std::string(reinterpret_cast<const char*>(values.data()), sizeof(double) * values.size()));
  tensor.set_dtype(mpcd::v1::DATA_TYPE_FLOAT64);
  return tensor;
}

// The training step's request of `batch` cartpole problems in the batched layout.
mpcd::v1::SolveRequest BatchedRequest(std::uint32_t batch) {
  mpcd::v1::SolveRequest request;
  request.set_horizon(kHorizon);
  mpcd::v1::Problem* shared = request.mutable_problem_template();
  shared->mutable_dynamics()->mutable_model()->set_name("cartpole");
  *shared->mutable_u_lower() = Raw({kM}, {-10.0});
  *shared->mutable_u_upper() = Raw({kM}, {10.0});
  std::vector<double> x;
  std::vector<double> C;
  std::vector<double> c;
  for (std::uint32_t b = 0; b < batch; ++b) {
    for (std::uint32_t i = 0; i < kN; ++i) x.push_back(0.1 * std::sin(b + i));
    for (int t = 0; t < kHorizon; ++t) {
      for (std::uint32_t i = 0; i < kTau; ++i) {
        for (std::uint32_t j = 0; j < kTau; ++j) C.push_back(i == j ? 1.0 + 0.01 * b : 0.0);
        c.push_back(0.01 * std::cos(b + t + i));
      }
    }
  }
  mpcd::v1::BatchedProblems* stacked = request.mutable_batched();
  stacked->set_count(batch);
  *stacked->mutable_x_init() = Raw({batch, kN}, x);
  *stacked->mutable_cost_quadratic() = Raw({batch, kHorizon, kTau, kTau}, C);
  *stacked->mutable_cost_linear() = Raw({batch, kHorizon, kTau}, c);
  return request;
}

// Allocations made by ToProblems(request).
long AllocationsOfToProblems(const mpcd::v1::SolveRequest& request) {
  absl::StatusOr<std::vector<Problem>> problems;
  const long allocations =
      testing::HeapAllocationsOf([&] { problems = ToProblems(request, RequestLimits{}); });
  EXPECT_TRUE(problems.ok()) << problems.status();
  return allocations;
}

TEST(ConversionHeap, ABatchedProblemAllocatesOnlyTheSolversVectors) {
  const mpcd::v1::SolveRequest small = BatchedRequest(8);
  const mpcd::v1::SolveRequest large = BatchedRequest(24);
  AllocationsOfToProblems(small);  // first use: the model registry's static tables
  const int at_8 = AllocationsOfToProblems(small);
  const int at_24 = AllocationsOfToProblems(large);
  const int per_problem = (at_24 - at_8) / 16;
  // x_init, cost_quadratic, cost_linear, u_lower and u_upper: nothing for the merge with the
  // template and the batch, the field paths or the accepted-shape tables.
  EXPECT_LE(per_problem, 5);
}

}  // namespace
}  // namespace mpc
