// Lane vectors for the per-ISA sources: GCC/Clang vector extensions sized by RDF_VEC_BYTES (16 generic,
// 32 AVX2, 64 AVX-512), so one written-out loop becomes SSE2/NEON, AVX2 or AVX-512 code by compile flags.
// The few operations the extensions express poorly (an even-lane widening multiply, a movemask,
// half-precision and bfloat16 conversion) use AVX2/AVX-512 intrinsics in those builds. The generic build
// uses no intrinsics at all, so the code aarch64 and other architectures run is the code tested on x86 too.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#if RDF_VEC_BYTES > 16 && (defined(__AVX2__) || defined(__AVX512F__))
#include <immintrin.h>
#endif

#include "../common/dtypes.h"

#ifndef RDF_VEC_BYTES
#error "RDF_VEC_BYTES must be set by the build (16, 32 or 64)"
#endif
#ifndef RDF_ISA
#error "RDF_ISA must be set by the build (generic, avx2 or avx512)"
#endif

namespace rdf {
namespace cpu {
// Per-ISA like the sources that include this header (isa.h): the vector types are as wide as this
// translation unit's flags allow, so nothing here may be shared with another ISA's copy. Every function
// is static (RDF_VEC_FN) in rdf::cpu::<isa>: a copy the compiler keeps out of line stays in its own
// object, so the linker can never hand one ISA's copy to another's callers. Every vector type is at most
// the ISA's width (float64 values travel as two vf64 halves of a kLanes group, see Lanes<double> in dropout_lanes.h), so
// no signature depends on an ABI the flags do not give (GCC's -Wpsabi stays on and silent).
namespace RDF_ISA {

#define RDF_VEC_FN static inline

constexpr int kLanes = RDF_VEC_BYTES / 4;   // 32-bit lanes per vector
constexpr int kBlocks = RDF_VEC_BYTES / 8;  // Philox blocks per vector (one per 64-bit lane)
// Lane vectors of Philox blocks the dropout stream generates side by side (philox4x32_fixed_interleaved):
// independent chains of rounds, so that one chain's multiply latency is covered by the others' work.
// - generic: no 32x32->64 lane multiply to call; its 64-bit lane product compiles to a long chain (SSE2:
//   three pmuludq plus shifts and adds): four chains generated masks 1.6-2.2x faster than one.
// - AVX-512: four. On a Zen 4 (512-bit operations in two halves) one chain is latency bound: mask-only 1.80
//   -> 2.30 G words/s per thread with four (two: 1.95); on the Zen 5 of the first measurement four were
//   no faster and no slower (BENCHMARKS.md, "Philox"). 16 of the 32 vector registers hold the four chains.
// - AVX2: two. On a Zen 4 the generation alone (philox_words, one thread; a /tmp program linking it with
//   one, two and four chains side by side, BENCHMARKS.md "Philox generation per core") ran 1.38-1.40 G
//   words/s with one chain, 1.62-1.67 with two, 1.28-1.29 with four (16 registers: four chains spill);
//   earlier measurements on other machines found two no faster than one.
constexpr int kPhiloxVecs = RDF_VEC_BYTES == 32 ? 2 : 4;

typedef uint32_t vu32 __attribute__((vector_size(RDF_VEC_BYTES)));
typedef int32_t vi32 __attribute__((vector_size(RDF_VEC_BYTES)));
typedef uint64_t vu64 __attribute__((vector_size(RDF_VEC_BYTES)));
typedef float vf32 __attribute__((vector_size(RDF_VEC_BYTES)));
typedef double vf64 __attribute__((vector_size(RDF_VEC_BYTES)));   // kLanes / 2 doubles
typedef int64_t vi64 __attribute__((vector_size(RDF_VEC_BYTES)));  // mask for vf64
typedef uint16_t vu16 __attribute__((vector_size(RDF_VEC_BYTES / 2)));  // kLanes half words

template <class V>
RDF_VEC_FN V load_vec(const void* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class V>
RDF_VEC_FN void store_vec(void* p, V v) {
  std::memcpy(p, &v, sizeof v);
}

// Non-temporal stores of n bytes (a multiple of 64) from src to dst (64-byte aligned): whole cache lines
// written without the read for ownership a plain store makes of each line, for outputs too large to stay in
// the caches. Follow a range of them with stream_fence() before another thread may read dst: non-temporal
// stores are not ordered with later stores. The generic build has none (it uses no intrinsics): there
// kStreamStores is false and TileOutput writes directly; stream_lines' plain copy only keeps it compiling.
#if RDF_VEC_BYTES > 16 && (defined(__AVX2__) || defined(__AVX512F__))
constexpr bool kStreamStores = true;
#else
constexpr bool kStreamStores = false;
#endif
RDF_VEC_FN void stream_lines(void* dst, const void* src, int64_t n) {
  char* d = static_cast<char*>(dst);
  const char* s = static_cast<const char*>(src);
  for (int64_t i = 0; i < n; i += 64) {
#if defined(__AVX512F__) && RDF_VEC_BYTES == 64
    _mm512_stream_si512(reinterpret_cast<__m512i*>(d + i), _mm512_loadu_si512(s + i));
#elif defined(__AVX2__) && RDF_VEC_BYTES == 32
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d + i),
                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i)));
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d + i + 32),
                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i + 32)));
