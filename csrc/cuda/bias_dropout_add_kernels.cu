// CUDA iteration for the fused epilogue y = residual + dropout(x + bias) and its backward. Values come from
// csrc/common/bias_dropout_add_element.h, decisions from dropout's own mask kernel: each call first writes
// the keep bits with dropout_mask (the same Philox code and launch as dropout's, into the call's mask, or a
// scratch buffer for store="seed"), then the fused pass reads them, one byte (8 elements) per thread and
// loop iteration. The masks are therefore dropout's bit for bit, and so identical to the CPU's.
//
// Backward: one thread per (row block, column) adds dx over the block's kBiasRowBlock rows in row order
// (consecutive threads take consecutive columns, so a warp reads a contiguous stretch of each row); a second
// kernel, one thread per column, adds the block partials in block order. The same order as the CPU loops,
// so dbias has the same bits on both.
//
// y may be x or residual (in place): no __restrict__ on them; each element is read, then written, by one thread.
#include <cuda_runtime.h>

#include "../common/bias_dropout_add_element.h"
#include "check_cuda.h"
#include "entry_points.h"

namespace rdf {
namespace cuda {
namespace {

template <class T, bool HAS_BIAS>
__global__ void __launch_bounds__(kThreads) bias_dropout_add_kernel(const T* x, const T* bias, const T* residual, T* y,
                                                                    const uint8_t* __restrict__ bits, int64_t n,
                                                                    int64_t h, DropoutParams prm) {
  const auto scale = static_cast<compute_t<T>>(prm.scale);
  const int64_t bytes = (n + 7) / 8;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; k < bytes; k += stride) {
    const uint32_t byte = bits[k];
    const int64_t e0 = 8 * k;
    int64_t c = HAS_BIAS ? e0 % h : 0;  // the bias column of element e0, stepped along with it
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int64_t e = e0 + j;
      if (e < n) {
        bias_dropout_add_element<HAS_BIAS>(x[e], HAS_BIAS ? bias + c : nullptr, residual[e], y[e], (byte >> j) & 1u,
                                           scale);
      }
      if (HAS_BIAS && ++c == h) c = 0;
    }
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads) bias_grad_kernel(const T* __restrict__ grad, T* __restrict__ dx,
                                                             const uint8_t* __restrict__ bits,
                                                             compute_t<T>* __restrict__ partials, int64_t rows,
                                                             int64_t h, int64_t blocks, DropoutParams prm) {
  const auto scale = static_cast<compute_t<T>>(prm.scale);
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; k < blocks * h; k += stride) {
    const int64_t blk = k / h, c = k % h;
    const int64_t r1 = rows < (blk + 1) * kBiasRowBlock ? rows : (blk + 1) * kBiasRowBlock;
    compute_t<T> acc{};
    for (int64_t r = blk * kBiasRowBlock; r < r1; ++r) {
      const int64_t e = r * h + c;
      bias_dropout_add_grad_element(grad[e], dx[e], (bits[e / 8] >> (e % 8)) & 1u, scale, acc);
    }
    partials[k] = acc;
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads) bias_grad_combine_kernel(const compute_t<T>* __restrict__ partials,
                                                                     T* __restrict__ dbias, int64_t blocks, int64_t h) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; c < h; c += stride) {
    compute_t<T> sum{};
    for (int64_t blk = 0; blk < blocks; ++blk) sum = sum + partials[blk * h + c];  // block order
    store(dbias[c], sum);
  }
}

}  // namespace

void bias_dropout_add_forward(DType dt, const void* x, const void* bias, const void* residual, void* y,
                              uint8_t* bits, int64_t n, int64_t h, const DropoutParams& prm, int device,
                              Stream stream) {
  if (n <= 0) return;
  dropout_mask(bits, n, prm, device, stream);
  DeviceGuard guard(device);
  auto s = static_cast<cudaStream_t>(stream);
  const unsigned int grid = grid_capped((n + 7) / 8, device);
  dispatch_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = static_cast<const T*>(x);
    const T* rp = static_cast<const T*>(residual);
    T* yp = static_cast<T*>(y);
    if (bias) {
      bias_dropout_add_kernel<T, true><<<grid, kThreads, 0, s>>>(xp, static_cast<const T*>(bias), rp, yp, bits, n, h, prm);
    } else {
      bias_dropout_add_kernel<T, false><<<grid, kThreads, 0, s>>>(xp, nullptr, rp, yp, bits, n, n, prm);
    }
  });
  check_launch("bias_dropout_add kernel launch", s);
}

void bias_dropout_add_backward(DType dt, const void* grad, void* dx, const uint8_t* bits, uint8_t* scratch_bits,
                               void* partials, void* dbias, int64_t rows, int64_t h, const DropoutParams& prm,
                               int device, Stream stream) {
  if (h <= 0) return;
  const int64_t blocks = (rows + kBiasRowBlock - 1) / kBiasRowBlock;
  if (!bits && blocks > 0) {  // a store="seed" mask: its bits regenerated first
    dropout_mask(scratch_bits, rows * h, prm, device, stream);
    bits = scratch_bits;
  }
  DeviceGuard guard(device);
  auto s = static_cast<cudaStream_t>(stream);
  const unsigned int grid = grid_capped(blocks * h, device), combine_grid = grid_capped(h, device);
  dispatch_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    using C = compute_t<T>;
    if (blocks > 0) {
      bias_grad_kernel<T><<<grid, kThreads, 0, s>>>(static_cast<const T*>(grad), static_cast<T*>(dx), bits,
                                                    static_cast<C*>(partials), rows, h, blocks, prm);
    }
    bias_grad_combine_kernel<T><<<combine_grid, kThreads, 0, s>>>(static_cast<const C*>(partials),
                                                                  static_cast<T*>(dbias), blocks, h);
  });
  check_launch("bias_dropout_add backward launch", s);
}

}  // namespace cuda
}  // namespace rdf
