#include "solver/graph/graph_program.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <utility>

#include "absl/base/attributes.h"
#include "solver/cpu/double4.h"
#include "solver/cpu/vector_math.h"

namespace mpc {
namespace {

// The elementary functions and each op's local derivatives: solver/graph/element_sweeps.h, shared
// with the element sweeps (host and device).
using graph_sweep::AccumulateBinaryAdjoints;
using graph_sweep::AddLanes;
using graph_sweep::Binary;
using graph_sweep::ElementValues;
using graph_sweep::IsBinary;
using graph_sweep::Unary;
using graph_sweep::UnarySlope;
using Dual1 = Dual<double, 1>;

// Matrix products (kMatMul). Every product of an instruction is O = A B with A (rows, inner) at
// strides (a_row, a_col) and B (inner, cols) at (b_row, b_col). A layer exported from nn.Linear
// (Gemm with transB) reads A's rows and B's columns contiguously (a_col = b_row = 1): its sums are
// contiguous dot products and its adjoints contiguous updates, which the loops below give the
// compiler as unit-stride loops over distinct arrays (__restrict: an instruction's output never
// overlaps its operands, and values and adjoints are separate buffers) so that they vectorise.
// The other layouts take the general loops.
bool HasContiguousDots(const GraphInstruction& in) { return in.a_col == 1 && in.b_row == 1; }

// The double kernels below are spelled in four-wide vectors (Double4, solver/cpu/double4.h: the
// compiler left the generic loops scalar or shuffling). Lane by lane they do the generic
// templates' operations in the same order (no contraction: -ffp-contract=off), so the same bits.

// sum_k a[k] b[k] for k in [0, blocks * kDotLanes) in kDotLanes partial sums (k mod kDotLanes),
// added pairwise: lane l + lane l + 4, then + lane l + 2, then + lane l + 1.
constexpr int kDotLanes = 8;

template <typename S>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline S PairwiseDotOfBlocks(const S* __restrict a,
                                                          const S* __restrict b, int blocks) {
  S lane[kDotLanes];
  for (S& partial : lane) partial = S(0.0);
  for (int k = 0; k < blocks * kDotLanes; k += kDotLanes) {
    for (int l = 0; l < kDotLanes; ++l) lane[l] = lane[l] + a[k + l] * b[k + l];
  }
  for (int width = kDotLanes / 2; width > 0; width /= 2) {
    for (int l = 0; l < width; ++l) lane[l] = lane[l] + lane[l + width];
  }
  return lane[0];
}

// The eight partial sums of PairwiseDotOfBlocks held as two vectors (lanes 0-3 and 4-7), added in
// its order.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline double AddPartialSums(Double4 low, Double4 high) {
  const Double4 four = low + high;
  return (four[0] + four[2]) + (four[1] + four[3]);
}

template <>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline double PairwiseDotOfBlocks(const double* __restrict a,
                                                               const double* __restrict b,
                                                               int blocks) {
  static_assert(kDotLanes == 8, "two vectors of four partial sums");
  Double4 low = BroadcastDouble4(0.0), high = BroadcastDouble4(0.0);
  for (int k = 0; k < blocks * kDotLanes; k += kDotLanes) {
    low = low + LoadDouble4(a + k) * LoadDouble4(b + k);
    high = high + LoadDouble4(a + k + 4) * LoadDouble4(b + k + 4);
  }
  return AddPartialSums(low, high);
}

// sum_k a[k] b[k] for k in [from, n), in order: a dot's tail after its whole blocks.
template <typename S>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline S TailDot(const S* __restrict a, const S* __restrict b,
                                              int from, int n) {
  S tail(0.0);
  for (int k = from; k < n; ++k) tail = tail + a[k] * b[k];
  return tail;
}

// sum_k a[k] b[k] for k in [0, n): the whole blocks pairwise (above), then the tail in order. One
// fixed order for every scalar type, so a dual number's value is the double evaluation's.
template <typename S>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline S ContiguousDot(const S* __restrict a, const S* __restrict b,
                                                    int n) {
  const int blocks = n / kDotLanes;
  const S tail = TailDot(a, b, blocks * kDotLanes, n);
  return PairwiseDotOfBlocks(a, b, blocks) + tail;
}

// out[q] = ContiguousDot(a, b[q], n) for q in [0, 4), bit for bit (each dot its own two vectors of
// partial sums, added pairwise, then its tail in order), with a's blocks loaded once for the four:
// a layer's outputs four at a time.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void ContiguousDotsOfFour(const double* __restrict a,
                                                              const double* const* b, int n,
                                                              double* __restrict out) {
  static_assert(kDotLanes == 8, "two vectors of four partial sums per dot");
  const int blocks = n / kDotLanes;
  Double4 low[4], high[4];
  for (int q = 0; q < 4; ++q) low[q] = high[q] = BroadcastDouble4(0.0);
  for (int k = 0; k < blocks * kDotLanes; k += kDotLanes) {
    const Double4 a_low = LoadDouble4(a + k), a_high = LoadDouble4(a + k + 4);
    for (int q = 0; q < 4; ++q) {
      low[q] = low[q] + a_low * LoadDouble4(b[q] + k);
      high[q] = high[q] + a_high * LoadDouble4(b[q] + k + 4);
    }
  }
  for (int q = 0; q < 4; ++q) {
    out[q] = AddPartialSums(low[q], high[q]) + TailDot(a, b[q], blocks * kDotLanes, n);
  }
}

// y[k] += alpha x[k] for k in [0, n). G: S, or Double4 (four adjoints of the same values, the
// four-row reverse sweeps: each lane the sums of its own, in the same order).
template <typename S, typename G>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void ContiguousAxpy(const G alpha, const S* __restrict x,
                                                        G* __restrict y, int n) {
  for (int k = 0; k < n; ++k) y[k] += alpha * x[k];
}

// y[l] += alpha[j] rows[j * stride + l] for j = 0, 1, ..., count - 1 in turn, l in [0,
// kRowBlock<G>): the block of y stays in registers across the rows. Sixteen doubles are four
// vectors; with four-lane adjoints (G = Double4) an element is a vector, and eight of them leave
// AVX2's sixteen registers room for alpha[j] and the broadcast row elements (sixteen spilled).
template <typename G>
inline constexpr int kRowBlock = std::is_same_v<G, Double4> ? 8 : 16;