#else
    std::memcpy(d + i, s + i, 64);
#endif
  }
}
RDF_VEC_FN void stream_fence() {
#if RDF_VEC_BYTES > 16 && (defined(__AVX2__) || defined(__AVX512F__))
  _mm_sfence();
#endif
}

// An output range [dst, dst + n) written tile by tile through a buffer in L1, so that memory receives whole
// lines by non-temporal stores wherever the tiles' bytes may fall: each tile's bytes are put after the bytes
// held back from the tile before (less than a line), every whole line is streamed, the rest held back. The
// range's first and last lines may hold a neighbouring range's bytes (another task's): of those only the
// range's own bytes are stored, plainly. kCapacity: the most bytes of one tile. finish() ends the range;
// a stream_fence() after the task's last range orders its streamed lines before the task ends.
template <int64_t kCapacity>
struct LineStream {
  alignas(64) unsigned char region[kCapacity + 128];
  unsigned char* buf;  // in region, read only through memcpy and unaligned vector loads
  char* line;     // the line in memory that buf[0..64) stands for (64-byte aligned)
  int64_t held;   // bytes of buf in use, from buf[0]; buf[0..first) is not the range's
  int64_t first;  // the range's offset in its first line until that line is stored, then 0
  // buf starts 64 - first bytes into a line of region, so that the tiles' bytes (each tile a whole number
  // of lines, from buf + held, held = first modulo 64) are stored on line boundaries: with buf aligned
  // instead, an output not 64-byte aligned (NumPy's large arrays start 16 bytes past a page) made every
  // vector store of a tile straddle two lines (BENCHMARKS.md, "the staging stores on line boundaries").
  explicit LineStream(void* dst) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(dst);
    line = reinterpret_cast<char*>(a - a % 64);
    held = first = static_cast<int64_t>(a % 64);
    buf = region + (64 - first) % 64;
  }
  // Where the next tile's bytes go (the address of its first byte in memory, modulo 64).
  void* next() { return buf + held; }
  // The tile's `bytes` are at next(): store the whole lines, hold back the rest.
  void commit(int64_t bytes) {
    const int64_t total = held + bytes, lines = total / 64;
    int64_t streamed = 0;
    if (lines > 0 && first > 0) {
      std::memcpy(line + first, buf + first, static_cast<size_t>(64 - first));
      first = 0;
      streamed = 64;
    }
    stream_lines(line + streamed, buf + streamed, 64 * lines - streamed);
    line += 64 * lines;
    held = total - 64 * lines;
    if (lines > 0) std::memcpy(buf, buf + 64 * lines, static_cast<size_t>(held));
  }
  // The held-back bytes, plainly.
  void finish() { std::memcpy(line + first, buf + first, static_cast<size_t>(held - first)); }
};

