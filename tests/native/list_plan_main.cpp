// Checks csrc/cuda/list_plan.h, the host code that packs a list of arrays into CUDA launches, on fixed edge
// cases and random lists; built and run by tests/test_cuda_plan.py with the host compiler (no GPU, no CUDA).
//
// For every plan it checks what the kernels rely on: launch and array-slot limits, every block's array slot
// and chunk in range, the per-array fields copied faithfully, slots numbered consecutively across launches,
// and, simulating the blocks' element ranges as the kernels compute them, every element of every taking-part
// array covered exactly once, in list order (array by array, chunk by chunk), and nothing of the others.
//
// Prints "ok <plans checked>" and exits 0, or prints the first failure and exits 1.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "../../csrc/cuda/list_plan.h"

using rdf::cuda::chunks_of;
using rdf::cuda::kChunkElems;
using rdf::cuda::kMaxBlocks;
using rdf::cuda::kMaxTensors;
using rdf::cuda::ListItem;
using rdf::cuda::ListLaunch;

static_assert(sizeof(ListLaunch) + sizeof(void*) <= 32764, "kernel arguments over the 32 KB limit (CUDA 12.1+)");

namespace {

int64_t g_plans = 0;

[[noreturn]] void fail(const std::string& what, const std::string& label) {
  std::printf("FAIL [%s]: %s\n", label.c_str(), what.c_str());
  std::exit(1);
}

// `what` is a C string, not a std::string: the per-block checks run ~10^8 times, and building a string from
// each literal on every call took most of the test's time.
void expect(bool ok, const char* what, const std::string& label) {
  if (!ok) fail(what, label);
}

// Items with distinct fake pointers (never dereferenced) and coefficients derived from the index.
std::vector<ListItem> make_items(const std::vector<int64_t>& sizes) {
  std::vector<ListItem> items;
  for (size_t i = 0; i < sizes.size(); ++i) {
    const auto base = static_cast<uintptr_t>(0x10000 + 0x100 * i);
    items.push_back(ListItem{static_cast<int>(i % 4), sizes[i], reinterpret_cast<void*>(base),
                             reinterpret_cast<void*>(base + 0x80), 0.5 + static_cast<double>(i),
                             static_cast<double>(i % 3)});
  }
  return items;
}

// Takes part: n > 0 and, when `every` > 0, index % every != 0 (identified through the fake pointer).
struct TakesPart {
  int every;
  bool operator()(const ListItem& it) const {
    if (every <= 0) return true;
    const auto i = (reinterpret_cast<uintptr_t>(it.a) - 0x10000) / 0x100;
    return i % static_cast<uintptr_t>(every) != 0;
  }
};

void check_plan(const std::vector<int64_t>& sizes, int every, const std::string& label) {
  const std::vector<ListItem> items = make_items(sizes);
  const TakesPart takes{every};
  const std::vector<ListLaunch> plan = rdf::cuda::plan_list(items.data(), static_cast<int64_t>(items.size()), takes);
  ++g_plans;

  // Expected (item, chunk) sequence.
  std::vector<std::pair<size_t, int64_t>> expected;
  int64_t n_expected = 0;
  for (const ListItem& it : items)
    if (it.n > 0 && takes(it)) n_expected += chunks_of(it.n);
  expected.reserve(static_cast<size_t>(n_expected));  // one allocation: growing it page-faulted for seconds
  for (size_t i = 0; i < items.size(); ++i)
    if (items[i].n > 0 && takes(items[i]))
      for (int64_t c = 0; c < chunks_of(items[i].n); ++c) expected.emplace_back(i, c);

  std::vector<int64_t> covered(items.size(), 0);
  size_t next = 0;
  int64_t slot = 0;
  for (size_t l = 0; l < plan.size(); ++l) {
    const ListLaunch& L = plan[l];
    const std::string where = label + " launch " + std::to_string(l);
    expect(L.blocks >= 1 && L.blocks <= kMaxBlocks, "block count out of range", where);
    expect(L.tensors >= 1 && L.tensors <= kMaxTensors, "array-slot count out of range", where);
    expect(L.first_slot == slot, "slots not consecutive", where);
    std::vector<int> slot_used(static_cast<size_t>(L.tensors), 0);
    int last_t = -1;
    expect(L.first_block[0] == 0, "slot 0 does not start at block 0", where);
    for (int t = 1; t < L.tensors; ++t)
      expect(L.first_block[t] > L.first_block[t - 1] && L.first_block[t] < L.blocks,
             "array slots' first blocks not increasing within the launch", where);
    for (int b = 0; b < L.blocks; ++b) {
      // The kernels' lookup (block_chunk of list_plan.h).
      const rdf::cuda::BlockChunk bc = rdf::cuda::block_chunk(L, b);
      const int t = bc.tensor;
      expect(t < L.tensors, "block's array slot past the used slots", where);
      expect(t >= last_t, "array slots not in list order", where);
      last_t = t;
      slot_used[static_cast<size_t>(t)] = 1;
      expect(next < expected.size(), "more blocks than chunks", where);
      const size_t i = expected[next].first;
      const ListItem& it = items[i];
      expect(L.a[t] == it.a && L.b[t] == it.b && L.n[t] == it.n && L.c1[t] == it.c1 && L.c2[t] == it.c2 &&
                 L.dtype[t] == static_cast<uint8_t>(it.dtype),
             "array fields differ from the item's", where);
      expect(bc.chunk == expected[next].second, "chunk out of order", where);
      // The kernels' element range of this block (RDF_BLOCK_CHUNK in penalty_kernels.cu).
      const int64_t begin = static_cast<int64_t>(bc.chunk) * kChunkElems;
      const int64_t left = L.n[t] - begin;
      const int64_t count = left < kChunkElems ? left : kChunkElems;
      expect(begin >= 0 && count >= 1 && count <= kChunkElems, "empty or oversized chunk", where);
      expect(begin == covered[i], "chunk does not start where the previous one ended", where);
      covered[i] += count;
      ++next;
    }
    for (int t = 0; t < L.tensors; ++t)
      expect(slot_used[static_cast<size_t>(t)] == 1, "array slot with no block", where);
    // Unused slots stay zero (nothing stale reaches a kernel).
    for (int t = L.tensors; t < kMaxTensors; ++t) expect(L.a[t] == nullptr && L.n[t] == 0, "stale array slot", where);
    slot += L.blocks;
  }
  expect(next == expected.size(), "fewer blocks than chunks", label);
  expect(rdf::cuda::plan_slots(plan) == slot, "plan_slots differs from the blocks", label);
  for (size_t i = 0; i < items.size(); ++i) {
    const bool part = items[i].n > 0 && takes(items[i]);
    if (covered[i] != (part ? items[i].n : 0)) fail("array " + std::to_string(i) + " not covered exactly", label);
  }
  // Upper bound the Python layer allocates: one slot per chunk of every array.
  int64_t bound = 0;
  for (const ListItem& it : items) bound += chunks_of(it.n);
  expect(slot <= bound, "more slots than the Python layer's bound", label);
}

template <class Fn>
void expect_throw(Fn fn, const std::string& label) {
  try {
    fn();
  } catch (const std::exception&) {
    return;
  }
  fail("expected an exception", label);
}

}  // namespace

