#include "solver/problem_fields.h"

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "solver/models/model_registry.h"

namespace mpc {
namespace {

// A dimension in a message: a number, or a symbol ("n", "m") that is not known yet. Sums of
// numbers stay numbers: with n = 3 and m unknown, n + m reads "3+m".
class SymbolicDim {
 public:
  SymbolicDim() = default;  // InlineVector fills its unused slots with it.
  SymbolicDim(std::int64_t value) : value_(value) {}  // NOLINT(google-explicit-constructor)
  explicit SymbolicDim(std::string symbol) : symbol_(std::move(symbol)) {}

  friend SymbolicDim operator+(const SymbolicDim& a, const SymbolicDim& b) {
    if (a.value_ && b.value_) return SymbolicDim(*a.value_ + *b.value_);
    return SymbolicDim(absl::StrCat(a.Text(), "+", b.Text()));
  }
  std::string Text() const { return value_ ? absl::StrCat(*value_) : symbol_; }

 private:
  std::optional<std::int64_t> value_;
  std::string symbol_;
};

// THE table: the shapes `field` accepts for horizon T, state and control dimensions n and m, and
// p model parameters (DESIGN §5). Dim is std::int64_t for checks and SymbolicDim for messages.
// Time-varying dynamics need T >= 2: with T = 1 there is no transition at all, so only the
// time-invariant form is offered. Built inline (InlineVector): no heap for std::int64_t.
template <typename Dim>
using DimShape = InlineVector<Dim, kMaxSpecRank>;
template <typename Dim>
using DimShapes = InlineVector<DimShape<Dim>, kMaxSpecShapes>;

template <typename Dim>
DimShapes<Dim> AcceptedShapes(ArrayField field, std::int64_t T, bool linear, Dim n, Dim m, Dim p) {
  const Dim tau = n + m;
  auto per_step = [T](DimShape<Dim> slice) {  // slice, then (T, slice...)
    DimShape<Dim> varying = slice;
    varying.push_front(Dim(T));
    return DimShapes<Dim>{slice, varying};
  };
  auto per_transition = [T](DimShape<Dim> slice) {  // slice, then (T-1, slice...) if T >= 2
    DimShapes<Dim> shapes{slice};
    if (T >= 2) {
      slice.push_front(Dim(T - 1));
      shapes.push_back(slice);
    }
    return shapes;
  };
  switch (field) {
    case ArrayField::kXInit:
      return {{n}};
    case ArrayField::kCostQuadratic:
      return per_step({tau, tau});
    case ArrayField::kCostLinear:
      return per_step({tau});
    case ArrayField::kTransition:
      if (!linear) return {};
      return per_transition({n, tau});
    case ArrayField::kOffset:
      if (!linear) return {};
      return per_transition({n});
    case ArrayField::kParams:
      if (linear) return {};
      return {{p}};
    case ArrayField::kULower:
    case ArrayField::kUUpper:
      return per_step({m});
    case ArrayField::kUInit:
      return {{Dim(T), m}};
    case ArrayField::kSolutionX:
    case ArrayField::kCotangentX:
      return {{Dim(T), n}};
    case ArrayField::kSolutionU:
    case ArrayField::kCotangentU:
      return {{Dim(T), m}};
  }
  return {};
}

// The field's proto name and whether a client may leave it out (with linear-only or model-only
// arrays always optional: absent is what the other dynamics require).
struct FieldInfo {
  const char* name;
  bool optional;
};

FieldInfo InfoOf(ArrayField field) {
  switch (field) {
    case ArrayField::kXInit:
      return {"x_init", false};
    case ArrayField::kCostQuadratic:
      return {"cost.quadratic", false};
    case ArrayField::kCostLinear:
      return {"cost.linear", true};
    case ArrayField::kTransition:
      return {"dynamics.linear.transition", false};
    case ArrayField::kOffset:
      return {"dynamics.linear.offset", true};
    case ArrayField::kParams:
      return {"dynamics.model.params", true};
    case ArrayField::kULower:
      return {"u_lower", true};
    case ArrayField::kUUpper:
      return {"u_upper", true};
    case ArrayField::kUInit:
      return {"u_init", true};
    case ArrayField::kSolutionX:
    case ArrayField::kCotangentX:
      return {"x", field == ArrayField::kCotangentX};
    case ArrayField::kSolutionU:
    case ArrayField::kCotangentU:
      return {"u", field == ArrayField::kCotangentU};
  }
  return {"", true};
}

std::int64_t ParamCount(const ProblemShape& shape) {
  const ModelInfo* model = FindModel(shape.dynamics);
  return model == nullptr ? 0 : static_cast<std::int64_t>(model->param_names.size());
}

// prod(shape), saturated at INT64_MAX: dims are unchecked, and a saturated count never equals a
// real array size.
std::int64_t NumValues(absl::Span<const std::int64_t> shape) {
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  std::int64_t count = 1;
  for (std::int64_t dim : shape) {
    if (dim != 0 && count > kMax / dim) return kMax;
    count *= dim;
  }
  return count;
}

// "[3,0]": the row-major multi-index of flat position `flat` in `shape`.
std::string IndexString(absl::Span<const std::int64_t> shape, std::int64_t flat) {
  std::vector<std::int64_t> index(shape.size());
  for (std::size_t d = shape.size(); d-- > 0;) {
    index[d] = shape[d] > 0 ? flat % shape[d] : 0;
    flat = shape[d] > 0 ? flat / shape[d] : 0;
  }
  return absl::StrCat("[", absl::StrJoin(index, ","), "]");
}

ArraySpec BuildArraySpec(ArrayField field, const ProblemShape& shape) {
  const bool linear = shape.dynamics.is_linear();
  const FieldInfo info = InfoOf(field);
  ArraySpec spec;
  spec.field = field;
  spec.name = info.name;
  spec.optional = info.optional;
  spec.shapes = AcceptedShapes<std::int64_t>(field, shape.horizon, linear, shape.state_dim,
                                             shape.control_dim, linear ? 0 : ParamCount(shape));
  if (spec.shapes.empty()) {
    spec.optional = true;
    spec.forbidden_with = linear ? "linear dynamics" : "model dynamics";
  }
  return spec;
}

constexpr std::size_t kArrayFieldCount = static_cast<std::size_t>(ArrayField::kCotangentU) + 1;

// Every field's spec for one shape, keyed by what BuildArraySpec reads: the dynamics' kind and
// built-in model (whose index fixes its parameter count), T, n and m.
struct ShapeSpecs {
  bool built = false;
  std::int32_t model = 0;
  int horizon = 0;
  int state_dim = 0;
  int control_dim = 0;
  std::array<ArraySpec, kArrayFieldCount> specs;

