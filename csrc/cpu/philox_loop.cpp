// Raw Philox4x32-R blocks through the SIMD lane code of the dropout stream (philox4x32_fixed on vu64 lanes
// with WideMulHiLo, as dropout_loop.cpp's philox_words), for arbitrary counters and keys: what lets the
// known-answer vectors (tests/test_philox.py) check that code on every ISA. Compiled once per ISA (isa.h).
#include <cstdint>

#include "../common/philox.h"
#include "isa.h"
#include "vec.h"

namespace rdf {
namespace cpu {
namespace RDF_ISA {
namespace {

// kBlocks blocks, one per 64-bit lane: lane l gets counter c + 4 * l and key k + 2 * l, its output goes to
// out + 4 * l.
template <int R>
void lane_blocks(const uint32_t* c, const uint32_t* k, uint32_t* out) {
  vu64 w[4], k0, k1;
  for (int l = 0; l < kBlocks; ++l) {
    for (int j = 0; j < 4; ++j) w[j][l] = c[4 * l + j];
    k0[l] = k[2 * l];
    k1[l] = k[2 * l + 1];
  }
  philox4x32_fixed<R>(w, k0, k1, WideMulHiLo());
  store_blocks(w, out);
}

template <int R>
void blocks(const uint32_t* counters, const uint32_t* keys, uint32_t* out, int64_t n) {
  int64_t b = 0;
  for (; b + kBlocks <= n; b += kBlocks) lane_blocks<R>(counters + 4 * b, keys + 2 * b, out + 4 * b);
  if (b == n) return;
  // The last n % kBlocks blocks go through the lanes too, padded with zeros, so no block takes another path.
  uint32_t c[4 * kBlocks] = {}, k[2 * kBlocks] = {}, o[4 * kBlocks];
  for (int64_t i = 0; i < 4 * (n - b); ++i) c[i] = counters[4 * b + i];
  for (int64_t i = 0; i < 2 * (n - b); ++i) k[i] = keys[2 * b + i];
  lane_blocks<R>(c, k, o);
  for (int64_t i = 0; i < 4 * (n - b); ++i) out[4 * b + i] = o[i];
}

}  // namespace

void philox4x32_blocks(const uint32_t* counters, const uint32_t* keys, uint32_t* out, int64_t n, int rounds) {
  with_fixed_rounds(rounds, [&](auto r) { blocks<decltype(r)::value>(counters, keys, out, n); });
}

}  // namespace RDF_ISA
}  // namespace cpu
}  // namespace rdf
