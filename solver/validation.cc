// ValidateProblemSizes and ValidateProblem (declared in solver/problem.h).
//
// Problem arrays are flat, so a size check can only compare lengths. Each array field is described
// once (ArrayFields) by the shapes it accepts; the size check matches a length against them, and
// the value checks use the matched shape to report a multi-dimensional index ("at [3,0]").

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "solver/models/model_registry.h"
#include "solver/problem.h"

namespace mpc {
namespace {

using Shape = std::vector<std::int64_t>;

// One array of a Problem with the shapes it may have, in the order messages list them.
struct ArrayField {
  const char* name;
  const std::vector<double>* values;
  std::vector<Shape> shapes;
  bool may_be_empty;  // empty means "absent" (zero, unbounded, defaults, ...)
  // With no accepted shapes the field must be empty; this names the dynamics that forbid it.
  const char* forbidden_with = "";
};

std::string ShapeString(const Shape& shape) {
  return absl::StrCat("(", absl::StrJoin(shape, ","), ")");
}

// prod(shape), saturated at INT64_MAX: a Problem's dims are unchecked ints, and a saturated count
// never equals a real array size.
std::int64_t NumValues(const Shape& shape) {
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  std::int64_t count = 1;
  for (std::int64_t dim : shape) {
    if (dim != 0 && count > kMax / dim) return kMax;
    count *= dim;
  }
  return count;
}

// "(5,5) or (20,5,5)"
std::string ShapeList(const std::vector<Shape>& shapes) {
  std::vector<std::string> parts;
  parts.reserve(shapes.size());
  for (const Shape& shape : shapes) parts.push_back(ShapeString(shape));
  return absl::StrJoin(parts, " or ");
}

// The shape among `field.shapes` that `field.values` matches, or nullptr.
const Shape* MatchedShape(const ArrayField& field) {
  const auto size = static_cast<std::int64_t>(field.values->size());
  for (const Shape& shape : field.shapes) {
    if (NumValues(shape) == size) return &shape;
  }
  return nullptr;
}

// "[3,0]": the row-major multi-index of flat position `flat` in `shape`.
std::string IndexString(const Shape& shape, std::int64_t flat) {
  std::vector<std::int64_t> index(shape.size());
  for (std::size_t d = shape.size(); d-- > 0;) {
    index[d] = flat % shape[d];
    flat /= shape[d];
  }
  return absl::StrCat("[", absl::StrJoin(index, ","), "]");
}

// Every array of `p` with the shapes DESIGN §2 accepts for p.shape. Time-varying dynamics need T >=
// 2: with T = 1 there is no transition at all, so only the time-invariant form is offered.
std::vector<ArrayField> ArrayFields(const Problem& p) {
  const std::int64_t n = p.shape.state_dim;
  const std::int64_t m = p.shape.control_dim;
  const std::int64_t T = p.shape.horizon;
  const std::int64_t tau = n + m;
  auto per_step = [T](Shape slice) {  // slice, then (T, slice...)
    Shape varying = slice;
    varying.insert(varying.begin(), T);
    return std::vector<Shape>{std::move(slice), std::move(varying)};
  };
  auto per_transition = [T](Shape slice) {  // slice, then (T-1, slice...) when T >= 2
    std::vector<Shape> shapes{slice};
    if (T >= 2) {
      slice.insert(slice.begin(), T - 1);
      shapes.push_back(std::move(slice));
    }
    return shapes;
  };

  std::vector<ArrayField> fields;
  fields.push_back({"x_init", &p.x_init, {{n}}, false});
  fields.push_back({"cost.quadratic", &p.cost_quadratic, per_step({tau, tau}), false});
  fields.push_back({"cost.linear", &p.cost_linear, per_step({tau}), false});
  if (p.shape.dynamics.is_linear()) {
    fields.push_back(
        {"dynamics.linear.transition", &p.transition, per_transition({n, tau}), false});
    fields.push_back({"dynamics.linear.offset", &p.offset, per_transition({n}), true});
    fields.push_back({"dynamics.model.params", &p.params, {}, true, "linear dynamics"});
  } else {
    // Linear-only arrays must be empty for a model; the model's params have one accepted length.
    const ModelInfo* model = FindModel(p.shape.dynamics);
    const auto param_count =
        model == nullptr ? 0 : static_cast<std::int64_t>(model->param_names.size());
    fields.push_back({"dynamics.linear.transition", &p.transition, {}, true, "model dynamics"});
    fields.push_back({"dynamics.linear.offset", &p.offset, {}, true, "model dynamics"});
    fields.push_back({"dynamics.model.params", &p.params, {{param_count}}, true});
  }
  fields.push_back({"u_lower", &p.u_lower, per_step({m}), true});
  fields.push_back({"u_upper", &p.u_upper, per_step({m}), true});
  fields.push_back({"u_init", &p.u_init, {{T, m}}, true});
  return fields;
}

absl::Status CheckSize(const ArrayField& field, const std::string& prefix) {
  if (field.values->empty() && field.may_be_empty) return absl::OkStatus();
  if (MatchedShape(field) != nullptr) return absl::OkStatus();
  const std::string got = absl::StrCat(field.values->size(), " values");
  if (field.shapes.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, field.name, ": must be empty with ",
                                                   field.forbidden_with, ", got ", got));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(prefix, field.name, ": expected shape ", ShapeList(field.shapes),
                   field.may_be_empty ? " or none" : "", ", got ", got));
}

