// ValidateProblemSizes and ValidateProblem (declared in solver/problem.h).
//
// Problem arrays are flat, so a size check can only compare lengths. The shapes each array accepts
// come from the one table in problem_fields.h (the proto conversion checks exact Tensor shapes
// against the same table); the size check matches a length against them, and the value checks use
// the matched shape to report a multi-dimensional index ("at [3,0]"). Messages name the proto
// fields: request-level ones (horizon, options) without the problem's prefix.

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "solver/graph/graph_program.h"
#include "solver/models/model_registry.h"
#include "solver/problem.h"
#include "solver/problem_fields.h"
#include "solver/stage_constraints.h"

namespace mpc {
namespace {

const std::vector<double>& ValuesOf(const Problem& p, ArrayField field) {
  switch (field) {
    case ArrayField::kXInit:
      return p.x_init;
    case ArrayField::kCostQuadratic:
      return p.cost_quadratic;
    case ArrayField::kCostLinear:
      return p.cost_linear;
    case ArrayField::kTransition:
      return p.transition;
    case ArrayField::kOffset:
      return p.offset;
    case ArrayField::kParams:
      return p.params;
    case ArrayField::kULower:
      return p.u_lower;
    case ArrayField::kUUpper:
      return p.u_upper;
    default:
      return p.u_init;
  }
}

// Every array of `p` with its accepted shapes (problem_fields.h) and its values.
struct ProblemArray {
  ArraySpec spec;
  const std::vector<double>* values = nullptr;
  bool may_be_empty = false;
};

// (On the stack: this runs twice per problem of every request.)
using ProblemArrays = std::array<ProblemArray, std::size(kProblemArrays)>;

ProblemArrays ArrayFields(const Problem& p) {
  ProblemArrays fields;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    const ArrayField field = kProblemArrays[i];
    ArraySpec spec = ArraySpecFor(field, p.shape);
    if (field == ArrayField::kParams && p.shape.dynamics.is_graph() && p.graph != nullptr) {
      // A graph's parameters travel by name (dynamics.graph.parameters); here they are theta.
      spec.name = "dynamics.graph.parameters";
      spec.shapes = {{p.graph->param_dim}};
    }
    // A Problem holds c even when the client sent none (the conversion fills zeros).
    const bool may_be_empty = spec.optional && field != ArrayField::kCostLinear;
    fields[i] = {spec, &ValuesOf(p, field), may_be_empty};
  }
  return fields;
}

absl::Status CheckSize(const ProblemArray& field, const std::string& prefix) {
  return CheckArrayLength(field.spec, field.values->size(), field.may_be_empty,
                          FieldPath(prefix, field.spec.name));
}

absl::Status CheckValuesFinite(const ProblemArray& field, const std::string& prefix) {
  const SpecShape* shape = nullptr;
  // Sizes were checked: the matched shape locates a bad value as "[3,0]".
  CheckArrayLength(field.spec, field.values->size(), true, "", &shape).IgnoreError();
  return CheckFinite(*field.values, shape, FieldPath(prefix, field.spec.name));
}

// u_lower <= u_upper elementwise; either bound may be (m) or (T, m).
absl::Status CheckBoundOrder(const Problem& p, const std::string& prefix) {
  if (p.u_lower.empty() || p.u_upper.empty()) return absl::OkStatus();
  const int T = p.shape.horizon;
  const int m = p.shape.control_dim;
  const bool lower_varies = static_cast<int>(p.u_lower.size()) != m;
  const bool upper_varies = static_cast<int>(p.u_upper.size()) != m;
  const int steps = lower_varies || upper_varies ? T : 1;
  for (int t = 0; t < steps; ++t) {
    for (int j = 0; j < m; ++j) {
      const double lower = p.u_lower[(lower_varies ? t * m : 0) + j];
      const double upper = p.u_upper[(upper_varies ? t * m : 0) + j];
      if (lower <= upper) continue;
      const std::string index =
          steps == 1 ? absl::StrCat("[", j, "]") : absl::StrCat("[", t, ",", j, "]");
      return absl::InvalidArgumentError(absl::StrCat(prefix, "u_lower: must be <= u_upper at ",
                                                     index, " (", lower, " > ", upper, ")"));
    }
  }
  return absl::OkStatus();
}

// A SolverOptions' values, all set, for the shared rules (problem_fields.h).
SolverOptionValues ValuesOf(const SolverOptions& options) {
  SolverOptionValues values;
  values.max_iterations = options.max_iterations;
  values.tolerance = options.tolerance;
  values.linesearch_decay = options.linesearch_decay;
  values.max_linesearch_iterations = options.max_linesearch_iterations;
  values.best_cost_eps = options.best_cost_eps;
  values.not_improved_limit = options.not_improved_limit;
  if (options.delta_u != 0) values.delta_u = options.delta_u;
  values.max_constraint_iterations = options.max_constraint_iterations;
  values.constraint_tolerance = options.constraint_tolerance;
  const SamplingOptions& sampling = options.sampling;
  values.samples = sampling.samples;
  values.elites = sampling.elites;
  values.sampling_iterations = sampling.iterations;
  values.initial_std = sampling.initial_std;
  values.min_std = sampling.min_std;
  values.temperature = sampling.temperature;
  values.momentum = sampling.momentum;
  values.knot_spacing = sampling.knot_spacing;
  return values;
}

// A graph problem: its compiled graph present, its n and m the graph's, and nothing the core does
// not compute for graphs yet.
absl::Status CheckGraphProblem(const Problem& problem, const std::string& prefix) {
  const ProblemShape& shape = problem.shape;
  if (problem.graph == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "dynamics.graph: required"));
  }
  if (problem.graph->state_dim != shape.state_dim ||
      problem.graph->control_dim != shape.control_dim) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "dynamics.graph: the graph has n = ", problem.graph->state_dim,
                     ", m = ", problem.graph->control_dim,
                     ", but the problem has n = ", shape.state_dim, ", m = ", shape.control_dim));
  }
  if (problem.options.compute_x_init_jacobian || problem.options.compute_params_jacobian) {
    return absl::InvalidArgumentError(absl::StrCat(
        "options.compute_", problem.options.compute_x_init_jacobian ? "x_init" : "params",
        "_jacobian: not supported with graph dynamics yet (", prefix, "dynamics.graph)"));
  }
  return absl::OkStatus();
}

}  // namespace

