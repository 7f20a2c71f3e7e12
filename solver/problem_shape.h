#ifndef MPC_SOLVER_PROBLEM_SHAPE_H_
#define MPC_SOLVER_PROBLEM_SHAPE_H_

// The batch key: what problems must share to share one backend launch. Plain C++ (no absl): the
// core's dispatch and nvcc translation units include it.

#include <cstdint>

namespace mpc {

// Which dynamics a problem uses: linear (F and f from the problem) or the built-in model at index
// `model` of the model list (solver/models/model_list.h: ModelId<Model>(), FindModel). A dynamics
// graph will add its fingerprint here, so two graphs are told apart by content.
struct DynamicsId {
  static constexpr std::int32_t kLinear = -1;
  std::int32_t model = kLinear;

  static constexpr DynamicsId Linear() { return DynamicsId{}; }
  static constexpr DynamicsId Builtin(int index) { return DynamicsId{index}; }
  constexpr bool is_linear() const { return model == kLinear; }

  friend constexpr bool operator==(const DynamicsId& a, const DynamicsId& b) {
    return a.model == b.model;
  }
  friend constexpr bool operator!=(const DynamicsId& a, const DynamicsId& b) { return !(a == b); }
  template <typename H>
  friend H AbslHashValue(H h, const DynamicsId& id) {
    return H::combine(static_cast<H&&>(h), id.model);
  }
};

struct ProblemShape {
  DynamicsId dynamics;
  int state_dim = 0;    // n
  int control_dim = 0;  // m
  int horizon = 0;      // T (rows of x and of u)

  constexpr int tau_dim() const { return state_dim + control_dim; }
  friend constexpr bool operator==(const ProblemShape& a, const ProblemShape& b) {
    return a.dynamics == b.dynamics && a.state_dim == b.state_dim &&
           a.control_dim == b.control_dim && a.horizon == b.horizon;
  }
  friend constexpr bool operator!=(const ProblemShape& a, const ProblemShape& b) {
    return !(a == b);
  }
  template <typename H>
  friend H AbslHashValue(H h, const ProblemShape& s) {
    return H::combine(static_cast<H&&>(h), s.dynamics, s.state_dim, s.control_dim, s.horizon);
  }
};

}  // namespace mpc

#endif  // MPC_SOLVER_PROBLEM_SHAPE_H_
