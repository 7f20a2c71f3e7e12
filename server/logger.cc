#include "server/logger.h"

#include <grpc/support/log.h>

#include <atomic>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace mpc {
namespace {

// protobuf's JSON printer does the escaping (quotes, control characters, invalid UTF-8).
std::string JsonString(absl::string_view text) {
  google::protobuf::Value value;
  value.set_string_value(std::string(text));
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(value, &json).ok()) {
    return absl::StrCat("\"", absl::CHexEscape(text), "\"");
  }
  return json;
}

std::string JsonValue(const LogField& field) {
  if (const auto* text = std::get_if<std::string>(&field.value)) return JsonString(*text);
  if (const auto* number = std::get_if<std::int64_t>(&field.value)) return absl::StrCat(*number);
  const double number = std::get<double>(field.value);
  // JSON has no NaN or infinity.
  return std::isfinite(number) ? absl::StrCat(number) : JsonString(absl::StrCat(number));
}

bool NeedsQuotes(absl::string_view text) {
  if (text.empty()) return true;
  for (const char c : text) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f ||
        static_cast<unsigned char>(c) >= 0x80) {
      return true;
    }
  }
  return false;
}

std::string TextValue(const LogField& field) {
  if (const auto* text = std::get_if<std::string>(&field.value)) {
    return NeedsQuotes(*text) ? absl::StrCat("\"", absl::CHexEscape(*text), "\"") : *text;
  }
  if (const auto* number = std::get_if<std::int64_t>(&field.value)) return absl::StrCat(*number);
  return absl::StrCat(std::get<double>(field.value));
}

std::string Timestamp() {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::Now(), absl::UTCTimeZone());
}

std::atomic<const Logger*> grpc_logger{nullptr};

void LogFromGrpc(gpr_log_func_args* args) {
  const Logger* logger = grpc_logger.load(std::memory_order_acquire);
  if (logger == nullptr) return;
  const LogLevel level = args->severity == GPR_LOG_SEVERITY_ERROR  ? LogLevel::kError
                         : args->severity == GPR_LOG_SEVERITY_INFO ? LogLevel::kInfo
                                                                   : LogLevel::kDebug;
  if (!logger->Enabled(level)) return;
  logger->Log(level, args->message,
              {LogField("source", "grpc"),
               LogField("location", absl::StrCat(args->file, ":", args->line))});
}

}  // namespace

absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view name) {
  for (const LogLevel level :
       {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarning, LogLevel::kError}) {
    if (name == LogLevelName(level)) return level;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "log_level: must be debug, info, warning or error, got \"", absl::CHexEscape(name), "\""));
}

absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view name) {
  if (name == "text") return LogFormat::kText;
  if (name == "json") return LogFormat::kJson;
  return absl::InvalidArgumentError(
      absl::StrCat("log_format: must be text or json, got \"", absl::CHexEscape(name), "\""));
}

const char* LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "unknown";
}

Logger::Logger(const LogConfig& config, std::FILE* sink) : config_(config), sink_(sink) {}

std::string Logger::Format(LogLevel level, absl::string_view message,
                           absl::Span<const LogField> fields) const {
  std::string line;
  if (config_.format == LogFormat::kJson) {
    absl::StrAppend(&line, "{\"time\":\"", Timestamp(), "\",\"level\":\"", LogLevelName(level),
                    "\",\"msg\":", JsonString(message));
    for (const LogField& field : fields) {
      absl::StrAppend(&line, ",", JsonString(field.key), ":", JsonValue(field));
    }
    line += "}";
    return line;
  }
  absl::StrAppend(&line, Timestamp(), " ", absl::AsciiStrToUpper(LogLevelName(level)), " ",
                  message);
  for (const LogField& field : fields)
    absl::StrAppend(&line, " ", field.key, "=", TextValue(field));
  return line;
}

void Logger::Log(LogLevel level, absl::string_view message,
                 absl::Span<const LogField> fields) const {
  if (!Enabled(level)) return;
  std::string line = Format(level, message, fields);
  // Messages are ours or gRPC's and never contain a line break on purpose; one that did would
  // split a JSON line.
  for (char& c : line) {
    if (c == '\n') c = ' ';
  }
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), sink_);
  std::fflush(sink_);
}

void RouteGrpcLogsTo(const Logger* logger) {
  grpc_logger.store(logger, std::memory_order_release);
  gpr_set_log_function(&LogFromGrpc);  // with no logger, gRPC's lines are dropped
}

}  // namespace mpc
