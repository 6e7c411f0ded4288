// CUDA iteration for dropout forward, backward and mask generation. Values and decisions come from the
// same csrc/common code as the CPU (Philox, dropout_keep, dropout_element), so for any (seed, offset) the
// masks are bit-identical to the CPU kernels and the NumPy reference.
//
// Each thread handles groups of kThreadElems = 16 consecutive elements (two mask bytes) in a grid-stride
// loop over the full groups, with a grid capped at a few blocks per SM (grid_capped). Per group it first
// issues the loads of its 16 values (16-byte vectors when both pointers are 16-byte aligned: template VEC),
// then computes the Philox blocks the group touches, decides, applies the element body, stores. The
// group's first element has global index g = offset + 16 * group, so g & 3 is offset & 3 in every group of
// a launch: the kernel is specialized on it (template SKIP), the group's words are words[SKIP + k] with
// constant indices (registers, no selection), and it computes (SKIP + 16 + 3) / 4 blocks: 4 when the offset
// is a multiple of 4, else 5. The last n % 16 elements (a partial group) are done after the loop by one
// thread, element by element.
//
// Dense strided arrays (channels_last, permuted axes; csrc/common/strided_layout.h) take
// dropout_strided_kernel: a thread handles a segment of up to 16 logically consecutive elements along the
// layout's inner axis (one run of the stream: 4 or 5 Philox blocks, or up to 3 mask bytes), reading and
// writing them at the inner axis' memory stride; consecutive threads take consecutive indices along the
// minor axis (memory stride 1), so a warp's loads and stores of one step are contiguous. The mask bits of
// such a call are written first, in logical order, by the contiguous kernel without values, and the
// strided kernel reads them back (segments do not cover whole mask bytes).
//
// A block of a global tensor (csrc/common/global_block.h) takes dropout_global_kernel: a thread handles a
// group of 16 elements of the block in its C order (two mask bytes, so no byte is shared between threads),
// split into pieces at the ends of the block's rows; each piece is a run of the stream from its row's start
// position (segment_bits: 4 or 5 Philox blocks for a whole group within one row). Values are read and written
// in the block's C order; consecutive threads take consecutive groups, so a warp's accesses are contiguous.
//
// x and y may be the same array (dropout in place, out=x): so no __restrict__ on them (a restrict-qualified
// pair may be read through the non-coherent cache path, which is undefined when the kernel writes the same
// memory); a thread loads every value of a group before it stores any, and groups never overlap.
#include <cuda_runtime.h>

#include "../common/dropout_element.h"
#include "../common/philox.h"
#include "../common/strided_layout.h"
#include "check_cuda.h"
#include "dropout_groups.cuh"
#include "entry_points.h"

