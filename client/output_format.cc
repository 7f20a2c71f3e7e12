#include "client/output_format.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "mpcd/v1/mpcd.pb.h"

namespace mpc {
namespace {

absl::StatusOr<std::string> Json(const google::protobuf::Message& message, bool whitespace) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = whitespace;
  options.preserve_proto_field_names = true;
  // Print zeros too (cost 0, iterations 0, ...) so scripts see the same keys every time.
  options.always_print_primitive_fields = true;
  std::string json;
  const auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat("cannot print JSON: ", status.message().ToString()));
  }
  return json;
}

// Rows of cells as left-aligned columns, two spaces apart.
std::string Columns(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& row : rows) {
    width.resize(std::max(width.size(), row.size()), 0);
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::vector<std::string> lines;
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      absl::StrAppend(&line, row[i]);
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    lines.push_back(line);
  }
  return absl::StrJoin(lines, "\n");
}

std::string Numbers(const google::protobuf::RepeatedField<double>& values, int first, int count) {
  std::vector<std::string> cells;
  for (int i = first; i < std::min(first + count, values.size()); ++i) {
    cells.push_back(absl::StrFormat("%.6g", values[i]));
  }
  return absl::StrCat("[", absl::StrJoin(cells, ", "), "]");
}

std::string Footer(const mpcd::v1::Timing& timing, int batch_size, const std::string& backend) {
  return absl::StrFormat("backend %s, batch %d, queue %.3f ms, solve %.3f ms",
                         backend.empty() ? "?" : backend, batch_size, timing.queue_seconds() * 1e3,
                         timing.solve_seconds() * 1e3);
}

std::string SolveTable(const mpcd::v1::SolveResponse& response) {
  std::vector<std::vector<std::string>> rows = {
      {"problem", "status", "iterations", "cost", "u[0]"}};
  for (int i = 0; i < response.solutions_size(); ++i) {
    const mpcd::v1::Solution& s = response.solutions(i);
    const int m = s.u().shape_size() == 2 ? static_cast<int>(s.u().shape(1)) : 0;
    rows.push_back({absl::StrCat(i), mpcd::v1::SolveStatus_Name(s.status()),
                    absl::StrCat(s.iterations()), absl::StrFormat("%.10g", s.cost()),
                    Numbers(s.u().data(), 0, m)});
  }
  return absl::StrCat(
      Columns(rows), "\n",
      Footer(response.timing(), static_cast<int>(response.batch_size()), response.backend()));
}

std::string BackwardTable(const mpcd::v1::BackwardResponse& response) {
  std::vector<std::vector<std::string>> rows = {{"problem", "status", "dL/dx_init"}};
  for (int i = 0; i < response.gradients_size(); ++i) {
    const mpcd::v1::Tensor& x_init = response.gradients(i).x_init();
    rows.push_back({absl::StrCat(i),
                    i < response.diagnostics_size()
                        ? mpcd::v1::GradientStatus_Name(response.diagnostics(i).status())
                        : "",
                    Numbers(x_init.data(), 0, x_init.data_size())});
  }
  return absl::StrCat(
      Columns(rows), "\n",
      Footer(response.timing(), static_cast<int>(response.batch_size()), response.backend()));
}

std::string ModelsTable(const mpcd::v1::ListModelsResponse& response) {
  std::vector<std::vector<std::string>> rows = {
      {"model", "n", "m", "dt", "params (defaults)", "integrators"}};
  for (const mpcd::v1::ModelDescription& model : response.models()) {
    std::vector<std::string> params;
    for (int i = 0; i < model.param_names_size(); ++i) {
      params.push_back(
          absl::StrFormat("%s=%g", model.param_names(i),
                          i < model.default_params_size() ? model.default_params(i) : 0.0));
    }
    rows.push_back({model.name(), absl::StrCat(model.state_dim()),
                    absl::StrCat(model.control_dim()), absl::StrFormat("%g", model.default_dt()),
                    params.empty() ? "-" : absl::StrJoin(params, " "),
                    // A discrete-time model takes no integrator.
                    model.integrators().empty() ? "-" : absl::StrJoin(model.integrators(), ",")});
  }
  return Columns(rows);
}

}  // namespace

absl::StatusOr<OutputFormat> ParseOutputFormat(absl::string_view name) {
  if (name == "json") return OutputFormat::kJson;
  if (name == "compact") return OutputFormat::kCompact;
  if (name == "table") return OutputFormat::kTable;
  return absl::InvalidArgumentError(
      absl::StrCat("output: must be json, compact or table, got \"", name, "\""));
}

absl::StatusOr<std::string> FormatMessage(const google::protobuf::Message& message,
                                          OutputFormat format) {
  if (format == OutputFormat::kTable) {
    if (const auto* solve = dynamic_cast<const mpcd::v1::SolveResponse*>(&message)) {
      return SolveTable(*solve);
    }
    if (const auto* backward = dynamic_cast<const mpcd::v1::BackwardResponse*>(&message)) {
      return BackwardTable(*backward);
    }
    if (const auto* models = dynamic_cast<const mpcd::v1::ListModelsResponse*>(&message)) {
      return ModelsTable(*models);
    }
  }
  return Json(message, format == OutputFormat::kJson);
}

}  // namespace mpc
