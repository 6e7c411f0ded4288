// Storage dtypes, their compute types, exact conversions, and the one dtype dispatch of the project.
//
// Half types are stored as raw 16-bit patterns and computed in float32; each result is rounded to the
// storage type exactly once, round-to-nearest-even, which is what NumPy/ml_dtypes' astype does. On the host
// the conversions are pure integer code so they give the same bits on any CPU under any FTZ/DAZ mode; the
// NumPy reference reaches the same bits through ml_dtypes. On the device (__CUDA_ARCH__) they are the
// hardware conversions, which round the same way (the integer code cost ~4x the whole dropout kernel's
// other work per element: bench/sass_budget.py); only NaN is handled apart where the CPU's bits must hold.
#pragma once
#include <cstdint>
#include <cstring>
#include <stdexcept>

#include "hd.h"

#if defined(__CUDA_ARCH__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace rdf {

// Codes shared with the Python layer (python/regdrop_fast/_checks.py: DTYPE_CODES).
enum class DType : int { kFloat32 = 0, kFloat64 = 1, kFloat16 = 2, kBFloat16 = 3 };

// Bytes per element of dt.
constexpr int64_t dtype_bytes(DType dt) { return dt == DType::kFloat64 ? 8 : dt == DType::kFloat32 ? 4 : 2; }

struct half_t {
  uint16_t bits;
};
struct bfloat16_t {
  uint16_t bits;
};

template <class T>
struct ComputeOf {
  using type = float;
};
template <>
struct ComputeOf<double> {
  using type = double;
};
template <class T>
using compute_t = typename ComputeOf<T>::type;

RDF_HD uint32_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}
RDF_HD float bits_float(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

// IEEE binary16 -> binary32, exact for every input (subnormals normalized by integer shifts). On the device
// cvt.f32.f16, also exact (subnormals included; a NaN stays a NaN, and any arithmetic on it gives the GPU's
// canonical NaN anyway: docs/cuda.md).
RDF_HD float half_to_float(uint16_t h) {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(h));
#else
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  if (exp == 0x1Fu) return bits_float(sign | 0x7F800000u | (mant << 13));
  if (exp == 0) {
    if (mant == 0) return bits_float(sign);
    exp = 113;  // 127 - 15 + 1: the exponent of a value whose leading mantissa bit is bit 10
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --exp;
    }
    return bits_float(sign | (exp << 23) | ((mant & 0x3FFu) << 13));
  }
  return bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
#endif
}

// binary32 -> binary16, round to nearest even; overflow goes to inf, NaN stays a quiet NaN. On the device
// cvt.rn.f16.f32: the same rounding, overflow and subnormals; a NaN becomes the canonical 0x7FFF, the
// documented GPU difference for NaN results (docs/cuda.md), so no fix-up.
RDF_HD uint16_t float_to_half(float f) {
#if defined(__CUDA_ARCH__)
  return __half_as_ushort(__float2half_rn(f));
#else
  const uint32_t u = float_bits(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u | ((a >> 13) & 0x3FFu));
  if (a >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // >= 65520 rounds to inf
  if (a >= 0x38800000u) {                                              // normal half range
    uint32_t h = (a - 0x38000000u) >> 13;
    const uint32_t rem = a & 0x1FFFu;
    h += (rem > 0x1000u) || (rem == 0x1000u && (h & 1u));
    return static_cast<uint16_t>(sign | h);
  }
  if (a <= 0x33000000u) return static_cast<uint16_t>(sign);  // <= 2^-25 ties to even (zero)
  const uint32_t e = a >> 23;                                // 102..112 here
  const uint32_t m = (a & 0x7FFFFFu) | 0x800000u;
  const uint32_t shift = 126u - e;
  uint32_t h = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1u);
  h += (rem > half) || (rem == half && (h & 1u));
  return static_cast<uint16_t>(sign | h);
#endif
}

RDF_HD float bfloat16_to_float(uint16_t b) { return bits_float(static_cast<uint32_t>(b) << 16); }

