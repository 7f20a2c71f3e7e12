#include "proto/proto_conversion.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "proto/error_details.h"
#include "solver/graph/onnx_import.h"
#include "solver/problem_fields.h"
#include "solver/pytorch_terms.h"
#include "solver/stage_constraints.h"
#include "solver/status_macros.h"
#include "solver/tracking_cost.h"

namespace mpc {
namespace {

using mpcd::v1::Tensor;
using Shape = TensorShape;

// The shape as sent, read in place (ShapeOf copies it: only for messages and answers). (The
// max tells GCC the size is not negative: it would warn of a huge allocation in ShapeOf.)
absl::Span<const std::uint32_t> ShapeSpan(const Tensor& tensor) {
  return absl::MakeConstSpan(tensor.shape().data(),
                             static_cast<std::size_t>(std::max(tensor.shape_size(), 0)));
}

Shape ShapeOf(const Tensor& tensor) {
  const absl::Span<const std::uint32_t> shape = ShapeSpan(tensor);
  return Shape(shape.begin(), shape.end());
}

// ---------------------------------------------------------------------------------------------
// The Tensor decoding layer: the only code that reads a Tensor's values, whichever encoding
// (repeated `data` or little-endian `raw_data`, float64 or float32) carries them.

// Bytes per raw_data value; 0 for an unknown dtype.
std::size_t RawElementSize(const Tensor& tensor) {
  switch (tensor.dtype()) {
    case mpcd::v1::DATA_TYPE_FLOAT64:
      return 8;
    case mpcd::v1::DATA_TYPE_FLOAT32:
      return 4;
    default:
      return 0;
  }
}

bool IsRaw(const Tensor& tensor) { return !tensor.raw_data().empty(); }

// The number of values the tensor carries (for raw_data, whole elements; CheckTensorData rejects
// a ragged tail first).
std::uint64_t ValueCount(const Tensor& tensor) {
  if (!IsRaw(tensor)) return static_cast<std::uint64_t>(tensor.data_size());
  const std::size_t size = RawElementSize(tensor);
  return size == 0 ? 0 : tensor.raw_data().size() / size;
}

// Little-endian loads that compile to plain loads on little-endian hosts and stay right elsewhere.
double LoadFloat64(const unsigned char* bytes) {
  std::uint64_t bits = 0;
  for (int k = 7; k >= 0; --k) bits = (bits << 8) | bytes[k];
  double value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

double LoadFloat32(const unsigned char* bytes) {
  std::uint32_t bits = 0;
  for (int k = 3; k >= 0; --k) bits = (bits << 8) | bytes[k];
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return static_cast<double>(value);
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
constexpr bool kLittleEndianHost = true;
#else
constexpr bool kLittleEndianHost = false;
#endif

// Value i of a tensor that passed CheckTensorData (float32 widened exactly to double).
double ValueAt(const Tensor& tensor, std::uint64_t i) {
  if (!IsRaw(tensor)) return tensor.data(static_cast<int>(i));
  const auto* bytes = reinterpret_cast<const unsigned char*>(tensor.raw_data().data());
  return tensor.dtype() == mpcd::v1::DATA_TYPE_FLOAT32 ? LoadFloat32(bytes + 4 * i)
                                                       : LoadFloat64(bytes + 8 * i);
}

// An empty Tensor (no shape, no values) stands for an absent field.
bool IsPresent(const Tensor& tensor) {
  return tensor.shape_size() > 0 || tensor.data_size() > 0 || IsRaw(tensor);
}

// The values must come in one encoding, a raw payload must hold whole elements of a known dtype,
// and there must be exactly prod(shape) values. The product saturates: shape is client-controlled
// and a saturated count never equals a real value count.
absl::Status CheckTensorData(const Tensor& tensor, FieldPath field) {
  if (!IsPresent(tensor)) return absl::OkStatus();
  if (IsRaw(tensor)) {
    if (tensor.data_size() > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(field.str(), ": has both data and raw_data (set one of them)"));
    }
    const std::size_t element = RawElementSize(tensor);
    if (element == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(field.str(), ".dtype: unknown value ", static_cast<int>(tensor.dtype())));
    }
    if (tensor.raw_data().size() % element != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          field.str(), ".raw_data: ", tensor.raw_data().size(), " bytes is not a whole number of ",
          mpcd::v1::DataType_Name(tensor.dtype()), " values (", element, " bytes each)"));
    }
  }
  const std::uint64_t values = ValueCount(tensor);
  if (tensor.shape_size() == 0 && values != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        field.str(), ": has ", values, " values but no shape (set shape, e.g. [", values, "])"));
  }
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t count = 1;
  for (std::uint32_t dim : tensor.shape()) {
    count = (dim != 0 && count > kMax / dim) ? kMax : count * dim;
  }
  if (count != values) {
    return absl::InvalidArgumentError(absl::StrCat(
        field.str(), ": shape ", ShapeString(ShapeOf(tensor)), " needs ",
        count == kMax ? std::string("too many") : absl::StrCat(count), " values, got ", values));
  }
  return absl::OkStatus();
}

// The Tensor that carries `field` of a problem; nullptr for dynamics.model.params (a plain list).
// An unset oneof branch reads as an absent Tensor.
const Tensor* TensorOf(const mpcd::v1::Problem& proto, ArrayField field) {
  switch (field) {
    case ArrayField::kXInit:
      return &proto.x_init();
    case ArrayField::kCostQuadratic:
      return &proto.cost().quadratic();
    case ArrayField::kCostLinear:
      return &proto.cost().linear();
    case ArrayField::kTransition:
      return &proto.dynamics().linear().transition();
    case ArrayField::kOffset:
      return &proto.dynamics().linear().offset();
    case ArrayField::kULower:
      return &proto.u_lower();
    case ArrayField::kUUpper:
      return &proto.u_upper();
    case ArrayField::kUInit:
      return &proto.u_init();
    default:
      return nullptr;
  }
}

// A tensor's shape against the accepted shapes of `field` for `shape` (problem_fields.h, the one
// table); an absent tensor is accepted when the field is optional.
absl::Status CheckTensorShape(const Tensor& tensor, const ArraySpec& spec, FieldPath path) {
  if (!IsPresent(tensor)) return CheckArrayShape(spec, nullptr, path);
  if (ShapeAccepted(spec, ShapeSpan(tensor))) return absl::OkStatus();
  const Shape given = ShapeOf(tensor);
  return CheckArrayShape(spec, &given, path);
}

absl::Status CheckTensorShape(const Tensor& tensor, ArrayField field, const ProblemShape& shape,
                              FieldPath path) {
  return CheckTensorShape(tensor, ArraySpecFor(field, shape), path);
}

// The values of a tensor that passed CheckTensorData, as doubles (empty when absent).
std::vector<double> ToVector(const Tensor& tensor) {
  if (!IsRaw(tensor)) return std::vector<double>(tensor.data().begin(), tensor.data().end());
  const std::uint64_t count = ValueCount(tensor);
  std::vector<double> values(count);
  if (kLittleEndianHost && tensor.dtype() == mpcd::v1::DATA_TYPE_FLOAT64) {
    std::memcpy(values.data(), tensor.raw_data().data(), count * sizeof(double));
    return values;
  }
  for (std::uint64_t i = 0; i < count; ++i) values[i] = ValueAt(tensor, i);
  return values;
}

// A shape-checked tensor's values, in either encoding (the one scan of them; solver arrays are
// scanned by ValidateProblem instead). Read in place: only a bad value's message needs a copy.
absl::Status CheckTensorFinite(const Tensor& tensor, FieldPath path) {
  bool finite = true;
  if (IsRaw(tensor)) {
    const std::uint64_t count = ValueCount(tensor);
    for (std::uint64_t i = 0; i < count; ++i) finite &= std::isfinite(ValueAt(tensor, i));
  } else {
    for (double value : tensor.data()) finite &= std::isfinite(value);
  }
  if (finite) return absl::OkStatus();
  const Shape shape = ShapeOf(tensor);
  return CheckFinite(ToVector(tensor), &shape, path);
}

// ---------------------------------------------------------------------------------------------
// A problem's arrays read where they lie: in its own message, in the template, or as a slice of a
// batched tensor. The conversion decodes them straight into the solver's vectors (one copy from
// the request's bytes), and the merge of a problem with the template and the batch copies none.

// A Tensor's values in place: the whole Tensor (slice < 0), or slice `slice` of a stacked one that
// passed CheckStacked (its first dimension is the batch, so each slice is well formed).
struct TensorRef {
  const Tensor* tensor = &Tensor::default_instance();
  int slice = -1;
};

bool IsPresent(const TensorRef& ref) { return IsPresent(*ref.tensor); }

absl::Span<const std::uint32_t> ShapeSpan(const TensorRef& ref) {
  const absl::Span<const std::uint32_t> shape = ShapeSpan(*ref.tensor);
  return ref.slice < 0 ? shape : shape.subspan(1);
}

Shape ShapeOf(const TensorRef& ref) {
  const absl::Span<const std::uint32_t> shape = ShapeSpan(ref);
  return Shape(shape.begin(), shape.end());
}

absl::Status CheckTensorData(const TensorRef& ref, FieldPath path) {
  return ref.slice < 0 ? CheckTensorData(*ref.tensor, path) : absl::OkStatus();
}

absl::Status CheckTensorShape(const TensorRef& ref, const ArraySpec& spec, FieldPath path) {
  if (!IsPresent(ref)) return CheckArrayShape(spec, nullptr, path);
  if (ShapeAccepted(spec, ShapeSpan(ref))) return absl::OkStatus();
  const Shape given = ShapeOf(ref);
  return CheckArrayShape(spec, &given, path);
}

// Copies `count` little-endian float64 values to `out`; false when one is not finite (the copy
// is the scan: an exponent of all ones is an infinity or a NaN).
bool CopyFiniteFloat64(const unsigned char* bytes, std::size_t count, double* out) {
  constexpr std::uint64_t kExponent = 0x7ff0000000000000;
  std::uint64_t bad = 0;
  if (kLittleEndianHost) {
    for (std::size_t i = 0; i < count; ++i) {
      std::uint64_t bits;
      std::memcpy(&bits, bytes + 8 * i, sizeof(bits));
      bad |= static_cast<std::uint64_t>((bits & kExponent) == kExponent);
      std::memcpy(out + i, &bits, sizeof(bits));
    }
    return bad == 0;
  }
  for (std::size_t i = 0; i < count; ++i) {
    out[i] = LoadFloat64(bytes + 8 * i);
    bad |= static_cast<std::uint64_t>(!std::isfinite(out[i]));
  }
  return bad == 0;
}

// The values of a ref that passed CheckTensorData, decoded straight into *out (empty when absent,
// float32 widened exactly). Returns whether every value is finite.
bool DecodeInto(const TensorRef& ref, std::vector<double>* out) {
  const Tensor& tensor = *ref.tensor;
  std::uint64_t count = ValueCount(tensor);
  std::uint64_t first = 0;
  if (ref.slice >= 0 && IsPresent(tensor)) {
    count /= tensor.shape(0);
    first = static_cast<std::uint64_t>(ref.slice) * count;
  }
  out->resize(count);
  double* values = out->data();
  if (!IsRaw(tensor)) {
    bool finite = true;
    const double* data = tensor.data().data() + first;
    for (std::uint64_t i = 0; i < count; ++i) {
      values[i] = data[i];
      finite &= std::isfinite(data[i]);
    }
    return finite;
  }
  const auto* bytes = reinterpret_cast<const unsigned char*>(tensor.raw_data().data());
  if (tensor.dtype() != mpcd::v1::DATA_TYPE_FLOAT32) {  // (ValueAt's rule)
    return CopyFiniteFloat64(bytes + 8 * first, count, values);
  }
  bool finite = true;
  for (std::uint64_t i = 0; i < count; ++i) {
    values[i] = LoadFloat32(bytes + 4 * (first + i));
    finite &= std::isfinite(values[i]);
  }
  return finite;
}

// A problem as the conversion reads it: its arrays and dynamics where they lie (in its own message,
// a slice of the batched tensors, or the template: MergedSource applies mpcd.proto's merge rule),
// its other fields in `proto`.
struct ProblemSource {
  const mpcd::v1::Problem* proto = nullptr;
  const mpcd::v1::Dynamics* dynamics = nullptr;
  std::array<TensorRef, std::size(kProblemArrays)> arrays;  // by ArrayField; kParams: unused

  const TensorRef& array(ArrayField field) const { return arrays[static_cast<std::size_t>(field)]; }
  TensorRef& array(ArrayField field) { return arrays[static_cast<std::size_t>(field)]; }
};
static_assert(static_cast<std::size_t>(ArrayField::kUInit) + 1 == std::size(kProblemArrays));

// The dynamics' arrays of `source.dynamics` (absent unless it is linear).
void SetDynamicsArrays(const mpcd::v1::Dynamics& dynamics, ProblemSource* source) {
  source->dynamics = &dynamics;
  source->array(ArrayField::kTransition) = {&dynamics.linear().transition()};
  source->array(ArrayField::kOffset) = {&dynamics.linear().offset()};
}

// A whole message as a ProblemSource.
ProblemSource SourceOf(const mpcd::v1::Problem& proto) {
  ProblemSource source;
  source.proto = &proto;
  for (ArrayField field : kProblemArrays) {
    if (const Tensor* tensor = TensorOf(proto, field); tensor != nullptr) {
      source.array(field) = {tensor};
    }
  }
  SetDynamicsArrays(proto.dynamics(), &source);
  return source;
}

void SetTensor(const Shape& shape, const std::vector<double>& data, Tensor* tensor) {
  tensor->Clear();
  for (std::int64_t dim : shape) tensor->add_shape(static_cast<std::uint32_t>(dim));
  tensor->mutable_data()->Assign(data.begin(), data.end());
}

// Rewrites a present Tensor written as repeated doubles into `encoding` (little-endian raw_data,
// float64 bitwise or each value rounded to float32).
// Writes `values` little-endian at `out`: float64 bitwise, or each rounded to float32.
void EncodeValues(absl::Span<const double> values, bool f32, unsigned char* out) {
  if (kLittleEndianHost && !f32) {
    std::memcpy(out, values.data(), values.size() * sizeof(double));
    return;
  }
  const std::size_t element = f32 ? 4 : 8;
  for (double value : values) {
    std::uint64_t bits = 0;
    if (f32) {
      const float narrow = static_cast<float>(value);
      std::uint32_t bits32;
      std::memcpy(&bits32, &narrow, sizeof(bits32));
      bits = bits32;
    } else {
      std::memcpy(&bits, &value, sizeof(bits));
    }
    for (std::size_t k = 0; k < element; ++k, bits >>= 8) *out++ = static_cast<unsigned char>(bits);
  }
}

void EncodeTensor(mpcd::v1::TensorEncoding encoding, Tensor* tensor) {
  if (encoding == mpcd::v1::REPEATED_FLOAT64 || tensor->data_size() == 0) return;
  const bool f32 = encoding == mpcd::v1::RAW_FLOAT32;
  const std::size_t element = f32 ? 4 : 8;
  std::string bytes(element * static_cast<std::size_t>(tensor->data_size()), '\0');
  EncodeValues(tensor->data(), f32, reinterpret_cast<unsigned char*>(bytes.data()));
  tensor->clear_data();
  tensor->set_raw_data(std::move(bytes));
  tensor->set_dtype(f32 ? mpcd::v1::DATA_TYPE_FLOAT32 : mpcd::v1::DATA_TYPE_FLOAT64);
}

// `count` parts (part(b): a span of prod(slice) values; one of another size, e.g. a Jacobian a
// deadline left uncomputed, is written as zeros) stacked as (count, slice...) in `encoding`.
template <typename Part>
void SetStackedTensor(mpcd::v1::TensorEncoding encoding, const Shape& slice, int count, Part part,
                      Tensor* tensor) {
  tensor->Clear();
  tensor->add_shape(static_cast<std::uint32_t>(count));
  std::size_t per = 1;
  for (std::int64_t dim : slice) {
    tensor->add_shape(static_cast<std::uint32_t>(dim));
    per *= static_cast<std::size_t>(dim);
  }
  if (encoding == mpcd::v1::REPEATED_FLOAT64) {
    auto* data = tensor->mutable_data();
    data->Reserve(static_cast<int>(per * count));
    for (int b = 0; b < count; ++b) {
      const absl::Span<const double> values = part(b);
      if (values.size() == per) {
        data->Add(values.begin(), values.end());
      } else {
        for (std::size_t k = 0; k < per; ++k) data->Add(0.0);
      }
    }
    return;
  }
  const bool f32 = encoding == mpcd::v1::RAW_FLOAT32;
  const std::size_t bytes = per * (f32 ? 4 : 8);
  std::string* raw = tensor->mutable_raw_data();
  raw->resize(bytes * count);
  auto* out = reinterpret_cast<unsigned char*>(raw->data());
  for (int b = 0; b < count; ++b, out += bytes) {
    const absl::Span<const double> values = part(b);
    if (values.size() == per) EncodeValues(values, f32, out);  // else the zeros of resize()
  }
  tensor->set_dtype(f32 ? mpcd::v1::DATA_TYPE_FLOAT32 : mpcd::v1::DATA_TYPE_FLOAT64);
}

