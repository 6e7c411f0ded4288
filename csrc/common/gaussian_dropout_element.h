// The element-level body of Gaussian dropout (multiplicative N(1, p / (1 - p)) noise, Keras GaussianDropout),
// shared by the CPU loops and the CUDA kernels. docs/rng.md ("Gaussian noise") specifies the transform;
// python/regdrop_fast/reference/gaussian_dropout.py is the same arithmetic in NumPy.
//
// Why it is bit-identical everywhere: a pair of dropout-stream words becomes two standard normals by
// Box-Muller, with log, sin and cos replaced by fixed polynomials evaluated here, in this order, using only
// float32 +, -, *, / and sqrt, each correctly rounded (IEEE round to nearest even) on x86 (SSE, AVX2,
// AVX-512 alike), aarch64, CUDA (nvcc's defaults: -prec-div and -prec-sqrt on, no FTZ) and NumPy. The build
// forbids contraction into FMA (-ffp-contract=off, nvcc --fmad=false), so every operation below rounds
// exactly once where it stands. Integer <-> float conversions are of integers below 2^24 (exact), and the
// range reductions are integer bit operations. No libm function is called.
//
// Every function is a template over the float type F and the 32-bit unsigned type U, so one body runs on a
// scalar (F = float, U = uint32_t: the CPU tails, CUDA, the emulation) or on CPU lane vectors (F = vf32,
// U = vu32: GCC/Clang vector extensions, whose comparisons give -1/0 lane masks and whose `m ? a : b`
// selects per lane). The few operations that the two spell differently come in as Ops (below for scalars;
// csrc/cpu/gaussian_dropout_loop.cpp has the lane version): to_float (an integer below 2^24, exact),
// bits_of / from_bits (reinterpretation) and sqrt (correctly rounded).
#pragma once
#include <cmath>
#include <cstdint>

#include "dtypes.h"
#include "hd.h"