namespace {

// The sampling options' rules; `count` checks an integer against [1, high].
template <class CountRule>
absl::Status CheckSamplingOptionValues(const SolverOptionValues& values,
                                       const ProblemLimits& limits, const CountRule& count) {
  if (absl::Status s = count(values.samples, limits.max_samples, "samples"); !s.ok()) return s;
  const std::int64_t samples = values.samples.value_or(SamplingOptions().samples);
  if (absl::Status s = count(values.elites, samples, "elites"); !s.ok()) return s;
  if (absl::Status s =
          count(values.sampling_iterations, limits.max_sampling_iterations, "sampling_iterations");
      !s.ok()) {
    return s;
  }
  const auto positive = [](const std::optional<double>& value, const char* name) {
    if (!value || (std::isfinite(*value) && *value > 0)) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("options.", name, ": must be > 0 and finite, got ", *value));
  };
  if (absl::Status s = count(values.knot_spacing, limits.max_horizon, "knot_spacing"); !s.ok()) {
    return s;
  }
  if (absl::Status s = positive(values.initial_std, "initial_std"); !s.ok()) return s;
  if (values.min_std && !(std::isfinite(*values.min_std) && *values.min_std >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("options.min_std: must be >= 0 and finite, got ", *values.min_std));
  }
  if (absl::Status s = positive(values.temperature, "temperature"); !s.ok()) return s;
  if (values.momentum && !(*values.momentum >= 0 && *values.momentum < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("options.momentum: must be in [0, 1), got ", *values.momentum));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckSolverOptionValues(const SolverOptionValues& values,
                                     const ProblemLimits& limits) {
  const auto count = [](const std::optional<std::int64_t>& value, std::int64_t high,
                        const char* name) {
    if (!value || (*value >= 1 && *value <= high)) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("options.", name, ": must be in [1, ", high, "], got ", *value));
  };
  // >= 0 and finite
  const auto non_negative = [](const std::optional<double>& value, const char* name) {
    if (!value || (std::isfinite(*value) && *value >= 0)) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("options.", name, ": must be >= 0 and finite, got ", *value));
  };
  if (absl::Status s = count(values.max_iterations, limits.max_iterations, "max_iterations");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = non_negative(values.tolerance, "tolerance"); !s.ok()) return s;
  if (values.delta_u && !(std::isfinite(*values.delta_u) && *values.delta_u > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("options.delta_u: must be > 0 and finite, got ", *values.delta_u));
  }
  if (absl::Status s = count(values.max_constraint_iterations, limits.max_iterations,
                             "max_constraint_iterations");
      !s.ok()) {
    return s;
  }
  if (values.constraint_tolerance &&
      !(std::isfinite(*values.constraint_tolerance) && *values.constraint_tolerance > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("options.constraint_tolerance: must be > 0 and finite, got ",
                     *values.constraint_tolerance));
  }
  if (values.linesearch_decay && !(*values.linesearch_decay > 0 && *values.linesearch_decay <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "options.linesearch_decay: must be in (0, 1], got ", *values.linesearch_decay));
  }
  if (absl::Status s = count(values.max_linesearch_iterations, limits.max_linesearch_iterations,
                             "max_linesearch_iterations");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = non_negative(values.best_cost_eps, "best_cost_eps"); !s.ok()) return s;
  if (absl::Status s =
          count(values.not_improved_limit, std::numeric_limits<int>::max(), "not_improved_limit");
      !s.ok()) {
    return s;
  }
  return CheckSamplingOptionValues(values, limits, count);
}

