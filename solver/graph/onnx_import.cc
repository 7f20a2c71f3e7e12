#include "solver/graph/onnx_import.h"

#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "onnx/checker.h"
#include "onnx/onnx_pb.h"
#include "solver/status_macros.h"

namespace mpc {
namespace {

using Shape = std::vector<std::int64_t>;

constexpr const char* kSupportedOps[] = {
    "Abs",     "Add",   "Cast",    "Clip",   "Concat", "Constant",  "Cos",       "Div",
    "Elu",     "Exp",   "Flatten", "Gather", "Gemm",   "Identity",  "LeakyRelu", "Log",
    "MatMul",  "Max",   "Min",     "Mul",    "Neg",    "Pow",       "ReduceSum", "Relu",
    "Reshape", "Shape", "Sigmoid", "Sin",    "Slice",  "Softplus",  "Split",     "Sqrt",
    "Squeeze", "Sub",   "Tan",     "Atan",   "Tanh",   "Transpose", "Unsqueeze", "Where",
};

bool IsSupportedOp(const std::string& op) {
  for (const char* name : kSupportedOps) {
    if (op == name) return true;
  }
  return false;
}

// a * b, saturated at the largest int64 (dimensions come from the bytes of a request).
std::int64_t SaturatingProduct(std::int64_t a, std::int64_t b) {
  std::int64_t product;
  if (__builtin_mul_overflow(a, b, &product)) return std::numeric_limits<std::int64_t>::max();
  return product;
}

// The number of elements (saturated).
std::int64_t Count(const Shape& shape) {
  std::int64_t count = 1;
  for (std::int64_t d : shape) count = SaturatingProduct(count, d);
  return count;
}

// The elements the shape would have with every empty dimension counted as 1 (saturated): what
// bounds its strides, indices and every table built over it or over a broadcast against it, even
// when it holds no element at all.
std::int64_t Extent(const Shape& shape) {
  std::int64_t extent = 1;
  for (std::int64_t d : shape) extent = SaturatingProduct(extent, std::max<std::int64_t>(d, 1));
  return extent;
}

std::string ShapeString(const Shape& shape) {
  return absl::StrCat("(", absl::StrJoin(shape, ","), ")");
}

// Every shape the compiler holds has non-negative dimensions and an extent within the limit on
// elements, so no count, stride or position table overflows or outgrows the limit.
absl::Status CheckExtent(const Shape& shape, long long max_elements) {
  for (std::int64_t d : shape) {
    if (d < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("shape ", ShapeString(shape), " has a negative dimension"));
    }
  }
  if (Extent(shape) > max_elements) {
    return absl::InvalidArgumentError(absl::StrCat("shape ", ShapeString(shape),
                                                   " exceeds the limit of ", max_elements,
                                                   " elements (empty dimensions counted as 1)"));
  }
  return absl::OkStatus();
}

// Row-major strides of `shape`.
Shape Strides(const Shape& shape) {
  Shape strides(shape.size(), 1);
  for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i) {
    strides[i] = strides[i + 1] * shape[i + 1];
  }
  return strides;
}

// Calls fn(flat index, multi-index) for every element of `shape` in row-major order.
template <class Fn>
void ForEachIndex(const Shape& shape, Fn&& fn) {
  const std::int64_t count = Count(shape);
  Shape index(shape.size(), 0);
  for (std::int64_t flat = 0; flat < count; ++flat) {
    fn(flat, index);
    for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
  }
}

// A double that holds an ONNX integer (shapes, axes, indices) as an index, saturated; NaN (a
// float where an integer belongs) as the largest, which every range check then refuses.
std::int64_t ToIndex(double v) {
  if (std::isnan(v) || v >= 9.2e18) return std::numeric_limits<std::int64_t>::max() / 4;
  if (v <= -9.2e18) return std::numeric_limits<std::int64_t>::min() / 4;
  return static_cast<std::int64_t>(v);
}

enum class ElementKind { kFloat, kInteger, kBool };

// A tensor of the graph while it compiles: a constant (its values known: folded at compile time)
// or a variable (it depends on x, u or theta) at a position of the buffer.
struct Value {
  Shape shape;
  ElementKind kind = ElementKind::kFloat;
  bool constant = false;
  std::vector<double> data;  // constants
  int position = -1;         // variables, and constants once placed in the buffer
};

// What an instruction reads: a tensor placed in the buffer.
struct Operand {
  Shape shape;
  int position = 0;
};

// The buffer and tape being built (the program's, or a scratch one that folds a constant node).
class Builder {
 public:
  explicit Builder(long long max_elements) : max_elements_(max_elements) {}

  absl::StatusOr<int> Allocate(std::int64_t size) {
    // Positions are ints, whatever the configured limit.
    const long long limit = std::min<long long>(max_elements_, std::numeric_limits<int>::max());
    if (static_cast<long long>(buffer_.size()) + size > limit) {
      return absl::InvalidArgumentError(
          absl::StrCat("the graph needs more than ", max_elements_,
                       " scalars to evaluate (the limit on graph elements)"));
    }
    const int position = static_cast<int>(buffer_.size());
    buffer_.resize(buffer_.size() + static_cast<std::size_t>(size), 0.0);
    return position;
  }

  // Places a constant in the buffer (once).
  absl::StatusOr<Operand> Place(Value* value) {
    if (value->position < 0) {
      MPC_ASSIGN_OR_RETURN(value->position, Allocate(Count(value->shape)));
      std::copy(value->data.begin(), value->data.end(), buffer_.begin() + value->position);
    }
    return Operand{value->shape, value->position};
  }

  std::vector<double>& buffer() { return buffer_; }
  std::vector<GraphInstruction>& tape() { return tape_; }
  long long max_elements() const { return max_elements_; }

 private:
  long long max_elements_;
  std::vector<double> buffer_;
  std::vector<GraphInstruction> tape_;
};

absl::Status NodeError(int index, const onnx::NodeProto& node, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("node ", index, " '", node.name(), "' (op ", node.op_type(), "): ", what));
}

const onnx::AttributeProto* FindAttribute(const onnx::NodeProto& node, std::string_view name) {
  for (const onnx::AttributeProto& a : node.attribute()) {
    if (a.name() == name) return &a;
  }
  return nullptr;
}
std::int64_t IntAttribute(const onnx::NodeProto& node, std::string_view name,
                          std::int64_t fallback) {
  const onnx::AttributeProto* a = FindAttribute(node, name);
  return a == nullptr ? fallback : a->i();
}
// ONNX float attributes are float32: an exporter writes torch's double 0.2 as 0.2f. The shortest
// decimal that rounds to that float (0.2) is the value the module meant, and what its own forward
// computed with.
double FloatAttribute(const onnx::NodeProto& node, std::string_view name, double fallback) {
  const onnx::AttributeProto* a = FindAttribute(node, name);
  if (a == nullptr) return fallback;
  char digits[64];
  const std::to_chars_result end = std::to_chars(digits, digits + sizeof(digits) - 1, a->f());
  *end.ptr = '\0';
  return std::strtod(digits, nullptr);
}

// Little-endian bytes of `count` elements of T into doubles.
template <typename T>
std::vector<double> DecodeRaw(const std::string& raw, std::int64_t count) {
  std::vector<double> out(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) {
    T v;
    std::memcpy(&v, raw.data() + i * sizeof(T), sizeof(T));
    out[i] = static_cast<double>(v);
  }
  return out;
}

