// The C++ client's service configs are the JSON files other languages use
// (client/service_config/*.json, shown in docs/operations.md): the same JSON, value for value.

#include <fstream>
#include <iterator>
#include <string>

#include "client/mpc_client.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace mpc {
namespace {

nlohmann::json ReadJsonFile(const std::string& name) {
  const std::string path = std::string(MPCD_SERVICE_CONFIG_DIR) + "/" + name;
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  return nlohmann::json::parse(std::string(std::istreambuf_iterator<char>(in), {}));
}

TEST(ServiceConfig, ReplicatedIsTheDocumentedJson) {
  EXPECT_EQ(nlohmann::json::parse(ReplicatedServiceConfig()), ReadJsonFile("replicated.json"));
}

TEST(ServiceConfig, RetryIsTheDocumentedJson) {
  EXPECT_EQ(nlohmann::json::parse(RetryServiceConfig()), ReadJsonFile("retry.json"));
}

TEST(ServiceConfig, MaxAttemptsIsTheOnlyDifference) {
  nlohmann::json three = nlohmann::json::parse(ReplicatedServiceConfig(3));
  EXPECT_EQ(three["methodConfig"][0]["retryPolicy"]["maxAttempts"], 3);
  three["methodConfig"][0]["retryPolicy"]["maxAttempts"] = 5;
  EXPECT_EQ(three, ReadJsonFile("replicated.json"));
}

}  // namespace
}  // namespace mpc