template <typename S, typename G>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void AccumulateRowBlock(const G* __restrict alpha, int count,
                                                            const S* __restrict rows, int stride,
                                                            G* __restrict y) {
  G block[kRowBlock<G>];
  for (int l = 0; l < kRowBlock<G>; ++l) block[l] = y[l];
  for (int j = 0; j < count; ++j) {
    const G a = alpha[j];
    const S* row = rows + static_cast<std::ptrdiff_t>(j) * stride;
    for (int l = 0; l < kRowBlock<G>; ++l) block[l] += a * row[l];
  }
  for (int l = 0; l < kRowBlock<G>; ++l) y[l] = block[l];
}

template <>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void AccumulateRowBlock<double, double>(
    const double* __restrict alpha, int count, const double* __restrict rows, int stride,
    double* __restrict y) {
  static_assert(kRowBlock<double> == 16, "four vectors of four");
  Double4 y0 = LoadDouble4(y), y1 = LoadDouble4(y + 4), y2 = LoadDouble4(y + 8),
          y3 = LoadDouble4(y + 12);
  for (int j = 0; j < count; ++j) {
    const Double4 a = BroadcastDouble4(alpha[j]);
    const double* row = rows + static_cast<std::ptrdiff_t>(j) * stride;
    y0 = y0 + a * LoadDouble4(row);
    y1 = y1 + a * LoadDouble4(row + 4);
    y2 = y2 + a * LoadDouble4(row + 8);
    y3 = y3 + a * LoadDouble4(row + 12);
  }
  StoreDouble4(y, y0);
  StoreDouble4(y + 4, y1);
  StoreDouble4(y + 8, y2);
  StoreDouble4(y + 12, y3);
}

// y[k] += alpha[j] rows[j * stride + k] for j = 0, 1, ..., count - 1 in turn, k in [0, n): the
// same sums, in the same order, as count ContiguousAxpy calls, a block of y at a time.
template <typename S, typename G>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void AccumulateRows(const G* __restrict alpha, int count,
                                                        const S* __restrict rows, int stride,
                                                        G* __restrict y, int n) {
  int k = 0;
  for (; k + kRowBlock<G> <= n; k += kRowBlock<G>) {
    AccumulateRowBlock(alpha, count, rows + k, stride, y + k);
  }
  for (; k < n; ++k) {
    G sum = y[k];
    for (int j = 0; j < count; ++j) {
      sum += alpha[j] * rows[static_cast<std::ptrdiff_t>(j) * stride + k];
    }
    y[k] = sum;
  }
}

template <typename S>
void MatMulForward(const GraphInstruction& in, S* v) {
  for (std::size_t p = 0; p < in.out_base.size(); ++p) {
    const S* A = v + in.a_base[p];
    const S* B = v + in.b_base[p];
    S* O = v + in.out_base[p];
    for (int i = 0; i < in.rows; ++i) {
      int j = 0;
      if constexpr (std::is_same_v<S, double>) {
        for (; HasContiguousDots(in) && j + 4 <= in.cols; j += 4) {
          const double* const columns[4] = {B + j * in.b_col, B + (j + 1) * in.b_col,
                                            B + (j + 2) * in.b_col, B + (j + 3) * in.b_col};
          ContiguousDotsOfFour(A + i * in.a_row, columns, in.inner, O + i * in.cols + j);
        }
      }
      for (; j < in.cols; ++j) {
        if (HasContiguousDots(in)) {
          O[i * in.cols + j] = ContiguousDot(A + i * in.a_row, B + j * in.b_col, in.inner);
          continue;
        }
        S s(0.0);
        for (int k = 0; k < in.inner; ++k) {
          s = s + A[i * in.a_row + k * in.a_col] * B[k * in.b_row + j * in.b_col];
        }
        O[i * in.cols + j] = s;
      }
    }
  }
}

// gA += gO B' and gB += A' gO, each where asked (to_a, to_b): each operand's adjoints in its own
// loop (the same order of sums), so that an inactive operand (a layer's weights, for a Jacobian in
// x and u) costs nothing.
template <typename S, typename G>
void MatMulReverse(const GraphInstruction& in, const S* v, G* g, bool to_a, bool to_b) {
  const bool contiguous = HasContiguousDots(in);
  for (std::size_t p = 0; p < in.out_base.size(); ++p) {
    const S* A = v + in.a_base[p];
    const S* B = v + in.b_base[p];
    G* gA = g + in.a_base[p];
    G* gB = g + in.b_base[p];
    const G* gO = g + in.out_base[p];
    for (int i = 0; i < in.rows && to_a; ++i) {
      if (contiguous) {
        AccumulateRows(gO + i * in.cols, in.cols, B, in.b_col, gA + i * in.a_row, in.inner);
        continue;
      }
      for (int j = 0; j < in.cols; ++j) {
        const G& go = gO[i * in.cols + j];
        for (int k = 0; k < in.inner; ++k) {
          gA[i * in.a_row + k * in.a_col] += go * B[k * in.b_row + j * in.b_col];
        }
      }
    }
    for (int i = 0; i < in.rows && to_b; ++i) {
      for (int j = 0; j < in.cols; ++j) {
        const G& go = gO[i * in.cols + j];
        if (contiguous) {
          ContiguousAxpy(go, A + i * in.a_row, gB + j * in.b_col, in.inner);
          continue;
        }
        for (int k = 0; k < in.inner; ++k) {
          gB[k * in.b_row + j * in.b_col] += go * A[i * in.a_row + k * in.a_col];
        }
      }
    }
  }
}

// out[i] = f(a[i]) for i in [0, size), four elements per call of f (Double4 -> Double4); the last
// group padded with zeros, so that every element goes through f whatever its position.
template <class F>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void MapFour(const double* __restrict a, int size,
                                                 double* __restrict out, F f) {
  int i = 0;
  for (; i + 4 <= size; i += 4) StoreDouble4(out + i, f(LoadDouble4(a + i)));
  if (i == size) return;
  double in4[4] = {0.0, 0.0, 0.0, 0.0}, out4[4];
  for (int k = 0; i + k < size; ++k) in4[k] = a[i + k];
  StoreDouble4(out4, f(LoadDouble4(in4)));
  for (int k = 0; i + k < size; ++k) out[i + k] = out4[k];
}

// The logistic sigmoid as the scalar one (element_sweeps.h) computes it, four at once: exp of a
// non-positive argument only, so no overflow for either sign; NaN stays NaN.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline Double4 Sigmoid4(Double4 a) {
  const auto non_negative = a >= 0.0;
  const Double4 e = Exp4(non_negative ? -a : a);
  return non_negative ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