// A TensorProto's values and kind. `what` names it in errors.
absl::StatusOr<Value> ReadTensor(const onnx::TensorProto& t, const std::string& what,
                                 long long max_elements) {
  Value value;
  value.constant = true;
  for (std::int64_t d : t.dims()) {
    if (d < 0) return absl::InvalidArgumentError(absl::StrCat(what, ": negative dimension"));
    value.shape.push_back(d);
  }
  if (absl::Status bounded = CheckExtent(value.shape, max_elements); !bounded.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", bounded.message()));
  }
  const std::int64_t count = Count(value.shape);
  if (t.data_location() == onnx::TensorProto::EXTERNAL) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": external data is not supported"));
  }
  std::size_t element_bytes = 0;
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
      element_bytes = 4;
      break;
    case onnx::TensorProto::DOUBLE:
    case onnx::TensorProto::INT64:
      element_bytes = 8;
      value.kind =
          t.data_type() == onnx::TensorProto::INT64 ? ElementKind::kInteger : ElementKind::kFloat;
      break;
    case onnx::TensorProto::INT32:
      element_bytes = 4;
      value.kind = ElementKind::kInteger;
      break;
    case onnx::TensorProto::BOOL:
      element_bytes = 1;
      value.kind = ElementKind::kBool;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": element type ", t.data_type(),
                       " is not supported (float32, float64, int32, int64 and bool are)"));
  }
  if (t.has_raw_data()) {
    if (t.raw_data().size() != static_cast<std::size_t>(count) * element_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": raw_data has ", t.raw_data().size(),
                                                     " bytes, expected ", count * element_bytes));
    }
    switch (t.data_type()) {
      case onnx::TensorProto::FLOAT:
        value.data = DecodeRaw<float>(t.raw_data(), count);
        break;
      case onnx::TensorProto::DOUBLE:
        value.data = DecodeRaw<double>(t.raw_data(), count);
        break;
      case onnx::TensorProto::INT64:
        value.data = DecodeRaw<std::int64_t>(t.raw_data(), count);
        break;
      case onnx::TensorProto::INT32:
        value.data = DecodeRaw<std::int32_t>(t.raw_data(), count);
        break;
      default:
        value.data = DecodeRaw<std::uint8_t>(t.raw_data(), count);
        break;
    }
  } else {
    switch (t.data_type()) {
      case onnx::TensorProto::FLOAT:
        value.data.assign(t.float_data().begin(), t.float_data().end());
        break;
      case onnx::TensorProto::DOUBLE:
        value.data.assign(t.double_data().begin(), t.double_data().end());
        break;
      case onnx::TensorProto::INT64:
        value.data.assign(t.int64_data().begin(), t.int64_data().end());
        break;
      default:
        value.data.assign(t.int32_data().begin(), t.int32_data().end());
        break;
    }
    if (static_cast<std::int64_t>(value.data.size()) != count) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": ", value.data.size(), " values for shape ", ShapeString(value.shape)));
    }
  }
  return value;
}

// numpy's broadcast of two shapes.
absl::StatusOr<Shape> BroadcastShapes(const Shape& a, const Shape& b) {
  const std::size_t rank = std::max(a.size(), b.size());
  Shape out(rank, 1);
  for (std::size_t i = 0; i < rank; ++i) {
    const std::int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const std::int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("shapes ", ShapeString(a), " and ", ShapeString(b), " do not broadcast"));
    }
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// For every element of `out` (a broadcast of x's shape), the position of the x element it reads.
std::vector<int> BroadcastPositions(const Operand& x, const Shape& out) {
  const Shape strides = Strides(x.shape);
  const std::size_t lead = out.size() - x.shape.size();
  std::vector<int> positions(static_cast<std::size_t>(Count(out)));
  ForEachIndex(out, [&](std::int64_t flat, const Shape& index) {
    std::int64_t offset = 0;
    for (std::size_t d = 0; d < x.shape.size(); ++d) {
      if (x.shape[d] != 1) offset += index[lead + d] * strides[d];
    }
    positions[flat] = x.position + static_cast<int>(offset);
  });
  return positions;
}

// Normalises a possibly negative axis into [0, rank); false when out of range.
bool NormalizeAxis(std::int64_t* axis, std::size_t rank) {
  if (*axis < 0) *axis += static_cast<std::int64_t>(rank);
  return *axis >= 0 && *axis < static_cast<std::int64_t>(rank);
}

// Lowers ONNX nodes onto a Builder. Static inputs (shapes, axes, indices, bounds, conditions) are
// constants whose values it reads; data inputs are operands in the builder.
class NodeLowering {
 public:
  NodeLowering(Builder* builder, int index, const onnx::NodeProto& node)
      : b_(*builder), index_(index), node_(node) {}

  absl::Status Error(absl::string_view what) const { return NodeError(index_, node_, what); }

  // Refuses a shape whose tables would outgrow the limit on elements (CheckExtent): called on
  // every shape a node computes, before anything is built over it.
  absl::Status Admit(const Shape& shape) const {
    absl::Status bounded = CheckExtent(shape, b_.max_elements());
    return bounded.ok() ? bounded : Error(bounded.message());
  }

  absl::StatusOr<Operand> Output(const Shape& shape) {
    MPC_RETURN_IF_ERROR(Admit(shape));
    MPC_ASSIGN_OR_RETURN(const int position, b_.Allocate(Count(shape)));
    return Operand{shape, position};
  }

  // out[i] = sum of buffer[sources[i][...]]: the structural ops.
  absl::StatusOr<Operand> Gather(const Shape& shape, const std::vector<std::vector<int>>& sources) {
    MPC_ASSIGN_OR_RETURN(Operand out, Output(shape));
    GraphInstruction in;
    in.op = GraphOp::kGather;
    in.out = out.position;
    in.size = static_cast<int>(sources.size());
    in.start.push_back(0);
    for (const std::vector<int>& s : sources) {
      in.source.insert(in.source.end(), s.begin(), s.end());
      in.start.push_back(static_cast<int>(in.source.size()));
    }
    b_.tape().push_back(std::move(in));
    return out;
  }
  // out[i] = buffer[position_of(index of i)] over `shape`, admitted before its table is built.
  template <class PositionOf>
  absl::StatusOr<Operand> PickEach(const Shape& shape, PositionOf&& position_of) {
    MPC_RETURN_IF_ERROR(Admit(shape));
    std::vector<int> positions(static_cast<std::size_t>(Count(shape)));
    ForEachIndex(shape, [&](std::int64_t flat, const Shape& index) {
      positions[flat] = position_of(index);
    });
    return Pick(shape, positions);
  }
  absl::StatusOr<Operand> Pick(const Shape& shape, const std::vector<int>& positions) {
    std::vector<std::vector<int>> sources(positions.size());
    for (std::size_t i = 0; i < positions.size(); ++i) sources[i] = {positions[i]};
    return Gather(shape, sources);
  }

  absl::StatusOr<Operand> Binary(GraphOp op, const Operand& a, const Operand& b) {
    absl::StatusOr<Shape> shape = BroadcastShapes(a.shape, b.shape);
    if (!shape.ok()) return Error(shape.status().message());
    MPC_ASSIGN_OR_RETURN(Operand out, Output(*shape));
    GraphInstruction in;
    in.op = op;
    in.out = out.position;
    in.size = static_cast<int>(Count(*shape));
    in.a = BroadcastPositions(a, *shape);
    in.b = BroadcastPositions(b, *shape);
    b_.tape().push_back(std::move(in));
    return out;
  }