int main() {
  const int64_t C = kChunkElems;
  const int64_t per_launch = C * kMaxBlocks;
  // Fixed edge cases.
  check_plan({}, 0, "empty list");
  check_plan({0, 0, 0}, 0, "only empty arrays");
  check_plan({1}, 0, "one element");
  check_plan({C - 1, C, C + 1}, 0, "chunk boundaries");
  check_plan({per_launch}, 0, "exactly one full launch");
  check_plan({per_launch + 1}, 0, "one element into a second launch");
  check_plan({per_launch - 1, 2, per_launch}, 0, "arrays straddling launches");
  check_plan(std::vector<int64_t>(kMaxTensors, 1), 0, "exactly the array limit");
  check_plan(std::vector<int64_t>(kMaxTensors + 1, 1), 0, "one over the array limit");
  check_plan(std::vector<int64_t>(200, 64), 0, "200 small arrays");
  check_plan(std::vector<int64_t>(1000, 64), 3, "1000 small arrays, every third left out");
  check_plan({int64_t{1} << 34}, 0, "2^34 elements");
  {
    std::vector<int64_t> mix;
    for (int i = 0; i < 300; ++i) mix.push_back(i % 7 == 0 ? 5 * C + 3 : (i % 5 == 0 ? 0 : 1 + i));
    check_plan(mix, 0, "300 mixed");
    check_plan(mix, 2, "300 mixed, every other left out");
  }
  // ResNet-50-like: many tiny arrays around big ones.
  {
    std::vector<int64_t> resnet = {9408, 64, 64};
    for (int s = 0; s < 16; ++s)
      for (int64_t n : {int64_t{65536}, int64_t{256}, int64_t{256}, int64_t{147456}, int64_t{512}, int64_t{512},
                        int64_t{262144}, int64_t{2048}, int64_t{2048}})
        resnet.push_back(n);
    resnet.push_back(2048000);
    resnet.push_back(1000);
    check_plan(resnet, 0, "resnet-like");
  }
  // Random lists.
  std::mt19937_64 rng(20240607);
  const int64_t picks[] = {0, 1, 2, 7, 8, 63, 1000, C - 1, C, C + 1, 3 * C + 5, per_launch - 3, per_launch + 7};
  for (int round = 0; round < 400; ++round) {
    const int len = static_cast<int>(rng() % 260);
    std::vector<int64_t> sizes;
    for (int i = 0; i < len; ++i) {
      const uint64_t r = rng() % 20;
      sizes.push_back(r < 13 ? picks[r] : static_cast<int64_t>(rng() % (4 * C)));
    }
    check_plan(sizes, static_cast<int>(rng() % 4), "random round " + std::to_string(round));
  }
  // Rejected input.
  expect_throw([] {
    const auto items = make_items({-1});
    rdf::cuda::plan_list(items.data(), 1, TakesPart{0});
  }, "negative size");
  expect_throw([] {
    auto items = make_items({5});
    items[0].dtype = 4;
    rdf::cuda::plan_list(items.data(), 1, TakesPart{0});
  }, "unknown dtype");
  expect_throw([] {
    const auto items = make_items({(int64_t{1} << 31) * kChunkElems});
    rdf::cuda::plan_list(items.data(), 1, TakesPart{0});
  }, "2^31 chunks in one array");
  std::printf("ok %lld\n", static_cast<long long>(g_plans));
  return 0;
}