// The activations an MLP's every hidden unit runs (tanh, the sigmoid, exp) four elements at a
// time, in glibc's vector functions (solver/cpu/vector_math.h; within 4 ulp of the scalar libm,
// whose tanh took a fifth of the MLP's solve). False for every other op (the scalar Unary then).
bool VectorUnary(const GraphInstruction& in, const double* a, double* out) {
  switch (in.op) {
    case GraphOp::kTanh:
      MapFour(a, in.size, out, [](Double4 v) { return Tanh4(v); });
      return true;
    case GraphOp::kSigmoid:
      MapFour(a, in.size, out, [](Double4 v) { return Sigmoid4(v); });
      return true;
    case GraphOp::kExp:
      MapFour(a, in.size, out, [](Double4 v) { return Exp4(v); });
      return true;
    default:
      return false;
  }
}

// The values of the instructions [begin, end).
template <typename S>
void Forward(const GraphInstruction* begin, const GraphInstruction* end, S* v) {
  for (const GraphInstruction* it = begin; it != end; ++it) {
    const GraphInstruction& in = *it;
    S* out = v + in.out;
    if (in.op == GraphOp::kGather) {
      for (int i = 0; i < in.size; ++i) {
        S s(0.0);
        for (int k = in.start[i]; k < in.start[i + 1]; ++k) s = s + v[in.source[k]];
        out[i] = s;
      }
    } else if (IsBinary(in.op)) {
      for (int i = 0; i < in.size; ++i) out[i] = Binary(in.op, v[in.a[i]], v[in.b[i]]);
    } else if (in.op == GraphOp::kMatMul) {
      MatMulForward(in, v);
    } else {
      const S* a = v + in.input;
      if constexpr (std::is_same_v<S, double>) {
        if (VectorUnary(in, a, out)) continue;
      }
      for (int i = 0; i < in.size; ++i) out[i] = Unary(in, a[i]);
    }
  }
}

template <typename S>
void Forward(const std::vector<GraphInstruction>& tape, S* v) {
  Forward(tape.data(), tape.data() + tape.size(), v);
}

// The values of a program: by its elements where it has them, else by its tape.
template <typename S>
void Values(const GraphProgram& program, S* v) {
  if (program.elements.empty()) return Forward(program.tape, v);
  ElementValues(program.elements.data(), static_cast<int>(program.elements.size()), v);
}

// Accumulates into g the adjoints of every position (kOfAll) or of the active ones (kOfInputs),
// given the values v of a forward sweep and the output adjoints already in g. G: S, or Double4
// (four adjoint vectors of the same values, each lane exactly the sweep it would be alone).
template <typename S, typename G = S>
void Reverse(const GraphProgram& program, const S* v, G* g, GraphAdjoints adjoints) {
  const bool all = adjoints == GraphAdjoints::kOfAll;
  for (auto it = program.tape.rbegin(); it != program.tape.rend(); ++it) {
    const GraphInstruction& in = *it;
    if (!all && !in.active) continue;
    const bool to_a = all || in.a_active;
    const bool to_b = all || in.b_active;
    const S* y = v + in.out;
    const G* gy = g + in.out;
    if (in.op == GraphOp::kGather) {
      for (int i = 0; i < in.size; ++i) {
        for (int k = in.start[i]; k < in.start[i + 1]; ++k) g[in.source[k]] += gy[i];
      }
    } else if (IsBinary(in.op)) {
      for (int i = 0; i < in.size; ++i) {
        AccumulateBinaryAdjoints(in.op, v[in.a[i]], v[in.b[i]], y[i], gy[i], to_a, to_b, g[in.a[i]],
                                 g[in.b[i]]);
      }
    } else if (in.op == GraphOp::kMatMul) {
      MatMulReverse(in, v, g, to_a, to_b);
    } else {
      const S* a = v + in.input;
      G* ga = g + in.input;
      for (int i = 0; i < in.size; ++i) ga[i] += gy[i] * UnarySlope(in, a[i], y[i]);
    }
  }
}

// The values (as Forward computes them, bit for bit) with `lanes` tangents beside them
// (t[position * lanes + lane]) in one pass: each instruction's local derivatives once, applied
// to every lane, so the n+m directions of a Jacobian cost one sweep. Inactive instructions write
// no tangents (theirs stay zero, as the parameters' and constants' do) and inactive operands add
// none. Tapes without matrix products only (UsesForwardJacobians).
// kLanes > 0: the lane count as a compile-time constant (the lane loops unroll), else `lanes`.
template <int kLanes>
void ForwardTapeLanes(const std::vector<GraphInstruction>& tape, double* v, int run_time_lanes,
                      double* t) {
  const int lanes = kLanes > 0 ? kLanes : run_time_lanes;
  const auto lanes_of = [&](int position) {
    return t + static_cast<std::size_t>(position) * lanes;
  };
  for (const GraphInstruction& in : tape) {
    Forward(&in, &in + 1, v);
    if (!in.active) continue;
    const double* y = v + in.out;
    if (in.op == GraphOp::kGather) {
      for (int i = 0; i < in.size; ++i) {
        double* to = lanes_of(in.out + i);
        std::fill_n(to, lanes, 0.0);
        for (int k = in.start[i]; k < in.start[i + 1]; ++k) {
          const double* from = lanes_of(in.source[k]);
          for (int l = 0; l < lanes; ++l) to[l] += from[l];
        }
      }
    } else if (IsBinary(in.op)) {
      for (int i = 0; i < in.size; ++i) {
        double da = 0.0, db = 0.0;
        AccumulateBinaryAdjoints(in.op, v[in.a[i]], v[in.b[i]], y[i], 1.0, true, true, da, db);
        AddLanes(in.a_active, in.b_active, da, db, lanes_of(in.a[i]), lanes_of(in.b[i]), lanes,
                 lanes_of(in.out + i));
      }
    } else {
      const double* a = v + in.input;
      for (int i = 0; i < in.size; ++i) {
        const double slope = UnarySlope(in, a[i], y[i]);
        const double* ta = lanes_of(in.input + i);
        double* to = lanes_of(in.out + i);
        for (int l = 0; l < lanes; ++l) to[l] = slope * ta[l];
      }
    }
  }
}

