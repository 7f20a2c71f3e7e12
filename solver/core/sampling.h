#ifndef MPC_SOLVER_CORE_SAMPLING_H_
#define MPC_SOLVER_CORE_SAMPLING_H_

// Sampling-based MPC of one problem, written once for both executors (DESIGN §11): the
// cross-entropy method (CEM) and MPPI over the same batch view, dynamics Step and cost as the iLQR
// (problem_data.h), optionally followed by the iLQR from the sampled plan (*_THEN_ILQR: sample to
// find the basin, then converge and differentiate there).
//
// A Gaussian-like distribution over control sequences, mean (T, m) and standard deviation (T, m),
// is sampled, every sample rolled out, and the distribution moved towards the good samples:
//   sample s of iteration i:  u_s = clamp(mean + std * noise(seed, stream, i, s), bounds); s = 0 is
//                             the mean itself (noise 0), so an iteration always sees it; the
//                             noise is drawn every knot_spacing steps and interpolated linearly
//                             (rescaled to unit variance) in between: smooth, low-frequency
//                             perturbations, which long horizons need (a pendulum's pumping);
//                             knot_spacing 1 is white noise;
//   CEM:   the `elites` cheapest samples (ties by sample index, NaN costs last) give the elite
//          mean and standard deviation; mean <- momentum mean + (1 - momentum) elite mean, std
//          likewise, then std >= min_std;
//   MPPI:  weights w_s = exp(-(J_s - min J) / temperature); mean <- momentum mean +
//          (1 - momentum) sum_s w_s u_s / sum_s w_s; std stays the initial one.
// After each update the mean is rolled out; the cheapest mean so far is the sampled plan. Then
// ProblemSolver (ilqr.h) runs from it: the iLQR itself for *_THEN_ILQR, or, for pure CEM/MPPI,
// with max_iterations = 0 (packed so by PackSamplingSettings), which is the plan's rollout, cost
// and, when asked, the LQR gains linearised at it.
//
// Determinism: the noise is a pure function of (seed, stream = the problem's index in its
// request, iteration, sample, element) (philox.h), and the updates run per problem in a fixed
// order, so a problem's answer is bitwise the same alone or in any batch, on any thread count.
//
// The steps are separate so that each executor schedules them its own way: a CPU worker calls
// SolveWithSampling (one problem, samples in turn, nothing allocated); the GPU launches Begin, then
// per iteration SampleCost over (problem, sample) threads and Update over problems, then
// PolishAndFinish. No heap, no Eigen, no absl: nvcc compiles it.

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "solver/core/batch_view.h"
#include "solver/core/ilqr.h"
#include "solver/core/lanes.h"
#include "solver/core/philox.h"
#include "solver/core/problem_data.h"
#include "solver/core/scratch.h"
#include "solver/host_device.h"

namespace mpc::core {

enum SamplingMethod : std::int32_t {
  kSamplingNone = 0,  // plain iLQR
  kSamplingCem = 1,
  kSamplingMppi = 2,
};

// Per-problem sampling options (SolverOptions, solver/problem.h), one struct per problem.
struct SamplingSettings {
  double initial_std;    // > 0, control units
  double min_std;        // >= 0 (CEM)
  double temperature;    // lambda > 0 (MPPI), cost units
  double momentum;       // in [0, 1)
  double tolerance;      // the sampled plan counts as converged when its last step is below this
  std::int32_t method;   // SamplingMethod
  std::int32_t polish;   // 1: the iLQR runs from the sampled plan (*_THEN_ILQR)
  std::int32_t samples;  // >= 1
  std::int32_t elites;   // in [1, samples] (CEM)
  std::int32_t iterations;
  std::int32_t knot_spacing;  // >= 1: noise drawn every knot_spacing steps, linear in between
  std::uint32_t seed[2];      // the Philox key
  std::uint32_t stream;       // the problem's index in its request
};

// What sampling reports per problem.
struct SamplingResult {
  double best_cost;  // of the sampled plan
  double step_norm;  // 2-norm of the last update of the mean
  std::int32_t iterations;
  std::int32_t stopped;  // 1: the executor's stop query ended the sampling early (host only)
};

// Pointers into one batch's sampling buffers, beside the iLQR's. Shapes per problem, interleaved
// over the batch as every batch array (batch_view.h).
template <typename S>
struct SamplingBatchView {
  // The problems as the iLQR reads them; its u_init is `plan` below (the iLQR starts from the
  // sampled plan), and its settings' max_iterations is 0 for pure CEM/MPPI.
  IlqrBatchView<S> problem;
  const SamplingSettings* settings = nullptr;  // [batch], not interleaved
  SamplingResult* results = nullptr;           // [batch], not interleaved

