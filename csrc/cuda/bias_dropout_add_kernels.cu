// CUDA iteration for the fused epilogue y = residual + dropout(x + bias) and its backward. Values come from
// csrc/common/bias_dropout_add_element.h, decisions from dropout's own stream code (dropout_groups.cuh): the
// forward is one launch in which each thread takes 16-element groups as dropout_kernel does (the loads of x
// and residual issued before the Philox rounds, 16-byte vectors when x, residual and y are aligned, the
// offset's alignment a template constant), decides, writes the group's two mask bytes (store="bits") and
// its 16 values. The masks are therefore dropout's bit for bit, and so identical to the CPU's.
//
// Backward: one thread per (row block, column) adds dx over the block's kBiasRowBlock rows in row order
// (consecutive threads take consecutive columns, so a warp reads a contiguous stretch of each row); a second
// kernel, one thread per column, adds the block partials in block order. The same order as the CPU loops,
// so dbias has the same bits on both. A store="seed" mask is regenerated into scratch bits first (the
// column order visits one element per Philox block, so inline generation would waste 3 of its 4 words).
//
// A block of a global tensor (csrc/common/global_block.h) takes bias_dropout_add_global_kernel: a thread's
// group of 16 elements in the block's C order takes its bits from the pieces of the block's rows it touches
// (block_group_bits, dropout_global_kernel's own loop), so the decisions are dropout(..., global_shape=)'s;
// its values go element by element (a group may span rows, so no vector moves). The backward regenerates a
// block's store="seed" mask with dropout_global's mask kernel.
//
// y may be x or residual (in place): no __restrict__ on them; a thread loads every value of a group before
// it stores any, and groups never overlap.
#include <cuda_runtime.h>

#include "../common/bias_dropout_add_element.h"
#include "check_cuda.h"
#include "dropout_groups.cuh"
#include "entry_points.h"