// Calls f(std::integral_constant<int, k>()) with k = lanes when 1 <= lanes <= kMaxFixedGraphLanes
// (the lane count as a compile-time constant: the lane loops unroll), else with k = 0 (run-time
// lanes).
template <class F, int... kCounts>
void WithLaneCount(std::integer_sequence<int, kCounts...>, int lanes, F&& f) {
  const bool fixed =
      ((lanes == kCounts + 1 ? (f(std::integral_constant<int, kCounts + 1>()), true) : false) ||
       ...);
  if (!fixed) f(std::integral_constant<int, 0>());
}

template <class F>
void WithLaneCount(int lanes, F&& f) {
  WithLaneCount(std::make_integer_sequence<int, kMaxFixedGraphLanes>(), lanes, std::forward<F>(f));
}

template <typename S>
void Fill(std::vector<S>* buffer, const S& value) {
  for (S& e : *buffer) e = value;
}

template <typename S>
S Zero() {
  return S(0.0);
}

template <>
Double4 Zero<Double4>() {
  return BroadcastDouble4(0.0);
}

// Zeroes the adjoints a sweep of `adjoints` reads: every position, or (kOfInputs) all but the
// parameters', which such a sweep neither reads nor needs.
template <typename S>
void ClearAdjoints(const GraphProgram& program, GraphAdjoints adjoints, std::vector<S>* g) {
  if (adjoints == GraphAdjoints::kOfAll) return Fill(g, Zero<S>());
  const auto theta = g->begin() + program.theta_position();
  std::fill(g->begin(), theta, Zero<S>());
  std::fill(theta + program.param_dim, g->end(), Zero<S>());
}

// Whether StepWithJacobians takes the n+m tangents of ForwardLanes in one pass rather than n
// reverse sweeps: on tapes without matrix products. Through a layer's product the reverse sweeps
// are cheaper: one operand each (the weights are inactive), where every tangent lane would pass
// through the product.
bool UsesForwardJacobians(const GraphProgram& program) {
  return !program.is_cost &&
         std::none_of(program.tape.begin(), program.tape.end(),
                      [](const GraphInstruction& in) { return in.op == GraphOp::kMatMul; });
}

}  // namespace

void MarkActivity(GraphProgram* program) {
  std::vector<bool> active(program->initial_buffer.size(), false);
  std::fill_n(active.begin() + program->x_position(), program->state_dim + program->control_dim,
              true);
  const auto any = [&](const std::vector<int>& positions) {
    return std::any_of(positions.begin(), positions.end(), [&](int q) { return active[q]; });
  };
  for (GraphInstruction& in : program->tape) {
    const auto out = active.begin() + in.out;
    if (in.op == GraphOp::kGather) {
      for (int i = 0; i < in.size; ++i) {
        out[i] = std::any_of(in.source.begin() + in.start[i], in.source.begin() + in.start[i + 1],
                             [&](int q) { return active[q]; });
      }
      in.a_active = in.b_active = std::any_of(out, out + in.size, [](bool b) { return b; });
    } else if (IsBinary(in.op)) {
      for (int i = 0; i < in.size; ++i) out[i] = active[in.a[i]] || active[in.b[i]];
      in.a_active = any(in.a);
      in.b_active = any(in.b);
    } else if (in.op == GraphOp::kMatMul) {
      const auto block_active = [&](const std::vector<int>& bases, int rows, int cols, int row,
                                    int col) {
        for (int base : bases) {
          for (int i = 0; i < rows; ++i) {
            for (int j = 0; j < cols; ++j) {
              if (active[base + i * row + j * col]) return true;
            }
          }
        }
        return false;
      };
      in.a_active = block_active(in.a_base, in.rows, in.inner, in.a_row, in.a_col);
      in.b_active = block_active(in.b_base, in.inner, in.cols, in.b_row, in.b_col);
      std::fill_n(out, in.size, in.a_active || in.b_active);
    } else {
      std::copy_n(active.begin() + in.input, in.size, out);
      in.a_active = in.b_active = std::any_of(out, out + in.size, [](bool b) { return b; });
    }
    in.active = in.a_active || in.b_active;
  }
}

namespace {

ElementCode BinaryCode(GraphOp op) {
  switch (op) {
    case GraphOp::kAdd:
      return ElementCode::kAdd;
    case GraphOp::kSub:
      return ElementCode::kSub;
    case GraphOp::kMul:
      return ElementCode::kMul;
    default:
      return ElementCode::kBinary;
  }
}

}  // namespace

void FlattenToElements(GraphProgram* program) {
  program->elements.clear();
  const std::vector<GraphInstruction>& tape = program->tape;
  if (std::any_of(tape.begin(), tape.end(),
                  [](const GraphInstruction& in) { return in.op == GraphOp::kMatMul; })) {
    return;
  }
  for (const GraphInstruction& in : tape) {
    ElementInstruction e;
    e.op = in.op;
    e.active = in.active;
    e.a_active = in.a_active;
    e.b_active = in.b_active;
    e.alpha = in.alpha;
    e.beta = in.beta;
    for (int i = 0; i < in.size; ++i) {
      e.out = in.out + i;
      if (in.op == GraphOp::kGather) {
        e.code = ElementCode::kGatherZero;
        for (int k = in.start[i]; k < in.start[i + 1]; ++k) {
          e.code = k == in.start[i] ? ElementCode::kGatherFirst : ElementCode::kGatherNext;
          e.a = in.source[k];
          program->elements.push_back(e);
        }
        if (in.start[i] == in.start[i + 1]) program->elements.push_back(e);
      } else if (IsBinary(in.op)) {
        e.code = BinaryCode(in.op);
        e.a = in.a[i];
        e.b = in.b[i];
        program->elements.push_back(e);
      } else {
        e.code = ElementCode::kUnary;
        e.a = in.input + i;
        program->elements.push_back(e);
      }
    }
  }
}

void EvaluateGraphTape(const std::vector<GraphInstruction>& tape, double* buffer) {
  Forward(tape, buffer);
}

