// A stand-in for <cuda_runtime.h> that lets the CUDA sources (csrc/cuda/*.cu) build with the host C++
// compiler and run on the CPU, for tests/test_cuda_emulated.py. Every CUDA thread of a block is a fiber
// (ucontext) with its own stack; the fibers of a block run one at a time, in a new shuffled order between
// every two barriers, each until it reaches __syncthreads() or returns, and a barrier is passed when every
// fiber of the block has reached it. So a thread that reads shared memory another thread writes without a
// barrier in between sees the wrong value in some block, reproducibly. __shared__ arrays are static (one
// per kernel, shared by the fibers); blocks run one at a time, in a shuffled order. Launches outside the
// device's grid/block limits are reported by cudaGetLastError(); 16-byte vectors (uint4) are aligned as on
// the device and every vector load/store checks its address. The test rewrites each launch `k<<<grid, block, 0, s>>>(args)` into
// rdf_emulate_launch(grid, block, [&] { k(args); }). Only what the sources use is provided.
#pragma once
#include <ucontext.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <math.h>
#include <memory>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __grid_constant__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
};
// 16-byte vector, aligned as on the device. Every copy from or into memory (a vector load `*p` or a store
// `*p = v` of the kernels) checks that the address is 16-byte aligned, as the GPU requires (it faults there).
struct alignas(16) uint4 {
  unsigned int x, y, z, w;
  uint4() = default;
  uint4(const uint4& o) : x(o.x), y(o.y), z(o.z), w(o.w) { check(&o); }
  uint4& operator=(const uint4& o) {
    check(this);
    check(&o);
    x = o.x, y = o.y, z = o.z, w = o.w;
    return *this;
  }
  static void check(const void* p) {
    if (reinterpret_cast<uintptr_t>(p) & 15u) {
      std::fprintf(stderr, "emulated CUDA: misaligned 16-byte vector access at %p\n", p);
      std::abort();
    }
  }
};
static_assert(alignof(uint4) == 16 && sizeof(uint4) == 16, "uint4 as on the device");

inline dim3 threadIdx, blockIdx, gridDim, blockDim;

namespace rdf_emulation {

constexpr size_t kStackBytes = size_t{128} << 10;
enum State { kReady, kAtBarrier, kDone };

struct Block {
  ucontext_t scheduler;
  std::vector<ucontext_t> contexts;
  std::vector<std::unique_ptr<char[]>> stacks;
  std::vector<State> states;
  unsigned int current = 0;
  const std::function<void()>* kernel = nullptr;
};

inline Block* running = nullptr;

// Fisher-Yates with a fixed-seed xorshift: every pass of every block runs its fibers in another order, so a
// missing barrier between a write and another thread's read shows up as a wrong value, reproducibly.
inline void shuffle(std::vector<unsigned int>& order, uint64_t& state) {
  for (size_t i = order.size(); i > 1; --i) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    const size_t j = static_cast<size_t>(state % i);
    const unsigned int tmp = order[i - 1];
    order[i - 1] = order[j];
    order[j] = tmp;
  }
}

inline void fiber_main() {
  Block* b = running;
  (*b->kernel)();
  b->states[b->current] = kDone;
  swapcontext(&b->contexts[b->current], &b->scheduler);
}

}  // namespace rdf_emulation

inline void __syncthreads() {
  rdf_emulation::Block* b = rdf_emulation::running;
  b->states[b->current] = rdf_emulation::kAtBarrier;
  swapcontext(&b->contexts[b->current], &b->scheduler);
}

using cudaError_t = int;
constexpr cudaError_t cudaSuccess = 0;
constexpr cudaError_t cudaErrorInvalidConfiguration = 9;
inline cudaError_t rdf_emulated_last_error = cudaSuccess;

