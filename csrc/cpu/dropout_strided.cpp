// CPU iteration for dropout over a dense strided array (channels_last, any permutation of the axes), for
// the units [begin, end) of a call (strided::tile_extent in isa.h; counted by run_strided_pass in
// dropout_driver.cpp). Compiled once per ISA (isa.h); the
// values come from csrc/common/dropout_element.h, the layout from csrc/common/strided_layout.h.
//
// x and y are read and written in memory order while each element's decision comes from its logical
// (C-order) index. The work is cut into tiles of the plane spanned by the layout's `inner` axis (logical
// stride 1) and its `minor` axis (memory stride 1), sized by strided::tile_extent (isa.h):
// - first the tile's decisions, one logical row (fixed minor index) at a time: a row is up to
//   kTileInnerMax logically consecutive elements, so its Philox blocks are consecutive blocks of the stream,
//   each of whose 4 words is used (a row wastes at most the words before its first element and after its
//   last in their blocks). Rows drawn from the stream are drawn kRowBatch at a time (philox_runs), so that
//   their few lane vectors of blocks fill the generator's independent chains (a row of 64 words alone is
//   two vectors; drawn one row at a time, channels_last forward took 1.4x as long, BENCHMARKS.md).
//   They are transposed into memory order as 32-bit words of 32 decisions each
//   (rows[c * tm + j]: inner indices 32 c .. 32 c + 31 of minor index j), one store per 32 decisions;
//   tiles whose rows are shorter than a lane vector (few channels) store one -1/0 mask per element instead;
// - then the values, in memory order: for each inner index, tm elements contiguous in memory (the whole
//   tile at once when its rows follow each other in memory), through the shared element body on lane
//   vectors, each lane's mask shifted out of its decision word.
// When inner and minor are the same axis, a unit is a run of up to kRun elements contiguous both logically
// and in memory: decisions, then values, in one order.
//
// Decisions come from the Philox stream or from mask bits (the logical bit order of docs/rng.md). A
// forward's mask bits are written by this pass from its tile rows' decision words when every row covers
// whole bytes of the mask (strided::writes_own_bits, isa.h); otherwise the driver writes them first, in
// logical order, with the contiguous mask pass, and this pass reads them back (bits shared between tasks
// would need atomic writes).
// x and y may be the same array (in place): every element is read before it is written, by one task.
#include <cstring>

#include "../common/dropout_element.h"
#include "../common/philox.h"
#include "../common/strided_layout.h"
#include "dropout_lanes.h"
#include "isa.h"
#include "vec.h"

