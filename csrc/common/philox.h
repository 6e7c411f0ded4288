// Philox4x32-R counter-based generator (Salmon, Moraes, Dror, Shaw: "Parallel random numbers: as easy as
// 1, 2, 3", SC'11), written out plainly. The bijection maps a 128-bit counter and a 64-bit key to 128
// random bits; nothing is carried between calls, which is what makes every mask a pure function of
// (seed, element index) on any thread count, SIMD width or device.
//
// The rounds are a template over the word type W so the same body runs on one lane (W = uint32_t, the CPU
// scalar path and CUDA) or on many lanes at once (W = a GCC/Clang vector of uint32_t, the CPU SIMD paths):
// the only lane-width-specific piece is the 32x32->64 multiply, passed in as MulHiLo.
#pragma once
#include <cstdint>
#include <type_traits>

#include "hd.h"

namespace rdf {

constexpr uint32_t kPhiloxM0 = 0xD2511F53u;  // multiplier applied to counter word 0
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;  // multiplier applied to counter word 2
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;  // key word 0 increment (golden ratio)
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;  // key word 1 increment (sqrt(3) - 1)
constexpr int kPhiloxRounds = 10;            // Philox4x32-10, the Random123 default used everywhere here
constexpr int kPhiloxMaxRounds = 16;         // raw generators take 1..16 rounds (regdrop_fast.random)

// Scalar 32x32 -> 64-bit multiply split into its high and low words. On the device (nvcc's device pass,
// __CUDA_ARCH__ defined) the high word is __umulhi and the low word a plain 32-bit multiply: the 64-bit
// product compiled into IMAD.WIDE.U32 plus an add of a zero high part per multiply (bench/sass_budget.py).
// Same bits either way; the host path (CPU loops, and the CUDA emulation, which compiles the host side
// of the .cu files) keeps the 64-bit product.
struct ScalarMulHiLo {
  RDF_HD void operator()(uint32_t a, uint32_t m, uint32_t& hi, uint32_t& lo) const {
#if defined(__CUDA_ARCH__)
    hi = __umulhi(a, m);
    lo = a * m;
#else
    const uint64_t prod = static_cast<uint64_t>(a) * m;
    hi = static_cast<uint32_t>(prod >> 32);
    lo = static_cast<uint32_t>(prod);
#endif
  }
};

// One Philox round on counter words c[0..3] with key words (k0, k1), in place. K is uint32_t, or W itself
// for vector lanes (a key broadcast once, not per round).
template <class W, class K, class MulHiLo>
RDF_HD void philox_round(W c[4], K k0, K k1, MulHiLo mulhilo) {
  W hi0, lo0, hi1, lo1;
  mulhilo(c[0], kPhiloxM0, hi0, lo0);
  mulhilo(c[2], kPhiloxM1, hi1, lo1);
  const W n0 = hi1 ^ c[1] ^ k0;
  const W n2 = hi0 ^ c[3] ^ k1;
  c[0] = n0;
  c[1] = lo1;
  c[2] = n2;
  c[3] = lo0;
}

// Philox4x32-R with R fixed at compile time (the kernels): the key is bumped between rounds, not before
// the first, as in Random123's philox4x32_R. c is replaced by the output block.
template <int R, class W, class K, class MulHiLo = ScalarMulHiLo>
RDF_HD void philox4x32_fixed(W c[4], K k0, K k1, MulHiLo mulhilo = MulHiLo()) {
#if defined(__CUDACC__)
#pragma unroll
#endif
  for (int r = 0; r < R; ++r) {
    if (r > 0) {
      k0 += kPhiloxW0;
      k1 += kPhiloxW1;
    }
    philox_round(c, k0, k1, mulhilo);
  }
}

// U independent counters (each W, so U lane vectors on the CPU) through the same R rounds, interleaved round
// by round: the same bits as U calls of philox4x32_fixed. Where a round's multiply is a long dependency
// chain, U chains side by side in the instruction stream keep the SIMD pipes busy (csrc/cpu/vec.h,
// kPhiloxVecs).
template <int R, int U, class W, class K, class MulHiLo>
inline void philox4x32_fixed_interleaved(W (&c)[U][4], K k0, K k1, MulHiLo mulhilo) {
  for (int r = 0; r < R; ++r) {
    if (r > 0) {
      k0 += kPhiloxW0;
      k1 += kPhiloxW1;
    }
    for (int u = 0; u < U; ++u) philox_round(c[u], k0, k1, mulhilo);
  }
}

// The same with a run-time round count (the raw generator, regdrop_fast.random.philox4x32).
RDF_HD void philox4x32(uint32_t c[4], uint32_t k0, uint32_t k1, int rounds) {
  for (int r = 0; r < rounds; ++r) {
    if (r > 0) {
      k0 += kPhiloxW0;
      k1 += kPhiloxW1;
    }
    philox_round(c, k0, k1, ScalarMulHiLo());
  }
}

// Host side: calls fn(std::integral_constant<int, R>()) with R = rounds, for 1 <= rounds <= kPhiloxMaxRounds
// (nothing otherwise), so a raw generator with a run-time round count runs philox4x32_fixed<R>, the code
// the dropout kernels run, and the known-answer vectors test that code on every backend.
template <int R = 1, class Fn>
void with_fixed_rounds(int rounds, Fn&& fn) {
  if constexpr (R <= kPhiloxMaxRounds) {
    if (rounds == R) return fn(std::integral_constant<int, R>());
    with_fixed_rounds<R + 1>(rounds, fn);
  }
}

// The dropout stream (docs/rng.md): element with global index g = offset + i (mod 2^64) uses word (g & 3)
// of the block with counter (lo32(g >> 2), hi32(g >> 2), 0, 0) under key (lo32(seed), hi32(seed)).
// Counter words 2 and 3 are zero for dropout; other streams may claim other values there later.
// Block indices are g >> 2, so they wrap mod 2^62 as g wraps mod 2^64: a loop that counts blocks past the
// last one masks the index with kDropoutBlockMask.
constexpr uint64_t kDropoutBlockMask = (uint64_t{1} << 62) - 1;

RDF_HD void dropout_block(uint64_t block, uint64_t seed, uint32_t out[4]) {
  out[0] = static_cast<uint32_t>(block);
  out[1] = static_cast<uint32_t>(block >> 32);
  out[2] = 0u;
  out[3] = 0u;
  philox4x32_fixed<kPhiloxRounds>(out, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

}  // namespace rdf
