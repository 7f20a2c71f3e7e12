#ifndef MPC_SOLVER_GRAPH_GRAPH_REGISTRY_H_
#define MPC_SOLVER_GRAPH_GRAPH_REGISTRY_H_

// The graphs a server knows (DESIGN §12): every graph a request carried, by its SHA-256, in a
// bounded LRU (a training loop sends the bytes once, then the hash), and the graphs loaded at start
// from a folder (--model_dir), by name, never evicted. Thread-safe.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "solver/graph/graph_program.h"
#include "solver/graph/onnx_import.h"
#include "solver/lru_map.h"

namespace mpc {

struct GraphRegistryOptions {
  GraphLimits limits;
  int capacity = 256;  // graphs kept by hash besides the named ones
};

// A graph loaded from the model folder: its name is the file's name without ".onnx".
struct NamedGraph {
  std::string name;
  std::shared_ptr<const GraphProgram> program;
};

class GraphRegistry {
 public:
  explicit GraphRegistry(GraphRegistryOptions options);

  // The compiled graph of `bytes` (compiled once: a known hash is a lookup), now the most recently
  // used. INVALID_ARGUMENT from the compiler (onnx_import.h) for a bad graph.
  absl::StatusOr<std::shared_ptr<const GraphProgram>> Register(std::string_view bytes);

  // The graph with this SHA-256 (64 hex digits). FAILED_PRECONDITION naming the hash when the
  // server has not seen it (or evicted it): the client resends the bytes.
  absl::StatusOr<std::shared_ptr<const GraphProgram>> FindBySha256(std::string_view sha256);

  // A named graph from the model folder; NOT_FOUND when there is none.
  absl::StatusOr<std::shared_ptr<const GraphProgram>> FindByName(std::string_view name) const;

  // Compiles every *.onnx file of `directory` as a named graph. The first bad file fails the whole
  // load with its path in the message.
  absl::Status LoadDirectory(const std::string& directory);

  // The named graphs, sorted by name.
  std::vector<NamedGraph> named() const;

  // Graphs held by hash (named ones excluded).
  int cached() const;

 private:
  const GraphRegistryOptions options_;
  mutable absl::Mutex mu_;
  LruMap<GraphProgram> by_hash_ ABSL_GUARDED_BY(mu_);  // capacity: options_.capacity graphs
  std::vector<NamedGraph> named_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mpc

#endif  // MPC_SOLVER_GRAPH_GRAPH_REGISTRY_H_
