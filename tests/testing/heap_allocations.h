#ifndef MPC_TESTS_TESTING_HEAP_ALLOCATIONS_H_
#define MPC_TESTS_TESTING_HEAP_ALLOCATIONS_H_

// Counts heap allocations: replaces the global operator new and delete of the test binary that
// includes this header, so include it in exactly one of its source files (the replacements are not
// inline), then ask HeapAllocationsOf.

#include <atomic>
#include <cstdlib>
#include <new>

namespace mpc::testing::heap_allocations_internal {
inline std::atomic<bool> counting{false};
inline std::atomic<long> allocations{0};
}  // namespace mpc::testing::heap_allocations_internal

// (noinline: GCC would otherwise pair an inlined free with `new` and warn of a mismatch.)
__attribute__((noinline)) void* operator new(std::size_t size) {
  namespace internal = mpc::testing::heap_allocations_internal;
  if (internal::counting.load(std::memory_order_relaxed)) {
    internal::allocations.fetch_add(1, std::memory_order_relaxed);
  }
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
__attribute__((noinline)) void operator delete(void* p) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace mpc::testing {

// The heap allocations made (by any thread) while f() runs.
template <typename F>
long HeapAllocationsOf(F&& f) {
  namespace internal = heap_allocations_internal;
  internal::allocations = 0;
  internal::counting = true;
  f();
  internal::counting = false;
  return internal::allocations.load();
}

}  // namespace mpc::testing

#endif  // MPC_TESTS_TESTING_HEAP_ALLOCATIONS_H_