// (has_x() etc. first: mutable_x() would add an empty x to an answer that has none.)
void EncodeSolutionTensors(mpcd::v1::TensorEncoding encoding, mpcd::v1::Solution* solution) {
  if (solution->has_x()) EncodeTensor(encoding, solution->mutable_x());
  if (solution->has_u()) EncodeTensor(encoding, solution->mutable_u());
  if (solution->has_feedback()) EncodeTensor(encoding, solution->mutable_feedback());
  if (solution->has_feedforward()) EncodeTensor(encoding, solution->mutable_feedforward());
  if (solution->has_x_init_jacobian()) {
    EncodeTensor(encoding, solution->mutable_x_init_jacobian());
  }
  if (solution->has_params_jacobian()) {
    EncodeTensor(encoding, solution->mutable_params_jacobian());
  }
}

// A client-supplied name, quoted for a message; cut short so an error never echoes megabytes back.
std::string Quoted(const std::string& name) {
  constexpr std::size_t kMaxEcho = 64;
  if (name.size() <= kMaxEcho) return absl::StrCat("\"", name, "\"");
  return absl::StrCat("\"", name.substr(0, kMaxEcho), "...\"");
}

std::string KnownModels() {
  std::vector<std::string> names;
  for (const ModelInfo& model : BuiltinModels()) names.push_back(model.name);
  return absl::StrJoin(names, ", ");
}

// Sets problem->shape (dynamics, n, m) and the model fields from a built-in model description.
absl::Status ConvertModel(const mpcd::v1::ModelDynamics& proto, const std::string& prefix,
                          Problem* problem) {
  const FieldPath field(prefix, "dynamics.model.");
  if (proto.name().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field.str(), "name: required (known: ", KnownModels(), ")"));
  }
  const ModelInfo* model = FindModel(proto.name());
  if (model == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(field.str(), "name: unknown model ",
                                                   Quoted(proto.name()), " (known: ", KnownModels(),
                                                   ")"));
  }
  if (!proto.integrator().empty()) {
    if (!model->continuous) {
      return absl::InvalidArgumentError(absl::StrCat(
          field.str(), "integrator: model \"", model->name,
          "\" is discrete-time (its update rule is the model) and takes no integrator; "
          "integrators apply to continuous-time models (ListModels: continuous)"));
    }
    problem->integrator = IntegratorFromName(proto.integrator());
    if (problem->integrator == Integrator::kDefault) {
      return absl::InvalidArgumentError(
          absl::StrCat(field.str(), "integrator: unknown integrator ", Quoted(proto.integrator()),
                       " for model \"", model->name,
                       "\" (known: ", absl::StrJoin(model->integrators, ", "), ")"));
    }
  }
  problem->shape.dynamics = model->id;
  problem->shape.state_dim = model->state_dim;
  problem->shape.control_dim = model->control_dim;
  // params is a plain list: its length is its shape. The message lists the parameters' names.
  const ArraySpec params = ArraySpecFor(ArrayField::kParams, problem->shape);
  const std::int64_t given[] = {proto.params_size()};
  if (proto.params_size() != 0 && !ShapeAccepted<std::int64_t>(params, given)) {
    return absl::InvalidArgumentError(absl::StrCat(
        field.str(), "params: expected ", params.shapes.front().front(), " values (",
        absl::StrJoin(model->param_names, ", "), ") or none, got ", proto.params_size()));
  }
  problem->params.assign(proto.params().begin(), proto.params().end());
  problem->dt = proto.dt();
  return absl::OkStatus();
}

// The graph a GraphDynamics, CostGraph or ConstraintGraph names, from the server's registry; errors
// name the source field (`field` ends with the message's own name and a dot); a graph of the other
// kind (cost or dynamics) is INVALID_ARGUMENT.
template <class GraphProto>
absl::StatusOr<std::shared_ptr<const GraphProgram>> FindGraph(const GraphProto& proto,
                                                              GraphRegistry& graphs,
                                                              const std::string& field, bool cost) {
  absl::StatusOr<std::shared_ptr<const GraphProgram>> graph;
  std::string source;
  switch (proto.source_case()) {
    case GraphProto::kOnnx:
      source = "onnx";
      graph = graphs.Register(proto.onnx());
      break;
    case GraphProto::kSha256:
      source = "sha256";
      graph = graphs.FindBySha256(proto.sha256());
      break;
    case GraphProto::kName:
      source = "name";
      graph = graphs.FindByName(proto.name());
      if (!graph.ok()) graph = absl::InvalidArgumentError(graph.status().message());
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(field, "onnx: required (or ", field, "sha256 or ", field, "name)"));
  }
  if (!graph.ok()) {
    return absl::Status(graph.status().code(),
                        absl::StrCat(field, source, ": ", graph.status().message()));
  }
  if ((*graph)->is_cost != cost) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, source,
        cost ? ": a dynamics graph or a constraint graph (inputs 'x' and 'u'); a cost graph has "
               "the one input 'tau' (n+m) and a scalar output"
             : ": a cost graph (input 'tau'); dynamics and constraint graphs take inputs 'x' and "
               "'u'"));
  }
  return graph;
}

// theta of `graph` with the request's `parameters` by name (the graph's values for the others);
// errors name field + "parameters[...]".
absl::StatusOr<std::vector<double>> GraphParameters(
    const google::protobuf::Map<std::string, Tensor>& parameters, const GraphProgram& graph,
    const std::string& field) {
  std::vector<double> theta = graph.default_params;
  for (const auto& [name, tensor] : parameters) {
    const std::string path = absl::StrCat(field, "parameters[", Quoted(name), "]");
    const GraphParameter* parameter = nullptr;
    std::vector<std::string> names;
    for (const GraphParameter& p : graph.parameters) {
      if (p.name == name) parameter = &p;
      names.push_back(p.name);
    }
    if (parameter == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": the graph has no initializer of that name (it has: ", absl::StrJoin(names, ", "),
          ")"));
    }
    MPC_RETURN_IF_ERROR(CheckTensorData(tensor, path));
    const Shape given = ShapeOf(tensor);
    if (given != parameter->shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": expected shape ", ShapeString(parameter->shape), ", got ", ShapeString(given)));
    }
    const std::vector<double> values = ToVector(tensor);
    MPC_RETURN_IF_ERROR(CheckFinite(values, &given, path));
    std::copy(values.begin(), values.end(), theta.begin() + parameter->offset);
  }
  return theta;
}

// Sets problem->dt and integrator from a GraphDynamics: kDefault for a discrete-time graph, which
// takes neither; a continuous-time graph's integrator ("rk4" unless named). ValidateProblem checks
// the dt of a continuous-time graph.
absl::Status ConvertGraphTimeStep(const mpcd::v1::GraphDynamics& proto, const std::string& field,
                                  Problem* problem) {
  if (!proto.continuous()) {
    const char* given =
        proto.dt() != 0.0 ? "dt" : (!proto.integrator().empty() ? "integrator" : "");
    if (*given != '\0') {
      return absl::InvalidArgumentError(absl::StrCat(
          field, given,
          ": only for a continuous-time graph (set dynamics.graph.continuous when the graph's "
          "output is dx/dt)"));
    }
    return absl::OkStatus();
  }
  problem->dt = proto.dt();
  problem->integrator =
      proto.integrator().empty() ? Integrator::kRk4 : IntegratorFromName(proto.integrator());
  if (problem->integrator == Integrator::kDefault) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, "integrator: unknown integrator ", Quoted(proto.integrator()),
                     " (known: ", absl::StrJoin(IntegratorNames(Integrator::kRk4), ", "), ")"));
  }
  return absl::OkStatus();
}

// Sets problem->shape, graph and params (theta: the graph's values with the request's by name)
// from a GraphDynamics.
absl::Status ConvertGraph(const mpcd::v1::GraphDynamics& proto, const RequestLimits& limits,
                          const std::string& prefix, Problem* problem) {
  const std::string field = prefix + "dynamics.graph.";
  if (limits.graphs == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "dynamics.graph: graph dynamics are not enabled here"));
  }
  MPC_ASSIGN_OR_RETURN(std::shared_ptr<const GraphProgram> graph,
                       FindGraph(proto, *limits.graphs, field, /*cost=*/false));
  if (absl::Status size = CheckDynamicsGraph(*graph); !size.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(field, "onnx: ", size.message()));
  }
  problem->shape.dynamics = DynamicsId::Graph(graph->fingerprint.data());
  problem->shape.state_dim = graph->state_dim;
  problem->shape.control_dim = graph->control_dim;
  MPC_ASSIGN_OR_RETURN(problem->params, GraphParameters(proto.parameters(), *graph, field));
  problem->graph = std::move(graph);
  return ConvertGraphTimeStep(proto, field, problem);
}

// The program and parameters theta of `message`, the CostGraph `name` ("cost_graph" or
// "terminal_cost_graph") of `proto`, once the problem's n and m are known (its input tau must be
// n+m wide), into *graph, *theta and its fingerprint into *fingerprint; errors name the field.
// Not with slew_rate_penalty.
absl::Status ConvertCostGraphField(const mpcd::v1::Problem& proto,
                                   const mpcd::v1::CostGraph& message, const std::string& name,
                                   const RequestLimits& limits, const std::string& prefix,
                                   const Problem& problem,
                                   std::shared_ptr<const GraphProgram>* graph,
                                   std::vector<double>* theta, std::uint64_t* fingerprint) {
  const std::string field = absl::StrCat(prefix, name, ".");
  if (limits.graphs == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, name, ": graphs are not enabled here"));
  }
  MPC_ASSIGN_OR_RETURN(*graph, FindGraph(message, *limits.graphs, field, /*cost=*/true));
  const ProblemShape& shape = problem.shape;
  if ((*graph)->state_dim != shape.tau_dim()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, "onnx: the graph's input 'tau' has ", (*graph)->state_dim,
                     " elements, expected n+m = ", shape.tau_dim(), " (n = ", shape.state_dim,
                     ", m = ", shape.control_dim, ")"));
  }
  MPC_ASSIGN_OR_RETURN(*theta, GraphParameters(message.parameters(), **graph, field));
  std::copy((*graph)->fingerprint.begin(), (*graph)->fingerprint.end(), fingerprint);
  if (proto.slew_rate_penalty() != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "slew_rate_penalty: not supported with ", name, " yet"));
  }
  return absl::OkStatus();
}

// Sets problem->shape.cost_graph, cost_graph and cost_params from a CostGraph, once the problem's
// n and m are known, and zeros for the T slices of C and c the core quadratises the graph into.
absl::Status ConvertCostGraph(const ProblemSource& source, const RequestLimits& limits,
                              const std::string& prefix, Problem* problem) {
  const mpcd::v1::Problem& proto = *source.proto;
  for (const auto& [given, name] :
       {std::pair{IsPresent(source.array(ArrayField::kCostQuadratic)), "cost.quadratic"},
        std::pair{IsPresent(source.array(ArrayField::kCostLinear)), "cost.linear"},
        std::pair{proto.has_tracking(), "tracking"}}) {
    if (given) {
      return absl::InvalidArgumentError(absl::StrCat(prefix, name, ": give either cost_graph or ",
                                                     name, ", not both (cost_graph is the cost)"));
    }
  }
  MPC_RETURN_IF_ERROR(ConvertCostGraphField(proto, proto.cost_graph(), "cost_graph", limits, prefix,
                                            *problem, &problem->cost_graph, &problem->cost_params,
                                            problem->shape.cost_graph));
  const std::size_t T = problem->shape.horizon, nt = problem->shape.tau_dim();
  problem->cost_quadratic.assign(T * nt * nt, 0.0);
  problem->cost_linear.assign(T * nt, 0.0);
  return absl::OkStatus();
}

// Sets problem->shape.terminal_cost_graph, terminal_cost_graph and terminal_cost_params from a
// terminal CostGraph, the cost of t = T-1 in place of the stage cost's (the core quadratises it
// into slice T-1 of C and c).
absl::Status ConvertTerminalCostGraph(const mpcd::v1::Problem& proto, const RequestLimits& limits,
                                      const std::string& prefix, Problem* problem) {
  if (IsPresent(proto.tracking().w_x_terminal())) {
    return absl::InvalidArgumentError(absl::StrCat(
        prefix,
        "tracking.w_x_terminal: give either terminal_cost_graph or "
        "tracking.w_x_terminal, not both (terminal_cost_graph is the cost of t = T-1)"));
  }
  return ConvertCostGraphField(proto, proto.terminal_cost_graph(), "terminal_cost_graph", limits,
                               prefix, *problem, &problem->terminal_cost_graph,
                               &problem->terminal_cost_params, problem->shape.terminal_cost_graph);
}

// Sets problem->shape.constraint_graph, constraint_graph and constraint_params from a
// ConstraintGraph, once the problem's n and m are known: the graph's inputs must be x (n) and
// u (m).
absl::Status ConvertConstraintGraph(const mpcd::v1::Problem& proto, const RequestLimits& limits,
                                    const std::string& prefix, Problem* problem) {
  const std::string field = prefix + "constraint_graph.";
  if (limits.graphs == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "constraint_graph: graphs are not enabled here"));
  }
  if (proto.slew_rate_penalty() != 0) {
    // The slew-rate rewrite augments the state the graph would be given.
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "slew_rate_penalty: not supported with constraint_graph yet"));
  }
  MPC_ASSIGN_OR_RETURN(std::shared_ptr<const GraphProgram> graph,
                       FindGraph(proto.constraint_graph(), *limits.graphs, field, /*cost=*/false));
  ProblemShape& shape = problem->shape;
  // A graph of x alone (no input 'u') has control_dim 0.
  const int control_dim = graph->control_dim == 0 ? shape.control_dim : graph->control_dim;
  for (const auto& [given, expected, input, letter] :
       {std::tuple{graph->state_dim, shape.state_dim, "x", "n"},
        std::tuple{control_dim, shape.control_dim, "u", "m"}}) {
    if (given != expected) {
      return absl::InvalidArgumentError(absl::StrCat(field, "onnx: the graph's input '", input,
                                                     "' has ", given, " elements, expected ",
                                                     letter, " = ", expected));
    }
  }
  MPC_ASSIGN_OR_RETURN(problem->constraint_params,
                       GraphParameters(proto.constraint_graph().parameters(), *graph, field));
  std::copy(graph->fingerprint.begin(), graph->fingerprint.end(), shape.constraint_graph);
  problem->constraint_graph = std::move(graph);
  return absl::OkStatus();
}

// Linear dynamics: n comes from x_init, m from the last dimension of the transition. Messages
// describe the accepted shapes with what is still unknown written "n" or "m".
absl::Status ConvertLinearShape(const ProblemSource& source, int horizon,
                                const RequestLimits& limits, const std::string& prefix,
                                Problem* problem) {
  ProblemShape& shape = problem->shape;
  shape.dynamics = DynamicsId::Linear();
  shape.horizon = horizon;
  const TensorRef& x_init = source.array(ArrayField::kXInit);
  // (Field paths and the shapes' descriptions are spelled out only for a message.)
  const auto x_expected = [horizon] { return DescribeShapes(ArrayField::kXInit, horizon, {}, {}); };
  if (!IsPresent(x_init)) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "x_init: required, expected shape ", x_expected()));
  }
  const absl::Span<const std::uint32_t> x_shape = ShapeSpan(x_init);
  if (x_shape.size() != 1 || x_shape[0] < 1) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "x_init: expected shape ", x_expected(),
                                                   " with n >= 1, got ",
                                                   ShapeString(ShapeOf(x_init))));
  }
  const std::int64_t n = x_shape[0];
  // Checked before n sizes anything (m is 0 until known).
  shape.state_dim = static_cast<int>(std::min<std::int64_t>(n, std::numeric_limits<int>::max()));
  MPC_RETURN_IF_ERROR(CheckProblemLimits(shape, limits.problem, prefix));

  const TensorRef& transition = source.array(ArrayField::kTransition);
  const auto expected = [horizon, n] {
    return absl::StrCat(DescribeShapes(ArrayField::kTransition, horizon, n, {}), " with m >= 1");
  };
  if (!IsPresent(transition)) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "dynamics.linear.transition: required, expected shape ", expected()));
  }
  // m from the last dimension, then the whole shape against the table.
  const absl::Span<const std::uint32_t> given = ShapeSpan(transition);
  const std::int64_t m = given.empty() ? 0 : std::int64_t{given.back()} - n;
  if (m >= 1) {
    shape.control_dim =
        static_cast<int>(std::min<std::int64_t>(m, std::numeric_limits<int>::max()));
  }
  if (m < 1 || !ShapeAccepted(ArraySpecFor(ArrayField::kTransition, shape), given)) {
    shape.control_dim = 0;
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "dynamics.linear.transition: expected shape ", expected(), ", got ",
                     ShapeString(ShapeOf(transition))));
  }
  return CheckProblemLimits(shape, limits.problem, prefix);
}

