// The one overlap rule of a list call (penalty_grad, penalty, prox_l1, decay on CPU or CUDA arrays): a
// written array may share memory with no other array of the call, except its own parameter when the two
// are exactly the same memory (grads is params: each element is read before it is written, by the same
// thread or lane). The kernels rely on it: a chunk may be written while another array's chunk is read.
//
// Pure C++ on address ranges, with no Python in it: the CPU list reader (csrc/bindings/array_list.h) and
// the Python layer (through _core.write_conflict, for the CUDA path's device memory) both ask it.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

namespace rdf {

// The memory [lo, hi) of array `index` of a call; `pair` is the index of the parameter it belongs to (an
// array and its gradient share it).
struct MemRange {
  uintptr_t lo, hi;
  int64_t index;
  int64_t pair;
  bool written;
};

// The first conflict as (written array, an array it overlaps), preferring an overlapped array of another
// pair; false when the rule holds. Empty ranges hold no memory and take no part. Reorders `ranges`.
//
// Sorted by address, ranges fall into clusters of chained overlaps; a cluster holding a written range is
// allowed only as that range alone, or it with its own identical read range. Otherwise its first written
// range (in address order) is reported with the ranges that overlap it directly.
inline bool write_conflict(std::vector<MemRange>& ranges, int64_t& written_index, int64_t& other_index) {
  if (std::any_of(ranges.begin(), ranges.end(), [](const MemRange& r) { return r.hi <= r.lo; }))
    ranges.erase(std::remove_if(ranges.begin(), ranges.end(), [](const MemRange& r) { return r.hi <= r.lo; }),
                 ranges.end());
  std::sort(ranges.begin(), ranges.end(), [](const MemRange& a, const MemRange& b) {
    if (a.lo != b.lo) return a.lo < b.lo;
    return a.hi != b.hi ? a.hi < b.hi : a.index < b.index;
  });
  size_t first = 0;
  while (first < ranges.size()) {
    size_t last = first + 1;
    uintptr_t hi = ranges[first].hi;
    bool written = ranges[first].written;
    while (last < ranges.size() && ranges[last].lo < hi) {
      hi = std::max(hi, ranges[last].hi);
      written = written || ranges[last].written;
      ++last;
    }
    if (written && last - first > 1) {
      const MemRange& a = ranges[first];
      const MemRange& b = ranges[first + 1];
      const bool identical_pair =
          last - first == 2 && a.pair == b.pair && a.written != b.written && a.lo == b.lo && a.hi == b.hi;
      if (!identical_pair) {
        size_t w = first;
        while (!ranges[w].written) ++w;
        const MemRange& rw = ranges[w];
        const MemRange* other = nullptr;
        for (size_t k = first; k < last; ++k) {
          const MemRange& r = ranges[k];
          if (k == w || !(r.lo < rw.hi && rw.lo < r.hi)) continue;
          if (!other) other = &r;
          if (r.pair != rw.pair) {
            other = &r;
            break;
          }
        }
        written_index = rw.index;
        other_index = other->index;
        return true;
      }
    }
    first = last;
  }
  return false;
}

}  // namespace rdf
