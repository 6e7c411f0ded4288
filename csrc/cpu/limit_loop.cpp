// The memory limits the benchmark measures the kernels against (python/regdrop_fast/bench/limits.py): a
// copy and an in-place read-modify-write over bytes, with the accesses the kernels make (unaligned vector
// loads and stores of this ISA's width through vec.h; non-temporal stores for the outputs the kernels stream
// (output_streaming.h), no prefetch hints), so a kernel's "x limit" compares it with the same memory traffic
// on the same threads and nothing else.
// Compiled once per ISA (isa.h).
#include <cstdint>

#include "isa.h"
#include "vec.h"

namespace rdf {
namespace cpu {
namespace RDF_ISA {
namespace {

constexpr int64_t kVec = sizeof(vu32);
constexpr int64_t kStep = 4 * kVec;  // four vectors per iteration, as the dropout groups (16 float32)

}  // namespace

// Not a memcpy call: GCC's loop distribution would turn a plain copy loop into one (glibc's, which switches
// to non-temporal stores above a size), and the limit must be the kernels' own kind of access.
// stream: the whole lines of dst with non-temporal stores (a task's first and last partial lines plainly),
// as the kernels write an output of that size (output_streaming.h).
__attribute__((optimize("no-tree-loop-distribute-patterns")))
void limit_copy_range(const uint8_t* src, uint8_t* dst, int64_t n, bool stream) {
  int64_t i = 0;
  if (kStreamStores && stream) {
    const int64_t head = static_cast<int64_t>((64 - reinterpret_cast<uintptr_t>(dst) % 64) % 64);
    if (head < n) {
      for (; i < head; ++i) dst[i] = src[i];
      const int64_t lines = (n - head) / 64 * 64;
      stream_lines(dst + head, src + head, lines);
      stream_fence();
      i = head + lines;
    }
  }
  for (; i + kStep <= n; i += kStep) {
    const vu32 v0 = load_vec<vu32>(src + i), v1 = load_vec<vu32>(src + i + kVec);
    const vu32 v2 = load_vec<vu32>(src + i + 2 * kVec), v3 = load_vec<vu32>(src + i + 3 * kVec);
    store_vec(dst + i, v0);
    store_vec(dst + i + kVec, v1);
    store_vec(dst + i + 2 * kVec, v2);
    store_vec(dst + i + 3 * kVec, v3);
  }
  for (; i + kVec <= n; i += kVec) store_vec(dst + i, load_vec<vu32>(src + i));
  for (; i < n; ++i) dst[i] = src[i];
}

// dst ^= src: reads both, writes dst where it was just read (the access pattern of penalty_grad's g).
void limit_rmw_range(const uint8_t* src, uint8_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + kStep <= n; i += kStep) {
    for (int64_t v = 0; v < kStep; v += kVec)
      store_vec(dst + i + v, load_vec<vu32>(dst + i + v) ^ load_vec<vu32>(src + i + v));
  }
  for (; i + kVec <= n; i += kVec) store_vec(dst + i, load_vec<vu32>(dst + i) ^ load_vec<vu32>(src + i));
  for (; i < n; ++i) dst[i] = static_cast<uint8_t>(dst[i] ^ src[i]);
}

}  // namespace RDF_ISA
}  // namespace cpu
}  // namespace rdf
