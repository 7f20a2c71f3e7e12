#include "solver/pytorch_terms.h"

#include <algorithm>
#include <cstddef>
#include <limits>
#include <vector>

namespace mpc {
namespace {

// Copies every row-major (rows x cols) slice of `from` into a (new_rows x new_cols) slice of
// zeros at (row_offset, col_offset): the caller's arrays inside the augmented ones.
std::vector<double> Embed(const std::vector<double>& from, int rows, int cols, int new_rows,
                          int new_cols, int row_offset, int col_offset) {
  const std::size_t block = static_cast<std::size_t>(rows) * cols;
  const std::size_t slices = block == 0 ? 0 : from.size() / block;
  std::vector<double> to(slices * new_rows * new_cols, 0.0);
  for (std::size_t s = 0; s < slices; ++s) {
    for (int i = 0; i < rows; ++i) {
      for (int j = 0; j < cols; ++j) {
        to[(s * new_rows + row_offset + i) * new_cols + col_offset + j] =
            from[(s * rows + i) * cols + j];
      }
    }
  }
  return to;
}

// The (new_rows x new_cols) block at (row_offset, col_offset) of every (rows x cols) slice of
// `from`: Embed's inverse.
std::vector<double> Extract(const std::vector<double>& from, int rows, int cols, int new_rows,
                            int new_cols, int row_offset, int col_offset) {
  const std::size_t block = static_cast<std::size_t>(rows) * cols;
  const std::size_t slices = block == 0 ? 0 : from.size() / block;
  std::vector<double> to(slices * new_rows * new_cols);
  for (std::size_t s = 0; s < slices; ++s) {
    for (int i = 0; i < new_rows; ++i) {
      for (int j = 0; j < new_cols; ++j) {
        to[(s * new_rows + i) * new_cols + j] =
            from[(s * rows + row_offset + i) * cols + col_offset + j];
      }
    }
  }
  return to;
}

// Bounds (T, m) from bounds that are empty (unbounded: `fill`), (m) or (T, m).
std::vector<double> PerStepBounds(const std::vector<double>& bounds, int T, int m, double fill) {
  std::vector<double> out(static_cast<std::size_t>(T) * m, fill);
  if (bounds.empty()) return out;
  const bool varies = static_cast<int>(bounds.size()) != m;
  for (int t = 0; t < T; ++t) {
    for (int j = 0; j < m; ++j) out[t * m + j] = bounds[(varies ? t * m : 0) + j];
  }
  return out;
}

}  // namespace

void PinZeroedControls(absl::Span<const double> mask, Problem* problem) {
  const int T = problem->shape.horizon;
  const int m = problem->shape.control_dim;
  constexpr double kInfinity = std::numeric_limits<double>::infinity();
  std::vector<double> lower = PerStepBounds(problem->u_lower, T, m, -kInfinity);
  std::vector<double> upper = PerStepBounds(problem->u_upper, T, m, kInfinity);
  for (std::size_t e = 0; e < mask.size() && e < lower.size(); ++e) {
    if (mask[e] == 0.0) continue;
    const double pinned = std::min(std::max(0.0, lower[e]), upper[e]);
    lower[e] = pinned;
    upper[e] = pinned;
  }
  problem->u_lower = std::move(lower);
  problem->u_upper = std::move(upper);
}

void AugmentWithSlewRate(double gamma, absl::Span<const double> prev_ctrl, Problem* problem) {
  const int n = problem->shape.state_dim;
  const int m = problem->shape.control_dim;
  const int nt = n + m;
  const int na = n + m;    // the augmented state [u_{t-1}; x_t]
  const int nta = na + m;  // its tau [u_{t-1}; x_t; u_t]
  problem->cost_quadratic = Embed(problem->cost_quadratic, nt, nt, nta, nta, m, m);
  for (std::size_t base = 0; base < problem->cost_quadratic.size();
       base += static_cast<std::size_t>(nta) * nta) {
    double* C = problem->cost_quadratic.data() + base;
    for (int k = 0; k < m; ++k) {
      C[k * nta + k] += gamma;
      C[k * nta + na + k] -= gamma;
      C[(na + k) * nta + k] -= gamma;
      C[(na + k) * nta + na + k] += gamma;
    }
  }
  problem->cost_linear = Embed(problem->cost_linear, 1, nt, 1, nta, 0, m);
  problem->transition = Embed(problem->transition, n, nt, na, nta, m, m);
  for (std::size_t base = 0; base < problem->transition.size();
       base += static_cast<std::size_t>(na) * nta) {
    for (int k = 0; k < m; ++k) problem->transition[base + k * nta + na + k] = 1.0;
  }
  problem->offset = Embed(problem->offset, 1, n, 1, na, 0, m);
  if (problem->graph != nullptr) {
    problem->graph = AugmentGraphWithPassthrough(*problem->graph);
    problem->shape.dynamics = DynamicsId::Graph(problem->graph->fingerprint.data());
  }
  std::vector<double> x_init(na, 0.0);
  std::copy(prev_ctrl.begin(), prev_ctrl.end(), x_init.begin());
  std::copy(problem->x_init.begin(), problem->x_init.end(), x_init.begin() + m);
  problem->x_init = std::move(x_init);
  problem->shape.state_dim = na;
  problem->slew_state_prefix = m;
}

std::shared_ptr<const GraphProgram> AugmentGraphWithPassthrough(const GraphProgram& graph) {
  const int n = graph.state_dim;
  const int m = graph.control_dim;
  auto out = std::make_shared<GraphProgram>(graph);
  out->state_dim = n + m;
  out->output_dim = n + m;  // [u; x_next]: every adjoint seed spans it
  // Every old position moves up by m: u_prev takes [0, m), x follows it, u and theta keep
  // following x.
  const auto shift = [m](std::vector<int>* positions) {
    for (int& q : *positions) q += m;
  };
  for (GraphInstruction& instruction : out->tape) {
    instruction.out += m;
    instruction.input += m;
    shift(&instruction.a);
    shift(&instruction.b);
    shift(&instruction.source);
    shift(&instruction.a_base);
    shift(&instruction.b_base);
    shift(&instruction.out_base);
  }
  const int size = static_cast<int>(graph.initial_buffer.size());
  out->initial_buffer.assign(m + size + n + m, 0.0);
  std::copy(graph.initial_buffer.begin(), graph.initial_buffer.end(),
            out->initial_buffer.begin() + m);
  GraphInstruction next;  // [u; x_next] into the new output
  next.op = GraphOp::kGather;
  next.out = m + size;
  next.size = n + m;
  for (int i = 0; i <= n + m; ++i) next.start.push_back(i);
  for (int i = 0; i < m; ++i) next.source.push_back(out->u_position() + i);
  for (int i = 0; i < n; ++i) next.source.push_back(graph.output + m + i);
  out->tape.push_back(std::move(next));
  out->output = m + size;
  // Not a SHA-256 of any bytes, so no graph sent on the wire shares it.
  out->fingerprint[3] ^= 0x736c65772d706173ULL;  // "slew-pas"
  return out;
}

ProblemShape CallerShape(const Problem& problem) {
  ProblemShape shape = problem.shape;
  shape.state_dim -= problem.slew_state_prefix;
  return shape;
}

void StripSlewState(const Problem& problem, Solution* solution) {
  const int prefix = problem.slew_state_prefix;
  if (prefix == 0) return;
  const int na = problem.shape.state_dim;
  const int n = na - prefix;
  solution->x = Extract(solution->x, 1, na, 1, n, 0, prefix);
  solution->feedback = Extract(solution->feedback, problem.shape.control_dim, na,
                               problem.shape.control_dim, n, 0, prefix);
}

void AugmentBackwardPoint(const Problem& problem, BackwardProblem* item) {
  const int m = problem.slew_state_prefix;
  if (m == 0) return;
  const int T = problem.shape.horizon;
  const int n = problem.shape.state_dim - m;
  std::vector<double> x = Embed(item->x, 1, n, 1, n + m, 0, m);
  for (int t = 0; t < T; ++t) {
    for (int k = 0; k < m; ++k) {
      x[t * (n + m) + k] = t == 0 ? problem.x_init[k] : item->u[(t - 1) * m + k];
    }
  }
  item->x = std::move(x);
  item->dl_dx = Embed(item->dl_dx, 1, n, 1, n + m, 0, m);
}

void ReduceSlewGradient(int n, int m, ProblemGradient* gradient) {
  const int na = n + m;
  const int nta = na + m;
  const int nt = n + m;
  gradient->x_init = Extract(gradient->x_init, 1, na, 1, n, 0, m);
  gradient->cost_quadratic = Extract(gradient->cost_quadratic, nta, nta, nt, nt, m, m);
  gradient->cost_linear = Extract(gradient->cost_linear, 1, nta, 1, nt, 0, m);
  gradient->transition = Extract(gradient->transition, na, nta, n, nt, m, m);
  gradient->offset = Extract(gradient->offset, 1, na, 1, n, 0, m);
}

}  // namespace mpc
