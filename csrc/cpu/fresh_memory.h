// Advice to the operating system about output memory the library has just allocated and not yet written.
#pragma once
#include <cstddef>

namespace rdf {
namespace cpu {

// Asks for transparent huge pages on the whole pages inside [data, data + nbytes), before anything touches
// them, so that a large fresh output takes one page fault per 2 MiB instead of one per 4 KiB (on a KVM
// guest a 64 MiB float32 output's 16,384 first-touch faults cost more than the dropout that fills it).
// NumPy gives the same advice for its own allocations of 4 MiB and more; torch's CPU allocator does not
// unless THP_MEM_ALLOC_ENABLE is set. It changes no value: the pages are the same memory either way.
// Returns whether the advice was given (false off Linux, for a span holding no whole page, or when the
// system refuses; nothing else happens then).
bool advise_huge_pages(void* data, size_t nbytes);

}  // namespace cpu
}  // namespace rdf