// Prefetch into L1 the lines of [from, to) (input_prefetch.h); nothing when from >= to. A hint only: it never
// faults and changes no value.
RDF_VEC_FN void prefetch_lines(const void* from, const void* to) {
  const char* const first = static_cast<const char*>(from);
  const ptrdiff_t bytes = static_cast<const char*>(to) - first;
  for (ptrdiff_t k = 0; k < bytes; k += 64) __builtin_prefetch(first + k, 0, 3);  // never past `to`
}

// A range of out written tile by tile (tiles of at most kTileElems elements, in order, each after the last):
// straight to memory, or through a LineStream when `stream` (the call's output_streaming.h decision, and an
// ISA with non-temporal stores). at(i) is where the tile starting at element i writes element i; done(len)
// ends that tile; end() ends the range, fencing unless the caller fences once after several ranges.
template <class T, int64_t kTileElems>
class TileOutput {
 public:
  TileOutput(T* out, bool stream)
      : out_(out), stream_(kStreamStores && stream && out != nullptr), lines_(stream_ ? out : nullptr) {}
  bool streams() const { return stream_; }
  T* at(int64_t i) { return stream_ ? reinterpret_cast<T*>(lines_.next()) : out_ == nullptr ? nullptr : out_ + i; }
  void done(int64_t len) {
    if (stream_) lines_.commit(len * static_cast<int64_t>(sizeof(T)));
  }
  void end(bool fence = true) {
    if (!stream_) return;
    lines_.finish();
    if (fence) stream_fence();
  }

 private:
  T* out_;
  bool stream_;
  LineStream<kTileElems * static_cast<int64_t>(sizeof(T))> lines_;
};

// Index lists for __builtin_shufflevector (GCC >= 12, Clang); the second operand's lanes are numbered
// after the first's.
#if RDF_VEC_BYTES == 16
#define RDF_EVEN32_PAIRS 0, 4, 2, 6
#define RDF_SWAP32 1, 0, 3, 2
#define RDF_BLOCKS_LO64 0, 2
#define RDF_BLOCKS_HI64 1, 3
#define RDF_LOW_HALF32 0, 1
#define RDF_HIGH_HALF32 2, 3
#elif RDF_VEC_BYTES == 32
#define RDF_EVEN32_PAIRS 0, 8, 2, 10, 4, 12, 6, 14
#define RDF_SWAP32 1, 0, 3, 2, 5, 4, 7, 6
#define RDF_BLOCKS_LO64 0, 4, 1, 5
#define RDF_BLOCKS_HI64 2, 6, 3, 7
#define RDF_LOW_HALF32 0, 1, 2, 3
#define RDF_HIGH_HALF32 4, 5, 6, 7
#elif RDF_VEC_BYTES == 64
#define RDF_EVEN32_PAIRS 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30
#define RDF_SWAP32 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14
#define RDF_BLOCKS_LO64 0, 8, 1, 9, 2, 10, 3, 11
#define RDF_BLOCKS_HI64 4, 12, 5, 13, 6, 14, 7, 15
#define RDF_LOW_HALF32 0, 1, 2, 3, 4, 5, 6, 7
#define RDF_HIGH_HALF32 8, 9, 10, 11, 12, 13, 14, 15
#else
#error "RDF_VEC_BYTES must be 16, 32 or 64"
#endif

// Philox on kBlocks blocks at once, one block per 64-bit lane, each 32-bit word in the lane's low half.
// Only the low halves are meaningful: every step (xor, key add, the multiply reading low halves only)
// computes low bits from low bits, so whatever the high halves hold never reaches a result.
struct WideMulHiLo {
  inline void operator()(vu64 a, uint32_t m, vu64& hi, vu64& lo) const {
#if defined(__AVX512F__) && RDF_VEC_BYTES == 64
    lo = reinterpret_cast<vu64>(_mm512_mul_epu32(reinterpret_cast<__m512i>(a), _mm512_set1_epi64(m)));
#elif defined(__AVX2__) && RDF_VEC_BYTES == 32
    lo = reinterpret_cast<vu64>(_mm256_mul_epu32(reinterpret_cast<__m256i>(a), _mm256_set1_epi64x(m)));
#else
    lo = (a & 0xFFFFFFFFull) * static_cast<uint64_t>(m);
#endif
    // The high word moved to the low half by a 32-bit lane swap (a shuffle, off the multiply port).
    const vu32 w = reinterpret_cast<vu32>(lo);
    hi = reinterpret_cast<vu64>(__builtin_shufflevector(w, w, RDF_SWAP32));
  }
};

