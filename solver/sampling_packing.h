#ifndef MPC_SOLVER_SAMPLING_PACKING_H_
#define MPC_SOLVER_SAMPLING_PACKING_H_

// Host side of the sampling methods' batch layout (solver/core/sampling.h): the iLQR's batch
// (packing.h) followed by the sampling buffers, and the per-problem SamplingSettings. One packing
// for both executors, as packing.h. Plain C++ (no CUDA).

#include <cstddef>

#include "absl/types/span.h"
#include "solver/core/sampling.h"
#include "solver/packing.h"
#include "solver/problem.h"

namespace mpc::core {

// Offsets, in scalars, of the sampling arrays of one batch: [the iLQR's layout (inputs, outputs,
// scratch) | mean, std, plan, costs]. The elite sets are ints, in a buffer of their own.
struct SamplingBatchLayout {
  IlqrBatchLayout problem;
  int max_samples = 1;     // the costs' size per problem: the largest `samples` of the batch
  int max_elites = 1;      // the elite sets' size per problem
  int max_iterations = 0;  // the largest sampling iterations of the batch
  std::size_t mean = 0, std = 0, plan = 0, costs = 0;
  std::size_t total_size = 0;  // scalars in the whole buffer
  std::size_t elite_size = 0;  // ints in the elite buffer
};

// Whether some problem samples (its options.method is not kIlqr).
bool AnyUsesSampling(absl::Span<const Problem* const> problems);

// The layout for `problems`, which must all have one shape and be valid (ValidateProblem*).
SamplingBatchLayout PlanSamplingBatch(absl::Span<const Problem* const> problems);

// Pointers into `buffer` (layout.total_size scalars), `elites` (layout.elite_size) and the
// per-problem structs (layout.problem.batch each). The iLQR view's u_init is the plan.
template <typename S>
SamplingBatchView<S> MakeSamplingBatchView(const SamplingBatchLayout& layout, S* buffer,
                                           int* elites, const ProblemSettings* settings,
                                           ProblemResult* results,
                                           const SamplingSettings* sampling_settings,
                                           SamplingResult* sampling_results);

// Writes the inputs and settings of `problems` as PackIlqrInputs does (with max_iterations 0 for
// pure CEM/MPPI: the iLQR then only evaluates the plan) and their sampling settings.
template <typename S>
void PackSamplingInputs(absl::Span<const Problem* const> problems,
                        const SamplingBatchLayout& layout, S* buffer, ProblemSettings* settings,
                        SamplingSettings* sampling_settings);

extern template SamplingBatchView<double> MakeSamplingBatchView(const SamplingBatchLayout&, double*,
                                                                int*, const ProblemSettings*,
                                                                ProblemResult*,
                                                                const SamplingSettings*,
                                                                SamplingResult*);
extern template SamplingBatchView<float> MakeSamplingBatchView(const SamplingBatchLayout&, float*,
                                                               int*, const ProblemSettings*,
                                                               ProblemResult*,
                                                               const SamplingSettings*,
                                                               SamplingResult*);
extern template void PackSamplingInputs(absl::Span<const Problem* const>,
                                        const SamplingBatchLayout&, double*, ProblemSettings*,
                                        SamplingSettings*);
extern template void PackSamplingInputs(absl::Span<const Problem* const>,
                                        const SamplingBatchLayout&, float*, ProblemSettings*,
                                        SamplingSettings*);

}  // namespace mpc::core

#endif  // MPC_SOLVER_SAMPLING_PACKING_H_
