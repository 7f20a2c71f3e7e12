#include "server/logger.h"

#include <cstdio>
#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace mpc {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

google::protobuf::Struct ParseJson(const std::string& line) {
  google::protobuf::Struct parsed;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(line, &parsed).ok()) << line;
  return parsed;
}

TEST(Logger, JsonLineKeepsEveryFieldAndEscapesText) {
  const Logger logger({.level = LogLevel::kDebug, .format = LogFormat::kJson}, nullptr);
  const std::string line = logger.Format(
      LogLevel::kWarning, "request \"refused\"\n",
      {LogField("reason", "x: got \"\\\x01\""), LogField("count", 3), LogField("ms", 0.25),
       LogField("not_a_number", 0.0 / 0.0), LogField("bytes", std::string("\xff\xfe", 2))});
  const google::protobuf::Struct parsed = ParseJson(line);
  EXPECT_EQ(parsed.fields().at("level").string_value(), "warning");
  EXPECT_EQ(parsed.fields().at("msg").string_value(), "request \"refused\"\n");
  EXPECT_EQ(parsed.fields().at("reason").string_value(), "x: got \"\\\x01\"");
  EXPECT_EQ(parsed.fields().at("count").number_value(), 3);
  EXPECT_EQ(parsed.fields().at("ms").number_value(), 0.25);
  EXPECT_EQ(parsed.fields().at("not_a_number").string_value(), "nan");
  EXPECT_TRUE(parsed.fields().contains("bytes"));  // invalid UTF-8 still makes a JSON line
  EXPECT_THAT(parsed.fields().at("time").string_value(),
              MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z"));
}

TEST(Logger, TextLineQuotesOnlyWhatNeedsIt) {
  const Logger logger({.level = LogLevel::kDebug, .format = LogFormat::kText}, nullptr);
  const std::string line = logger.Format(
      LogLevel::kInfo, "serving",
      {LogField("backend", "cpu"), LogField("reason", "a b=\"c\""), LogField("empty", "")});
  EXPECT_THAT(line, MatchesRegex(".*Z INFO serving backend=cpu reason=\"a b=\\\\\"c\\\\\"\" "
                                 "empty=\"\""));
}

TEST(Logger, WritesOneLinePerCallAtOrAboveItsLevel) {
  std::FILE* sink = std::tmpfile();
  ASSERT_NE(sink, nullptr);
  const Logger logger({.level = LogLevel::kWarning, .format = LogFormat::kText}, sink);
  logger.Log(LogLevel::kInfo, "not written");
  logger.Log(LogLevel::kWarning, "first\nline");
  logger.Log(LogLevel::kError, "second");
  std::rewind(sink);
  std::string written(4096, '\0');
  written.resize(std::fread(written.data(), 1, written.size(), sink));
  std::fclose(sink);
  EXPECT_THAT(written, MatchesRegex("[^\n]* WARNING first line\n[^\n]* ERROR second\n"));
  EXPECT_THAT(written, ::testing::Not(HasSubstr("not written")));
}

TEST(Logger, ParsesLevelsAndFormatsOrNamesTheFlag) {
  EXPECT_EQ(*ParseLogLevel("debug"), LogLevel::kDebug);
  EXPECT_EQ(*ParseLogLevel("error"), LogLevel::kError);
  EXPECT_EQ(*ParseLogFormat("json"), LogFormat::kJson);
  EXPECT_THAT(std::string(ParseLogLevel("loud").status().message()), HasSubstr("log_level"));
  EXPECT_THAT(std::string(ParseLogFormat("xml").status().message()), HasSubstr("log_format"));
}

}  // namespace
}  // namespace mpc
