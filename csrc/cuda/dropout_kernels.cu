// CUDA iteration for dropout forward, backward and mask generation. Values and decisions come from the
// same csrc/common code as the CPU (Philox, dropout_keep, dropout_element), so for any (seed, offset) the
// masks are bit-identical to the CPU kernels and the NumPy reference.
//
// Each thread handles groups of kThreadElems = 16 consecutive elements (two mask bytes) in a grid-stride
// loop over the full groups, with a grid capped at a few blocks per SM (grid_capped). Per group it first
// issues the loads of its 16 values (16-byte vectors when both pointers are 16-byte aligned: template VEC),
// then computes the Philox blocks the group touches, decides, applies the element body, stores. The
// group's first element has global index g = offset + 16 * group, so g & 3 is offset & 3 in every group of
// a launch: the kernel is specialized on it (template SKIP), the group's words are words[SKIP + k] with
// constant indices (registers, no selection), and it computes (SKIP + 16 + 3) / 4 blocks: 4 when the offset
// is a multiple of 4, else 5. The last n % 16 elements (a partial group) are done after the loop by one
// thread, element by element.
//
// x and y may be the same array (dropout in place, out=x): so no __restrict__ on them (a restrict-qualified
// pair may be read through the non-coherent cache path, which is undefined when the kernel writes the same
// memory); a thread loads every value of a group before it stores any, and groups never overlap.
#include <cuda_runtime.h>

#include "../common/dropout_element.h"
#include "../common/philox.h"
#include "check_cuda.h"
#include "entry_points.h"