  const S* u_init = nullptr;  // (T, m): the problem's warm start, the first mean
  S* mean = nullptr;          // (T, m)
  S* std = nullptr;           // (T, m)
  S* plan = nullptr;          // (T, m): the cheapest mean so far
  S* costs = nullptr;         // (max samples): a cost per sample, then MPPI's weights
  int* elites = nullptr;      // (max elites): CEM's elite set, a max-heap on (cost, sample)
};

#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// One problem's sampling. Sizes, Layout and arena as for ProblemSolver (ilqr.h).
template <typename S, class Dynamics, int NX, int NU, bool kFixedSize = true,
          class Layout = Interleaved>
class ProblemSampler : private ProblemData<S, Dynamics, NX, NU, kFixedSize, Layout> {
  using Data = ProblemData<S, Dynamics, NX, NU, kFixedSize, Layout>;
  using Data::At;
  using Data::Clamp;
  using Data::Copy;
  using Data::m;
  using Data::n;
  using Data::StageCost;
  using Data::Step;
  using Data::T_;

 public:
  MPC_HOST_DEVICE ProblemSampler(const SamplingBatchView<S>& view, int b,
                                 ScratchArena<S>* arena = nullptr)
      : Data(view.problem, b), sampling_(view), settings_(view.settings[b]), arena_(arena) {}

  // Whether this problem samples at all (else only the iLQR runs).
  MPC_HOST_DEVICE bool Samples() const { return settings_.method != kSamplingNone; }
  MPC_HOST_DEVICE int Iterations() const { return Samples() ? settings_.iterations : 0; }
  MPC_HOST_DEVICE int SampleCount() const { return settings_.samples; }

  // The first mean is the warm start (clamped), its std the initial one; the plan is that mean.
  MPC_HOST_DEVICE void Begin() {
    SamplingResult& out = sampling_.results[this->b_];
    out.iterations = 0;
    out.stopped = 0;
    out.step_norm = static_cast<double>(HUGE_VAL);
    for (int t = 0; t < T_; ++t) {
      for (int j = 0; j < m; ++j) {
        const int e = t * m + j;
        const S v = Clamp(t, j, At(sampling_.u_init, e));
        At(sampling_.mean, e) = v;
        At(sampling_.plan, e) = v;
        At(sampling_.std, e) = S(settings_.initial_std);
      }
    }
    out.best_cost = Samples() ? static_cast<double>(RolloutCost<S>(-1, 0)) : 0.0;
  }

  // Rolls out sample `sample` of `iteration` and stores its cost.
  MPC_HOST_DEVICE void SampleCost(int iteration, int sample) {
    At(sampling_.costs, sample) = RolloutCost<S>(iteration, sample);
  }

  // Rolls out the samples first_sample, first_sample + 1, ... of `iteration` together, one per
  // lane of R, and stores the costs of those below SampleCount() (the last group's other lanes
  // roll out draws of no sample and are dropped).
  template <typename R>
  MPC_HOST_DEVICE void SampleCosts(int iteration, int first_sample) {
    const R cost = RolloutCost<R>(iteration, first_sample);
    for (int lane = 0; lane < kRolloutLanes<R> && first_sample + lane < SampleCount(); ++lane) {
      At(sampling_.costs, first_sample + lane) = LaneOf(cost, lane);
    }
  }

  // Moves the distribution towards this iteration's good samples, then rolls the new mean out and
  // keeps it as the plan when it is the cheapest so far.
  MPC_HOST_DEVICE void Update(int iteration) {
    if (iteration >= Iterations() || Stopped()) return;
    if (settings_.method == kSamplingCem) {
      SelectElites();
      UpdateFromElites(iteration);
    } else {
      WeighSamples();
      UpdateFromWeights(iteration);
    }
    SamplingResult& out = sampling_.results[this->b_];
    out.iterations = iteration + 1;
    const S cost = RolloutCost<S>(-1, 0);
    if (IsFinite(cost) && (!IsFinite(S(out.best_cost)) || cost < S(out.best_cost))) {
      out.best_cost = cost;
      Copy(sampling_.mean, sampling_.plan, T_ * m);
    }
  }

  // Whether the sampling stopped: recorded, or the executor's stop flag is raised (what the device
  // reads; asks nobody). Sticky: recorded so that Finish reports the deadline.
  MPC_HOST_DEVICE bool Stopped() {
    SamplingResult& out = sampling_.results[this->b_];
    const volatile std::int32_t* flags = sampling_.problem.stop_flags;
    if (out.stopped == 0 && flags != nullptr && flags[this->b_] != 0) out.stopped = 1;
    return out.stopped != 0;
  }