// Blocks from the wide layout (c[w] lane b = word w of block b) stored to dst in block order.
RDF_VEC_FN void store_blocks(const vu64 c[4], uint32_t* dst) {
  const vu64 c01 = reinterpret_cast<vu64>(
      __builtin_shufflevector(reinterpret_cast<vu32>(c[0]), reinterpret_cast<vu32>(c[1]), RDF_EVEN32_PAIRS));
  const vu64 c23 = reinterpret_cast<vu64>(
      __builtin_shufflevector(reinterpret_cast<vu32>(c[2]), reinterpret_cast<vu32>(c[3]), RDF_EVEN32_PAIRS));
  store_vec(dst, __builtin_shufflevector(c01, c23, RDF_BLOCKS_LO64));
  store_vec(dst + 2 * kBlocks, __builtin_shufflevector(c01, c23, RDF_BLOCKS_HI64));
}

// Bit l of the result = lane l of a -1/0 mask.
RDF_VEC_FN uint32_t movemask(vi32 m) {
#if defined(__AVX512DQ__) && RDF_VEC_BYTES == 64
  return _mm512_movepi32_mask(reinterpret_cast<__m512i>(m));
#elif defined(__AVX2__) && RDF_VEC_BYTES == 32
  return static_cast<uint32_t>(_mm256_movemask_ps(reinterpret_cast<__m256>(m)));
#else
  uint32_t bits = 0;
  for (int l = 0; l < kLanes; ++l) bits |= static_cast<uint32_t>(m[l] & 1) << l;
  return bits;
#endif
}

// Bit l of the result = (w[l] >= t[l]), unsigned: kLanes keep decisions packed as the mask stores them.
// On AVX-512 the comparison itself writes a mask register, which is these bits; movemask of the vector
// comparison would make the compiler expand that register to a -1/0 vector and read its sign bits back, two
// more instructions per 16 decisions. A loop that also needs the lanes writes `w >= t` beside this call: the
// compiler then issues two comparisons (AVX-512) or one comparison and a movemask (the others).
RDF_VEC_FN uint32_t compare_bits(vu32 w, vu32 t) {
#if defined(__AVX512F__) && RDF_VEC_BYTES == 64
  return _mm512_cmpge_epu32_mask(reinterpret_cast<__m512i>(w), reinterpret_cast<__m512i>(t));
#else
  return movemask(reinterpret_cast<vi32>(w >= t));
#endif
}

// -1/0 mask from bits 0..kLanes-1 of `bits`.
RDF_VEC_FN vi32 mask_from_bits(uint32_t bits) {
  vu32 lane_bit;
  for (int l = 0; l < kLanes; ++l) lane_bit[l] = 1u << l;
  return reinterpret_cast<vi32>(((vu32{} + bits) & lane_bit) != 0);
}

// kLanes storage values <-> vf32, rounding once on store with the same round-to-nearest-even rules as the
// scalar conversions in dtypes.h. (kLanes doubles are two vf64: see split_mask.) store_lanes returns the
// stored values as load_lanes would read them back, from registers: a loop that needs the rounded value
// (the epilogue backward's column sums of dx) then does not reload what it just stored; callers that do
// not use it pay nothing (the compiler drops the computation).
// The float load stays a plain load: GCC would fold it into the masked multiply of
// dropout_value (vmulps mem, ..., {k}{z}), a zero-masked memory operand, which on the AMD EPYC (Zen 5) of
// BENCHMARKS.md ("AVX-512 masked loads") ran backward from bits 4-5x slower than AVX2. The empty asm only
// hides the value from the folding; it emits nothing.
RDF_VEC_FN vf32 load_lanes(const float* p) {
  vf32 v = load_vec<vf32>(p);
#if RDF_VEC_BYTES == 64
  __asm__("" : "+v"(v));
#endif
  return v;
}
RDF_VEC_FN vf32 store_lanes(float* p, vf32 v) {
  store_vec(p, v);
  return v;
}

