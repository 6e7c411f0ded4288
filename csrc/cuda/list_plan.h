// How a list of arrays is cut into launches of the CUDA list kernels (penalty_grad, penalty, prox_l1,
// decay), in the manner of NVIDIA Apex's multi_tensor_apply: every launch gets its metadata by value in
// the kernel arguments (one ListLaunch, under the 32 KB kernel-parameter limit of CUDA 12.1+ on sm_70+), so a
// list of any length costs a few launches and no host-to-device copy.
//
// Each participating array (n > 0 and the op applies to it) is cut into chunks of kChunkElems elements (the
// last one shorter); one CUDA block handles one chunk. Chunks are taken in list order and packed into
// launches of at most kMaxBlocks blocks and kMaxTensors array slots; an array whose chunks do not all fit
// continues in the next launch (its fields are repeated there). Array slot t of a launch covers the blocks
// first_block[t] .. first_block[t + 1] - 1 (the last slot: up to `blocks`), which handle its chunks
// first_chunk[t], first_chunk[t] + 1, ...; a block finds its slot by binary search (block_chunk below). Block
// b writes its partial result (a penalty value or a zero count) into slot first_slot + b of the caller's
// scratch buffer: slot s is the s-th chunk of the whole call, so the cut, and with it the final fixed-order
// sum over slots, depends on the sizes alone.
//
// ResNet-50's 161 parameter arrays (25.6 M values) make one launch of 1,667 blocks (2^16-element chunks
// and 48 arrays per launch made 508 blocks in 4 launches of 51 to 204).
//
// Host-only C++ (no CUDA headers; block_chunk is also compiled for the device), so
// tests/native/list_plan_main.cpp checks the packing on any machine.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#if defined(__CUDACC__)
#define RDF_PLAN_HD __host__ __device__ __forceinline__
#else
#define RDF_PLAN_HD inline
#endif

namespace rdf {
namespace cuda {

constexpr int64_t kChunkElems = int64_t{1} << 14;  // elements per block (a multiple of every vector width)
constexpr int kMaxTensors = 640;                   // array slots per launch
// Blocks (chunks) per launch: 2^30 elements. The CPU emulation of the tests builds with a small cap
// (RDF_LIST_MAX_BLOCKS) so that an array spanning two launches fits in a test's memory and time.
#ifndef RDF_LIST_MAX_BLOCKS
#define RDF_LIST_MAX_BLOCKS (1 << 16)
#endif
constexpr int kMaxBlocks = RDF_LIST_MAX_BLOCKS;
// The kernel-parameter space of CUDA 12.1+ on compute capability 7.0+ (32,764 bytes; 4,096 before 12.1).
// CUDA 13, which this project builds with, targets 7.5 and up only.
constexpr size_t kKernelParamBytes = 32764;

// The kernel argument of one launch. Fields are grouped by size so the struct has no inner padding.
struct ListLaunch {
  void* a[kMaxTensors];           // the parameter: read (penalty) or updated in place (prox_l1, decay)
  void* b[kMaxTensors];           // the gradient (penalty_grad), else null
  int64_t n[kMaxTensors];         // elements of the array
  double c1[kMaxTensors];         // l1 (penalty), threshold (prox_l1), factor (decay)
  double c2[kMaxTensors];         // l2 (penalty), else 0
  int64_t first_slot;             // scratch slot of block 0
  int32_t first_block[kMaxTensors];  // the slot's first block, increasing; first_block[0] == 0
  int32_t first_chunk[kMaxTensors];  // the chunk (within its array) of that block
  int32_t blocks;                    // blocks of this launch, 1..kMaxBlocks
  int32_t tensors;                   // array slots used, 1..kMaxTensors
  uint8_t dtype[kMaxTensors];        // rdf::DType code
};
// The kernels take (ListLaunch, one pointer).
static_assert(sizeof(ListLaunch) + sizeof(void*) <= kKernelParamBytes,
              "the kernel arguments must stay under the 32 KB kernel-parameter limit");

// A block's array slot and chunk (within that array).
struct BlockChunk {
  int tensor;
  int32_t chunk;
};
RDF_PLAN_HD BlockChunk block_chunk(const ListLaunch& L, int block) {
  int lo = 0, hi = L.tensors - 1;  // the last slot whose first block is <= block
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (L.first_block[mid] <= block)
      lo = mid;
    else
      hi = mid - 1;
  }
  return BlockChunk{lo, L.first_chunk[lo] + (block - L.first_block[lo])};
}

// One array of a list call as the entry points receive it.
struct ListItem {
  int dtype;  // rdf::DType code
  int64_t n;
  void* a;
  void* b;
  double c1;
  double c2;
};

inline int64_t chunks_of(int64_t n) { return (n + kChunkElems - 1) / kChunkElems; }

// The launches for items[0, count) of which takes_part(item) holds (items with n == 0 never take part).
template <class TakesPart>
std::vector<ListLaunch> plan_list(const ListItem* items, int64_t count, TakesPart takes_part) {
  std::vector<ListLaunch> launches;
  ListLaunch cur{};
  int64_t next_slot = 0;
  auto flush = [&]() {
    if (cur.blocks == 0) return;
    launches.push_back(cur);
    next_slot += cur.blocks;
    cur = ListLaunch{};
    cur.first_slot = next_slot;
  };
  for (int64_t i = 0; i < count; ++i) {
    const ListItem& it = items[i];
    if (it.n < 0) throw std::invalid_argument("regdrop_fast CUDA: negative array size");
    if (it.dtype < 0 || it.dtype > 3) throw std::invalid_argument("regdrop_fast CUDA: unknown dtype code");
    if (it.n == 0 || !takes_part(it)) continue;
    const int64_t chunks = chunks_of(it.n);
    if (chunks > INT32_MAX) throw std::length_error("regdrop_fast CUDA: array too large for one list call");
    for (int64_t c = 0; c < chunks;) {
      if (cur.blocks == kMaxBlocks || cur.tensors == kMaxTensors) flush();
      const int t = cur.tensors++;
      cur.a[t] = it.a;
      cur.b[t] = it.b;
      cur.n[t] = it.n;
      cur.c1[t] = it.c1;
      cur.c2[t] = it.c2;
      cur.dtype[t] = static_cast<uint8_t>(it.dtype);
      cur.first_block[t] = cur.blocks;
      cur.first_chunk[t] = static_cast<int32_t>(c);
      const int64_t room = kMaxBlocks - cur.blocks;
      const int64_t take = chunks - c < room ? chunks - c : room;
      cur.blocks += static_cast<int32_t>(take);
      c += take;
    }
  }
  flush();
  return launches;
}

// Scratch slots a plan writes: one per chunk of the whole call.
inline int64_t plan_slots(const std::vector<ListLaunch>& launches) {
  return launches.empty() ? 0 : launches.back().first_slot + launches.back().blocks;
}

}  // namespace cuda
}  // namespace rdf
