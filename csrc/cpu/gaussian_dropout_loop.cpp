// CPU iteration for Gaussian dropout over one task's elements. Compiled once per ISA (see isa.h); the values
// come from csrc/common/gaussian_dropout_element.h.
//
// A range goes in tiles of kTile elements, as dropout's: the tile's Philox blocks into `words` (the dropout
// stream, philox_words of dropout_lanes.h), then the words, pair by pair, into standard normals (kLanes pairs
// per step: the even words of two lane vectors are the pairs' first words, the odd ones their second; the
// two normals of each pair are interleaved back into element order), then the elements, kLanes at a time,
// through gaussian_value. Words and normals stay in L1; x and y are each touched once.
#include <cmath>

#if RDF_VEC_BYTES > 16 && (defined(__AVX2__) || defined(__AVX512F__))
#include <immintrin.h>
#endif

#include "../common/gaussian_dropout_element.h"
#include "dropout_lanes.h"
#include "gaussian_dropout_driver.h"
#include "isa.h"
#include "vec.h"

namespace rdf {
namespace cpu {
namespace RDF_ISA {
namespace {

constexpr int64_t kTile = 256;                      // elements per tile, as dropout's (a multiple of kLanes)
constexpr int64_t kPairStep = 2 * kLanes;           // words per transform step
constexpr int64_t kWords = kTile + 2 * kPairStep;   // room for a start up to 3 words into the first block,
                                                    // rounded up to whole steps

// Index lists of __builtin_shufflevector over two kLanes vectors (lanes of the second numbered after the
// first's): the even lanes, the odd lanes, and the two halves of an interleave.
#if RDF_VEC_BYTES == 16
#define RDF_GAUSS_EVEN 0, 2, 4, 6
#define RDF_GAUSS_ODD 1, 3, 5, 7
#define RDF_GAUSS_ZIP_LO 0, 4, 1, 5
#define RDF_GAUSS_ZIP_HI 2, 6, 3, 7
#elif RDF_VEC_BYTES == 32
#define RDF_GAUSS_EVEN 0, 2, 4, 6, 8, 10, 12, 14
#define RDF_GAUSS_ODD 1, 3, 5, 7, 9, 11, 13, 15
#define RDF_GAUSS_ZIP_LO 0, 8, 1, 9, 2, 10, 3, 11
#define RDF_GAUSS_ZIP_HI 4, 12, 5, 13, 6, 14, 7, 15
#else
#define RDF_GAUSS_EVEN 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30
#define RDF_GAUSS_ODD 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31
#define RDF_GAUSS_ZIP_LO 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23
#define RDF_GAUSS_ZIP_HI 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31
#endif

// The transform's operations on lane vectors (ScalarGaussOps is the scalar twin): the conversion is of
// integers below 2^24 (exact either way), sqrt the IEEE one of each ISA (sqrtps; the generic build's
// per-lane sqrtf, which -fno-math-errno makes the same instruction or its aarch64 equivalent).
struct LaneGaussOps {
  static vf32 to_float(vu32 v) { return __builtin_convertvector(reinterpret_cast<vi32>(v), vf32); }
  static vu32 bits_of(vf32 f) { return reinterpret_cast<vu32>(f); }
  static vf32 from_bits(vu32 u) { return reinterpret_cast<vf32>(u); }
  static vf32 sqrt(vf32 f) {
#if defined(__AVX512F__) && RDF_VEC_BYTES == 64
    return reinterpret_cast<vf32>(_mm512_sqrt_ps(reinterpret_cast<__m512>(f)));
#elif defined(__AVX2__) && RDF_VEC_BYTES == 32
    return reinterpret_cast<vf32>(_mm256_sqrt_ps(reinterpret_cast<__m256>(f)));
#else
    vf32 r;
    for (int l = 0; l < kLanes; ++l) r[l] = std::sqrt(f[l]);
    return r;
#endif
  }
};

// z[k] = the normal of word k, for k < count (count a multiple of kPairStep; words 0 and 1 are a pair).
void normals(const uint32_t* words, float* z, int64_t count) {
  for (int64_t k = 0; k < count; k += kPairStep) {
    const vu32 w0 = load_vec<vu32>(words + k), w1 = load_vec<vu32>(words + k + kLanes);
    const vu32 a = __builtin_shufflevector(w0, w1, RDF_GAUSS_EVEN);
    const vu32 b = __builtin_shufflevector(w0, w1, RDF_GAUSS_ODD);
    vf32 z0, z1;
    gaussian_pair<LaneGaussOps, vf32>(a, b, z0, z1);
    store_vec(z + k, __builtin_shufflevector(z0, z1, RDF_GAUSS_ZIP_LO));
    store_vec(z + k + kLanes, __builtin_shufflevector(z0, z1, RDF_GAUSS_ZIP_HI));
  }
}

// kLanes elements: out = in * (1 + std * z).
template <class T>
inline void apply_lanes(const T* in, T* out, const float* z, vf32 std) {
  store_lanes(out, gaussian_value<float>(load_lanes(in), load_vec<vf32>(z), std));
}
inline void apply_lanes(const double* in, double* out, const float* z, vf64 std) {
  constexpr int kHalf = kLanes / 2;
  const vf32 zv = load_vec<vf32>(z);
  const vf64 z_lo = __builtin_convertvector(__builtin_shufflevector(zv, zv, RDF_LOW_HALF32), vf64);
  const vf64 z_hi = __builtin_convertvector(__builtin_shufflevector(zv, zv, RDF_HIGH_HALF32), vf64);
  store_vec(out, gaussian_value<double>(load_vec<vf64>(in), z_lo, std));
  store_vec(out + kHalf, gaussian_value<double>(load_vec<vf64>(in + kHalf), z_hi, std));
}

template <class T>
void run_range(const GaussianPass& pass, int64_t begin, int64_t end) {
  using C = compute_t<T>;
  using V = std::conditional_t<std::is_same_v<T, double>, vf64, vf32>;
  const T* in = static_cast<const T*>(pass.in);
  T* out = static_cast<T*>(pass.out);
  const C std1 = static_cast<C>(pass.std);
  const V stdv = V{} + std1;
  // Zeroed once: a step may run past the tile's last block into words no tile wrote (its normals unused).
  alignas(64) uint32_t words[kWords] = {};
  alignas(64) float z[kWords];
  TileOutput<T, kTile> tiles(out + begin, pass.stream_out);  // vec.h
  const int64_t fetch_ahead = pass.prefetch_bytes / static_cast<int64_t>(sizeof(T));  // in elements
  for (int64_t i0 = begin; i0 < end; i0 += kTile) {
    const int64_t len = end - i0 < kTile ? end - i0 : kTile;
    // The input pass.prefetch_bytes ahead of this tile, asked for before its Philox and normals
    // (input_prefetch.h).
    if (fetch_ahead > 0 && i0 + len + fetch_ahead <= end)
      prefetch_lines(in + i0 + fetch_ahead, in + i0 + len + fetch_ahead);
    T* const y = tiles.at(i0 - begin);  // element i0's output
    const uint64_t g0 = pass.offset + static_cast<uint64_t>(i0);  // wraps mod 2^64 by design
    const int64_t skip = static_cast<int64_t>(g0 & 3u);
    const int64_t n_blocks = (skip + len + 3) / 4;
    philox_words(g0 >> 2, n_blocks, pass.seed, words);
    normals(words, z, (4 * n_blocks + kPairStep - 1) / kPairStep * kPairStep);
    const float* zt = z + skip;
    int64_t j = 0;
    for (; j + kLanes <= len; j += kLanes) apply_lanes(in + i0 + j, y + j, zt + j, stdv);
    for (; j < len; ++j) gaussian_element(in[i0 + j], y[j], zt[j], std1);
    tiles.done(len);
  }
  tiles.end();
}

}  // namespace

void gaussian_dropout_range(const GaussianPass& pass, int64_t begin, int64_t end) {
  dispatch_dtype(pass.dtype, [&](auto tag) { run_range<decltype(tag)>(pass, begin, end); });
}

}  // namespace RDF_ISA
}  // namespace cpu
}  // namespace rdf