namespace rdf {

// The scalar operations of the transform.
struct ScalarGaussOps {
  RDF_HD static float to_float(uint32_t v) { return static_cast<float>(static_cast<int32_t>(v)); }
  RDF_HD static uint32_t bits_of(float f) { return float_bits(f); }
  RDF_HD static float from_bits(uint32_t u) { return bits_float(u); }
  RDF_HD static float sqrt(float f) {
#if defined(__CUDA_ARCH__)
    return __fsqrt_rn(f);
#else
    return std::sqrt(f);
#endif
  }
};

// Polynomial coefficients, written as hexadecimal float32 literals so C++, CUDA and Python read the same
// bits (the reference takes them from these lines: tests/test_gaussian_dropout.py checks they agree).
// log: ln(m) = 2 atanh(s), s = (m - 1) / (m + 1), by its Taylor series s + s^3/3 + ... + s^11/11; with
// |s| <= 0.1716 (m in [sqrt(1/2), sqrt(2))) the first omitted term is below 2^-34 relative.
constexpr float kGaussLog3 = 0x1.555556p-2f;   // 1/3
constexpr float kGaussLog5 = 0x1.99999ap-3f;   // 1/5
constexpr float kGaussLog7 = 0x1.24924ap-3f;   // 1/7
constexpr float kGaussLog9 = 0x1.c71c72p-4f;   // 1/9
constexpr float kGaussLog11 = 0x1.745d18p-4f;  // 1/11
constexpr float kGaussLn2 = 0x1.62e430p-1f;    // ln 2
// sin and cos of phi = (pi/4) t for t in [-1, 1], by their Taylor series in t (coefficients (pi/4)^k / k!
// with the signs of the series): sin to t^9, cos to t^10; the first omitted terms are below 2^-29.
constexpr float kGaussSin1 = 0x1.921fb6p-1f;
constexpr float kGaussSin3 = -0x1.4abbcep-4f;
constexpr float kGaussSin5 = 0x1.466bc6p-9f;
constexpr float kGaussSin7 = -0x1.32d2ccp-15f;
constexpr float kGaussSin9 = 0x1.507834p-22f;
constexpr float kGaussCos2 = -0x1.3bd3ccp-2f;
constexpr float kGaussCos4 = 0x1.03c1f0p-6f;
constexpr float kGaussCos6 = -0x1.55d3c8p-12f;
constexpr float kGaussCos8 = 0x1.e1f506p-19f;
constexpr float kGaussCos10 = -0x1.a6d1f2p-26f;

// The radius sqrt(-2 ln u) of Box-Muller from the pair's first word a: u = k * 2^-24 with k = (a >> 8) | 1,
// an odd integer below 2^24 (so u in [2^-24, 1 - 2^-24], never 0 or 1, and exact in float32).
template <class Ops, class F, class U>
RDF_HD F gaussian_radius(U a) {
  const F u = Ops::to_float((a >> 8u) | 1u) * 0x1p-24f;
  // u = 2^e * m with m in [sqrt(1/2), sqrt(2)): adding (1 - sqrt(1/2)) in the bit pattern carries into the
  // exponent field exactly when u's significand is >= sqrt(2) (then m is that significand / 2). u >= 2^-24
  // keeps every sum positive, so unsigned arithmetic is exact here.
  const U bits = Ops::bits_of(u);
  // 0x3F3504F3 is float32(sqrt(1/2)).
  const U biased = (bits + (0x3F800000u - 0x3F3504F3u)) >> 23u;  // e + 127
  const F e = Ops::to_float(biased) - 127.0f;
  const F m = Ops::from_bits(bits - ((biased - 127u) << 23u));
  const F f = m - 1.0f;  // exact (Sterbenz: m in [1/2, 2])
  const F s = f / (f + 2.0f);
  const F s2 = s * s;
  F poly = kGaussLog9 + s2 * kGaussLog11;  // Horner, innermost first
  poly = kGaussLog7 + s2 * poly;
  poly = kGaussLog5 + s2 * poly;
  poly = kGaussLog3 + s2 * poly;
  const F half_ln_m = s + s * (s2 * poly);
  const F ln_u = e * kGaussLn2 + (half_ln_m + half_ln_m);
  return Ops::sqrt(ln_u * -2.0f);
}

// cos and sin of the Box-Muller angle 2 pi (b >> 8) / 2^24 from the pair's second word b. The angle is
// q * (pi/2) + (pi/4) t: the quarter turn q and t in [-1, 1) come from the integer bits (c = the 24-bit angle
// moved on by 1/8 turn, q its top two bits, t its other 22 centred), the polynomials give cos and sin of
// (pi/4) t, and q rotates them by swaps and sign changes only.
template <class Ops, class F, class U>
RDF_HD void gaussian_angle(U b, F& cos_out, F& sin_out) {
  const U c = ((b >> 8u) + 0x200000u) & 0xFFFFFFu;
  const U q = c >> 22u;
  const F t = (Ops::to_float(c & 0x3FFFFFu) - 2097152.0f) * 0x1p-21f;  // exact: (c mod 2^22 - 2^21) / 2^21
  const F t2 = t * t;
  F sp = kGaussSin7 + t2 * kGaussSin9;
  sp = kGaussSin5 + t2 * sp;
  sp = kGaussSin3 + t2 * sp;
  sp = kGaussSin1 + t2 * sp;
  const F sin_phi = t * sp;
  F cp = kGaussCos8 + t2 * kGaussCos10;
  cp = kGaussCos6 + t2 * cp;
  cp = kGaussCos4 + t2 * cp;
  cp = kGaussCos2 + t2 * cp;
  const F cos_phi = 1.0f + t2 * cp;
  const auto odd = (q & 1u) != 0u;         // q = 1, 3: cos and sin trade places
  const auto neg_cos = ((q + 1u) & 2u) != 0u;  // q = 1, 2
  const auto neg_sin = (q & 2u) != 0u;     // q = 2, 3
  const F x0 = odd ? sin_phi : cos_phi;
  const F y0 = odd ? cos_phi : sin_phi;
  cos_out = neg_cos ? -x0 : x0;
  sin_out = neg_sin ? -y0 : y0;
}

// The two standard normals of one pair of words: z0 = r cos(theta) for the pair's even element (global
// index 2P), z1 = r sin(theta) for its odd one (2P + 1); a = the even element's word, b = the odd one's.
template <class Ops, class F, class U>
RDF_HD void gaussian_pair(U a, U b, F& z0, F& z1) {
  const F r = gaussian_radius<Ops, F>(a);
  F c, s;
  gaussian_angle<Ops, F>(b, c, s);
  z0 = r * c;
  z1 = r * s;
}

// The noisy value of one element in its compute type C (float, or double for float64: z is then widened
// exactly): x * (1 + std * z), S the scalar compute type. A multiply for every element: NaN and inf propagate.
// C may be a CPU lane vector of S, as in dropout_value.
template <class S, class C>
RDF_HD C gaussian_value(C x, C z, C std) {
  return x * (S(1) + std * z);
}

// Storage-level element: load, compute, round once, store.
template <class T>
RDF_HD void gaussian_element(const T& in, T& out, float z, compute_t<T> std) {
  store(out, gaussian_value<compute_t<T>>(load(in), static_cast<compute_t<T>>(z), std));
}

}  // namespace rdf