// binary32 -> bfloat16, round to nearest even; every NaN becomes the canonical quiet NaN of its sign
// (0x7FC0 / 0xFFC0), as ml_dtypes' astype does.
// On the device (nvcc's device pass, __CUDA_ARCH__ defined) the rounding is the hardware conversion
// (cvt.rn.bf16.f32: round to nearest even, subnormals kept, overflow to inf: the same bits as the integer
// code), and only NaN is handled apart, because the hardware gives 0x7FFF for every NaN. The host path
// (CPU loops, and the CUDA emulation, which compiles the host side of the .cu files) is the integer code.
RDF_HD uint16_t float_to_bfloat16(float f) {
  const uint32_t u = float_bits(f);
#if defined(__CUDA_ARCH__)
  const uint16_t nan = static_cast<uint16_t>(((u >> 16) & 0x8000u) | 0x7FC0u);
  return f != f ? nan : __bfloat16_as_ushort(__float2bfloat16_rn(f));
#else
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>(((u >> 16) & 0x8000u) | 0x7FC0u);
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
#endif
}

// Two bfloat16 roundings at once, packed (v0 in the low half): the same bits as float_to_bfloat16 on each.
// On the device one paired hardware conversion (cvt.rn.bf16x2.f32) and a NaN fix-up per pair: the hardware
// gives 0x7FFF for every NaN, ours is sign | 0x7FC0. Device code reaches here only with arithmetic results,
// and a GPU's arithmetic NaN is the canonical positive one (docs/cuda.md), so the sign is + and the fix-up
// is a signed 16-bit minimum with 0x7FC0 per half: every other positive result is <= 0x7F80 (inf), every
// negative one is below 0 as a signed half, so only 0x7FFF changes (one instruction on sm_90).
// On the host the scalar code.
RDF_HD uint32_t floats_to_bfloat16x2(float v0, float v1) {
#if defined(__CUDA_ARCH__)
  const __nv_bfloat162 h = __floats2bfloat162_rn(v0, v1);  // .x = v0 (low half), .y = v1
  uint32_t r;
  memcpy(&r, &h, sizeof r);
  return __vmins2(r, 0x7FC07FC0u);
#else
  return static_cast<uint32_t>(float_to_bfloat16(v0)) | (static_cast<uint32_t>(float_to_bfloat16(v1)) << 16);
#endif
}

// load: storage -> compute type; store: compute type -> storage (the single rounding).
RDF_HD float load(float v) { return v; }
RDF_HD double load(double v) { return v; }
RDF_HD float load(half_t v) { return half_to_float(v.bits); }
RDF_HD float load(bfloat16_t v) { return bfloat16_to_float(v.bits); }
RDF_HD void store(float& d, float v) { d = v; }
RDF_HD void store(double& d, double v) { d = v; }
RDF_HD void store(half_t& d, float v) { d.bits = float_to_half(v); }
RDF_HD void store(bfloat16_t& d, float v) { d.bits = float_to_bfloat16(v); }
// Two adjacent elements at once (d0 at the lower address): bfloat16 pairs round together (above).
template <class T, class C>
RDF_HD void store_pair(T& d0, T& d1, C v0, C v1) {
  store(d0, v0);
  store(d1, v1);
}
RDF_HD void store_pair(bfloat16_t& d0, bfloat16_t& d1, float v0, float v1) {
  const uint32_t r = floats_to_bfloat16x2(v0, v1);
  d0.bits = static_cast<uint16_t>(r);
  d1.bits = static_cast<uint16_t>(r >> 16);
}

// The one dtype dispatch: calls fn(T{}) with the storage type named by dt. Host code and CUDA kernels
// (per-array dtypes of a list launch) both use it; codes are checked by the Python layer, so an unknown one
// is a bug: an exception on the host, unreachable on the device.
// (nv_exec_check_disable: fn is host-only in host code and device-only in kernels; each instantiation calls
// it from the matching side, which nvcc cannot see through the __host__ __device__ template.)
#if defined(__CUDACC__)
#pragma nv_exec_check_disable
#endif
template <class Fn>
RDF_HD decltype(auto) dispatch_dtype(DType dt, Fn&& fn) {
  switch (dt) {
    case DType::kFloat32:
      return fn(float{});
    case DType::kFloat64:
      return fn(double{});
    case DType::kFloat16:
      return fn(half_t{});
    case DType::kBFloat16:
      return fn(bfloat16_t{});
  }
#if defined(__CUDA_ARCH__)
  __builtin_unreachable();
#else
  throw std::invalid_argument("regdrop_fast: unknown dtype code");
#endif
}

}  // namespace rdf