GraphEvaluator::GraphEvaluator(std::shared_ptr<const GraphProgram> program)
    : program_(std::move(program)),
      values_(program_->initial_buffer),
      adjoints_(program_->initial_buffer.size()),
      param_scratch_(static_cast<std::size_t>(program_->param_dim)),
      dual_values_(program_->initial_buffer.begin(), program_->initial_buffer.end()),
      dual_adjoints_(program_->initial_buffer.size()) {
  SizeStages();
  if (UsesForwardJacobians(*program_)) {
    // Lane e of tau = [x; u] (positions 0 .. n+m-1) is d/dtau_e; every other position's lanes are
    // its instruction's, or zero (theta, constants, inactive positions).
    const int tau_dim = program_->state_dim + program_->control_dim;
    lanes_.resize(program_->initial_buffer.size() * static_cast<std::size_t>(tau_dim));
    PrepareGraphTapeBuffers(program_->ElementView(), values_.data(), lanes_.data());
  }
  if (!program_->is_cost) row_adjoints_.resize(program_->initial_buffer.size());
  if (program_->is_cost) {
    const int nt = program_->state_dim;
    tau_.resize(static_cast<std::size_t>(nt));
    dtau_.resize(static_cast<std::size_t>(nt));
    eigen_ = Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(nt);
    hessian_.resize(nt, nt);
  } else {
    const GraphProgram& p = *program_;
    dtau_.resize(static_cast<std::size_t>(p.state_dim + p.control_dim));
    row_seed_.resize(static_cast<std::size_t>(p.output_dim));
    curvature_.resize(static_cast<std::size_t>(p.state_dim + p.control_dim) *
                      (p.state_dim + p.control_dim));
    rows_at_.resize(static_cast<std::size_t>(p.state_dim + p.control_dim + p.param_dim));
    rows_.resize(static_cast<std::size_t>(p.output_dim));
  }
}

template <>
GraphEvaluator::Stages<double>& GraphEvaluator::StagesOf<double>() {
  return stages_;
}
template <>
GraphEvaluator::Stages<GraphEvaluator::Dual1>& GraphEvaluator::StagesOf<GraphEvaluator::Dual1>() {
  return dual_stages_;
}

void GraphEvaluator::SizeStages() {
  const GraphProgram& p = *program_;
  const auto n = static_cast<std::size_t>(p.state_dim);
  const auto m = static_cast<std::size_t>(p.control_dim);
  const auto np = static_cast<std::size_t>(p.param_dim);
  auto size_adjoints = [&](auto& adjoints) {
    adjoints.adjoints.resize(p.initial_buffer.size());
    for (auto& k_adjoint : adjoints.k_adjoint) k_adjoint.resize(n);
    for (auto* v : {&adjoints.seed, &adjoints.x_bar}) v->resize(n);
    adjoints.u_bar.resize(m);
    adjoints.theta_bar.resize(np);
  };
  auto size = [&](auto& stages) {
    for (auto& values : stages.values)
      values.assign(p.initial_buffer.begin(), p.initial_buffer.end());
    for (auto* v : {&stages.x, &stages.x_next}) v->resize(n);
    stages.u.resize(m);
    size_adjoints(stages);
  };
  size(stages_);
  size(dual_stages_);
  size_adjoints(row_stages_);
}

template <typename S>
void GraphEvaluator::IntegrateForward(const double* theta, TimeStep dt) {
  const GraphProgram& p = *program_;
  const int n = p.state_dim, m = p.control_dim;
  Stages<S>& st = StagesOf<S>();
  st.tableau = TableauOf(dt.integrator);
  st.h = dt.seconds;
  const bool theta_loaded = theta != nullptr && theta == bound_theta_ && theta == st.loaded_theta;
  for (int s = 0; s < st.tableau.stages; ++s) {
    S* v = st.values[s].data();
    for (int i = 0; i < n; ++i) {
      S y = st.x[i];
      for (int j = 0; j < s; ++j) {
        if (st.tableau.a[s][j] != 0.0)
          y += (st.h * st.tableau.a[s][j]) * st.values[j][p.output + i];
      }
      v[p.x_position() + i] = y;
    }
    for (int j = 0; j < m; ++j) v[p.u_position() + j] = st.u[j];
    for (int k = 0; k < p.param_dim && !theta_loaded; ++k) v[p.theta_position() + k] = S(theta[k]);
    Values(p, v);
  }
  st.loaded_theta = theta;
  for (int i = 0; i < n; ++i) {
    S sum = st.x[i];
    for (int s = 0; s < st.tableau.stages; ++s) {
      if (st.tableau.b[s] != 0.0) sum += (st.h * st.tableau.b[s]) * st.values[s][p.output + i];
    }
    st.x_next[i] = sum;
  }
}

template <typename S, typename G>
void GraphEvaluator::IntegrateReverse(StageAdjoints<G>* out, GraphAdjoints adjoints) {
  const GraphProgram& p = *program_;
  const int n = p.state_dim, m = p.control_dim;
  const Stages<S>& st = StagesOf<S>();
  StageAdjoints<G>& a = *out;
  // F = x + h sum_s b_s k_s: x gets the seed directly, stage s's output h b_s of it.
  for (int s = 0; s < st.tableau.stages; ++s) {
    for (int i = 0; i < n; ++i) a.k_adjoint[s][i] = (st.h * st.tableau.b[s]) * a.seed[i];
  }
  for (int i = 0; i < n; ++i) a.x_bar[i] = a.seed[i];
  Fill(&a.u_bar, Zero<G>());
  Fill(&a.theta_bar, Zero<G>());
  // Last stage first: stage s's input y_s = x + h sum_{j<s} a_sj k_j passes its adjoint on to x
  // and to the earlier stages' outputs.
  for (int s = st.tableau.stages - 1; s >= 0; --s) {
    ClearAdjoints(p, adjoints, &a.adjoints);
    for (int i = 0; i < n; ++i) a.adjoints[p.output + i] = a.k_adjoint[s][i];
    Reverse(p, st.values[s].data(), a.adjoints.data(), adjoints);
    for (int i = 0; i < n; ++i) {
      const G& y_bar = a.adjoints[p.x_position() + i];
      a.x_bar[i] += y_bar;
      for (int j = 0; j < s; ++j) {
        if (st.tableau.a[s][j] != 0.0) a.k_adjoint[j][i] += (st.h * st.tableau.a[s][j]) * y_bar;
      }
    }
    for (int j = 0; j < m; ++j) a.u_bar[j] += a.adjoints[p.u_position() + j];
    if (adjoints == GraphAdjoints::kOfInputs) continue;
    for (int k = 0; k < p.param_dim; ++k) a.theta_bar[k] += a.adjoints[p.theta_position() + k];
  }
}

