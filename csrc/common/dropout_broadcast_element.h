// The element-level body of the mask-based dropout variants, shared by the CPU loops and the CUDA kernels:
// dropout with broadcast (shared) axes, drop_path (axis 0 alone kept) and alpha dropout. Their keep
// decisions are dropout's own, taken at the reduced shape (docs/rng.md, "Broadcast axes"): the mask bits of
// dropout_mask(reduced shape), which the backends read (or generate first) and apply here. Only the value
// of a kept or dropped element differs between the variants: a value policy.
#pragma once
#include <cstdint>

#include "dropout_element.h"
#include "dtypes.h"
#include "hd.h"

namespace rdf {

// Which value policy a call applies (chosen by the Python layer, as are its constants).
enum class MaskedValue : int {
  kScaled = 0,  // keep ? x * scale : 0 (dropout, drop_path, every backward: alpha's dx = a * dy * keep)
  kAlpha = 1,   // (keep ? x : sat) * a + b (alpha dropout's forward)
};

// Parameters of one call: the dropout stream's decisions and the value policy's constants (double; each
// loop converts them once to its compute type, float32 or float64).
struct MaskedParams {
  DropoutParams keep;  // seed, offset, threshold, drop_all of the stream; keep.scale for kScaled
  MaskedValue value;
  double a, b, sat;    // kAlpha: y = (keep ? x : sat) * a + b
};

// Alpha dropout of one value: a dropped unit takes the SELU saturation value sat, then every unit the
// affine correction a * v + b (two roundings in the compute type: no FMA, the build forbids contraction).
// The dropped value is a constant, computed through the same expression. C may be a CPU lane vector with K
// its -1/0 lane mask, as in dropout_value.
template <class C, class K>
RDF_HD C alpha_dropout_value(C x, K keep, C a, C b, C sat) {
  return (keep ? x : sat) * a + b;
}

// The policies as callables over a compute type C (a scalar or a CPU lane vector of it).
template <class C>
struct ScaledValue {
  C scale;
  template <class K>
  RDF_HD C operator()(C x, K keep) const {
    return dropout_value(x, keep, scale);
  }
};
template <class C>
struct AlphaValue {
  C a, b, sat;
  template <class K>
  RDF_HD C operator()(C x, K keep) const {
    return alpha_dropout_value(x, keep, a, b, sat);
  }
};

// The policy of a call in compute type S (float or double), each constant rounded once from double; `wide`
// broadcasts a scalar into the loop's vector type C (identity for scalar loops). Host code: the CUDA side
// builds the policy before the launch and passes it to the kernel.
template <class C, class S, class Wide>
inline ScaledValue<C> scaled_policy(const MaskedParams& prm, Wide wide) {
  return ScaledValue<C>{wide(static_cast<S>(prm.keep.scale))};
}
template <class C, class S, class Wide>
inline AlphaValue<C> alpha_policy(const MaskedParams& prm, Wide wide) {
  return AlphaValue<C>{wide(static_cast<S>(prm.a)), wide(static_cast<S>(prm.b)), wide(static_cast<S>(prm.sat))};
}

// Storage-level element: load, apply the policy, round once, store.
template <class T, class V>
RDF_HD void masked_element(const T& in, T& out, bool keep, const V& value) {
  store(out, value(load(in), keep));
}

// The stored value of every dropped element (a constant of the policy, whatever x is).
template <class T, class V>
RDF_HD T dropped_value(const V& value) {
  T t;
  store(t, value(compute_t<T>{}, false));
  return t;
}

// Decision index of a broadcast layout: at most this many axes (NumPy's limit is 64; the Python layer sends
// arrays of more axes as a C-contiguous view whose same-kind axes are merged, which leaves few).
constexpr int kMaxBroadcastDims = 32;

// A dense array's layout as the variant loops walk it: axes in memory order (outermost first, the last one
// of memory stride 1), each with its memory stride (input and output share it) and its stride in the
// reduced shape's C-order index (0 along a broadcast axis), so element (i_0, .., i_k) lives at
// sum i_d * stride[d] and decides with bit sum i_d * rstride[d] of the reduced mask.
struct BroadcastLayout {
  int ndim;  // >= 1
  int64_t shape[kMaxBroadcastDims];
  int64_t stride[kMaxBroadcastDims];
  int64_t rstride[kMaxBroadcastDims];
};

// Simplifies (shape, strides, rstrides) of ndim <= kMaxBroadcastDims axes of a dense array: axes sorted by
// memory stride, outermost first (a stable sort: ties only between axes of size 1), axes of size 1 dropped,
// and an axis merged into the next when both its strides continue it (stride = shape * stride and
// rstride = shape * rstride of the next: both indices advance as one axis). C-order NCHW with H and W
// broadcast becomes (N*C: rstride 1, H*W: rstride 0), a time-shared (T, N, H) with T broadcast
// (T: rstride 0, N*H: rstride 1).
inline void simplify_broadcast(int ndim, const int64_t* shape, const int64_t* strides, const int64_t* rstrides,
                               BroadcastLayout& out) {
  int order[kMaxBroadcastDims];
  int k = 0;
  for (int d = 0; d < ndim; ++d) {
    if (shape[d] == 1) continue;
    int j = k++;
    for (; j > 0 && strides[order[j - 1]] < strides[d]; --j) order[j] = order[j - 1];
    order[j] = d;
  }
  int m = 0;
  for (int j = 0; j < k; ++j) {
    const int d = order[j];
    if (m > 0 && out.stride[m - 1] == shape[d] * strides[d] && out.rstride[m - 1] == shape[d] * rstrides[d]) {
      out.shape[m - 1] *= shape[d];
      out.stride[m - 1] = strides[d];
      out.rstride[m - 1] = rstrides[d];
      continue;
    }
    out.shape[m] = shape[d];
    out.stride[m] = strides[d];
    out.rstride[m] = rstrides[d];
    ++m;
  }
  if (m == 0) {  // a single element: its decision is bit 0
    out.shape[0] = 1;
    out.stride[0] = 1;
    out.rstride[0] = 0;
    m = 1;
  }
  out.ndim = m;
}

// Short rows that share their decisions with their neighbours (channels_last NCHW with H, W broadcast: rows
// of C elements, one per pixel, all with the decisions of their sample): the last two axes, contiguous in
// memory, become one row of shape[-2] * shape[-1] elements whose decision offsets repeat with period
// shape[-1]: element i of the row decides with bit red + (i % period) * rstride. Returns the period (0: no
// fold, element i decides with bit red + i * rstride) when the last axis has at most max_period elements,
// the one before it is broadcast (rstride 0) and both are contiguous.
inline int64_t fold_periodic_rows(BroadcastLayout& L, int64_t max_period) {
  if (L.ndim < 2) return 0;
  const int a = L.ndim - 2;
  const int64_t period = L.shape[a + 1];
  if (L.rstride[a] != 0 || L.stride[a + 1] != 1 || L.stride[a] != period || period > max_period) return 0;
  L.shape[a] *= period;
  L.stride[a] = 1;
  L.rstride[a] = L.rstride[a + 1];
  L.ndim -= 1;
  return period;
}

// The memory and reduced offsets of element 0 of inner row o (C order over every axis but the last).
RDF_HD void broadcast_row(const BroadcastLayout& L, int64_t o, int64_t& mem, int64_t& red) {
  mem = 0;
  red = 0;
  for (int d = L.ndim - 2; d >= 0; --d) {
    const int64_t i = o % L.shape[d];
    o /= L.shape[d];
    mem += i * L.stride[d];
    red += i * L.rstride[d];
  }
}

// Bit i of a packed little-order mask.
RDF_HD bool mask_bit(const uint8_t* bits, int64_t i) { return (bits[i >> 3] >> (i & 7)) & 1u; }

}  // namespace rdf
