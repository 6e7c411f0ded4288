// What the contiguous and the strided dropout loops (dropout_loop.cpp, dropout_strided.cpp) share, per ISA:
// the dropout stream's words for a run of Philox blocks, and the element body applied to kLanes elements.
// Included by per-ISA sources only (after vec.h's types, in their rdf::cpu::<isa>), so each ISA's copy stays
// in its own object.
#pragma once
#include <cstdint>
#include <cstring>

#include "../common/dropout_element.h"
#include "../common/philox.h"
#include "vec.h"

namespace rdf {
namespace cpu {
namespace RDF_ISA {
namespace {

// Words of n_runs runs of the dropout stream: words[r * run_words + j] = word (j % 4) of block
// (first_block[r] + j / 4) mod 2^62, for j < 4 * n_blocks. The runs' whole vectors of kBlocks blocks are
// generated kPhiloxVecs at a time (vec.h), in run order, so that short runs (the strided pass's tile rows,
// one or two vectors each) still fill the independent chains that cover the multiplies' latency; the
// vectors left over one at a time, then the runs' last blocks gathered into vectors.
void philox_runs(const uint64_t* first_block, int n_runs, int64_t n_blocks, uint64_t seed, uint32_t* words,
                 int64_t run_words) {
  const vu64 k0 = vu64{} + (seed & 0xFFFFFFFFull), k1 = vu64{} + (seed >> 32);
  vu64 lane;
  for (int l = 0; l < kBlocks; ++l) lane[l] = static_cast<uint64_t>(l);
  const int64_t per_run = n_blocks / kBlocks;  // whole vectors of each run
  const int64_t vectors = per_run * n_runs;
  int r = 0;
  int64_t q = 0;  // the next vector: run r's q-th
  // The next vector's counters (its blocks' indices) and where its words go; moves on to the one after.
  const auto take = [&](vu64& block, uint32_t*& dst) {
    block = (lane + (first_block[r] + static_cast<uint64_t>(q * kBlocks))) & kDropoutBlockMask;
    dst = words + r * run_words + 4 * q * kBlocks;
    if (++q == per_run) {
      q = 0;
      ++r;
    }
  };
  int64_t v = 0;
  for (; v + kPhiloxVecs <= vectors; v += kPhiloxVecs) {
    vu64 c[kPhiloxVecs][4];
    uint32_t* dst[kPhiloxVecs];
    for (int u = 0; u < kPhiloxVecs; ++u) {
      vu64 block;
      take(block, dst[u]);
      c[u][0] = block;
      c[u][1] = block >> 32;
      c[u][2] = vu64{};
      c[u][3] = vu64{};
    }
    philox4x32_fixed_interleaved<kPhiloxRounds>(c, k0, k1, WideMulHiLo());
    for (int u = 0; u < kPhiloxVecs; ++u) store_blocks(c[u], dst[u]);
  }
  // Whole vectors left over when fewer than kPhiloxVecs remain (none when kPhiloxVecs is 1).
  for (; v < vectors; ++v) {
    vu64 block;
    uint32_t* dst;
    take(block, dst);
    vu64 c[1][4] = {{block, block >> 32, vu64{}, vu64{}}};
    philox4x32_fixed_interleaved<kPhiloxRounds>(c, k0, k1, WideMulHiLo());
    store_blocks(c[0], dst);
  }
  // Each run's last n_blocks % kBlocks blocks (all of a run shorter than a vector: channels_last rows of
  // 7 x 7 are 13 blocks, a vector and 5), kBlocks at a time across the runs, one block per lane, the
  // lanes' words then copied to their blocks' places; a last lone block by itself.
  alignas(64) uint32_t staged[4 * kBlocks];
  uint64_t pending[kBlocks];
  uint32_t* to[kBlocks];
  int k = 0;
  const auto flush = [&]() {
    if (k == 1) {
      dropout_block(pending[0], seed, to[0]);
    } else if (k > 1) {
      vu64 block = vu64{} + pending[0];
      for (int l = 1; l < k; ++l) block[l] = pending[l];
      vu64 c[1][4] = {{block, block >> 32, vu64{}, vu64{}}};
      philox4x32_fixed_interleaved<kPhiloxRounds>(c, k0, k1, WideMulHiLo());
      store_blocks(c[0], staged);
      for (int l = 0; l < k; ++l) std::memcpy(to[l], staged + 4 * l, 4 * sizeof(uint32_t));
    }
    k = 0;
  };
  for (int run = 0; run < n_runs; ++run)
    for (int64_t b = per_run * kBlocks; b < n_blocks; ++b) {
      pending[k] = (first_block[run] + static_cast<uint64_t>(b)) & kDropoutBlockMask;
      to[k] = words + run * run_words + 4 * b;
      if (++k == kBlocks) flush();
    }
  flush();
}

// words[j] = word (j % 4) of dropout-stream block (first_block + j / 4) mod 2^62, for j < 4 * n_blocks.
inline void philox_words(uint64_t first_block, int64_t n_blocks, uint64_t seed, uint32_t* words) {
  philox_runs(&first_block, 1, n_blocks, seed, words, 0);
}

// The words of dropout-stream positions [position, position + len) (position = offset + element index, mod
// 2^64): their blocks generated into words, which must hold 4 * ceil((3 + len) / 4) words; returns where the
// word of `position` is (the first block may start up to 3 words before it). The one way every CPU loop
// draws a run of the stream, so the decisions are dropout's wherever the run starts.
inline const uint32_t* stream_words(uint64_t position, int64_t len, uint64_t seed, uint32_t* words) {
  const int64_t skip = static_cast<int64_t>(position & 3u);
  philox_words(position >> 2, (skip + len + 3) / 4, seed, words);
  return words + skip;
}

// Bits i .. i+15 of a packed little-order mask as bits 0..15, at any bit position i; reads only the bytes
// that hold them (the epilogue's and the broadcast variants' loops). Signed division kept: the unsigned
// form, fewer instructions, measured the epilogue's float32 forward ~6% slower.
inline uint32_t bits16_at(const uint8_t* bits, int64_t i) {
  const uint8_t* b = bits + i / 8;
  const int shift = static_cast<int>(i % 8);
  uint32_t w = b[0] | (static_cast<uint32_t>(b[1]) << 8);
  if (shift != 0) w |= static_cast<uint32_t>(b[2]) << 16;
  return (w >> shift) & 0xFFFFu;
}

// The compute vector of kLanes elements: vf32 (float, half, bfloat16), or for double two vf64 halves,
// never one vector wider than the ISA.
template <class T>
struct Lanes {
  typedef vf32 scale_type;
  static void apply(const T* in, T* out, vi32 keep, vf32 scale) {
    store_lanes(out, dropout_value(load_lanes(in), keep, scale));
  }
};
template <>
struct Lanes<double> {
  typedef vf64 scale_type;
  static void apply(const double* in, double* out, vi32 keep, vf64 scale) {
    constexpr int kHalf = kLanes / 2;
    vi64 keep_lo, keep_hi;
    split_mask(keep, keep_lo, keep_hi);
    store_vec(out, dropout_value(load_vec<vf64>(in), keep_lo, scale));
    store_vec(out + kHalf, dropout_value(load_vec<vf64>(in + kHalf), keep_hi, scale));
  }
};
template <class T>
using lanes_t = typename Lanes<T>::scale_type;

}  // namespace
}  // namespace RDF_ISA
}  // namespace cpu
}  // namespace rdf
