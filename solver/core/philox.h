#ifndef MPC_SOLVER_CORE_PHILOX_H_
#define MPC_SOLVER_CORE_PHILOX_H_

// Counter-based random numbers for the sampling methods (sampling.h): Philox4x32-10 (Salmon et
// al., "Parallel Random Numbers: As Easy as 1, 2, 3", SC 2011; the generator of cuRAND, JAX and
// PyTorch's CUDA sampling). A draw is a pure function of (key, counter), so every sample of every
// problem is computed by whichever thread, in whichever order and batch, with the same bits: no
// generator state to share or advance. Integer arithmetic and exact conversions only: host and
// device draw bitwise the same numbers. Plain C++: nvcc compiles it.

#include <cstdint>

#include "solver/host_device.h"

namespace mpc::core {

struct PhiloxCounter {
  std::uint32_t word[4];
};

struct PhiloxKey {
  std::uint32_t word[2];
};

// The 128-bit block of random bits at `counter` under `key` (ten rounds, Random123's constants).
MPC_HOST_DEVICE inline PhiloxCounter Philox4x32(PhiloxCounter counter, PhiloxKey key) {
  constexpr std::uint32_t kMultiplier0 = 0xD2511F53u;
  constexpr std::uint32_t kMultiplier1 = 0xCD9E8D57u;
  constexpr std::uint32_t kWeyl0 = 0x9E3779B9u;
  constexpr std::uint32_t kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t product0 = static_cast<std::uint64_t>(kMultiplier0) * counter.word[0];
    const std::uint64_t product1 = static_cast<std::uint64_t>(kMultiplier1) * counter.word[2];
    const std::uint32_t hi0 = static_cast<std::uint32_t>(product0 >> 32);
    const std::uint32_t lo0 = static_cast<std::uint32_t>(product0);
    const std::uint32_t hi1 = static_cast<std::uint32_t>(product1 >> 32);
    const std::uint32_t lo1 = static_cast<std::uint32_t>(product1);
    counter = PhiloxCounter{
        {hi1 ^ counter.word[1] ^ key.word[0], lo1, hi0 ^ counter.word[3] ^ key.word[1], lo0}};
    key.word[0] += kWeyl0;
    key.word[1] += kWeyl1;
  }
  return counter;
}

// A zero-mean, unit-variance, bell-shaped draw from one Philox block: the Irwin-Hall sum of its
// four uniforms, centred and scaled (support +-2 sqrt(3)). Gaussian enough for sampling-based MPC
// (CEM and MPPI only need a symmetric, unimodal perturbation) and, unlike Box-Muller, free of
// log/sin/cos, whose last bits differ between libm and the CUDA math library: the draw, hence the
// elite set, is the same on every backend.
MPC_HOST_DEVICE inline double BellNoise(PhiloxCounter counter, PhiloxKey key) {
  const PhiloxCounter bits = Philox4x32(counter, key);
  constexpr double kToUnit = 1.0 / 4294967296.0;  // 2^-32
  constexpr double kSqrt3 = 1.7320508075688772;
  // Each (word + 0.5) 2^-32 is exact in a double and lies in (0, 1); the sum of four is exact too.
  double sum = 0.0;
  for (int i = 0; i < 4; ++i) sum += (static_cast<double>(bits.word[i]) + 0.5) * kToUnit;
  return (sum - 2.0) * kSqrt3;
}

}  // namespace mpc::core

#endif  // MPC_SOLVER_CORE_PHILOX_H_
