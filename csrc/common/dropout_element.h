// The element-level body of dropout, shared by the CPU loops and the CUDA kernels. Everything that decides
// a value lives here; the backends only decide which elements a thread or SIMD lane visits.
#pragma once
#include <cstdint>
#include <type_traits>

#include "dtypes.h"
#include "hd.h"

namespace rdf {

// Parameters of one dropout call, computed once by the Python layer (python/regdrop_fast/_checks.py).
struct DropoutParams {
  uint64_t seed;
  uint64_t offset;     // global index of element 0 of this call, in elements, wrapping mod 2^64
  uint32_t threshold;  // keep iff the element's 32-bit word >= threshold (round(p * 2^32))
  bool drop_all;       // p rounds to 2^32: no word can reach the threshold, every element is dropped
  double scale;        // 1 / (1 - p); 0 when drop_all
};

// Where the keep decisions of a pass come from, decided once per call so that the loops can be specialized
// on it: the given mask bits; none (p rounds to 1: no word can reach the threshold); all (threshold 0:
// every word reaches it, so none needs generating); else the Philox stream.
enum class KeepSource { kBits, kNone, kAll, kStream };

RDF_HD KeepSource keep_source(bool has_bits_in, const DropoutParams& prm) {
  if (has_bits_in) return KeepSource::kBits;
  if (prm.drop_all) return KeepSource::kNone;
  if (prm.threshold == 0) return KeepSource::kAll;
  return KeepSource::kStream;
}

// Host side: calls fn(std::integral_constant<KeepSource, S>()) with S = source, the one switch that
// specializes a loop (CPU) or kernel (CUDA) on where its decisions come from.
template <class Fn>
void with_keep_source(KeepSource source, Fn&& fn) {
  switch (source) {
    case KeepSource::kBits:
      return fn(std::integral_constant<KeepSource, KeepSource::kBits>());
    case KeepSource::kNone:
      return fn(std::integral_constant<KeepSource, KeepSource::kNone>());
    case KeepSource::kAll:
      return fn(std::integral_constant<KeepSource, KeepSource::kAll>());
    case KeepSource::kStream:
      return fn(std::integral_constant<KeepSource, KeepSource::kStream>());
  }
}

// Keep decision for one random word of the stream (KeepSource::kStream).
RDF_HD bool dropout_keep(uint32_t word, uint32_t threshold) { return word >= threshold; }

// Dropout of one value in its compute type: a selection, not a multiply by 0, so a dropped NaN or inf
// becomes exactly 0 while a kept one propagates. C may also be a CPU lane vector with K its -1/0 mask
// (GCC/Clang vector conditional), so the SIMD loops run this very body.
template <class C, class K>
RDF_HD C dropout_value(C x, K keep, C scale) {
  return keep ? x * scale : C{};
}

// Storage-level element: load, compute, round once, store. Used by forward (x) and backward (grad) alike.
template <class T>
RDF_HD void dropout_element(const T& in, T& out, bool keep, compute_t<T> scale) {
  store(out, dropout_value(load(in), keep, scale));
}

// Two adjacent elements (the CUDA loops: bfloat16 pairs round in one conversion); the same values as two
// dropout_element calls.
template <class T>
RDF_HD void dropout_element_pair(const T* in, T* out, bool keep0, bool keep1, compute_t<T> scale) {
  const compute_t<T> v0 = dropout_value(load(in[0]), keep0, scale);
  const compute_t<T> v1 = dropout_value(load(in[1]), keep1, scale);
  store_pair(out[0], out[1], v0, v1);
}

}  // namespace rdf
