// Benchmark instruments, not part of the API: the memory limits the CPU kernels are measured against
// (python/regdrop_fast/bench/limits.py). Each moves n bytes per buffer on the kernels' thread pool, cut
// into tasks of task_bytes (the caller picks it so the task count equals the measured kernel's), with the
// SIMD width in use (active_isa()). Buffers arrive checked by the Python layer: n bytes each, disjoint,
// dst writeable, task_bytes >= 1.
#pragma once
#include <cstdint>

namespace rdf {
namespace cpu {

// dst = src: reads n bytes, writes n bytes (the dropout kernels' traffic: read x, write y).
void limit_copy(const uint8_t* src, uint8_t* dst, int64_t n, int64_t task_bytes);
// dst ^= src in place: reads 2n bytes, writes n (penalty_grad's traffic: read w, read g, write g).
void limit_rmw(const uint8_t* src, uint8_t* dst, int64_t n, int64_t task_bytes);

}  // namespace cpu
}  // namespace rdf
