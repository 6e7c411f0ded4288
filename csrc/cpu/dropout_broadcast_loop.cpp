// CPU iteration for the mask-based dropout variants (csrc/common/dropout_broadcast_element.h) over units
// [begin, end) of a call (dropout_broadcast_driver.cpp). Compiled once per ISA (isa.h).
//
// A unit is up to kBroadcastChunk elements of one inner row of the simplified layout: memory-contiguous
// elements whose decisions lie in the reduced mask at a fixed step r (the row's rstride):
// - r = 0: one decision for the whole run (NCHW with H, W broadcast: one per (n, c) map; drop_path: one per
//   sample). A kept run is the element body on lane vectors with every lane kept; a dropped run is the
//   policy's constant (0, or alpha's saturation value), stored without reading x at all;
// - r = 1: consecutive decisions (a time-shared (T, N, H) whose rows are N*H; a layout without a broadcast
//   axis), 16 bits at a time into lane masks as dropout's loop reads stored bits; at any bit position,
//   since a row's first decision need not start a byte. With no mask to read (the fused case, see the
//   driver) the unit draws its decisions from the stream as dropout's loop does, tile by tile next to the
//   values, and writes their bits when the call keeps them;
// - any other r (a permuted layout whose memory-innermost axis is not the last kept axis): each decision
//   gathered into a -1/0 word, then the lane vectors;
// - folded short rows (a period: channels_last NCHW with H, W broadcast, rows of C elements): the period's
//   decisions gathered once into -1/0 words and repeated over the unit (rebuilt only when the unit's
//   decisions start elsewhere in the mask), then the lane vectors over the unit's contiguous run.
// Every unit writes only its own elements (and, fused, its own mask bytes), so any split into tasks gives
// the same bits; x and y may be the same array (each element is read before it is written, by one task).
#include <algorithm>
#include <cstring>
#include <type_traits>

#include "../common/dropout_broadcast_element.h"
#include "../common/philox.h"
#include "dropout_broadcast_driver.h"
#include "dropout_lanes.h"
#include "isa.h"
#include "vec.h"

