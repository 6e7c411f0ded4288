// The row positions of a block of a global tensor on the device (csrc/common/global_block.h), shared by the
// global-addressing kernels (dropout_groups.cuh's block_group_bits for dropout and the fused epilogue,
// gaussian_dropout_kernels.cu).
#pragma once
#include <cstdint>

#include "../common/global_block.h"

namespace rdf {
namespace cuda {

// Stream position of row r's first element. The loop is unrolled over kMaxGlobalOuterDims so that the row
// description (a kernel parameter) is indexed by constants only: no local-memory copy of it.
__device__ __forceinline__ uint64_t row_start(const GlobalRows& rows, int64_t r) {
  uint64_t g = rows.base;
#pragma unroll
  for (int e = 0; e < kMaxGlobalOuterDims; ++e) {
    const int d = kMaxGlobalOuterDims - 1 - e;
    if (d < rows.outer_ndim) {
      const int64_t extent = rows.outer_shape[d];
      g += static_cast<uint64_t>(r % extent) * rows.outer_stride[d];
      r /= extent;
    }
  }
  return g;
}

}  // namespace cuda
}  // namespace rdf
