// What the two binding modules (cpu.cpp: _core, cuda.cpp: _cuda) share: the scalar arguments of a dropout
// call arrive in the same order in both, and become one DropoutParams here; a block's rows one GlobalRows.
#pragma once
#include <cstdint>
#include <vector>

#include "../common/dropout_element.h"
#include "../common/global_block.h"

namespace rdf {
namespace bindings {

// The Python layer (python/regdrop_fast/_checks.py) computed every field; nothing is decided here.
inline DropoutParams dropout_params(uint64_t seed, uint64_t offset, uint32_t threshold, bool drop_all,
                                    double scale) {
  return DropoutParams{seed, offset, threshold, drop_all, scale};
}

// The rows of a block of a global tensor as the Python layer computed them (_args.global_block): the block's
// first stream position, the outer shape and strides (at most kMaxGlobalOuterDims axes: checked there), the
// row length.
inline GlobalRows global_rows(uint64_t base, const std::vector<int64_t>& outer_shape,
                              const std::vector<uint64_t>& outer_strides, int64_t row_len) {
  GlobalRows rows{};
  rows.row_len = row_len;
  rows.outer_ndim = static_cast<int>(outer_shape.size());
  for (size_t d = 0; d < outer_shape.size(); ++d) {
    rows.outer_shape[d] = outer_shape[d];
    rows.outer_stride[d] = outer_strides[d];
  }
  rows.base = base;
  return rows;
}

}  // namespace bindings
}  // namespace rdf