  bool Matches(const ProblemShape& shape) const {
    return built && horizon == shape.horizon && model == shape.dynamics.model &&
           state_dim == shape.state_dim && control_dim == shape.control_dim;
  }
};

}  // namespace

ArraySpec ArraySpecFor(ArrayField field, const ProblemShape& shape) {
  // Asked for every array of every problem, by the conversion and again by the validation, and a
  // request's problems share one shape as a rule: each thread keeps the last shape's table.
  thread_local ShapeSpecs last;
  if (!last.Matches(shape)) {
    last.built = true;
    last.model = shape.dynamics.model;
    last.horizon = shape.horizon;
    last.state_dim = shape.state_dim;
    last.control_dim = shape.control_dim;
    for (std::size_t f = 0; f < kArrayFieldCount; ++f) {
      last.specs[f] = BuildArraySpec(static_cast<ArrayField>(f), shape);
    }
  }
  return last.specs[static_cast<std::size_t>(field)];
}

std::string DescribeShapes(ArrayField field, int horizon, std::optional<std::int64_t> state_dim,
                           std::optional<std::int64_t> control_dim) {
  const SymbolicDim n = state_dim ? SymbolicDim(*state_dim) : SymbolicDim(std::string("n"));
  const SymbolicDim m = control_dim ? SymbolicDim(*control_dim) : SymbolicDim(std::string("m"));
  const DimShapes<SymbolicDim> shapes = AcceptedShapes<SymbolicDim>(
      field, horizon, /*linear=*/true, n, m, SymbolicDim(std::string("p")));
  std::vector<std::string> parts;
  for (const DimShape<SymbolicDim>& shape : shapes) {
    std::vector<std::string> dims;
    for (const SymbolicDim& dim : shape) dims.push_back(dim.Text());
    parts.push_back(absl::StrCat("(", absl::StrJoin(dims, ","), ")"));
  }
  return absl::StrJoin(parts, " or ");
}

std::string FieldPath::str() const { return absl::StrCat(prefix_, name_); }

std::string ShapeString(absl::Span<const std::int64_t> shape) {
  // A client chooses the rank: a message echoing 10,000 dimensions would outgrow gRPC's header.
  constexpr std::size_t kShown = 6;
  if (shape.size() <= kShown) return absl::StrCat("(", absl::StrJoin(shape, ","), ")");
  return absl::StrCat("(", absl::StrJoin(shape.subspan(0, kShown), ","), ",... ", shape.size(),
                      " dimensions)");
}

std::string ShapeList(const SpecShapes& shapes) {
  std::vector<std::string> parts;
  parts.reserve(shapes.size());
  for (const SpecShape& shape : shapes) parts.push_back(ShapeString(shape));
  return absl::StrJoin(parts, " or ");
}

absl::Status CheckArrayShape(const ArraySpec& spec, const TensorShape* given, FieldPath path) {
  if (given == nullptr) {
    if (spec.optional) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat(path.str(), ": required, expected shape ", ShapeList(spec.shapes)));
  }
  if (ShapeAccepted<std::int64_t>(spec, *given)) return absl::OkStatus();
  if (spec.shapes.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path.str(), ": must be empty with ", spec.forbidden_with, ", got ", ShapeString(*given)));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      path.str(), ": expected shape ", ShapeList(spec.shapes), ", got ", ShapeString(*given)));
}