// The shapes of a problem's gradients that follow its request (BackwardResponse: each input's
// own shape, and the rule for absent ones); transition and offset only for linear dynamics.
struct GradientShapes {
  Shape cost_quadratic;
  Shape cost_linear;
  Shape transition;
  Shape offset;
  // Stage constraints: as sent (empty when absent).
  Shape x_lower;
  Shape x_upper;
  Shape constraint_G;
  Shape constraint_h;
  // A tracking cost's inputs as sent (empty when absent; false without tracking).
  bool tracking = false;
  std::array<Shape, 5> tracking_inputs;

  friend bool operator==(const GradientShapes& a, const GradientShapes& b) {
    return a.cost_quadratic == b.cost_quadratic && a.cost_linear == b.cost_linear &&
           a.transition == b.transition && a.offset == b.offset && a.x_lower == b.x_lower &&
           a.x_upper == b.x_upper && a.constraint_G == b.constraint_G &&
           a.constraint_h == b.constraint_h && a.tracking == b.tracking &&
           a.tracking_inputs == b.tracking_inputs;
  }
};

// `in`: the merged problem as the request gave it; `shape`: its converted shape.
GradientShapes GradientShapesOf(const ProblemSource& source, const ProblemShape& shape) {
  const mpcd::v1::Problem& in = *source.proto;
  const std::int64_t n = shape.state_dim;
  GradientShapes shapes;
  shapes.cost_quadratic = ShapeOf(source.array(ArrayField::kCostQuadratic));
  const TensorRef& cost_linear = source.array(ArrayField::kCostLinear);
  shapes.cost_linear = IsPresent(cost_linear) ? ShapeOf(cost_linear) : Shape{shape.tau_dim()};
  if (source.dynamics->kind_case() == mpcd::v1::Dynamics::kLinear) {
    const TensorRef& transition = source.array(ArrayField::kTransition);
    const TensorRef& offset = source.array(ArrayField::kOffset);
    shapes.transition = ShapeOf(transition);
    // An absent offset: laid out as the transition's slices (see ProblemGradient).
    const Shape absent = ShapeSpan(transition).size() == 3 ? Shape{shape.horizon - 1, n} : Shape{n};
    shapes.offset = IsPresent(offset) ? ShapeOf(offset) : absent;
  }
  shapes.x_lower = ShapeOf(in.x_lower());
  shapes.x_upper = ShapeOf(in.x_upper());
  shapes.constraint_G = ShapeOf(in.constraints().g());
  shapes.constraint_h = ShapeOf(in.constraints().h());
  shapes.tracking = in.has_tracking();
  const mpcd::v1::TrackingCost& tracking = in.tracking();
  shapes.tracking_inputs = {ShapeOf(tracking.x_goal()), ShapeOf(tracking.u_goal()),
                            ShapeOf(tracking.w_x()), ShapeOf(tracking.w_u()),
                            ShapeOf(tracking.w_x_terminal())};
  return shapes;
}

void ToProtoDiagnostics(const ProblemGradient& gradient, mpcd::v1::GradientDiagnostics* out) {
  out->set_status(ToProtoGradientStatus(gradient.status));
  out->set_regularization(gradient.regularization);
  out->set_condition_estimate(gradient.condition_estimate);
  out->set_stationarity_residual(gradient.stationarity_residual);
  out->set_dynamics_residual(gradient.dynamics_residual);
  out->set_active_controls(static_cast<std::uint32_t>(gradient.active_controls));
  out->set_active_constraints(static_cast<std::uint32_t>(gradient.active_constraints));
  out->set_weakly_active_constraints(
      static_cast<std::uint32_t>(gradient.weakly_active_constraints));
}

bool AllFinite(const std::vector<double>& values) {
  for (double v : values) {
    if (!std::isfinite(v)) return false;
  }
  return true;
}

void ToProtoJacobianDiagnostics(const JacobianDiagnostics& d,
                                mpcd::v1::GradientDiagnostics* diagnostics) {
  diagnostics->set_status(ToProtoGradientStatus(d.status));
  diagnostics->set_regularization(d.regularization);
  diagnostics->set_condition_estimate(d.condition_estimate);
  diagnostics->set_stationarity_residual(d.stationarity_residual);
  diagnostics->set_dynamics_residual(d.dynamics_residual);
  diagnostics->set_active_controls(static_cast<std::uint32_t>(d.active_controls));
  diagnostics->set_active_constraints(static_cast<std::uint32_t>(d.active_constraints));
  diagnostics->set_weakly_active_constraints(
      static_cast<std::uint32_t>(d.weakly_active_constraints));
}

// The Jacobians the backend computed for `solution` (ComputeRequestedJacobians), as
// problem.options asked; nothing is computed here.
void CopyJacobians(const Problem& problem, const Solution& solution, mpcd::v1::Solution* out) {
  const std::int64_t T = problem.shape.horizon;
  const std::int64_t nt = problem.shape.tau_dim();
  ToProtoJacobianDiagnostics(solution.jacobian_diagnostics, out->mutable_jacobian_diagnostics());
  // The last dimension follows from the array: n for x_init, the model's p for params.
  const auto add = [T, nt](const std::vector<double>& values, mpcd::v1::Tensor* tensor) {
    const std::int64_t cols = static_cast<std::int64_t>(values.size()) / (T * nt);
    SetTensor({T, nt, cols}, values, tensor);
  };
  if (!solution.x_init_jacobian.empty())
    add(solution.x_init_jacobian, out->mutable_x_init_jacobian());
  if (!solution.params_jacobian.empty())
    add(solution.params_jacobian, out->mutable_params_jacobian());
}

// ---------------------------------------------------------------------------------------------
// The request's problem_template (mpcd.proto, Problem's merge rule).