namespace rdf {
namespace cpu {
namespace RDF_ISA {
namespace {

constexpr int64_t kGroup = 16;  // elements per step of an r = 1 row: two mask bytes
// Elements per fused tile: dropout's loop measured 256 as the tile that keeps x and y streaming at copy
// bandwidth (dropout_loop.cpp's kTile); a multiple of 8, so every tile's bits are whole bytes.
constexpr int64_t kFusedTile = 256;
constexpr int kVecsPerGroup = kGroup / kLanes;

// The lane type of T's compute type: vf32, or vf64 for double (two halves per kLanes group, as in
// dropout_lanes.h: no vector wider than the ISA).
template <class T>
using wide_t = std::conditional_t<std::is_same_v<T, double>, vf64, vf32>;

// out[0..kLanes) = value(in[0..kLanes)) under the -1/0 lane mask keep.
template <class T, class P>
inline void apply_lanes(const T* in, T* out, vi32 keep, const P& value) {
  store_lanes(out, value(load_lanes(in), keep));
}
template <class P>
inline void apply_lanes(const double* in, double* out, vi32 keep, const P& value) {
  constexpr int kHalf = kLanes / 2;
  vi64 lo, hi;
  split_mask(keep, lo, hi);
  store_vec(out, value(load_vec<vf64>(in), lo));
  store_vec(out + kHalf, value(load_vec<vf64>(in + kHalf), hi));
}

// y[j] = value(x[j]) under decision bit bi + j of bits, j < len (any bit position): 16 decisions at a time.
template <class T, class VP, class SP>
inline void apply_bits(const T* x, T* y, const uint8_t* bits, int64_t bi, int64_t len, const VP& vv, const SP& sv) {
  int64_t j = 0;
  for (; j + kGroup <= len; j += kGroup) {
    const uint32_t k16 = bits16_at(bits, bi + j);
    for (int v = 0; v < kVecsPerGroup; ++v)
      apply_lanes(x + j + v * kLanes, y + j + v * kLanes, mask_from_bits(k16 >> (v * kLanes)), vv);
  }
  for (; j < len; ++j) masked_element(x[j], y[j], mask_bit(bits, bi + j), sv);
}

// The fused pass over len elements whose decisions are stream positions offset + first + j: tiles of
// kFusedTile elements, each its Philox words (stream_words, dropout's own), then 16 elements at a time the
// decisions word >= threshold as lane masks (dropout's loop makes them so), the values, and the 16 bits
// into dst (null: not kept). Tile by tile, as dropout's loop, so the prefetchers keep streaming x and y
// through the Philox arithmetic.
template <class T, class VP, class SP>
void fused_run(const T* x, T* y, uint8_t* dst, int64_t first, int64_t len, const DropoutParams& prm, const VP& vv,
               const SP& sv) {
  alignas(64) uint32_t words[kFusedTile + 4 * kBlocks + 4];
  const vu32 t = vu32{} + prm.threshold;
  for (int64_t t0 = 0; t0 < len; t0 += kFusedTile) {
    const int64_t tl = std::min(kFusedTile, len - t0);
    const uint32_t* w = stream_words(prm.offset + static_cast<uint64_t>(first + t0), tl, prm.seed, words);
    int64_t j = 0;
    for (; j + kGroup <= tl; j += kGroup) {
      uint32_t bits16 = 0;
      for (int v = 0; v < kVecsPerGroup; ++v) {
        const int64_t e = t0 + j + v * kLanes;
        const vu32 drawn = load_vec<vu32>(w + j + v * kLanes);
        apply_lanes(x + e, y + e, reinterpret_cast<vi32>(drawn >= t), vv);
        bits16 |= compare_bits(drawn, t) << (v * kLanes);
      }
      if (dst) {
        dst[(t0 + j) / 8] = static_cast<uint8_t>(bits16);
        dst[(t0 + j) / 8 + 1] = static_cast<uint8_t>(bits16 >> 8);
      }
    }
    for (; j < tl; ++j) {
      const int64_t e = t0 + j;
      const bool keep = dropout_keep(w[j], prm.threshold);
      masked_element(x[e], y[e], keep, sv);
      if (dst) {
        if (e % 8 == 0) dst[e / 8] = 0;  // bits past the last element stay 0
        dst[e / 8] |= static_cast<uint8_t>(keep << (e % 8));
      }
    }
  }
}

template <class T, class VP, class SP>
void run_units(const BroadcastPass& pass, int64_t begin, int64_t end, const VP& vv, const SP& sv) {
  const BroadcastLayout& L = *pass.layout;
  const int last = L.ndim - 1;
  const int64_t inner = L.shape[last], s = L.stride[last], r = L.rstride[last];
  const int64_t chunk = pass.chunk, period = pass.period;
  const int64_t per_row = (inner + chunk - 1) / chunk;
  const T* in = static_cast<const T*>(pass.in);
  T* out = static_cast<T*>(pass.out);
  const T dropped = dropped_value<T>(sv);
  const vi32 all = vi32{} - 1;
  alignas(64) uint32_t keep[kBroadcastChunk];
  int64_t pattern_red = -1;  // the decisions keep[] holds (periodic rows), or none
  for (int64_t u = begin; u < end; ++u) {
    int64_t mem, red;
    broadcast_row(L, u / per_row, mem, red);
    const int64_t c0 = (u % per_row) * chunk;
    const int64_t len = std::min(chunk, inner - c0);
    mem += c0 * s;
    const T* x = in + mem;
    T* y = out + mem;
    int64_t j = 0;
    if (period != 0) {  // c0 is whole periods: phase 0
      if (red != pattern_red) {
        for (int64_t i = 0; i < period; ++i) keep[i] = mask_bit(pass.bits, red + i * r) ? ~0u : 0u;
        for (int64_t have = period; have < chunk; have *= 2)
          std::memcpy(keep + have, keep, static_cast<size_t>(std::min(have, chunk - have)) * sizeof(uint32_t));
        pattern_red = red;
      }
      for (; j + kLanes <= len; j += kLanes) apply_lanes(x + j, y + j, load_vec<vi32>(keep + j), vv);
      for (; j < len; ++j) masked_element(x[j], y[j], keep[j] != 0, sv);
      continue;
    }
    red += c0 * r;
    if (s != 1) {  // not dense (the Python layer never sends one): element by element
      for (int64_t i = 0; i < len; ++i) masked_element(x[i * s], y[i * s], mask_bit(pass.bits, red + i * r), sv);
      continue;
    }
    if (r == 0) {
      if (!mask_bit(pass.bits, red)) {
        fill_lanes(y, len, dropped);
        continue;
      }
      for (; j + kLanes <= len; j += kLanes) apply_lanes(x + j, y + j, all, vv);
      for (; j < len; ++j) masked_element(x[j], y[j], true, sv);
      continue;
    }
    if (r == 1) {
      if (pass.bits == nullptr) {  // fused: red is a multiple of kBroadcastChunk, so dst starts a byte
        fused_run(x, y, pass.bits_out ? pass.bits_out + red / 8 : nullptr, red, len, pass.params.keep, vv, sv);
      } else {
        apply_bits(x, y, pass.bits, red, len, vv, sv);
      }
      continue;
    }
    for (int64_t i = 0; i < len; ++i) keep[i] = mask_bit(pass.bits, red + i * r) ? ~0u : 0u;
    for (; j + kLanes <= len; j += kLanes) apply_lanes(x + j, y + j, load_vec<vi32>(keep + j), vv);
    for (; j < len; ++j) masked_element(x[j], y[j], keep[j] != 0, sv);
  }
}

template <class T>
void run_units(const BroadcastPass& pass, int64_t begin, int64_t end) {
  using C = compute_t<T>;
  using W = wide_t<T>;
  const auto wide = [](C v) { return W{} + v; };
  const auto same = [](C v) { return v; };
  if (pass.params.value == MaskedValue::kAlpha) {
    run_units<T>(pass, begin, end, alpha_policy<W, C>(pass.params, wide), alpha_policy<C, C>(pass.params, same));
  } else {
    run_units<T>(pass, begin, end, scaled_policy<W, C>(pass.params, wide), scaled_policy<C, C>(pass.params, same));
  }
}

}  // namespace

void dropout_broadcast_range(const BroadcastPass& pass, int64_t begin, int64_t end) {
  dispatch_dtype(pass.dtype, [&](auto tag) { run_units<decltype(tag)>(pass, begin, end); });
}

}  // namespace RDF_ISA
}  // namespace cpu
}  // namespace rdf
