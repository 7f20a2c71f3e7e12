#include "solver/stage_constraints.h"

#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "solver/graph/graph_program.h"

namespace mpc {
namespace {

// Rows of state bounds: n for each bound given.
int StateBoundRows(const Problem& p) {
  const int n = p.shape.state_dim;
  return (p.x_upper.empty() ? 0 : n) + (p.x_lower.empty() ? 0 : n);
}

// Entry i of a state bound at step t ((n) or (T, n)).
double BoundAt(const std::vector<double>& bound, int n, int t, int i) {
  const bool varies = static_cast<int>(bound.size()) != n;
  return bound[static_cast<std::size_t>(varies ? t : 0) * n + i];
}

absl::Status CheckStateBound(const std::vector<double>& bound, const Problem& p, const char* name,
                             const std::string& prefix) {
  if (bound.empty()) return absl::OkStatus();
  const int n = p.shape.state_dim, T = p.shape.horizon;
  const std::size_t size = bound.size();
  if (size != static_cast<std::size_t>(n) && size != static_cast<std::size_t>(T) * n) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, name, ": expected shape (", n, ") or (",
                                                   T, ",", n, "), got ", size, " values"));
  }
  for (std::size_t e = 0; e < size; ++e) {
    if (std::isnan(bound[e])) {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix, name, ": not a number at [", e, "] (bounds may be +-inf)"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckBoundOrder(const Problem& p, const std::string& prefix) {
  if (p.x_lower.empty() || p.x_upper.empty()) return absl::OkStatus();
  const int n = p.shape.state_dim, T = p.shape.horizon;
  for (int t = 0; t < T; ++t) {
    for (int i = 0; i < n; ++i) {
      const double lower = BoundAt(p.x_lower, n, t, i), upper = BoundAt(p.x_upper, n, t, i);
      if (lower <= upper) continue;
      return absl::InvalidArgumentError(absl::StrCat(prefix, "x_lower: must be <= x_upper at [", t,
                                                     ",", i, "] (", lower, " > ", upper, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckGeneralConstraints(const Problem& p, const std::string& prefix) {
  const int k = p.constraint_count, T = p.shape.horizon, nt = p.shape.tau_dim();
  if (k == 0) {
    if (p.constraint_G.empty() && p.constraint_h.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "constraints.G: required with constraints.h"));
  }
  const std::size_t per_step = static_cast<std::size_t>(k) * nt;
  if (p.constraint_G.size() != per_step && p.constraint_G.size() != per_step * T) {
    return absl::InvalidArgumentError(absl::StrCat(
        prefix, "constraints.G: expected shape (", k, ",", nt, ") or (", T, ",", k, ",", nt,
        ") (n+m = ", nt, " columns), got ", p.constraint_G.size(), " values"));
  }
  if (p.constraint_h.size() != static_cast<std::size_t>(k) &&
      p.constraint_h.size() != static_cast<std::size_t>(k) * T) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "constraints.h: expected shape (", k,
                                                   ") or (", T, ",", k, "), got ",
                                                   p.constraint_h.size(), " values"));
  }
  for (const auto& [values, name] :
       {std::pair{&p.constraint_G, "constraints.G"}, std::pair{&p.constraint_h, "constraints.h"}}) {
    for (std::size_t e = 0; e < values->size(); ++e) {
      if (std::isfinite((*values)[e])) continue;
      return absl::InvalidArgumentError(
          absl::StrCat(prefix, name, ": not finite at [", e, "] (", (*values)[e], ")"));
    }
  }
  return absl::OkStatus();
}

// A constraint graph's inputs against n and m, and its parameters (as the conversion sets them).
absl::Status CheckConstraintGraph(const Problem& p, const std::string& prefix) {
  if (p.constraint_graph == nullptr) return absl::OkStatus();
  const GraphProgram& graph = *p.constraint_graph;
  if (graph.is_cost || graph.state_dim != p.shape.state_dim ||
      (graph.control_dim != 0 && graph.control_dim != p.shape.control_dim)) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "constraint_graph.onnx: expected inputs x (", p.shape.state_dim,
                     ") and u (", p.shape.control_dim, ")"));
  }
  if (p.constraint_params.size() != static_cast<std::size_t>(graph.param_dim)) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "constraint_graph.parameters: expected ",
                                                   graph.param_dim, " values in all, got ",
                                                   p.constraint_params.size()));
  }
  for (std::size_t e = 0; e < p.constraint_params.size(); ++e) {
    if (std::isfinite(p.constraint_params[e])) continue;
    return absl::InvalidArgumentError(absl::StrCat(
        prefix, "constraint_graph.parameters: not finite at [", e, "] (the graph's parameters)"));
  }
  return absl::OkStatus();
}

// Row r at step t when it is a state bound: e_index' tau <= value (sign +1, x_upper) or
// -e_index' tau <= -value (sign -1, x_lower); index -1 for the zero row (t = 0, infinite bound).
struct StateBoundRow {
  bool is_bound = false;
  int index = -1;
  double sign = 0.0;
  double value = 0.0;
};

StateBoundRow StateBoundRowOf(const Problem& p, int t, int r) {
  const int n = p.shape.state_dim;
  const int upper_rows = p.x_upper.empty() ? 0 : n;
  StateBoundRow row;
  if (r >= StateBoundRows(p)) return row;
  row.is_bound = true;
  const bool upper = r < upper_rows;
  const int i = upper ? r : r - upper_rows;
  const double bound = BoundAt(upper ? p.x_upper : p.x_lower, n, t, i);
  if (t == 0 || std::isinf(bound)) return row;
  row.index = i;
  row.sign = upper ? 1.0 : -1.0;
  row.value = bound;
  return row;
}

