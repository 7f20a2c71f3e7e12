#ifndef MPC_TESTS_TESTING_STATUS_MATCHERS_H_
#define MPC_TESTS_TESTING_STATUS_MATCHERS_H_

// gMock matchers for absl::Status and absl::StatusOr<T> with the semantics of Abseil's
// absl/status/status_matchers.h, which Debian's Abseil (20220623) does not ship yet. Once it does,
// replacing `mpc::testing::` by `absl_testing::` is the whole migration.
//
//   EXPECT_THAT(DoIt(), IsOk());
//   EXPECT_THAT(Parse("x"), StatusIs(absl::StatusCode::kInvalidArgument));
//   EXPECT_THAT(Parse("x"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("horizon")));
//   MPC_ASSERT_OK_AND_ASSIGN(auto value, MakeValue());

#include <ostream>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mpc::testing {
namespace internal_status {

inline const absl::Status& GetStatus(const absl::Status& status) { return status; }

template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

class IsOkMatcher {
 public:
  template <typename StatusType>
  bool MatchAndExplain(const StatusType& actual, ::testing::MatchResultListener* listener) const {
    const absl::Status& status = GetStatus(actual);
    if (!status.ok()) *listener << "which has status " << status;
    return status.ok();
  }
  void DescribeTo(std::ostream* os) const { *os << "is OK"; }
  void DescribeNegationTo(std::ostream* os) const { *os << "is not OK"; }
};

class StatusIsMatcher {
 public:
  StatusIsMatcher(::testing::Matcher<absl::StatusCode> code_matcher,
                  ::testing::Matcher<const std::string&> message_matcher)
      : code_matcher_(std::move(code_matcher)), message_matcher_(std::move(message_matcher)) {}

  template <typename StatusType>
  bool MatchAndExplain(const StatusType& actual, ::testing::MatchResultListener* listener) const {
    const absl::Status& status = GetStatus(actual);
    *listener << "which has status " << status;
    ::testing::StringMatchResultListener inner;
    if (!code_matcher_.MatchAndExplain(status.code(), &inner)) {
      if (!inner.str().empty()) *listener << ", whose code " << inner.str();
      return false;
    }
    const std::string message(status.message());
    if (!message_matcher_.MatchAndExplain(message, &inner)) {
      if (!inner.str().empty()) *listener << ", whose message " << inner.str();
      return false;
    }
    return true;
  }
  void DescribeTo(std::ostream* os) const {
    *os << "has a status code that ";
    code_matcher_.DescribeTo(os);
    *os << ", and has an error message that ";
    message_matcher_.DescribeTo(os);
  }
  void DescribeNegationTo(std::ostream* os) const {
    *os << "has a status code that ";
    code_matcher_.DescribeNegationTo(os);
    *os << ", or has an error message that ";
    message_matcher_.DescribeNegationTo(os);
  }

 private:
  ::testing::Matcher<absl::StatusCode> code_matcher_;
  ::testing::Matcher<const std::string&> message_matcher_;
};

}  // namespace internal_status

// Matches an OK absl::Status or absl::StatusOr<T>.
inline ::testing::PolymorphicMatcher<internal_status::IsOkMatcher> IsOk() {
  return ::testing::MakePolymorphicMatcher(internal_status::IsOkMatcher());
}

// Matches an absl::Status or absl::StatusOr<T> whose code matches `code` (a value or a matcher)
// and, optionally, whose message matches `message` (a string or a matcher).
template <typename CodeMatcher, typename MessageMatcher>
::testing::PolymorphicMatcher<internal_status::StatusIsMatcher> StatusIs(CodeMatcher code,
                                                                         MessageMatcher message) {
  return ::testing::MakePolymorphicMatcher(internal_status::StatusIsMatcher(
      ::testing::MatcherCast<absl::StatusCode>(std::move(code)),
      ::testing::MatcherCast<const std::string&>(std::move(message))));
}

template <typename CodeMatcher>
::testing::PolymorphicMatcher<internal_status::StatusIsMatcher> StatusIs(CodeMatcher code) {
  return StatusIs(std::move(code), ::testing::_);
}

}  // namespace mpc::testing

#define MPC_TESTING_CONCAT_INNER_(a, b) a##b
#define MPC_TESTING_CONCAT_(a, b) MPC_TESTING_CONCAT_INNER_(a, b)

// Asserts that `expr` (an absl::StatusOr<T>) is OK and moves its value into `lhs`, which may be a
// declaration (`auto x`).
#define MPC_ASSERT_OK_AND_ASSIGN(lhs, expr) \
  MPC_ASSERT_OK_AND_ASSIGN_IMPL_(MPC_TESTING_CONCAT_(mpc_testing_statusor_, __LINE__), lhs, expr)

// `statusor` is an identifier and `lhs` may be a declaration: neither can be parenthesised.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define MPC_ASSERT_OK_AND_ASSIGN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                   \
  ASSERT_THAT(statusor.status(), ::mpc::testing::IsOk());   \
  lhs = *std::move(statusor)
// NOLINTEND(bugprone-macro-parentheses)

#endif  // MPC_TESTS_TESTING_STATUS_MATCHERS_H_
