// Lane vectors for the per-ISA sources: GCC/Clang vector extensions sized by RDF_VEC_BYTES (16 generic,
// 32 AVX2, 64 AVX-512), so one written-out loop becomes SSE2/NEON, AVX2 or AVX-512 code by compile flags.
#pragma once
#include <cstdint>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#ifndef RDF_VEC_BYTES
#error "RDF_VEC_BYTES must be set by the build (16, 32 or 64)"
#endif

namespace rdf {
namespace cpu {

#if RDF_VEC_BYTES == 16
#define RDF_LANES 4
#elif RDF_VEC_BYTES == 32
#define RDF_LANES 8
#elif RDF_VEC_BYTES == 64
#define RDF_LANES 16
#else
#error "RDF_VEC_BYTES must be 16, 32 or 64"
#endif
constexpr int kLanes = RDF_LANES;  // 32-bit lanes per vector
typedef uint32_t vu32 __attribute__((vector_size(RDF_VEC_BYTES)));
typedef uint64_t vu64 __attribute__((vector_size(RDF_VEC_BYTES)));      // same bytes, 64-bit lanes
typedef uint64_t vu64x2 __attribute__((vector_size(2 * RDF_VEC_BYTES)));  // one 64-bit lane per vu32 lane

// Lane-wise 32x32 -> 64-bit multiply for philox4x32_fixed<R, vu32>. The even and odd 32-bit lanes are
// multiplied as zero-extended 64-bit lanes (one pmuludq each on x86) and the halves put back in place.
inline vu64 mul_even_lanes(vu64 a, vu64 m) {
#if defined(__AVX512F__) && RDF_VEC_BYTES == 64
  return reinterpret_cast<vu64>(_mm512_mul_epu32(reinterpret_cast<__m512i>(a), reinterpret_cast<__m512i>(m)));
#elif defined(__AVX2__) && RDF_VEC_BYTES == 32
  return reinterpret_cast<vu64>(_mm256_mul_epu32(reinterpret_cast<__m256i>(a), reinterpret_cast<__m256i>(m)));
#elif defined(__SSE2__) && RDF_VEC_BYTES == 16
  return reinterpret_cast<vu64>(_mm_mul_epu32(reinterpret_cast<__m128i>(a), reinterpret_cast<__m128i>(m)));
#else
  return (a & 0xFFFFFFFFull) * (m & 0xFFFFFFFFull);
#endif
}

struct VecMulHiLo {
  inline void operator()(vu32 a, uint32_t m, vu32& hi, vu32& lo) const {
    constexpr uint64_t kLow = 0xFFFFFFFFull;
    const vu64 wide = reinterpret_cast<vu64&>(a);
    const vu64 mv = vu64{} + static_cast<uint64_t>(m);
    const vu64 even = mul_even_lanes(wide, mv);
    const vu64 odd = mul_even_lanes(wide >> 32, mv);
    const vu64 lo64 = (even & kLow) | (odd << 32);
    const vu64 hi64 = (even >> 32) | (odd & ~kLow);
    lo = reinterpret_cast<const vu32&>(lo64);
    hi = reinterpret_cast<const vu32&>(hi64);
  }
};

// Index lists for __builtin_shufflevector (GCC >= 12, Clang) of two kLanes vectors (b's lanes numbered
// from kLanes): the SSE unpack patterns, repeated in every 128-bit chunk.
#define RDF_Q4(f) f(0)
#define RDF_Q8(f) f(0), f(4)
#define RDF_Q16(f) f(0), f(4), f(8), f(12)
#define RDF_QCAT2(a, b) a##b
#define RDF_QCAT(a, b) RDF_QCAT2(a, b)
#define RDF_CHUNKS(f) RDF_QCAT(RDF_Q, RDF_LANES)(f)
#define RDF_UNPACKLO32(k) k, k + RDF_LANES, k + 1, k + 1 + RDF_LANES
#define RDF_UNPACKHI32(k) k + 2, k + 2 + RDF_LANES, k + 3, k + 3 + RDF_LANES
#define RDF_UNPACKLO64(k) k, k + 1, k + RDF_LANES, k + 1 + RDF_LANES
#define RDF_UNPACKHI64(k) k + 2, k + 3, k + 2 + RDF_LANES, k + 3 + RDF_LANES

// Structure-of-arrays Philox output (c[w] = word w of kLanes consecutive blocks) written to dst in block
// order, word 0 first: a 4x4 transpose in each 128-bit chunk, then one 16-byte store per block.
inline void store_blocks(const vu32 c[4], uint32_t* dst) {
  const vu32 a = __builtin_shufflevector(c[0], c[1], RDF_CHUNKS(RDF_UNPACKLO32));
  const vu32 b = __builtin_shufflevector(c[0], c[1], RDF_CHUNKS(RDF_UNPACKHI32));
  const vu32 e = __builtin_shufflevector(c[2], c[3], RDF_CHUNKS(RDF_UNPACKLO32));
  const vu32 f = __builtin_shufflevector(c[2], c[3], RDF_CHUNKS(RDF_UNPACKHI32));
  // r[i] chunk k holds block 4k + i.
  const vu32 r[4] = {__builtin_shufflevector(a, e, RDF_CHUNKS(RDF_UNPACKLO64)),
                     __builtin_shufflevector(a, e, RDF_CHUNKS(RDF_UNPACKHI64)),
                     __builtin_shufflevector(b, f, RDF_CHUNKS(RDF_UNPACKLO64)),
                     __builtin_shufflevector(b, f, RDF_CHUNKS(RDF_UNPACKHI64))};
  for (int i = 0; i < 4; ++i)
    for (int k = 0; k < kLanes / 4; ++k)
      __builtin_memcpy(dst + 4 * (4 * k + i), reinterpret_cast<const char*>(&r[i]) + 16 * k, 16);
}

}  // namespace cpu
}  // namespace rdf
