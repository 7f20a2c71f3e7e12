#include "solver/graph/graph_registry.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace mpc {

GraphRegistry::GraphRegistry(GraphRegistryOptions options) : options_(std::move(options)) {}

absl::StatusOr<std::shared_ptr<const GraphProgram>> GraphRegistry::Register(
    std::string_view bytes) {
  const std::string sha256 = Sha256Hex(bytes);
  {
    absl::MutexLock lock(&mu_);
    if (auto it = by_hash_.find(sha256); it != by_hash_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->second;
    }
  }
  // Compiled outside the lock: a large graph must not stall every other request's lookup.
  absl::StatusOr<std::shared_ptr<const GraphProgram>> program =
      CompileOnnxGraph(bytes, options_.limits);
  if (!program.ok()) return program.status();
  absl::MutexLock lock(&mu_);
  if (by_hash_.find(sha256) == by_hash_.end()) Insert(*program);
  return program;
}

void GraphRegistry::Insert(std::shared_ptr<const GraphProgram> program) {
  const std::string sha256 = program->sha256;
  lru_.emplace_front(sha256, std::move(program));
  by_hash_[sha256] = lru_.begin();
  while (static_cast<int>(lru_.size()) > options_.capacity) {
    by_hash_.erase(lru_.back().first);
    lru_.pop_back();
  }
}

absl::StatusOr<std::shared_ptr<const GraphProgram>> GraphRegistry::FindBySha256(
    std::string_view sha256) {
  const std::string key = absl::AsciiStrToLower(std::string(sha256));
  absl::MutexLock lock(&mu_);
  if (auto it = by_hash_.find(key); it != by_hash_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->second;
  }
  for (const NamedGraph& graph : named_) {
    if (graph.program->sha256 == key) return graph.program;
  }
  return absl::FailedPreconditionError(
      absl::StrCat("unknown graph sha256 ", key, ": send its bytes (dynamics.graph.onnx) again"));
}

absl::StatusOr<std::shared_ptr<const GraphProgram>> GraphRegistry::FindByName(
    std::string_view name) const {
  absl::MutexLock lock(&mu_);
  for (const NamedGraph& graph : named_) {
    if (graph.name == name) return graph.program;
  }
  return absl::NotFoundError(
      absl::StrCat("no graph named \"", std::string(name), "\" in the model folder"));
}

absl::Status GraphRegistry::LoadDirectory(const std::string& directory) {
  std::error_code error;
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(directory, error)) {
    if (entry.path().extension() == ".onnx") files.push_back(entry.path());
  }
  if (error) {
    return absl::InvalidArgumentError(
        absl::StrCat("model_dir: cannot read ", directory, ": ", error.message()));
  }
  std::sort(files.begin(), files.end());
  std::vector<NamedGraph> loaded;
  for (const std::filesystem::path& file : files) {
    std::ifstream in(file, std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    absl::StatusOr<std::shared_ptr<const GraphProgram>> program =
        CompileOnnxGraph(bytes.str(), options_.limits);
    if (!program.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("model_dir: ", file.string(), ": ", program.status().message()));
    }
    loaded.push_back({file.stem().string(), *std::move(program)});
  }
  absl::MutexLock lock(&mu_);
  named_ = std::move(loaded);
  return absl::OkStatus();
}

std::vector<NamedGraph> GraphRegistry::named() const {
  absl::MutexLock lock(&mu_);
  return named_;
}

int GraphRegistry::cached() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(lru_.size());
}

}  // namespace mpc
