#!/usr/bin/env bash
# Fills .deps/ (git-ignored) with what the solver library, its tests and the GPU benchmark need on
# the lent GPU machine, which has CMake and nvcc but no Debian packages and no network:
#   Eigen 3.4 headers and CMake config      (libeigen3-dev)
#   Abseil headers, shared libraries, config (libabsl-dev 20220623; x86_64, glibc >= 2.34)
#   nlohmann_json headers and CMake config   (nlohmann-json3-dev; the reference-data loader)
#   GoogleTest sources                       (googletest; built there with add_subdirectory)
# Layout: a CMake prefix (include/, lib/, share/) plus googletest/; cmake/MpcdDependencies.cmake
# reads it through -DMPCD_DEPS_DIR=.deps. Carry .deps with the run (device tool: carry [".deps"]).
#
#   scripts/prepare_gpu_deps.sh          # then scripts/gpu_build_test_bench.sh on the GPU machine
set -euo pipefail
cd "$(dirname "$0")/.."
DEPS=.deps
ARCH_LIB=lib/x86_64-linux-gnu

need() { [[ -e "$1" ]] || { echo "prepare_gpu_deps: missing $1 (apt-get install $2)" >&2; exit 1; }; }
need /usr/include/eigen3/Eigen/Core libeigen3-dev
need /usr/share/eigen3/cmake/Eigen3Config.cmake libeigen3-dev
need /usr/include/absl/status/status.h libabsl-dev
need /usr/$ARCH_LIB/cmake/absl/abslConfig.cmake libabsl-dev
need /usr/include/nlohmann/json.hpp nlohmann-json3-dev
need /usr/share/cmake/nlohmann_json/nlohmann_jsonConfig.cmake nlohmann-json3-dev
need /usr/src/googletest/CMakeLists.txt googletest

rm -rf "$DEPS"
mkdir -p "$DEPS/include" "$DEPS/$ARCH_LIB/cmake" "$DEPS/share/cmake"
cp -a /usr/include/eigen3 "$DEPS/include/"
mkdir -p "$DEPS/share/eigen3"
cp -a /usr/share/eigen3/cmake "$DEPS/share/eigen3/"
cp -a /usr/include/absl "$DEPS/include/"
cp -a /usr/$ARCH_LIB/libabsl_*.so* "$DEPS/$ARCH_LIB/"
cp -a /usr/$ARCH_LIB/cmake/absl "$DEPS/$ARCH_LIB/cmake/"
cp -a /usr/include/nlohmann "$DEPS/include/"
cp -a /usr/share/cmake/nlohmann_json "$DEPS/share/cmake/"
cp -a /usr/src/googletest "$DEPS/googletest"
du -sh "$DEPS"
