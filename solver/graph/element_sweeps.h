#ifndef MPC_SOLVER_GRAPH_ELEMENT_SWEEPS_H_
#define MPC_SOLVER_GRAPH_ELEMENT_SWEEPS_H_

// A graph's element records (FlattenToElements, solver/graph/graph_program.h) and the sweeps that
// run them: the values, and the values with the n+m tangents of the forward Jacobian sweep beside
// them. Written once for the host and the device: plain types and MPC_HOST_DEVICE functions only
// (no std containers, Eigen or Abseil), so nvcc compiles what the host's GraphEvaluator runs. The
// elementary functions and each op's local derivatives (Unary, UnarySlope, Binary,
// AccumulateBinaryAdjoints) are here too; the host's tape sweeps use the same ones.

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "solver/dual.h"
#include "solver/host_device.h"

namespace mpc {

// The primitive instructions every supported ONNX op lowers to.
enum class GraphOp : std::uint8_t {
  // out[i] = sum of buffer[source[k]] for k in [start[i], start[i + 1]): every structural op
  // (Concat, Slice, Gather, Split, Squeeze, Unsqueeze, Reshape, Flatten, Transpose, Identity,
  // Where with a constant condition, Cast), broadcasting, and ReduceSum.
  kGather,
  // Binary elementwise: out[i] = op(buffer[a[i]], buffer[b[i]]) (numpy broadcasting resolved
  // into a and b).
  kAdd,
  kSub,
  kMul,
  kDiv,
  kPow,
  kMin,
  kMax,
  // Unary elementwise: out[i] = op(buffer[input + i]); alpha, beta as noted.
  kNeg,
  kSqrt,
  kExp,
  kLog,
  kAbs,
  kSin,
  kCos,
  kTan,
  kAtan,
  kTanh,
  kSigmoid,
  kRelu,
  kLeakyRelu,  // alpha: the slope below 0
  kElu,        // alpha
  kSoftplus,
  kClip,          // alpha = lower, beta = upper
  kRoundToFloat,  // Cast to float32: the value rounded to float, derivative 1
  // out[o + i * cols + j] = sum_k buffer[a + i * a_row + k * a_col] *
  //                             buffer[b + k * b_row + j * b_col], for every (a, b, o) of a batch.
  kMatMul,
};

// A tape without matrix products flattened to one record per output element (FlattenToElements):
// what the value sweep and the forward Jacobian sweep run, so that the interpreter's work per
// element is one small record and one switch (the instructions' operand vectors and the nested
// dispatch cost the cartpole graph's scalar tape more than its arithmetic). A gather element is
// its sources' sum in order: kGatherFirst out = 0 + v[a], then kGatherNext out = out + v[a] per
// further source (kGatherZero: out = 0, none), so the same sums as the instruction's, bit for bit.
// Add, Sub and Mul have codes of their own; the other binary and the unary ops go by `op`.
enum class ElementCode : std::uint8_t {
  kGatherZero,
  kGatherFirst,
  kGatherNext,
  kAdd,
  kSub,
  kMul,
  kBinary,
  kUnary,
};

struct ElementInstruction {
  ElementCode code = ElementCode::kGatherZero;
  GraphOp op = GraphOp::kGather;  // the instruction's op
  // The instruction's activity flags (GraphInstruction), for the Jacobian sweep.
  bool active = true;
  bool a_active = true, b_active = true;
  int out = 0;
  int a = 0, b = 0;  // operand positions (a: the unary input, the gather's source)
  double alpha = 0.0, beta = 0.0;
};

// What the element sweeps need of a GraphProgram, as plain pointers and sizes (host or device
// memory alike): the records, the buffer's initial contents (constants in place, zeros elsewhere)
// and its layout (x at x_position, u at u_position, theta at theta_position, the output's
// state_dim elements at output).
struct GraphTapeView {
  const ElementInstruction* elements = nullptr;
  int element_count = 0;
  const double* initial_buffer = nullptr;
  int buffer_size = 0;
  int state_dim = 0;
  int control_dim = 0;
  int param_dim = 0;
  int output = 0;
  int x_position = 0;
  int u_position = 0;
  int theta_position = 0;
};

namespace graph_sweep {

// The elementary functions over double and over dual numbers (one tangent is all the second
// derivatives here need), so that one forward and one reverse sweep serve both.
using Dual1 = Dual<double, 1>;

MPC_HOST_DEVICE inline double Value(double a) { return a; }
MPC_HOST_DEVICE inline double Value(const Dual1& a) { return a.v; }

MPC_HOST_DEVICE inline double Exp(double a) { return std::exp(a); }
MPC_HOST_DEVICE inline double Log(double a) { return std::log(a); }
MPC_HOST_DEVICE inline double Sqrt(double a) { return std::sqrt(a); }
MPC_HOST_DEVICE inline double Sin(double a) { return std::sin(a); }
MPC_HOST_DEVICE inline double Cos(double a) { return std::cos(a); }
MPC_HOST_DEVICE inline double Tan(double a) { return std::tan(a); }
MPC_HOST_DEVICE inline double Atan(double a) { return std::atan(a); }
MPC_HOST_DEVICE inline double Tanh(double a) { return std::tanh(a); }
MPC_HOST_DEVICE inline double Pow(double a, double b) { return std::pow(a, b); }

MPC_HOST_DEVICE inline Dual1 Exp(const Dual1& a) {
  const double e = std::exp(a.v);
  return Chain(a, e, e);
}
MPC_HOST_DEVICE inline Dual1 Log(const Dual1& a) { return Chain(a, std::log(a.v), 1.0 / a.v); }
MPC_HOST_DEVICE inline Dual1 Sqrt(const Dual1& a) {
  const double r = std::sqrt(a.v);
  return Chain(a, r, 0.5 / r);
}
MPC_HOST_DEVICE inline Dual1 Sin(const Dual1& a) { return Chain(a, std::sin(a.v), std::cos(a.v)); }
MPC_HOST_DEVICE inline Dual1 Cos(const Dual1& a) { return Chain(a, std::cos(a.v), -std::sin(a.v)); }
MPC_HOST_DEVICE inline Dual1 Tan(const Dual1& a) {
  const double t = std::tan(a.v);
  return Chain(a, t, 1.0 + t * t);
}
MPC_HOST_DEVICE inline Dual1 Atan(const Dual1& a) {
  return Chain(a, std::atan(a.v), 1.0 / (1.0 + a.v * a.v));
}
MPC_HOST_DEVICE inline Dual1 Tanh(const Dual1& a) {
  const double t = std::tanh(a.v);
  return Chain(a, t, 1.0 - t * t);
}
// a^b, differentiated in b only where b varies: log(a) is NaN for a negative base, which an
// integer power of it (x ** 2) must not see.
MPC_HOST_DEVICE inline Dual1 Pow(const Dual1& a, const Dual1& b) {
  const double y = std::pow(a.v, b.v);
  Dual1 r(y);
  r.d[0] = a.d[0] == 0.0 ? 0.0 : b.v * std::pow(a.v, b.v - 1.0) * a.d[0];
  if (b.d[0] != 0.0) r.d[0] += y * std::log(a.v) * b.d[0];
  return r;
}

template <typename S>
MPC_HOST_DEVICE inline S Sigmoid(const S& a) {
  // exp of a negative argument only: no overflow for either sign.
  if (Value(a) >= 0) return S(1.0) / (S(1.0) + Exp(-a));
  const S e = Exp(a);
  return e / (S(1.0) + e);
}

// log(1 + exp(a)), as torch's softplus (beta 1) computes it for large a.
template <typename S>
MPC_HOST_DEVICE inline S Softplus(const S& a) {
  if (Value(a) > 20.0) return a;
  return Log(S(1.0) + Exp(a));
}

// Instruction: a GraphInstruction or an ElementInstruction (op, alpha, beta).
template <class Instruction, typename S>
MPC_HOST_DEVICE MPC_FORCE_INLINE S Unary(const Instruction& in, const S& a) {
  switch (in.op) {
    case GraphOp::kNeg:
      return -a;
    case GraphOp::kSqrt:
      return Sqrt(a);
    case GraphOp::kExp:
      return Exp(a);
    case GraphOp::kLog:
      return Log(a);
    case GraphOp::kAbs:
      return Value(a) < 0 ? -a : a;
    case GraphOp::kSin:
      return Sin(a);
    case GraphOp::kCos:
      return Cos(a);
    case GraphOp::kTan:
      return Tan(a);
    case GraphOp::kAtan:
      return Atan(a);
    case GraphOp::kTanh:
      return Tanh(a);
    case GraphOp::kSigmoid:
      return Sigmoid(a);
    case GraphOp::kRelu:
      return Value(a) > 0 ? a : S(0.0);
    case GraphOp::kLeakyRelu:
      return Value(a) > 0 ? a : a * in.alpha;
    case GraphOp::kElu:
      return Value(a) > 0 ? a : (Exp(a) - 1.0) * in.alpha;
    case GraphOp::kSoftplus:
      return Softplus(a);
    case GraphOp::kClip:
      if (Value(a) < in.alpha) return S(in.alpha);
      if (Value(a) > in.beta) return S(in.beta);
      return a;
    case GraphOp::kRoundToFloat:
      return a + (static_cast<double>(static_cast<float>(Value(a))) - Value(a));
    default:
      return a;  // not a unary op (never reached: the sweeps dispatch by kind)
  }
}

// d op(a) / d a, given a and y = op(a), as an S (so a dual sweep differentiates it too). Inlined
// in every sweep (called per element, it cost the MLP's solve 3%).
template <class Instruction, typename S>
MPC_HOST_DEVICE MPC_FORCE_INLINE S UnarySlope(const Instruction& in, const S& a, const S& y) {
  switch (in.op) {
    case GraphOp::kNeg:
      return S(-1.0);
    case GraphOp::kSqrt:
      return 0.5 / y;
    case GraphOp::kExp:
      return y;
    case GraphOp::kLog:
      return 1.0 / a;
    case GraphOp::kAbs:
      return S(Value(a) < 0 ? -1.0 : (Value(a) > 0 ? 1.0 : 0.0));
    case GraphOp::kSin:
      return Cos(a);
    case GraphOp::kCos:
      return -Sin(a);
    case GraphOp::kTan:
      return 1.0 + y * y;
    case GraphOp::kAtan:
      return 1.0 / (1.0 + a * a);
    case GraphOp::kTanh:
      return 1.0 - y * y;
    case GraphOp::kSigmoid:
      return y * (1.0 - y);
    case GraphOp::kRelu:
      return S(Value(a) > 0 ? 1.0 : 0.0);
    case GraphOp::kLeakyRelu:
      return S(Value(a) > 0 ? 1.0 : in.alpha);
    case GraphOp::kElu:
      return Value(a) > 0 ? S(1.0) : y + in.alpha;
    case GraphOp::kSoftplus:
      return Value(a) > 20.0 ? S(1.0) : Sigmoid(a);
    case GraphOp::kClip:
      // torch.clamp's derivative: 1 on the closed interval.
      return S(Value(a) >= in.alpha && Value(a) <= in.beta ? 1.0 : 0.0);
    case GraphOp::kRoundToFloat:
      return S(1.0);
    default:
      return S(0.0);
  }
}

// Inlined into the sweeps (a call per element cost the cartpole graph's solve 16%).
template <typename S>
MPC_HOST_DEVICE MPC_FORCE_INLINE S Binary(GraphOp op, const S& a, const S& b) {
  switch (op) {
    case GraphOp::kAdd:
      return a + b;
    case GraphOp::kSub:
      return a - b;
    case GraphOp::kMul:
      return a * b;
    case GraphOp::kDiv:
      return a / b;
    case GraphOp::kPow:
      return Pow(a, b);
    case GraphOp::kMin:
      return Value(b) < Value(a) ? b : a;
    case GraphOp::kMax:
      return Value(a) < Value(b) ? b : a;
    default:
      return a;
  }
}

MPC_HOST_DEVICE constexpr bool IsBinary(GraphOp op) {
  return op >= GraphOp::kAdd && op <= GraphOp::kMax;
}

// ga += gy d op(a, b)/da and gb += gy d op(a, b)/db (each where asked: to_a, to_b) for a binary
// instruction at (a, b) with y = op(a, b): a reverse sweep's step, and on zeros with gy = 1 the
// partials a forward sweep applies to its tangents. G, the adjoints' type, is S or several
// adjoints of the same values at once (the host's four-row sweeps: each lane as alone).
template <typename S, typename G = S>
MPC_HOST_DEVICE MPC_FORCE_INLINE void AccumulateBinaryAdjoints(GraphOp op, const S& a, const S& b,
                                                               const S& y, const G& gy, bool to_a,
                                                               bool to_b, G& ga, G& gb) {
  switch (op) {
    case GraphOp::kAdd:
      if (to_a) ga += gy;
      if (to_b) gb += gy;
      break;
    case GraphOp::kSub:
      if (to_a) ga += gy;
      if (to_b) gb -= gy;
      break;
    case GraphOp::kMul:
      if (to_a) ga += gy * b;
      if (to_b) gb += gy * a;
      break;
    case GraphOp::kDiv:
      if (to_a) ga += gy / b;
      if (to_b) gb -= gy * y / b;
      break;
    case GraphOp::kPow:
      if (to_a) ga += gy * b * Pow(a, b - 1.0);
      // log(a) only where a > 0: a negative base has no derivative in the exponent.
      if (to_b && Value(a) > 0) gb += gy * y * Log(a);
      break;
    case GraphOp::kMin:
      (Value(b) < Value(a) ? gb : ga) += gy;
      break;
    case GraphOp::kMax:
      (Value(a) < Value(b) ? gb : ga) += gy;
      break;
    default:
      break;
  }
}

// to = da ta + db tb over the lanes, each term only where its operand is active (a binary
// instruction's tangents).
MPC_HOST_DEVICE MPC_FORCE_INLINE void AddLanes(bool a_active, bool b_active, double da, double db,
                                               const double* ta, const double* tb, int lanes,
                                               double* to) {
  if (!b_active) {
    for (int l = 0; l < lanes; ++l) to[l] = da * ta[l];
  } else if (!a_active) {
    for (int l = 0; l < lanes; ++l) to[l] = db * tb[l];
  } else {
    for (int l = 0; l < lanes; ++l) to[l] = da * ta[l] + db * tb[l];
  }
}

// Element e's value (FlattenToElements): the instruction's operation on its element, so the same
// bits as Forward.
template <typename S>
MPC_HOST_DEVICE MPC_FORCE_INLINE void ForwardElement(const ElementInstruction& e, S* v) {
  S& out = v[e.out];
  switch (e.code) {
    case ElementCode::kGatherZero:
      out = S(0.0);
      break;
    case ElementCode::kGatherFirst:
      out = S(0.0) + v[e.a];
      break;
    case ElementCode::kGatherNext:
      out = out + v[e.a];
      break;
    case ElementCode::kAdd:
      out = v[e.a] + v[e.b];
      break;
    case ElementCode::kSub:
      out = v[e.a] - v[e.b];
      break;
    case ElementCode::kMul:
      out = v[e.a] * v[e.b];
      break;
    case ElementCode::kBinary:
      out = Binary(e.op, v[e.a], v[e.b]);
      break;
    case ElementCode::kUnary:
      out = Unary(e, v[e.a]);
      break;
  }
}

// ForwardTapeLanes over a program's elements (FlattenToElements): each element's value, then its
// tangents from the same local derivatives in the same order, so the same bits.
template <int kLanes>
MPC_HOST_DEVICE void ForwardElementLanes(const ElementInstruction* elements, int count, double* v,
                                         int run_time_lanes, double* t) {
  const int lanes = kLanes > 0 ? kLanes : run_time_lanes;
  const auto lanes_of = [&](int position) {
    return t + static_cast<std::size_t>(position) * lanes;
  };
  for (int k = 0; k < count; ++k) {
    const ElementInstruction& e = elements[k];
    ForwardElement(e, v);
    if (!e.active) continue;
    double* to = lanes_of(e.out);
    const double* ta = lanes_of(e.a);
    const double* tb = lanes_of(e.b);
    // Add, Sub, Mul: AccumulateBinaryAdjoints' partials with gy = 1 (1 and -1 exactly; 0 + b),
    // written out so that the lanes need no second dispatch.
    switch (e.code) {
      case ElementCode::kGatherZero:
        for (int l = 0; l < lanes; ++l) to[l] = 0.0;
        break;
      case ElementCode::kGatherFirst:
        for (int l = 0; l < lanes; ++l) to[l] = 0.0 + ta[l];
        break;
      case ElementCode::kGatherNext:
        for (int l = 0; l < lanes; ++l) to[l] += ta[l];
        break;
      case ElementCode::kAdd:
        AddLanes(e.a_active, e.b_active, 1.0, 1.0, ta, tb, lanes, to);
        break;
      case ElementCode::kSub:
        AddLanes(e.a_active, e.b_active, 1.0, -1.0, ta, tb, lanes, to);
        break;
      case ElementCode::kMul:
        AddLanes(e.a_active, e.b_active, 0.0 + v[e.b], 0.0 + v[e.a], ta, tb, lanes, to);
        break;
      case ElementCode::kBinary: {
        double da = 0.0, db = 0.0;
        AccumulateBinaryAdjoints(e.op, v[e.a], v[e.b], v[e.out], 1.0, true, true, da, db);
        AddLanes(e.a_active, e.b_active, da, db, ta, tb, lanes, to);
        break;
      }
      case ElementCode::kUnary: {
        const double slope = UnarySlope(e, v[e.a], v[e.out]);
        for (int l = 0; l < lanes; ++l) to[l] = slope * ta[l];
        break;
      }
    }
  }
}

// The values of the element records [elements, elements + count) over the buffer v.
template <typename S>
MPC_HOST_DEVICE void ElementValues(const ElementInstruction* elements, int count, S* v) {
  for (int k = 0; k < count; ++k) ForwardElement(elements[k], v);
}

}  // namespace graph_sweep

// The most tangent lanes a caller runs as a compile-time count (GraphTapeStepWithJacobians<kLanes>:
// the lane loops unroll); more run with the count at run time.
constexpr int kMaxFixedGraphLanes = 16;

// One evaluation's buffers for a GraphTapeView: the values (buffer_size) and, for the Jacobians,
// the tangents (buffer_size * (n+m), lane e of position q at lanes[q * (n+m) + e]). Prepare them
// once (PrepareGraphTapeBuffers); every step then overwrites what it reads.

// values = the initial buffer; lanes (when not null) zero but for x's and u's own: lane e of tau =
// [x; u] (positions x_position .. x_position + n+m-1) is d/dtau_e. Every other position's lanes
// are its record's, or stay zero (theta, constants, inactive positions).
MPC_HOST_DEVICE inline void PrepareGraphTapeBuffers(const GraphTapeView& view, double* values,
                                                    double* lanes) {
  for (int q = 0; q < view.buffer_size; ++q) values[q] = view.initial_buffer[q];
  if (lanes == nullptr) return;
  const int tau_dim = view.state_dim + view.control_dim;
  const std::size_t count = static_cast<std::size_t>(view.buffer_size) * tau_dim;
  for (std::size_t q = 0; q < count; ++q) lanes[q] = 0.0;
  for (int e = 0; e < tau_dim; ++e) {
    lanes[static_cast<std::size_t>(view.x_position + e) * tau_dim + e] = 1.0;
  }
}

// x, u and theta into their places in values.
MPC_HOST_DEVICE inline void LoadGraphTapeInputs(const GraphTapeView& view, const double* x,
                                                const double* u, const double* theta,
                                                double* values) {
  for (int i = 0; i < view.state_dim; ++i) values[view.x_position + i] = x[i];
  for (int j = 0; j < view.control_dim; ++j) values[view.u_position + j] = u[j];
  for (int k = 0; k < view.param_dim; ++k) values[view.theta_position + k] = theta[k];
}

// x_next (n) = f(x, u; theta): one value sweep.
MPC_HOST_DEVICE inline void GraphTapeStep(const GraphTapeView& view, const double* x,
                                          const double* u, const double* theta, double* values,
                                          double* x_next) {
  LoadGraphTapeInputs(view, x, u, theta, values);
  graph_sweep::ElementValues(view.elements, view.element_count, values);
  for (int i = 0; i < view.state_dim; ++i) x_next[i] = values[view.output + i];
}

// x_next and the Jacobians A = df/dx (n, n) and B = df/du (n, m), row-major: one forward sweep
// with the n+m tangents (kLanes of them when kLanes > 0, the lane loops then unrolled; else
// n+m at run time), the output's lanes being the rows of [A B].
template <int kLanes>
MPC_HOST_DEVICE void GraphTapeStepWithJacobians(const GraphTapeView& view, const double* x,
                                                const double* u, const double* theta,
                                                double* values, double* lanes, double* x_next,
                                                double* A, double* B) {
  const int n = view.state_dim, m = view.control_dim;
  LoadGraphTapeInputs(view, x, u, theta, values);
  graph_sweep::ForwardElementLanes<kLanes>(view.elements, view.element_count, values, n + m, lanes);
  for (int row = 0; row < n; ++row) {
    x_next[row] = values[view.output + row];
    const double* derivative = lanes + static_cast<std::size_t>(view.output + row) * (n + m);
    for (int j = 0; j < n; ++j) A[row * n + j] = derivative[j];
    for (int j = 0; j < m; ++j) B[row * m + j] = derivative[n + j];
  }
}

}  // namespace mpc

#endif  // MPC_SOLVER_GRAPH_ELEMENT_SWEEPS_H_
