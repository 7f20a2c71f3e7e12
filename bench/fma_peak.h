#ifndef MPC_BENCH_FMA_PEAK_H_
#define MPC_BENCH_FMA_PEAK_H_

// The float64 peak of the core the benchmark runs on, measured rather than assumed: fused
// multiply-adds on twelve independent four-lane registers (no loads or stores, and more chains
// than the FMA latency times the FMA pipes), so that "x the floor" uses this machine's real clock
// and issue width. A multiply-add counts 2 flops, as in bench/flop_count.h.

#include <algorithm>
#include <chrono>

#if defined(__FMA__) && defined(__AVX__)
#include <immintrin.h>
#endif

namespace mpc::bench {

inline constexpr double kFmaFlopsPerRound = 12 * 4 * 2;

// Runs `rounds` rounds of kFmaFlopsPerRound flops; returns a value that depends on all of them
// (so that none is optimised away). 0 without FMA instructions.
inline double FmaRounds(long rounds) {
#if defined(__FMA__) && defined(__AVX__)
  const __m256d scale = _mm256_set1_pd(0.999999);
  const __m256d shift = _mm256_set1_pd(1e-9);
  __m256d a0 = _mm256_set1_pd(1.000), a1 = _mm256_set1_pd(1.001), a2 = _mm256_set1_pd(1.002),
          a3 = _mm256_set1_pd(1.003), a4 = _mm256_set1_pd(1.004), a5 = _mm256_set1_pd(1.005),
          a6 = _mm256_set1_pd(1.006), a7 = _mm256_set1_pd(1.007), a8 = _mm256_set1_pd(1.008),
          a9 = _mm256_set1_pd(1.009), a10 = _mm256_set1_pd(1.010), a11 = _mm256_set1_pd(1.011);
  // Every round: one multiply-add into each accumulator, then an empty asm that keeps them all in
  // their registers and the round in the loop.
  const auto keep = [](__m256d& acc) { asm volatile("" : "+x"(acc)); };
  const auto round = [&](auto&... acc) {
    ((acc = _mm256_fmadd_pd(acc, scale, shift)), ...);
    (keep(acc), ...);
  };
  for (long k = 0; k < rounds; ++k) round(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11);
  const auto total = [](auto... acc) { return (acc + ...); };
  const __m256d sum = total(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11);
  return _mm256_cvtsd_f64(sum);
#else
  (void)rounds;
  return 0.0;
#endif
}

// One core's float64 peak in GFLOP/s: the best of five runs of ~20 ms, measured once per process.
// 0 where the build has no FMA instructions.
inline double FmaPeakGflops() {
  static const double peak = [] {
#if defined(__FMA__) && defined(__AVX__)
    constexpr long kRounds = 10'000'000;
    double best = 0.0;
    volatile double sink = 0.0;
    for (int run = 0; run < 5; ++run) {
      const auto start = std::chrono::steady_clock::now();
      sink = sink + FmaRounds(kRounds);
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (seconds > 0) best = std::max(best, kRounds * kFmaFlopsPerRound / seconds * 1e-9);
    }
    return best;
#else
    return 0.0;
#endif
  }();
  return peak;
}

}  // namespace mpc::bench

#endif  // MPC_BENCH_FMA_PEAK_H_
