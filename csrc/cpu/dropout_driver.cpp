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

// A pass over a strided layout (dropout_strided.cpp): units split into tasks of about kDropoutTaskElems
// elements. The pass writes no mask bits, so any split gives the same result; this one depends only on
// the layout anyway.
void run_strided_pass(const DropoutPass& pass, const StridedLayout& L) {
  const auto range = RDF_ACTIVE_ISA_KERNEL(dropout_strided_range);
  const int64_t n_inner = L.shape[L.inner];
  int64_t units, unit_elems;
  if (L.inner == L.minor) {
    const int64_t per_row = (n_inner + strided::kRun - 1) / strided::kRun;
    units = outer_count(L) * per_row;
    unit_elems = n_inner < strided::kRun ? n_inner : strided::kRun;
  } else {
    int64_t ti, tm;
    strided::tile_extent(L, ti, tm);
    units = outer_count(L) * ((n_inner + ti - 1) / ti) * ((L.shape[L.minor] + tm - 1) / tm);
    unit_elems = ti * tm;
  }
  const int64_t per_task = std::max<int64_t>(1, kDropoutTaskElems / unit_elems);
  const int64_t n_tasks = (units + per_task - 1) / per_task;
  if (n_tasks <= 1) {
    range(pass, L, 0, units);
    return;
  }
  parallel_for(n_tasks, [&](int64_t t) {
    const int64_t begin = t * per_task;
    range(pass, L, begin, std::min(units, begin + per_task));
  });
}

// One dropout pass of a call (forward: bits_out may be set; backward: bits_in may be set) over its layout.
// A strided layout writes the mask bits first, in logical order (the contiguous mask pass), then reads them
// back for the values: the same decisions the stream gives, each generated once.
void run_call(DType dt, const void* in, void* out, const uint8_t* bits_in, uint8_t* bits_out, int64_t n,
              const DropoutParams& prm, const ArrayLayout* layout) {
  StridedLayout L;
  if (n <= 0 || layout == nullptr || !simplify_layout(layout->ndim, layout->shape, layout->strides, L)) {
    run_dropout_pass(DropoutPass{dt, in, out, bits_in, bits_out, prm}, n);
    return;
  }
  if (bits_out != nullptr) {
    run_dropout_pass(DropoutPass{dt, nullptr, nullptr, nullptr, bits_out, prm}, n);
    bits_in = bits_out;
  }
  run_strided_pass(DropoutPass{dt, in, out, bits_in, nullptr, prm}, L);
}

}  // namespace

void dropout_forward(DType dt, const void* x, void* y, uint8_t* bits, int64_t n, const DropoutParams& prm,
                     const ArrayLayout* layout) {
  run_call(dt, x, y, nullptr, bits, n, prm, layout);
}

void dropout_backward(DType dt, const void* grad, void* dx, const uint8_t* bits, int64_t n,
                      const DropoutParams& prm, const ArrayLayout* layout) {
  run_call(dt, grad, dx, bits, nullptr, n, prm, layout);
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