  absl::StatusOr<Operand> Unary(GraphOp op, const Operand& a, double alpha = 0.0,
                                double beta = 0.0) {
    MPC_ASSIGN_OR_RETURN(Operand out, Output(a.shape));
    GraphInstruction in;
    in.op = op;
    in.out = out.position;
    in.size = static_cast<int>(Count(a.shape));
    in.input = a.position;
    in.alpha = alpha;
    in.beta = beta;
    b_.tape().push_back(std::move(in));
    return out;
  }

  absl::StatusOr<Operand> Scalar(double v) {
    MPC_ASSIGN_OR_RETURN(const int position, b_.Allocate(1));
    b_.buffer()[position] = v;
    return Operand{Shape{}, position};
  }

  // a (.., rows, inner) x b (.., inner, cols), numpy's matmul (1-D operands promoted); with
  // transpose flags for Gemm (2-D operands only).
  absl::StatusOr<Operand> MatMul(const Operand& a, const Operand& b, bool trans_a = false,
                                 bool trans_b = false) {
    if (a.shape.empty() || b.shape.empty()) return Error("MatMul of a scalar");
    Shape as = a.shape, bs = b.shape;
    const bool a_vector = as.size() == 1, b_vector = bs.size() == 1;
    if (a_vector) as.insert(as.begin(), 1);
    if (b_vector) bs.push_back(1);
    const std::size_t ar = as.size(), br = bs.size();
    const std::int64_t rows = trans_a ? as[ar - 1] : as[ar - 2];
    const std::int64_t inner = trans_a ? as[ar - 2] : as[ar - 1];
    const std::int64_t inner_b = trans_b ? bs[br - 1] : bs[br - 2];
    const std::int64_t cols = trans_b ? bs[br - 2] : bs[br - 1];
    if (inner != inner_b) {
      return Error(absl::StrCat("inner dimensions differ: ", ShapeString(a.shape), " x ",
                                ShapeString(b.shape)));
    }
    const Shape a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
    absl::StatusOr<Shape> batch = BroadcastShapes(a_batch, b_batch);
    if (!batch.ok()) return Error(batch.status().message());
    Shape out_shape = *batch;
    if (!a_vector) out_shape.push_back(rows);
    if (!b_vector) out_shape.push_back(cols);
    MPC_ASSIGN_OR_RETURN(Operand out, Output(out_shape));
    GraphInstruction in;
    in.op = GraphOp::kMatMul;
    in.out = out.position;
    in.size = static_cast<int>(Count(out_shape));
    in.rows = static_cast<int>(rows);
    in.inner = static_cast<int>(inner);
    in.cols = static_cast<int>(cols);
    // Element (i, k) of A: row-major (rows, inner), or (inner, rows) when transposed.
    in.a_row = static_cast<int>(trans_a ? 1 : inner);
    in.a_col = static_cast<int>(trans_a ? rows : 1);
    in.b_row = static_cast<int>(trans_b ? 1 : cols);
    in.b_col = static_cast<int>(trans_b ? inner : 1);
    const std::vector<int> a_base = BroadcastPositions(Operand{a_batch, a.position}, *batch);
    const std::vector<int> b_base = BroadcastPositions(Operand{b_batch, b.position}, *batch);
    const std::int64_t a_block = rows * inner, b_block = inner * cols;
    for (std::size_t p = 0; p < a_base.size(); ++p) {
      // BroadcastPositions counts batch elements; a matrix of the batch is a whole block.
      in.a_base.push_back(a.position + (a_base[p] - a.position) * static_cast<int>(a_block));
      in.b_base.push_back(b.position + (b_base[p] - b.position) * static_cast<int>(b_block));
      in.out_base.push_back(out.position + static_cast<int>(p * rows * cols));
    }
    b_.tape().push_back(std::move(in));
    return out;
  }

  // The same scalars under another shape (Reshape, Flatten, Squeeze, Unsqueeze, Identity, Cast).
  Operand Alias(const Operand& a, const Shape& shape) { return Operand{shape, a.position}; }

 private:
  Builder& b_;
  const int index_;
  const onnx::NodeProto& node_;
};

// Which inputs of an op are static (their values shape the lowering: must be constants).
bool IsStaticInput(const std::string& op, int input) {
  if (op == "Where") return input == 0;
  if (op == "Reshape" || op == "Slice" || op == "Gather" || op == "Split" || op == "Squeeze" ||
      op == "Unsqueeze" || op == "ReduceSum" || op == "Clip") {
    return input >= 1;
  }
  return false;
}

std::vector<std::int64_t> AsIndices(const Value& v) {
  std::vector<std::int64_t> out;
  for (double d : v.data) out.push_back(ToIndex(d));
  return out;
}

const std::map<std::string, GraphOp>& UnaryOps() {
  static const auto* ops = new std::map<std::string, GraphOp>{
      {"Neg", GraphOp::kNeg},           {"Sqrt", GraphOp::kSqrt},       {"Exp", GraphOp::kExp},
      {"Log", GraphOp::kLog},           {"Abs", GraphOp::kAbs},         {"Sin", GraphOp::kSin},
      {"Cos", GraphOp::kCos},           {"Tan", GraphOp::kTan},         {"Atan", GraphOp::kAtan},
      {"Tanh", GraphOp::kTanh},         {"Sigmoid", GraphOp::kSigmoid}, {"Relu", GraphOp::kRelu},
      {"Softplus", GraphOp::kSoftplus},
  };
  return *ops;
}
const std::map<std::string, GraphOp>& BinaryOps() {
  static const auto* ops = new std::map<std::string, GraphOp>{
      {"Add", GraphOp::kAdd}, {"Sub", GraphOp::kSub}, {"Mul", GraphOp::kMul},
      {"Div", GraphOp::kDiv}, {"Pow", GraphOp::kPow}, {"Min", GraphOp::kMin},
      {"Max", GraphOp::kMax},
  };
  return *ops;
}

