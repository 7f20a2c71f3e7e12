#ifndef MPC_SOLVER_CPU_CORE_EXECUTOR_H_
#define MPC_SOLVER_CPU_CORE_EXECUTOR_H_

// The CPU executor of the core (solver/core/): no algorithm of its own. A worker packs one problem
// as a batch of one (solver/packing.h; the core's contiguous layout), runs the core on its own
// thread with compile-time sizes where the shape has them (else run-time sizes with scratch from
// the workspace's arena) and unpacks the answer. Internal to solver/cpu.

#include <memory>

#include "solver/cpu/ilqr.h"
#include "solver/cpu/implicit_backward.h"
#include "solver/problem.h"

namespace mpc {

// Which compile-time sizes the CPU executor runs a shape with.
enum class CoreSizes {
  kSpecialised,  // the shape's compile-time specialisation where one exists (else run-time sizes)
  kRunTime,      // always run-time sizes (tests compare the two)
};

// How the CPU executor rolls a sampling problem's samples (core/sampling.h) and the line search's
// trials (core/ilqr.h) out.
enum class SampleRollouts {
  kLanes,     // several at once where the shape allows (double_lanes.h, libmvec's sin and cos)
  kOneByOne,  // one at a time in double, as the GPU does (the host emulation test compares)
};

std::unique_ptr<ShapeSolver> MakeCoreShapeSolver(const ProblemShape& shape, CoreSizes sizes,
                                                 SampleRollouts rollouts = SampleRollouts::kLanes);
std::unique_ptr<ShapeBackward> MakeCoreShapeBackward(const ProblemShape& shape, CoreSizes sizes);

}  // namespace mpc

#endif  // MPC_SOLVER_CPU_CORE_EXECUTOR_H_
