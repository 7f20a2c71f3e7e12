#ifndef MPC_TESTS_TESTING_CARTPOLE_GRAPH_H_
#define MPC_TESTS_TESTING_CARTPOLE_GRAPH_H_

// Cartpole problems with the cartpole graph (export_test_graphs.py's cartpole_graph.onnx) as their
// dynamics, for the tests that hold graph dynamics against the built-in model or the CPU backend.

#include <memory>
#include <utility>
#include <vector>

#include "solver/graph/graph_program.h"
#include "solver/models/cartpole.h"
#include "solver/problem.h"
#include "tests/testing/random_problems.h"

namespace mpc::testing {

// `p` with `graph` as its dynamics, the graph's parameters set by the model's names from `values`
// (in the model's order, CartpoleModel::kParamNames).
inline Problem WithCartpoleGraph(Problem p, std::shared_ptr<const GraphProgram> graph,
                                 const std::vector<double>& values) {
  p.shape.dynamics = DynamicsId::Graph(graph->fingerprint.data());
  p.params.clear();
  for (const GraphParameter& parameter : graph->parameters) {
    for (int k = 0; k < CartpoleModel::kParamDim; ++k) {
      if (parameter.name == CartpoleModel::kParamNames[k]) p.params.push_back(values[k]);
    }
  }
  p.dt = 0.0;
  p.graph = std::move(graph);
  return p;
}

// `count` near-upright cartpole problems (seeds 0..count-1; T = 15, |th| <= 0.3, |thdot| <= 0.2,
// tolerance 1e-8, `max_iterations`) with `graph` as their dynamics at parameters that are not the
// model's defaults.
inline std::vector<Problem> NearUprightCartpoleGraphProblems(
    const std::shared_ptr<const GraphProgram>& graph, int count, int max_iterations) {
  std::vector<Problem> problems;
  for (int seed = 0; seed < count; ++seed) {
    RandomModelOptions options;
    options.horizon = 15;
    options.th_half_width = 0.3;
    options.thdot_half_width = 0.2;
    Problem p = RandomCartpoleProblem(options, seed);
    p.options.max_iterations = max_iterations;
    p.options.tolerance = 1e-8;
    problems.push_back(WithCartpoleGraph(std::move(p), graph, {9.81, 1.2, 0.15, 0.45}));
  }
  return problems;
}

}  // namespace mpc::testing

#endif  // MPC_TESTS_TESTING_CARTPOLE_GRAPH_H_
