// Raw Philox4x32-R blocks on the device, through philox4x32_fixed<R> as the dropout kernels run it, for
// arbitrary counters and keys: the known-answer vectors (tests/test_philox.py) check the device generator
// with it. One thread per block.
#include <cuda_runtime.h>

#include "../common/philox.h"
#include "check_cuda.h"
#include "entry_points.h"

namespace rdf {
namespace cuda {
namespace {

template <int R>
__global__ void philox_kernel(const uint32_t* __restrict__ counters, const uint32_t* __restrict__ keys,
                              uint32_t* __restrict__ out, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint32_t c[4] = {counters[4 * i], counters[4 * i + 1], counters[4 * i + 2], counters[4 * i + 3]};
    philox4x32_fixed<R>(c, keys[2 * i], keys[2 * i + 1]);
    for (int w = 0; w < 4; ++w) out[4 * i + w] = c[w];
  }
}

}  // namespace

void philox4x32(const uint32_t* counters, const uint32_t* keys, uint32_t* out, int64_t n, int rounds, int device,
                Stream stream) {
  if (n <= 0) return;
  if (rounds < 1 || rounds > kPhiloxMaxRounds) throw std::invalid_argument("regdrop_fast CUDA: rounds 1..16");
  DeviceGuard guard(device);
  const unsigned int grid = grid_for(n);
  auto s = static_cast<cudaStream_t>(stream);
  with_fixed_rounds(rounds, [&](auto r) {
    philox_kernel<decltype(r)::value><<<grid, kThreads, 0, s>>>(counters, keys, out, n);
  });
  check_launch("philox kernel launch", s);
}

}  // namespace cuda
}  // namespace rdf