// The template's own tensors must be well formed and finite; errors name the template.
absl::Status CheckTemplate(const mpcd::v1::Problem& shared) {
  const std::string p = "problem_template.";
  const std::pair<const Tensor*, const char*> tensors[] = {
      {&shared.x_init(), "x_init"},
      {&shared.cost().quadratic(), "cost.quadratic"},
      {&shared.cost().linear(), "cost.linear"},
      {&shared.dynamics().linear().transition(), "dynamics.linear.transition"},
      {&shared.dynamics().linear().offset(), "dynamics.linear.offset"},
      {&shared.u_lower(), "u_lower"},
      {&shared.u_upper(), "u_upper"},
      {&shared.u_init(), "u_init"},
      {&shared.prev_ctrl(), "prev_ctrl"},
      {&shared.u_zero_mask(), "u_zero_mask"},
      {&shared.tracking().x_goal(), "tracking.x_goal"},
      {&shared.tracking().u_goal(), "tracking.u_goal"},
      {&shared.tracking().w_x(), "tracking.w_x"},
      {&shared.tracking().w_u(), "tracking.w_u"},
      {&shared.tracking().w_x_terminal(), "tracking.w_x_terminal"},
  };
  for (const auto& [tensor, name] : tensors) {
    MPC_RETURN_IF_ERROR(CheckTensorData(*tensor, FieldPath(p, name)));
    MPC_RETURN_IF_ERROR(CheckTensorFinite(*tensor, FieldPath(p, name)));
  }
  // State bounds may hold +-inf (ConvertStageConstraints checks the merged problem's).
  for (const auto& [tensor, name] :
       {std::pair{&shared.x_lower(), "x_lower"}, std::pair{&shared.x_upper(), "x_upper"},
        std::pair{&shared.constraints().g(), "constraints.G"},
        std::pair{&shared.constraints().h(), "constraints.h"}}) {
    MPC_RETURN_IF_ERROR(CheckTensorData(*tensor, FieldPath(p, name)));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// mpc.pytorch's u_zero_I and slew_rate_penalty (solver/pytorch_terms.h).

// An optional tensor of exactly `expected` (absent is fine), finite.
absl::Status CheckExtraTensor(const Tensor& tensor, const char* name, const SpecShape& expected,
                              FieldPath path) {
  MPC_RETURN_IF_ERROR(CheckTensorData(tensor, path));
  ArraySpec spec;
  spec.name = name;
  spec.shapes = {expected};
  spec.optional = true;
  if (!IsPresent(tensor)) return absl::OkStatus();
  MPC_RETURN_IF_ERROR(CheckTensorShape(tensor, spec, path));
  return CheckTensorFinite(tensor, path);
}

// Validates slew_rate_penalty, prev_ctrl and u_zero_mask of a converted, validated problem and
// rewrites it with them.
absl::Status ApplyPytorchTerms(const mpcd::v1::Problem& proto, const std::string& p,
                               Problem* problem) {
  const int T = problem->shape.horizon;
  const int m = problem->shape.control_dim;
  MPC_RETURN_IF_ERROR(
      CheckExtraTensor(proto.prev_ctrl(), "prev_ctrl", {m}, FieldPath(p, "prev_ctrl")));
  MPC_RETURN_IF_ERROR(
      CheckExtraTensor(proto.u_zero_mask(), "u_zero_mask", {T, m}, FieldPath(p, "u_zero_mask")));
  const double gamma = proto.slew_rate_penalty();
  if (!(std::isfinite(gamma) && gamma >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(p, "slew_rate_penalty: must be >= 0 and finite, got ", gamma));
  }
  if (IsPresent(proto.u_zero_mask())) {
    const std::vector<double> mask = ToVector(proto.u_zero_mask());
    for (std::size_t e = 0; e < mask.size(); ++e) {
      if (mask[e] == 0.0 || mask[e] == 1.0) continue;
      return absl::InvalidArgumentError(absl::StrCat(p, "u_zero_mask: must be 0 or 1, got ",
                                                     mask[e], " at [", e / m, ",", e % m, "]"));
    }
    PinZeroedControls(mask, problem);
  }
  if (gamma == 0) return absl::OkStatus();
  if (StageConstraintRows(*problem) > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(p, "slew_rate_penalty: not supported with state bounds or constraints yet"));
  }
  if (!problem->shape.dynamics.is_linear() && !problem->shape.dynamics.is_graph()) {
    return absl::InvalidArgumentError(absl::StrCat(
        p,
        "slew_rate_penalty: needs linear or graph dynamics (mpcd solves it as mpc.pytorch "
        "does, with u_{t-1} in the state; built-in models are not augmented yet)"));
  }
  if (problem->shape.dynamics.is_graph() && problem->integrator != Integrator::kDefault) {
    // The pass-through state u_{t-1} would be integrated as a derivative.
    return absl::InvalidArgumentError(absl::StrCat(
        p,
        "slew_rate_penalty: needs discrete-time dynamics (continuous-time graphs are not "
        "augmented yet)"));
  }
  AugmentWithSlewRate(gamma, ToVector(proto.prev_ctrl()), problem);
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// State bounds and stage constraints (solver/stage_constraints.h validates their values).

// x_lower, x_upper and constraints {G, h}: well-formed tensors of the accepted shapes (k, G's
// first dimension after T, is the row count), copied into `problem`.
absl::Status ConvertStageConstraints(const mpcd::v1::Problem& proto, const std::string& p,
                                     Problem* problem) {
  const std::int64_t T = problem->shape.horizon, n = problem->shape.state_dim,
                     nt = problem->shape.tau_dim();
  for (const auto& [tensor, name] :
       {std::pair{&proto.x_lower(), "x_lower"}, std::pair{&proto.x_upper(), "x_upper"}}) {
    MPC_RETURN_IF_ERROR(CheckTensorData(*tensor, FieldPath(p, name)));
    if (!IsPresent(*tensor)) continue;
    ArraySpec spec;
    spec.name = name;
    spec.shapes = {{n}, {T, n}};
    MPC_RETURN_IF_ERROR(CheckTensorShape(*tensor, spec, FieldPath(p, name)));
  }
  problem->x_lower = ToVector(proto.x_lower());
  problem->x_upper = ToVector(proto.x_upper());

  const Tensor& G = proto.constraints().g();
  const Tensor& h = proto.constraints().h();
  MPC_RETURN_IF_ERROR(CheckTensorData(G, FieldPath(p, "constraints.G")));
  MPC_RETURN_IF_ERROR(CheckTensorData(h, FieldPath(p, "constraints.h")));
  if (!IsPresent(G) && !IsPresent(h)) return absl::OkStatus();
  if (!IsPresent(G) || !IsPresent(h)) {
    const char* missing = IsPresent(G) ? "constraints.h" : "constraints.G";
    return absl::InvalidArgumentError(
        absl::StrCat(p, missing, ": required (give constraints.G and constraints.h together)"));
  }
  const Shape g_shape = ShapeOf(G);
  const bool g_varies = g_shape.size() == 3;
  if (!((g_shape.size() == 2 && g_shape[0] >= 1 && g_shape[1] == nt) ||
        (g_varies && g_shape[0] == T && g_shape[1] >= 1 && g_shape[2] == nt))) {
    return absl::InvalidArgumentError(absl::StrCat(p, "constraints.G: expected shape (k,", nt,
                                                   ") or (", T, ",k,", nt, ") with k >= 1, got ",
                                                   ShapeString(g_shape)));
  }
  const std::int64_t k = g_shape[g_varies ? 1 : 0];
  ArraySpec h_spec;
  h_spec.name = "constraints.h";
  h_spec.shapes = {{k}, {T, k}};
  const Shape h_shape = ShapeOf(h);
  MPC_RETURN_IF_ERROR(CheckArrayShape(h_spec, &h_shape, p + "constraints.h"));
  problem->constraint_count = static_cast<int>(k);
  problem->constraint_G = ToVector(G);
  problem->constraint_h = ToVector(h);
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Problem.tracking (solver/tracking_cost.h).

// Weights (k per step, one or more steps) must be >= 0; the message names the first negative one.
absl::Status CheckNonNegative(const std::vector<double>& values, int k, FieldPath path) {
  for (std::size_t e = 0; e < values.size(); ++e) {
    if (values[e] >= 0) continue;
    const std::string at = values.size() > static_cast<std::size_t>(k)
                               ? absl::StrCat("[", e / k, ",", e % k, "]")
                               : absl::StrCat("[", e, "]");
    return absl::InvalidArgumentError(
        absl::StrCat(path.str(), ": weights must be >= 0, got ", values[e], " at ", at));
  }
  return absl::OkStatus();
}

// One tracking input of k values per step: (k) or (T, k), finite, >= 0 for a weight; absent takes
// `absent` at every step.
absl::StatusOr<TrackingInput> ToTrackingInput(const Tensor& tensor, const char* name, int horizon,
                                              int k, bool required, bool weight, double absent,
                                              FieldPath path) {
  MPC_RETURN_IF_ERROR(CheckTensorData(tensor, path));
  TrackingInput input;
  if (!IsPresent(tensor)) {
    if (required) {
      return absl::InvalidArgumentError(
          absl::StrCat(path.str(), ": required (", name, " (", k, ") or (", horizon, ",", k, "))"));
    }
    input.values.assign(k, absent);
    return input;
  }
  ArraySpec spec;
  spec.name = name;
  spec.shapes = {{k}, {horizon, k}};
  MPC_RETURN_IF_ERROR(CheckTensorShape(tensor, spec, path));
  MPC_RETURN_IF_ERROR(CheckTensorFinite(tensor, path));
  input.values = ToVector(tensor);
  input.per_step = tensor.shape_size() == 2;
  if (weight) MPC_RETURN_IF_ERROR(CheckNonNegative(input.values, k, path));
  return input;
}

// The goals and weights of `proto` for `shape` (errors name `p` + "tracking.<field>").
absl::StatusOr<TrackingCost> ToTrackingCost(const mpcd::v1::TrackingCost& proto,
                                            const ProblemShape& shape, const std::string& p) {
  const int T = shape.horizon;
  const int n = shape.state_dim;
  const int m = shape.control_dim;
  const std::string path = p + "tracking.";
  TrackingCost tracking;
  MPC_ASSIGN_OR_RETURN(tracking.x_goal, ToTrackingInput(proto.x_goal(), "x_goal", T, n, true, false,
                                                        0.0, path + "x_goal"));
  MPC_ASSIGN_OR_RETURN(tracking.u_goal, ToTrackingInput(proto.u_goal(), "u_goal", T, m, false,
                                                        false, 0.0, path + "u_goal"));
  MPC_ASSIGN_OR_RETURN(tracking.w_x,
                       ToTrackingInput(proto.w_x(), "w_x", T, n, false, true, 1.0, path + "w_x"));
  MPC_ASSIGN_OR_RETURN(tracking.w_u,
                       ToTrackingInput(proto.w_u(), "w_u", T, m, false, true, 1.0, path + "w_u"));
  MPC_RETURN_IF_ERROR(
      CheckExtraTensor(proto.w_x_terminal(), "w_x_terminal", {n}, path + "w_x_terminal"));
  tracking.w_x_terminal = ToVector(proto.w_x_terminal());
  MPC_RETURN_IF_ERROR(CheckNonNegative(tracking.w_x_terminal, n, path + "w_x_terminal"));
  return tracking;
}

// Replaces the problem's (absent) cost by `proto`'s tracking cost; the request may not give both.
absl::Status ApplyTracking(const mpcd::v1::Problem& proto, const std::string& p, Problem* problem) {
  MPC_ASSIGN_OR_RETURN(const TrackingCost tracking,
                       ToTrackingCost(proto.tracking(), problem->shape, p));
  SetTrackingCost(tracking, problem);
  return absl::OkStatus();
}

// A tracking cost stands in for the whole cost.
absl::Status CheckTrackingAlone(const ProblemSource& source, const std::string& p) {
  if (!source.proto->has_tracking()) return absl::OkStatus();
  if (IsPresent(source.array(ArrayField::kCostQuadratic)) ||
      IsPresent(source.array(ArrayField::kCostLinear))) {
    return absl::InvalidArgumentError(absl::StrCat(
        p, "tracking: give either tracking or cost, not both (tracking becomes the cost)"));
  }
  return absl::OkStatus();
}

// Request-level checks shared by Solve and Backward.
absl::Status CheckHorizonAndCount(std::uint32_t horizon, int problems,
                                  const RequestLimits& limits) {
  if (horizon < 1) {
    return absl::InvalidArgumentError("horizon: must be >= 1, got 0");
  }
  if (horizon > static_cast<std::uint32_t>(limits.problem.max_horizon)) {
    return absl::InvalidArgumentError(
        absl::StrCat("horizon: must be <= ", limits.problem.max_horizon, ", got ", horizon));
  }
  if (problems == 0) {
    return absl::InvalidArgumentError("problems: must not be empty");
  }
  if (problems > limits.max_problems) {
    return absl::InvalidArgumentError(
        absl::StrCat("problems: at most ", limits.max_problems, " per request, got ", problems));
  }
  return absl::OkStatus();
}

void FillOtherFieldsFromTemplate(const mpcd::v1::Problem& shared, mpcd::v1::Problem* merged);

// Fills every field `merged` leaves absent from `shared` (the template).
void FillFromTemplate(const mpcd::v1::Problem& shared, mpcd::v1::Problem* merged) {
  const auto fill = [](const Tensor& from, Tensor* to) {
    if (!IsPresent(*to) && IsPresent(from)) *to = from;
  };
  fill(shared.x_init(), merged->mutable_x_init());
  fill(shared.cost().quadratic(), merged->mutable_cost()->mutable_quadratic());
  fill(shared.cost().linear(), merged->mutable_cost()->mutable_linear());
  if (merged->dynamics().kind_case() == mpcd::v1::Dynamics::KIND_NOT_SET &&
      shared.dynamics().kind_case() != mpcd::v1::Dynamics::KIND_NOT_SET) {
    *merged->mutable_dynamics() = shared.dynamics();
  }
  fill(shared.u_lower(), merged->mutable_u_lower());
  fill(shared.u_upper(), merged->mutable_u_upper());
  fill(shared.u_init(), merged->mutable_u_init());
  FillOtherFieldsFromTemplate(shared, merged);
}

// The fields of Problem other than its arrays (kProblemArrays) and its dynamics, in the order of
// mpcd.proto. FillFromTemplate fills these and the others; MergedSource leaves the others where
// they lie. (ProblemTemplate.MergeKnowsEveryProblemField keeps the list of fields complete.)
void FillOtherFieldsFromTemplate(const mpcd::v1::Problem& shared, mpcd::v1::Problem* merged) {
  if (merged->slew_rate_penalty() == 0) merged->set_slew_rate_penalty(shared.slew_rate_penalty());
  // (mutable_*() only to write: it would add an empty message to each merged problem.)
  if (!IsPresent(merged->prev_ctrl()) && IsPresent(shared.prev_ctrl())) {
    *merged->mutable_prev_ctrl() = shared.prev_ctrl();
  }
  if (!IsPresent(merged->u_zero_mask()) && IsPresent(shared.u_zero_mask())) {
    *merged->mutable_u_zero_mask() = shared.u_zero_mask();
  }
  if (!IsPresent(merged->x_lower()) && IsPresent(shared.x_lower())) {
    *merged->mutable_x_lower() = shared.x_lower();
  }
  if (!IsPresent(merged->x_upper()) && IsPresent(shared.x_upper())) {
    *merged->mutable_x_upper() = shared.x_upper();
  }
  if (!merged->has_constraints() && shared.has_constraints()) {
    *merged->mutable_constraints() = shared.constraints();
  }
  if (!merged->has_tracking() && shared.has_tracking()) {
    *merged->mutable_tracking() = shared.tracking();
  }
  if (!merged->has_cost_graph() && shared.has_cost_graph()) {
    *merged->mutable_cost_graph() = shared.cost_graph();
  }
  if (!merged->has_terminal_cost_graph() && shared.has_terminal_cost_graph()) {
    *merged->mutable_terminal_cost_graph() = shared.terminal_cost_graph();
  }
  if (!merged->has_constraint_graph() && shared.has_constraint_graph()) {
    *merged->mutable_constraint_graph() = shared.constraint_graph();
  }
}

// ---------------------------------------------------------------------------------------------
// Tensors stacked along a leading batch axis (BatchedProblems, StackedSolutions, stacked
// cotangents): checked once as a whole, then cut into per-problem slices in their own encoding.

// A stacked tensor must be well formed and have `count` as its first dimension. Its values are
// scanned once, per problem, by the problem's own validation; only when that fails does
// StackedValuesError look at the stacked tensors as a whole, to name the one at fault.
absl::Status CheckStacked(const Tensor& stacked, int count, const std::string& path) {
  if (!IsPresent(stacked)) return absl::OkStatus();
  MPC_RETURN_IF_ERROR(CheckTensorData(stacked, path));
  if (stacked.shape_size() < 1 || stacked.shape(0) != static_cast<std::uint32_t>(count)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": expected the batch (", count,
                                                   " problems) as the first dimension, got shape ",
                                                   ShapeString(ShapeOf(stacked))));
  }
  return absl::OkStatus();
}

// The error of the first stacked tensor (path: name) whose values are not finite: when a problem
// fails its validation, the stacked tensor it took a bad value from is named instead, once.
absl::Status StackedValuesError(const std::vector<std::pair<const Tensor*, std::string>>& stacked) {
  for (const auto& [tensor, path] : stacked) MPC_RETURN_IF_ERROR(CheckTensorFinite(*tensor, path));
  return absl::OkStatus();
}

// Slice b of a stacked tensor that passed CheckStacked, in the stacked tensor's encoding.
void SliceTensor(const Tensor& stacked, int b, Tensor* slice) {
  slice->Clear();
  slice->mutable_shape()->Add(stacked.shape().begin() + 1, stacked.shape().end());
  const std::uint64_t values = ValueCount(stacked) / stacked.shape(0);
  if (IsRaw(stacked)) {
    const std::size_t bytes = values * RawElementSize(stacked);
    slice->mutable_raw_data()->assign(stacked.raw_data().data() + b * bytes, bytes);
    slice->set_dtype(stacked.dtype());
  } else {
    const auto begin = stacked.data().begin() + static_cast<std::ptrdiff_t>(b * values);
    slice->mutable_data()->Add(begin, begin + static_cast<std::ptrdiff_t>(values));
  }
}

// The request's batched tensors with the names errors give them.
std::vector<std::pair<const Tensor*, std::string>> BatchedTensors(
    const mpcd::v1::BatchedProblems& batched) {
  return {{&batched.x_init(), "batched.x_init"},
          {&batched.cost_quadratic(), "batched.cost_quadratic"},
          {&batched.cost_linear(), "batched.cost_linear"},
          {&batched.transition(), "batched.transition"},
          {&batched.offset(), "batched.offset"},
          {&batched.u_lower(), "batched.u_lower"},
          {&batched.u_upper(), "batched.u_upper"},
          {&batched.u_init(), "batched.u_init"},
          {&batched.model_params(), "batched.model_params"},
          {&batched.prev_ctrl(), "batched.prev_ctrl"},
          {&batched.u_zero_mask(), "batched.u_zero_mask"},
          {&batched.tracking().x_goal(), "batched.tracking.x_goal"},
          {&batched.tracking().u_goal(), "batched.tracking.u_goal"},
          {&batched.tracking().w_x(), "batched.tracking.w_x"},
          {&batched.tracking().w_u(), "batched.tracking.w_u"},
          {&batched.tracking().w_x_terminal(), "batched.tracking.w_x_terminal"}};
}

// The number of problems of a request: batched.count when it is set, else the listed problems.
// Checks `batched` as a whole (the slices are checked as each problem's fields).
absl::StatusOr<int> CheckBatched(const mpcd::v1::BatchedProblems& batched, int listed,
                                 const RequestLimits& limits) {
  if (!batched.graph_parameters().empty()) {
    return absl::InvalidArgumentError(
        "batched.graph_parameters: only in responses (send a graph's parameters in "
        "dynamics.graph.parameters)");
  }
  if (!batched.cost_graph_parameters().empty()) {
    return absl::InvalidArgumentError(
        "batched.cost_graph_parameters: only in responses (send a cost graph's parameters in "
        "cost_graph.parameters)");
  }
  if (!batched.terminal_cost_graph_parameters().empty()) {
    return absl::InvalidArgumentError(
        "batched.terminal_cost_graph_parameters: only in responses (send a terminal cost graph's "
        "parameters in terminal_cost_graph.parameters)");
  }
  if (!batched.constraint_graph_parameters().empty()) {
    return absl::InvalidArgumentError(
        "batched.constraint_graph_parameters: only in responses (send a constraint graph's "
        "parameters in constraint_graph.parameters)");
  }
  for (const auto& [tensor, name] : {std::pair{&batched.x_lower(), "batched.x_lower"},
                                     {&batched.x_upper(), "batched.x_upper"},
                                     {&batched.constraint_g(), "batched.constraint_G"},
                                     {&batched.constraint_h(), "batched.constraint_h"}}) {
    if (IsPresent(*tensor)) {
      return absl::InvalidArgumentError(
          absl::StrCat(name,
                       ": only in responses (send stage constraints in problem_template or each "
                       "problem)"));
    }
  }
  const auto tensors = BatchedTensors(batched);
  const bool any = std::any_of(tensors.begin(), tensors.end(),
                               [](const auto& entry) { return IsPresent(*entry.first); });
  if (batched.count() == 0) {
    if (any) {
      return absl::InvalidArgumentError(
          "batched.count: required (the number of problems B >= 1) with batched tensors");
    }
    return listed;
  }
  if (batched.count() > static_cast<std::uint32_t>(limits.max_problems)) {
    return absl::InvalidArgumentError(absl::StrCat("batched.count: at most ", limits.max_problems,
                                                   " per request, got ", batched.count()));
  }
  const int count = static_cast<int>(batched.count());
  if (listed != 0 && listed != count) {
    return absl::InvalidArgumentError(
        absl::StrCat("batched.count: ", count, " but the request lists ", listed,
                     " problems (list none, or exactly batched.count)"));
  }
  if (IsPresent(batched.offset()) && !IsPresent(batched.transition())) {
    return absl::InvalidArgumentError("batched.offset: only with batched.transition");
  }
  if (IsPresent(batched.model_params()) && batched.model_params().shape_size() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("batched.model_params: expected shape (B, p), got ",
                     ShapeString(ShapeOf(batched.model_params()))));
  }
  for (const auto& [tensor, path] : tensors) {
    MPC_RETURN_IF_ERROR(CheckStacked(*tensor, count, path));
  }
  return count;
}

void FillOtherFieldsFromBatch(const mpcd::v1::BatchedProblems& batched, int b,
                              mpcd::v1::Problem* merged);

// Fills every field `merged` leaves absent from its slice b of `batched` (model_params apart:
// they fill the params of the dynamics the template may still give, see FillModelParams).
void FillFromBatch(const mpcd::v1::BatchedProblems& batched, int b, mpcd::v1::Problem* merged) {
  const auto fill = [b](const Tensor& stacked, Tensor* to) {
    if (!IsPresent(*to) && IsPresent(stacked)) SliceTensor(stacked, b, to);
  };
  fill(batched.x_init(), merged->mutable_x_init());
  fill(batched.cost_quadratic(), merged->mutable_cost()->mutable_quadratic());
  fill(batched.cost_linear(), merged->mutable_cost()->mutable_linear());
  if (merged->dynamics().kind_case() == mpcd::v1::Dynamics::KIND_NOT_SET &&
      IsPresent(batched.transition())) {
    mpcd::v1::LinearDynamics* linear = merged->mutable_dynamics()->mutable_linear();
    SliceTensor(batched.transition(), b, linear->mutable_transition());
    if (IsPresent(batched.offset())) SliceTensor(batched.offset(), b, linear->mutable_offset());
  }
  fill(batched.u_lower(), merged->mutable_u_lower());
  fill(batched.u_upper(), merged->mutable_u_upper());
  fill(batched.u_init(), merged->mutable_u_init());
  FillOtherFieldsFromBatch(batched, b, merged);
}

// FillFromBatch's fields other than the arrays and the dynamics (prev_ctrl and u_zero_mask).
void FillOtherFieldsFromBatch(const mpcd::v1::BatchedProblems& batched, int b,
                              mpcd::v1::Problem* merged) {
  if (!IsPresent(merged->prev_ctrl()) && IsPresent(batched.prev_ctrl())) {
    SliceTensor(batched.prev_ctrl(), b, merged->mutable_prev_ctrl());
  }
  if (!IsPresent(merged->u_zero_mask()) && IsPresent(batched.u_zero_mask())) {
    SliceTensor(batched.u_zero_mask(), b, merged->mutable_u_zero_mask());
  }
}

// The tracking cost of a problem that has none of its own, from batched.tracking: each tracking
// input is its slice b where the batch has it, else the template's (mpcd.proto's merge rule).
void FillTrackingFromBatch(const mpcd::v1::BatchedProblems& batched, int b,
                           const mpcd::v1::Problem* shared, mpcd::v1::Problem* merged) {
  if (merged->has_tracking() || !batched.has_tracking()) return;
  const mpcd::v1::TrackingCost& from_template =
      shared != nullptr ? shared->tracking() : mpcd::v1::TrackingCost::default_instance();
  mpcd::v1::TrackingCost* tracking = merged->mutable_tracking();
  for (const auto& [stacked, given, to] :
       {std::tuple{&batched.tracking().x_goal(), &from_template.x_goal(),
                   tracking->mutable_x_goal()},
        {&batched.tracking().u_goal(), &from_template.u_goal(), tracking->mutable_u_goal()},
        {&batched.tracking().w_x(), &from_template.w_x(), tracking->mutable_w_x()},
        {&batched.tracking().w_u(), &from_template.w_u(), tracking->mutable_w_u()},
        {&batched.tracking().w_x_terminal(), &from_template.w_x_terminal(),
         tracking->mutable_w_x_terminal()}}) {
    if (IsPresent(*stacked)) {
      SliceTensor(*stacked, b, to);
    } else if (IsPresent(*given)) {
      *to = *given;
    }
  }
}

// batched.model_params' slice b as the params of a model given without them.
absl::Status FillModelParams(const Tensor& stacked, int b, mpcd::v1::Problem* merged) {
  if (!IsPresent(stacked)) return absl::OkStatus();
  if (merged->dynamics().kind_case() != mpcd::v1::Dynamics::kModel) {
    return absl::InvalidArgumentError(
        absl::StrCat("batched.model_params: problems[", b,
                     "] has no model dynamics (set dynamics.model in it or in the template)"));
  }
  mpcd::v1::ModelDynamics* model = merged->mutable_dynamics()->mutable_model();
  if (model->params_size() != 0) return absl::OkStatus();
  const std::uint64_t p = stacked.shape(1);
  for (std::uint64_t k = 0; k < p; ++k) model->add_params(ValueAt(stacked, b * p + k));
  return absl::OkStatus();
}

// stacked_response of a Solve: every problem's solution has the shapes of the first's.
absl::Status CheckStackable(const std::vector<Problem>& problems) {
  for (std::size_t i = 1; i < problems.size(); ++i) {
    if (problems[i].shape != problems[0].shape) {
      return absl::InvalidArgumentError(
          absl::StrCat("stacked_response: problems[", i,
                       "] has other dynamics or n, m than problems[0], so their solutions do not "
                       "stack; ask without stacked_response"));
    }
  }
  return absl::OkStatus();
}

