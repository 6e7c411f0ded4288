#include "input_prefetch.h"

#include <atomic>
#include <cstdint>

namespace rdf {
namespace cpu {
namespace {

std::atomic<int64_t> g_prefetch_bytes{kDefaultPrefetchBytes};

}  // namespace

int64_t prefetch_bytes() { return g_prefetch_bytes.load(std::memory_order_relaxed); }

void set_prefetch_bytes(int64_t bytes) { g_prefetch_bytes.store(bytes < 0 ? 0 : bytes, std::memory_order_relaxed); }

}  // namespace cpu
}  // namespace rdf
