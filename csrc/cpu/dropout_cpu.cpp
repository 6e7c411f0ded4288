// CPU iteration for dropout forward, backward and mask generation over one task's element range.
// Compiled once per ISA (see isa.h); the values come from csrc/common/dropout_element.h.
//
// A range is processed in tiles of kTile elements that stay in L1: (1) keep decisions for the tile as one
// byte per element, from the Philox stream (vectorized, kLanes blocks at a time) or unpacked from bits;
// (2) the element body over the tile; (3) the decisions packed into mask bits. Memory is touched once.
#include <cstring>

#include "../common/dropout_element.h"
#include "../common/philox.h"
#include "isa.h"
#include "vec.h"

namespace rdf {
namespace cpu {
namespace RDF_ISA {
namespace {

constexpr int64_t kTile = 2048;  // multiple of 8 and of 4 * kLanes

// words[j] = word (j % 4) of block (first_block + j / 4) of the dropout stream, for j < 4 * n_blocks.
// first_block is a block index already reduced mod 2^62 (global index >> 2).
void philox_words(uint64_t first_block, int64_t n_blocks, uint64_t seed, uint32_t* words) {
  const uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  constexpr uint64_t kBlockMask = (uint64_t{1} << 62) - 1;
  vu64x2 lane_index;
  for (int l = 0; l < kLanes; ++l) lane_index[l] = static_cast<uint64_t>(l);
  int64_t b = 0;
  for (; b + kLanes <= n_blocks; b += kLanes) {
    const vu64x2 block = (lane_index + (first_block + static_cast<uint64_t>(b))) & kBlockMask;
    vu32 c[4] = {__builtin_convertvector(block, vu32), __builtin_convertvector(block >> 32, vu32), vu32{},
                 vu32{}};
    philox4x32_fixed<kPhiloxRounds>(c, vu32{} + k0, vu32{} + k1, VecMulHiLo());
    store_blocks(c, words + 4 * b);
  }
  for (; b < n_blocks; ++b) dropout_block((first_block + static_cast<uint64_t>(b)) & kBlockMask, seed, words + 4 * b);
}

// keep[i] for the tile's elements [i0, i0 + len) from the Philox stream.
void keep_from_stream(const DropoutParams& prm, int64_t i0, int64_t len, uint8_t* keep) {
  alignas(64) uint32_t words[kTile + 4 * kLanes];
  const uint64_t g0 = prm.offset + static_cast<uint64_t>(i0);  // wraps mod 2^64 by design
  const int64_t skip = static_cast<int64_t>(g0 & 3u);
  const int64_t n_blocks = (skip + len + 3) / 4;
  philox_words(g0 >> 2, n_blocks, prm.seed, words);
  const uint32_t t = prm.threshold;
  for (int64_t i = 0; i < len; ++i) keep[i] = dropout_keep(words[skip + i], t);
}

// Eight 0/1 bytes -> one byte, byte k to bit k (multiplier puts byte k's bit at position 56 + k; all
// other partial products land on distinct lower or >= 64 positions, so nothing carries into the top byte).
inline uint8_t pack8(const uint8_t* keep) {
  uint64_t v;
  memcpy(&v, keep, 8);
  return static_cast<uint8_t>((v * 0x0102040810204080ull) >> 56);
}

// One byte -> eight 0/1 bytes: spread the byte to every lane, keep lane k's bit k, turn nonzero into 1.
inline void unpack8(uint8_t bits, uint8_t* keep) {
  const uint64_t spread = (bits * 0x0101010101010101ull) & 0x8040201008040201ull;
  const uint64_t v = ((spread + 0x7F7F7F7F7F7F7F7Full) >> 7) & 0x0101010101010101ull;
  memcpy(keep, &v, 8);
}

template <class T>
void apply_tile(const T* in, T* out, const uint8_t* keep, int64_t len, compute_t<T> scale) {
  for (int64_t i = 0; i < len; ++i) dropout_element(in[i], out[i], keep[i] != 0, scale);
}

template <class T>
void run_range(const DropoutPass& pass, int64_t begin, int64_t end) {
  const DropoutParams& prm = pass.params;
  const auto scale = static_cast<compute_t<T>>(prm.scale);
  const T* in = static_cast<const T*>(pass.in);
  T* out = static_cast<T*>(pass.out);
  alignas(64) uint8_t keep[kTile];
  for (int64_t i0 = begin; i0 < end; i0 += kTile) {
    const int64_t len = end - i0 < kTile ? end - i0 : kTile;
    const int64_t len8 = (len + 7) & ~int64_t{7};
    if (pass.bits_in) {
      for (int64_t j = 0; j < len8 / 8; ++j) unpack8(pass.bits_in[i0 / 8 + j], keep + 8 * j);
    } else if (prm.drop_all || prm.threshold == 0) {
      memset(keep, prm.drop_all ? 0 : 1, static_cast<size_t>(len));  // no word is needed to decide
    } else {
      keep_from_stream(prm, i0, len, keep);
    }
    if (out) apply_tile(in + i0, out + i0, keep, len, scale);
    if (pass.bits_out) {
      memset(keep + len, 0, static_cast<size_t>(len8 - len));  // bits past the last element are 0
      for (int64_t j = 0; j < len8 / 8; ++j) pass.bits_out[i0 / 8 + j] = pack8(keep + 8 * j);
    }
  }
}

}  // namespace

void dropout_range(const DropoutPass& pass, int64_t begin, int64_t end) {
  dispatch_dtype(pass.dtype, [&](auto tag) { run_range<decltype(tag)>(pass, begin, end); });
}

}  // namespace RDF_ISA
}  // namespace cpu
}  // namespace rdf
