#include "limit_driver.h"

#include <algorithm>

#include "isa.h"
#include "output_streaming.h"
#include "parallel.h"

namespace rdf {
namespace cpu {
namespace {

// As the dropout and penalty drivers run their tasks: one task on the calling thread, more on the pool.
template <class Range>
void run_byte_tasks(const uint8_t* src, uint8_t* dst, int64_t n, int64_t task_bytes, const Range& range) {
  const int64_t n_tasks = (n + task_bytes - 1) / task_bytes;
  if (n_tasks <= 1) {
    if (n > 0) range(src, dst, n);
    return;
  }
  parallel_for(n_tasks, [&](int64_t t) {
    const int64_t begin = t * task_bytes;
    range(src + begin, dst + begin, std::min(n - begin, task_bytes));
  });
}

}  // namespace

void limit_copy(const uint8_t* src, uint8_t* dst, int64_t n, int64_t task_bytes) {
  // The kernels' rule for their outputs (output_streaming.h): n bytes written at dst.
  const auto copy = RDF_ACTIVE_ISA_KERNEL(limit_copy_range);
  const bool stream = streams_output(n, dst, src == dst);
  run_byte_tasks(src, dst, n, task_bytes,
                 [&](const uint8_t* s, uint8_t* d, int64_t len) { copy(s, d, len, stream); });
}

void limit_rmw(const uint8_t* src, uint8_t* dst, int64_t n, int64_t task_bytes) {
  run_byte_tasks(src, dst, n, task_bytes, RDF_ACTIVE_ISA_KERNEL(limit_rmw_range));
}

}  // namespace cpu
}  // namespace rdf