// Lowers one node. `data` holds its data inputs placed in the builder (nullptr for an absent
// optional input), `statics` its static inputs (nullptr when absent). Returns its outputs.
absl::StatusOr<std::vector<Operand>> LowerNode(NodeLowering& L, const onnx::NodeProto& node,
                                               const std::vector<const Operand*>& data,
                                               const std::vector<const Value*>& statics) {
  const std::string& op = node.op_type();
  auto input = [&](int i) -> const Operand& { return *data[i]; };
  // A static input the op cannot do without (check_model lets an empty name through).
  for (int i : {1, 2}) {
    const bool required = ((op == "Reshape" || op == "Gather" || op == "Unsqueeze") && i == 1) ||
                          (op == "Slice" && i <= 2);
    if (required && (static_cast<int>(statics.size()) <= i || statics[i] == nullptr)) {
      return L.Error(absl::StrCat("input ", i, " is missing"));
    }
  }
  for (std::size_t i = 0; i < data.size(); ++i) {
    const bool optional =
        op == "Where" || IsStaticInput(op, static_cast<int>(i)) || (op == "Gemm" && i == 2);
    if (data[i] == nullptr && !optional) return L.Error(absl::StrCat("input ", i, " is missing"));
  }
  if (op == "Where" && (statics.empty() || statics[0] == nullptr || data.size() < 3 ||
                        data[1] == nullptr || data[2] == nullptr)) {
    return L.Error("Where needs a condition and two inputs");
  }
  auto one = [](absl::StatusOr<Operand> r) -> absl::StatusOr<std::vector<Operand>> {
    if (!r.ok()) return r.status();
    return std::vector<Operand>{*std::move(r)};
  };
  if (auto it = UnaryOps().find(op); it != UnaryOps().end()) {
    return one(L.Unary(it->second, input(0)));
  }
  if (op == "LeakyRelu") {
    return one(L.Unary(GraphOp::kLeakyRelu, input(0), FloatAttribute(node, "alpha", 0.01)));
  }
  if (op == "Elu") return one(L.Unary(GraphOp::kElu, input(0), FloatAttribute(node, "alpha", 1)));
  if (op == "Clip") {
    double lo = -HUGE_VAL, hi = HUGE_VAL;
    for (int i : {1, 2}) {
      if (static_cast<int>(statics.size()) <= i || statics[i] == nullptr) continue;
      if (statics[i]->data.size() != 1) return L.Error("min and max must be scalars");
      (i == 1 ? lo : hi) = statics[i]->data[0];
    }
    return one(L.Unary(GraphOp::kClip, input(0), lo, hi));
  }
  if (auto it = BinaryOps().find(op); it != BinaryOps().end()) {
    if (data.size() == 1) return std::vector<Operand>{input(0)};  // Min/Max of one input
    MPC_ASSIGN_OR_RETURN(Operand acc, L.Binary(it->second, input(0), input(1)));
    for (std::size_t i = 2; i < data.size(); ++i) {
      MPC_ASSIGN_OR_RETURN(acc, L.Binary(it->second, acc, input(static_cast<int>(i))));
    }
    return std::vector<Operand>{acc};
  }
  if (op == "MatMul") return one(L.MatMul(input(0), input(1)));
  if (op == "Gemm") {
    if (input(0).shape.size() != 2 || input(1).shape.size() != 2) {
      return L.Error("Gemm needs 2-D A and B");
    }
    MPC_ASSIGN_OR_RETURN(Operand y, L.MatMul(input(0), input(1), IntAttribute(node, "transA", 0),
                                             IntAttribute(node, "transB", 0)));
    const double alpha = FloatAttribute(node, "alpha", 1.0);
    const double beta = FloatAttribute(node, "beta", 1.0);
    if (alpha != 1.0) {
      MPC_ASSIGN_OR_RETURN(Operand a, L.Scalar(alpha));
      MPC_ASSIGN_OR_RETURN(y, L.Binary(GraphOp::kMul, y, a));
    }
    if (data.size() > 2 && data[2] != nullptr) {
      Operand c = input(2);
      if (beta != 1.0) {
        MPC_ASSIGN_OR_RETURN(Operand b, L.Scalar(beta));
        MPC_ASSIGN_OR_RETURN(c, L.Binary(GraphOp::kMul, c, b));
      }
      const Shape y_shape = y.shape;
      MPC_ASSIGN_OR_RETURN(y, L.Binary(GraphOp::kAdd, y, c));
      if (y.shape != y_shape) return L.Error("C does not broadcast to (M, N)");
    }
    return std::vector<Operand>{y};
  }
  if (op == "Cast" && IntAttribute(node, "to", 0) == onnx::TensorProto::FLOAT) {
    return one(L.Unary(GraphOp::kRoundToFloat, input(0)));
  }
  if (op == "Identity" || op == "Cast") return std::vector<Operand>{input(0)};
  if (op == "Reshape") {
    const Operand& x = input(0);
    Shape shape = AsIndices(*statics[1]);
    int infer = -1;
    std::int64_t known = 1;
    for (std::size_t d = 0; d < shape.size(); ++d) {
      if (shape[d] == 0) {
        if (d >= x.shape.size()) return L.Error("shape copies a dimension the input has not");
        shape[d] = x.shape[d];
      }
      if (shape[d] == -1) {
        if (infer >= 0) return L.Error("shape has two -1");
        infer = static_cast<int>(d);
      } else if (shape[d] < 0) {
        return L.Error("negative dimension in shape");
      } else {
        known = SaturatingProduct(known, shape[d]);
      }
    }
    const std::int64_t count = Count(x.shape);
    if (infer >= 0) shape[infer] = known == 0 ? 0 : count / known;
    if (Count(shape) != count) {
      return L.Error(
          absl::StrCat("cannot reshape ", ShapeString(x.shape), " to ", ShapeString(shape)));
    }
    MPC_RETURN_IF_ERROR(L.Admit(shape));
    return std::vector<Operand>{L.Alias(x, shape)};
  }
  if (op == "Flatten") {
    const Operand& x = input(0);
    std::int64_t axis = IntAttribute(node, "axis", 1);
    if (axis < 0) axis += static_cast<std::int64_t>(x.shape.size());
    if (axis < 0 || axis > static_cast<std::int64_t>(x.shape.size())) return L.Error("bad axis");
    std::int64_t outer = 1;
    for (std::int64_t d = 0; d < axis; ++d) outer *= x.shape[d];
    return std::vector<Operand>{
        L.Alias(x, {outer, Count(x.shape) / std::max<std::int64_t>(outer, 1)})};
  }
  if (op == "Squeeze") {
    const Operand& x = input(0);
    std::set<std::int64_t> axes;
    if (statics.size() > 1 && statics[1] != nullptr) {
      for (std::int64_t a : AsIndices(*statics[1])) {
        if (!NormalizeAxis(&a, x.shape.size()) || x.shape[a] != 1) {
          return L.Error("axis out of range or not of size 1");
        }
        axes.insert(a);
      }
    } else {
      for (std::size_t d = 0; d < x.shape.size(); ++d) {
        if (x.shape[d] == 1) axes.insert(static_cast<std::int64_t>(d));
      }
    }
    Shape shape;
    for (std::size_t d = 0; d < x.shape.size(); ++d) {
      if (axes.count(static_cast<std::int64_t>(d)) == 0) shape.push_back(x.shape[d]);
    }
    return std::vector<Operand>{L.Alias(x, shape)};
  }
  if (op == "Unsqueeze") {
    const Operand& x = input(0);
    const std::size_t rank = x.shape.size() + statics[1]->data.size();
    std::set<std::int64_t> axes;
    for (std::int64_t a : AsIndices(*statics[1])) {
      if (!NormalizeAxis(&a, rank) || !axes.insert(a).second) return L.Error("bad axes");
    }
    Shape shape;
    std::size_t next = 0;
    for (std::size_t d = 0; d < rank; ++d) {
      shape.push_back(axes.count(static_cast<std::int64_t>(d)) ? 1 : x.shape[next++]);
    }
    return std::vector<Operand>{L.Alias(x, shape)};
  }
  if (op == "Concat") {
    std::int64_t axis = IntAttribute(node, "axis", 0);
    const Shape& first = input(0).shape;
    if (!NormalizeAxis(&axis, first.size())) return L.Error("axis out of range");
    Shape shape = first;
    shape[axis] = 0;
    for (const Operand* in : data) {
      if (in->shape.size() != first.size()) return L.Error("inputs of different ranks");
      for (std::size_t d = 0; d < first.size(); ++d) {
        if (static_cast<std::int64_t>(d) != axis && in->shape[d] != first[d]) {
          return L.Error(absl::StrCat("shapes ", ShapeString(first), " and ",
                                      ShapeString(in->shape), " differ off the axis"));
        }
      }
      shape[axis] += in->shape[axis];
    }
    return one(L.PickEach(shape, [&](const Shape& index) -> int {
      std::int64_t along = index[axis];
      for (const Operand* in : data) {
        if (along < in->shape[axis]) {
          Shape local = index;
          local[axis] = along;
          const Shape strides = Strides(in->shape);
          std::int64_t offset = 0;
          for (std::size_t d = 0; d < local.size(); ++d) offset += local[d] * strides[d];
          return in->position + static_cast<int>(offset);
        }
        along -= in->shape[axis];
      }
      return -1;  // not reached: the axis of `shape` is the inputs' axes end to end
    }));
  }
  if (op == "Transpose") {
    const Operand& x = input(0);
    const std::size_t rank = x.shape.size();
    Shape perm;
    if (const onnx::AttributeProto* a = FindAttribute(node, "perm")) {
      perm.assign(a->ints().begin(), a->ints().end());
    } else {
      for (std::size_t d = 0; d < rank; ++d)
        perm.push_back(static_cast<std::int64_t>(rank - 1 - d));
    }
    if (perm.size() != rank) return L.Error("perm has the wrong length");
    Shape shape(rank);
    for (std::size_t d = 0; d < rank; ++d) {
      if (perm[d] < 0 || perm[d] >= static_cast<std::int64_t>(rank)) return L.Error("bad perm");
      shape[d] = x.shape[perm[d]];
    }
    const Shape strides = Strides(x.shape);
    return one(L.PickEach(shape, [&](const Shape& index) -> int {
      std::int64_t offset = 0;
      for (std::size_t d = 0; d < rank; ++d) offset += index[d] * strides[perm[d]];
      return x.position + static_cast<int>(offset);
    }));
  }
  if (op == "Slice") {
    const Operand& x = input(0);
    const std::size_t rank = x.shape.size();
    const std::vector<std::int64_t> starts = AsIndices(*statics[1]);
    const std::vector<std::int64_t> ends = AsIndices(*statics[2]);
    std::vector<std::int64_t> axes, steps;
    if (statics.size() > 3 && statics[3] != nullptr) axes = AsIndices(*statics[3]);
    if (statics.size() > 4 && statics[4] != nullptr) steps = AsIndices(*statics[4]);
    if (axes.empty()) {
      for (std::size_t d = 0; d < starts.size(); ++d) axes.push_back(static_cast<std::int64_t>(d));
    }
    if (steps.empty()) steps.assign(starts.size(), 1);
    if (ends.size() != starts.size() || axes.size() != starts.size() ||
        steps.size() != starts.size()) {
      return L.Error("starts, ends, axes and steps differ in length");
    }
    Shape begin(rank, 0), step(rank, 1), shape = x.shape;
    for (std::size_t i = 0; i < starts.size(); ++i) {
      std::int64_t axis = axes[i];
      if (!NormalizeAxis(&axis, rank)) return L.Error("axis out of range");
      const std::int64_t dim = x.shape[axis];
      std::int64_t s = starts[i], e = ends[i];
      const std::int64_t st = steps[i];
      if (st == 0) return L.Error("step 0");
      if (s < 0) s += dim;
      if (e < 0) e += dim;
      if (st > 0) {
        s = std::clamp<std::int64_t>(s, 0, dim);
        e = std::clamp<std::int64_t>(e, 0, dim);
        shape[axis] = e > s ? (e - s + st - 1) / st : 0;
      } else {
        s = std::clamp<std::int64_t>(s, 0, dim - 1);
        e = std::clamp<std::int64_t>(e, -1, dim - 1);
        shape[axis] = s > e ? (s - e - st - 1) / -st : 0;
      }
      begin[axis] = s;
      step[axis] = st;
    }
    const Shape strides = Strides(x.shape);
    return one(L.PickEach(shape, [&](const Shape& index) -> int {
      std::int64_t offset = 0;
      for (std::size_t d = 0; d < rank; ++d) offset += (begin[d] + index[d] * step[d]) * strides[d];
      return x.position + static_cast<int>(offset);
    }));
  }
  if (op == "Gather") {
    const Operand& x = input(0);
    std::int64_t axis = IntAttribute(node, "axis", 0);
    if (!NormalizeAxis(&axis, x.shape.size())) return L.Error("axis out of range");
    const Value& indices = *statics[1];
    std::vector<std::int64_t> picks = AsIndices(indices);
    for (std::int64_t& p : picks) {
      if (p < 0) p += x.shape[axis];
      if (p < 0 || p >= x.shape[axis]) return L.Error("index out of range");
    }
    Shape shape(x.shape.begin(), x.shape.begin() + axis);
    shape.insert(shape.end(), indices.shape.begin(), indices.shape.end());
    shape.insert(shape.end(), x.shape.begin() + axis + 1, x.shape.end());
    const Shape strides = Strides(x.shape);
    const Shape index_strides = Strides(indices.shape);
    const std::size_t ir = indices.shape.size();
    return one(L.PickEach(shape, [&](const Shape& index) -> int {
      std::int64_t which = 0;
      for (std::size_t d = 0; d < ir; ++d) which += index[axis + d] * index_strides[d];
      std::int64_t offset = picks[which] * strides[axis];
      for (std::int64_t d = 0; d < axis; ++d) offset += index[d] * strides[d];
      for (std::size_t d = axis + 1; d < x.shape.size(); ++d) {
        offset += index[d - 1 + ir] * strides[d];
      }
      return x.position + static_cast<int>(offset);
    }));
  }
  if (op == "Split") {
    const Operand& x = input(0);
    std::int64_t axis = IntAttribute(node, "axis", 0);
    if (!NormalizeAxis(&axis, x.shape.size())) return L.Error("axis out of range");
    const int outputs = node.output_size();
    std::vector<std::int64_t> sizes;
    if (statics.size() > 1 && statics[1] != nullptr) {
      sizes = AsIndices(*statics[1]);
    } else {
      if (x.shape[axis] % outputs != 0) return L.Error("the axis does not split evenly");
      sizes.assign(static_cast<std::size_t>(outputs), x.shape[axis] / outputs);
    }
    std::int64_t total = 0;
    for (std::int64_t s : sizes) total += s;
    if (static_cast<int>(sizes.size()) != outputs || total != x.shape[axis]) {
      return L.Error("split sizes do not match the outputs and the axis");
    }
    const Shape strides = Strides(x.shape);
    std::vector<Operand> results;
    std::int64_t begin = 0;
    for (std::int64_t size : sizes) {
      Shape shape = x.shape;
      shape[axis] = size;
      MPC_ASSIGN_OR_RETURN(Operand out, L.PickEach(shape, [&](const Shape& index) -> int {
        std::int64_t offset = 0;
        for (std::size_t d = 0; d < shape.size(); ++d) {
          offset += (index[d] + (static_cast<std::int64_t>(d) == axis ? begin : 0)) * strides[d];
        }
        return x.position + static_cast<int>(offset);
      }));
      results.push_back(out);
      begin += size;
    }
    return results;
  }
  if (op == "ReduceSum") {
    const Operand& x = input(0);
    const std::size_t rank = x.shape.size();
    std::set<std::int64_t> axes;
    if (statics.size() > 1 && statics[1] != nullptr && !statics[1]->data.empty()) {
      for (std::int64_t a : AsIndices(*statics[1])) {
        if (!NormalizeAxis(&a, rank)) return L.Error("axis out of range");
        axes.insert(a);
      }
    } else if (IntAttribute(node, "noop_with_empty_axes", 0) != 0) {
      return std::vector<Operand>{x};
    } else {
      for (std::size_t d = 0; d < rank; ++d) axes.insert(static_cast<std::int64_t>(d));
    }
    const bool keep = IntAttribute(node, "keepdims", 1) != 0;
    Shape reduced = x.shape, shape;
    for (std::int64_t a : axes) reduced[a] = 1;
    for (std::size_t d = 0; d < rank; ++d) {
      if (keep || axes.count(static_cast<std::int64_t>(d)) == 0) shape.push_back(reduced[d]);
    }
    std::vector<std::vector<int>> sources(static_cast<std::size_t>(Count(reduced)));
    const Shape strides = Strides(x.shape), reduced_strides = Strides(reduced);
    ForEachIndex(x.shape, [&](std::int64_t flat, const Shape& index) {
      std::int64_t target = 0;
      for (std::size_t d = 0; d < rank; ++d) {
        if (axes.count(static_cast<std::int64_t>(d)) == 0) target += index[d] * reduced_strides[d];
      }
      sources[target].push_back(x.position + static_cast<int>(flat));
    });
    return one(L.Gather(shape, sources));
  }
  if (op == "Where") {
    const Value& condition = *statics[0];
    const Operand& a = input(1);
    const Operand& b = input(2);
    absl::StatusOr<Shape> ab = BroadcastShapes(a.shape, b.shape);
    if (!ab.ok()) return L.Error(ab.status().message());
    absl::StatusOr<Shape> shape = BroadcastShapes(condition.shape, *ab);
    if (!shape.ok()) return L.Error(shape.status().message());
    MPC_RETURN_IF_ERROR(L.Admit(*shape));
    const std::vector<int> pa = BroadcastPositions(a, *shape);
    const std::vector<int> pb = BroadcastPositions(b, *shape);
    const std::vector<int> pc = BroadcastPositions(Operand{condition.shape, 0}, *shape);
    std::vector<int> positions(pa.size());
    for (std::size_t i = 0; i < pa.size(); ++i) {
      positions[i] = condition.data[pc[i]] != 0.0 ? pa[i] : pb[i];
    }
    return one(L.Pick(*shape, positions));
  }
  return L.Error(absl::StrCat("is not supported; supported ops: ", SupportedGraphOps()));
}