// The number of problems of a Solve or Backward request, after its request-level checks.
template <typename Request>
absl::StatusOr<int> ProblemCount(const Request& request, const RequestLimits& limits) {
  MPC_ASSIGN_OR_RETURN(const int count,
                       CheckBatched(request.batched(), request.problems_size(), limits));
  MPC_RETURN_IF_ERROR(CheckHorizonAndCount(request.horizon(), count, limits));
  if (request.has_problem_template()) {
    MPC_RETURN_IF_ERROR(CheckTemplate(request.problem_template()));
  }
  return count;
}

// Problem i of a Solve or Backward request as it is solved (mpcd.proto's merge rule): the
// listed problem itself when nothing is shared (no copy), else its merge in *storage.
template <typename Request>
absl::StatusOr<const mpcd::v1::Problem*> MergedProblem(const Request& request, int i,
                                                       mpcd::v1::Problem* storage) {
  const bool batched = request.batched().count() > 0;
  if (!request.has_problem_template() && !batched) return &request.problems(i);
  if (i < request.problems_size()) {
    *storage = request.problems(i);
  } else {
    storage->Clear();
  }
  if (batched) {
    FillFromBatch(request.batched(), i, storage);
    FillTrackingFromBatch(request.batched(), i,
                          request.has_problem_template() ? &request.problem_template() : nullptr,
                          storage);
  }
  if (request.has_problem_template()) FillFromTemplate(request.problem_template(), storage);
  if (batched) MPC_RETURN_IF_ERROR(FillModelParams(request.batched().model_params(), i, storage));
  return storage;
}

// MergedProblem without copying an array or the dynamics: only the other fields are merged, into
// *storage (nothing when the batch and the template give none of them).
template <typename Request>
absl::StatusOr<ProblemSource> MergedSource(const Request& request, int i,
                                           mpcd::v1::Problem* storage) {
  const bool batched = request.batched().count() > 0;
  const mpcd::v1::Problem* shared =
      request.has_problem_template() ? &request.problem_template() : nullptr;
  if (shared == nullptr && !batched) return SourceOf(request.problems(i));
  const mpcd::v1::Problem* listed = i < request.problems_size() ? &request.problems(i) : nullptr;
  storage->Clear();
  if (listed != nullptr) FillOtherFieldsFromTemplate(*listed, storage);  // into an empty message
  if (batched) {
    FillOtherFieldsFromBatch(request.batched(), i, storage);
    FillTrackingFromBatch(request.batched(), i, shared, storage);
  }
  if (shared != nullptr) FillOtherFieldsFromTemplate(*shared, storage);

  ProblemSource source;
  source.proto = storage;
  const mpcd::v1::BatchedProblems& batch = request.batched();
  const auto merge = [&](ArrayField field, const Tensor& stacked) {
    if (listed != nullptr && IsPresent(*TensorOf(*listed, field))) {
      source.array(field) = {TensorOf(*listed, field)};
    } else if (IsPresent(stacked)) {
      source.array(field) = {&stacked, i};
    } else if (shared != nullptr && IsPresent(*TensorOf(*shared, field))) {
      source.array(field) = {TensorOf(*shared, field)};
    }
  };
  merge(ArrayField::kXInit, batch.x_init());
  merge(ArrayField::kCostQuadratic, batch.cost_quadratic());
  merge(ArrayField::kCostLinear, batch.cost_linear());
  merge(ArrayField::kULower, batch.u_lower());
  merge(ArrayField::kUUpper, batch.u_upper());
  merge(ArrayField::kUInit, batch.u_init());
  // The dynamics: the problem's own, else linear from the batch, else the template's.
  constexpr auto kNotSet = mpcd::v1::Dynamics::KIND_NOT_SET;
  if (listed != nullptr && listed->dynamics().kind_case() != kNotSet) {
    SetDynamicsArrays(listed->dynamics(), &source);
  } else if (IsPresent(batch.transition())) {
    storage->mutable_dynamics()->mutable_linear();  // the kind, without values
    source.dynamics = &storage->dynamics();
    source.array(ArrayField::kTransition) = {&batch.transition(), i};
    if (IsPresent(batch.offset())) source.array(ArrayField::kOffset) = {&batch.offset(), i};
  } else if (shared != nullptr && shared->dynamics().kind_case() != kNotSet) {
    SetDynamicsArrays(shared->dynamics(), &source);
  } else {
    source.dynamics = &storage->dynamics();
  }
  // batched.model_params (FillModelParams): the model's message is small; copied to take them.
  const Tensor& params = batch.model_params();
  if (batched && IsPresent(params)) {
    if (source.dynamics->kind_case() != mpcd::v1::Dynamics::kModel) {
      return absl::InvalidArgumentError(
          absl::StrCat("batched.model_params: problems[", i,
                       "] has no model dynamics (set dynamics.model in it or in the template)"));
    }
    if (source.dynamics->model().params_size() == 0) {
      if (source.dynamics != &storage->dynamics()) *storage->mutable_dynamics() = *source.dynamics;
      mpcd::v1::ModelDynamics* model = storage->mutable_dynamics()->mutable_model();
      const std::uint64_t p = params.shape(1);
      for (std::uint64_t k = 0; k < p; ++k) model->add_params(ValueAt(params, i * p + k));
      SetDynamicsArrays(storage->dynamics(), &source);
    }
  }
  return source;
}

}  // namespace

absl::Status CheckWorkspaceSize(const ProblemShape& shape, std::int64_t limit,
                                const std::string& which) {
  const std::int64_t tau = shape.tau_dim();
  const std::int64_t size = std::int64_t{shape.horizon} * tau * tau;
  if (size <= limit) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "horizon: T*(n+m)^2 = ", shape.horizon, "*", tau, "^2 = ", size, " for ", which,
      " is over the server's limit ", limit, " (shorten the horizon or split the problem)"));
}

SolverMethod ToSolverMethod(mpcd::v1::SolverMethod method) {
  switch (method) {
    case mpcd::v1::CEM:
      return SolverMethod::kCem;
    case mpcd::v1::MPPI:
      return SolverMethod::kMppi;
    case mpcd::v1::CEM_THEN_ILQR:
      return SolverMethod::kCemThenIlqr;
    case mpcd::v1::MPPI_THEN_ILQR:
      return SolverMethod::kMppiThenIlqr;
    default:
      return SolverMethod::kIlqr;
  }
}

mpcd::v1::SolverMethod ToProtoSolverMethod(SolverMethod method) {
  switch (method) {
    case SolverMethod::kIlqr:
      return mpcd::v1::ILQR;
    case SolverMethod::kCem:
      return mpcd::v1::CEM;
    case SolverMethod::kMppi:
      return mpcd::v1::MPPI;
    case SolverMethod::kCemThenIlqr:
      return mpcd::v1::CEM_THEN_ILQR;
    case SolverMethod::kMppiThenIlqr:
      return mpcd::v1::MPPI_THEN_ILQR;
  }
  return mpcd::v1::ILQR;
}

SolverOptions ToSolverOptions(const mpcd::v1::SolverOptions& proto) {
  SolverOptions options;
  if (proto.has_max_iterations()) options.max_iterations = static_cast<int>(proto.max_iterations());
  if (proto.has_tolerance()) options.tolerance = proto.tolerance();
  if (proto.has_linesearch_decay()) options.linesearch_decay = proto.linesearch_decay();
  if (proto.has_max_linesearch_iterations()) {
    options.max_linesearch_iterations = static_cast<int>(proto.max_linesearch_iterations());
  }
  if (proto.has_best_cost_eps()) options.best_cost_eps = proto.best_cost_eps();
  if (proto.has_not_improved_limit()) {
    options.not_improved_limit = static_cast<int>(proto.not_improved_limit());
  }
  if (proto.has_delta_u()) options.delta_u = proto.delta_u();
  if (proto.has_max_constraint_iterations()) {
    options.max_constraint_iterations = static_cast<int>(proto.max_constraint_iterations());
  }
  if (proto.has_constraint_tolerance()) options.constraint_tolerance = proto.constraint_tolerance();
  options.method = ToSolverMethod(proto.method());
  SamplingOptions& sampling = options.sampling;
  if (proto.has_samples()) sampling.samples = static_cast<int>(proto.samples());
  // Unset, elites is the default or every sample, whichever is fewer.
  sampling.elites = proto.has_elites() ? static_cast<int>(proto.elites())
                                       : std::min(sampling.elites, sampling.samples);
  if (proto.has_sampling_iterations()) {
    sampling.iterations = static_cast<int>(proto.sampling_iterations());
  }
  if (proto.has_initial_std()) sampling.initial_std = proto.initial_std();
  if (proto.has_min_std()) sampling.min_std = proto.min_std();
  if (proto.has_temperature()) sampling.temperature = proto.temperature();
  if (proto.has_momentum()) sampling.momentum = proto.momentum();
  if (proto.has_knot_spacing()) sampling.knot_spacing = static_cast<int>(proto.knot_spacing());
  if (proto.has_seed()) sampling.seed = proto.seed();
  return options;
}

absl::Status ValidateSolverOptions(const mpcd::v1::SolverOptions& proto,
                                   const ProblemLimits& limits) {
  // The solver's rules, on the values as sent (before ToSolverOptions narrows them to int).
  SolverOptionValues values;
  if (proto.has_max_iterations()) values.max_iterations = proto.max_iterations();
  if (proto.has_tolerance()) values.tolerance = proto.tolerance();
  if (proto.has_linesearch_decay()) values.linesearch_decay = proto.linesearch_decay();
  if (proto.has_max_linesearch_iterations()) {
    values.max_linesearch_iterations = proto.max_linesearch_iterations();
  }
  if (proto.has_best_cost_eps()) values.best_cost_eps = proto.best_cost_eps();
  if (proto.has_not_improved_limit()) values.not_improved_limit = proto.not_improved_limit();
  if (proto.has_delta_u()) values.delta_u = proto.delta_u();
  if (proto.has_max_constraint_iterations()) {
    values.max_constraint_iterations = proto.max_constraint_iterations();
  }
  if (proto.has_constraint_tolerance()) values.constraint_tolerance = proto.constraint_tolerance();
  if (!mpcd::v1::SolverMethod_IsValid(proto.method())) {
    return absl::InvalidArgumentError(
        absl::StrCat("options.method: unknown value ", proto.method()));
  }
  if (proto.has_samples()) values.samples = proto.samples();
  if (proto.has_elites()) values.elites = proto.elites();
  if (proto.has_sampling_iterations()) values.sampling_iterations = proto.sampling_iterations();
  if (proto.has_initial_std()) values.initial_std = proto.initial_std();
  if (proto.has_min_std()) values.min_std = proto.min_std();
  if (proto.has_temperature()) values.temperature = proto.temperature();
  if (proto.has_momentum()) values.momentum = proto.momentum();
  if (proto.has_knot_spacing()) values.knot_spacing = proto.knot_spacing();
  return CheckSolverOptionValues(values, limits);
}

namespace {

// ToProblem of a problem read in place (ProblemSource).
absl::StatusOr<Problem> ConvertProblem(const ProblemSource& source, int horizon,
                                       const SolverOptions& options, const RequestLimits& limits,
                                       const std::string& field_prefix) {
  const std::string& p = field_prefix;
  const mpcd::v1::Problem& proto = *source.proto;
  const mpcd::v1::Dynamics& dynamics = *source.dynamics;
  const bool linear = dynamics.kind_case() == mpcd::v1::Dynamics::kLinear;

  // Every tensor's data must match its own shape before its shape means anything. The field
  // names come from the table (params is a plain list, not a Tensor).
  // (Paths are spelled out only for an error: building them for every field of every problem
  // cost more than the checks.)
  // Each check of a stage is independent of the others: every broken field is reported
  // (AllViolations), and a stage runs only when the ones before it passed.
  std::vector<absl::Status> found;
  for (ArrayField field : kProblemArrays) {
    if (field == ArrayField::kParams) continue;  // (a plain list)
    const TensorRef& tensor = source.array(field);
    if (CheckTensorData(tensor, "").ok()) continue;
    found.push_back(CheckTensorData(tensor, p + ArraySpecFor(field, ProblemShape()).name));
  }
  if (!found.empty()) return AllViolations(found);

  Problem problem;
  problem.shape.horizon = horizon;
  switch (dynamics.kind_case()) {
    case mpcd::v1::Dynamics::kModel:
      MPC_RETURN_IF_ERROR(ConvertModel(dynamics.model(), p, &problem));
      // A model's n and m come from its name.
      MPC_RETURN_IF_ERROR(CheckProblemLimits(problem.shape, limits.problem, p));
      break;
    case mpcd::v1::Dynamics::kLinear:
      // Checks n and m against the limits as soon as it knows them.
      MPC_RETURN_IF_ERROR(ConvertLinearShape(source, horizon, limits, p, &problem));
      break;
    case mpcd::v1::Dynamics::kGraph:
      MPC_RETURN_IF_ERROR(ConvertGraph(dynamics.graph(), limits, p, &problem));
      MPC_RETURN_IF_ERROR(CheckProblemLimits(problem.shape, limits.problem, p));
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          p, "dynamics: required (set dynamics.linear, dynamics.model or dynamics.graph)"));
  }

  // Every tensor's exact shape against the table (the transition's was checked while deriving m;
  // checking it again costs nothing). A tracking cost stands in for cost.quadratic.
  if (absl::Status tracking = CheckTrackingAlone(source, p); !tracking.ok()) {
    found.push_back(tracking);
  }
  for (ArrayField field : kProblemArrays) {
    if (field == ArrayField::kParams) continue;
    if (field == ArrayField::kCostQuadratic && (proto.has_tracking() || proto.has_cost_graph())) {
      continue;
    }
    const TensorRef& tensor = source.array(field);
    const ArraySpec spec = ArraySpecFor(field, problem.shape);
    if (CheckTensorShape(tensor, spec, "").ok()) continue;
    found.push_back(CheckTensorShape(tensor, spec, FieldPath(p, spec.name)));
  }
  if (!found.empty()) return AllViolations(found);

  // Each array decoded once, straight from the request's bytes, its finiteness found in the same
  // pass: bit f of `scanned` says kProblemArrays[f] is all finite, so that the validation below
  // does not scan it again (one that is not is scanned there, for its message).
  std::uint32_t scanned = 0;
  const auto decode = [&](ArrayField field, std::vector<double>* values) {
    if (DecodeInto(source.array(field), values)) scanned |= 1u << static_cast<int>(field);
  };
  decode(ArrayField::kXInit, &problem.x_init);
  decode(ArrayField::kCostQuadratic, &problem.cost_quadratic);
  if (IsPresent(source.array(ArrayField::kCostLinear))) {
    decode(ArrayField::kCostLinear, &problem.cost_linear);
  } else {
    problem.cost_linear.assign(problem.shape.tau_dim(), 0.0);
    scanned |= 1u << static_cast<int>(ArrayField::kCostLinear);
  }
  if (linear) {
    decode(ArrayField::kTransition, &problem.transition);
    decode(ArrayField::kOffset, &problem.offset);
  }
  decode(ArrayField::kULower, &problem.u_lower);
  decode(ArrayField::kUUpper, &problem.u_upper);
  decode(ArrayField::kUInit, &problem.u_init);
  // A tracking cost or a cost graph writes C and c itself (below): those are scanned as before.
  if (proto.has_tracking() || proto.has_cost_graph() || proto.has_terminal_cost_graph()) {
    scanned &= ~((1u << static_cast<int>(ArrayField::kCostQuadratic)) |
                 (1u << static_cast<int>(ArrayField::kCostLinear)));
  }
  problem.options = options;
  if (proto.has_tracking()) MPC_RETURN_IF_ERROR(ApplyTracking(proto, p, &problem));
  if (proto.has_cost_graph()) MPC_RETURN_IF_ERROR(ConvertCostGraph(source, limits, p, &problem));
  if (proto.has_terminal_cost_graph()) {
    MPC_RETURN_IF_ERROR(ConvertTerminalCostGraph(proto, limits, p, &problem));
  }

  MPC_RETURN_IF_ERROR(ConvertStageConstraints(proto, p, &problem));
  if (proto.has_constraint_graph()) {
    MPC_RETURN_IF_ERROR(ConvertConstraintGraph(proto, limits, p, &problem));
  }

  // Sizes are right by construction (ValidateProblem re-checks their lengths, O(1)); it scans the
  // values, once.
  CollectProblemViolations(problem, limits.problem, p, scanned, &found);
  if (!found.empty()) return AllViolations(found);
  MPC_RETURN_IF_ERROR(ApplyPytorchTerms(proto, p, &problem));
  return problem;
}

}  // namespace

absl::StatusOr<Problem> ToProblem(const mpcd::v1::Problem& proto, int horizon,
                                  const SolverOptions& options, const RequestLimits& limits,
                                  const std::string& field_prefix) {
  return ConvertProblem(SourceOf(proto), horizon, options, limits, field_prefix);
}