absl::Status CheckProblemLimits(const ProblemShape& shape, const ProblemLimits& limits,
                                const std::string& field_prefix) {
  if (shape.horizon > limits.max_horizon) {
    return absl::InvalidArgumentError(
        absl::StrCat("horizon: must be <= ", limits.max_horizon, ", got ", shape.horizon));
  }
  if (!shape.dynamics.is_linear()) {
    if (shape.state_dim <= limits.max_state_dim && shape.control_dim <= limits.max_control_dim) {
      return absl::OkStatus();
    }
    if (shape.dynamics.is_graph()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field_prefix, "dynamics.graph: the graph has n = ", shape.state_dim,
                       ", m = ", shape.control_dim, ", over the limits n <= ", limits.max_state_dim,
                       ", m <= ", limits.max_control_dim));
    }
    const ModelInfo* model = FindModel(shape.dynamics);
    return absl::InvalidArgumentError(absl::StrCat(
        field_prefix, "dynamics.model.name: model \"", model == nullptr ? "?" : model->name,
        "\" has n = ", shape.state_dim, ", m = ", shape.control_dim,
        ", over the limits n <= ", limits.max_state_dim, ", m <= ", limits.max_control_dim));
  }
  // A linear problem's n is x_init's length, its m the transition's last dimension minus n.
  if (shape.state_dim > limits.max_state_dim) {
    return absl::InvalidArgumentError(absl::StrCat(field_prefix, "x_init: state dimension ",
                                                   shape.state_dim, " is over the limit ",
                                                   limits.max_state_dim));
  }
  if (shape.control_dim > limits.max_control_dim) {
    return absl::InvalidArgumentError(
        absl::StrCat(field_prefix, "dynamics.linear.transition: control dimension ",
                     shape.control_dim, " is over the limit ", limits.max_control_dim));
  }
  return absl::OkStatus();
}