// The kind of a node's outputs.
ElementKind OutputKind(const onnx::NodeProto& node, const std::vector<const Value*>& inputs) {
  const std::string& op = node.op_type();
  if (op == "Shape") return ElementKind::kInteger;
  if (op == "Cast") {
    const std::int64_t to = IntAttribute(node, "to", onnx::TensorProto::FLOAT);
    if (to == onnx::TensorProto::FLOAT || to == onnx::TensorProto::DOUBLE) {
      return ElementKind::kFloat;
    }
    return to == onnx::TensorProto::BOOL ? ElementKind::kBool : ElementKind::kInteger;
  }
  if (op == "Where") return inputs.size() > 1 && inputs[1] ? inputs[1]->kind : ElementKind::kFloat;
  return !inputs.empty() && inputs[0] ? inputs[0]->kind : ElementKind::kFloat;
}

// The whole compilation: inputs, initializers (theta), nodes in order, the output.
class GraphCompiler {
 public:
  explicit GraphCompiler(const GraphLimits& limits)
      : limits_(limits), builder_(limits.max_elements) {}

  absl::StatusOr<std::shared_ptr<const GraphProgram>> Compile(const onnx::ModelProto& model) {
    const onnx::GraphProto& graph = model.graph();
    MPC_RETURN_IF_ERROR(ReadInputs(graph));
    MPC_RETURN_IF_ERROR(ReadInitializers(graph));
    for (int i = 0; i < graph.node_size(); ++i) MPC_RETURN_IF_ERROR(CompileNode(i, graph.node(i)));
    return Finish(graph);
  }

