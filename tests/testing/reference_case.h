#ifndef MPC_TESTS_TESTING_REFERENCE_CASE_H_
#define MPC_TESTS_TESTING_REFERENCE_CASE_H_

// Loads the reference vectors produced by locuslab/mpc.pytorch (tests/data/mpc_pytorch,
// schema in its README.md) into mpc::Problem values. Every number comes from the files at run time;
// nothing here hard-codes reference data.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "solver/problem.h"

namespace mpc::testing {

// A trajectory of one batch element, row-major: x (T, n), u (T, m).
struct ReferenceTrajectory {
  std::vector<double> x;
  std::vector<double> u;
  double cost = 0.0;
};

// suggested_tolerance: 10x the measured distance between mpc.pytorch and the exact optimum,
// floored (README "JSON fields").
struct SuggestedTolerance {
  double x_u_abs = 0.0;
  double cost_abs = 0.0;
  double grad_rel = 0.0;
};

// How far mpc.pytorch's answer (outputs) is from the exact optimum, as the file measured it:
// crosscheck.mpc_pytorch_minus_exact (LQR) or crosscheck.polished.max_abs_*_mpc_minus_polished
// (pendulum / cartpole). Maxima over the batch.
struct MeasuredDistance {
  double x = 0.0;
  double u = 0.0;
  double cost = 0.0;
};

// NOLINTNEXTLINE(bugprone-exception-escape): nlohmann::json's members are not noexcept-annotated.
struct ReferenceCase {
  std::string case_id;
  std::string kind;  // "lqr", "pendulum" or "cartpole"
  bool constrained = false;
  int n_state = 0;
  int n_ctrl = 0;
  int horizon = 0;  // T
  int n_batch = 0;
  SolverOptions options;  // from mpc_settings

  // One problem per batch element, options included. C and c hold T slices, F and f T-1 slices
  // (time-varying layout even where the data happen to be constant); a scalar bound becomes an
  // (m) time-invariant bound, an array bound a (T, m) one.
  std::vector<Problem> problems;

  // mpc.pytorch's answer per element (outputs.x, outputs.u, outputs.cost).
  std::vector<ReferenceTrajectory> outputs;
  // outputs.active per element, row-major (T, m): -1 at the lower bound, +1 at the upper, 0 free.
  std::vector<std::vector<int>> active;
  // The exact optimum per element: crosscheck.x/u/cost (LQR) or crosscheck.polished (nonlinear).
  std::vector<ReferenceTrajectory> exact;
  MeasuredDistance outputs_minus_exact;
  SuggestedTolerance suggested;
  // LQR: crosscheck.min_strict_complementarity per element (nullopt when no control is bounded).
  std::vector<std::optional<double>> min_strict_complementarity;
  // Nonlinear: crosscheck.projected_grad_inf_norm (at mpc.pytorch's u*) and the same at the
  // polished solution, per element.
  std::vector<double> projected_grad_inf_norm;
  std::vector<double> polished_projected_grad_inf_norm;

  // The whole file, for fields not mapped above (grads, loss, crosscheck gradients, ...). Use
  // ElementOfTimeFirst / ElementOfBatchFirst to slice its arrays.
  nlohmann::json raw;

  bool is_lqr() const { return kind == "lqr"; }
};

// The reference folder: $MPCD_REFERENCE_DIR if set, else the folder configured at build time.
std::string ReferenceDir();

// The case ids listed by `dir`/index.json, in file order.
absl::StatusOr<std::vector<std::string>> ListReferenceCases(const std::string& dir);

// The id ReferenceCaseIds() returns when the reference data is missing.
inline constexpr char kMissingReferenceCase[] = "missing_reference_data";

// The case ids of ReferenceDir(), for INSTANTIATE_TEST_SUITE_P. When the index cannot be read (or
// lists nothing), the one id kMissingReferenceCase, whose test then fails to load it: missing data
// fails the tests instead of leaving their suites empty.
std::vector<std::string> ReferenceCaseIds();

// A case id as a gtest parameter name, which must be alphanumeric: "lqr_box_00" -> "LqrBox00".
std::string ReferenceCaseTestName(const std::string& case_id);

// Loads `dir`/`case_id`.json (the file name comes from index.json's convention <case_id>.json).
absl::StatusOr<ReferenceCase> LoadReferenceCase(const std::string& dir, const std::string& case_id);

// Loads one reference JSON file.
absl::StatusOr<ReferenceCase> LoadReferenceCaseFile(const std::string& path);

// Element `b` of an array in mpc.pytorch's time-first layout [t][b][...], flattened row-major to
// [t][...]. An array of shape (T, n_batch, n, k) becomes T*n*k numbers.
std::vector<double> ElementOfTimeFirst(const nlohmann::json& array, int b);

// Element `b` of a batch-first array [b][...] (x_init, grads.x_init), flattened row-major.
std::vector<double> ElementOfBatchFirst(const nlohmann::json& array, int b);

// All numbers of a nested JSON list, flattened row-major.
std::vector<double> Flatten(const nlohmann::json& array);

}  // namespace mpc::testing

#endif  // MPC_TESTS_TESTING_REFERENCE_CASE_H_