absl::StatusOr<std::vector<Problem>> ToProblems(const mpcd::v1::SolveRequest& request,
                                                const RequestLimits& limits) {
  MPC_ASSIGN_OR_RETURN(const int count, ProblemCount(request, limits));
  if (!mpcd::v1::BackwardMode_IsValid(request.jacobian_mode())) {
    return absl::InvalidArgumentError(
        absl::StrCat("jacobian_mode: unknown value ", request.jacobian_mode()));
  }
  if (!mpcd::v1::TensorEncoding_IsValid(request.response_encoding())) {
    return absl::InvalidArgumentError(
        absl::StrCat("response_encoding: unknown value ", request.response_encoding()));
  }
  MPC_RETURN_IF_ERROR(ValidateSolverOptions(request.options(), limits.problem));
  SolverOptions options = ToSolverOptions(request.options());
  options.compute_gains = request.return_gains();
  options.compute_x_init_jacobian = request.return_x_init_jacobian();
  options.compute_params_jacobian = request.return_params_jacobian();
  options.jacobian_mode = ToGradientMode(request.jacobian_mode());
  if ((options.compute_x_init_jacobian || options.compute_params_jacobian) &&
      !HasImplicitGradient(options.method)) {
    return absl::InvalidArgumentError(absl::StrCat(
        request.return_x_init_jacobian() ? "return_x_init_jacobian" : "return_params_jacobian",
        ": options.method ", SolverMethodName(options.method), " has no implicit derivative (use ",
        SolverMethodName(options.method), "_THEN_ILQR)"));
  }

  const int horizon = static_cast<int>(request.horizon());
  std::vector<Problem> problems;
  problems.reserve(count);
  mpcd::v1::Problem storage;
  // Every problem is checked, so that one answer names each broken one (error_details.h).
  Violations violations;
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<ProblemSource> merged = MergedSource(request, i, &storage);
    absl::StatusOr<Problem> problem =
        merged.ok()
            ? ConvertProblem(*merged, horizon, options, limits, absl::StrCat("problems[", i, "]."))
            : absl::StatusOr<Problem>(merged.status());
    if (problem.ok() && (options.compute_x_init_jacobian || options.compute_params_jacobian) &&
        problem->slew_state_prefix > 0) {
      problem = absl::InvalidArgumentError(absl::StrCat(
          request.return_x_init_jacobian() ? "return_x_init_jacobian" : "return_params_jacobian",
          ": not available with problems[", i, "].slew_rate_penalty"));
    } else if (problem.ok() &&
               (options.compute_x_init_jacobian || options.compute_params_jacobian) &&
               (problem->cost_graph != nullptr || problem->terminal_cost_graph != nullptr)) {
      problem = absl::InvalidArgumentError(absl::StrCat(
          request.return_x_init_jacobian() ? "return_x_init_jacobian" : "return_params_jacobian",
          ": not available with problems[", i, "].",
          problem->cost_graph != nullptr ? "cost_graph" : "terminal_cost_graph", " yet"));
    } else if (problem.ok() && options.compute_params_jacobian &&
               problem->shape.dynamics.is_linear()) {
      problem = absl::InvalidArgumentError(absl::StrCat(
          "return_params_jacobian: problems[", i, "] has linear dynamics, which have no params"));
    }
    if (!problem.ok()) {
      if (problem.status().code() != absl::StatusCode::kInvalidArgument) return problem.status();
      MPC_RETURN_IF_ERROR(StackedValuesError(BatchedTensors(request.batched())));
      if (!violations.Add(problem.status())) break;
      continue;
    }
    problem->sampling_stream = static_cast<std::uint32_t>(i);
    if (violations.empty()) problems.push_back(*std::move(problem));
  }
  if (!violations.empty()) return violations.ToStatus();
  if (request.stacked_response()) MPC_RETURN_IF_ERROR(CheckStackable(problems));
  return problems;
}

mpcd::v1::SolveStatus ToProtoSolveStatus(SolveStatus status) {
  switch (status) {
    case SolveStatus::kConverged:
      return mpcd::v1::CONVERGED;
    case SolveStatus::kMaxIterations:
      return mpcd::v1::MAX_ITERATIONS;
    case SolveStatus::kLinesearchFailed:
      return mpcd::v1::LINESEARCH_FAILED;
    case SolveStatus::kNotFinite:
      return mpcd::v1::NOT_FINITE;
    case SolveStatus::kDeadline:
      return mpcd::v1::DEADLINE;
    case SolveStatus::kInfeasible:
      return mpcd::v1::INFEASIBLE;
  }
  return mpcd::v1::SOLVE_STATUS_UNSPECIFIED;
}

namespace {

void ToProtoSolution(const Problem& problem, const Solution& augmented, mpcd::v1::Solution* out) {
  // A slew-rate problem answers in the caller's state (no copy otherwise).
  Solution stripped;
  if (problem.slew_state_prefix > 0) {
    stripped = augmented;
    StripSlewState(problem, &stripped);
  }
  const Solution& solution = problem.slew_state_prefix > 0 ? stripped : augmented;
  const ProblemShape shape = CallerShape(problem);
  const std::int64_t T = shape.horizon;
  const std::int64_t n = shape.state_dim;
  const std::int64_t m = shape.control_dim;
  SetTensor({T, n}, solution.x, out->mutable_x());
  SetTensor({T, m}, solution.u, out->mutable_u());
  out->set_cost(solution.cost);
  out->set_status(ToProtoSolveStatus(solution.status));
  out->set_iterations(static_cast<std::uint32_t>(solution.iterations));
  if (!solution.feedback.empty()) SetTensor({T, m, n}, solution.feedback, out->mutable_feedback());
  if (!solution.feedforward.empty()) {
    SetTensor({T, m}, solution.feedforward, out->mutable_feedforward());
  }
  out->set_step_norm(solution.step_norm);
  out->set_regularization(solution.regularization);
  out->set_max_constraint_violation(solution.max_constraint_violation);
  out->set_cost_hessian_projections(static_cast<std::uint32_t>(solution.cost_hessian_projections));
  out->set_method(ToProtoSolverMethod(problem.options.method));
  const SolverOptions& options = problem.options;
  if (options.compute_x_init_jacobian || options.compute_params_jacobian) {
    CopyJacobians(problem, solution, out);
  }
}

}  // namespace

void ToSolveResponse(absl::Span<const Solution> solutions, const std::vector<Problem>& problems,
                     mpcd::v1::SolveResponse* response) {
  response->clear_solutions();
  for (std::size_t i = 0; i < solutions.size() && i < problems.size(); ++i) {
    ToProtoSolution(problems[i], solutions[i], response->add_solutions());
  }
}

namespace {

// SolveResponse.stacked from solutions[b] of problems[b] (equal shapes: CheckStackable).
void ToStackedSolveResponse(absl::Span<const Solution> solutions,
                            const std::vector<Problem>& problems, mpcd::v1::TensorEncoding encoding,
                            mpcd::v1::SolveResponse* response) {
  response->clear_solutions();
  mpcd::v1::StackedSolutions* out = response->mutable_stacked();
  out->Clear();
  const int count = static_cast<int>(std::min(solutions.size(), problems.size()));
  if (count == 0) return;
  // Slew-rate problems answer in the caller's state (no copies otherwise).
  std::vector<Solution> stripped;
  if (problems[0].slew_state_prefix > 0) {
    stripped.assign(solutions.begin(), solutions.begin() + count);
    for (int b = 0; b < count; ++b) StripSlewState(problems[b], &stripped[b]);
    solutions = stripped;
  }
  const ProblemShape shape = CallerShape(problems[0]);
  const SolverOptions& options = problems[0].options;
  const std::int64_t T = shape.horizon;
  const std::int64_t n = shape.state_dim;
  const std::int64_t m = shape.control_dim;
  const std::int64_t nt = shape.tau_dim();
  const auto stack = [&](const Shape& slice, std::vector<double> Solution::*member, Tensor* to) {
    SetStackedTensor(
        encoding, slice, count,
        [&](int b) { return absl::Span<const double>(solutions[b].*member); }, to);
  };
  stack({T, n}, &Solution::x, out->mutable_x());
  stack({T, m}, &Solution::u, out->mutable_u());
  for (int b = 0; b < count; ++b) {
    const Solution& solution = solutions[b];
    out->add_cost(solution.cost);
    out->add_status(ToProtoSolveStatus(solution.status));
    out->add_iterations(static_cast<std::uint32_t>(solution.iterations));
    out->add_step_norm(solution.step_norm);
    out->add_regularization(solution.regularization);
    out->add_max_constraint_violation(solution.max_constraint_violation);
    out->add_cost_hessian_projections(
        static_cast<std::uint32_t>(solution.cost_hessian_projections));
  }
  if (options.compute_gains) {
    stack({T, m, n}, &Solution::feedback, out->mutable_feedback());
    stack({T, m}, &Solution::feedforward, out->mutable_feedforward());
  }
  if (options.compute_x_init_jacobian) {
    stack({T, nt, n}, &Solution::x_init_jacobian, out->mutable_x_init_jacobian());
  }
  if (options.compute_params_jacobian) {
    std::size_t columns = 0;  // p: from any solution the deadline did not stop
    for (int b = 0; b < count; ++b) {
      columns = std::max(columns, solutions[b].params_jacobian.size() / (T * nt));
    }
    stack({T, nt, static_cast<std::int64_t>(columns)}, &Solution::params_jacobian,
          out->mutable_params_jacobian());
  }
  if (options.compute_x_init_jacobian || options.compute_params_jacobian) {
    for (int b = 0; b < count; ++b) {
      ToProtoJacobianDiagnostics(solutions[b].jacobian_diagnostics,
                                 out->add_jacobian_diagnostics());
    }
  }
  out->set_method(ToProtoSolverMethod(options.method));
}

}  // namespace

void WriteSolutions(absl::Span<const Solution> solutions, const std::vector<Problem>& problems,
                    mpcd::v1::TensorEncoding encoding, bool stacked,
                    mpcd::v1::SolveResponse* response) {
  if (stacked) {
    ToStackedSolveResponse(solutions, problems, encoding, response);
    return;
  }
  ToSolveResponse(solutions, problems, response);
  EncodeResponseTensors(encoding, response);
}

void EncodeResponseTensors(mpcd::v1::TensorEncoding encoding, mpcd::v1::SolveResponse* response) {
  for (mpcd::v1::Solution& solution : *response->mutable_solutions()) {
    EncodeSolutionTensors(encoding, &solution);
  }
}

void EncodeResponseTensors(mpcd::v1::TensorEncoding encoding,
                           mpcd::v1::BackwardResponse* response) {
  for (mpcd::v1::Problem& gradient : *response->mutable_gradients()) {
    if (gradient.has_x_init()) EncodeTensor(encoding, gradient.mutable_x_init());
    if (gradient.has_cost()) {
      mpcd::v1::QuadraticCost* cost = gradient.mutable_cost();
      if (cost->has_quadratic()) EncodeTensor(encoding, cost->mutable_quadratic());
      if (cost->has_linear()) EncodeTensor(encoding, cost->mutable_linear());
    }
    if (gradient.has_tracking()) {
      mpcd::v1::TrackingCost* tracking = gradient.mutable_tracking();
      for (Tensor* tensor :
           {tracking->mutable_x_goal(), tracking->mutable_u_goal(), tracking->mutable_w_x(),
            tracking->mutable_w_u(), tracking->mutable_w_x_terminal()}) {
        if (IsPresent(*tensor)) EncodeTensor(encoding, tensor);
      }
    }
    if (gradient.dynamics().has_linear()) {
      mpcd::v1::LinearDynamics* linear = gradient.mutable_dynamics()->mutable_linear();
      if (linear->has_transition()) EncodeTensor(encoding, linear->mutable_transition());
      if (linear->has_offset()) EncodeTensor(encoding, linear->mutable_offset());
    }
  }
}

GradientMode ToGradientMode(mpcd::v1::BackwardMode mode) {
  switch (mode) {
    case mpcd::v1::EXACT:
      return GradientMode::kExact;
    case mpcd::v1::FULL_CHAIN:
      return GradientMode::kFullChain;
    default:
      return GradientMode::kDefault;
  }
}

mpcd::v1::GradientStatus ToProtoGradientStatus(GradientStatus status) {
  switch (status) {
    case GradientStatus::kOk:
      return mpcd::v1::GRADIENT_OK;
    case GradientStatus::kIllConditioned:
      return mpcd::v1::GRADIENT_ILL_CONDITIONED;
    case GradientStatus::kRegularized:
      return mpcd::v1::GRADIENT_REGULARIZED;
    case GradientStatus::kNotFinite:
      return mpcd::v1::GRADIENT_NOT_FINITE;
    case GradientStatus::kNotSolution:
      return mpcd::v1::GRADIENT_NOT_SOLUTION;
    case GradientStatus::kStopped:  // never answered (the call fails)
      break;
  }
  return mpcd::v1::GRADIENT_STATUS_UNSPECIFIED;
}

namespace {

// FAILED_PRECONDITION for a solution of pure CEM or MPPI: a sampled plan is no fixed point of the
// iLQR, so the implicit gradient does not exist there (`field` is e.g. "solutions[2].").
absl::Status CheckDifferentiable(int proto_method, const std::string& field) {
  if (!mpcd::v1::SolverMethod_IsValid(proto_method)) {
    return absl::InvalidArgumentError(absl::StrCat(field, "method: unknown value ", proto_method));
  }
  const SolverMethod method = ToSolverMethod(static_cast<mpcd::v1::SolverMethod>(proto_method));
  if (HasImplicitGradient(method)) return absl::OkStatus();
  const char* name = SolverMethodName(method);
  return absl::FailedPreconditionError(absl::StrCat(
      field, "method: a ", name,
      " solution has no implicit gradient (the sampled plan is not a fixed point of the iLQR, "
      "whose optimality conditions the gradient differentiates); solve with ",
      name, "_THEN_ILQR to differentiate"));
}

}  // namespace

namespace {

// `per_problem` messages (one per problem) or the `stacked` message in their place, not both.
absl::Status CheckOneLayout(const char* per_problem, int given, const char* stacked,
                            bool has_stacked, int count) {
  if (has_stacked && given != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(stacked, ": set either ", per_problem, " or ", stacked, ", not both"));
  }
  if (!has_stacked && given != count) {
    return absl::InvalidArgumentError(
        absl::StrCat(per_problem, ": expected ", count, " (one per problem), got ", given));
  }
  return absl::OkStatus();
}

// One input array of a backward item: a per-problem Tensor, or slice `index` of a stacked one
// (already checked by CheckStacked).
struct ArraySource {
  const Tensor* tensor;
  int index = -1;  // >= 0: the slice of a stacked tensor

  absl::Status Check(ArrayField field, const ProblemShape& shape, FieldPath path) const {
    if (index < 0) {
      MPC_RETURN_IF_ERROR(CheckTensorData(*tensor, path));
      return CheckTensorShape(*tensor, field, shape, path);
    }
    const ArraySpec spec = ArraySpecFor(field, shape);
    if (!IsPresent(*tensor)) return CheckArrayShape(spec, nullptr, path);
    if (ShapeAccepted(spec, ShapeSpan(*tensor).subspan(1))) return absl::OkStatus();
    const Shape slice(tensor->shape().begin() + 1, tensor->shape().end());
    return CheckArrayShape(spec, &slice, path);
  }

  // (ValidateBackwardProblem scans them: the decoder's finiteness is not used here.)
  std::vector<double> Values() const {
    std::vector<double> values;
    DecodeInto(TensorRef{tensor, index}, &values);
    return values;
  }
};