absl::Status CheckFinite(const ArrayField& field, const std::string& prefix) {
  const std::vector<double>& values = *field.values;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (std::isfinite(values[i])) continue;
    const Shape* shape = MatchedShape(field);
    const std::string index = shape != nullptr ? IndexString(*shape, static_cast<std::int64_t>(i))
                                               : absl::StrCat("[", i, "]");
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, field.name, ": not finite at ", index, " (", values[i], ")"));
  }
  return absl::OkStatus();
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

absl::Status CheckIntRange(int value, int low, int high, const std::string& field) {
  if (value >= low && value <= high) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": must be in [", low, ", ", high, "], got ", value));
}

absl::Status CheckOptions(const SolverOptions& options, const ProblemLimits& limits,
                          const std::string& prefix) {
  const std::string field = absl::StrCat(prefix, "options.");
  if (absl::Status s =
          CheckIntRange(options.max_iterations, 1, limits.max_iterations, field + "max_iterations");
      !s.ok()) {
    return s;
  }
  if (!(std::isfinite(options.tolerance) && options.tolerance >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, "tolerance: must be >= 0 and finite, got ", options.tolerance));
  }
  if (!(options.linesearch_decay > 0 && options.linesearch_decay <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, "linesearch_decay: must be in (0, 1], got ", options.linesearch_decay));
  }
  if (absl::Status s =
          CheckIntRange(options.max_linesearch_iterations, 1, limits.max_linesearch_iterations,
                        field + "max_linesearch_iterations");
      !s.ok()) {
    return s;
  }
  if (!(std::isfinite(options.best_cost_eps) && options.best_cost_eps >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, "best_cost_eps: must be >= 0 and finite, got ", options.best_cost_eps));
  }
  if (options.not_improved_limit < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, "not_improved_limit: must be >= 1, got ", options.not_improved_limit));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateProblemSizes(const Problem& problem, const std::string& field_prefix) {
  const ProblemShape& shape = problem.shape;
  if (shape.horizon < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(field_prefix, "horizon: must be >= 1, got ", shape.horizon));
  }
  if (shape.state_dim < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(field_prefix, "state_dim: must be >= 1, got ", shape.state_dim));
  }
  if (shape.control_dim < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(field_prefix, "control_dim: must be >= 1, got ", shape.control_dim));
  }
  if (!shape.dynamics.is_linear()) {
    const ModelInfo* model = FindModel(shape.dynamics);
    if (model == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          field_prefix, "dynamics.model.name: unknown model index ", shape.dynamics.model));
    }
    if (shape.state_dim != model->state_dim || shape.control_dim != model->control_dim) {
      return absl::InvalidArgumentError(
          absl::StrCat(field_prefix, "dynamics.model: model \"", model->name,
                       "\" has n = ", model->state_dim, ", m = ", model->control_dim,
                       ", but the problem has n = ", shape.state_dim, ", m = ", shape.control_dim));
    }
  }
  for (const ArrayField& field : ArrayFields(problem)) {
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

absl::Status ValidateProblem(const Problem& problem, const ProblemLimits& limits,
                             const std::string& field_prefix) {
  const ProblemShape& shape = problem.shape;
  // Limits first: they bound the work every later check (and the solver) does.
  if (shape.horizon > limits.max_horizon) {
    return absl::InvalidArgumentError(absl::StrCat(
        field_prefix, "horizon: must be <= ", limits.max_horizon, ", got ", shape.horizon));
  }
  if (shape.state_dim > limits.max_state_dim) {
    return absl::InvalidArgumentError(absl::StrCat(
        field_prefix, "state_dim: must be <= ", limits.max_state_dim, ", got ", shape.state_dim));
  }
  if (shape.control_dim > limits.max_control_dim) {
    return absl::InvalidArgumentError(
        absl::StrCat(field_prefix, "control_dim: must be <= ", limits.max_control_dim, ", got ",
                     shape.control_dim));
  }
  // The value checks index the arrays by their shapes, so sizes must be right (cheap to re-check).
  if (absl::Status s = ValidateProblemSizes(problem, field_prefix); !s.ok()) return s;

  for (const ArrayField& field : ArrayFields(problem)) {
    if (absl::Status s = CheckFinite(field, field_prefix); !s.ok()) return s;
  }
  if (absl::Status s = CheckBoundOrder(problem, field_prefix); !s.ok()) return s;
  if (!shape.dynamics.is_linear()) {
    // dt == 0 selects the model's default step.
    if (!(std::isfinite(problem.dt) && problem.dt >= 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          field_prefix, "dynamics.model.dt: must be > 0 (or 0 for the model's default), got ",
          problem.dt));
    }
  }
  return CheckOptions(problem.options, limits, field_prefix);
}

}  // namespace mpc