// bfloat16 with AVX-512 (BW, DQ): GCC compiled the generic form below to five instructions for the widening
// load (a 256-bit load, a lane extract, two 256-bit zero-extends and an insert) and, for the store, a shift
// and a two-table word permute (vpermt2w) after a four-instruction NaN test; at 17 vector instructions per
// 16 elements a bfloat16 pass from stored bits ran well below the copy limit (BENCHMARKS.md, "variants
// section, bfloat16 and alpha dropout"). Here: one zero-extending load and a shift; the rounding
// u + 0x7FFF + bit 16 of u left in the high half of each lane (an add, a bit test and a masked add), NaN
// found by one class test and replaced by sign | 0x7FC0 there, and the high halves gathered by one word
// permute. The same bits as float_to_bfloat16 for every one of the 2^32 inputs (tests/test_bf16_lanes.py
// checks them all).
#if defined(__AVX512BW__) && defined(__AVX512DQ__) && RDF_VEC_BYTES == 64
// (Shifts, adds and logic as vector-extension operators, and the maskz forms with every lane: the unmasked
// intrinsics' undefined sources trip GCC 12's -Wuninitialized under -Wall.)
RDF_VEC_FN vf32 load_lanes(const bfloat16_t* p) {
  const vu32 wide = reinterpret_cast<vu32>(_mm512_maskz_cvtepu16_epi32(0xFFFF, load_vec<__m256i>(p)));
  return reinterpret_cast<vf32>(wide << 16);
}
RDF_VEC_FN vf32 store_lanes(bfloat16_t* p, vf32 v) {
  const vu32 u = reinterpret_cast<vu32>(v);
  const __mmask16 odd = _mm512_test_epi32_mask(reinterpret_cast<__m512i>(u), _mm512_set1_epi32(0x10000));
  const __m512i up = reinterpret_cast<__m512i>(u + 0x7FFFu);
  __m512i r = _mm512_mask_add_epi32(up, odd, up, _mm512_set1_epi32(1));
  const __mmask16 nan = _mm512_fpclass_ps_mask(reinterpret_cast<__m512>(v), 0x81);  // quiet or signaling NaN
  r = _mm512_mask_mov_epi32(r, nan, reinterpret_cast<__m512i>((u & 0x80000000u) | 0x7FC00000u));
  // word 2l + 1 (lane l's high half) to word l
  const __m512i odd_words = _mm512_set_epi16(63, 61, 59, 57, 55, 53, 51, 49, 47, 45, 43, 41, 39, 37, 35, 33, 31, 29,
                                             27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  const __m512i packed = _mm512_maskz_permutexvar_epi16(~__mmask32{0}, odd_words, r);
  std::memcpy(p, &packed, kLanes * sizeof(bfloat16_t));  // its low half
  return reinterpret_cast<vf32>(reinterpret_cast<vu32>(r) & 0xFFFF0000u);  // a NaN lane's low half is 0 too
}
#elif defined(__AVX2__) && RDF_VEC_BYTES == 32
// bfloat16 with AVX2: the generic form's widening load became two 128-bit zero-extends and an insert, its
// NaN test an unsigned compare emulated by a minimum and an equality, its narrowing a mask, a pack and a
// permute. Here one zero-extending load; the NaN test as a signed compare (u & 0x7FFFFFFF is >= 0 as a
// signed lane); the pack without the mask (every rounded lane is <= 0xFFFF, so the saturating pack keeps it)
// and one permute bringing the two halves' words together. tests/test_bf16_lanes.py checks every input.
RDF_VEC_FN vf32 load_lanes(const bfloat16_t* p) {
  const vu32 wide = reinterpret_cast<vu32>(_mm256_cvtepu16_epi32(load_vec<__m128i>(p)));
  return reinterpret_cast<vf32>(wide << 16);
}
RDF_VEC_FN vf32 store_lanes(bfloat16_t* p, vf32 v) {
  const vu32 u = reinterpret_cast<vu32>(v);
  const vu32 rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  const vu32 quiet_nan = ((u >> 16) & 0x8000u) | 0x7FC0u;  // canonical, as float_to_bfloat16
  const vi32 nan = reinterpret_cast<vi32>(u & 0x7FFFFFFFu) > 0x7F800000;
  const __m256i out = reinterpret_cast<__m256i>(nan ? quiet_nan : rounded);
  // 64-bit words 0 and 2 of the in-lane pack hold lanes 0-3 and 4-7
  const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(out, out), 0x08);
  std::memcpy(p, &packed, kLanes * sizeof(bfloat16_t));  // its low half
  return reinterpret_cast<vf32>(reinterpret_cast<vu32>(out) << 16);
}
#else
RDF_VEC_FN vf32 load_lanes(const bfloat16_t* p) {
  const vu32 wide = __builtin_convertvector(load_vec<vu16>(p), vu32) << 16;
  return reinterpret_cast<vf32>(wide);
}
RDF_VEC_FN vf32 store_lanes(bfloat16_t* p, vf32 v) {
  const vu32 u = reinterpret_cast<vu32>(v);
  const vu32 rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  const vu32 quiet_nan = ((u >> 16) & 0x8000u) | 0x7FC0u;  // canonical, as float_to_bfloat16
  const vu32 out = ((u & 0x7FFFFFFFu) > 0x7F800000u) ? quiet_nan : rounded;
  store_vec(p, __builtin_convertvector(out, vu16));
  return reinterpret_cast<vf32>(out << 16);
}
#endif

