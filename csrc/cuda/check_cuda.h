// Turns CUDA errors into C++ exceptions (RuntimeError in Python) naming the failed call.
#pragma once
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace rdf {
namespace cuda {

inline void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string("regdrop_fast CUDA: ") + what + ": " + cudaGetErrorString(err));
}

// Makes `device` the calling thread's current device while the guard lives (kernels launch on the current
// device, and the caller's stream belongs to the device its arrays live on), then restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    int current = 0;
    check(cudaGetDevice(&current), "cudaGetDevice");
    if (current != device) {
      check(cudaSetDevice(device), "cudaSetDevice");
      previous_ = current;
    }
  }
  ~DeviceGuard() {
    if (previous_ >= 0) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;  // the device to restore; -1 when nothing was changed
};

// Threads per block for the elementwise kernels and a grid that covers `items` work items, capped so a
// grid-stride loop finishes the rest (64-bit counts never overflow the grid size).
constexpr int kThreads = 256;
inline unsigned int grid_for(int64_t items) {
  const int64_t blocks = (items + kThreads - 1) / kThreads;
  return static_cast<unsigned int>(blocks < 65535 * 32 ? (blocks > 0 ? blocks : 1) : 65535 * 32);
}

}  // namespace cuda
}  // namespace rdf
