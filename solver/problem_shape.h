#ifndef MPC_SOLVER_PROBLEM_SHAPE_H_
#define MPC_SOLVER_PROBLEM_SHAPE_H_

// The batch key: what problems must share to share one backend launch. Plain C++ (no absl): the
// core's dispatch and nvcc translation units include it.

#include <cstdint>

namespace mpc {

// Which dynamics a problem uses: linear (F and f from the problem), the built-in model at index
// `model` of the model list (solver/models/model_list.h: ModelId<Model>(), FindModel), or a
// dynamics graph told apart by content: the SHA-256 of its bytes (solver/graph/).
struct DynamicsId {
  static constexpr std::int32_t kLinear = -1;
  static constexpr std::int32_t kGraph = -2;
  std::int32_t model = kLinear;
  std::uint64_t graph[4] = {0, 0, 0, 0};  // kGraph: the graph's SHA-256, big-endian words

  static constexpr DynamicsId Linear() { return DynamicsId{}; }
  static constexpr DynamicsId Builtin(int index) { return DynamicsId{index}; }
  // `sha256`: 4 words.
  static constexpr DynamicsId Graph(const std::uint64_t* sha256) {
    return DynamicsId{kGraph, {sha256[0], sha256[1], sha256[2], sha256[3]}};
  }
  constexpr bool is_linear() const { return model == kLinear; }
  constexpr bool is_graph() const { return model == kGraph; }

  friend constexpr bool operator==(const DynamicsId& a, const DynamicsId& b) {
    return a.model == b.model && a.graph[0] == b.graph[0] && a.graph[1] == b.graph[1] &&
           a.graph[2] == b.graph[2] && a.graph[3] == b.graph[3];
  }
  friend constexpr bool operator!=(const DynamicsId& a, const DynamicsId& b) { return !(a == b); }
  template <typename H>
  friend H AbslHashValue(H h, const DynamicsId& id) {
    return H::combine(static_cast<H&&>(h), id.model, id.graph[0], id.graph[1], id.graph[2],
                      id.graph[3]);
  }
};

struct ProblemShape {
  DynamicsId dynamics;
  int state_dim = 0;    // n
  int control_dim = 0;  // m
  int horizon = 0;      // T (rows of x and of u)
  // The SHA-256 of the problem's stage cost graph (DESIGN §12), all zero for the quadratic cost:
  // a cost graph runs on CPU workers only, and problems share a batch with the same graph.
  std::uint64_t cost_graph[4] = {0, 0, 0, 0};
  // The same for the problem's terminal cost graph (the cost of t = T-1; all zero without one).
  std::uint64_t terminal_cost_graph[4] = {0, 0, 0, 0};
  // The same for the problem's stage constraint graph g(x, u) <= 0 (all zero without one).
  std::uint64_t constraint_graph[4] = {0, 0, 0, 0};

  constexpr int tau_dim() const { return state_dim + control_dim; }
  constexpr bool has_cost_graph() const {
    return (cost_graph[0] | cost_graph[1] | cost_graph[2] | cost_graph[3]) != 0;
  }
  constexpr bool has_terminal_cost_graph() const {
    return (terminal_cost_graph[0] | terminal_cost_graph[1] | terminal_cost_graph[2] |
            terminal_cost_graph[3]) != 0;
  }
  constexpr bool has_constraint_graph() const {
    return (constraint_graph[0] | constraint_graph[1] | constraint_graph[2] |
            constraint_graph[3]) != 0;
  }
  friend constexpr bool operator==(const ProblemShape& a, const ProblemShape& b) {
    return a.dynamics == b.dynamics && a.state_dim == b.state_dim &&
           a.control_dim == b.control_dim && a.horizon == b.horizon &&
           a.cost_graph[0] == b.cost_graph[0] && a.cost_graph[1] == b.cost_graph[1] &&
           a.cost_graph[2] == b.cost_graph[2] && a.cost_graph[3] == b.cost_graph[3] &&
           a.terminal_cost_graph[0] == b.terminal_cost_graph[0] &&
           a.terminal_cost_graph[1] == b.terminal_cost_graph[1] &&
           a.terminal_cost_graph[2] == b.terminal_cost_graph[2] &&
           a.terminal_cost_graph[3] == b.terminal_cost_graph[3] &&
           a.constraint_graph[0] == b.constraint_graph[0] &&
           a.constraint_graph[1] == b.constraint_graph[1] &&
           a.constraint_graph[2] == b.constraint_graph[2] &&
           a.constraint_graph[3] == b.constraint_graph[3];
  }
  friend constexpr bool operator!=(const ProblemShape& a, const ProblemShape& b) {
    return !(a == b);
  }
  template <typename H>
  friend H AbslHashValue(H h, const ProblemShape& s) {
    return H::combine(static_cast<H&&>(h), s.dynamics, s.state_dim, s.control_dim, s.horizon,
                      s.cost_graph[0], s.cost_graph[1], s.cost_graph[2], s.cost_graph[3],
                      s.terminal_cost_graph[0], s.terminal_cost_graph[1], s.terminal_cost_graph[2],
                      s.terminal_cost_graph[3], s.constraint_graph[0], s.constraint_graph[1],
                      s.constraint_graph[2], s.constraint_graph[3]);
  }
};

}  // namespace mpc

#endif  // MPC_SOLVER_PROBLEM_SHAPE_H_
