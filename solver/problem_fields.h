#ifndef MPC_SOLVER_PROBLEM_FIELDS_H_
#define MPC_SOLVER_PROBLEM_FIELDS_H_

// The arrays a request carries and the shapes each accepts (DESIGN §5), written once. The problem
// validation (validation.cc, flat arrays: it matches lengths), the backward validation
// (gradients.cc) and the proto conversion (proto/proto_conversion.cc: it matches each Tensor's
// exact shape) all read the table here, and all format their messages with the helpers here, so a
// message names the proto field as the client sent it, e.g.
// "problems[2].cost.quadratic: expected shape (5,5) or (20,5,5), got (4,4)".

#include <algorithm>
#include <array>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "solver/problem.h"

namespace mpc {

// A shape as a client sent it (any rank).
using TensorShape = std::vector<std::int64_t>;

// A vector of at most N elements held inline. The accepted-shape tables are built for every array
// of every problem a request converts; on the heap they cost more than the checks that read them
// (docs/benchmarks.md §5). Exceeding N is a programmer error (the table is fixed).
template <typename T, std::size_t N>
class InlineVector {
 public:
  using value_type = T;
  using iterator = T*;
  using const_iterator = const T*;

  InlineVector() = default;
  InlineVector(std::initializer_list<T> items) {
    for (const T& item : items) push_back(item);
  }

  void push_back(T item) {
    assert(size_ < N);
    items_[size_++] = std::move(item);
  }
  // Prepends `item` (a time axis before a slice's dimensions).
  void push_front(T item) {
    assert(size_ < N);
    std::move_backward(begin(), end(), end() + 1);
    items_[0] = std::move(item);
    ++size_;
  }

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const T* data() const { return items_.data(); }
  T* begin() { return items_.data(); }
  T* end() { return items_.data() + size_; }
  const T* begin() const { return items_.data(); }
  const T* end() const { return items_.data() + size_; }
  const T& operator[](std::size_t i) const { return items_[i]; }
  const T& front() const { return items_[0]; }
  const T& back() const { return items_[size_ - 1]; }

  friend bool operator==(const InlineVector& a, const InlineVector& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }

 private:
  std::array<T, N> items_{};
  std::size_t size_ = 0;
};

// The accepted shapes: rank <= 4 (T, n+m, n+m is the largest), at most 3 alternatives (the table
// has at most 2: a slice and its time-varying form).
inline constexpr std::size_t kMaxSpecRank = 4;
inline constexpr std::size_t kMaxSpecShapes = 3;
using SpecShape = InlineVector<std::int64_t, kMaxSpecRank>;
using SpecShapes = InlineVector<SpecShape, kMaxSpecShapes>;

// A field's proto path as a message spells it, prefix + name ("problems[2]." + "cost.quadratic"),
// joined only when a message needs it: on success no string is built. It holds views of its
// arguments: pass it down a call, never keep it.
class FieldPath {
 public:
  FieldPath(const std::string& path) : prefix_(path) {}  // NOLINT(google-explicit-constructor)
  FieldPath(const char* path) : prefix_(path) {}         // NOLINT(google-explicit-constructor)
  FieldPath(absl::string_view path) : prefix_(path) {}   // NOLINT(google-explicit-constructor)
  FieldPath(absl::string_view prefix, absl::string_view name) : prefix_(prefix), name_(name) {}

  std::string str() const;

