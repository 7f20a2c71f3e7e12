#ifndef MPC_SOLVER_CORE_SCRATCH_H_
#define MPC_SOLVER_CORE_SCRATCH_H_

// Where the core's small matrices live. With sizes known at compile time (every device kernel and
// the CPU's specialisations) a LocalArray is a plain array: registers or local memory on the GPU,
// the stack on the CPU. With sizes known only at run time (kDynamic: the CPU's generic path, any
// n and m) it is a slice of a ScratchArena that the CPU workspace owns, taken and given back in
// stack order (ScratchScope), so a solve allocates nothing. Plain types only: nvcc compiles this.

#include "solver/host_device.h"

namespace mpc::core {

// A dimension known only at run time.
constexpr int kDynamic = 0;

// Scalars a ScratchArena must hold for one problem of the core with state dimension n and
// control dimension m (solve or backward pass): the most the steps hold at once, with room to
// spare. The CPU workspace sizes its arena with this.
constexpr long long ScratchCapacity(int n, int m) {
  return 8LL * (n + m) * (n + m) + 32LL * (n + m) + 64;
}

// A problem's n, m and n + m: compile-time constants in the fixed-size specialisations (so every
// loop over them, in the solver and in the small_linalg.h kernels it inlines, has constant bounds),
// run-time values otherwise. The solvers derive from it and name n, m, nt as members.
template <int NX, int NU, bool kCompileTime>
struct ProblemSizes {
  MPC_HOST_DEVICE ProblemSizes(int /*state_dim*/, int /*control_dim*/) {}
  static constexpr int n = NX, m = NU, nt = NX + NU;
};
template <int NX, int NU>
struct ProblemSizes<NX, NU, false> {
  MPC_HOST_DEVICE ProblemSizes(int state_dim, int control_dim)
      : n(state_dim), m(control_dim), nt(state_dim + control_dim) {}
  const int n, m, nt;
};

// A bump allocator over caller-owned memory.
template <typename S>
class ScratchArena {
 public:
  MPC_HOST_DEVICE ScratchArena() = default;
  MPC_HOST_DEVICE ScratchArena(S* data, long long capacity) : data_(data), capacity_(capacity) {}

  // `count` zeroed scalars. Running past the capacity is a sizing bug (ScratchCapacity): stop.
  MPC_HOST_DEVICE S* Take(long long count) {
    S* slice = data_ + top_;
    top_ += count;
    if (top_ > capacity_) __builtin_trap();
    for (long long i = 0; i < count; ++i) slice[i] = S(0);
    return slice;
  }
  MPC_HOST_DEVICE long long top() const { return top_; }
  MPC_HOST_DEVICE void Release(long long top) { top_ = top; }

 private:
  S* data_ = nullptr;
  long long capacity_ = 0;
  long long top_ = 0;
};

// Gives back, when it goes out of scope, everything taken from `arena` since it was made. A null
// arena (fixed sizes) makes it a no-op.
template <typename S>
class ScratchScope {
 public:
  MPC_HOST_DEVICE explicit ScratchScope(ScratchArena<S>* arena)
      : arena_(arena), top_(arena == nullptr ? 0 : arena->top()) {}
  MPC_HOST_DEVICE ~ScratchScope() {
    if (arena_ != nullptr) arena_->Release(top_);
  }
  ScratchScope(const ScratchScope&) = delete;
  ScratchScope& operator=(const ScratchScope&) = delete;

 private:
  ScratchArena<S>* arena_;
  long long top_;
};

// `count` zeroed scalars: in place when kCapacity > 0 (count <= kCapacity), else from the arena.
template <typename S, int kCapacity>
class LocalArray {
 public:
  MPC_HOST_DEVICE LocalArray(ScratchArena<S>* /*arena*/, long long /*count*/) {}
  MPC_HOST_DEVICE operator S*() { return data_; }
  MPC_HOST_DEVICE operator const S*() const { return data_; }

 private:
  S data_[kCapacity] = {};
};

template <typename S>
class LocalArray<S, kDynamic> {
 public:
  MPC_HOST_DEVICE LocalArray(ScratchArena<S>* arena, long long count) : data_(arena->Take(count)) {}
  MPC_HOST_DEVICE operator S*() { return data_; }
  MPC_HOST_DEVICE operator const S*() const { return data_; }

 private:
  S* data_;
};

}  // namespace mpc::core

#endif  // MPC_SOLVER_CORE_SCRATCH_H_
