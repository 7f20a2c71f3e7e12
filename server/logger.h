#ifndef MPC_SERVER_LOGGER_H_
#define MPC_SERVER_LOGGER_H_

// mpcd's log lines on stderr (Debian's Abseil 20220623 has no absl/log). One line per event, as
// text ("2026-12-05T08:00:00.000000Z WARNING request refused method=Solve code=...") or as one JSON
// object per line (--log_format=json), below a level (--log_level). A line is written by one
// fwrite, so lines from several threads never interleave. Never a stack trace: only the message
// and the fields given.

#include <cstdint>
#include <cstdio>
#include <string>
#include <variant>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace mpc {

enum class LogLevel : std::uint8_t { kDebug, kInfo, kWarning, kError };
enum class LogFormat : std::uint8_t { kText, kJson };

// "debug" | "info" | "warning" | "error"; INVALID_ARGUMENT naming --log_level otherwise.
absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view name);
// "text" | "json"; INVALID_ARGUMENT naming --log_format otherwise.
absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view name);
const char* LogLevelName(LogLevel level);  // "debug", ...

struct LogConfig {
  LogLevel level = LogLevel::kInfo;  // lines below it are not written
  LogFormat format = LogFormat::kText;
};

// One key and value of a log line; numbers stay numbers in JSON.
struct LogField {
  LogField(absl::string_view key, absl::string_view text) : key(key), value(std::string(text)) {}
  LogField(absl::string_view key, const char* text) : key(key), value(std::string(text)) {}
  LogField(absl::string_view key, const std::string& text) : key(key), value(text) {}
  LogField(absl::string_view key, double number) : key(key), value(number) {}
  LogField(absl::string_view key, std::int64_t number) : key(key), value(number) {}
  LogField(absl::string_view key, int number) : key(key), value(std::int64_t{number}) {}

  absl::string_view key;
  std::variant<std::string, double, std::int64_t> value;
};

class Logger {
 public:
  // Writes to `sink` (stderr in mpcd), which must outlive the logger.
  explicit Logger(const LogConfig& config, std::FILE* sink = stderr);

  bool Enabled(LogLevel level) const { return level >= config_.level; }
  // One line: the time (UTC), the level, `message`, then `fields` in order.
  void Log(LogLevel level, absl::string_view message, absl::Span<const LogField> fields = {}) const;

  // The line Log writes, without its newline (for tests of the format).
  std::string Format(LogLevel level, absl::string_view message,
                     absl::Span<const LogField> fields) const;

 private:
  const LogConfig config_;
  std::FILE* const sink_;
};

// Sends gRPC's own log lines (handshake failures, ...) through `logger`, so that with
// --log_format=json every line on stderr is JSON. `logger` must live until the process exits
// (or until RouteGrpcLogsTo(nullptr), which drops gRPC's lines).
void RouteGrpcLogsTo(const Logger* logger);

}  // namespace mpc

#endif  // MPC_SERVER_LOGGER_H_