 private:
  // A dynamics graph has inputs x and u; a cost graph (DESIGN §12) the one input tau = [x; u],
  // which the program keeps where x would be (control_dim 0).
  absl::Status ReadInputs(const onnx::GraphProto& graph) {
    std::set<std::string> initializers;
    for (const onnx::TensorProto& t : graph.initializer()) initializers.insert(t.name());
    const onnx::ValueInfoProto* x = nullptr;
    const onnx::ValueInfoProto* u = nullptr;
    const onnx::ValueInfoProto* tau = nullptr;
    for (const onnx::ValueInfoProto& in : graph.input()) {
      if (initializers.count(in.name()) != 0) continue;  // older exporters list them as inputs
      if (in.name() == "x") {
        x = &in;
      } else if (in.name() == "u") {
        u = &in;
      } else if (in.name() == "tau") {
        tau = &in;
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("graph input '", in.name(),
                         "': the graph's inputs must be exactly 'x' and 'u' (dynamics) or 'tau' "
                         "(a cost)"));
      }
    }
    if (tau != nullptr) {
      if (x != nullptr || u != nullptr) {
        return absl::InvalidArgumentError(
            "graph input 'tau': a cost graph has no other input ('x' and 'u' are a dynamics "
            "graph's)");
      }
      MPC_ASSIGN_OR_RETURN(Shape tau_shape, InputShape(*tau));
      program_->is_cost = true;
      program_->state_dim = static_cast<int>(Count(tau_shape));
      MPC_ASSIGN_OR_RETURN(const int tau_position, builder_.Allocate(Count(tau_shape)));
      values_["tau"] = Value{tau_shape, ElementKind::kFloat, false, {}, tau_position};
      return absl::OkStatus();
    }
    if (x == nullptr) {
      return absl::InvalidArgumentError(
          "the graph has no input 'x' (its inputs must be 'x' (n) or (1, n) and 'u' (m) or (1, "
          "m), or a cost's 'tau' (n+m) or (1, n+m))");
    }
    // Without 'u' (torch.onnx.export drops an unused input) only a stage constraint graph of the
    // state (control_dim 0; CheckDynamicsGraph refuses it as dynamics).
    MPC_ASSIGN_OR_RETURN(Shape x_shape, InputShape(*x));
    Shape u_shape = {0};
    if (u != nullptr) {
      MPC_ASSIGN_OR_RETURN(u_shape, InputShape(*u));
    }
    program_->state_dim = static_cast<int>(Count(x_shape));
    program_->control_dim = static_cast<int>(Count(u_shape));
    MPC_ASSIGN_OR_RETURN(const int x_position, builder_.Allocate(Count(x_shape)));
    MPC_ASSIGN_OR_RETURN(const int u_position, builder_.Allocate(Count(u_shape)));
    values_["x"] = Value{x_shape, ElementKind::kFloat, false, {}, x_position};
    values_["u"] = Value{u_shape, ElementKind::kFloat, false, {}, u_position};
    return absl::OkStatus();
  }

  static absl::StatusOr<Shape> InputShape(const onnx::ValueInfoProto& in) {
    const std::string what = absl::StrCat("graph input '", in.name(), "'");
    if (!in.type().has_tensor_type()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": not a tensor"));
    }
    const onnx::TypeProto::Tensor& t = in.type().tensor_type();
    if (t.elem_type() != onnx::TensorProto::FLOAT && t.elem_type() != onnx::TensorProto::DOUBLE) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": element type ", t.elem_type(), ", expected float32 or float64"));
    }
    Shape shape;
    for (const onnx::TensorShapeProto::Dimension& d : t.shape().dim()) {
      if (!d.has_dim_value() || d.dim_value() <= 0) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": dimension '", d.dim_param(),
                                                       "' is not static (shapes must be fixed)"));
      }
      shape.push_back(d.dim_value());
    }
    if (shape.empty() || shape.size() > 2 || (shape.size() == 2 && shape[0] != 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": shape ", ShapeString(shape), ", expected (k) or (1, k)"));
    }
    return shape;
  }

  // Float initializers become theta, contiguous after x and u; the others are constants.
  absl::Status ReadInitializers(const onnx::GraphProto& graph) {
    long long total = 0;
    for (const onnx::TensorProto& t : graph.initializer()) {
      const std::string what = absl::StrCat("initializer '", t.name(), "'");
      if (values_.count(t.name()) != 0) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": the name is used twice"));
      }
      MPC_ASSIGN_OR_RETURN(Value value, ReadTensor(t, what, limits_.max_parameters));
      for (std::size_t i = 0; i < value.data.size(); ++i) {
        if (!std::isfinite(value.data[i])) {
          return absl::InvalidArgumentError(
              absl::StrCat(what, ": element ", i, " is not finite (", value.data[i], ")"));
        }
      }
      if (value.kind == ElementKind::kFloat) {
        total += static_cast<long long>(value.data.size());
        if (total > limits_.max_parameters) {
          return absl::InvalidArgumentError(absl::StrCat(
              "the graph has more than ", limits_.max_parameters, " parameters (at ", what, ")"));
        }
        GraphParameter parameter{t.name(), value.shape, program_->param_dim,
                                 static_cast<int>(value.data.size())};
        MPC_ASSIGN_OR_RETURN(value.position, builder_.Allocate(parameter.size));
        program_->default_params.insert(program_->default_params.end(), value.data.begin(),
                                        value.data.end());
        program_->param_dim += parameter.size;
        program_->parameters.push_back(std::move(parameter));
        value.constant = false;
        value.data.clear();
      }
      values_[t.name()] = std::move(value);
    }
    return absl::OkStatus();
  }

  absl::Status CompileNode(int index, const onnx::NodeProto& node) {
    const std::string& op = node.op_type();
    std::vector<const Value*> inputs;
    for (const std::string& name : node.input()) {
      if (name.empty()) {
        inputs.push_back(nullptr);
        continue;
      }
      auto it = values_.find(name);
      if (it == values_.end()) {
        return NodeError(index, node, absl::StrCat("input '", name, "' is not defined"));
      }
      inputs.push_back(&it->second);
    }
    std::vector<Value> outputs;
    if (op == "Constant") {
      MPC_ASSIGN_OR_RETURN(Value value, ConstantValue(index, node));
      outputs.push_back(std::move(value));
    } else if (op == "Shape") {
      const Shape& shape = inputs.at(0)->shape;
      std::int64_t start = IntAttribute(node, "start", 0);
      std::int64_t end = IntAttribute(node, "end", static_cast<std::int64_t>(shape.size()));
      const auto rank = static_cast<std::int64_t>(shape.size());
      if (start < 0) start += rank;
      if (end < 0) end += rank;
      start = std::clamp<std::int64_t>(start, 0, rank);
      end = std::clamp<std::int64_t>(end, start, rank);
      Value value;
      value.constant = true;
      value.kind = ElementKind::kInteger;
      for (std::int64_t d = start; d < end; ++d)
        value.data.push_back(static_cast<double>(shape[d]));
      value.shape = {end - start};
      outputs.push_back(std::move(value));
    } else {
      MPC_ASSIGN_OR_RETURN(outputs, LowerWithFolding(index, node, inputs));
    }
    if (static_cast<int>(outputs.size()) != node.output_size()) {
      return NodeError(index, node, "unexpected number of outputs");
    }
    if (static_cast<long long>(builder_.buffer().size()) > limits_.max_elements) {
      return NodeError(index, node, "the graph's evaluation exceeds the limit on elements");
    }
    for (int i = 0; i < node.output_size(); ++i) {
      values_[node.output(i)] = std::move(outputs[i]);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<Value> ConstantValue(int index, const onnx::NodeProto& node) {
    Value value;
    value.constant = true;
    if (const onnx::AttributeProto* a = FindAttribute(node, "value")) {
      absl::StatusOr<Value> read = ReadTensor(a->t(), "value", limits_.max_elements);
      if (!read.ok()) return NodeError(index, node, read.status().message());
      return *std::move(read);
    }
    if (const onnx::AttributeProto* a = FindAttribute(node, "value_float")) {
      value.data = {a->f()};
    } else if (const onnx::AttributeProto* a = FindAttribute(node, "value_floats")) {
      value.data.assign(a->floats().begin(), a->floats().end());
      value.shape = {static_cast<std::int64_t>(value.data.size())};
    } else if (const onnx::AttributeProto* a = FindAttribute(node, "value_int")) {
      value.kind = ElementKind::kInteger;
      value.data = {static_cast<double>(a->i())};
    } else if (const onnx::AttributeProto* a = FindAttribute(node, "value_ints")) {
      value.kind = ElementKind::kInteger;
      value.data.assign(a->ints().begin(), a->ints().end());
      value.shape = {static_cast<std::int64_t>(value.data.size())};
    } else {
      return NodeError(index, node, "only value, value_float(s) and value_int(s) are supported");
    }
    return value;
  }

  // Lowers the node into the program, or, when every data input is a constant, into a scratch
  // builder that evaluates it now (constant folding).
  absl::StatusOr<std::vector<Value>> LowerWithFolding(int index, const onnx::NodeProto& node,
                                                      const std::vector<const Value*>& inputs) {
    const std::string& op = node.op_type();
    bool all_constant = true;
    std::vector<const Value*> statics(inputs.size(), nullptr);
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      if (inputs[i] == nullptr) continue;
      if (IsStaticInput(op, static_cast<int>(i))) {
        if (!inputs[i]->constant) {
          return NodeError(index, node,
                           absl::StrCat("input ", i, " ('", node.input(static_cast<int>(i)),
                                        "') must be a constant, but it depends on x, u or the "
                                        "parameters"));
        }
        statics[i] = inputs[i];
      } else {
        all_constant = all_constant && inputs[i]->constant;
      }
    }
    const ElementKind kind = OutputKind(node, inputs);
    if (!all_constant && kind != ElementKind::kFloat) {
      return NodeError(index, node,
                       "an integer or boolean result that depends on x, u or the parameters");
    }
    Builder scratch(limits_.max_elements);
    Builder& target = all_constant ? scratch : builder_;
    std::vector<Value> placed;  // constants placed in the scratch builder
    placed.reserve(inputs.size());
    std::vector<Operand> operands(inputs.size());
    std::vector<const Operand*> data(inputs.size(), nullptr);
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      if (inputs[i] == nullptr || statics[i] != nullptr) continue;
      if (inputs[i]->constant) {
        Value* value;
        if (all_constant) {
          placed.push_back(*inputs[i]);
          placed.back().position = -1;
          value = &placed.back();
        } else {
          value = &values_.at(node.input(static_cast<int>(i)));
        }
        MPC_ASSIGN_OR_RETURN(operands[i], target.Place(value));
      } else {
        operands[i] = Operand{inputs[i]->shape, inputs[i]->position};
      }
      data[i] = &operands[i];
    }
    // Ops whose first input is static (Where) still index data by input number.
    if (data.empty() || (data[0] == nullptr && op != "Where")) {
      return NodeError(index, node, "missing its first input");
    }
    NodeLowering lowering(&target, index, node);
    absl::StatusOr<std::vector<Operand>> results = LowerNode(lowering, node, data, statics);
    if (!results.ok()) {
      if (results.status().message().rfind("node ", 0) == 0) return results.status();
      return NodeError(index, node, results.status().message());
    }
    std::vector<Value> outputs;
    if (all_constant) {
      EvaluateGraphTape(scratch.tape(), scratch.buffer().data());
      for (const Operand& r : *results) {
        Value value;
        value.constant = true;
        value.kind = kind;
        value.shape = r.shape;
        const auto begin = scratch.buffer().begin() + r.position;
        value.data.assign(begin, begin + Count(r.shape));
        if (kind != ElementKind::kFloat) {
          for (double& d : value.data) d = std::trunc(d);
        }
        outputs.push_back(std::move(value));
      }
    } else {
      for (const Operand& r : *results) {
        outputs.push_back(Value{r.shape, ElementKind::kFloat, false, {}, r.position});
      }
    }
    return outputs;
  }

  absl::StatusOr<std::shared_ptr<const GraphProgram>> Finish(const onnx::GraphProto& graph) {
    if (graph.output_size() != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("the graph has ", graph.output_size(),
                       " outputs, expected one (x_next, or a cost graph's cost)"));
    }
    const std::string& name = graph.output(0).name();
    auto it = values_.find(name);
    if (it == values_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("graph output '", name, "' is not produced by any node"));
    }
    Value& output = it->second;
    // A graph of x and u with other than n outputs is a stage constraint graph's (g, k
    // elements): the conversion checks a dynamics graph's size (CheckDynamicsGraph).
    program_->output_dim = static_cast<int>(Count(output.shape));
    program_->output_name = name;
    if (program_->is_cost ? program_->output_dim != 1 : program_->output_dim == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "graph output '", name, "' has shape ", ShapeString(output.shape), " (",
          Count(output.shape), " elements), expected ",
          program_->is_cost ? "a scalar (1 element: the cost)" : "at least one element"));
    }
    if (output.kind != ElementKind::kFloat) {
      return absl::InvalidArgumentError(absl::StrCat("graph output '", name, "' is not float"));
    }
    MPC_ASSIGN_OR_RETURN(const Operand out, builder_.Place(&output));
    program_->output = out.position;
    program_->initial_buffer = std::move(builder_.buffer());
    program_->tape = std::move(builder_.tape());
    MarkActivity(program_.get());
    FlattenToElements(program_.get());
    return std::shared_ptr<const GraphProgram>(std::move(program_));
  }

  const GraphLimits limits_;
  Builder builder_;
  std::map<std::string, Value> values_;
  std::shared_ptr<GraphProgram> program_ = std::make_shared<GraphProgram>();
};

