// CPU entry point of Gaussian dropout (y = x * (1 + std * z), z standard normal from the dropout stream),
// called by the bindings for the forward and the backward alike (the backward is the same pass over the
// gradient with the forward's seed and offset). Arguments arrive validated by the Python layer
// (python/regdrop_fast/_validate.py): dtype known, x and y C-contiguous, y either x itself or apart from it.
#pragma once
#include <cstdint>

#include "../common/dtypes.h"
#include "../common/global_block.h"

namespace rdf {
namespace cpu {

// One pass over n elements: element i takes the normal of global stream index offset + i (mod 2^64).
struct GaussianPass {
  DType dtype;
  const void* in;
  void* out;
  uint64_t seed;
  uint64_t offset;
  double std;  // sqrt(p / (1 - p)); rounded to float32 for the float32-computed dtypes
  bool stream_out = false;  // out is written with non-temporal stores (output_streaming.h)
  int64_t prefetch_bytes = 0;  // in's lines this far ahead of each tile are prefetched (input_prefetch.h)
};

void gaussian_dropout(DType dt, const void* in, void* out, int64_t n, uint64_t seed, uint64_t offset, double std);

// Gaussian dropout of a block of a global tensor (csrc/common/global_block.h): local element i of row r takes
// the normal of stream position global_row_start(rows, r) + (i - r * row_len); rows.base holds the offset.
// in and out C-contiguous (the block's C order), out in itself or apart from it.
void gaussian_dropout_global(DType dt, const void* in, void* out, int64_t n, uint64_t seed, double std,
                             const GlobalRows& rows);

}  // namespace cpu
}  // namespace rdf
