#include "gaussian_dropout_driver.h"

#include <algorithm>

#include "input_prefetch.h"
#include "isa.h"
#include "output_streaming.h"
#include "parallel.h"

namespace rdf {
namespace cpu {
namespace {

// Local elements [begin, end) of a block: each piece of a row in the range is one run of the contiguous loop,
// with the pass's offset moved so that local element i of row r lands on the row's stream position
// (global_row_start(rows, r) + i - r * row_len, all mod 2^64). A row may start at any position, odd ones
// included: the loop pairs elements by their stream position, not by their place in the call.
void global_range(const GaussianPass& pass, const GlobalRows& rows, int64_t begin, int64_t end) {
  const auto range = RDF_ACTIVE_ISA_KERNEL(gaussian_dropout_range);
  for (int64_t i = begin; i < end;) {
    const int64_t r = i / rows.row_len;
    const int64_t piece_end = std::min(end, (r + 1) * rows.row_len);
    GaussianPass piece = pass;
    piece.offset = global_row_start(rows, r) - static_cast<uint64_t>(r * rows.row_len);  // wraps by design
    range(piece, i, piece_end);
    i = piece_end;
  }
}

}  // namespace


void gaussian_dropout(DType dt, const void* in, void* out, int64_t n, uint64_t seed, uint64_t offset, double std) {
  if (n <= 0) return;
  GaussianPass pass{dt, in, out, seed, offset, std};
  pass.stream_out = streams_output(dt, n, out, out == in);
  pass.prefetch_bytes = prefetch_bytes_for(dt);
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

void gaussian_dropout_global(DType dt, const void* in, void* out, int64_t n, uint64_t seed, double std,
                             const GlobalRows& rows) {
  if (n <= 0) return;
  const GaussianPass pass{dt, in, out, seed, rows.base, std};
  // dropout's task split (as gaussian_dropout's: no result depends on it)
  const int64_t n_tasks = (n + kDropoutTaskElems - 1) / kDropoutTaskElems;
  if (n_tasks <= 1) {
    global_range(pass, rows, 0, n);
    return;
  }
  parallel_for(n_tasks, [&](int64_t t) {
    const int64_t begin = t * kDropoutTaskElems;
    global_range(pass, rows, begin, std::min(n, begin + kDropoutTaskElems));
  });
}

}  // namespace cpu
}  // namespace rdf
