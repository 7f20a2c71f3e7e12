#ifndef MPC_SOLVER_CUDA_DEVICE_BUFFER_H_
#define MPC_SOLVER_CUDA_DEVICE_BUFFER_H_

// RAII device memory (cudaMalloc) and pinned host memory (cudaMallocHost) that only grow. Errors
// come back as Status, never exit(). Growing frees the old block (cudaFree synchronises the
// device), so buffers are sized before a batch's work is enqueued, never in the middle of it.

#include <cuda_runtime_api.h>

#include <cstddef>
#include <utility>

#include "absl/status/status.h"
#include "solver/cuda/cuda_status.h"

namespace mpc {

template <bool kPinnedHost>
class CudaBuffer {
 public:
  CudaBuffer() = default;
  CudaBuffer(const CudaBuffer&) = delete;
  CudaBuffer& operator=(const CudaBuffer&) = delete;
  CudaBuffer(CudaBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
  ~CudaBuffer() { Release(); }

  // Makes the buffer at least `bytes` long; the contents are lost when it has to grow.
  absl::Status Reserve(std::size_t bytes) {
    if (bytes <= bytes_) return absl::OkStatus();
    Release();
    void* data = nullptr;
    const cudaError_t error = kPinnedHost ? cudaMallocHost(&data, bytes) : cudaMalloc(&data, bytes);
    if (error != cudaSuccess)
      return CudaStatus(error, kPinnedHost ? "cudaMallocHost" : "cudaMalloc");
    data_ = data;
    bytes_ = bytes;
    return absl::OkStatus();
  }

  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }
  std::size_t bytes() const { return bytes_; }

 private:
  void Release() {
    if (data_ == nullptr) return;
    if (kPinnedHost) {
      cudaFreeHost(data_);
    } else {
      cudaFree(data_);
    }
    data_ = nullptr;
    bytes_ = 0;
  }

  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

using DeviceBuffer = CudaBuffer<false>;  // device memory
using PinnedBuffer = CudaBuffer<true>;   // page-locked host memory (fast, asynchronous copies)

}  // namespace mpc

#endif  // MPC_SOLVER_CUDA_DEVICE_BUFFER_H_
