# Finds every dependency the way Debian 12 ships it (libgrpc++-dev 1.51, libprotobuf-dev 3.21,
# libabsl-dev 20220623, prometheus-cpp-dev 1.0.1; scripts/install_deps.sh installs them).
# On the GPU machine (no Debian packages) MPCD_DEPS_DIR points at carried copies of Eigen,
# Abseil and GoogleTest (scripts/prepare_gpu_deps.sh).
set(MPCD_DEPS_DIR "" CACHE PATH "Folder with carried Eigen/Abseil/GoogleTest (GPU machine)")
if(MPCD_DEPS_DIR)
  list(PREPEND CMAKE_PREFIX_PATH ${MPCD_DEPS_DIR})
endif()

find_package(Threads REQUIRED)
find_package(Eigen3 3.4 REQUIRED NO_MODULE)
# MPCD_ABSL_SOURCE_DIR: build Abseil from these sources in this tree (with this tree's flags, e.g.
# -fsanitize=thread) instead of using Debian's libabsl: `make check-tsan`,
# scripts/fetch_abseil_source.sh. Only the absl targets something here links are built.
set(MPCD_ABSL_SOURCE_DIR "" CACHE PATH "Abseil sources to build here instead of finding libabsl")
function(mpc_add_abseil_from_source)
  set(CMAKE_CXX_STANDARD 17)          # as Debian builds libabsl (debian/rules)
  set(ABSL_PROPAGATE_CXX_STD ON)
  set(ABSL_ENABLE_INSTALL OFF)
  add_subdirectory(${MPCD_ABSL_SOURCE_DIR} ${CMAKE_BINARY_DIR}/_deps/abseil EXCLUDE_FROM_ALL)
endfunction()
if(MPCD_ABSL_SOURCE_DIR)
  mpc_add_abseil_from_source()
else()
  find_package(absl CONFIG REQUIRED)
endif()

if(MPCD_BUILD_TESTS)
  find_package(GTest CONFIG QUIET)
  if(NOT GTest_FOUND AND MPCD_DEPS_DIR AND EXISTS ${MPCD_DEPS_DIR}/googletest/CMakeLists.txt)
    set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
    add_subdirectory(${MPCD_DEPS_DIR}/googletest ${CMAKE_BINARY_DIR}/_deps/googletest EXCLUDE_FROM_ALL)
    # GoogleTest >= 1.11 defines these aliases itself.
    if(NOT TARGET GTest::gtest)
      add_library(GTest::gtest ALIAS gtest)
      add_library(GTest::gtest_main ALIAS gtest_main)
      add_library(GTest::gmock ALIAS gmock)
    endif()
  elseif(NOT GTest_FOUND)
    find_package(GTest REQUIRED)
  endif()
endif()

if(MPCD_BUILD_BENCHMARKS)
  find_package(benchmark CONFIG QUIET)
endif()

if(NOT MPCD_SOLVER_ONLY)
  find_package(Protobuf REQUIRED)          # module mode: Debian ships no protobuf-config.cmake
  find_package(gRPC CONFIG REQUIRED)       # needs protobuf-compiler-grpc (its plugins are imported targets)
  find_package(prometheus-cpp CONFIG REQUIRED)  # no version file: never pass a version
  find_package(OpenSSL REQUIRED)           # libssl-dev, already a dependency of libgrpc-dev
  # libonnx-dev: imported targets onnx and onnx_proto (no namespace), built against Debian's
  # protobuf, the same one gRPC uses.
  find_package(ONNX REQUIRED)
endif()
