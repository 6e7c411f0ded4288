#include "fresh_memory.h"

#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace rdf {
namespace cpu {

bool advise_huge_pages(void* data, size_t nbytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  const long page_size = sysconf(_SC_PAGESIZE);
  if (page_size <= 0) return false;
  const auto page = static_cast<uintptr_t>(page_size);
  const auto start = reinterpret_cast<uintptr_t>(data);
  if (nbytes > UINTPTR_MAX - start) return false;
  // madvise takes page-aligned spans: the pages wholly inside the buffer, none of a neighbour's.
  const uintptr_t first = (start + page - 1) / page * page, last = (start + nbytes) / page * page;
  if (last <= first) return false;
  return madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE) == 0;
#else
  (void)data;
  (void)nbytes;
  return false;
#endif
}

}  // namespace cpu
}  // namespace rdf