// Checks that need no compilation: the op set, every input defined somewhere, no cycle (Kahn's
// algorithm: a node that never becomes ready depends on itself).
absl::Status CheckStructure(const onnx::GraphProto& graph) {
  std::set<std::string> defined;
  for (const onnx::ValueInfoProto& in : graph.input()) defined.insert(in.name());
  for (const onnx::TensorProto& t : graph.initializer()) defined.insert(t.name());
  std::map<std::string, int> producer;
  for (int i = 0; i < graph.node_size(); ++i) {
    const onnx::NodeProto& node = graph.node(i);
    if ((!node.domain().empty() && node.domain() != "ai.onnx") || !IsSupportedOp(node.op_type())) {
      return NodeError(i, node,
                       absl::StrCat("is not supported; supported ops: ", SupportedGraphOps()));
    }
    for (const std::string& out : node.output()) producer[out] = i;
  }
  for (int i = 0; i < graph.node_size(); ++i) {
    const onnx::NodeProto& node = graph.node(i);
    for (const std::string& in : node.input()) {
      if (!in.empty() && defined.count(in) == 0 && producer.count(in) == 0) {
        return NodeError(i, node,
                         absl::StrCat("input '", in,
                                      "' is not a graph input, an initializer or a node's output "
                                      "(a missing initializer?)"));
      }
    }
  }
  std::set<std::string> ready = defined;
  std::vector<bool> done(static_cast<std::size_t>(graph.node_size()), false);
  for (bool progress = true; progress;) {
    progress = false;
    for (int i = 0; i < graph.node_size(); ++i) {
      if (done[i]) continue;
      bool inputs_ready = true;
      for (const std::string& in : graph.node(i).input()) {
        inputs_ready = inputs_ready && (in.empty() || ready.count(in) != 0);
      }
      if (!inputs_ready) continue;
      done[i] = true;
      progress = true;
      for (const std::string& out : graph.node(i).output()) ready.insert(out);
    }
  }
  for (int i = 0; i < graph.node_size(); ++i) {
    if (!done[i]) return NodeError(i, graph.node(i), "is on a cycle (or depends on one)");
  }
  return absl::OkStatus();
}

}  // namespace

