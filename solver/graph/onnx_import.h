#ifndef MPC_SOLVER_GRAPH_ONNX_IMPORT_H_
#define MPC_SOLVER_GRAPH_ONNX_IMPORT_H_

// ONNX graph -> GraphProgram (DESIGN §12): parsed with Debian's ONNX library (onnx_proto, never by
// hand), checked (limits, op set, inputs x and u, missing inputs, cycles, onnx::checker, static
// shapes, finite initializers, output size), its constants folded, and lowered to the primitive
// tape of graph_program.h. Separate from mpc::solver because it needs libonnx and OpenSSL, which
// the GPU machine's solver-only build has not.

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "solver/graph/graph_program.h"

namespace mpc {

// Bounds on what one graph may cost (the server takes them from flags).
struct GraphLimits {
  long long max_bytes = 64LL << 20;  // serialized ModelProto
  int max_nodes = 10000;
  long long max_parameters = 1 << 20;  // scalars in all initializers together
  long long max_elements = 1 << 22;    // scalars in the evaluation buffer (every intermediate)
};

// The ONNX ops a graph may use, sorted (what an error about an unsupported op lists).
const char* SupportedGraphOps();

// The lowest and highest opset (default domain) accepted.
constexpr int kMinGraphOpset = 13;
constexpr int kMaxGraphOpset = 17;

// The SHA-256 of `bytes` as 64 lowercase hex digits.
std::string Sha256Hex(std::string_view bytes);

// Compiles a serialized ONNX ModelProto whose graph maps inputs `x` ((n) or (1, n)) and `u` ((m)
// or (1, m)), float32 or float64, to one output: with n elements x_next = f(x, u; theta), with k
// elements a stage constraint g(x, u; theta) <= 0 (CheckDynamicsGraph tells them apart by the
// field that names the graph), theta the float initializers in their order; or, a cost graph,
// the one input `tau` ((n+m) or (1, n+m)) to one output with a single element: l(tau; theta)
// (GraphProgram::is_cost). Errors are
// INVALID_ARGUMENT with a message that names the
// node (index, name, op type), initializer or input at fault; the caller prefixes the field.
absl::StatusOr<std::shared_ptr<const GraphProgram>> CompileOnnxGraph(std::string_view bytes,
                                                                     const GraphLimits& limits);

// INVALID_ARGUMENT unless `program` can be dynamics: an output of n elements (the size of x).
absl::Status CheckDynamicsGraph(const GraphProgram& program);

}  // namespace mpc

#endif  // MPC_SOLVER_GRAPH_ONNX_IMPORT_H_
