#include "solver/graph/graph_registry.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace mpc {

GraphRegistry::GraphRegistry(GraphRegistryOptions options)
    : options_(std::move(options)), by_hash_(options_.capacity) {}

absl::StatusOr<std::shared_ptr<const GraphProgram>> GraphRegistry::Register(
    std::string_view bytes) {
  const std::string sha256 = Sha256Hex(bytes);
  {
    absl::MutexLock lock(&mu_);
    if (std::shared_ptr<const GraphProgram> known = by_hash_.Find(sha256)) return known;
  }
  // Compiled outside the lock: a large graph must not stall every other request's lookup.
  absl::StatusOr<std::shared_ptr<const GraphProgram>> program =
      CompileOnnxGraph(bytes, options_.limits);
  if (!program.ok()) return program.status();
  absl::MutexLock lock(&mu_);
  if (by_hash_.Find(sha256) == nullptr) by_hash_.Insert(sha256, *program, /*cost=*/1);
  return program;
}

absl::StatusOr<std::shared_ptr<const GraphProgram>> GraphRegistry::FindBySha256(
    std::string_view sha256) {
  const std::string key = absl::AsciiStrToLower(std::string(sha256));
  absl::MutexLock lock(&mu_);
  if (std::shared_ptr<const GraphProgram> known = by_hash_.Find(key)) return known;
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
  return static_cast<int>(by_hash_.size());
}

}  // namespace mpc