const char* SupportedGraphOps() {
  static const std::string* list = [] {
    std::vector<std::string> ops(std::begin(kSupportedOps), std::end(kSupportedOps));
    std::sort(ops.begin(), ops.end());
    return new std::string(absl::StrJoin(ops, ", "));
  }();
  return list->c_str();
}

std::string Sha256Hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 15]);
  }
  return hex;
}

absl::Status CheckDynamicsGraph(const GraphProgram& program) {
  if (!program.is_cost && program.control_dim == 0) {
    return absl::InvalidArgumentError(
        "the graph has no input 'u' (dynamics take 'x' (n) or (1, n) and 'u' (m) or (1, m); "
        "a graph of x alone can only be a stage constraint's)");
  }
  if (program.is_cost || program.output_dim == program.state_dim) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "graph output '", program.output_name, "' has ", program.output_dim,
      " elements, expected n = ", program.state_dim,
      " elements (the size of x; a graph of x and u with other outputs is a stage constraint's)"));
}

absl::StatusOr<std::shared_ptr<const GraphProgram>> CompileOnnxGraph(std::string_view bytes,
                                                                     const GraphLimits& limits) {
  if (static_cast<long long>(bytes.size()) > limits.max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the graph has ", bytes.size(), " bytes, more than the limit ", limits.max_bytes));
  }
  onnx::ModelProto model;
  if (!model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError("not a serialized ONNX ModelProto");
  }
  if (model.graph().node_size() > limits.max_nodes) {
    return absl::InvalidArgumentError(absl::StrCat("the graph has ", model.graph().node_size(),
                                                   " nodes, more than the limit ",
                                                   limits.max_nodes));
  }
  int opset = -1;
  for (const onnx::OperatorSetIdProto& o : model.opset_import()) {
    if (o.domain().empty() || o.domain() == "ai.onnx") opset = static_cast<int>(o.version());
  }
  if (opset < kMinGraphOpset || opset > kMaxGraphOpset) {
    return absl::InvalidArgumentError(
        absl::StrCat("opset ", opset, " of the default domain: ", "supported opsets are ",
                     kMinGraphOpset, " to ", kMaxGraphOpset));
  }
  MPC_RETURN_IF_ERROR(CheckStructure(model.graph()));
  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("onnx checker: ", e.what()));
  }
  GraphCompiler compiler(limits);
  MPC_ASSIGN_OR_RETURN(std::shared_ptr<const GraphProgram> compiled, compiler.Compile(model));
  auto program = std::const_pointer_cast<GraphProgram>(compiled);
  program->sha256 = Sha256Hex(bytes);
  for (int w = 0; w < 4; ++w) {
    program->fingerprint[w] = std::stoull(program->sha256.substr(16 * w, 16), nullptr, 16);
  }
  return compiled;
}

}  // namespace mpc
