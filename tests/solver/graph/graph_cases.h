#ifndef MPC_TESTS_SOLVER_GRAPH_GRAPH_CASES_H_
#define MPC_TESTS_SOLVER_GRAPH_GRAPH_CASES_H_

// The graphs export_test_graphs.py wrote (MPCD_TEST_GRAPHS_DIR): each op's small torch module as
// ONNX, with PyTorch's own forward at a random point, and the malformed graphs with the error
// substrings they must produce.

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace mpc::testing {

struct GraphCase {
  std::string name;
  std::string bytes;  // the .onnx file
  std::vector<double> x, u, x_next;
  std::map<std::string, std::vector<double>> params;  // by initializer name
  double tolerance = 0.0;
};

struct BadGraphCase {
  std::string name;
  std::string bytes;
  std::vector<std::string> messages;
};

inline std::string GraphsDir() {
  const char* dir = std::getenv("MPCD_TEST_GRAPHS_DIR");
  return dir == nullptr ? std::string() : std::string(dir);
}

inline std::string ReadGraphFile(const std::string& file) {
  std::ifstream in(GraphsDir() + "/" + file, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

inline nlohmann::json ReadManifest(const std::string& file) {
  std::ifstream in(GraphsDir() + "/" + file);
  return in ? nlohmann::json::parse(in) : nlohmann::json::array();
}

inline std::vector<GraphCase> LoadGraphCases() {
  std::vector<GraphCase> cases;
  for (const nlohmann::json& c : ReadManifest("graphs.json")) {
    GraphCase g;
    g.name = c["name"];
    g.bytes = ReadGraphFile(g.name + ".onnx");
    g.x = c["x"].get<std::vector<double>>();
    g.u = c["u"].get<std::vector<double>>();
    g.x_next = c["x_next"].get<std::vector<double>>();
    g.params = c["params"].get<std::map<std::string, std::vector<double>>>();
    g.tolerance = c["tolerance"];
    cases.push_back(std::move(g));
  }
  return cases;
}

inline std::vector<BadGraphCase> LoadBadGraphCases() {
  std::vector<BadGraphCase> cases;
  for (const nlohmann::json& c : ReadManifest("bad_graphs.json")) {
    cases.push_back(
        {c["name"], ReadGraphFile(c["file"]), c["messages"].get<std::vector<std::string>>()});
  }
  return cases;
}

}  // namespace mpc::testing

#endif  // MPC_TESTS_SOLVER_GRAPH_GRAPH_CASES_H_