  // Stopped, or (host only) the executor's stop query says so; the CPU loop asks before each
  // iteration.
  MPC_HOST_DEVICE bool StopRequested() {
    if (Stopped()) return true;
#if !defined(__CUDA_ARCH__)
    const IlqrBatchView<S>& problem = sampling_.problem;
    if (problem.should_stop != nullptr && problem.should_stop(problem.stop_context, this->b_)) {
      sampling_.results[this->b_].stopped = 1;
    }
#endif
    return sampling_.results[this->b_].stopped != 0;
  }

  // Pure CEM/MPPI: the iLQR ran no iteration (it rolled the plan out and, when asked, linearised
  // the gains there), so the solve's statistics are the sampling's.
  MPC_HOST_DEVICE void Finish() const {
    if (!Samples() || settings_.polish != 0) return;
    const SamplingResult& sampled = sampling_.results[this->b_];
    ProblemResult& out = sampling_.problem.results[this->b_];
    out.iterations = sampled.iterations;
    out.step_norm = sampled.step_norm;
    if (out.status == kDeviceNotFinite) return;
    if (sampled.stopped != 0) {
      out.status = kDeviceDeadline;
      return;
    }
    out.status = sampled.step_norm < settings_.tolerance ? kDeviceConverged : kDeviceMaxIterations;
  }

 private:
  // The unit noise of control j at knot `knot` (step knot * knot_spacing) of a sample.
  MPC_HOST_DEVICE double KnotNoise(int iteration, int sample, int knot, int j) const {
    const PhiloxCounter counter{{static_cast<std::uint32_t>(knot * m + j),
                                 static_cast<std::uint32_t>(sample),
                                 static_cast<std::uint32_t>(iteration), settings_.stream}};
    const PhiloxKey key{{settings_.seed[0], settings_.seed[1]}};
    // Rounded to S once, so that RolloutCost may keep the draws in S arrays.
    return static_cast<double>(static_cast<S>(BellNoise(counter, key)));
  }

  // The noise `offset` steps past a knot: linear between the knots' draws, rescaled to unit
  // variance (sqrt is correctly rounded everywhere, so host and device agree).
  MPC_HOST_DEVICE double Interpolate(double at_knot, double at_next_knot, int offset) const {
    if (offset == 0) return at_knot;
    using std::sqrt;
    const double w = static_cast<double>(offset) / settings_.knot_spacing;
    return ((1.0 - w) * at_knot + w * at_next_knot) / sqrt((1.0 - w) * (1.0 - w) + w * w);
  }

  MPC_HOST_DEVICE S Perturbed(int t, int j, double noise) const {
    const int e = t * m + j;
    return Clamp(t, j, At(sampling_.mean, e) + At(sampling_.std, e) * S(noise));
  }

  // Sample `sample` of `iteration`, control j at step t (sample 0, and iteration -1, is the mean).
  MPC_HOST_DEVICE S SampledControl(int iteration, int sample, int t, int j) const {
    if (iteration < 0 || sample == 0) return Clamp(t, j, At(sampling_.mean, t * m + j));
    const int knot = t / settings_.knot_spacing, offset = t % settings_.knot_spacing;
    const double next = offset == 0 ? 0.0 : KnotNoise(iteration, sample, knot + 1, j);
    return Perturbed(t, j, Interpolate(KnotNoise(iteration, sample, knot, j), next, offset));
  }

  // Control j at step t of sample `sample` (SampledControl's value), from the draws of its knots,
  // which it makes when t is a knot (at_knot, at_next_knot: that sample's draws, kept in between).
  MPC_HOST_DEVICE S RolloutControl(int iteration, int sample, int t, int j, S* at_knot,
                                   S* at_next_knot) const {
    if (iteration < 0 || sample == 0) return Clamp(t, j, At(sampling_.mean, t * m + j));
    const int knot = t / settings_.knot_spacing, offset = t % settings_.knot_spacing;
    if (offset == 0) {
      *at_knot = S(KnotNoise(iteration, sample, knot, j));
      if (settings_.knot_spacing > 1) *at_next_knot = S(KnotNoise(iteration, sample, knot + 1, j));
    }
    return Perturbed(t, j, Interpolate(*at_knot, *at_next_knot, offset));
  }

