// CPU entry point of the mask-based dropout variants (dropout with broadcast axes, drop_path, alpha dropout,
// and their backward), called by the bindings. Arguments arrive validated by the Python layer
// (python/regdrop_fast/_validate.py): dtypes known, in and out dense with the same strides.
#pragma once
#include <cstdint>

#include "../common/dropout_broadcast_element.h"

namespace rdf {
namespace cpu {

// Elements per unit of work along the layout's innermost axis: a multiple of 8, so that in a layout of one
// axis (no broadcast axis of size > 1) each unit's mask bits are whole bytes of their own.
constexpr int64_t kBroadcastChunk = 4096;

// Rows of at most this many elements that share their decisions with their neighbours are folded
// (fold_periodic_rows): a unit then covers whole rows, at least 4 of them.
constexpr int64_t kBroadcastMaxPeriod = kBroadcastChunk / 4;

// What the loop (dropout_broadcast_loop.cpp) runs over units [begin, end) of a call: unit u is up to
// `chunk` elements of one inner row of the layout (kBroadcastChunk, or with a period the most whole
// periods that fit in it, so that a unit starts at phase 0). Decisions come from `bits` (the mask at the
// reduced shape), or, when `bits` is null (a layout of one axis of rstride 1 whose decisions come from the
// stream), are drawn by each unit for its own elements, their bits written into bits_out unless null.
struct BroadcastPass {
  DType dtype;
  const void* in;
  void* out;
  const uint8_t* bits;
  uint8_t* bits_out;
  const BroadcastLayout* layout;
  int64_t period;  // fold_periodic_rows' period, 0 for none
  int64_t chunk;
  MaskedParams params;
};

// out = the variant of in (prm.value) under the decisions of dropout_mask(reduced shape, p, seed, offset):
// read from bits_in (a backward with stored bits), else generated, into bits_out when given (ceil(m/8)
// bytes, the call's mask), else into scratch. The layout: ndim <= kMaxBroadcastDims axes of the shape, the
// memory strides in and out share and the reduced C-order strides (0 along a broadcast axis); m the
// reduced shape's element count.
void dropout_broadcast(DType dt, const void* in, void* out, const uint8_t* bits_in, uint8_t* bits_out, int ndim,
                       const int64_t* shape, const int64_t* strides, const int64_t* rstrides, int64_t m,
                       const MaskedParams& prm);

}  // namespace cpu
}  // namespace rdf
