#include "proto/error_details.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/types/optional.h"

namespace mpc {
namespace {

bool IsFieldPath(absl::string_view text) {
  if (text.empty()) return false;
  return std::none_of(text.begin(), text.end(), [](char c) { return c == ' ' || c == '\t'; });
}

std::string Bounded(absl::string_view text) {
  if (text.size() <= kMaxViolationBytes) return std::string(text);
  return absl::StrCat(text.substr(0, kMaxViolationBytes), "...");
}

template <typename Message>
std::optional<Message> PayloadOf(const absl::Status& status, absl::string_view type_url) {
  const absl::optional<absl::Cord> payload = status.GetPayload(type_url);
  if (!payload.has_value()) return std::nullopt;
  Message message;
  if (!message.ParseFromString(std::string(*payload))) return std::nullopt;
  return message;
}

}  // namespace

google::rpc::BadRequest::FieldViolation ToFieldViolation(absl::string_view message) {
  google::rpc::BadRequest::FieldViolation violation;
  const std::size_t colon = message.find(": ");
  if (colon != absl::string_view::npos && IsFieldPath(message.substr(0, colon))) {
    violation.set_field(std::string(message.substr(0, colon)));
    violation.set_description(Bounded(message.substr(colon + 2)));
  } else {
    violation.set_description(Bounded(message));
  }
  return violation;
}

absl::Status InvalidArgumentWithViolations(absl::Span<const absl::Status> violations) {
  Violations recorded;
  for (const absl::Status& violation : violations) {
    if (!recorded.Add(violation)) break;
  }
  return recorded.ToStatus();
}

absl::Status AllViolations(absl::Span<const absl::Status> violations) {
  if (violations.size() == 1) return violations.front();
  absl::Status status = absl::InvalidArgumentError(violations.front().message());
  google::rpc::BadRequest bad_request;
  for (const absl::Status& violation : violations) {
    *bad_request.add_field_violations() = ToFieldViolation(violation.message());
  }
  status.SetPayload(kBadRequestTypeUrl, absl::Cord(bad_request.SerializeAsString()));
  return status;
}

bool Violations::Add(const absl::Status& status) {
  if (found_.empty()) first_message_ = std::string(status.message());
  const std::optional<google::rpc::BadRequest> bad_request = BadRequestOf(status);
  std::vector<google::rpc::BadRequest::FieldViolation> added;
  if (bad_request.has_value()) {
    added.assign(bad_request->field_violations().begin(), bad_request->field_violations().end());
  } else {
    added.push_back(ToFieldViolation(status.message()));
  }
  for (google::rpc::BadRequest::FieldViolation& violation : added) {
    if (found_.size() == kMaxFieldViolations) {
      truncated_ = true;
      return false;
    }
    found_.push_back(std::move(violation));
  }
  return true;
}

absl::Status Violations::ToStatus() const {
  const std::size_t others = found_.size() - 1;
  std::string message = first_message_;
  if (others > 0 || truncated_) {
    absl::StrAppend(&message, " (", truncated_ ? "and at least " : "and ", others,
                    others == 1 ? " more violation" : " more violations",
                    ": see the error details)");
  }
  absl::Status status = absl::InvalidArgumentError(message);
  google::rpc::BadRequest bad_request;
  for (const google::rpc::BadRequest::FieldViolation& violation : found_) {
    *bad_request.add_field_violations() = violation;
  }
  status.SetPayload(kBadRequestTypeUrl, absl::Cord(bad_request.SerializeAsString()));
  return status;
}

absl::Status WithRetryDelay(absl::Status status, absl::Duration delay) {
  google::rpc::RetryInfo retry;
  const std::int64_t nanos = absl::ToInt64Nanoseconds(delay);
  retry.mutable_retry_delay()->set_seconds(nanos / 1000000000);
  retry.mutable_retry_delay()->set_nanos(static_cast<std::int32_t>(nanos % 1000000000));
  status.SetPayload(kRetryInfoTypeUrl, absl::Cord(retry.SerializeAsString()));
  return status;
}

google::rpc::Status ToRichStatus(const absl::Status& status, absl::string_view message) {
  absl::Status with_defaults = status;
  if (status.code() == absl::StatusCode::kInvalidArgument &&
      !status.GetPayload(kBadRequestTypeUrl).has_value()) {
    with_defaults = InvalidArgumentWithViolations({status});
  }
  if (status.code() == absl::StatusCode::kUnavailable &&
      !status.GetPayload(kRetryInfoTypeUrl).has_value()) {
    with_defaults = WithRetryDelay(with_defaults, kDefaultRetryDelay);
  }
  google::rpc::Status rich;
  rich.set_code(static_cast<std::int32_t>(status.code()));
  rich.set_message(std::string(message));
  with_defaults.ForEachPayload([&rich](absl::string_view type_url, const absl::Cord& payload) {
    google::protobuf::Any* detail = rich.add_details();
    detail->set_type_url(std::string(type_url));
    detail->set_value(std::string(payload));
  });
  return rich;
}

absl::Status FromRichStatus(absl::StatusCode code, absl::string_view message,
                            absl::string_view details) {
  absl::Status status(code, message);
  google::rpc::Status rich;
  if (details.empty() || !rich.ParseFromString(std::string(details))) return status;
  for (const google::protobuf::Any& detail : rich.details()) {
    status.SetPayload(detail.type_url(), absl::Cord(detail.value()));
  }
  return status;
}

std::optional<google::rpc::BadRequest> BadRequestOf(const absl::Status& status) {
  return PayloadOf<google::rpc::BadRequest>(status, kBadRequestTypeUrl);
}

std::optional<google::rpc::RetryInfo> RetryInfoOf(const absl::Status& status) {
  return PayloadOf<google::rpc::RetryInfo>(status, kRetryInfoTypeUrl);
}

}  // namespace mpc