// Row r at step t when it is one of constraints.G's: its n+m coefficients and h (g null for the
// zero rows past the problem's own).
struct GeneralRow {
  const double* g = nullptr;
  double h = 0.0;
};

GeneralRow GeneralRowOf(const Problem& p, int t, int r) {
  const int row = r - StateBoundRows(p), k = p.constraint_count, nt = p.shape.tau_dim();
  GeneralRow out;
  if (row < 0 || row >= k) return out;
  const bool g_varies = p.constraint_G.size() != static_cast<std::size_t>(k) * nt;
  const bool h_varies = p.constraint_h.size() != static_cast<std::size_t>(k);
  out.g = p.constraint_G.data() + (static_cast<std::size_t>(g_varies ? t : 0) * k + row) * nt;
  out.h = p.constraint_h[static_cast<std::size_t>(h_varies ? t : 0) * k + row];
  return out;
}

}  // namespace

int StageConstraintRows(const Problem& problem) {
  return StateBoundRows(problem) + problem.constraint_count + GraphConstraintRows(problem);
}

int GraphConstraintRows(const Problem& problem) {
  return problem.constraint_graph == nullptr ? 0 : problem.constraint_graph->output_dim;
}

bool StageConstraintsVary(const Problem& problem) {
  if (StateBoundRows(problem) > 0 || GraphConstraintRows(problem) > 0) return true;
  const std::size_t k = problem.constraint_count;
  return problem.constraint_G.size() != k * problem.shape.tau_dim() ||
         problem.constraint_h.size() != k;
}

double StageConstraintCoefficient(const Problem& problem, int t, int r, int e) {
  const StateBoundRow bound = StateBoundRowOf(problem, t, r);
  if (bound.is_bound) return bound.index == e ? bound.sign : 0.0;
  const GeneralRow row = GeneralRowOf(problem, t, r);
  return row.g == nullptr ? 0.0 : row.g[e];
}

double StageConstraintBound(const Problem& problem, int t, int r) {
  const StateBoundRow bound = StateBoundRowOf(problem, t, r);
  if (bound.is_bound) return bound.index < 0 ? 0.0 : bound.sign * bound.value;
  const GeneralRow row = GeneralRowOf(problem, t, r);
  return row.g == nullptr ? 0.0 : row.h;
}

absl::Status ValidateStageConstraints(const Problem& problem, const std::string& field_prefix) {
  const std::string& p = field_prefix;
  if (absl::Status s = CheckStateBound(problem.x_lower, problem, "x_lower", p); !s.ok()) return s;
  if (absl::Status s = CheckStateBound(problem.x_upper, problem, "x_upper", p); !s.ok()) return s;
  if (absl::Status s = CheckBoundOrder(problem, p); !s.ok()) return s;
  if (absl::Status s = CheckGeneralConstraints(problem, p); !s.ok()) return s;
  if (absl::Status s = CheckConstraintGraph(problem, p); !s.ok()) return s;
  if (StageConstraintRows(problem) > 0 && problem.options.method != SolverMethod::kIlqr) {
    return absl::InvalidArgumentError(
        absl::StrCat("options.method: ", SolverMethodName(problem.options.method),
                     " does not take state bounds or constraints (", p,
                     !problem.x_lower.empty() || !problem.x_upper.empty() ? "x_lower/x_upper"
                     : problem.constraint_count > 0                       ? "constraints"
                                                                          : "constraint_graph",
                     "); use ILQR"));
  }
  return absl::OkStatus();
}

StageConstraintGradient::StageConstraintGradient(const Problem& problem,
                                                 std::vector<double>* x_lower,
                                                 std::vector<double>* x_upper,
                                                 std::vector<double>* constraint_G,
                                                 std::vector<double>* constraint_h)
    : problem_(problem),
      x_lower_(x_lower),
      x_upper_(x_upper),
      constraint_G_(constraint_G),
      constraint_h_(constraint_h) {
  x_lower_->assign(problem.x_lower.size(), 0.0);
  x_upper_->assign(problem.x_upper.size(), 0.0);
  constraint_G_->assign(problem.constraint_G.size(), 0.0);
  constraint_h_->assign(problem.constraint_h.size(), 0.0);
}

void StageConstraintGradient::Add(int t, int r, absl::Span<const double> dg, double dh) {
  const Problem& p = problem_;
  const int n = p.shape.state_dim;
  const StateBoundRow bound = StateBoundRowOf(p, t, r);
  if (bound.is_bound) {
    if (bound.index < 0) return;
    std::vector<double>& out = bound.sign > 0 ? *x_upper_ : *x_lower_;
    const bool varies = static_cast<int>(out.size()) != n;
    out[static_cast<std::size_t>(varies ? t : 0) * n + bound.index] += bound.sign * dh;
    return;
  }
  const int row = r - StateBoundRows(p), k = p.constraint_count, nt = p.shape.tau_dim();
  if (row < 0 || row >= k) return;
  const bool g_varies = p.constraint_G.size() != static_cast<std::size_t>(k) * nt;
  const bool h_varies = p.constraint_h.size() != static_cast<std::size_t>(k);
  double* g = constraint_G_->data() + (static_cast<std::size_t>(g_varies ? t : 0) * k + row) * nt;
  for (int e = 0; e < nt; ++e) g[e] += dg[e];
  (*constraint_h_)[static_cast<std::size_t>(h_varies ? t : 0) * k + row] += dh;
}

}  // namespace mpc
