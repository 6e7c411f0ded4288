// CUDA iteration for the mask-based dropout variants (dropout with broadcast axes, drop_path, alpha dropout,
// their backward). Values come from csrc/common/dropout_broadcast_element.h, the element body the CPU loops
// run; decisions from dropout's own mask kernel: a call without stored bits first writes the reduced mask
// with dropout_mask (the call's mask, or a scratch buffer for store="seed" and for a backward regenerating
// its decisions), then the apply kernel reads it. So the bits are dropout_mask's of the reduced shape, the
// CPU's bit for bit.
//
// The apply kernel walks the simplified layout (simplify_broadcast: axes in memory order, the last of memory
// stride 1; short rows sharing their decisions folded into long periodic ones, fold_periodic_rows): a thread
// takes a segment of up to kThreadElems consecutive elements of one inner row, finds the row's memory and
// reduced offsets once (broadcast_row), and applies the policy to each element i of the row with its
// decision bit red + (i % period) * rstride (one bit for the whole segment when the row is broadcast).
// Consecutive threads take consecutive segments of a row, so a warp's accesses are contiguous stretches of
// memory.
//
// in and out may be the same array (in place): no __restrict__ on them; each element is read, then written,
// by one thread.
#include <cuda_runtime.h>

#include <cstdint>

#include "../common/dropout_broadcast_element.h"
#include "check_cuda.h"
#include "entry_points.h"

namespace rdf {
namespace cuda {
namespace {

constexpr int kThreadElems = 16;  // elements per thread and step

template <class T, class P>
__global__ void __launch_bounds__(kThreads) broadcast_apply_kernel(const T* in, T* out, const uint8_t* __restrict__ bits,
                                                                   BroadcastLayout L, int64_t period, int64_t segments,
                                                                   int64_t chunks, P value) {
  const int last = L.ndim - 1;
  const int64_t inner = L.shape[last], s = L.stride[last], r = L.rstride[last];
  const int64_t first = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t t = first; t < segments; t += stride) {
    const int64_t i0 = (t % chunks) * kThreadElems;
    int64_t mem, red;
    broadcast_row(L, t / chunks, mem, red);
    mem += i0 * s;
    const int len = static_cast<int>(inner - i0 < kThreadElems ? inner - i0 : kThreadElems);
    const bool shared = mask_bit(bits, red);  // the segment's one decision when r == 0
#pragma unroll
    for (int k = 0; k < kThreadElems; ++k) {
      if (k < len) {
        const int64_t i = i0 + k;
        const bool keep = r == 0 ? shared : mask_bit(bits, red + (period ? i % period : i) * r);
        masked_element(in[mem + k * s], out[mem + k * s], keep, value);
      }
    }
  }
}

template <class P>
void launch_apply(DType dt, const void* in, void* out, const uint8_t* bits, const BroadcastLayout& L, int64_t period,
                  int64_t n, const P& value_tag, const MaskedParams& prm, int device, Stream stream) {
  const int64_t inner = L.shape[L.ndim - 1];
  const int64_t chunks = (inner + kThreadElems - 1) / kThreadElems;
  const int64_t segments = n / inner * chunks;
  const unsigned int grid = grid_capped(segments, device);
  auto s = static_cast<cudaStream_t>(stream);
  dispatch_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    const T* x = static_cast<const T*>(in);
    T* y = static_cast<T*>(out);
    const auto same = [](C v) { return v; };
    if constexpr (P::value == MaskedValue::kAlpha) {
      using Policy = AlphaValue<C>;
      const Policy value = alpha_policy<C, C>(prm, same);
      broadcast_apply_kernel<T, Policy><<<grid, kThreads, 0, s>>>(x, y, bits, L, period, segments, chunks, value);
    } else {
      using Policy = ScaledValue<C>;
      const Policy value = scaled_policy<C, C>(prm, same);
      broadcast_apply_kernel<T, Policy><<<grid, kThreads, 0, s>>>(x, y, bits, L, period, segments, chunks, value);
    }
  });
  check_launch("dropout broadcast kernel launch", s);
}

}  // namespace

void dropout_broadcast(DType dt, const void* in, void* out, const uint8_t* bits_in, uint8_t* bits_out,
                       uint8_t* scratch, int ndim, const int64_t* shape, const int64_t* strides,
                       const int64_t* rstrides, int64_t m, const MaskedParams& prm, int device, Stream stream) {
  BroadcastLayout L;
  simplify_broadcast(ndim, shape, strides, rstrides, L);
  int64_t n = 1;
  for (int d = 0; d < ndim; ++d) n *= shape[d];
  const uint8_t* bits = bits_in;
  if (bits == nullptr) {
    uint8_t* target = bits_out ? bits_out : scratch;
    dropout_mask(target, m, prm.keep, device, stream);  // its own launch on the same stream: ordered before ours
    bits = target;
  }
  if (n <= 0) return;
  DeviceGuard guard(device);
  // Rows shorter than a thread's segment would leave threads idle: fold them (any period: a row of the fold
  // is walked in segments like any other).
  const int64_t period = fold_periodic_rows(L, INT64_MAX);
  if (prm.value == MaskedValue::kAlpha) {
    launch_apply(dt, in, out, bits, L, period, n, std::integral_constant<MaskedValue, MaskedValue::kAlpha>(), prm,
                 device, stream);
  } else {
    launch_apply(dt, in, out, bits, L, period, n, std::integral_constant<MaskedValue, MaskedValue::kScaled>(), prm,
                 device, stream);
  }
}

}  // namespace cuda
}  // namespace rdf
