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
//   driver) the unit first writes its own decisions with dropout's loop of this ISA;
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
#include "dropout_broadcast_driver.h"
#include "isa.h"
#include "vec.h"

namespace rdf {
namespace cpu {
namespace RDF_ISA {
namespace {

constexpr int64_t kGroup = 16;  // elements per step of an r = 1 row: two mask bytes
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

// Bits i .. i+15 of a packed little-order mask as bits 0..15; reads only the bytes that hold them.
inline uint32_t bits16_at(const uint8_t* bits, int64_t i) {
  const uint8_t* b = bits + i / 8;
  const int shift = static_cast<int>(i % 8);
  uint32_t w = b[0] | (static_cast<uint32_t>(b[1]) << 8);
  if (shift != 0) w |= static_cast<uint32_t>(b[2]) << 16;
  return (w >> shift) & 0xFFFFu;
}

// dropout's keep bits of reduced elements [first, first + len) into out (bit 0 = element first, first a
// multiple of 8): the decisions depend on offset + index only, so a mask pass whose offset is moved by
// `first` gives them.
inline void keep_bits(const DropoutParams& prm, int64_t first, int64_t len, uint8_t* out) {
  DropoutParams shifted = prm;
  shifted.offset = prm.offset + static_cast<uint64_t>(first);  // wraps mod 2^64, as the stream does
  dropout_range(DropoutPass{DType::kFloat32, nullptr, nullptr, nullptr, out, shifted}, 0, len);
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
  alignas(64) uint8_t local[kBroadcastChunk / 8 + 8];
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
        std::fill(y, y + len, dropped);
        continue;
      }
      for (; j + kLanes <= len; j += kLanes) apply_lanes(x + j, y + j, all, vv);
      for (; j < len; ++j) masked_element(x[j], y[j], true, sv);
      continue;
    }
    if (r == 1) {
      const uint8_t* b = pass.bits;
      int64_t bi = red;
      if (b == nullptr) {  // fused: this unit's own decisions first (red is a multiple of kBroadcastChunk)
        uint8_t* dst = pass.bits_out ? pass.bits_out + red / 8 : local;
        keep_bits(pass.params.keep, red, len, dst);
        b = dst;
        bi = 0;
      }
      for (; j + kGroup <= len; j += kGroup) {
        const uint32_t k16 = bits16_at(b, bi + j);
        for (int v = 0; v < kVecsPerGroup; ++v)
          apply_lanes(x + j + v * kLanes, y + j + v * kLanes, mask_from_bits(k16 >> (v * kLanes)), vv);
      }
      for (; j < len; ++j) masked_element(x[j], y[j], mask_bit(b, bi + j), sv);
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