void GraphEvaluator::IntegrateDirectional(const double* x, const double* u, const double* theta,
                                          TimeStep dt, const double* lambda, const double* dx,
                                          const double* du, GraphAdjoints adjoints) {
  const GraphProgram& p = *program_;
  Stages<Dual1>& st = dual_stages_;
  for (int i = 0; i < p.state_dim; ++i) {
    st.x[i] = Dual1(x[i]);
    st.x[i].d[0] = dx[i];
    st.seed[i] = Dual1(lambda[i]);
  }
  for (int j = 0; j < p.control_dim; ++j) {
    st.u[j] = Dual1(u[j]);
    st.u[j].d[0] = du[j];
  }
  IntegrateForward<Dual1>(theta, dt);
  IntegrateReverse<Dual1>(&dual_stages_, adjoints);
}

void GraphEvaluator::Step(const double* x, const double* u, const double* theta, TimeStep dt,
                          double* x_next) {
  if (dt.integrator == Integrator::kDefault) return Step(x, u, theta, x_next);
  const int n = program_->state_dim, m = program_->control_dim;
  std::copy(x, x + n, stages_.x.begin());
  std::copy(u, u + m, stages_.u.begin());
  IntegrateForward<double>(theta, dt);
  std::copy(stages_.x_next.begin(), stages_.x_next.end(), x_next);
}

void GraphEvaluator::StepWithJacobians(const double* x, const double* u, const double* theta,
                                       TimeStep dt, double* x_next, double* A, double* B) {
  if (dt.integrator == Integrator::kDefault) return StepWithJacobians(x, u, theta, x_next, A, B);
  const int n = program_->state_dim, m = program_->control_dim;
  Step(x, u, theta, dt, x_next);
  // Four rows per pass: lane r of row_stages_ is the pass seeded at row first + r.
  for (int first = 0; first < n; first += kRowsPerSweep) {
    const int rows = std::min(kRowsPerSweep, n - first);
    Fill(&row_stages_.seed, Zero<Double4>());
    for (int r = 0; r < rows; ++r) row_stages_.seed[first + r][r] = 1.0;
    IntegrateReverse<double>(&row_stages_, GraphAdjoints::kOfInputs);
    for (int r = 0; r < rows; ++r) {
      const int row = first + r;
      for (int j = 0; j < n; ++j) A[row * n + j] = row_stages_.x_bar[j][r];
      for (int j = 0; j < m; ++j) B[row * m + j] = row_stages_.u_bar[j][r];
    }
  }
}

void GraphEvaluator::SubtractParamGradient(const double* x, const double* u, const double* theta,
                                           TimeStep dt, const double* mu, const double* lambda,
                                           const double* dx, const double* du, double* grad) {
  if (dt.integrator == Integrator::kDefault) {
    return SubtractParamGradient(x, u, theta, mu, lambda, dx, du, grad);
  }
  const int n = program_->state_dim, m = program_->control_dim, np = program_->param_dim;
  std::copy(x, x + n, stages_.x.begin());
  std::copy(u, u + m, stages_.u.begin());
  IntegrateForward<double>(theta, dt);
  std::copy(mu, mu + n, stages_.seed.begin());
  IntegrateReverse<double>(&stages_, GraphAdjoints::kOfAll);
  for (int k = 0; k < np; ++k) grad[k] -= stages_.theta_bar[k];
  if (lambda == nullptr) return;
  IntegrateDirectional(x, u, theta, dt, lambda, dx, du, GraphAdjoints::kOfAll);
  for (int k = 0; k < np; ++k) grad[k] -= dual_stages_.theta_bar[k].d[0];
}

void GraphEvaluator::LambdaHessian(const double* x, const double* u, const double* theta,
                                   TimeStep dt, const double* lambda, double* H) {
  if (dt.integrator == Integrator::kDefault) return LambdaHessian(x, u, theta, lambda, H);
  const int n = program_->state_dim, m = program_->control_dim, nt = n + m;
  // Column c of H is the derivative of the gradient along tau's unit vector c, which goes in
  // stages_.x and stages_.u (free between integrated steps).
  for (int column = 0; column < nt; ++column) {
    for (int i = 0; i < n; ++i) stages_.x[i] = column == i ? 1.0 : 0.0;
    for (int j = 0; j < m; ++j) stages_.u[j] = column == n + j ? 1.0 : 0.0;
    IntegrateDirectional(x, u, theta, dt, lambda, stages_.x.data(), stages_.u.data(),
                         GraphAdjoints::kOfInputs);
    for (int i = 0; i < n; ++i) H[i * nt + column] = dual_stages_.x_bar[i].d[0];
    for (int j = 0; j < m; ++j) H[(n + j) * nt + column] = dual_stages_.u_bar[j].d[0];
  }
}

void GraphEvaluator::BindParameters(const double* theta) {
  bound_theta_ = theta;
  loaded_theta_ = nullptr;
  dual_loaded_theta_ = nullptr;
  stages_.loaded_theta = nullptr;
  dual_stages_.loaded_theta = nullptr;
}

void GraphEvaluator::UnbindParameters() { bound_theta_ = nullptr; }

void GraphEvaluator::Load(const double* x, const double* u, const double* theta) {
  const GraphProgram& p = *program_;
  for (int i = 0; i < p.state_dim; ++i) values_[p.x_position() + i] = x[i];
  for (int j = 0; j < p.control_dim; ++j) values_[p.u_position() + j] = u[j];
  if (theta != nullptr && theta == bound_theta_ && theta == loaded_theta_) return;
  for (int k = 0; k < p.param_dim; ++k) values_[p.theta_position() + k] = theta[k];
  loaded_theta_ = theta;
}

void GraphEvaluator::LoadDualTheta(const double* theta) {
  if (theta != nullptr && theta == bound_theta_ && theta == dual_loaded_theta_) return;
  const GraphProgram& p = *program_;
  for (int k = 0; k < p.param_dim; ++k) dual_values_[p.theta_position() + k] = Dual1(theta[k]);
  dual_loaded_theta_ = theta;
}

void GraphEvaluator::Step(const double* x, const double* u, const double* theta, double* x_next) {
  if (!program_->elements.empty()) {
    loaded_theta_ = theta;  // GraphTapeStep writes it into values_ too
    return GraphTapeStep(program_->ElementView(), x, u, theta, values_.data(), x_next);
  }
  Load(x, u, theta);
  Values(*program_, values_.data());
  for (int i = 0; i < program_->state_dim; ++i) x_next[i] = values_[program_->output + i];
}

