// CPU iteration for the fused epilogue y = residual + dropout(x + bias) and its backward over one task's
// elements. Compiled once per ISA (see isa.h); the values come from csrc/common/bias_dropout_add_element.h.
//
// Forward, tile by tile (kTile elements): a plain float16 / bfloat16 / float32 call drawing from the stream takes each
// tile's words from stream_words (dropout_lanes.h, dropout's own generator) and decides word >= threshold as
// lane masks, as dropout's loop does, packing the bits the same way when the call stores them; so the mask is
// dropout's bit for bit by construction, without writing the bits and reading them back. Other tiles take
// their bits from dropout's loops and read them back as lane masks: a block of a global tensor from
// dropout_global_range, dropout_global's piece generator (one dropout_range per row piece of the tile);
// float64 (forward_range says why) and p rounding to 0 or 1 from dropout_range. x, residual and y
// are each touched once. Rows are walked as segments of whole columns so that bias loads are vector loads.
//
// Backward: a task owns row blocks (kBiasRowBlock rows) x a column range; per block it walks the rows in
// order, writes dx, and adds each stored dx into per-column sums held on the stack, so dx is never read
// back from memory; the block's sums go to the partials, which bias_grad_combine adds in block order.
#include <algorithm>
#include <type_traits>

#include "../common/bias_dropout_add_element.h"
#include "dropout_driver.h"
#include "dropout_lanes.h"
#include "isa.h"
#include "vec.h"