// Checks problem i's solution and cotangent (per problem, or its slices of the stacked ones)
// against `problem` and fills `out` from them.
absl::Status ToBackwardItem(const mpcd::v1::BackwardRequest& request, int i, const Problem& problem,
                            GradientMode mode, BackwardProblem* out) {
  const bool stacked_solutions = request.has_stacked_solutions();
  const bool stacked_cotangents = request.has_stacked_cotangents();
  BackwardFieldNames names = BackwardRequestFieldNames(i);
  const mpcd::v1::Solution* solution = stacked_solutions ? nullptr : &request.solutions(i);
  if (stacked_solutions) {
    names.solution = "stacked_solutions.";
  } else {
    MPC_RETURN_IF_ERROR(CheckDifferentiable(solution->method(), names.solution));
  }
  const int slice = stacked_solutions ? i : -1;
  const int cotangent_slice = stacked_cotangents ? i : -1;
  const mpcd::v1::Cotangent& cotangent =
      stacked_cotangents ? request.stacked_cotangents() : request.cotangents(i);
  if (stacked_cotangents) names.cotangent = "stacked_cotangents.";
  const std::pair<ArraySource, ArrayField> arrays[] = {
      {{stacked_solutions ? &request.stacked_solutions().x() : &solution->x(), slice},
       ArrayField::kSolutionX},
      {{stacked_solutions ? &request.stacked_solutions().u() : &solution->u(), slice},
       ArrayField::kSolutionU},
      {{&cotangent.x(), cotangent_slice}, ArrayField::kCotangentX},
      {{&cotangent.u(), cotangent_slice}, ArrayField::kCotangentU},
  };
  // The request's point and cotangent have the caller's state, not a slew-rate augmented one.
  const ProblemShape shape = CallerShape(problem);
  for (const auto& [source, field] : arrays) {
    const bool of_solution = field == ArrayField::kSolutionX || field == ArrayField::kSolutionU;
    const FieldPath path(of_solution ? names.solution : names.cotangent,
                         ArraySpecFor(field, shape).name);
    MPC_RETURN_IF_ERROR(source.Check(field, shape, path));
  }
  BackwardProblem& item = *out;
  item.problem = &problem;
  item.x = arrays[0].first.Values();
  item.u = arrays[1].first.Values();
  item.dl_dx = arrays[2].first.Values();
  item.dl_du = arrays[3].first.Values();
  item.mode = mode;
  item.constraint_smoothing = request.constraint_smoothing();
  AugmentBackwardPoint(problem, &item);
  // The values' one scan, by the validation the backends rely on (they check only sizes).
  if (absl::Status status = ValidateBackwardProblem(item, names); !status.ok()) {
    MPC_RETURN_IF_ERROR(StackedValuesError({
        {&request.stacked_solutions().x(), "stacked_solutions.x"},
        {&request.stacked_solutions().u(), "stacked_solutions.u"},
        {&request.stacked_cotangents().x(), "stacked_cotangents.x"},
        {&request.stacked_cotangents().u(), "stacked_cotangents.u"},
    }));
    return status;
  }
  return absl::OkStatus();
}

// BackwardRequest.gradient_fields as a set: which gradients an answer carries (every one when the
// request names none). The names are BatchedProblems' fields, in both layouts.
class GradientFields {
 public:
  enum Field : std::uint32_t {
    kXInit,
    kCostQuadratic,
    kCostLinear,
    kTransition,
    kOffset,
    kModelParams,
    kGraphParameters,
    kCostGraphParameters,
    kTerminalCostGraphParameters,
    kConstraintGraphParameters,
    kXLower,
    kXUpper,
    kConstraintG,
    kConstraintH,
    kTracking,
    kCount,
  };
  static constexpr std::array<absl::string_view, kCount> kNames = {
      "x_init",
      "cost_quadratic",
      "cost_linear",
      "transition",
      "offset",
      "model_params",
      "graph_parameters",
      "cost_graph_parameters",
      "terminal_cost_graph_parameters",
      "constraint_graph_parameters",
      "x_lower",
      "x_upper",
      "constraint_G",
      "constraint_h",
      "tracking",
  };

  // The request's set; INVALID_ARGUMENT naming gradient_fields[i] for a name not in kNames.
  static absl::StatusOr<GradientFields> Of(const mpcd::v1::BackwardRequest& request) {
    GradientFields fields;
    if (request.gradient_fields_size() == 0) return fields;
    fields.bits_ = 0;
    for (int i = 0; i < request.gradient_fields_size(); ++i) {
      const std::string& name = request.gradient_fields(i);
      const auto* found = std::find(kNames.begin(), kNames.end(), name);
      if (found == kNames.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("gradient_fields[", i, "]: unknown gradient \"", absl::CHexEscape(name),
                         "\"; one of ", absl::StrJoin(kNames, ", ")));
      }
      fields.bits_ |= std::uint32_t{1} << (found - kNames.begin());
    }
    return fields;
  }

  bool Has(Field field) const { return (bits_ >> field) & 1u; }

 private:
  std::uint32_t bits_ = ~std::uint32_t{0};
};

}  // namespace

void AsBackwardProblem(Problem* problem) {
  problem->options = SolverOptions();
  problem->interrupt = nullptr;
  problem->sampling_stream = 0;
}

absl::StatusOr<BackwardInputs> ToBackwardProblems(const mpcd::v1::BackwardRequest& request,
                                                  const RequestLimits& limits,
                                                  const std::vector<Problem>* converted) {
  MPC_ASSIGN_OR_RETURN(const int count, ProblemCount(request, limits));
  if (converted != nullptr && static_cast<int>(converted->size()) != count) {
    return absl::InternalError(absl::StrCat("retained_solve: ", converted->size(),
                                            " converted problems for ", count, " problems"));
  }
  const bool stacked_solutions = request.has_stacked_solutions();
  const bool stacked_cotangents = request.has_stacked_cotangents();
  MPC_RETURN_IF_ERROR(CheckOneLayout("solutions", request.solutions_size(), "stacked_solutions",
                                     stacked_solutions, count));
  MPC_RETURN_IF_ERROR(CheckOneLayout("cotangents", request.cotangents_size(), "stacked_cotangents",
                                     stacked_cotangents, count));
  if (!mpcd::v1::BackwardMode_IsValid(request.mode())) {
    return absl::InvalidArgumentError(absl::StrCat("mode: unknown value ", request.mode()));
  }
  if (!mpcd::v1::TensorEncoding_IsValid(request.response_encoding())) {
    return absl::InvalidArgumentError(
        absl::StrCat("response_encoding: unknown value ", request.response_encoding()));
  }
  if (stacked_solutions) {
    const mpcd::v1::StackedSolutions& stacked = request.stacked_solutions();
    MPC_RETURN_IF_ERROR(CheckDifferentiable(stacked.method(), "stacked_solutions."));
    MPC_RETURN_IF_ERROR(CheckStacked(stacked.x(), count, "stacked_solutions.x"));
    MPC_RETURN_IF_ERROR(CheckStacked(stacked.u(), count, "stacked_solutions.u"));
  }
  if (stacked_cotangents) {
    const mpcd::v1::Cotangent& stacked = request.stacked_cotangents();
    MPC_RETURN_IF_ERROR(CheckStacked(stacked.x(), count, "stacked_cotangents.x"));
    MPC_RETURN_IF_ERROR(CheckStacked(stacked.u(), count, "stacked_cotangents.u"));
  }
  MPC_RETURN_IF_ERROR(GradientFields::Of(request).status());
  const GradientMode mode = ToGradientMode(request.mode());
  const int horizon = static_cast<int>(request.horizon());

  BackwardInputs batch;
  batch.problems.reserve(count);
  mpcd::v1::Problem storage;
  GradientShapes first_shapes;
  // Every problem, then every item, is checked, so that one answer names each broken one.
  Violations violations;
  for (int i = 0; i < count; ++i) {
    if (converted != nullptr && !request.stacked_response()) {
      batch.problems.push_back((*converted)[i]);  // converted and validated once already
      continue;
    }
    absl::StatusOr<ProblemSource> merged = MergedSource(request, i, &storage);
    absl::StatusOr<Problem> problem =
        !merged.ok()           ? absl::StatusOr<Problem>(merged.status())
        : converted != nullptr ? absl::StatusOr<Problem>((*converted)[i])
                               : ConvertProblem(*merged, horizon, SolverOptions(), limits,
                                                absl::StrCat("problems[", i, "]."));
    if (!problem.ok()) {
      if (problem.status().code() != absl::StatusCode::kInvalidArgument) return problem.status();
      MPC_RETURN_IF_ERROR(StackedValuesError(BatchedTensors(request.batched())));
      if (!violations.Add(problem.status())) break;
      continue;
    }
    if (request.stacked_response() && violations.empty()) {
      const GradientShapes shapes = GradientShapesOf(*merged, CallerShape(*problem));
      if (batch.problems.empty()) first_shapes = shapes;
      if (!batch.problems.empty() &&
          (problem->shape != batch.problems[0].shape || !(shapes == first_shapes))) {
        return absl::InvalidArgumentError(absl::StrCat(
            "stacked_response: the gradients of problems[", i,
            "] do not stack with those of problems[0] (other dynamics or input shapes); ask "
            "without stacked_response"));
      }
    }
    if (violations.empty()) batch.problems.push_back(*std::move(problem));
  }
  if (!violations.empty()) return violations.ToStatus();
  // Pointers into batch.problems: it is complete and never grows again.
  batch.items.resize(count);
  for (int i = 0; i < count; ++i) {
    const absl::Status item = ToBackwardItem(request, i, batch.problems[i], mode, &batch.items[i]);
    if (item.ok()) continue;
    if (item.code() != absl::StatusCode::kInvalidArgument) return item;
    if (!violations.Add(item)) break;
  }
  if (!violations.empty()) return violations.ToStatus();
  return batch;
}

namespace {

// dL/dtheta (the graph's param_dim) as one Tensor per initializer, shaped like it, into a
// GraphDynamics or a CostGraph.
template <class GraphProto>
void SetGraphGradient(const GraphProgram& graph, const std::vector<double>& gradient,
                      GraphProto* out) {
  out->set_sha256(graph.sha256);
  for (const GraphParameter& parameter : graph.parameters) {
    const auto begin = gradient.begin() + std::min<std::size_t>(parameter.offset, gradient.size());
    const auto end = gradient.begin() +
                     std::min<std::size_t>(parameter.offset + parameter.size, gradient.size());
    SetTensor(parameter.shape, std::vector<double>(begin, end),
              &(*out->mutable_parameters())[parameter.name]);
  }
}

}  // namespace

namespace {

// dL/d(tracking inputs) of a problem solved with `tracking` (ToBackwardProblems accepted it) in
// the order x_goal, u_goal, w_x, w_u, w_x_terminal, each with the shape the request gave its input
// (absent ones their default's; w_x_terminal absent, empty, when not given).
struct ShapedTrackingGradient {
  std::array<std::vector<double>, 5> values;
  std::array<Shape, 5> shapes;
};

absl::StatusOr<ShapedTrackingGradient> TrackingGradientOf(const mpcd::v1::TrackingCost& tracking,
                                                          const ProblemShape& shape,
                                                          const ProblemGradient& gradient) {
  MPC_ASSIGN_OR_RETURN(const TrackingCost inputs, ToTrackingCost(tracking, shape, ""));
  TrackingGradient g = ToTrackingGradient(inputs, shape, gradient);
  ShapedTrackingGradient out{{std::move(g.x_goal), std::move(g.u_goal), std::move(g.w_x),
                              std::move(g.w_u), std::move(g.w_x_terminal)},
                             {}};
  const std::array<const TrackingInput*, 4> per_step_inputs = {&inputs.x_goal, &inputs.u_goal,
                                                               &inputs.w_x, &inputs.w_u};
  for (std::size_t k = 0; k < per_step_inputs.size(); ++k) {
    const auto size = static_cast<std::int64_t>(out.values[k].size());
    out.shapes[k] =
        per_step_inputs[k]->per_step ? Shape{shape.horizon, size / shape.horizon} : Shape{size};
  }
  out.shapes[4] = {static_cast<std::int64_t>(out.values[4].size())};
  return out;
}

// The five tensors of a TrackingCost in TrackingGradientOf's order.
std::array<Tensor*, 5> TrackingTensors(mpcd::v1::TrackingCost* tracking) {
  return {tracking->mutable_x_goal(), tracking->mutable_u_goal(), tracking->mutable_w_x(),
          tracking->mutable_w_u(), tracking->mutable_w_x_terminal()};
}

void SetTrackingGradient(const mpcd::v1::TrackingCost& tracking, const ProblemShape& shape,
                         const ProblemGradient& gradient, mpcd::v1::TrackingCost* out) {
  const absl::StatusOr<ShapedTrackingGradient> g = TrackingGradientOf(tracking, shape, gradient);
  if (!g.ok()) return;
  const std::array<Tensor*, 5> tensors = TrackingTensors(out);
  for (std::size_t k = 0; k < tensors.size(); ++k) {
    if (!g->values[k].empty()) SetTensor(g->shapes[k], g->values[k], tensors[k]);
  }
}

// BackwardResponse.stacked_gradients.tracking: every problem has a tracking cost whose inputs
// have the first's shapes (ToBackwardProblems checked them).
void StackTrackingGradient(const mpcd::v1::BackwardRequest& request,
                           absl::Span<const ProblemGradient> gradients, const ProblemShape& shape,
                           mpcd::v1::BatchedProblems* out) {
  std::vector<ShapedTrackingGradient> each;
  each.reserve(gradients.size());
  mpcd::v1::Problem storage;
  for (std::size_t b = 0; b < gradients.size(); ++b) {
    absl::StatusOr<const mpcd::v1::Problem*> merged =
        MergedProblem(request, static_cast<int>(b), &storage);
    if (!merged.ok()) return;
    absl::StatusOr<ShapedTrackingGradient> g =
        TrackingGradientOf((*merged)->tracking(), shape, gradients[b]);
    if (!g.ok()) return;
    each.push_back(*std::move(g));
  }
  const std::array<Tensor*, 5> tensors = TrackingTensors(out->mutable_tracking());
  for (std::size_t k = 0; k < tensors.size(); ++k) {
    if (each[0].values[k].empty()) continue;
    SetStackedTensor(
        request.response_encoding(), each[0].shapes[k], static_cast<int>(each.size()),
        [&](int b) { return absl::Span<const double>(each[b].values[k]); }, tensors[k]);
  }
}

// The gradient of merged problem `in` (converted: `problem`, when the caller has it), restricted to
// the caller's inputs when `in` was solved with a slew-rate state (u_{t-1} in the state;
// ReduceSlewGradient into *reduced), else itself (no copy). m comes from the converted problem, or
// from cost.quadratic (a tracking cost has none: its gradient is then left as it is).
// ToBackwardProblems checked the shapes this reads.
const ProblemGradient& CallerGradient(const mpcd::v1::Problem& in, const Problem* problem,
                                      const ProblemGradient& gradient, ProblemGradient* reduced) {
  if (!(in.slew_rate_penalty() > 0 && in.x_init().shape_size() == 1)) return gradient;
  const int n = static_cast<int>(in.x_init().shape(0));
  int m = 0;
  if (problem != nullptr) {
    m = CallerShape(*problem).control_dim;
  } else if (in.cost().quadratic().shape_size() >= 2) {
    m = static_cast<int>(*in.cost().quadratic().shape().rbegin()) - n;
  } else {
    return gradient;
  }
  *reduced = gradient;
  ReduceSlewGradient(n, m, reduced);
  return *reduced;
}

// The shape of problem i of a Backward request: the converted problem's (the caller's, without a
// slew-rate state) when the caller has it, else as far as the gradient tells (n from x_init, n+m
// from c), which is all the shapes use.
ProblemShape ShapeForGradient(const mpcd::v1::BackwardRequest& request,
                              const ProblemGradient& gradient, absl::Span<const Problem> problems,
                              std::size_t i) {
  if (i < problems.size()) return CallerShape(problems[i]);
  ProblemShape shape;
  shape.horizon = static_cast<int>(request.horizon());
  shape.state_dim = static_cast<int>(gradient.x_init.size());
  shape.control_dim = static_cast<int>(gradient.cost_linear.size()) - shape.state_dim;
  return shape;
}

// BackwardResponse.stacked_gradients (equal shapes: ToBackwardProblems checked them).
// dL/d(each initializer of `graph`) stacked (B, <its shape>) into `out` by name, from each
// gradient's `theta` (a dynamics graph's params or a cost graph's cost_params).
void StackGraphGradient(mpcd::v1::TensorEncoding encoding, const GraphProgram& graph,
                        absl::Span<const ProblemGradient> gradients,
                        std::vector<double> ProblemGradient::*theta,
                        google::protobuf::Map<std::string, Tensor>* out) {
  for (const GraphParameter& parameter : graph.parameters) {
    SetStackedTensor(
        encoding, parameter.shape, static_cast<int>(gradients.size()),
        [&](int b) {
          const std::vector<double>& params = gradients[b].*theta;
          const std::size_t end = std::size_t(parameter.offset) + parameter.size;
          if (params.size() < end) return absl::Span<const double>();
          return absl::Span<const double>(params).subspan(parameter.offset, parameter.size);
        },
        &(*out)[parameter.name]);
  }
}

void ToStackedBackwardResponse(const mpcd::v1::BackwardRequest& request,
                               absl::Span<const ProblemGradient> gradients,
                               absl::Span<const Problem> problems,
                               mpcd::v1::BackwardResponse* response) {
  mpcd::v1::BatchedProblems* out = response->mutable_stacked_gradients();
  out->Clear();
  const int count = static_cast<int>(gradients.size());
  mpcd::v1::Problem storage;
  absl::StatusOr<const mpcd::v1::Problem*> first = MergedProblem(request, 0, &storage);
  if (count == 0 || !first.ok()) return;
  const mpcd::v1::Problem& in = **first;
  // Slew-rate problems' gradients restricted to the caller's inputs (their merged problems all
  // have the slew term or none: the stacked gradients have equal shapes).
  std::vector<ProblemGradient> reduced;
  if (in.slew_rate_penalty() > 0) {
    reduced.resize(count);
    mpcd::v1::Problem other;  // `in` may live in storage
    for (int b = 0; b < count; ++b) {
      absl::StatusOr<const mpcd::v1::Problem*> merged = MergedProblem(request, b, &other);
      if (!merged.ok()) return;
      const Problem* problem = b < static_cast<int>(problems.size()) ? &problems[b] : nullptr;
      const ProblemGradient& g = CallerGradient(**merged, problem, gradients[b], &reduced[b]);
      if (&g != &reduced[b]) reduced[b] = g;
    }
    gradients = reduced;
  }
  const ProblemShape shape = ShapeForGradient(request, gradients[0], problems, 0);
  const GradientShapes shapes = GradientShapesOf(SourceOf(in), shape);
  const mpcd::v1::TensorEncoding encoding = request.response_encoding();
  const GradientFields wanted = GradientFields::Of(request).value_or(GradientFields());
  // `to` is the answer's mutable accessor, called only for a wanted gradient (it creates the
  // field).
  using Batched = mpcd::v1::BatchedProblems;
  const auto stack = [&](GradientFields::Field field, const Shape& slice,
                         std::vector<double> ProblemGradient::*member, Tensor* (Batched::*to)()) {
    if (!wanted.Has(field)) return;
    SetStackedTensor(
        encoding, slice, count,
        [&](int b) { return absl::Span<const double>(gradients[b].*member); }, (out->*to)());
  };
  const auto stack_graph = [&](GradientFields::Field field, const GraphProgram* graph,
                               std::vector<double> ProblemGradient::*theta,
                               google::protobuf::Map<std::string, Tensor>* (Batched::*to)()) {
    if (graph != nullptr && wanted.Has(field)) {
      StackGraphGradient(encoding, *graph, gradients, theta, (out->*to)());
    }
  };
  const Problem* first_problem = problems.empty() ? nullptr : &problems[0];
  out->set_count(static_cast<std::uint32_t>(count));
  stack(GradientFields::kXInit, {shape.state_dim}, &ProblemGradient::x_init,
        &Batched::mutable_x_init);
  // A cost graph's C and c are its quadratisation's (its parameters' gradients come below), a
  // tracking cost's the goals' and weights'.
  if (in.has_tracking()) {
    if (wanted.Has(GradientFields::kTracking)) {
      StackTrackingGradient(request, gradients, shape, out);
    }
  } else if (first_problem == nullptr || first_problem->cost_graph == nullptr) {
    stack(GradientFields::kCostQuadratic, shapes.cost_quadratic, &ProblemGradient::cost_quadratic,
          &Batched::mutable_cost_quadratic);
    stack(GradientFields::kCostLinear, shapes.cost_linear, &ProblemGradient::cost_linear,
          &Batched::mutable_cost_linear);
  }
  switch (in.dynamics().kind_case()) {
    case mpcd::v1::Dynamics::kLinear:
      stack(GradientFields::kTransition, shapes.transition, &ProblemGradient::transition,
            &Batched::mutable_transition);
      stack(GradientFields::kOffset, shapes.offset, &ProblemGradient::offset,
            &Batched::mutable_offset);
      break;
    case mpcd::v1::Dynamics::kGraph:
      stack_graph(GradientFields::kGraphParameters,
                  first_problem == nullptr ? nullptr : first_problem->graph.get(),
                  &ProblemGradient::params, &Batched::mutable_graph_parameters);
      break;
    default:
      stack(GradientFields::kModelParams, {static_cast<std::int64_t>(gradients[0].params.size())},
            &ProblemGradient::params, &Batched::mutable_model_params);
  }
  if (first_problem != nullptr) {
    stack_graph(GradientFields::kCostGraphParameters, first_problem->cost_graph.get(),
                &ProblemGradient::cost_params, &Batched::mutable_cost_graph_parameters);
    stack_graph(GradientFields::kTerminalCostGraphParameters,
                first_problem->terminal_cost_graph.get(), &ProblemGradient::terminal_cost_params,
                &Batched::mutable_terminal_cost_graph_parameters);
    stack_graph(GradientFields::kConstraintGraphParameters, first_problem->constraint_graph.get(),
                &ProblemGradient::constraint_params, &Batched::mutable_constraint_graph_parameters);
  }
  if (!gradients[0].x_lower.empty()) {
    stack(GradientFields::kXLower, shapes.x_lower, &ProblemGradient::x_lower,
          &Batched::mutable_x_lower);
  }
  if (!gradients[0].x_upper.empty()) {
    stack(GradientFields::kXUpper, shapes.x_upper, &ProblemGradient::x_upper,
          &Batched::mutable_x_upper);
  }
  if (!gradients[0].constraint_G.empty()) {
    stack(GradientFields::kConstraintG, shapes.constraint_G, &ProblemGradient::constraint_G,
          &Batched::mutable_constraint_g);
    stack(GradientFields::kConstraintH, shapes.constraint_h, &ProblemGradient::constraint_h,
          &Batched::mutable_constraint_h);
  }
  for (const ProblemGradient& gradient : gradients) {
    ToProtoDiagnostics(gradient, response->add_diagnostics());
  }
}

}  // namespace

