// CUDA iteration for dropout forward, backward and mask generation. Values and decisions come from the
// same csrc/common code as the CPU (Philox, dropout_keep, dropout_element), so for any (seed, offset) the
// masks are bit-identical to the CPU kernels and the NumPy reference.
//
// Each thread owns a group of 8 consecutive elements, i.e. one mask byte: it computes the 2 or 3 Philox
// blocks the group touches (3 when offset is not a multiple of 4), decides the 8 elements, applies the
// element body, and writes its byte. Data moves in 16-byte vectors when both pointers are 16-byte aligned
// (8 elements of every dtype are 16, 32 or 64 bytes), element by element otherwise.
#include <cuda_runtime.h>

#include "../common/dropout_element.h"
#include "../common/philox.h"
#include "check_cuda.h"
#include "entry_points.h"

namespace rdf {
namespace cuda {
namespace {

// The keep decisions of elements g, g+1, ..., g+7 of the dropout stream as one byte (bit k = element k).
__device__ __forceinline__ uint32_t stream_byte(uint64_t g, uint64_t seed, uint32_t threshold) {
  const uint64_t first = g >> 2;
  const uint32_t skip = static_cast<uint32_t>(g & 3u);
  uint32_t words[12] = {};
#pragma unroll
  for (int b = 0; b < 3; ++b) {
    if (b < 2 || skip != 0) dropout_block((first + b) & kDropoutBlockMask, seed, words + 4 * b);
  }
  // words[skip + k] with constant indices only (a select on skip), so words stays in registers; indexing it
  // by the run-time skip would put it in local memory.
  uint32_t byte = 0;
#pragma unroll
  for (int k = 0; k < 8; ++k) {
    const uint32_t word = skip == 0 ? words[k] : skip == 1 ? words[k + 1] : skip == 2 ? words[k + 2] : words[k + 3];
    byte |= static_cast<uint32_t>(dropout_keep(word, threshold)) << k;
  }
  return byte;
}

template <class T>
struct alignas(16) Group {
  T v[8];
};

template <class T, KeepSource S>
__global__ void dropout_kernel(const T* __restrict__ in, T* __restrict__ out, const uint8_t* __restrict__ bits_in,
                               uint8_t* __restrict__ bits_out, int64_t n, DropoutParams prm, bool vector_io) {
  const auto scale = static_cast<compute_t<T>>(prm.scale);
  const int64_t groups = (n + 7) / 8;
  for (int64_t grp = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; grp < groups;
       grp += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i0 = grp * 8;
    uint32_t byte = 0;
    if (S == KeepSource::kStream) byte = stream_byte(prm.offset + static_cast<uint64_t>(i0), prm.seed, prm.threshold);
    if (S == KeepSource::kBits) byte = bits_in[grp];
    if (S == KeepSource::kAll) byte = 0xFFu;
    const int64_t count = n - i0 < 8 ? n - i0 : 8;
    if (count < 8) byte &= (1u << count) - 1u;  // bits past the last element are 0
    if (out) {
      if (vector_io && count == 8) {
        Group<T> g = *reinterpret_cast<const Group<T>*>(in + i0);
#pragma unroll
        for (int k = 0; k < 8; ++k) dropout_element(g.v[k], g.v[k], (byte >> k) & 1u, scale);
        *reinterpret_cast<Group<T>*>(out + i0) = g;
      } else {
        for (int k = 0; k < count; ++k) dropout_element(in[i0 + k], out[i0 + k], (byte >> k) & 1u, scale);
      }
    }
    if (bits_out) bits_out[grp] = static_cast<uint8_t>(byte);
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

void launch(DType dt, const void* in, void* out, const uint8_t* bits_in, uint8_t* bits_out, int64_t n,
            const DropoutParams& prm, int device, Stream stream) {
  if (n <= 0) return;
  DeviceGuard guard(device);
  const bool vector_io = (!in || aligned16(in)) && (!out || aligned16(out));
  const unsigned int grid = grid_for((n + 7) / 8);
  auto s = static_cast<cudaStream_t>(stream);
  dispatch_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* x = static_cast<const T*>(in);
    T* y = static_cast<T*>(out);
    with_keep_source(keep_source(bits_in != nullptr, prm), [&](auto source) {
      dropout_kernel<T, decltype(source)::value><<<grid, kThreads, 0, s>>>(x, y, bits_in, bits_out, n, prm, vector_io);
    });
  });
  check(cudaGetLastError(), "dropout kernel launch");
}

}  // namespace

void dropout_forward(DType dt, const void* x, void* y, uint8_t* bits, int64_t n, const DropoutParams& prm,
                     int device, Stream stream) {
  launch(dt, x, y, nullptr, bits, n, prm, device, stream);
}

void dropout_backward(DType dt, const void* grad, void* dx, const uint8_t* bits, int64_t n,
                      const DropoutParams& prm, int device, Stream stream) {
  launch(dt, grad, dx, bits, nullptr, n, prm, device, stream);
}

void dropout_mask(uint8_t* bits, int64_t n, const DropoutParams& prm, int device, Stream stream) {
  launch(DType::kFloat32, nullptr, nullptr, nullptr, bits, n, prm, device, stream);
}

}  // namespace cuda
}  // namespace rdf
