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

// Threads per block for the elementwise kernels and a grid that covers `items` work items, capped so a
// grid-stride loop finishes the rest (64-bit counts never overflow the grid size).
constexpr int kThreads = 256;
inline unsigned int grid_for(int64_t items) {
  const int64_t blocks = (items + kThreads - 1) / kThreads;
  return static_cast<unsigned int>(blocks < 65535 * 32 ? (blocks > 0 ? blocks : 1) : 65535 * 32);
}

}  // namespace cuda
}  // namespace rdf