namespace {

// ValidateProblemSizes with the problem's array table built by the caller (`fields`:
// ArrayFields(problem)), so that CollectProblemViolations builds it once for both of its uses.
absl::Status CheckProblemSizes(const Problem& problem, const std::string& field_prefix,
                               const ProblemArrays& fields) {
  const ProblemShape& shape = problem.shape;
  if (shape.horizon < 1) {
    return absl::InvalidArgumentError(absl::StrCat("horizon: must be >= 1, got ", shape.horizon));
  }
  if (shape.dynamics.is_graph()) {
    if (absl::Status s = CheckGraphProblem(problem, field_prefix); !s.ok()) return s;
  } else if (!shape.dynamics.is_linear()) {
    const ModelInfo* model = FindModel(shape.dynamics);
    if (model == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          field_prefix, "dynamics.model.name: unknown model kind ", shape.dynamics.model));
    }
    if (shape.state_dim != model->state_dim || shape.control_dim != model->control_dim) {
      return absl::InvalidArgumentError(
          absl::StrCat(field_prefix, "dynamics.model: model \"", model->name,
                       "\" has n = ", model->state_dim, ", m = ", model->control_dim,
                       ", but the problem has n = ", shape.state_dim, ", m = ", shape.control_dim));
    }
  }
  // A linear problem's n is x_init's length, its m the transition's last dimension minus n.
  if (shape.state_dim < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        field_prefix, "x_init: the state dimension must be >= 1, got ", shape.state_dim));
  }
  if (shape.control_dim < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        field_prefix, "dynamics.linear.transition: the control dimension must be >= 1, got ",
        shape.control_dim));
  }
  for (const ProblemArray& field : fields) {
    if (absl::Status s = CheckSize(field, field_prefix); !s.ok()) return s;
  }
  if (problem.u_lower.empty() != problem.u_upper.empty()) {
    const char* given = problem.u_lower.empty() ? "u_upper" : "u_lower";
    const char* missing = problem.u_lower.empty() ? "u_lower" : "u_upper";
    return absl::InvalidArgumentError(absl::StrCat(field_prefix, missing, ": required when ", given,
                                                   " is given (give both bounds or neither)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateProblemSizes(const Problem& problem, const std::string& field_prefix) {
  return CheckProblemSizes(problem, field_prefix, ArrayFields(problem));
}

void CollectProblemViolations(const Problem& problem, const ProblemLimits& limits,
                              const std::string& field_prefix, std::vector<absl::Status>* found) {
  CollectProblemViolations(problem, limits, field_prefix, /*scanned=*/0, found);
}

void CollectProblemViolations(const Problem& problem, const ProblemLimits& limits,
                              const std::string& field_prefix, std::uint32_t scanned,
                              std::vector<absl::Status>* found) {
  const auto add = [found](absl::Status status) {
    if (!status.ok()) found->push_back(std::move(status));
  };
  const ProblemShape& shape = problem.shape;
  // Limits first: they bound the work every later check (and the solver) does.
  if (absl::Status s = CheckProblemLimits(shape, limits, field_prefix); !s.ok()) {
    return add(std::move(s));
  }
  // The value checks index the arrays by their shapes, so sizes must be right (cheap to re-check).
  const ProblemArrays fields = ArrayFields(problem);
  if (absl::Status s = CheckProblemSizes(problem, field_prefix, fields); !s.ok()) {
    return add(std::move(s));
  }

  // From here on the checks are independent of each other: every one is reported.
  for (std::size_t f = 0; f < fields.size(); ++f) {
    if ((scanned >> f & 1u) == 0) add(CheckValuesFinite(fields[f], field_prefix));
  }
  add(CheckBoundOrder(problem, field_prefix));
  add(ValidateStageConstraints(problem, field_prefix));
  if (!shape.dynamics.is_linear() && !shape.dynamics.is_graph()) {
    // dt == 0 selects the model's default step.
    if (!(std::isfinite(problem.dt) && problem.dt >= 0)) {
      add(absl::InvalidArgumentError(absl::StrCat(
          field_prefix, "dynamics.model.dt: must be > 0 (or 0 for the model's default), got ",
          problem.dt)));
    }
  }
  if (shape.dynamics.is_graph() && problem.integrator != Integrator::kDefault) {
    if (!(std::isfinite(problem.dt) && problem.dt > 0)) {
      add(absl::InvalidArgumentError(absl::StrCat(
          field_prefix, "dynamics.graph.dt: must be > 0 for a continuous-time graph, got ",
          problem.dt)));
    }
  }
  add(CheckSolverOptionValues(ValuesOf(problem.options), limits));
}

absl::Status ValidateProblem(const Problem& problem, const ProblemLimits& limits,
                             const std::string& field_prefix) {
  std::vector<absl::Status> found;
  CollectProblemViolations(problem, limits, field_prefix, &found);
  if (!found.empty()) return found.front();
  return absl::OkStatus();
}

}  // namespace mpc
