// Which outputs are written with non-temporal stores (vec.h's stream_lines and LineStream). A plain store
// first reads the line it writes (read for ownership): for an output larger than the caches that is one
// more pass over memory, a third of a copy's traffic. Streamed lines skip it but leave the output out of
// the caches, which costs when it would have stayed there: measured on 2 threads (Zen 4, 32 MiB L3,
// BENCHMARKS.md "Non-temporal stores"), dropout of 2^22 float32 (16 MiB written) ran 1.2x slower streamed,
// 2^23 (32 MiB) 1.05x faster, 2^24 1.1x (forward) to 1.25x (backward) faster. A call streams its output
// when it writes at least stream_output_bytes() bytes over none of its inputs; the memory limit the
// benchmark divides by (the limit copy) follows the same rule, so a kernel and its ruler make the same kind
// of stores. In place, plain stores: the line was just read, so a plain store needs no read for ownership,
// while a streamed one forces the line out (dropout backward of 2^24 float32 in place: 2.9 ms plain, 6.9 ms
// streamed).
#pragma once
#include <cstdint>

#include "../common/dtypes.h"

namespace rdf {
namespace cpu {

constexpr int64_t kDefaultStreamOutputBytes = int64_t{32} << 20;

int64_t stream_output_bytes();
// For tests and A/B benchmarks: 0 streams every output, INT64_MAX none. Outputs are the same bits either way.
void set_stream_output_bytes(int64_t bytes);
inline bool streams_output(int64_t output_bytes) { return output_bytes >= stream_output_bytes(); }
// An output of n elements of dt, written apart from the call's inputs (in_place: over one of them).
inline bool streams_output(DType dt, int64_t n, bool in_place) {
  return !in_place && streams_output(n * dtype_bytes(dt));
}

}  // namespace cpu
}  // namespace rdf