namespace rdf {
namespace cpu {
namespace RDF_ISA {
namespace {

using namespace ::rdf::cpu::strided;

// keep[k * step] = -1 (kept) or 0 for the len <= kTileInnerMax elements of logical indices l .. l + len - 1.
template <KeepSource S>
void row_keep(const DropoutPass& pass, int64_t l, int64_t len, uint32_t* keep, int64_t step, uint32_t* words) {
  if (S == KeepSource::kStream) {
    const uint32_t* w = stream_words(pass.params.offset + static_cast<uint64_t>(l), len, pass.params.seed, words);
    const uint32_t t = pass.params.threshold;
    for (int64_t k = 0; k < len; ++k) keep[k * step] = dropout_keep(w[k], t) ? ~0u : 0u;
  } else if (S == KeepSource::kBits) {
    const uint8_t* bits = pass.bits_in;
    for (int64_t k = 0; k < len; ++k) {
      const int64_t e = l + k;
      keep[k * step] = ((bits[e >> 3] >> (e & 7)) & 1u) ? ~0u : 0u;
    }
  } else {
    const uint32_t all = S == KeepSource::kAll ? ~0u : 0u;
    for (int64_t k = 0; k < len; ++k) keep[k * step] = all;
  }
}

// out[j] = dropout(in[j]) under keep[j] (-1/0), j < len: lane vectors, then one element at a time.
template <class T>
inline void apply(const T* in, T* out, const uint32_t* keep, int64_t len, lanes_t<T> scale, compute_t<T> s) {
  int64_t j = 0;
  for (; j + kLanes <= len; j += kLanes) {
    const vi32 k = load_vec<vi32>(keep + j);
    Lanes<T>::apply(in + j, out + j, k, scale);
  }
  for (; j < len; ++j) dropout_element(in[j], out[j], keep[j] != 0, s);
}

// rows[c * tm] from the len stream words drawn[0 .. len) of a row (what row_bits gives for mask bits). A last
// word of fewer than 32 decisions is compared in whole vectors too, its bits past len cleared: the words
// past len are other rows' or earlier batches' (the buffer holds kRowWords >= 32 * ceil(len / 32) + 3 per
// row and is zeroed once per range, so every word read is initialized).
inline void pack_row_bits(const uint32_t* drawn, int64_t len, uint32_t threshold, uint32_t* rows, int64_t tm) {
  const vu32 t = vu32{} + threshold;
  for (int64_t c = 0; c < (len + 31) / 32; ++c) {
    const int64_t k0 = 32 * c;
    uint32_t w = 0;
    for (int v = 0; v < 32 / kLanes; ++v) w |= compare_bits(load_vec<vu32>(drawn + k0 + v * kLanes), t) << (v * kLanes);
    if (len - k0 < 32) w &= (uint32_t{1} << (len - k0)) - 1;
    rows[c * tm] = w;
  }
}

// Rows drawn together from the stream (philox_runs): a tile row of 32-64 words (channels_last with 128 or
// 64 channels) is one or two AVX-512 lane vectors of Philox blocks, too few to fill kPhiloxVecs
// independent chains on its own.
constexpr int kRowBatch = 4;
// Words of one row in the batch's buffer: the row's len <= kTileInnerMax words and up to 3 before its first
// (its first block's), a whole number of 64-byte lines.
constexpr int64_t kRowWords = kTileInnerMax + 16;

// rows[j * 1 + c * tm] for the n <= kRowBatch rows j of logical starts l + j * lstride, len decisions each,
// from the stream: their blocks drawn in one philox_runs call into words (kRowBatch * kRowWords).
inline void stream_rows_bits(const DropoutPass& pass, int64_t l, int64_t lstride, int n, int64_t len,
                             uint32_t* rows, int64_t tm, uint32_t* words) {
  uint64_t first[kRowBatch];
  int64_t skip[kRowBatch], n_blocks = 0;
  for (int j = 0; j < n; ++j) {
    const uint64_t position = pass.params.offset + static_cast<uint64_t>(l + j * lstride);
    first[j] = position >> 2;
    skip[j] = static_cast<int64_t>(position & 3u);
    const int64_t blocks = (skip[j] + len + 3) / 4;
    n_blocks = blocks > n_blocks ? blocks : n_blocks;
  }
  philox_runs(first, n, n_blocks, pass.params.seed, words, kRowWords);
  for (int j = 0; j < n; ++j) pack_row_bits(words + j * kRowWords + skip[j], len, pass.params.threshold, rows + j, tm);
}

// rows[c * tm] bit b = decision of element 32 c + b of the len <= kTileInnerMax logically consecutive
// elements l .. l + len - 1 (bits past len are 0): one word per 32 elements, so the transpose into memory
// order costs a word store per 32 decisions.
// Decisions from mask bits or all the same (p = 0, p = 1); rows drawn from the stream go through
// stream_rows_bits, kRowBatch at a time.
template <KeepSource S>
void row_bits(const DropoutPass& pass, int64_t l, int64_t len, uint32_t* rows, int64_t tm) {
  static_assert(S != KeepSource::kStream, "stream rows are drawn in batches (stream_rows_bits)");
  const int64_t n_words = (len + 31) / 32;
  if (S == KeepSource::kBits) {
    for (int64_t c = 0; c < n_words; ++c) {
      const int64_t e = l + 32 * c;  // bits e .. e + m - 1 of the mask, m <= 32: at most 5 bytes
      const int64_t m = len - 32 * c < 32 ? len - 32 * c : 32;
      if (m == 32 && (e & 7) == 0) {  // 4 whole bytes of the mask, lowest bit first (rows on byte boundaries)
        uint32_t w;
        std::memcpy(&w, pass.bits_in + (e >> 3), 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        w = __builtin_bswap32(w);
#endif
        rows[c * tm] = w;
        continue;
      }
      const int64_t n_bytes = ((e & 7) + m + 7) / 8;
      uint64_t b = 0;
      for (int64_t k = 0; k < n_bytes; ++k) b |= static_cast<uint64_t>(pass.bits_in[(e >> 3) + k]) << (8 * k);
      b >>= (e & 7);
      rows[c * tm] = static_cast<uint32_t>(m == 32 ? b : b & ((uint64_t{1} << m) - 1));
    }
  } else {
    for (int64_t c = 0; c < n_words; ++c) {
      const int64_t m = len - 32 * c < 32 ? len - 32 * c : 32;
      rows[c * tm] = S == KeepSource::kAll ? static_cast<uint32_t>((uint64_t{1} << m) - 1) : 0u;
    }
  }
}

// The tile's decisions, rows[c * tm + j] (row_bits), into the mask: row j's ti bits at bit position
// log + j * lstride. Whole bytes only (strided::writes_own_bits: positions and ti are multiples of 8, so
// the bytes are this row's alone); a word of 32 decisions is 4 bytes of the mask, lowest bit first.
inline void put_tile_bits(uint8_t* bits, int64_t log, int64_t lstride, int64_t ti, int64_t tm,
                          const uint32_t* rows) {
  const int64_t whole = ti / 32, rest_bytes = (ti % 32) / 8;
  for (int64_t j = 0; j < tm; ++j) {
    uint8_t* dst = bits + (log + j * lstride) / 8;
    for (int64_t c = 0; c < whole; ++c) {
      uint32_t w = rows[c * tm + j];
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
      w = __builtin_bswap32(w);
#endif
      std::memcpy(dst + 4 * c, &w, 4);
    }
    for (int64_t k = 0; k < rest_bytes; ++k)
      dst[4 * whole + k] = static_cast<uint8_t>(rows[whole * tm + j] >> (8 * k));
  }
}

template <class T, KeepSource S>
void run_units(const DropoutPass& pass, const StridedLayout& L, int64_t begin, int64_t end) {
  const T* in = static_cast<const T*>(pass.in);
  T* out = static_cast<T*>(pass.out);
  uint8_t* const bits_out = pass.bits_out;
  const auto s = static_cast<compute_t<T>>(pass.params.scale);
  const lanes_t<T> scale = lanes_t<T>{} + s;
  alignas(64) uint32_t keep[kTileElems];
  // ceil(ti / 32) * tm <= ti * tm / 32 + tm words (tile_extent: ti * tm <= kTileElems when tm >= kLanes)
  alignas(64) uint32_t rows[kTileElems / 32 + kTileMinorMax];
  alignas(64) uint32_t words[kRowBatch * kRowWords] = {};  // stream words of a batch of rows (or of one run)
  const int64_t n_inner = L.shape[L.inner];
  if (L.inner == L.minor) {
    const int64_t per_row = (n_inner + kRun - 1) / kRun;
    for (int64_t u = begin; u < end; ++u) {
      int64_t mem, log;
      outer_offsets(L, u / per_row, mem, log);
      const int64_t i0 = (u % per_row) * kRun;
      const int64_t len = n_inner - i0 < kRun ? n_inner - i0 : kRun;
      for (int64_t c = 0; c < len; c += kTileInnerMax) {
        const int64_t clen = len - c < kTileInnerMax ? len - c : kTileInnerMax;
        row_keep<S>(pass, log + i0 + c, clen, keep, 1, words);
        apply(in + mem + i0 + c, out + mem + i0 + c, keep, clen, scale, s);
      }
    }
    return;
  }
  const int64_t n_minor = L.shape[L.minor];
  int64_t tile_i, tile_m;
  tile_extent(L, tile_i, tile_m);
  const int64_t tiles_minor = (n_minor + tile_m - 1) / tile_m;
  const int64_t tiles_inner = (n_inner + tile_i - 1) / tile_i;
  const int64_t inner_stride = L.stride[L.inner], minor_lstride = L.lstride[L.minor];
  // Dense tiles: a tile spans the whole minor axis, the inner axis follows it in memory and the other axes
  // follow those two in C order (channels_last with up to kTileMinorMax channels). Then each tile is one
  // stretch of memory and the units [begin, end) are one stretch, tile after tile, so the output can be
  // written as a contiguous range is (vec.h's TileOutput: streamed when pass.stream_out). Other layouts
  // write in place. Every tile's input is prefetched into L1 while its decisions are drawn
  // (input_prefetch.h; dense or not, a tile's memory rows are runs of tm elements).
  bool dense = tiles_minor == 1 && inner_stride == n_minor;
  for (int64_t d = L.ndim - 1, expect = n_inner * n_minor; d >= 0; --d) {
    if (d == L.inner || d == L.minor) continue;
    dense = dense && L.stride[d] == expect;
    expect *= L.shape[d];
  }
  const bool fetch = pass.prefetch_bytes > 0;  // each tile's own input, while its decisions are drawn
  int64_t first_mem = 0, first_log = 0;
  if (dense && begin < end) {
    outer_offsets(L, begin / tiles_inner, first_mem, first_log);
    first_mem += (begin % tiles_inner) * tile_i * inner_stride;
  }
  TileOutput<T, kTileElems> y_tiles(dense ? out + first_mem : nullptr, dense && pass.stream_out);
  int64_t written = 0;  // elements of the dense range written so far
  for (int64_t u = begin; u < end; ++u) {
    const int64_t tm_i = u % tiles_minor;
    const int64_t ti_i = (u / tiles_minor) % tiles_inner;
    int64_t mem, log;
    outer_offsets(L, u / tiles_minor / tiles_inner, mem, log);
    const int64_t i0 = ti_i * tile_i, j0 = tm_i * tile_m;
    const int64_t ti = n_inner - i0 < tile_i ? n_inner - i0 : tile_i;
    const int64_t tm = n_minor - j0 < tile_m ? n_minor - j0 : tile_m;
    mem += i0 * inner_stride + j0;
    log += i0 + j0 * minor_lstride;
    // Where the tile's element at memory offset mem is written (dense: mem is first_mem + written).
    T* const y_tile = dense ? y_tiles.at(written) : out + mem;
    if (tm < kLanes) {
      // Rows shorter than a lane vector: the decisions one by one into memory order, then the values of
      // each memory row (of the whole tile at once when the rows follow each other in memory).
      for (int64_t j = 0; j < tm; ++j) {
        if (fetch && dense) prefetch_lines(in + mem + j * ti, in + mem + (j + 1) * ti);  // the tile, tm pieces
        row_keep<S>(pass, log + j * minor_lstride, ti, keep + j, tm, words);
      }
      if (inner_stride == tm) {
        apply(in + mem, y_tile, keep, ti * tm, scale, s);
      } else {
        for (int64_t i = 0; i < ti; ++i) {
          const int64_t m = mem + i * inner_stride;
          apply(in + m, out + m, keep + i * tm, tm, scale, s);
        }
      }
      if (dense) {
        y_tiles.done(ti * tm);
        written += ti * tm;
      }
      continue;
    }
    // Decisions as 32-bit words, rows[c * tm + j] bit b for inner index 32 c + b and minor index j; then
    // for each inner index i a memory row of tm values, its lane masks shifted out of those words.
    // The tile's input, its ti memory rows of tm elements, asked for in pieces while the decisions are
    // drawn: memory rows [i_fetched, i_fetched + per_step) at each step of the loops below (per_step rows
    // for each of the steps, as evenly as they go).
    const int64_t steps = S == KeepSource::kStream ? (tm + kRowBatch - 1) / kRowBatch : tm;
    const int64_t per_step = (ti + steps - 1) / steps;
    int64_t i_fetched = 0;
    const auto fetch_rows = [&]() {
      if (!fetch) return;
      for (const int64_t stop = i_fetched + per_step < ti ? i_fetched + per_step : ti; i_fetched < stop; ++i_fetched)
        prefetch_lines(in + mem + i_fetched * inner_stride, in + mem + i_fetched * inner_stride + tm);
    };
    if constexpr (S == KeepSource::kStream) {
      for (int64_t j = 0; j < tm; j += kRowBatch) {
        const int n = tm - j < kRowBatch ? static_cast<int>(tm - j) : kRowBatch;
        fetch_rows();
        stream_rows_bits(pass, log + j * minor_lstride, minor_lstride, n, ti, rows + j, tm, words);
      }
    } else {
      for (int64_t j = 0; j < tm; ++j) {
        fetch_rows();
        row_bits<S>(pass, log + j * minor_lstride, ti, rows + j, tm);
      }
    }
    if (bits_out != nullptr) put_tile_bits(bits_out, log, minor_lstride, ti, tm, rows);
    for (int64_t i = 0; i < ti; ++i) {
      const T* x = in + mem + i * inner_stride;
      T* y = y_tile + i * inner_stride;
      const uint32_t* r = rows + (i >> 5) * tm;
      const uint32_t shift = static_cast<uint32_t>(i & 31);
      const vu32 bit = vu32{} + (1u << shift);
      int64_t j = 0;
      for (; j + kLanes <= tm; j += kLanes) {
        // -1/0 lanes as a test of the bit, which AVX-512 does in one instruction into a mask register
        const vi32 k = (load_vec<vu32>(r + j) & bit) != 0;
        Lanes<T>::apply(x + j, y + j, k, scale);
      }
      for (; j < tm; ++j) dropout_element(x[j], y[j], ((r[j] >> shift) & 1u) != 0, s);
    }
    if (dense) {
      y_tiles.done(ti * tm);
      written += ti * tm;
    }
  }
  y_tiles.end();
}

template <class T>
void run_units(const DropoutPass& pass, const StridedLayout& L, int64_t begin, int64_t end) {
  with_keep_source(keep_source(pass.bits_in != nullptr, pass.params),
                   [&](auto source) { run_units<T, decltype(source)::value>(pass, L, begin, end); });
}

}  // namespace

void dropout_strided_range(const DropoutPass& pass, const StridedLayout& layout, int64_t begin, int64_t end) {
  dispatch_dtype(pass.dtype, [&](auto tag) { run_units<decltype(tag)>(pass, layout, begin, end); });
}

}  // namespace RDF_ISA
}  // namespace cpu
}  // namespace rdf