namespace rdf {
namespace cpu {
namespace RDF_ISA {
namespace {

constexpr int64_t kTile = 256;  // elements per forward tile: 32 mask bytes; a multiple of 8 (why short: dropout_loop.cpp)
constexpr int64_t kGroup = 16;      // elements per step: two mask bytes
constexpr int kVecsPerGroup = kGroup / kLanes;
static_assert(kBiasGradColumns % 8 == 0, "a column range's mask bits must fit its buffer");

// The compute vector of kLanes elements: vf32 (float, half, bfloat16), or for double two vf64 halves (vec.h:
// no vector wider than the ISA). `scale` is broadcast in that type.
template <class T>
using scale_t = std::conditional_t<std::is_same_v<T, double>, vf64, vf32>;

// y[0..kLanes) = residual + dropout(x + bias) for one lane group, keep a -1/0 lane mask.
template <bool HAS_BIAS, class T>
inline void forward_lanes(const T* x, const T* b, const T* r, T* y, vi32 keep, vf32 scale) {
  vf32 bv{};
  if constexpr (HAS_BIAS) bv = load_lanes(b);
  store_lanes(y, bias_dropout_add_value<HAS_BIAS>(load_lanes(x), bv, load_lanes(r), keep, scale));
}
template <bool HAS_BIAS>
inline void forward_lanes(const double* x, const double* b, const double* r, double* y, vi32 keep, vf64 scale) {
  constexpr int kHalf = kLanes / 2;
  vi64 m[2];
  split_mask(keep, m[0], m[1]);
  for (int part = 0; part < 2; ++part) {
    const int o = part * kHalf;
    vf64 bv{};
    if constexpr (HAS_BIAS) bv = load_vec<vf64>(b + o);
    store_vec(y + o, bias_dropout_add_value<HAS_BIAS>(load_vec<vf64>(x + o), bv, load_vec<vf64>(r + o), m[part], scale));
  }
}

// d[0..kLanes) = dropout_backward(g) for one lane group, each stored d added to its column sum acc: the
// value store_lanes returns, the rounded dx the call returns, from registers (reading d back from L1 cost
// ~15% of the bfloat16 backward's time: BENCHMARKS.md, "epilogue bfloat16").
template <class T>
inline void grad_lanes(const T* g, T* d, float* acc, vi32 keep, vf32 scale) {
  const vf32 stored = store_lanes(d, dropout_value(load_lanes(g), keep, scale));
  store_vec(acc, load_vec<vf32>(acc) + stored);
}
inline void grad_lanes(const double* g, double* d, double* acc, vi32 keep, vf64 scale) {
  constexpr int kHalf = kLanes / 2;
  vi64 m[2];
  split_mask(keep, m[0], m[1]);
  for (int part = 0; part < 2; ++part) {
    const int o = part * kHalf;
    const vf64 v = dropout_value(load_vec<vf64>(g + o), m[part], scale);  // stored exactly
    store_vec(d + o, v);
    store_vec(acc + o, load_vec<vf64>(acc + o) + v);
  }
}

inline bool bit_at(const uint8_t* bits, int64_t i) { return (bits[i / 8] >> (i % 8)) & 1u; }

// dropout's keep bits of elements [first, first + len) of the call into out (bit 0 = element first; len <=
// kDropoutTaskElems). A plain call: the decisions depend on offset + index only, so a pass whose offset is
// moved by `first` gives them. A block of a global tensor: dropout_global's own piece generator over the
// rows the range touches, so the decisions are dropout(..., global_shape=)'s by construction.
inline void keep_bits(const DropoutParams& prm, const GlobalRows* rows, int64_t first, int64_t len, uint8_t* out) {
  if (rows != nullptr) {
    dropout_global_range(DropoutPass{DType::kFloat32, nullptr, nullptr, nullptr, nullptr, prm}, *rows, first, len,
                         out);
    return;
  }
  DropoutParams shifted = prm;
  shifted.offset = prm.offset + static_cast<uint64_t>(first);  // wraps mod 2^64, as the stream does
  dropout_range(DropoutPass{DType::kFloat32, nullptr, nullptr, nullptr, out, shifted}, 0, len);
}

// Where a forward tile's decisions come from: FROM_WORDS, the tile's Philox words (keep iff word >=
// threshold, as dropout's loop decides: lane masks by one compare); else the tile's mask bits.
struct TileKeep {
  const uint32_t* words;  // FROM_WORDS: word of tile element i at words[i]
  const uint8_t* bits;    // else: bit i of tile element i
  vu32 t;
  uint32_t threshold;
};

// Elements e .. e+len-1 of the call, which are columns c .. c+len-1 of one row and elements li .. li+len-1
// of the tile; y: where element e's output goes.
template <class T, bool HAS_BIAS, bool FROM_WORDS>
void segment(const BiasDropoutAddPass& pass, const TileKeep k, int64_t li, int64_t e, int64_t c, int64_t len, T* y) {
  const T* x = static_cast<const T*>(pass.x) + e;
  const T* r = static_cast<const T*>(pass.residual) + e;
  const T* b = HAS_BIAS ? static_cast<const T*>(pass.bias) + c : nullptr;
  const auto scale1 = static_cast<compute_t<T>>(pass.params.scale);
  const scale_t<T> scale = scale_t<T>{} + scale1;
  int64_t j = 0;
  for (; j + kGroup <= len; j += kGroup) {
    uint32_t k16 = 0;
    if constexpr (!FROM_WORDS) k16 = bits16_at(k.bits, li + j);
    for (int v = 0; v < kVecsPerGroup; ++v) {
      const int64_t o = j + v * kLanes;
      vi32 keep;
      if constexpr (FROM_WORDS) keep = reinterpret_cast<vi32>(load_vec<vu32>(k.words + li + o) >= k.t);
      if constexpr (!FROM_WORDS) keep = mask_from_bits(k16 >> (v * kLanes));
      forward_lanes<HAS_BIAS>(x + o, HAS_BIAS ? b + o : nullptr, r + o, y + o, keep, scale);
    }
  }
  for (; j < len; ++j) {
    const bool keep = FROM_WORDS ? dropout_keep(k.words[li + j], k.threshold) : bit_at(k.bits, li + j);
    bias_dropout_add_element<HAS_BIAS>(x[j], HAS_BIAS ? b + j : nullptr, r[j], y[j], keep, scale1);
  }
}

// out (ceil(len/8) bytes, bits past len 0) = the keep bits of words[0..len), as dropout's loop packs them.
inline void pack_keep_bits(const uint32_t* words, int64_t len, vu32 t, uint32_t threshold, uint8_t* out) {
  int64_t j = 0;
  for (; j + kGroup <= len; j += kGroup) {
    uint32_t bits16 = 0;
    for (int v = 0; v < kVecsPerGroup; ++v)
      bits16 |= compare_bits(load_vec<vu32>(words + j + v * kLanes), t) << (v * kLanes);
    out[j / 8] = static_cast<uint8_t>(bits16);
    out[j / 8 + 1] = static_cast<uint8_t>(bits16 >> 8);
  }
  for (; j < len; ++j) {
    if (j % 8 == 0) out[j / 8] = 0;
    out[j / 8] |= static_cast<uint8_t>(dropout_keep(words[j], threshold) << (j % 8));
  }
}

// Tile by tile (kTile elements), segment by segment of whole columns.
template <class T, bool HAS_BIAS, bool FROM_WORDS>
void forward_tiles(const BiasDropoutAddPass& pass, int64_t begin, int64_t end) {
  const DropoutParams& prm = pass.params;
  alignas(64) uint8_t tile_bits[kTile / 8];
  alignas(64) uint32_t words[kTile + 4 * kBlocks + 4];
  TileKeep k{nullptr, nullptr, vu32{} + prm.threshold, prm.threshold};
  TileOutput<T, kTile> y(static_cast<T*>(pass.y) + begin, pass.stream_out);  // vec.h
  for (int64_t i0 = begin; i0 < end; i0 += kTile) {
    const int64_t len = std::min(kTile, end - i0);
    T* const y_tile = y.at(i0 - begin);
    uint8_t* bits = pass.bits_out ? pass.bits_out + i0 / 8 : tile_bits;  // i0 is a multiple of 8
    if constexpr (FROM_WORDS) {
      k.words = stream_words(prm.offset + static_cast<uint64_t>(i0), len, prm.seed, words);
      if (pass.bits_out) pack_keep_bits(k.words, len, k.t, prm.threshold, bits);
    } else {
      keep_bits(prm, pass.block, i0, len, bits);
      k.bits = bits;
    }
    for (int64_t e = i0; e < i0 + len;) {
      const int64_t c = HAS_BIAS ? e % pass.h : 0;
      const int64_t seg = HAS_BIAS ? std::min(i0 + len - e, pass.h - c) : i0 + len - e;
      segment<T, HAS_BIAS, FROM_WORDS>(pass, k, e - i0, e, c, seg, y_tile + (e - i0));
      e += seg;
    }
    y.done(len);
  }
  y.end();
}

// A plain call drawing from the stream, in float16, bfloat16 or float32: the words in the tile loop itself
// (stream_words, dropout's own generator), so the decisions need no trip through mask bits; the trip's
// scalar bit work cost ~8% (bfloat16). float32 ran 15-25% slower from the words until the output's staging
// stores were put on line boundaries (vec.h's LineStream); since then it is 5-15% faster from the words
// (BENCHMARKS.md, "the epilogue's float32 forward from the words"). float64 keeps the bits (not measured).
// A block of a global tensor, or p rounding to 0 or 1 (no words needed): the bits from dropout's loops
// (keep_bits).
template <class T, bool HAS_BIAS>
void forward_range(const BiasDropoutAddPass& pass, int64_t begin, int64_t end) {
  if (sizeof(T) <= 4 && pass.block == nullptr && keep_source(false, pass.params) == KeepSource::kStream) {
    forward_tiles<T, HAS_BIAS, true>(pass, begin, end);
  } else {
    forward_tiles<T, HAS_BIAS, false>(pass, begin, end);
  }
}

template <class T>
void grad_blocks(const BiasGradPass& pass, int64_t b0, int64_t b1, int64_t c0, int64_t c1) {
  using C = compute_t<T>;
  const int64_t h = pass.h, width = c1 - c0;  // width <= kBiasGradColumns
  const C scale1 = static_cast<C>(pass.params.scale);
  const scale_t<T> scale = scale_t<T>{} + scale1;
  alignas(64) C acc[kBiasGradColumns];
  bool streamed = false;
  alignas(64) uint8_t row_bits[kBiasGradColumns / 8];
  for (int64_t blk = b0; blk < b1; ++blk) {
    std::fill(acc, acc + width, C{});
    const int64_t r1 = std::min(pass.rows, (blk + 1) * kBiasRowBlock);
    for (int64_t r = blk * kBiasRowBlock; r < r1; ++r) {
      const int64_t e0 = r * h + c0;
      const uint8_t* bits = pass.bits_in;
      int64_t li = e0;
      if (!bits) {  // a store="seed" mask: this row's decisions regenerated
        keep_bits(pass.params, pass.block, e0, width, row_bits);
        bits = row_bits;
        li = 0;
      }
      const T* g = static_cast<const T*>(pass.grad) + e0;
      T* d = static_cast<T*>(pass.dx) + e0;
      // The row in pieces of kTile elements (a multiple of kGroup: the same groups as one piece), each
      // written at dp; one fence for the task's rows, after the last (a fence per row cost ~20% in bfloat16).
      TileOutput<T, kTile> row(d, pass.stream_out);
      streamed = row.streams();
      for (int64_t j0 = 0; j0 < width; j0 += kTile) {
        const int64_t j1 = std::min(width, j0 + kTile);
        T* const dp = row.at(j0);
        int64_t j = j0;
        for (; j + kGroup <= j1; j += kGroup) {
          const uint32_t k16 = bits16_at(bits, li + j);
          for (int v = 0; v < kVecsPerGroup; ++v) {
            const int64_t o = j + v * kLanes;
            grad_lanes(g + o, dp + (o - j0), acc + o, mask_from_bits(k16 >> (v * kLanes)), scale);
          }
        }
        for (; j < j1; ++j) bias_dropout_add_grad_element(g[j], dp[j - j0], bit_at(bits, li + j), scale1, acc[j]);
        row.done(j1 - j0);
      }
      row.end(false);
    }
    std::copy(acc, acc + width, static_cast<C*>(pass.partials) + blk * h + c0);
  }
  if (streamed) stream_fence();
}

template <class T>
void combine(const void* partials, int64_t blocks, int64_t h, void* dbias, int64_t c0, int64_t c1) {
  using C = compute_t<T>;
  const C* p = static_cast<const C*>(partials);
  T* out = static_cast<T*>(dbias);
  alignas(64) C sum[kBiasGradColumns];
  for (int64_t c0k = c0; c0k < c1; c0k += kBiasGradColumns) {
    const int64_t width = std::min(kBiasGradColumns, c1 - c0k);
    std::fill(sum, sum + width, C{});
    for (int64_t blk = 0; blk < blocks; ++blk) {  // block order: the fixed order of the sum
      const C* row = p + blk * h + c0k;
      for (int64_t j = 0; j < width; ++j) sum[j] = sum[j] + row[j];
    }
    for (int64_t j = 0; j < width; ++j) store(out[c0k + j], sum[j]);
  }
}

}  // namespace

void bias_dropout_add_range(const BiasDropoutAddPass& pass, int64_t begin, int64_t end) {
  dispatch_dtype(pass.dtype, [&](auto tag) {
    if (pass.bias) {
      forward_range<decltype(tag), true>(pass, begin, end);
    } else {
      forward_range<decltype(tag), false>(pass, begin, end);
    }
  });
}

void bias_grad_blocks(const BiasGradPass& pass, int64_t b0, int64_t b1, int64_t c0, int64_t c1) {
  dispatch_dtype(pass.dtype, [&](auto tag) { grad_blocks<decltype(tag)>(pass, b0, b1, c0, c1); });
}

void bias_grad_combine(DType dt, const void* partials, int64_t blocks, int64_t h, void* dbias, int64_t c0,
                       int64_t c1) {
  dispatch_dtype(dt, [&](auto tag) { combine<decltype(tag)>(partials, blocks, h, dbias, c0, c1); });
}

}  // namespace RDF_ISA
}  // namespace cpu
}  // namespace rdf
