#ifndef MPC_SOLVER_CORE_LANES_H_
#define MPC_SOLVER_CORE_LANES_H_

// Evaluations side by side in one scalar: the core's rollouts take a rollout scalar R that is
// either the solve's scalar S (one evaluation: a device thread, the host emulation) or a host's
// lane type (solver/cpu/double_lanes.h: several evaluations, one per lane), which offers
// R::kLanes, R::Load(const S* lanes), Store(S* lanes), operator[](lane) and the lane-by-lane
// LanesMax/LanesMin. The sampling planner rolls several samples out at once (sampling.h), the
// line search several step sizes (ilqr.h). Plain types only: nvcc compiles this.

#include <type_traits>

#include "solver/core/scratch.h"
#include "solver/host_device.h"

namespace mpc::core {

// How many evaluations a rollout scalar R carries: 1 for a plain scalar, R::kLanes for a lane type.
template <typename R, typename = void>
inline constexpr int kRolloutLanes = 1;
template <typename R>
inline constexpr int kRolloutLanes<R, std::void_t<decltype(R::kLanes)>> = R::kLanes;

// The R that holds lanes[0..kRolloutLanes<R>).
template <typename R, typename S>
MPC_HOST_DEVICE R FromLanes(const S* lanes) {
  if constexpr (kRolloutLanes<R> == 1) {
    return R(lanes[0]);
  } else {
    return R::Load(lanes);
  }
}

// lanes[0..kRolloutLanes<R>) = v's lanes.
template <typename R, typename S>
MPC_HOST_DEVICE void ToLanes(const R& v, S* lanes) {
  if constexpr (kRolloutLanes<R> == 1) {
    lanes[0] = v;
  } else {
    v.Store(lanes);
  }
}

// Lane `lane` of v.
template <typename R>
MPC_HOST_DEVICE auto LaneOf(const R& v, int lane) {
  if constexpr (kRolloutLanes<R> == 1) {
    return v;
  } else {
    return v[lane];
  }
}

// max(a, b) and min(a, b) as the core's scalars take them (a < b ? b : a and b < a ? b : a: a NaN
// a stays NaN), lane by lane for a lane type.
template <typename R>
MPC_HOST_DEVICE R RolloutMax(const R& a, const R& b) {
  if constexpr (kRolloutLanes<R> == 1) {
    return a < b ? b : a;
  } else {
    return LanesMax(a, b);
  }
}
template <typename R>
MPC_HOST_DEVICE R RolloutMin(const R& a, const R& b) {
  if constexpr (kRolloutLanes<R> == 1) {
    return b < a ? b : a;
  } else {
    return LanesMin(a, b);
  }
}

// The arena of a rollout's R arrays: the solver's own (`arena`, for S) or none (a lane type runs
// at compile-time sizes only).
template <typename R, typename S>
MPC_HOST_DEVICE ScratchArena<R>* RolloutArena(ScratchArena<S>* arena) {
  if constexpr (std::is_same_v<R, S>) {
    return arena;
  } else {
    return nullptr;
  }
}

}  // namespace mpc::core

#endif  // MPC_SOLVER_CORE_LANES_H_