namespace rdf {
namespace cuda {
namespace {

template <class T, KeepSource S, int SKIP, bool VEC>
__global__ void __launch_bounds__(kThreads) dropout_kernel(const T* in, T* out, const uint8_t* __restrict__ bits_in,
                                                           uint8_t* __restrict__ bits_out, int64_t n, DropoutParams prm) {
  const auto scale = static_cast<compute_t<T>>(prm.scale);
  const int64_t full = n / kThreadElems;
  const int64_t first = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t grp = first; grp < full; grp += stride) {
    const int64_t i0 = grp * kThreadElems;
    Group<T> g;
    if (out) load_group<T, VEC>(in + i0, g);  // loads in flight while the words are computed
    const uint32_t bits = group_bits<S, SKIP>(bits_in, i0, kThreadElems, prm);
    if (out) {
#pragma unroll
      for (int k = 0; k < kThreadElems; k += 2) {
        dropout_element_pair(g.v + k, g.v + k, (bits >> k) & 1u, (bits >> (k + 1)) & 1u, scale);
      }
      store_group<T, VEC>(out + i0, g);
    }
    if (bits_out) {
      bits_out[2 * grp] = static_cast<uint8_t>(bits);
      bits_out[2 * grp + 1] = static_cast<uint8_t>(bits >> 8);
    }
  }
  // The partial group (1..15 elements), element by element, by the thread after the last full group's.
  const int count = static_cast<int>(n - full * kThreadElems);
  if (count > 0 && first == full % stride) {
    const int64_t i0 = full * kThreadElems;
    const uint32_t bits = group_bits<S, SKIP>(bits_in, i0, count, prm) & ((1u << count) - 1u);  // bits past n are 0
    if (out) {
#pragma unroll
      for (int k = 0; k < kThreadElems; ++k) {
        if (k < count) dropout_element(in[i0 + k], out[i0 + k], (bits >> k) & 1u, scale);
      }
    }
    if (bits_out) {
      bits_out[i0 / 8] = static_cast<uint8_t>(bits);
      if (count > 8) bits_out[i0 / 8 + 1] = static_cast<uint8_t>(bits >> 8);
    }
  }
}

template <class T, KeepSource S>
__global__ void __launch_bounds__(kThreads) dropout_strided_kernel(const T* in, T* out,
                                                                   const uint8_t* __restrict__ bits_in, StridedLayout L,
                                                                   int64_t segments, int64_t chunks, DropoutParams prm) {
  const auto scale = static_cast<compute_t<T>>(prm.scale);
  const int64_t n_inner = L.shape[L.inner], inner_stride = L.stride[L.inner];
  const bool split = L.minor != L.inner;
  const int64_t n_minor = split ? L.shape[L.minor] : 1, minor_lstride = split ? L.lstride[L.minor] : 0;
  const int64_t first = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t t = first; t < segments; t += stride) {
    const int64_t j = t % n_minor;  // minor index (0 when minor is inner)
    const int64_t rest = t / n_minor;
    const int64_t i0 = (rest % chunks) * kThreadElems;
    int64_t mem, log;
    outer_offsets(L, rest / chunks, mem, log);
    mem += i0 * inner_stride + j;  // the minor axis has memory stride 1
    log += i0 + j * minor_lstride;
    const int len = static_cast<int>(n_inner - i0 < kThreadElems ? n_inner - i0 : kThreadElems);
    const uint32_t bits = segment_bits<S>(bits_in, log, len, prm);
#pragma unroll
    for (int k = 0; k < kThreadElems; ++k) {
      if (k < len) dropout_element(in[mem + k * inner_stride], out[mem + k * inner_stride], (bits >> k) & 1u, scale);
    }
  }
}

template <class T, KeepSource S>
__global__ void __launch_bounds__(kThreads) dropout_global_kernel(const T* in, T* out, uint8_t* __restrict__ bits_out,
                                                                  int64_t n, GlobalRows rows, DropoutParams prm) {
  const auto scale = static_cast<compute_t<T>>(prm.scale);
  const int64_t groups = (n + kThreadElems - 1) / kThreadElems;
  const int64_t first = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t grp = first; grp < groups; grp += stride) {
    const int64_t i0 = grp * kThreadElems;
    const int len = static_cast<int>(n - i0 < kThreadElems ? n - i0 : kThreadElems);
    const uint32_t bits = block_group_bits<S>(rows, i0, len, prm);
    if (out) {
#pragma unroll
      for (int k = 0; k < kThreadElems; ++k) {
        if (k < len) dropout_element(in[i0 + k], out[i0 + k], (bits >> k) & 1u, scale);
      }
    }
    if (bits_out) {
      bits_out[2 * grp] = static_cast<uint8_t>(bits);
      if (len > 8) bits_out[2 * grp + 1] = static_cast<uint8_t>(bits >> 8);
    }
  }
}

void launch_strided(DType dt, const void* in, void* out, const uint8_t* bits_in, const StridedLayout& L,
                    const DropoutParams& prm, int device, Stream stream) {
  DeviceGuard guard(device);
  const int64_t chunks = (L.shape[L.inner] + kThreadElems - 1) / kThreadElems;
  const int64_t segments = outer_count(L) * chunks * (L.minor != L.inner ? L.shape[L.minor] : 1);
  const unsigned int grid = grid_capped(segments, device);
  auto s = static_cast<cudaStream_t>(stream);
  const KeepSource source = keep_source(bits_in != nullptr, prm);
  dispatch_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* x = static_cast<const T*>(in);
    T* y = static_cast<T*>(out);
    with_keep_source(source, [&](auto src) {
      constexpr KeepSource S = decltype(src)::value;
      dropout_strided_kernel<T, S><<<grid, kThreads, 0, s>>>(x, y, bits_in, L, segments, chunks, prm);
    });
  });
  check_launch("dropout strided kernel launch", s);
}

