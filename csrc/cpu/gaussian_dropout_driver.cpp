#include "gaussian_dropout_driver.h"

#include <algorithm>

#include "isa.h"
#include "parallel.h"

namespace rdf {
namespace cpu {

void gaussian_dropout(DType dt, const void* in, void* out, int64_t n, uint64_t seed, uint64_t offset, double std) {
  if (n <= 0) return;
  const GaussianPass pass{dt, in, out, seed, offset, std};
  const auto range = RDF_ACTIVE_ISA_KERNEL(gaussian_dropout_range);
  // dropout's task split: fixed by n, and no result depends on it (each element's normal is a function of
  // its own stream position only)
  const int64_t n_tasks = (n + kDropoutTaskElems - 1) / kDropoutTaskElems;
  if (n_tasks <= 1) {
    range(pass, 0, n);
    return;
  }
  parallel_for(n_tasks, [&](int64_t t) {
    const int64_t begin = t * kDropoutTaskElems;
    range(pass, begin, std::min(n, begin + kDropoutTaskElems));
  });
}

}  // namespace cpu
}  // namespace rdf