  // The costs of rolling the samples first_sample, first_sample + 1, ... out from x_0, one per
  // lane of the rollout scalar R (kRolloutLanes<R>; S: one sample). The controls are
  // SampledControl's, with each knot's draw made once; the state, the dynamics and the cost run in
  // R.
  template <typename R>
  MPC_HOST_DEVICE R RolloutCost(int iteration, int first_sample) const {
    constexpr int kLanes = kRolloutLanes<R>;
    static_assert(kLanes == 1 || (NX != kDynamic && NU != kDynamic),
                  "several lanes need compile-time sizes");
    ScratchScope<S> scope(arena_);
    ScratchArena<R>* const arena = RolloutArena<R>(arena_);
    LocalArray<R, NX> x(arena, n), next(arena, n);
    LocalArray<R, NU> u(arena, m);
    LocalArray<S, NU * kLanes> at_knot(arena_, m * kLanes), at_next_knot(arena_, m * kLanes);
    for (int i = 0; i < n; ++i) x[i] = R(At(sampling_.problem.x_init, i));
    R cost = R(0);
    for (int t = 0; t < T_; ++t) {
      for (int j = 0; j < m; ++j) {
        S lanes[kLanes];
        for (int lane = 0; lane < kLanes; ++lane) {
          lanes[lane] = RolloutControl(iteration, first_sample + lane, t, j, &at_knot[lane * m + j],
                                       &at_next_knot[lane * m + j]);
        }
        u[j] = FromLanes<R>(lanes);
      }
      if constexpr (std::is_same_v<R, S>) {
        cost += StageCost(t, x, u);  // a cost graph's too
      } else {
        cost += this->template StageCost<R>(t, x, u);
      }
      if (t + 1 < T_) {
        this->template Step<R>(t, x, u, next);
        for (int i = 0; i < n; ++i) x[i] = next[i];
      }
    }
    return cost;
  }

  // Sample a before sample b: the cheaper, NaN last, ties to the lower index.
  MPC_HOST_DEVICE bool Before(int a, int b) const {
    const S cost_a = At(sampling_.costs, a), cost_b = At(sampling_.costs, b);
    const bool finite_a = IsFinite(cost_a), finite_b = IsFinite(cost_b);
    if (finite_a != finite_b) return finite_a;
    if (finite_a && cost_a != cost_b) return cost_a < cost_b;
    return a < b;
  }

  MPC_HOST_DEVICE int& Elite(int k) const {
    return sampling_.elites[Layout::Index(k, this->view_.batch, this->b_)];
  }

  // The `elites` first samples in Before's order, as a max-heap (the worst elite on top).
  MPC_HOST_DEVICE void SelectElites() const {
    const int count = settings_.elites;
    for (int s = 0; s < settings_.samples; ++s) {
      int hole;
      if (s < count) {
        hole = s;  // sift up
        while (hole > 0 && Before(Elite((hole - 1) / 2), s)) {
          Elite(hole) = Elite((hole - 1) / 2);
          hole = (hole - 1) / 2;
        }
      } else {
        if (!Before(s, Elite(0))) continue;
        hole = 0;  // sift down
        while (true) {
          int child = 2 * hole + 1;
          if (child >= count) break;
          if (child + 1 < count && Before(Elite(child), Elite(child + 1))) ++child;
          if (!Before(s, Elite(child))) break;
          Elite(hole) = Elite(child);
          hole = child;
        }
      }
      Elite(hole) = s;
    }
  }

  MPC_HOST_DEVICE void UpdateFromElites(int iteration) {
    using std::sqrt;
    const int count = settings_.elites;
    const S keep = S(settings_.momentum);
    S step = 0;
    for (int t = 0; t < T_; ++t) {
      for (int j = 0; j < m; ++j) {
        S sum = 0;
        for (int k = 0; k < count; ++k) sum += SampledControl(iteration, Elite(k), t, j);
        const S elite_mean = sum / S(count);
        S squares = 0;
        for (int k = 0; k < count; ++k) {
          const S d = SampledControl(iteration, Elite(k), t, j) - elite_mean;
          squares += d * d;
        }
        const int e = t * m + j;
        const S old_mean = At(sampling_.mean, e);
        const S mean = keep * old_mean + (S(1) - keep) * elite_mean;
        const S std = keep * At(sampling_.std, e) + (S(1) - keep) * sqrt(squares / S(count));
        At(sampling_.mean, e) = mean;
        At(sampling_.std, e) = Data::Max(std, S(settings_.min_std));
        step += (mean - old_mean) * (mean - old_mean);
      }
    }
    sampling_.results[this->b_].step_norm = sqrt(step);
  }

