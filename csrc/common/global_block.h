// Global addressing (docs/rng.md, "Global addressing"): the array of a call is a block of a larger tensor,
// the global one, and each element decides as the element of the same global index would in a call on the
// whole tensor: its stream position is offset + its flat C-order index in the global shape.
//
// The Python layer (_args.global_block) reduces a block to rows: runs of row_len elements that are
// consecutive both in the block's C order and in the global flat index (the block's last axis, merged with
// every axis before it that the block covers whole). Row r of the block (local elements [r * row_len,
// (r + 1) * row_len)) starts at global stream position global_row_start(rows, r); the rest of the row follows
// it one position per element, so a row is exactly a 1-d dropout call at that offset.
#pragma once
#include <cstdint>

#include "hd.h"

namespace rdf {

// Axes of the row index after merging; each merged axis but the last is followed by a split axis, so a
// block needs more than this many split axes to exceed it (_args.GLOBAL_MAX_OUTER_DIMS, the same number).
constexpr int kMaxGlobalOuterDims = 16;

struct GlobalRows {
  int64_t row_len;  // elements per row, >= 1
  int outer_ndim;   // 0..kMaxGlobalOuterDims: the row index in C order over outer_shape
  int64_t outer_shape[kMaxGlobalOuterDims];
  uint64_t outer_stride[kMaxGlobalOuterDims];  // global flat-index step of each outer axis
  uint64_t base;  // offset + the global flat index of the block's first element, mod 2^64
};

// Stream position of the first element of row r (all arithmetic wraps mod 2^64, as offsets do).
RDF_HD uint64_t global_row_start(const GlobalRows& rows, int64_t r) {
  uint64_t g = rows.base;
  for (int d = rows.outer_ndim - 1; d >= 0; --d) {
    const int64_t extent = rows.outer_shape[d];
    g += static_cast<uint64_t>(r % extent) * rows.outer_stride[d];
    r /= extent;
  }
  return g;
}

}  // namespace rdf