void ToBackwardResponse(const mpcd::v1::BackwardRequest& request,
                        absl::Span<const ProblemGradient> gradients,
                        mpcd::v1::BackwardResponse* response, absl::Span<const Problem> problems) {
  response->clear_gradients();
  response->clear_diagnostics();
  const GradientFields wanted = GradientFields::Of(request).value_or(GradientFields());
  mpcd::v1::Problem storage;
  for (std::size_t i = 0; i < gradients.size(); ++i) {
    absl::StatusOr<const mpcd::v1::Problem*> merged =
        MergedProblem(request, static_cast<int>(i), &storage);
    if (!merged.ok()) return;  // not a request ToBackwardProblems accepted
    const mpcd::v1::Problem& in = **merged;
    ProblemGradient reduced;
    const ProblemGradient& g =
        CallerGradient(in, i < problems.size() ? &problems[i] : nullptr, gradients[i], &reduced);
    const GradientShapes shapes =
        GradientShapesOf(SourceOf(in), ShapeForGradient(request, g, problems, i));
    mpcd::v1::Problem* out = response->add_gradients();
    const Problem* problem = i < problems.size() ? &problems[i] : nullptr;
    using F = GradientFields;
    if (wanted.Has(F::kXInit)) {
      SetTensor({static_cast<std::int64_t>(g.x_init.size())}, g.x_init, out->mutable_x_init());
    }
    if (in.has_tracking()) {
      // Only the converted problem knows m for sure (the gradient's c may be per step).
      if (problem != nullptr && wanted.Has(F::kTracking)) {
        SetTrackingGradient(in.tracking(), CallerShape(*problem), g, out->mutable_tracking());
      }
    } else if (in.has_cost_graph()) {
      if (problem != nullptr && problem->cost_graph != nullptr &&
          wanted.Has(F::kCostGraphParameters)) {
        SetGraphGradient(*problem->cost_graph, g.cost_params, out->mutable_cost_graph());
      }
    } else {
      if (wanted.Has(F::kCostQuadratic)) {
        SetTensor(shapes.cost_quadratic, g.cost_quadratic,
                  out->mutable_cost()->mutable_quadratic());
      }
      if (wanted.Has(F::kCostLinear)) {
        SetTensor(shapes.cost_linear, g.cost_linear, out->mutable_cost()->mutable_linear());
      }
    }
    if (in.dynamics().kind_case() == mpcd::v1::Dynamics::kLinear) {
      if (wanted.Has(F::kTransition)) {
        SetTensor(shapes.transition, g.transition,
                  out->mutable_dynamics()->mutable_linear()->mutable_transition());
      }
      if (wanted.Has(F::kOffset)) {
        SetTensor(shapes.offset, g.offset,
                  out->mutable_dynamics()->mutable_linear()->mutable_offset());
      }
    } else if (in.dynamics().kind_case() == mpcd::v1::Dynamics::kGraph) {
      if (problem != nullptr && problem->graph != nullptr && wanted.Has(F::kGraphParameters)) {
        SetGraphGradient(*problem->graph, g.params, out->mutable_dynamics()->mutable_graph());
      }
    } else if (wanted.Has(F::kModelParams)) {
      mpcd::v1::ModelDynamics* model = out->mutable_dynamics()->mutable_model();
      model->set_name(in.dynamics().model().name());
      model->mutable_params()->Assign(g.params.begin(), g.params.end());
    }
    if (in.has_terminal_cost_graph() && problem != nullptr &&
        problem->terminal_cost_graph != nullptr && wanted.Has(F::kTerminalCostGraphParameters)) {
      SetGraphGradient(*problem->terminal_cost_graph, g.terminal_cost_params,
                       out->mutable_terminal_cost_graph());
    }
    if (in.has_constraint_graph() && problem != nullptr && problem->constraint_graph != nullptr &&
        wanted.Has(F::kConstraintGraphParameters)) {
      SetGraphGradient(*problem->constraint_graph, g.constraint_params,
                       out->mutable_constraint_graph());
    }
    if (!g.x_lower.empty() && wanted.Has(F::kXLower)) {
      SetTensor(shapes.x_lower, g.x_lower, out->mutable_x_lower());
    }
    if (!g.x_upper.empty() && wanted.Has(F::kXUpper)) {
      SetTensor(shapes.x_upper, g.x_upper, out->mutable_x_upper());
    }
    if (!g.constraint_G.empty() && wanted.Has(F::kConstraintG)) {
      SetTensor(shapes.constraint_G, g.constraint_G, out->mutable_constraints()->mutable_g());
    }
    if (!g.constraint_G.empty() && wanted.Has(F::kConstraintH)) {
      SetTensor(shapes.constraint_h, g.constraint_h, out->mutable_constraints()->mutable_h());
    }
    ToProtoDiagnostics(g, response->add_diagnostics());
  }
}

void WriteGradients(const mpcd::v1::BackwardRequest& request,
                    absl::Span<const ProblemGradient> gradients, absl::Span<const Problem> problems,
                    mpcd::v1::BackwardResponse* response) {
  if (request.stacked_response()) {
    response->clear_gradients();
    response->clear_diagnostics();
    ToStackedBackwardResponse(request, gradients, problems, response);
    return;
  }
  ToBackwardResponse(request, gradients, response, problems);
  EncodeResponseTensors(request.response_encoding(), response);
}

void AddGraphModels(absl::Span<const NamedGraph> graphs, mpcd::v1::ListModelsResponse* response) {
  for (const NamedGraph& graph : graphs) {
    const GraphProgram& program = *graph.program;
    mpcd::v1::ModelDescription* out = response->add_models();
    out->set_name(graph.name);
    out->set_state_dim(static_cast<std::uint32_t>(program.state_dim));
    out->set_control_dim(static_cast<std::uint32_t>(program.control_dim));
    for (const GraphParameter& parameter : program.parameters) {
      out->add_param_names(parameter.name);
      mpcd::v1::ParameterShape* shape = out->add_param_shapes();
      for (std::int64_t d : parameter.shape) shape->add_shape(static_cast<std::uint32_t>(d));
    }
    out->mutable_default_params()->Assign(program.default_params.begin(),
                                          program.default_params.end());
    out->set_sha256(program.sha256);
  }
}

void ToListModelsResponse(absl::Span<const ModelInfo> models,
                          mpcd::v1::ListModelsResponse* response) {
  response->clear_models();
  for (const ModelInfo& model : models) {
    mpcd::v1::ModelDescription* out = response->add_models();
    out->set_name(model.name);
    out->set_state_dim(static_cast<std::uint32_t>(model.state_dim));
    out->set_control_dim(static_cast<std::uint32_t>(model.control_dim));
    for (const std::string& name : model.param_names) out->add_param_names(name);
    out->mutable_default_params()->Assign(model.default_params.begin(), model.default_params.end());
    out->set_default_dt(model.default_dt);
    for (const std::string& name : model.integrators) out->add_integrators(name);
    out->set_continuous(model.continuous);
    for (const std::string& name : model.state_names) out->add_state_names(name);
    for (const std::string& name : model.control_names) out->add_control_names(name);
  }
}

absl::StatusOr<Problem> ToControlProblem(const mpcd::v1::ControlRequest& first,
                                         const RequestLimits& limits) {
  if (IsPresent(first.x())) {
    return absl::InvalidArgumentError(
        "x: only later messages carry a measured state; the first message's state is "
        "problem.x_init");
  }
  if (first.has_cost()) {
    return absl::InvalidArgumentError(
        "cost: only later messages replace the cost; the first message's cost is problem.cost");
  }
  if (!first.has_problem()) {
    return absl::InvalidArgumentError(
        "problem: required in the first message of a Control session (the template)");
  }
  MPC_RETURN_IF_ERROR(CheckHorizonAndCount(first.horizon(), 1, limits));
  MPC_RETURN_IF_ERROR(ValidateSolverOptions(first.options(), limits.problem));
  SolverOptions options = ToSolverOptions(first.options());
  options.compute_gains = true;
  if (first.problem().slew_rate_penalty() != 0) {
    // Each step measures x only; the session would have to carry u_{t-1} into the augmented state.
    return absl::InvalidArgumentError(
        "problem.slew_rate_penalty: not supported in Control sessions yet");
  }
  absl::StatusOr<Problem> problem =
      ToProblem(first.problem(), static_cast<int>(first.horizon()), options, limits, "problem.");
  if (problem.ok() || problem.status().code() != absl::StatusCode::kInvalidArgument) {
    return problem;
  }
  // The message counts the violations the details name, as a Solve's does.
  return InvalidArgumentWithViolations({problem.status()});
}

absl::Status ApplyControlStep(const mpcd::v1::ControlRequest& step, Problem* problem) {
  if (step.horizon() != 0 || step.has_problem() || step.has_options()) {
    const char* field = step.horizon() != 0  ? "horizon"
                        : step.has_problem() ? "problem"
                                             : "options";
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": only the first message of a Control session sets the template"));
  }
  if (step.real_time_iteration()) {
    return absl::InvalidArgumentError(
        "real_time_iteration: only the first message of a Control session sets the mode");
  }
  const ProblemShape& shape = problem->shape;
  // The same table as the first message's problem, with this message's names.
  MPC_RETURN_IF_ERROR(CheckTensorData(step.x(), "x"));
  MPC_RETURN_IF_ERROR(CheckTensorShape(step.x(), ArrayField::kXInit, shape, "x"));
  MPC_RETURN_IF_ERROR(CheckTensorFinite(step.x(), "x"));
  if (step.has_cost()) {
    const mpcd::v1::QuadraticCost& cost = step.cost();
    MPC_RETURN_IF_ERROR(CheckTensorData(cost.quadratic(), "cost.quadratic"));
    MPC_RETURN_IF_ERROR(CheckTensorData(cost.linear(), "cost.linear"));
    MPC_RETURN_IF_ERROR(
        CheckTensorShape(cost.quadratic(), ArrayField::kCostQuadratic, shape, "cost.quadratic"));
    MPC_RETURN_IF_ERROR(
        CheckTensorShape(cost.linear(), ArrayField::kCostLinear, shape, "cost.linear"));
    MPC_RETURN_IF_ERROR(CheckTensorFinite(cost.quadratic(), "cost.quadratic"));
    MPC_RETURN_IF_ERROR(CheckTensorFinite(cost.linear(), "cost.linear"));
    problem->cost_quadratic = ToVector(cost.quadratic());
    problem->cost_linear = IsPresent(cost.linear()) ? ToVector(cost.linear())
                                                    : std::vector<double>(shape.tau_dim(), 0.0);
  }
  problem->x_init = ToVector(step.x());
  return absl::OkStatus();
}

void ShiftPlanIntoWarmStart(const Solution& plan, Problem* problem) {
  const auto m = static_cast<std::ptrdiff_t>(problem->shape.control_dim);
  if (!AllFinite(plan.u) || static_cast<std::ptrdiff_t>(plan.u.size()) < m) {
    problem->u_init.clear();
    return;
  }
  problem->u_init.assign(plan.u.begin() + m, plan.u.end());
  problem->u_init.insert(problem->u_init.end(), plan.u.end() - m, plan.u.end());
}

void ToControlResponse(const Problem& problem, const Solution& solution,
                       mpcd::v1::ControlResponse* response) {
  const std::int64_t n = problem.shape.state_dim;
  const std::int64_t m = problem.shape.control_dim;
  response->Clear();
  SetTensor({m}, std::vector<double>(solution.u.begin(), solution.u.begin() + m),
            response->mutable_u0());
  if (static_cast<std::int64_t>(solution.feedback.size()) >= m * n) {
    SetTensor({m, n},
              std::vector<double>(solution.feedback.begin(), solution.feedback.begin() + m * n),
              response->mutable_feedback0());
  }
  ToProtoSolution(problem, solution, response->mutable_plan());
}

}  // namespace mpc
