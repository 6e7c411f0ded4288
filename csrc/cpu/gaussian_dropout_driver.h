// CPU entry point of Gaussian dropout (y = x * (1 + std * z), z standard normal from the dropout stream),
// called by the bindings for the forward and the backward alike (the backward is the same pass over the
// gradient with the forward's seed and offset). Arguments arrive validated by the Python layer
// (python/regdrop_fast/_validate.py): dtype known, x and y C-contiguous, y either x itself or apart from it.
#pragma once
#include <cstdint>

#include "../common/dtypes.h"

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
};

void gaussian_dropout(DType dt, const void* in, void* out, int64_t n, uint64_t seed, uint64_t offset, double std);

}  // namespace cpu
}  // namespace rdf