RDF_VEC_FN vf32 load_lanes(const half_t* p) {
#if defined(__AVX512F__) && RDF_VEC_BYTES == 64
  return reinterpret_cast<vf32>(_mm512_cvtph_ps(load_vec<__m256i>(p)));
#elif defined(__F16C__) && RDF_VEC_BYTES == 32
  return reinterpret_cast<vf32>(_mm256_cvtph_ps(load_vec<__m128i>(p)));
#else
  vf32 v;
  for (int l = 0; l < kLanes; ++l) v[l] = half_to_float(p[l].bits);
  return v;
#endif
}
RDF_VEC_FN vf32 store_lanes(half_t* p, vf32 v) {
#if defined(__AVX512F__) && RDF_VEC_BYTES == 64
  const __m256i h =
      _mm512_cvtps_ph(reinterpret_cast<__m512>(v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  store_vec(p, h);
  return reinterpret_cast<vf32>(_mm512_cvtph_ps(h));
#elif defined(__F16C__) && RDF_VEC_BYTES == 32
  const __m128i h = _mm256_cvtps_ph(reinterpret_cast<__m256>(v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  store_vec(p, h);
  return reinterpret_cast<vf32>(_mm256_cvtph_ps(h));
#else
  vf32 stored;
  for (int l = 0; l < kLanes; ++l) {
    p[l].bits = float_to_half(v[l]);
    stored[l] = half_to_float(p[l].bits);
  }
  return stored;
#endif
}

// p[0..n) = v, kLanes elements per store (a vector of T's bits, whatever T is). std::fill over the 2-byte
// storage structs (half_t, bfloat16_t) compiled to one 16-bit store per element, which held bfloat16
// dropout2d / drop_path (half their runs dropped at p = 0.5) near half the copy limit (BENCHMARKS.md,
// "variants section, bfloat16 and alpha dropout").
template <class T>
RDF_VEC_FN void fill_lanes(T* p, int64_t n, T v) {
  T block[kLanes];
  for (int l = 0; l < kLanes; ++l) block[l] = v;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) std::memcpy(p + i, block, sizeof block);
  for (; i < n; ++i) p[i] = v;
}

// A kLanes-lane -1/0 mask as the two vi64 masks of the vf64 halves holding the same kLanes elements.
RDF_VEC_FN void split_mask(vi32 m, vi64& lo, vi64& hi) {
  lo = __builtin_convertvector(__builtin_shufflevector(m, m, RDF_LOW_HALF32), vi64);
  hi = __builtin_convertvector(__builtin_shufflevector(m, m, RDF_HIGH_HALF32), vi64);
}

#undef RDF_VEC_FN

}  // namespace RDF_ISA
}  // namespace cpu
}  // namespace rdf
