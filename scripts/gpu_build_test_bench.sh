#!/usr/bin/env bash
# On the lent GPU machine (CMake and nvcc, no Debian packages, no network), in one call:
# configure the solver-only build against the carried .deps/ (scripts/prepare_gpu_deps.sh), build,
# run every solver test including the `gpu` ones, run the GPU tests under compute-sanitizer
# (memcheck and racecheck) when it is installed, then the GPU benchmark. Output goes to stdout and,
# when $OUT is set (the device tool), into $OUT/.
#
#   device run, carry [".deps"]:  bash scripts/gpu_build_test_bench.sh
#   options (environment): MPCD_CUDA_ARCH (default 90), MPCD_BENCH_ARGS (default "")
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build-gpu/out}
mkdir -p "$OUT"
ARCH=${MPCD_CUDA_ARCH:-90}
BUILD=build-gpu
[[ -d .deps ]] || { echo "gpu_build_test_bench: .deps/ is missing: run scripts/prepare_gpu_deps.sh and carry it" >&2; exit 2; }
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
GENERATOR=()
command -v ninja >/dev/null && GENERATOR=(-G Ninja)
nvidia-smi 2>&1 | tee "$OUT/nvidia-smi.txt" | head -15

status=0
step() { echo "== $*"; }
step configure
cmake -S . -B "$BUILD" "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=Release -DMPCD_SOLVER_ONLY=ON \
  -DMPCD_DEPS_DIR="$PWD/.deps" -DMPCD_WITH_CUDA=ON -DCMAKE_CUDA_COMPILER="$NVCC" \
  -DCMAKE_CUDA_ARCHITECTURES="$ARCH" \
  2>&1 | tee "$OUT/configure.log" | tail -5
step build
( time cmake --build "$BUILD" -j"$(nproc)" ) 2>&1 | tee "$OUT/build.log" | tail -5 || status=1
step "tests (all, gpu label included)"
ctest --test-dir "$BUILD" --output-on-failure -j4 2>&1 | tee "$OUT/ctest.log" | tail -15 || status=1
step "gpu tests verbose"
"$BUILD/bin/cuda_backend_test" 2>&1 | tee "$OUT/cuda_backend_test.log" | tail -30 || status=1
SANITIZER=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
if [[ -n "$SANITIZER" ]]; then
  for tool in memcheck racecheck; do
    step "compute-sanitizer --tool $tool"
    "$SANITIZER" --tool "$tool" --error-exitcode 1 "$BUILD/bin/cuda_backend_test" \
      --gtest_filter='*RandomProblemsInOneMixedBatch*:*ReusesItsBuffers*' 2>&1 |
      tee "$OUT/sanitizer_$tool.log" | tail -8 || status=1
  done
else
  echo "compute-sanitizer not found: memcheck/racecheck NOT run" | tee "$OUT/sanitizer_missing.txt"
fi
step "benchmark"
"$BUILD/bin/mpcd_cuda_bench" ${MPCD_BENCH_ARGS:-} 2>&1 | tee "$OUT/cuda_bench.txt" || status=1
echo "== done, status $status (logs in $OUT)"
exit $status