void GraphEvaluator::StepWithJacobians(const double* x, const double* u, const double* theta,
                                       double* x_next, double* A, double* B) {
  const GraphProgram& p = *program_;
  const int n = p.state_dim, m = p.control_dim;
  if (!lanes_.empty()) {
    // The output's lanes are the rows of [A B] (solver/graph/element_sweeps.h).
    if (!p.elements.empty()) {
      loaded_theta_ = theta;  // GraphTapeStepWithJacobians writes it into values_ too
      WithLaneCount(n + m, [&](auto lanes) {
        GraphTapeStepWithJacobians<decltype(lanes)::value>(
            p.ElementView(), x, u, theta, values_.data(), lanes_.data(), x_next, A, B);
      });
      return;
    }
    Load(x, u, theta);
    WithLaneCount(n + m, [&](auto lanes) {
      ForwardTapeLanes<decltype(lanes)::value>(p.tape, values_.data(), n + m, lanes_.data());
    });
    for (int row = 0; row < n; ++row) {
      x_next[row] = values_[p.output + row];
      const double* derivative = lanes_.data() + static_cast<std::size_t>(p.output + row) * (n + m);
      std::copy_n(derivative, n, A + row * n);
      std::copy_n(derivative + n, m, B + row * m);
    }
    return;
  }
  Step(x, u, theta, x_next);
  for (int first = 0; first < n; first += kRowsPerSweep) {
    const int rows = std::min(kRowsPerSweep, n - first);
    ReverseRows(first, rows);
    for (int r = 0; r < rows; ++r) {
      const int row = first + r;
      for (int j = 0; j < n; ++j) A[row * n + j] = row_adjoints_[p.x_position() + j][r];
      for (int j = 0; j < m; ++j) B[row * m + j] = row_adjoints_[p.u_position() + j][r];
    }
  }
}

void GraphEvaluator::ReverseRows(int first, int rows) {
  const GraphProgram& p = *program_;
  ClearAdjoints(p, GraphAdjoints::kOfInputs, &row_adjoints_);
  for (int r = 0; r < rows; ++r) row_adjoints_[p.output + first + r][r] = 1.0;
  Reverse(p, values_.data(), row_adjoints_.data(), GraphAdjoints::kOfInputs);
}

void GraphEvaluator::ParamVjp(const double* x, const double* u, const double* theta,
                              const double* lambda, double* g) {
  const GraphProgram& p = *program_;
  Load(x, u, theta);
  Values(p, values_.data());
  Fill(&adjoints_, 0.0);
  for (int i = 0; i < p.output_dim; ++i) adjoints_[p.output + i] = lambda[i];
  Reverse(p, values_.data(), adjoints_.data(), GraphAdjoints::kOfAll);
  for (int k = 0; k < p.param_dim; ++k) g[k] = adjoints_[p.theta_position() + k];
}

void GraphEvaluator::MixedDirectional(const double* x, const double* u, const double* theta,
                                      const double* lambda, const double* dx, const double* du,
                                      double* g) {
  const GraphProgram& p = *program_;
  for (int i = 0; i < p.state_dim; ++i) {
    dual_values_[p.x_position() + i] = Dual1(x[i]);
    dual_values_[p.x_position() + i].d[0] = dx[i];
  }
  for (int j = 0; j < p.control_dim; ++j) {
    dual_values_[p.u_position() + j] = Dual1(u[j]);
    dual_values_[p.u_position() + j].d[0] = du[j];
  }
  LoadDualTheta(theta);
  Values(p, dual_values_.data());
  Fill(&dual_adjoints_, Dual1(0.0));
  for (int i = 0; i < p.output_dim; ++i) dual_adjoints_[p.output + i] = Dual1(lambda[i]);
  Reverse(p, dual_values_.data(), dual_adjoints_.data(), GraphAdjoints::kOfAll);
  for (int k = 0; k < p.param_dim; ++k) g[k] = dual_adjoints_[p.theta_position() + k].d[0];
}

void GraphEvaluator::SubtractParamGradient(const double* x, const double* u, const double* theta,
                                           const double* mu, const double* lambda, const double* dx,
                                           const double* du, double* grad) {
  const int p = program_->param_dim;
  ParamVjp(x, u, theta, mu, param_scratch_.data());
  for (int k = 0; k < p; ++k) grad[k] -= param_scratch_[k];
  if (lambda == nullptr) return;
  MixedDirectional(x, u, theta, lambda, dx, du, param_scratch_.data());
  for (int k = 0; k < p; ++k) grad[k] -= param_scratch_[k];
}

void GraphEvaluator::LambdaHessian(const double* x, const double* u, const double* theta,
                                   const double* lambda, double* H) {
  const GraphProgram& p = *program_;
  const int n = p.state_dim, m = p.control_dim, nt = n + m;
  LoadDualTheta(theta);
  for (int column = 0; column < nt; ++column) {
    for (int i = 0; i < n; ++i) {
      dual_values_[p.x_position() + i] = Dual1::Variable(x[i], 0);
      dual_values_[p.x_position() + i].d[0] = column == i ? 1.0 : 0.0;
    }
    for (int j = 0; j < m; ++j) {
      dual_values_[p.u_position() + j] = Dual1(u[j]);
      dual_values_[p.u_position() + j].d[0] = column == n + j ? 1.0 : 0.0;
    }
    Values(p, dual_values_.data());
    ClearAdjoints(p, GraphAdjoints::kOfInputs, &dual_adjoints_);
    for (int i = 0; i < p.output_dim; ++i) dual_adjoints_[p.output + i] = Dual1(lambda[i]);
    Reverse(p, dual_values_.data(), dual_adjoints_.data(), GraphAdjoints::kOfInputs);
    for (int i = 0; i < nt; ++i) H[i * nt + column] = dual_adjoints_[i].d[0];
  }
}

const double* GraphEvaluator::Tau(const double* x, const double* u, int n) {
  const int nt = program_->state_dim;
  std::copy(x, x + n, tau_.begin());
  std::copy(u, u + (nt - n), tau_.begin() + n);
  return tau_.data();
}

double GraphEvaluator::Cost(const double* x, const double* u, int n, const double* theta) {
  Load(Tau(x, u, n), nullptr, theta);
  Values(*program_, values_.data());
  return values_[program_->output];
}

void GraphEvaluator::CostDerivatives(const double* x, const double* u, int n, const double* theta,
                                     double* g, double* H) {
  const int nt = program_->state_dim;
  const double one = 1.0;
  LambdaHessian(Tau(x, u, n), nullptr, theta, &one, H);
  // Every sweep's adjoint values are the gradient.
  for (int i = 0; i < nt; ++i) g[i] = dual_adjoints_[program_->x_position() + i].v;
  for (int i = 0; i < nt; ++i) {
    for (int j = 0; j < i; ++j) {
      const double mean = 0.5 * (H[i * nt + j] + H[j * nt + i]);
      H[i * nt + j] = mean;
      H[j * nt + i] = mean;
    }
  }
}

