#include "dropout_driver.h"

#include <algorithm>
#include <cstring>

#include "../common/philox.h"
#include "input_prefetch.h"
#include "isa.h"
#include "output_streaming.h"
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
// elements. Any split gives the same result (the mask bits a pass writes, strided::writes_own_bits, are
// whole bytes of one row each); this one depends only on the layout anyway.
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
// A strided layout writes the mask bits from its own pass where each tile row covers whole bytes of them
// (strided::writes_own_bits); otherwise first, in logical order (the contiguous mask pass), then reads them
// back for the values. The same decisions the stream gives either way, each generated once.
void run_call(DType dt, const void* in, void* out, const uint8_t* bits_in, uint8_t* bits_out, int64_t n,
              const DropoutParams& prm, const ArrayLayout* layout) {
  StridedLayout L;
  if (n <= 0 || layout == nullptr || !simplify_layout(layout->ndim, layout->shape, layout->strides, L)) {
    DropoutPass pass{dt, in, out, bits_in, bits_out, prm};
    pass.stream_out = streams_output(dt, n, out, out == in);
    pass.prefetch_bytes = prefetch_bytes_for(dt);
    run_dropout_pass(pass, n);
    return;
  }
  if (bits_out != nullptr && !strided::writes_own_bits(L)) {
    run_dropout_pass(DropoutPass{dt, nullptr, nullptr, nullptr, bits_out, prm}, n);
    bits_in = bits_out;
    bits_out = nullptr;
  }
  DropoutPass pass{dt, in, out, bits_in, bits_out, prm};
  pass.stream_out = streams_output(dt, n, out, out == in);  // used by dense tiles only (dropout_strided.cpp)
  pass.prefetch_bytes = prefetch_bytes_for(dt);             // there a switch: each tile's own input
  run_strided_pass(pass, L);
}

// OR the first len decisions of tmp (bit 0 first, bits past len zero) into bits at bit position at. Writes
// only the bytes that hold positions [at, at + len): the neighbouring bytes may belong to another task.
void or_bits_at(uint8_t* bits, int64_t at, const uint8_t* tmp, int64_t len) {
  const int sh = static_cast<int>(at % 8);
  uint8_t* dst = bits + at / 8;
  const int64_t last = (at + len - 1) / 8 - at / 8;  // index in dst of the byte of the last position
  for (int64_t k = 0; 8 * k < len; ++k) {
    dst[k] |= static_cast<uint8_t>(tmp[k] << sh);
    if (sh != 0 && k + 1 <= last) dst[k + 1] |= static_cast<uint8_t>(tmp[k] >> (8 - sh));
  }
}

}  // namespace

// A piece that starts on a byte boundary of bits writes its bytes in place (they hold no earlier piece's
// bits: the earlier pieces end before its first position); another one goes through tmp and is ORed in at
// its bit position, over bytes zeroed first.
void dropout_global_range(const DropoutPass& pass, const GlobalRows& rows, int64_t first, int64_t len, uint8_t* bits) {
  const auto range = RDF_ACTIVE_ISA_KERNEL(dropout_range);
  const int64_t esize = dtype_bytes(pass.dtype);
  alignas(64) uint8_t tmp[kDropoutTaskElems / 8 + 8];
  if (bits != nullptr) std::memset(bits, 0, static_cast<size_t>((len + 7) / 8));
  const int64_t end = first + len;
  for (int64_t i = first; i < end;) {
    const int64_t r = i / rows.row_len;
    const int64_t piece_end = std::min(end, (r + 1) * rows.row_len);
    const int64_t piece_len = piece_end - i;
    DropoutPass piece{pass.dtype, nullptr, nullptr, nullptr, nullptr, pass.params};
    if (pass.in != nullptr) {
      piece.in = static_cast<const char*>(pass.in) + i * esize;
      piece.out = static_cast<char*>(pass.out) + i * esize;
    }
    piece.params.offset = global_row_start(rows, r) + static_cast<uint64_t>(i - r * rows.row_len);
    const int64_t at = i - first;  // the piece's first bit position in bits
    const bool aligned = at % 8 == 0;
    if (bits != nullptr) piece.bits_out = aligned ? bits + at / 8 : tmp;
    range(piece, 0, piece_len);
    if (bits != nullptr && !aligned) or_bits_at(bits, at, tmp, piece_len);
    i = piece_end;
  }
}

void dropout_global(DType dt, const void* in, void* out, uint8_t* bits, int64_t n, const DropoutParams& prm,
                    const GlobalRows& rows) {
  const DropoutPass pass{dt, in, out, nullptr, nullptr, prm};
  const int64_t n_tasks = (n + kDropoutTaskElems - 1) / kDropoutTaskElems;
  if (n_tasks <= 1) {
    if (n > 0) dropout_global_range(pass, rows, 0, n, bits);
    return;
  }
  // tasks of kDropoutTaskElems (a multiple of 8): each writes its own mask bytes
  parallel_for(n_tasks, [&](int64_t t) {
    const int64_t begin = t * kDropoutTaskElems;
    dropout_global_range(pass, rows, begin, std::min(n, begin + kDropoutTaskElems) - begin,
                         bits == nullptr ? nullptr : bits + begin / 8);
  });
}

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
