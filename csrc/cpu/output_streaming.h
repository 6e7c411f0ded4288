// Which outputs are written with non-temporal stores (vec.h's stream_lines and LineStream). A plain store
// first reads the line it writes (read for ownership): for an output larger than the caches that is one
// more pass over memory, a third of a copy's traffic. Streamed lines skip it but leave the output out of
// the caches, which costs when it would have stayed there: measured on 2 threads (Zen 4, 32 MiB L3;
// BENCHMARKS.md, "non-temporal stores for outputs of 32 MiB and more"), dropout of float32 streamed against
// plain: 2^21 (8 MiB written) backward 1.6x slower, 2^22 (16 MiB) 0.96-1.0x, 2^23 (32 MiB) forward 1.0x and
// backward 1.3x faster, 2^24 forward 1.1x and backward 1.4x faster. The threshold is that machine's: a CPU
// with a larger last-level cache keeps larger outputs cached (the size sysconf reports is no guide: 320 MiB
// on that 32 MiB guest). A call streams its output when it writes at least stream_output_bytes() bytes,
// over none of its inputs, into memory already in use; the memory limit the benchmark divides by (the limit copy) follows the same
// rule, so a kernel and its ruler make the same kind of stores. Not in place: the line was just read, so a
// plain store needs no read for ownership while a streamed one forces the line out (in-place dropout
// backward of 2^24 float32: 2.9 ms plain, 6.9 ms streamed). Not into new pages (a fresh allocation of this
// size, not yet touched): the first touch has the operating system zero the page through the caches, so
// there is no read for ownership to save (torch layer forward+backward at 2^24, outputs new each call:
// 31.1 ms plain, 33.8 ms streamed).
// Streamed: contiguous dropout and dropout_backward, the strided pass's dense tiles (dropout_strided.cpp:
// channels_last with up to 128 channels, each tile one stretch of memory), the epilogue forward and
// backward, gaussian_dropout and the limit copy, on AVX2 and AVX-512 (vec.h's kStreamStores). Plain: other
// strided layouts, the global-block paths, the broadcast variants (Dropout2d, DropPath, alpha: staging
// measured no faster), the in-place penalties.
#pragma once
#include <cstdint>

#include "../common/dtypes.h"

namespace rdf {
namespace cpu {

constexpr int64_t kDefaultStreamOutputBytes = int64_t{32} << 20;

int64_t stream_output_bytes();
// For tests and A/B benchmarks: 0 streams every output, INT64_MAX none. Outputs are the same bits either way.
void set_stream_output_bytes(int64_t bytes);
// The rule above for `bytes` written at out; in_place: out is one of the call's inputs.
bool streams_output(int64_t bytes, const void* out, bool in_place);
// For n elements of dt.
inline bool streams_output(DType dt, int64_t n, const void* out, bool in_place) {
  return streams_output(n * dtype_bytes(dt), out, in_place);
}

}  // namespace cpu
}  // namespace rdf
