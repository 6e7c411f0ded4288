#include "output_streaming.h"

#include <atomic>
#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace rdf {
namespace cpu {
namespace {

std::atomic<int64_t> g_stream_output_bytes{kDefaultStreamOutputBytes};

// Whether the pages of the first, the middle and the last byte of [p, p + n) are in memory (n > 0). A page
// not yet touched is new memory (a fresh allocation of this size is its own mapping); unknown: as if it were.
bool pages_resident(const void* p, int64_t n) {
#if defined(__linux__)
  const long page_size = sysconf(_SC_PAGESIZE);
  if (page_size <= 0) return true;
  const auto page = static_cast<uintptr_t>(page_size);
  const auto a = reinterpret_cast<uintptr_t>(p);
  const uintptr_t probes[3] = {a, a + static_cast<uintptr_t>(n / 2), a + static_cast<uintptr_t>(n - 1)};
  for (const uintptr_t at : probes) {
    unsigned char resident = 1;
    if (mincore(reinterpret_cast<void*>(at / page * page), 1, &resident) == 0 && (resident & 1u) == 0) return false;
  }
  return true;
#else
  (void)p;
  (void)n;
  return true;
#endif
}

}  // namespace

int64_t stream_output_bytes() { return g_stream_output_bytes.load(std::memory_order_relaxed); }

void set_stream_output_bytes(int64_t bytes) { g_stream_output_bytes.store(bytes, std::memory_order_relaxed); }

bool streams_output(int64_t bytes, const void* out, bool in_place) {
  return !in_place && bytes > 0 && bytes >= stream_output_bytes() && pages_resident(out, bytes);
}

}  // namespace cpu
}  // namespace rdf
