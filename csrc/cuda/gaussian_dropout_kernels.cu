// CUDA iteration for Gaussian dropout (forward and backward are the same pass). Words, normals and values come
// from the same csrc/common code as the CPU (Philox, gaussian_pair, gaussian_element), so for any
// (seed, offset) the result is bit-identical to the CPU kernels and the NumPy reference.
//
// Each thread handles groups of kThreadElems = 16 consecutive elements in a grid-stride loop, as dropout's
// kernel: it issues the group's loads (16-byte vectors when both pointers are 16-byte aligned: template VEC),
// computes the Philox blocks the group touches and the normals of the pairs its elements belong to, then
// applies the element body and stores. A group's first element has global index g = offset + 16 * group, so
// g & 3 is offset & 3 in every group of a launch: the kernel is specialized on it (template SKIP), element k
// takes the normal of word SKIP + k with constant indices (registers), and the group computes
// (SKIP + 16 + 3) / 4 Philox blocks and the 8 or 9 pairs of words its elements use. The last n % 16 elements
// are done after the loop by one thread.
//
// x and y may be the same array (in place): no __restrict__ on them; a thread loads every value of a group
// before it stores any, and groups never overlap.
#include <cuda_runtime.h>

#include "../common/gaussian_dropout_element.h"
#include "../common/philox.h"
#include "check_cuda.h"
#include "dropout_groups.cuh"  // kThreadElems, Group, load_group / store_group, aligned16, with_skip
#include "entry_points.h"

namespace rdf {
namespace cuda {
namespace {

// z[SKIP + k] = the standard normal of element g + k of the stream, k < 16, where g & 3 == SKIP.
template <int SKIP>
__device__ __forceinline__ void group_normals(uint64_t g, uint64_t seed, float (&z)[4 * ((SKIP + kThreadElems + 3) / 4)]) {
  constexpr int kBlocks = (SKIP + kThreadElems + 3) / 4;
  uint32_t words[4 * kBlocks];
  const uint64_t first = g >> 2;
#pragma unroll
  for (int b = 0; b < kBlocks; ++b) dropout_block((first + b) & kDropoutBlockMask, seed, words + 4 * b);
#pragma unroll
  for (int pair = SKIP / 2; pair <= (SKIP + kThreadElems - 1) / 2; ++pair) {
    gaussian_pair<ScalarGaussOps, float>(words[2 * pair], words[2 * pair + 1], z[2 * pair], z[2 * pair + 1]);
  }
}

template <class T, int SKIP, bool VEC>
__global__ void __launch_bounds__(kThreads) gaussian_dropout_kernel(const T* in, T* out, int64_t n, uint64_t seed,
                                                                    uint64_t offset, double std) {
  const auto s = static_cast<compute_t<T>>(std);
  const int64_t full = n / kThreadElems;
  const int64_t first = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  float z[4 * ((SKIP + kThreadElems + 3) / 4)];
  for (int64_t grp = first; grp < full; grp += stride) {
    const int64_t i0 = grp * kThreadElems;
    Group<T> g;
    load_group<T, VEC>(in + i0, g);  // loads in flight while the normals are computed
    group_normals<SKIP>(offset + static_cast<uint64_t>(i0), seed, z);
#pragma unroll
    for (int k = 0; k < kThreadElems; ++k) gaussian_element(g.v[k], g.v[k], z[SKIP + k], s);
    store_group<T, VEC>(out + i0, g);
  }
  // The partial group (1..15 elements), by the thread after the last full group's.
  const int count = static_cast<int>(n - full * kThreadElems);
  if (count > 0 && first == full % stride) {
    const int64_t i0 = full * kThreadElems;
    group_normals<SKIP>(offset + static_cast<uint64_t>(i0), seed, z);
#pragma unroll
    for (int k = 0; k < kThreadElems; ++k) {
      if (k < count) gaussian_element(in[i0 + k], out[i0 + k], z[SKIP + k], s);
    }
  }
}

}  // namespace

void gaussian_dropout(DType dt, const void* in, void* out, int64_t n, uint64_t seed, uint64_t offset, double std,
                      int device, Stream stream) {
  if (n <= 0) return;
  DeviceGuard guard(device);
  const bool vector_io = aligned16(in) && aligned16(out);
  const unsigned int grid = grid_capped((n + kThreadElems - 1) / kThreadElems, device);
  auto s = static_cast<cudaStream_t>(stream);
  dispatch_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* x = static_cast<const T*>(in);
    T* y = static_cast<T*>(out);
    // calls the kernel specialized on SKIP = offset & 3 and on the 16-byte alignment of x and y
    auto run = [&](auto skip) {
      constexpr int K = decltype(skip)::value;
      if (vector_io) {
        gaussian_dropout_kernel<T, K, true><<<grid, kThreads, 0, s>>>(x, y, n, seed, offset, std);
      } else {
        gaussian_dropout_kernel<T, K, false><<<grid, kThreads, 0, s>>>(x, y, n, seed, offset, std);
      }
    };
    with_skip(static_cast<uint32_t>(offset), run);
  });
  check_launch("gaussian_dropout kernel launch", s);
}

}  // namespace cuda
}  // namespace rdf
