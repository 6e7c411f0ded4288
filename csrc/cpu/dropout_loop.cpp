// CPU iteration for dropout forward, backward and mask generation over one task's element range.
// Compiled once per ISA (see isa.h); the values come from csrc/common/dropout_element.h.
//
// A range is processed in tiles of kTile elements whose random words stay in L1: the tile's words are
// generated kPhiloxVecs vectors of kBlocks Philox blocks at a time (philox_words, dropout_lanes.h), then each
// group of 16 elements is decided (word >= threshold, or read from mask bits), computed with the shared
// element body on lane vectors, stored, and its 16 decisions written as two mask bytes. x, y and the mask are
// each touched once. Before a tile's Philox rounds the input of a later tile is prefetched into L1
// (input_prefetch.h), so its cache misses overlap the arithmetic.
#include <cstring>

#include "../common/dropout_element.h"
#include "../common/philox.h"
#include "dropout_lanes.h"
#include "isa.h"
#include "vec.h"

namespace rdf {
namespace cpu {
namespace RDF_ISA {
namespace {

// Elements per tile; a multiple of kGroup and of 4 * kBlocks. Short tiles keep the Philox phase (pure
// arithmetic) and the memory phase close together, so the hardware prefetchers keep streaming x and y
// through the arithmetic: measured at 2^24 float32 on 2 threads, 256 gives ~1.0x copy bandwidth where 2048
// gave ~0.76x (BENCHMARKS.md, "tile size").
constexpr int64_t kTile = 256;
constexpr int64_t kGroup = 16;      // elements per step: two mask bytes
constexpr int kVecsPerGroup = kGroup / kLanes;


// One group of kGroup elements starting at local index i: decide, apply, record.
// out: where element i's output goes (null: decisions only). The pass's pointers come as arguments, held in
// registers: read through `pass`, they were loaded again after every mask byte stored (a byte store may
// alias anything).
template <class T, KeepSource S>
inline void group(const T* in, const uint8_t* bits_in, uint8_t* bits_out, const uint32_t* words, int64_t i, T* out,
                  lanes_t<T> scale, vu32 t) {
  uint32_t bits16 = 0;
  if (S == KeepSource::kBits) bits16 = bits_in[i / 8] | (static_cast<uint32_t>(bits_in[i / 8 + 1]) << 8);
  for (int v = 0; v < kVecsPerGroup; ++v) {
    vi32 keep;
    if (S == KeepSource::kStream) {
      const vu32 drawn = load_vec<vu32>(words + v * kLanes);
      keep = reinterpret_cast<vi32>(drawn >= t);
      bits16 |= compare_bits(drawn, t) << (v * kLanes);
    }
    if (S == KeepSource::kBits) keep = mask_from_bits(bits16 >> (v * kLanes));
    if (S == KeepSource::kAll) keep = vi32{} - 1;
    if (S == KeepSource::kNone) keep = vi32{};
    if (out) Lanes<T>::apply(in + i + v * kLanes, out + v * kLanes, keep, scale);
    if (S == KeepSource::kAll || S == KeepSource::kNone) bits16 |= movemask(keep) << (v * kLanes);
  }
  if (bits_out) {
    bits_out[i / 8] = static_cast<uint8_t>(bits16);
    bits_out[i / 8 + 1] = static_cast<uint8_t>(bits16 >> 8);
  }
}

// Elements [i, end) with end - i < kGroup: the same decisions one element at a time.
template <class T, KeepSource S>
void tail(const DropoutPass& pass, const uint32_t* words, int64_t i, int64_t end, T* out) {
  const T* in = static_cast<const T*>(pass.in);
  const auto scale = static_cast<compute_t<T>>(pass.params.scale);
  for (int64_t e = i; e < end; ++e) {
    bool keep = S == KeepSource::kAll;
    if (S == KeepSource::kStream) keep = dropout_keep(words[e - i], pass.params.threshold);
    if (S == KeepSource::kBits) keep = (pass.bits_in[e / 8] >> (e % 8)) & 1u;
    if (out) dropout_element(in[e], out[e - i], keep, scale);
    if (pass.bits_out) {
      if (e % 8 == 0) pass.bits_out[e / 8] = 0;  // bits past the last element stay 0
      pass.bits_out[e / 8] |= static_cast<uint8_t>(keep << (e % 8));
    }
  }
}

template <class T, KeepSource S>
void run_range(const DropoutPass& pass, int64_t begin, int64_t end) {
  const DropoutParams& prm = pass.params;
  const lanes_t<T> scale = lanes_t<T>{} + static_cast<compute_t<T>>(prm.scale);
  const vu32 t = vu32{} + prm.threshold;
  alignas(64) uint32_t words[kTile + 4 * kBlocks + 4];
  T* const out = static_cast<T*>(pass.out);
  const T* const in = static_cast<const T*>(pass.in);
  const uint8_t* const bits_in = pass.bits_in;
  uint8_t* const bits_out = pass.bits_out;
  const int64_t fetch_ahead = pass.prefetch_bytes / static_cast<int64_t>(sizeof(T));  // in elements
  TileOutput<T, kTile> y(out == nullptr ? nullptr : out + begin, pass.stream_out);  // vec.h
  for (int64_t i0 = begin; i0 < end; i0 += kTile) {
    const int64_t len = end - i0 < kTile ? end - i0 : kTile;
    // The input pass.prefetch_bytes ahead of this tile, asked for before its Philox rounds (input_prefetch.h).
    if (fetch_ahead > 0 && out != nullptr && i0 + len + fetch_ahead <= end)
      prefetch_lines(in + i0 + fetch_ahead, in + i0 + len + fetch_ahead);
    T* const dst = y.at(i0 - begin);  // element i0's output (null: decisions only)
    const uint32_t* w = words;  // the word of element i0 (read only when drawing from the stream)
    if (S == KeepSource::kStream) w = stream_words(prm.offset + static_cast<uint64_t>(i0), len, prm.seed, words);
    const int64_t full = len - len % kGroup;
    for (int64_t j = 0; j < full; j += kGroup)
      group<T, S>(in, bits_in, bits_out, w + j, i0 + j, dst == nullptr ? nullptr : dst + j, scale, t);
    if (full < len) tail<T, S>(pass, w + full, i0 + full, i0 + len, dst == nullptr ? nullptr : dst + full);
    y.done(len);
  }
  y.end();
}

template <class T>
void run_range(const DropoutPass& pass, int64_t begin, int64_t end) {
  with_keep_source(keep_source(pass.bits_in != nullptr, pass.params),
                   [&](auto source) { run_range<T, decltype(source)::value>(pass, begin, end); });
}

}  // namespace

void dropout_range(const DropoutPass& pass, int64_t begin, int64_t end) {
  dispatch_dtype(pass.dtype, [&](auto tag) { run_range<decltype(tag)>(pass, begin, end); });
}

}  // namespace RDF_ISA
}  // namespace cpu
}  // namespace rdf
