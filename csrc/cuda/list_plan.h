// How a list of arrays is cut into launches of the CUDA list kernels (penalty_grad, penalty, prox_l1,
// decay), in the manner of NVIDIA Apex's multi_tensor_apply: every launch gets its metadata by value in
// the kernel arguments (one ListLaunch, under 4 KB, the classic kernel-parameter limit), so a list of any
// length costs a few launches and no host-to-device copy.
//
// Each participating array (n > 0 and the op applies to it) is cut into chunks of kChunkElems elements (the
// last one shorter); one CUDA block handles one chunk. Chunks are taken in list order and packed into
// launches of at most kMaxBlocks blocks and kMaxTensors distinct arrays; an array whose chunks do not all
// fit continues in the next launch (its fields are repeated there). Block b of a launch handles chunk
// block_chunk[b] of its array slot block_tensor[b], and writes its partial result (a penalty value or a
// zero count) into slot first_slot + b of the caller's scratch buffer: slot s is the s-th chunk of the
// whole call, so the cut, and with it the final fixed-order sum over slots, depends on the sizes alone.
//
// Host-only C++ (no CUDA headers), so tests/native/list_plan_main.cpp checks the packing on any machine.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <vector>

namespace rdf {
namespace cuda {

constexpr int64_t kChunkElems = int64_t{1} << 16;  // elements per block (a multiple of every vector width)
constexpr int kMaxTensors = 48;                    // arrays per launch
constexpr int kMaxBlocks = 320;                    // blocks (chunks) per launch

// The kernel argument of one launch. Fields are grouped by size so the struct has no inner padding.
struct ListLaunch {
  void* a[kMaxTensors];        // the parameter: read (penalty) or updated in place (prox_l1, decay)
  void* b[kMaxTensors];        // the gradient (penalty_grad), else null
  int64_t n[kMaxTensors];      // elements of the array
  double c1[kMaxTensors];      // l1 (penalty), threshold (prox_l1), factor (decay)
  double c2[kMaxTensors];      // l2 (penalty), else 0
  int64_t first_slot;          // scratch slot of block 0
  int32_t block_chunk[kMaxBlocks];   // chunk index within its array
  int32_t blocks;                    // blocks of this launch, 1..kMaxBlocks
  int32_t tensors;                   // array slots used, 1..kMaxTensors
  uint8_t dtype[kMaxTensors];        // rdf::DType code
  uint8_t block_tensor[kMaxBlocks];  // array slot of each block
};
static_assert(sizeof(ListLaunch) <= 3840, "the kernel arguments must stay under the 4 KB parameter limit");
static_assert(kMaxTensors <= 256, "block_tensor is a uint8_t");

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
  int64_t cur_item = -1;  // list index of the array in cur's last slot (-1: none yet)
  int64_t next_slot = 0;
  auto flush = [&]() {
    if (cur.blocks == 0) return;
    launches.push_back(cur);
    next_slot += cur.blocks;
    cur = ListLaunch{};
    cur.first_slot = next_slot;
    cur_item = -1;
  };
  for (int64_t i = 0; i < count; ++i) {
    const ListItem& it = items[i];
    if (it.n < 0) throw std::invalid_argument("regdrop_fast CUDA: negative array size");
    if (it.dtype < 0 || it.dtype > 3) throw std::invalid_argument("regdrop_fast CUDA: unknown dtype code");
    if (it.n == 0 || !takes_part(it)) continue;
    const int64_t chunks = chunks_of(it.n);
    if (chunks > INT32_MAX) throw std::length_error("regdrop_fast CUDA: array too large for one list call");
    for (int64_t c = 0; c < chunks; ++c) {
      if (cur.blocks == kMaxBlocks || (cur_item != i && cur.tensors == kMaxTensors)) flush();
      if (cur_item != i) {
        const int t = cur.tensors++;
        cur.a[t] = it.a;
        cur.b[t] = it.b;
        cur.n[t] = it.n;
        cur.c1[t] = it.c1;
        cur.c2[t] = it.c2;
        cur.dtype[t] = static_cast<uint8_t>(it.dtype);
        cur_item = i;
      }
      cur.block_tensor[cur.blocks] = static_cast<uint8_t>(cur.tensors - 1);
      cur.block_chunk[cur.blocks] = static_cast<int32_t>(c);
      ++cur.blocks;
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