 private:
  absl::string_view prefix_;
  absl::string_view name_;
};

// Every array of a Problem (named as in mpcd.v1.Problem) and of a BackwardProblem (named as in the
// BackwardRequest's Solution and Cotangent messages).
enum class ArrayField : std::uint8_t {
  kXInit,          // x_init
  kCostQuadratic,  // cost.quadratic
  kCostLinear,     // cost.linear
  kTransition,     // dynamics.linear.transition
  kOffset,         // dynamics.linear.offset
  kParams,         // dynamics.model.params
  kULower,         // u_lower
  kUUpper,         // u_upper
  kUInit,          // u_init
  kSolutionX,      // solutions[i].x   (BackwardProblem::x)
  kSolutionU,      // solutions[i].u   (BackwardProblem::u)
  kCotangentX,     // cotangents[i].x  (BackwardProblem::dl_dx)
  kCotangentU,     // cotangents[i].u  (BackwardProblem::dl_du)
};

// The arrays of a Problem, in the order validation visits (and messages report) them.
inline constexpr ArrayField kProblemArrays[] = {
    ArrayField::kXInit,      ArrayField::kCostQuadratic, ArrayField::kCostLinear,
    ArrayField::kTransition, ArrayField::kOffset,        ArrayField::kParams,
    ArrayField::kULower,     ArrayField::kUUpper,        ArrayField::kUInit,
};

// One array of a problem of a given shape and what it accepts.
struct ArraySpec {
  ArrayField field = ArrayField::kXInit;
  // The proto field path inside its message: "x_init", "cost.quadratic", "dynamics.model.params";
  // "x" / "u" for the backward arrays (inside solutions[i] or cotangents[i]).
  const char* name = "";
  // Accepted shapes, in the order messages list them. Empty: the array must be absent.
  SpecShapes shapes;
  // The client may leave it out (zero offset or linear cost, no bounds, zero warm start, the
  // model's default params, zero cotangent). Problem::cost_linear is the one array a Problem must
  // still hold: the conversion fills an absent one with zeros.
  bool optional = false;
  // With no accepted shapes: the dynamics that forbid the array ("linear dynamics", ...).
  const char* forbidden_with = "";
};

// `field` of a problem of `shape`: a model's params have its parameter count (model registry).
ArraySpec ArraySpecFor(ArrayField field, const ProblemShape& shape);

// The accepted shapes of `field` while the state and/or control dimension are not known yet
// (nullopt: written "n", "m"), for messages, e.g. "(3,3+m) or (5,3,3+m)" for a linear
// transition of n = 3, T = 6. `horizon` is known. Same table as ArraySpecFor.
std::string DescribeShapes(ArrayField field, int horizon, std::optional<std::int64_t> state_dim,
                           std::optional<std::int64_t> control_dim);

// "(5,5)"; "(5,5) or (20,5,5)".
std::string ShapeString(absl::Span<const std::int64_t> shape);
std::string ShapeList(const SpecShapes& shapes);

// Whether `given` (a Tensor's shape as sent, e.g. its repeated uint32) is one of spec.shapes:
// CheckArrayShape's test without its message, for the path that succeeds.
template <typename Dim>
bool ShapeAccepted(const ArraySpec& spec, absl::Span<const Dim> given) {
  for (const SpecShape& accepted : spec.shapes) {
    if (std::equal(accepted.begin(), accepted.end(), given.begin(), given.end(),
                   [](std::int64_t a, Dim b) { return a == static_cast<std::int64_t>(b); })) {
      return true;
    }
  }
  return false;
}

// A tensor's exact shape, as the client sent it, against `spec` (nullptr: the tensor is absent).
// Messages start with `path`, the field's full proto path ("problems[2].cost.quadratic"):
// "<path>: required, expected shape (5,5) or (20,5,5)", "<path>: expected shape ..., got (4,4)",
// "<path>: must be empty with linear dynamics, got (3)".
absl::Status CheckArrayShape(const ArraySpec& spec, const TensorShape* given, FieldPath path);

// A flat array's length against `spec` (empty = absent, accepted when `may_be_empty`):
// "<path>: expected shape (5,5) or (20,5,5)[ or none], got 24 values". On success *matched (when
// given) is the accepted shape it has, or nullptr for an empty array.
absl::Status CheckArrayLength(const ArraySpec& spec, std::size_t length, bool may_be_empty,
                              FieldPath path, const SpecShape** matched = nullptr);

// Every value finite: the one scan of an array's values. `shape` (nullptr: flat) locates the first
// bad value in the message: "<path>: not finite at [3,0] (nan)".
absl::Status CheckFinite(absl::Span<const double> values, const TensorShape* shape, FieldPath path);
absl::Status CheckFinite(absl::Span<const double> values, const SpecShape* shape, FieldPath path);

// T, n and m against `limits`, named by the proto fields they come from: "horizon" (request-level,
// no prefix), "<prefix>x_init" (a linear problem's n), "<prefix>dynamics.linear.transition" (its
// m),
// "<prefix>dynamics.model.name" (a model's n and m). ValidateProblem runs it first; the proto
// conversion runs it as soon as it knows the shape, before looking at the arrays.
absl::Status CheckProblemLimits(const ProblemShape& shape, const ProblemLimits& limits,
                                const std::string& field_prefix);

// CollectProblemViolations (problem.h) for a caller that found some arrays finite while copying
// them into `problem`: bit f of `scanned` set means the values of kProblemArrays[f] are known to be
// finite, and they are not scanned again. The same checks, messages and order otherwise.
void CollectProblemViolations(const Problem& problem, const ProblemLimits& limits,
                              const std::string& field_prefix, std::uint32_t scanned,
                              std::vector<absl::Status>* found);

// The solver options as a caller holds them, for the range rules below: unset (nullopt) means the
// default. Counts are 64-bit so that a caller with wider values than SolverOptions' ints (the
// proto's uint32) reports the value it was sent.
struct SolverOptionValues {
  std::optional<std::int64_t> max_iterations;
  std::optional<double> tolerance;
  std::optional<double> linesearch_decay;
  std::optional<std::int64_t> max_linesearch_iterations;
  std::optional<double> best_cost_eps;
  std::optional<std::int64_t> not_improved_limit;
  std::optional<double> delta_u;
  std::optional<std::int64_t> max_constraint_iterations;
  std::optional<double> constraint_tolerance;
  // The sampling methods' (SamplingOptions; sampling_iterations is SamplingOptions::iterations).
  std::optional<std::int64_t> samples;
  std::optional<std::int64_t> elites;
  std::optional<std::int64_t> sampling_iterations;
  std::optional<double> initial_std;
  std::optional<double> min_std;
  std::optional<double> temperature;
  std::optional<double> momentum;
  std::optional<std::int64_t> knot_spacing;
};

// Every option that is set: the range rules, written once (ValidateProblem checks a Problem's
// SolverOptions with them, the proto conversion a request's options). Options are request-level in
// the proto, so messages name "options.<field>" with no problem prefix, e.g.
// "options.max_iterations: must be in [1, 100000], got 0".
absl::Status CheckSolverOptionValues(const SolverOptionValues& values, const ProblemLimits& limits);

}  // namespace mpc

#endif  // MPC_SOLVER_PROBLEM_FIELDS_H_
