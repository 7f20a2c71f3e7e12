# CUDA is optional. AUTO builds it when nvcc is found; ON fails clearly without nvcc; OFF skips it.
set(MPCD_CUDA_ENABLED OFF)
if(NOT MPCD_WITH_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90)
    endif()
    enable_language(CUDA)
    # Debian's CMake 3.25 FindCUDAToolkit marks CUDA::nvToolsExt deprecated whenever the project
    # requires CMake >= 3.25, without checking that the target exists; CUDA 13 has no nvToolsExt,
    # so the stock module fails. Lowering the requirement just for this call skips that branch.
    set(_mpcd_cmake_minimum ${CMAKE_MINIMUM_REQUIRED_VERSION})
    set(CMAKE_MINIMUM_REQUIRED_VERSION 3.24)
    find_package(CUDAToolkit REQUIRED)
    set(CMAKE_MINIMUM_REQUIRED_VERSION ${_mpcd_cmake_minimum})
    set(MPCD_CUDA_ENABLED ON)
  elseif(MPCD_WITH_CUDA STREQUAL "ON")
    message(FATAL_ERROR "MPCD_WITH_CUDA=ON but no CUDA compiler (nvcc) was found. "
                        "Install the CUDA toolkit at /usr/local/cuda or configure with -DMPCD_WITH_CUDA=OFF.")
  endif()
endif()
message(STATUS "mpcd: CUDA backend ${MPCD_CUDA_ENABLED}")
if(MPCD_CUDA_ENABLED AND MPCD_CCACHE AND NOT CMAKE_CUDA_COMPILER_LAUNCHER)
  set(CMAKE_CUDA_COMPILER_LAUNCHER ${MPCD_CCACHE})  # the kernels take minutes to compile
endif()