namespace rdf {
namespace cuda {
namespace {

constexpr int kThreadElems = 16;  // elements per thread and loop iteration: two mask bytes, 4 or 5 Philox blocks

// The keep decisions of elements g, g+1, ..., g+15 of the dropout stream (bit k = element k), where
// g & 3 == SKIP.
template <int SKIP>
__device__ __forceinline__ uint32_t stream_bits(uint64_t g, uint64_t seed, uint32_t threshold) {
  constexpr int kBlocks = (SKIP + kThreadElems + 3) / 4;
  const uint64_t first = g >> 2;
  uint32_t words[4 * kBlocks];
#pragma unroll
  for (int b = 0; b < kBlocks; ++b) dropout_block((first + b) & kDropoutBlockMask, seed, words + 4 * b);
  uint32_t bits = 0;
#pragma unroll
  for (int k = 0; k < kThreadElems; ++k) bits |= static_cast<uint32_t>(dropout_keep(words[SKIP + k], threshold)) << k;
  return bits;
}

// The 16 values of one group, 16-byte aligned so that a group moves as whole 16-byte vectors.
template <class T>
struct alignas(16) Group {
  T v[kThreadElems];
};
template <class T>
constexpr int kGroupVecs = static_cast<int>(sizeof(Group<T>) / 16);

template <class T, bool VEC>
__device__ __forceinline__ void load_group(const T* p, Group<T>& g) {
  if constexpr (VEC) {
    const uint4* src = reinterpret_cast<const uint4*>(p);
    uint4 u[kGroupVecs<T>];
#pragma unroll
    for (int j = 0; j < kGroupVecs<T>; ++j) u[j] = src[j];
    memcpy(&g, u, sizeof g);
  } else {
#pragma unroll
    for (int k = 0; k < kThreadElems; ++k) g.v[k] = p[k];
  }
}

template <class T, bool VEC>
__device__ __forceinline__ void store_group(T* p, const Group<T>& g) {
  if constexpr (VEC) {
    uint4 u[kGroupVecs<T>];
    memcpy(u, &g, sizeof g);
    uint4* dst = reinterpret_cast<uint4*>(p);
#pragma unroll
    for (int j = 0; j < kGroupVecs<T>; ++j) dst[j] = u[j];
  } else {
#pragma unroll
    for (int k = 0; k < kThreadElems; ++k) p[k] = g.v[k];
  }
}

// The keep bits of the group starting at element i0 (of a call whose elements start at global index
// prm.offset), `count` of its elements present (bits_in holds only the bytes of present elements).
template <KeepSource S, int SKIP>
__device__ __forceinline__ uint32_t group_bits(const uint8_t* bits_in, int64_t i0, int count, const DropoutParams& prm) {
  if constexpr (S == KeepSource::kStream) return stream_bits<SKIP>(prm.offset + static_cast<uint64_t>(i0), prm.seed, prm.threshold);
  if constexpr (S == KeepSource::kBits) {
    const uint8_t* b = bits_in + i0 / 8;
    return static_cast<uint32_t>(b[0]) | (count > 8 ? static_cast<uint32_t>(b[1]) << 8 : 0u);
  }
  if constexpr (S == KeepSource::kAll) return 0xFFFFu;
  return 0u;
}

template <class T, KeepSource S, int SKIP, bool VEC>
__global__ void __launch_bounds__(kThreads) dropout_kernel(const T* in, T* out, const uint8_t* __restrict__ bits_in,
                                                           uint8_t* __restrict__ bits_out, int64_t n, DropoutParams prm) {
  const auto scale = static_cast<compute_t<T>>(prm.scale);
  const int64_t full = n / kThreadElems;
  const int64_t first = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t grp = first; grp < full; grp += stride) {
    const int64_t i0 = grp * kThreadElems;
    Group<T> g;
    if (out) load_group<T, VEC>(in + i0, g);  // loads in flight while the words are computed
    const uint32_t bits = group_bits<S, SKIP>(bits_in, i0, kThreadElems, prm);
    if (out) {
#pragma unroll
      for (int k = 0; k < kThreadElems; k += 2) {
        dropout_element_pair(g.v + k, g.v + k, (bits >> k) & 1u, (bits >> (k + 1)) & 1u, scale);
      }
      store_group<T, VEC>(out + i0, g);
    }
    if (bits_out) {
      bits_out[2 * grp] = static_cast<uint8_t>(bits);
      bits_out[2 * grp + 1] = static_cast<uint8_t>(bits >> 8);
    }
  }
  // The partial group (1..15 elements), element by element, by the thread after the last full group's.
  const int count = static_cast<int>(n - full * kThreadElems);
  if (count > 0 && first == full % stride) {
    const int64_t i0 = full * kThreadElems;
    const uint32_t bits = group_bits<S, SKIP>(bits_in, i0, count, prm) & ((1u << count) - 1u);  // bits past n are 0
    if (out) {
#pragma unroll
      for (int k = 0; k < kThreadElems; ++k) {
        if (k < count) dropout_element(in[i0 + k], out[i0 + k], (bits >> k) & 1u, scale);
      }
    }
    if (bits_out) {
      bits_out[i0 / 8] = static_cast<uint8_t>(bits);
      if (count > 8) bits_out[i0 / 8 + 1] = static_cast<uint8_t>(bits >> 8);
    }
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// calls fn(std::integral_constant<int, SKIP>()) with SKIP = skip (0..3).
template <class Fn>
void with_skip(uint32_t skip, Fn&& fn) {
  switch (skip & 3u) {
    case 0: return fn(std::integral_constant<int, 0>());
    case 1: return fn(std::integral_constant<int, 1>());
    case 2: return fn(std::integral_constant<int, 2>());
    default: return fn(std::integral_constant<int, 3>());
  }
}

void launch(DType dt, const void* in, void* out, const uint8_t* bits_in, uint8_t* bits_out, int64_t n,
            const DropoutParams& prm, int device, Stream stream) {
  if (n <= 0) return;
  DeviceGuard guard(device);
  const bool vector_io = (!in || aligned16(in)) && (!out || aligned16(out));
  const unsigned int grid = grid_capped((n + kThreadElems - 1) / kThreadElems, device);
  auto s = static_cast<cudaStream_t>(stream);
  const KeepSource source = keep_source(bits_in != nullptr, prm);
  dispatch_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* x = static_cast<const T*>(in);
    T* y = static_cast<T*>(out);
    with_keep_source(source, [&](auto src) {
      constexpr KeepSource S = decltype(src)::value;
      // only the stream depends on the offset's alignment; the other sources run the SKIP = 0 kernel
      with_skip(S == KeepSource::kStream ? static_cast<uint32_t>(prm.offset) : 0u, [&](auto skip) {
        constexpr int K = S == KeepSource::kStream ? decltype(skip)::value : 0;
        if (vector_io) {
          dropout_kernel<T, S, K, true><<<grid, kThreads, 0, s>>>(x, y, bits_in, bits_out, n, prm);
        } else {
          dropout_kernel<T, S, K, false><<<grid, kThreads, 0, s>>>(x, y, bits_in, bits_out, n, prm);
        }
      });
    });
  });
  check_launch("dropout kernel launch", s);
}

}  // namespace

void dropout_forward(DType dt, const void* x, void* y, uint8_t* bits, int64_t n, const DropoutParams& prm,
                     int device, Stream stream) {
  launch(dt, x, y, nullptr, bits, n, prm, device, stream);
}

void dropout_backward(DType dt, const void* grad, void* dx, const uint8_t* bits, int64_t n,
                      const DropoutParams& prm, int device, Stream stream) {
  launch(dt, grad, dx, bits, nullptr, n, prm, device, stream);
}

void dropout_mask(uint8_t* bits, int64_t n, const DropoutParams& prm, int device, Stream stream) {
  launch(DType::kFloat32, nullptr, nullptr, nullptr, bits, n, prm, device, stream);
}

}  // namespace cuda
}  // namespace rdf
