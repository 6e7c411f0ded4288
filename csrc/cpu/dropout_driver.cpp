#include "dropout_driver.h"

#include <algorithm>

#include "../common/philox.h"
#include "isa.h"
#include "parallel.h"

namespace rdf {
namespace cpu {
namespace {

void run_dropout_pass(const DropoutPass& pass, int64_t n) {
  const auto range = RDF_ACTIVE_ISA_KERNEL(dropout_range);
  const int64_t n_tasks = (n + kDropoutTaskElems - 1) / kDropoutTaskElems;
  if (n_tasks <= 1) {
    if (n > 0) range(pass, 0, n);
    return;
  }
  parallel_for(n_tasks, [&](int64_t t) {
    const int64_t begin = t * kDropoutTaskElems;
    range(pass, begin, std::min(n, begin + kDropoutTaskElems));
  });
}

}  // namespace

void dropout_forward(DType dt, const void* x, void* y, uint8_t* bits, int64_t n, const DropoutParams& prm) {
  run_dropout_pass(DropoutPass{dt, x, y, nullptr, bits, prm}, n);
}

void dropout_backward(DType dt, const void* grad, void* dx, const uint8_t* bits, int64_t n,
                      const DropoutParams& prm) {
  run_dropout_pass(DropoutPass{dt, grad, dx, bits, nullptr, prm}, n);
}

void dropout_mask(uint8_t* bits, int64_t n, const DropoutParams& prm) {
  run_dropout_pass(DropoutPass{DType::kFloat32, nullptr, nullptr, nullptr, bits, prm}, n);
}

void philox4x32_raw(const uint32_t* counters, const uint32_t* keys, uint32_t* out, int64_t n, int rounds) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t c[4] = {counters[4 * i], counters[4 * i + 1], counters[4 * i + 2], counters[4 * i + 3]};
    philox4x32(c, keys[2 * i], keys[2 * i + 1], rounds);
    for (int w = 0; w < 4; ++w) out[4 * i + w] = c[w];
  }
}

void philox4x32_simd(const uint32_t* counters, const uint32_t* keys, uint32_t* out, int64_t n, int rounds,
                     Isa isa) {
  RDF_ISA_KERNEL(isa, philox4x32_blocks)(counters, keys, out, n, rounds);
}

}  // namespace cpu
}  // namespace rdf
