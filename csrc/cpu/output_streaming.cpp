#include "output_streaming.h"

#include <atomic>

namespace rdf {
namespace cpu {
namespace {

std::atomic<int64_t> g_stream_output_bytes{kDefaultStreamOutputBytes};

}  // namespace

int64_t stream_output_bytes() { return g_stream_output_bytes.load(std::memory_order_relaxed); }

void set_stream_output_bytes(int64_t bytes) { g_stream_output_bytes.store(bytes, std::memory_order_relaxed); }

}  // namespace cpu
}  // namespace rdf
