#include "server/call_log.h"

#include <cstdint>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"

namespace mpc {
namespace {

bool IsValidRequestId(absl::string_view id) {
  if (id.empty() || id.size() > kMaxRequestIdLength) return false;
  for (const char c : id) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != ':' && c != '-') return false;
  }
  return true;
}

std::string NewRequestId() {
  thread_local absl::BitGen random;
  return absl::StrFormat("%016x", absl::Uniform<std::uint64_t>(random));
}

std::string ClientRequestId(const grpc::CallbackServerContext& context) {
  const auto& metadata = context.client_metadata();
  const auto found = metadata.find(kRequestIdKey);
  if (found == metadata.end()) return "";
  return std::string(found->second.data(), found->second.size());
}

// See the table in call_log.h.
LogLevel LevelOf(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return LogLevel::kDebug;
    case absl::StatusCode::kCancelled:
      return LogLevel::kInfo;
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kDataLoss:
      return LogLevel::kError;
    default:
      return LogLevel::kWarning;
  }
}

const char* MessageOf(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "request answered";
    case LogLevel::kInfo:
      return "request cancelled";
    case LogLevel::kError:
      return "request failed";
    case LogLevel::kWarning:
      return "request refused";
  }
  return "request";
}

}  // namespace

std::string ChooseRequestId(absl::string_view from_client) {
  return IsValidRequestId(from_client) ? std::string(from_client) : NewRequestId();
}

CallLog::CallLog(RpcMethod method, grpc::CallbackServerContext* context, ServiceMetrics* metrics,
                 const Logger* logger)
    : method_(method),
      request_id_(ChooseRequestId(ClientRequestId(*context))),
      peer_(context->peer()),
      metrics_(metrics),
      logger_(logger) {
  context->AddInitialMetadata(kRequestIdKey, request_id_);
}

void CallLog::Started() {
  start_ = absl::Now();
  metrics_->RequestStarted(method_);
}

void CallLog::Finished(const absl::Status& status, absl::Span<const LogField> extra) const {
  const absl::Duration latency = absl::Now() - start_;
  metrics_->RequestFinished(method_, status.code(), latency);
  const LogLevel level = LevelOf(status.code());
  if (logger_ == nullptr || !logger_->Enabled(level)) return;
  std::vector<LogField> fields = {
      LogField("request_id", request_id_),
      LogField("method", RpcMethodName(method_)),
      LogField("code", absl::StatusCodeToString(status.code())),
      LogField("duration_ms", absl::ToDoubleMilliseconds(latency)),
      LogField("peer", peer_),
  };
  fields.insert(fields.end(), extra.begin(), extra.end());
  if (!status.ok()) fields.emplace_back("reason", status.message());
  logger_->Log(level, MessageOf(level), fields);
}

}  // namespace mpc