template <class Kernel>
void rdf_emulate_launch(unsigned int grid, unsigned int block, Kernel kernel) {
  using namespace rdf_emulation;
  // The device's limits (compute capability 8.0 and up): 1..2^31-1 blocks in x, 1..1024 threads per block.
  // A launch outside them runs nothing and is reported by the next cudaGetLastError(), as on a GPU.
  if (grid == 0 || grid > 0x7FFFFFFFu || block == 0 || block > 1024) {
    rdf_emulated_last_error = cudaErrorInvalidConfiguration;
    return;
  }
  const std::function<void()> body = kernel;
  Block b;
  b.kernel = &body;
  b.contexts.resize(block);
  b.states.resize(block);
  for (unsigned int t = 0; t < block; ++t) b.stacks.emplace_back(new char[kStackBytes]);
  std::vector<unsigned int> order(block);
  for (unsigned int t = 0; t < block; ++t) order[t] = t;
  uint64_t rng = 0x9E3779B97F4A7C15ull ^ grid ^ (uint64_t{block} << 32);
  running = &b;
  gridDim.x = grid;
  blockDim.x = block;
  // Blocks run in a shuffled order (a GPU gives no order between blocks).
  std::vector<unsigned int> blocks(grid);
  for (unsigned int g = 0; g < grid; ++g) blocks[g] = g;
  uint64_t block_rng = rng ^ 0xD1B54A32D192ED03ull;
  shuffle(blocks, block_rng);
  for (unsigned int g : blocks) {
    blockIdx.x = g;
    for (unsigned int t = 0; t < block; ++t) {
      getcontext(&b.contexts[t]);
      b.contexts[t].uc_stack.ss_sp = b.stacks[t].get();
      b.contexts[t].uc_stack.ss_size = kStackBytes;
      b.contexts[t].uc_link = nullptr;
      makecontext(&b.contexts[t], fiber_main, 0);
      b.states[t] = kReady;
    }
    for (;;) {  // one pass runs every fiber to its next barrier or its end, in a shuffled order
      shuffle(order, rng);
      for (unsigned int t : order) {
        if (b.states[t] == kDone) continue;
        b.states[t] = kReady;
        b.current = t;
        threadIdx.x = t;
        swapcontext(&b.scheduler, &b.contexts[t]);
      }
      unsigned int done = 0;
      for (unsigned int t = 0; t < block; ++t) done += b.states[t] == kDone;
      if (done == block) break;
      if (done != 0) {
        std::fprintf(stderr, "emulated CUDA: block %u: __syncthreads() not reached by every thread\n", g);
        std::abort();
      }
    }
  }
  running = nullptr;
}

using cudaStream_t = struct CUstream_st*;
inline const char* cudaGetErrorString(cudaError_t e) {
  return e == cudaErrorInvalidConfiguration ? "invalid configuration argument (emulated)" : "emulated CUDA error";
}
inline cudaError_t cudaGetLastError() {
  const cudaError_t e = rdf_emulated_last_error;
  rdf_emulated_last_error = cudaSuccess;
  return e;
}
inline int rdf_emulated_device = 0;
inline cudaError_t cudaGetDevice(int* device) {
  *device = rdf_emulated_device;
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int device) {
  rdf_emulated_device = device;
  return cudaSuccess;
}

// Device queries (csrc/cuda/device.cu): one device named "emulated", and every pointer lives on it (the
// emulated arrays are host memory standing in for device memory).
inline cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
struct cudaDeviceProp {
  char name[256];
};
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int) {
  std::snprintf(prop->name, sizeof prop->name, "emulated");
  return cudaSuccess;
}
enum cudaMemoryType { cudaMemoryTypeUnregistered, cudaMemoryTypeHost, cudaMemoryTypeDevice, cudaMemoryTypeManaged };
struct cudaPointerAttributes {
  cudaMemoryType type;
  int device;
};
inline cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* attr, const void*) {
  attr->type = cudaMemoryTypeDevice;
  attr->device = 0;
  return cudaSuccess;
}

// Grid caps (csrc/cuda/check_cuda.h: grid_capped): 2 emulated SMs, so the grid-stride loops of large
// calls run several iterations per thread here.
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16 };
inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int) {
  *value = attr == cudaDevAttrMultiProcessorCount ? 2 : 0;
  return cudaSuccess;
}
// Launches run to completion when they are made, so there is nothing to wait for.
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
