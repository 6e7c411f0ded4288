// Software prefetch of the input a loop will read next. The hardware prefetchers bring a stream from
// memory into L2 on their own, but a dropout tile first spends its time on Philox rounds (pure arithmetic)
// and then reads its input at once, so the L1 misses of that burst wait in line instead of overlapping the
// arithmetic. Asking for the lines prefetch_bytes() ahead into L1 at the start of each tile, before its
// Philox rounds, lets them arrive during those rounds. Measured at 2^24 elements on 2 threads (Zen 4;
// BENCHMARKS.md, "dropout's forward: where the time goes"), off against 2 KiB in one process: float32
// forward 1.03-1.19x faster over seven runs (median 1.08x; 1.2x while other tenants loaded the memory),
// backward from bits 0.97-1.03x (at the copy limit already; 1.16-1.18x under memory load); bfloat16
// 0.98-1.03x; float64 0.90-0.96x, so float64 (half the Philox words per byte of float32, bound by memory)
// does not prefetch. Distances of 4-64 KiB gained no more for float32. gaussian_dropout's loop (Philox
// words, then normals, then the input) the same way: float32 1.05-1.06x, bfloat16 1.00x. Tried and not
// kept: the epilogue's x and residual (float32 0.99-1.01x, bfloat16 1.00-1.04x). A prefetch never faults
// and never changes a value: outputs are the same bits for every distance. Used by the contiguous dropout
// loop, forward and backward (a mask-only call reads no input), by gaussian_dropout's loop, and as a switch
// (any distance > 0) by the strided pass, whose tiles fetch their own input while their rows' decisions are
// drawn (dropout_strided.cpp).
#pragma once
#include <cstdint>

#include "../common/dtypes.h"

namespace rdf {
namespace cpu {

constexpr int64_t kDefaultPrefetchBytes = 2048;

int64_t prefetch_bytes();
// For tests and A/B benchmarks: 0 turns the prefetches off; negative counts as 0.
void set_prefetch_bytes(int64_t bytes);
// The distance for a call on dt: none for float64 (above).
inline int64_t prefetch_bytes_for(DType dt) { return dtype_bytes(dt) <= 4 ? prefetch_bytes() : 0; }

}  // namespace cpu
}  // namespace rdf
