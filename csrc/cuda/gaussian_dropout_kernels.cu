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
// A block of a global tensor (csrc/common/global_block.h) takes gaussian_dropout_global_kernel: a thread
// handles a group of 16 elements of the block in its C order, split into pieces at the ends of the block's
// rows (as dropout_global_kernel). Inside a piece the positions are consecutive, so the thread keeps one
// Philox block (4 words) and one pair's normals in registers and recomputes them only when the position
// enters a new block (every 4 elements) or a new pair (every 2); the pair's words are picked by selects on
// the position's bits, never by a run-time index into an array, so nothing goes to local memory. A piece
// may start at any position: the pairing belongs to the global index, so an odd start takes the second
// normal of its pair.
//
// x and y may be the same array (in place): no __restrict__ on them; a thread loads every value of a group
// before it stores any, and groups never overlap.
#include <cuda_runtime.h>

#include "../common/gaussian_dropout_element.h"
#include "../common/philox.h"
#include "check_cuda.h"
#include "dropout_groups.cuh"  // kThreadElems, Group, load_group / store_group, aligned16, with_skip
#include "entry_points.h"
#include "global_rows.cuh"

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

template <class T>
__global__ void __launch_bounds__(kThreads) gaussian_dropout_global_kernel(const T* in, T* out, int64_t n,
                                                                           uint64_t seed, double std,
                                                                           GlobalRows rows) {
  const auto s = static_cast<compute_t<T>>(std);
  const int64_t groups = (n + kThreadElems - 1) / kThreadElems;
  const int64_t first = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t grp = first; grp < groups; grp += stride) {
    const int64_t i0 = grp * kThreadElems;
    const int len = static_cast<int>(n - i0 < kThreadElems ? n - i0 : kThreadElems);
    for (int k = 0; k < len;) {  // one piece per row the group touches
      const int64_t r = (i0 + k) / rows.row_len;
      const int64_t j = i0 + k - r * rows.row_len;
      const int end = k + static_cast<int>(rows.row_len - j < len - k ? rows.row_len - j : len - k);
      uint64_t pos = row_start(rows, r) + static_cast<uint64_t>(j);  // wraps mod 2^64 by design
      uint32_t w[4];  // the Philox block of pos (indexed by constants only: registers)
      float z0 = 0.0f, z1 = 0.0f;  // the normals of pos's pair
      for (bool fresh = true; k < end; ++k, ++pos, fresh = false) {
        if (fresh || (pos & 3u) == 0) dropout_block((pos >> 2) & kDropoutBlockMask, seed, w);
        if (fresh || (pos & 1u) == 0) {
          const bool high = (pos & 2u) != 0;  // the pair's words: 0 and 1, or 2 and 3 of the block
          gaussian_pair<ScalarGaussOps, float>(high ? w[2] : w[0], high ? w[3] : w[1], z0, z1);
        }
        gaussian_element(in[i0 + k], out[i0 + k], (pos & 1u) != 0 ? z1 : z0, s);
      }
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

void gaussian_dropout_global(DType dt, const void* in, void* out, int64_t n, uint64_t seed, double std,
                             const GlobalRows& rows, int device, Stream stream) {
  if (n <= 0) return;
  DeviceGuard guard(device);
  const unsigned int grid = grid_capped((n + kThreadElems - 1) / kThreadElems, device);
  auto s = static_cast<cudaStream_t>(stream);
  dispatch_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    gaussian_dropout_global_kernel<T><<<grid, kThreads, 0, s>>>(static_cast<const T*>(in), static_cast<T*>(out), n,
                                                                 seed, std, rows);
  });
  check_launch("gaussian_dropout global kernel launch", s);
}

}  // namespace cuda
}  // namespace rdf
