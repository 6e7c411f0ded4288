// Turns CUDA errors into C++ exceptions (RuntimeError in Python) naming the failed call.
#pragma once
#include <cuda_runtime.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
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

// The same capped at kBlocksPerSM blocks per multiprocessor of `device` (about one full wave of resident
// threads): a thread then runs several iterations of its grid-stride loop on large arrays instead of the
// grid being launched in many waves. The SM count is asked once per device.
constexpr int kBlocksPerSM = 8;
inline unsigned int grid_capped(int64_t items, int device) {
  static std::atomic<int> sms[64];
  int count = device >= 0 && device < 64 ? sms[device].load(std::memory_order_relaxed) : 0;
  if (count == 0) {
    if (cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || count <= 0) {
      cudaGetLastError();
      count = 132;  // an H100/H200; only the cap depends on it
    }
    if (device >= 0 && device < 64) sms[device].store(count, std::memory_order_relaxed);
  }
  const unsigned int grid = grid_for(items);
  const int64_t cap = static_cast<int64_t>(count) * kBlocksPerSM;
  return grid < cap ? grid : static_cast<unsigned int>(cap);
}

// Whether every launch is followed by a stream synchronize and an error check (so a kernel's fault is
// reported by the call that launched it, not by a later one): REGDROP_CUDA_SYNC_CHECK=1 turns it on,
// =0 off; unset, it is on in debug builds (CMake defines RDF_CUDA_SYNC_CHECK_DEFAULT=1 for Debug). Read once.
#ifndef RDF_CUDA_SYNC_CHECK_DEFAULT
#define RDF_CUDA_SYNC_CHECK_DEFAULT 0
#endif
inline bool sync_check_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("REGDROP_CUDA_SYNC_CHECK");
    if (v == nullptr || *v == '\0') return RDF_CUDA_SYNC_CHECK_DEFAULT != 0;
    return std::strcmp(v, "0") != 0;
  }();
  return enabled;
}

// After a launch: a launch error (bad configuration) is raised now; with sync checks on, the stream is
// synchronized and an error of the kernel itself is raised too.
inline void check_launch(const char* what, cudaStream_t s) {
  check(cudaGetLastError(), what);
  if (sync_check_enabled()) {
    check(cudaStreamSynchronize(s), what);
    check(cudaGetLastError(), what);
  }
}

}  // namespace cuda
}  // namespace rdf