  // Replaces each sample's cost by its MPPI weight exp(-(J_s - min J) / temperature) (0 for a
  // sample whose cost is not finite; sample 0, the mean, has a finite cost or the problem does).
  MPC_HOST_DEVICE void WeighSamples() const {
    using std::exp;
    S lowest = static_cast<S>(HUGE_VAL);
    for (int s = 0; s < settings_.samples; ++s) {
      const S cost = At(sampling_.costs, s);
      if (IsFinite(cost) && cost < lowest) lowest = cost;
    }
    for (int s = 0; s < settings_.samples; ++s) {
      S& cost = At(sampling_.costs, s);
      cost = IsFinite(cost) ? exp(-(cost - lowest) / S(settings_.temperature)) : S(0);
    }
  }

  MPC_HOST_DEVICE void UpdateFromWeights(int iteration) {
    using std::sqrt;
    S total = 0;
    for (int s = 0; s < settings_.samples; ++s) total += At(sampling_.costs, s);
    const S keep = S(settings_.momentum);
    S step = 0;
    // Without a finite sample there is nothing to move towards.
    const bool any = total > S(0);
    for (int t = 0; t < T_; ++t) {
      for (int j = 0; j < m; ++j) {
        const int e = t * m + j;
        const S old_mean = At(sampling_.mean, e);
        S weighted = 0;
        if (any) {
          for (int s = 0; s < settings_.samples; ++s) {
            const S w = At(sampling_.costs, s);
            if (w != S(0)) weighted += w * SampledControl(iteration, s, t, j);
          }
        }
        const S mean = any ? keep * old_mean + (S(1) - keep) * (weighted / total) : old_mean;
        At(sampling_.mean, e) = mean;
        step += (mean - old_mean) * (mean - old_mean);
      }
    }
    sampling_.results[this->b_].step_norm = sqrt(step);
  }

  const SamplingBatchView<S>& sampling_;
  const SamplingSettings settings_;
  ScratchArena<S>* const arena_;  // null with compile-time sizes
};

#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#pragma GCC diagnostic pop
#endif

// Sample `sample` of problem b at `iteration`, when that problem samples that much: one thread of
// the GPU's (problem, sample) grid, which spans the batch's largest counts.
template <typename S, class Dynamics, int NX, int NU, bool kFixedSize = true,
          class Layout = Interleaved>
MPC_HOST_DEVICE void SampleCostIfSampled(const SamplingBatchView<S>& view, int b, int iteration,
                                         int sample) {
  ProblemSampler<S, Dynamics, NX, NU, kFixedSize, Layout> sampler(view, b);
  if (iteration < sampler.Iterations() && sample < sampler.SampleCount() && !sampler.Stopped()) {
    sampler.SampleCost(iteration, sample);
  }
}

// The iLQR from the sampled plan (for pure CEM/MPPI: its rollout and gains), then the statistics.
// Kernels and Trial as for ProblemSolver (the executor's own choice, so that a chain's iLQR is its
// iLQR).
template <typename S, class Dynamics, int NX, int NU, bool kFixedSize = true,
          class Layout = Interleaved, class Kernels = LoopKernels, typename Trial = S>
MPC_HOST_DEVICE void PolishAndFinish(const SamplingBatchView<S>& view, int b,
                                     ScratchArena<S>* arena = nullptr) {
  ProblemSolver<S, Dynamics, NX, NU, kFixedSize, Layout, Kernels, Trial>(view.problem, b, arena)
      .Solve();
  ProblemSampler<S, Dynamics, NX, NU, kFixedSize, Layout>(view, b, arena).Finish();
}

// Problem b from start to end on one thread (a CPU worker): samples in groups of
// kRolloutLanes<Rollout> (consecutive sample indices from 0, so the grouping is a function of the
// problem's own sample count), and the iLQR's line-search trials likewise (in
// view.problem.trial_lanes), no allocation.
template <typename S, class Dynamics, int NX, int NU, bool kFixedSize = true,
          class Layout = Interleaved, class Kernels = LoopKernels, typename Rollout = S>
MPC_HOST_DEVICE void SolveWithSampling(const SamplingBatchView<S>& view, int b,
                                       ScratchArena<S>* arena = nullptr) {
  ProblemSampler<S, Dynamics, NX, NU, kFixedSize, Layout> sampler(view, b, arena);
  sampler.Begin();
  for (int iteration = 0; iteration < sampler.Iterations(); ++iteration) {
    if (sampler.StopRequested()) break;
    for (int sample = 0; sample < sampler.SampleCount(); sample += kRolloutLanes<Rollout>) {
      sampler.template SampleCosts<Rollout>(iteration, sample);
    }
    sampler.Update(iteration);
  }
  PolishAndFinish<S, Dynamics, NX, NU, kFixedSize, Layout, Kernels, Rollout>(view, b, arena);
}

}  // namespace mpc::core

#endif  // MPC_SOLVER_CORE_SAMPLING_H_