void launch(DType dt, const void* in, void* out, const uint8_t* bits_in, uint8_t* bits_out, int64_t n,
            const DropoutParams& prm, int device, Stream stream) {
  if (n <= 0) return;
  DeviceGuard guard(device);
  const bool vector_io = (!in || aligned16(in)) && (!out || aligned16(out));
  const unsigned int grid = grid_capped((n + kThreadElems - 1) / kThreadElems, device);
  auto s = static_cast<cudaStream_t>(stream);
  const KeepSource source = keep_source(bits_in != nullptr, prm);
  dispatch_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* x = static_cast<const T*>(in);
    T* y = static_cast<T*>(out);
    with_keep_source(source, [&](auto src) {
      constexpr KeepSource S = decltype(src)::value;
      // only the stream depends on the offset's alignment; the other sources run the SKIP = 0 kernel
      with_skip(S == KeepSource::kStream ? static_cast<uint32_t>(prm.offset) : 0u, [&](auto skip) {
        constexpr int K = S == KeepSource::kStream ? decltype(skip)::value : 0;
        if (vector_io) {
          dropout_kernel<T, S, K, true><<<grid, kThreads, 0, s>>>(x, y, bits_in, bits_out, n, prm);
        } else {
          dropout_kernel<T, S, K, false><<<grid, kThreads, 0, s>>>(x, y, bits_in, bits_out, n, prm);
        }
      });
    });
  });
  check_launch("dropout kernel launch", s);
}

// One pass of a call over its layout (null: C-contiguous). A strided layout's mask bits are written first
// in logical order, then read back for the values.
void run_call(DType dt, const void* in, void* out, const uint8_t* bits_in, uint8_t* bits_out, int64_t n,
              const DropoutParams& prm, int device, Stream stream, const ArrayLayout* layout) {
  StridedLayout L;
  if (n <= 0 || layout == nullptr || !simplify_layout(layout->ndim, layout->shape, layout->strides, L)) {
    launch(dt, in, out, bits_in, bits_out, n, prm, device, stream);
    return;
  }
  if (bits_out != nullptr) {
    launch(dt, nullptr, nullptr, nullptr, bits_out, n, prm, device, stream);
    bits_in = bits_out;
  }
  launch_strided(dt, in, out, bits_in, L, prm, device, stream);
}

}  // namespace

void dropout_forward(DType dt, const void* x, void* y, uint8_t* bits, int64_t n, const DropoutParams& prm,
                     int device, Stream stream, const ArrayLayout* layout) {
  run_call(dt, x, y, nullptr, bits, n, prm, device, stream, layout);
}

void dropout_backward(DType dt, const void* grad, void* dx, const uint8_t* bits, int64_t n,
                      const DropoutParams& prm, int device, Stream stream, const ArrayLayout* layout) {
  run_call(dt, grad, dx, bits, nullptr, n, prm, device, stream, layout);
}

void dropout_mask(uint8_t* bits, int64_t n, const DropoutParams& prm, int device, Stream stream) {
  launch(DType::kFloat32, nullptr, nullptr, nullptr, bits, n, prm, device, stream);
}

void dropout_global(DType dt, const void* in, void* out, uint8_t* bits, int64_t n, const DropoutParams& prm,
                    const GlobalRows& rows, int device, Stream stream) {
  if (n <= 0) return;
  DeviceGuard guard(device);
  const unsigned int grid = grid_capped((n + kThreadElems - 1) / kThreadElems, device);
  auto s = static_cast<cudaStream_t>(stream);
  const KeepSource source = keep_source(false, prm);
  dispatch_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* x = static_cast<const T*>(in);
    T* y = static_cast<T*>(out);
    with_keep_source(source, [&](auto src) {
      constexpr KeepSource S = decltype(src)::value;
      dropout_global_kernel<T, S><<<grid, kThreads, 0, s>>>(x, y, bits, n, rows, prm);
    });
  });
  check_launch("dropout global kernel launch", s);
}

}  // namespace cuda
}  // namespace rdf
