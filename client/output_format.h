#ifndef MPC_CLIENT_OUTPUT_FORMAT_H_
#define MPC_CLIENT_OUTPUT_FORMAT_H_

// How mpcctl prints an answer (--output): pretty JSON (the default, protobuf's JSON mapping with
// field names as in the .proto and zeros printed), compact JSON (the same on one line), or a table
// for people (SolveResponse, BackwardResponse, ListModelsResponse; other messages as compact JSON).

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"

namespace mpc {

enum class OutputFormat { kJson, kCompact, kTable };

// "json", "compact" or "table"; anything else is INVALID_ARGUMENT naming --output.
absl::StatusOr<OutputFormat> ParseOutputFormat(absl::string_view name);

// `message` in `format` (pretty JSON ends with a newline of its own, the others do not).
absl::StatusOr<std::string> FormatMessage(const google::protobuf::Message& message,
                                          OutputFormat format);

}  // namespace mpc

#endif  // MPC_CLIENT_OUTPUT_FORMAT_H_
