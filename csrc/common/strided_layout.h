// The layout of a dense strided array as the dropout iterations see it (CPU and CUDA): an element's
// logical index (its C-order flat index) decides its mask, docs/rng.md; its memory position is where it is
// read and written. Dense and non-overlapping means the memory positions are a permutation of 0..n-1, so
// the input and the output (which has the same strides) are each touched exactly once per element.
//
// The layout is simplified before use: axes of size 1 are dropped, and logically adjacent axes that are
// also adjacent in memory, in the same order, are merged (channels_last NCHW becomes (N, C, H*W) with
// memory order N, H*W, C). Two axes then matter to an iteration: `inner`, the logical innermost one (the
// last: logical stride 1, where runs of consecutive Philox words lie), and `minor`, the one with memory
// stride 1 (where contiguous memory lies). When they are the same axis, logical runs are memory runs.
#pragma once
#include <cstdint>

#include "hd.h"

namespace rdf {

// Axes a layout may have; the Python layer sends arrays with more axes through a C-contiguous copy.
constexpr int kMaxLayoutDims = 32;

struct StridedLayout {
  int ndim;                         // >= 2 once simplified (a layout of 0 or 1 axes is C-contiguous)
  int inner;                        // ndim - 1
  int minor;                        // the axis with memory stride 1
  int64_t shape[kMaxLayoutDims];    // logical sizes, C order, each >= 2
  int64_t stride[kMaxLayoutDims];   // memory strides, in elements
  int64_t lstride[kMaxLayoutDims];  // logical (C-order) strides, in elements
};

// Simplifies the layout of a dense, non-overlapping array of n >= 1 elements (shape and strides in
// elements, ndim <= kMaxLayoutDims: the caller's precondition). Returns false when it is C-contiguous
// (then `out` is not used and the contiguous iteration applies).
inline bool simplify_layout(int ndim, const int64_t* shape, const int64_t* strides, StridedLayout& out) {
  int k = 0;
  for (int d = 0; d < ndim; ++d) {
    if (shape[d] == 1) continue;
    if (k > 0 && out.stride[k - 1] == strides[d] * shape[d]) {  // continues the previous axis in memory
      out.shape[k - 1] *= shape[d];
      out.stride[k - 1] = strides[d];
      continue;
    }
    out.shape[k] = shape[d];
    out.stride[k] = strides[d];
    ++k;
  }
  if (k <= 1) return false;  // one run (dense: its stride is 1)
  out.ndim = k;
  out.inner = k - 1;
  int64_t l = 1;
  for (int d = k - 1; d >= 0; --d) {
    out.lstride[d] = l;
    l *= out.shape[d];
    if (out.stride[d] == 1) out.minor = d;
  }
  return true;
}

// Elements per "row set": the product of the sizes of every axis except `inner` and `minor`. Its index o
// (C order over those axes) together with indices along inner and minor names every element.
RDF_HD int64_t outer_count(const StridedLayout& L) {
  int64_t o = 1;
  for (int d = 0; d < L.ndim; ++d)
    if (d != L.inner && d != L.minor) o *= L.shape[d];
  return o;
}

// The memory and logical offsets of the element with index 0 along inner and minor and outer index o.
RDF_HD void outer_offsets(const StridedLayout& L, int64_t o, int64_t& mem, int64_t& logical) {
  mem = 0;
  logical = 0;
  for (int d = L.ndim - 1; d >= 0; --d) {
    if (d == L.inner || d == L.minor) continue;
    const int64_t i = o % L.shape[d];
    o /= L.shape[d];
    mem += i * L.stride[d];
    logical += i * L.lstride[d];
  }
}

}  // namespace rdf
