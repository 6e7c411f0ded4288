// The CPU entry points called by the bindings. Arguments arrive validated by the Python layer
// (python/regdrop_fast/_checks.py): dtypes known, buffers C-contiguous and sized for n elements.
#pragma once
#include <cstdint>

#include "../common/dropout_element.h"
#include "../common/global_block.h"
#include "isa.h"

namespace rdf {
namespace cpu {

// The strides shared by the input and the output of a call (x and y, grad and dx), in elements: a dense,
// non-overlapping array of ndim <= kMaxLayoutDims axes (channels_last, permuted axes). Null: C-contiguous.
// Either way element i of the mask, and of the random stream, is the element of C-order flat index i.
struct ArrayLayout {
  int ndim;
  const int64_t* shape;
  const int64_t* strides;
};

// y = dropout(x); bits (ceil(n/8) bytes) receives the packed keep mask unless null.
void dropout_forward(DType dt, const void* x, void* y, uint8_t* bits, int64_t n, const DropoutParams& prm,
                     const ArrayLayout* layout = nullptr);
// dx = grad * scale where kept, else 0; the mask comes from bits, or is regenerated when bits is null.
void dropout_backward(DType dt, const void* grad, void* dx, const uint8_t* bits, int64_t n,
                      const DropoutParams& prm, const ArrayLayout* layout = nullptr);
// The packed keep mask alone.
void dropout_mask(uint8_t* bits, int64_t n, const DropoutParams& prm);
// Dropout of a block of a global tensor (global_block.h): element i of row r takes the decision of stream
// position global_row_start(rows, r) + i - r * row_len (prm.offset is unused; rows.base holds it). in/out
// C-contiguous, both set (forward, or backward regenerating the mask) or both null (the mask alone); bits,
// when set, receives the packed decisions in the block's C order (ceil(n/8) bytes, bits past n zero).
void dropout_global(DType dt, const void* in, void* out, uint8_t* bits, int64_t n, const DropoutParams& prm,
                    const GlobalRows& rows);
// The rows' pieces of local elements [first, first + len) of a block (len <= kDropoutTaskElems; any first):
// each piece of a row in the range is one dropout_range of the active ISA at the row's stream position, so
// the decisions are dropout_global's. pass.in/out are the block's arrays (element 0; both null: decisions
// only); pass.bits_in, pass.bits_out and prm.offset are unused. bits, when set, receives the range's
// decisions with bit 0 = element first, in ceil(len/8) bytes of its own (bits past len zero). The one piece
// generator of every op that takes a block (dropout_global, the bias_dropout_add loops).
void dropout_global_range(const DropoutPass& pass, const GlobalRows& rows, int64_t first, int64_t len, uint8_t* bits);
// Raw Philox4x32-R over n (counter, key) pairs: counters n x 4, keys n x 2, out n x 4 words.
void philox4x32_raw(const uint32_t* counters, const uint32_t* keys, uint32_t* out, int64_t n, int rounds);
// The same through the SIMD lane code of ISA `isa` (at most best_isa()), 1 <= rounds <= kPhiloxMaxRounds.
void philox4x32_simd(const uint32_t* counters, const uint32_t* keys, uint32_t* out, int64_t n, int rounds,
                     Isa isa);

}  // namespace cpu
}  // namespace rdf