bool GraphEvaluator::QuadratiseCost(const double* x, const double* u, int n, const double* theta,
                                    double* C, double* c, bool project) {
  const int nt = program_->state_dim;
  CostDerivatives(x, u, n, theta, c, C);
  bool projected = false;
  if (project) {
    const Eigen::Map<Eigen::MatrixXd> H(C, nt, nt);
    hessian_ = H;
    eigen_.compute(hessian_);
    projected = eigen_.info() != Eigen::Success || eigen_.eigenvalues().minCoeff() < 0.0;
    if (projected) {
      if (eigen_.info() != Eigen::Success) {
        // Not finite: leave H as it is, the backward pass reports the problem NOT_FINITE.
        return false;
      }
      const Eigen::VectorXd clipped = eigen_.eigenvalues().cwiseMax(0.0);
      Eigen::Map<Eigen::MatrixXd>(C, nt, nt).noalias() =
          eigen_.eigenvectors() * clipped.asDiagonal() * eigen_.eigenvectors().transpose();
    }
  }
  // c = g - C tau (tau_ still holds [x; u]).
  for (int i = 0; i < nt; ++i) {
    double s = 0.0;
    for (int j = 0; j < nt; ++j) s += C[i * nt + j] * tau_[j];
    c[i] -= s;
  }
  return projected;
}

void GraphEvaluator::SubtractCostParamGradient(const double* x, const double* u, int n,
                                               const double* theta, const double* dx,
                                               const double* du, double* grad) {
  const int nt = program_->state_dim;
  std::copy(dx, dx + n, dtau_.begin());
  std::copy(du, du + (nt - n), dtau_.begin() + n);
  const double one = 1.0;
  MixedDirectional(Tau(x, u, n), nullptr, theta, &one, dtau_.data(), nullptr,
                   param_scratch_.data());
  for (int k = 0; k < program_->param_dim; ++k) grad[k] -= param_scratch_[k];
}

double GraphEvaluator::ConstraintRow(const double* x, const double* u, const double* theta,
                                     int row) {
  const GraphProgram& p = *program_;
  const auto fresh = [&](const double* from, int count, int offset) {
    return std::equal(from, from + count, rows_at_.begin() + offset);
  };
  const int n = p.state_dim, m = p.control_dim;
  if (!rows_valid_ || !fresh(x, n, 0) || !fresh(u, m, n) || !fresh(theta, p.param_dim, n + m)) {
    std::copy(x, x + n, rows_at_.begin());
    std::copy(u, u + m, rows_at_.begin() + n);
    std::copy(theta, theta + p.param_dim, rows_at_.begin() + n + m);
    Load(x, u, theta);
    Values(p, values_.data());
    std::copy(values_.begin() + p.output, values_.begin() + p.output + p.output_dim, rows_.begin());
    rows_valid_ = true;
  }
  return rows_[static_cast<std::size_t>(row)];
}

void GraphEvaluator::LinearizeConstraints(const double* x, const double* u, const double* theta,
                                          int width, double* G, double* h) {
  const GraphProgram& p = *program_;
  const int n = p.state_dim, m = p.control_dim;
  Load(x, u, theta);
  Values(p, values_.data());
  for (int first = 0; first < p.output_dim; first += kRowsPerSweep) {
    const int rows = std::min(kRowsPerSweep, p.output_dim - first);
    ReverseRows(first, rows);
    for (int r = 0; r < rows; ++r) {
      const int row = first + r;
      const double g = values_[p.output + row];
      double* G_row = G + static_cast<std::ptrdiff_t>(row) * width;
      std::fill(G_row + n + m, G_row + width, 0.0);  // the controls of a graph of x alone
      double s = 0.0;
      for (int j = 0; j < n; ++j) {
        G_row[j] = row_adjoints_[p.x_position() + j][r];
        s += G_row[j] * x[j];
      }
      for (int j = 0; j < m; ++j) {
        G_row[n + j] = row_adjoints_[p.u_position() + j][r];
        s += G_row[n + j] * u[j];
      }
      h[row] = s - g;
    }
  }
}

void GraphEvaluator::AddConstraintParamGradient(const double* x, const double* u,
                                                const double* theta, int width,
                                                const double* grad_G, const double* grad_h,
                                                double* grad) {
  const GraphProgram& p = *program_;
  const int n = p.state_dim, m = p.control_dim, k = p.output_dim;
  // dG_r/dtheta . grad_G_r + dh_r/dtheta grad_h_r with h_r = G_r tau - g_r: the mixed second
  // derivative of g_r along grad_G_r + grad_h_r tau, less grad_h_r dg_r/dtheta.
  for (int r = 0; r < k; ++r) {
    std::fill(row_seed_.begin(), row_seed_.end(), 0.0);
    row_seed_[static_cast<std::size_t>(r)] = 1.0;
    const double* gG = grad_G + static_cast<std::ptrdiff_t>(r) * width;
    for (int j = 0; j < n; ++j) dtau_[j] = gG[j] + grad_h[r] * x[j];
    for (int j = 0; j < m; ++j) dtau_[n + j] = gG[n + j] + grad_h[r] * u[j];
    MixedDirectional(x, u, theta, row_seed_.data(), dtau_.data(), dtau_.data() + n,
                     param_scratch_.data());
    for (int q = 0; q < p.param_dim; ++q) grad[q] += param_scratch_[q];
  }
  ParamVjp(x, u, theta, grad_h, param_scratch_.data());
  for (int q = 0; q < p.param_dim; ++q) grad[q] -= param_scratch_[q];
}

void GraphEvaluator::ConstraintCurvature(const double* x, const double* u, const double* theta,
                                         const double* nu, int width, double* H) {
  const GraphProgram& p = *program_;
  const int nt = p.state_dim + p.control_dim;
  LambdaHessian(x, u, theta, nu, curvature_.data());
  std::fill(H, H + static_cast<std::ptrdiff_t>(width) * width, 0.0);
  for (int i = 0; i < nt; ++i) {
    for (int j = 0; j < nt; ++j) {
      H[i * width + j] = 0.5 * (curvature_[i * nt + j] + curvature_[j * nt + i]);
    }
  }
}

}  // namespace mpc