absl::Status CheckArrayLength(const ArraySpec& spec, std::size_t length, bool may_be_empty,
                              FieldPath path, const SpecShape** matched) {
  if (matched != nullptr) *matched = nullptr;
  if (length == 0 && may_be_empty) return absl::OkStatus();
  for (const SpecShape& shape : spec.shapes) {
    if (NumValues(shape) == static_cast<std::int64_t>(length)) {
      if (matched != nullptr) *matched = &shape;
      return absl::OkStatus();
    }
  }
  const std::string got = absl::StrCat(length, " values");
  if (spec.shapes.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.str(), ": must be empty with ", spec.forbidden_with, ", got ", got));
  }
  return absl::InvalidArgumentError(absl::StrCat(path.str(), ": expected shape ",
                                                 ShapeList(spec.shapes),
                                                 may_be_empty ? " or none" : "", ", got ", got));
}

namespace {

// The scan of CheckFinite: `shape` (nullopt: flat) only names the first bad value.
absl::Status CheckFiniteIn(absl::Span<const double> values,
                           std::optional<absl::Span<const std::int64_t>> shape,
                           const FieldPath& path) {
  bool finite = true;
  for (double value : values) finite &= std::isfinite(value);
  if (finite) return absl::OkStatus();
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (std::isfinite(values[i])) continue;
    const std::string index =
        shape ? IndexString(*shape, static_cast<std::int64_t>(i)) : absl::StrCat("[", i, "]");
    return absl::InvalidArgumentError(
        absl::StrCat(path.str(), ": not finite at ", index, " (", values[i], ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckFinite(absl::Span<const double> values, const TensorShape* shape,
                         FieldPath path) {
  return CheckFiniteIn(
      values,
      shape != nullptr ? std::optional<absl::Span<const std::int64_t>>(*shape) : std::nullopt,
      path);
}

absl::Status CheckFinite(absl::Span<const double> values, const SpecShape* shape, FieldPath path) {
  return CheckFiniteIn(
      values,
      shape != nullptr ? std::optional<absl::Span<const std::int64_t>>(*shape) : std::nullopt,
      path);
}

}  // namespace mpc