namespace rdf {
namespace cuda {
namespace {

// The values of one group (or, in the partial last group, its first `count` elements) from the loaded x and
// residual, with the bias column of the group's first element, c, stepped along.
template <bool HAS_BIAS, class T>
__device__ __forceinline__ void epilogue_group(const Group<T>& gx, const T* bias, const Group<T>& gr, Group<T>& gy,
                                               uint32_t bits, int64_t c, int64_t h, compute_t<T> scale) {
#pragma unroll
  for (int k = 0; k < kThreadElems; ++k) {
    bias_dropout_add_element<HAS_BIAS>(gx.v[k], HAS_BIAS ? bias + c : nullptr, gr.v[k], gy.v[k], (bits >> k) & 1u,
                                       scale);
    if (HAS_BIAS && ++c == h) c = 0;
  }
}

template <class T, bool HAS_BIAS, KeepSource S, int SKIP, bool VEC>
__global__ void __launch_bounds__(kThreads) bias_dropout_add_kernel(const T* x, const T* bias, const T* residual, T* y,
                                                                    uint8_t* __restrict__ bits_out, int64_t n,
                                                                    int64_t h, DropoutParams prm) {
  const auto scale = static_cast<compute_t<T>>(prm.scale);
  const int64_t full = n / kThreadElems;
  const int64_t first = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t grp = first; grp < full; grp += stride) {
    const int64_t i0 = grp * kThreadElems;
    Group<T> gx, gr, gy;
    load_group<T, VEC>(x + i0, gx);  // loads in flight while the words are computed
    load_group<T, VEC>(residual + i0, gr);
    const uint32_t bits = group_bits<S, SKIP>(nullptr, i0, kThreadElems, prm);
    epilogue_group<HAS_BIAS>(gx, bias, gr, gy, bits, HAS_BIAS ? i0 % h : 0, h, scale);
    store_group<T, VEC>(y + i0, gy);
    if (bits_out) {
      bits_out[2 * grp] = static_cast<uint8_t>(bits);
      bits_out[2 * grp + 1] = static_cast<uint8_t>(bits >> 8);
    }
  }
  // The partial group (1..15 elements), element by element, by the thread after the last full group's.
  const int count = static_cast<int>(n - full * kThreadElems);
  if (count > 0 && first == full % stride) {
    const int64_t i0 = full * kThreadElems;
    const uint32_t bits = group_bits<S, SKIP>(nullptr, i0, count, prm) & ((1u << count) - 1u);  // bits past n are 0
    int64_t c = HAS_BIAS ? i0 % h : 0;
#pragma unroll
    for (int k = 0; k < kThreadElems; ++k) {
      if (k < count) {
        bias_dropout_add_element<HAS_BIAS>(x[i0 + k], HAS_BIAS ? bias + c : nullptr, residual[i0 + k], y[i0 + k],
                                           (bits >> k) & 1u, scale);
      }
      if (HAS_BIAS && ++c == h) c = 0;
    }
    if (bits_out) {
      bits_out[i0 / 8] = static_cast<uint8_t>(bits);
      if (count > 8) bits_out[i0 / 8 + 1] = static_cast<uint8_t>(bits >> 8);
    }
  }
}

template <class T, bool HAS_BIAS, KeepSource S>
__global__ void __launch_bounds__(kThreads)
    bias_dropout_add_global_kernel(const T* x, const T* bias, const T* residual, T* y, uint8_t* __restrict__ bits_out,
                                   int64_t n, int64_t h, GlobalRows rows, DropoutParams prm) {
  const auto scale = static_cast<compute_t<T>>(prm.scale);
  const int64_t groups = (n + kThreadElems - 1) / kThreadElems;
  const int64_t first = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t grp = first; grp < groups; grp += stride) {
    const int64_t i0 = grp * kThreadElems;
    const int len = static_cast<int>(n - i0 < kThreadElems ? n - i0 : kThreadElems);
    const uint32_t bits = block_group_bits<S>(rows, i0, len, prm);
    int64_t c = HAS_BIAS ? i0 % h : 0;
#pragma unroll
    for (int k = 0; k < kThreadElems; ++k) {
      if (k < len) {
        bias_dropout_add_element<HAS_BIAS>(x[i0 + k], HAS_BIAS ? bias + c : nullptr, residual[i0 + k], y[i0 + k],
                                           (bits >> k) & 1u, scale);
      }
      if (HAS_BIAS && ++c == h) c = 0;
    }
    if (bits_out) {
      bits_out[2 * grp] = static_cast<uint8_t>(bits);
      if (len > 8) bits_out[2 * grp + 1] = static_cast<uint8_t>(bits >> 8);
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

// with_keep_source without kBits (a forward has no bits to read), so that no kernel is compiled for it.
template <class Fn>
void with_decided_source(KeepSource source, Fn&& fn) {
  switch (source) {
    case KeepSource::kNone:
      return fn(std::integral_constant<KeepSource, KeepSource::kNone>());
    case KeepSource::kAll:
      return fn(std::integral_constant<KeepSource, KeepSource::kAll>());
    default:
      return fn(std::integral_constant<KeepSource, KeepSource::kStream>());
  }
}

void launch_global(DType dt, const void* x, const void* bias, const void* residual, void* y, uint8_t* bits, int64_t n,
                   int64_t h, const DropoutParams& prm, const GlobalRows& rows, unsigned int grid, cudaStream_t s) {
  dispatch_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = static_cast<const T*>(x);
    const T* bp = static_cast<const T*>(bias);
    const T* rp = static_cast<const T*>(residual);
    T* yp = static_cast<T*>(y);
    with_decided_source(keep_source(false, prm), [&](auto src) {
      constexpr KeepSource S = decltype(src)::value;
      if (bias) {
        bias_dropout_add_global_kernel<T, true, S><<<grid, kThreads, 0, s>>>(xp, bp, rp, yp, bits, n, h, rows, prm);
      } else {
        bias_dropout_add_global_kernel<T, false, S><<<grid, kThreads, 0, s>>>(xp, bp, rp, yp, bits, n, n, rows, prm);
      }
    });
  });
  check_launch("bias_dropout_add global kernel launch", s);
}

}  // namespace

void bias_dropout_add_forward(DType dt, const void* x, const void* bias, const void* residual, void* y,
                              uint8_t* bits, int64_t n, int64_t h, const DropoutParams& prm, int device,
                              Stream stream, const GlobalRows* block) {
  if (n <= 0) return;
  DeviceGuard guard(device);
  auto s = static_cast<cudaStream_t>(stream);
  const unsigned int grid = grid_capped((n + kThreadElems - 1) / kThreadElems, device);
  if (block != nullptr) {
    launch_global(dt, x, bias, residual, y, bits, n, h, prm, *block, grid, s);
    return;
  }
  const bool vector_io = aligned16(x) && aligned16(residual) && aligned16(y);
  const KeepSource source = keep_source(false, prm);  // never kBits: the forward makes its decisions
  dispatch_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = static_cast<const T*>(x);
    const T* bp = static_cast<const T*>(bias);
    const T* rp = static_cast<const T*>(residual);
    T* yp = static_cast<T*>(y);
    with_decided_source(source, [&](auto src) {
      constexpr KeepSource S = decltype(src)::value;
      // only the stream depends on the offset's alignment; p = 0 and p = 1 run the SKIP = 0 kernel
      with_skip(S == KeepSource::kStream ? static_cast<uint32_t>(prm.offset) : 0u, [&](auto skip) {
        constexpr int K = S == KeepSource::kStream ? decltype(skip)::value : 0;
        auto run = [&](auto has_bias, auto vec) {
          constexpr bool B = decltype(has_bias)::value, V = decltype(vec)::value;
          bias_dropout_add_kernel<T, B, S, K, V><<<grid, kThreads, 0, s>>>(xp, bp, rp, yp, bits, n, bias ? h : n,
                                                                           prm);
        };
        using Yes = std::true_type;
        using No = std::false_type;
        if (bias) {
          vector_io ? run(Yes(), Yes()) : run(Yes(), No());
        } else {
          vector_io ? run(No(), Yes()) : run(No(), No());
        }
      });
    });
  });
  check_launch("bias_dropout_add kernel launch", s);
}

void bias_dropout_add_backward(DType dt, const void* grad, void* dx, const uint8_t* bits, uint8_t* scratch_bits,
                               void* partials, void* dbias, int64_t rows, int64_t h, const DropoutParams& prm,
                               int device, Stream stream, const GlobalRows* block) {
  if (h <= 0) return;
  const int64_t blocks = (rows + kBiasRowBlock - 1) / kBiasRowBlock;
  if (!bits && blocks > 0) {  // a store="seed" mask: its bits regenerated first (a block's from its rows)
    if (block != nullptr) {
      dropout_global(DType::kFloat32, nullptr, nullptr, scratch_bits, rows * h, prm, *block, device, stream);
    } else {
      dropout_mask(scratch_bits, rows * h, prm, device, stream);
    }
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
