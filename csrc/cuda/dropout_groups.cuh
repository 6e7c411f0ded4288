// The 16-element groups of the contiguous dropout kernels, shared by every kernel that reads dropout's
// stream or its bits the same way (dropout_kernels.cu, bias_dropout_add_kernels.cu; gaussian_dropout_kernels.cu
// takes the groups, their loads and stores): a thread's group is 16 consecutive elements (two mask bytes),
// moved as 16-byte vectors when aligned, its keep bits computed from the 4 or 5 Philox blocks it touches with
// the offset's alignment as a template constant (SKIP). A group of a block of a global tensor takes its bits
// from the pieces of the rows it touches (block_group_bits), the one piece loop of every kernel that takes
// a block (dropout_global_kernel, bias_dropout_add_global_kernel).
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

#include <cuda_runtime.h>

#include "../common/dropout_element.h"
#include "../common/global_block.h"
#include "../common/philox.h"
#include "global_rows.cuh"  // row_start

namespace rdf {
namespace cuda {

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

// Keep bits of the `len` (1..16) logically consecutive elements from logical index l (bit k = element l + k).
template <KeepSource S>
__device__ __forceinline__ uint32_t segment_bits(const uint8_t* bits_in, int64_t l, int len, const DropoutParams& prm) {
  if constexpr (S == KeepSource::kStream) {
    const uint64_t g = prm.offset + static_cast<uint64_t>(l);  // wraps mod 2^64 by design
    const int skip = static_cast<int>(g & 3u);
    const int n_blocks = (skip + len + 3) / 4;  // at most 5
    uint32_t bits = 0;
#pragma unroll
    for (int b = 0; b < 5; ++b) {
      if (b < n_blocks) {
        uint32_t w[4];
        dropout_block(((g >> 2) + b) & kDropoutBlockMask, prm.seed, w);
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          const int k = 4 * b + q - skip;
          if (k >= 0 && k < len) bits |= static_cast<uint32_t>(dropout_keep(w[q], prm.threshold)) << k;
        }
      }
    }
    return bits;
  }
  if constexpr (S == KeepSource::kBits) {
    const int shift = static_cast<int>(l & 7);
    const int n_bytes = (shift + len + 7) / 8;  // at most 3
    uint32_t b = 0;
    for (int k = 0; k < n_bytes; ++k) b |= static_cast<uint32_t>(bits_in[(l >> 3) + k]) << (8 * k);
    return (b >> shift) & ((1u << len) - 1u);
  }
  if constexpr (S == KeepSource::kAll) return (1u << len) - 1u;
  return 0u;
}

// The keep bits of the `len` (1..16) elements of a block of a global tensor from local element i0 (bit k =
// element i0 + k; bits past len zero): one piece per row the group touches, each a run of the stream from
// its row's start position (segment_bits: 4 or 5 Philox blocks for a whole group within one row).
template <KeepSource S>
__device__ __forceinline__ uint32_t block_group_bits(const GlobalRows& rows, int64_t i0, int len,
                                                     const DropoutParams& prm) {
  uint32_t bits = 0;
  for (int k = 0; k < len;) {
    const int64_t r = (i0 + k) / rows.row_len;
    const int64_t j = i0 + k - r * rows.row_len;
    const int piece = static_cast<int>(rows.row_len - j < len - k ? rows.row_len - j : len - k);
    DropoutParams at = prm;
    at.offset = row_start(rows, r);
    bits |= segment_bits<S>(nullptr, j, piece, at) << k;
    k += piece;
  }
  return bits;
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

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

}  // namespace cuda
}  // namespace rdf
