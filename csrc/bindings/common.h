// What the two binding modules (cpu.cpp: _core, cuda.cpp: _cuda) share: the scalar arguments of a dropout
// call arrive in the same order in both, and become one DropoutParams here.
#pragma once
#include <cstdint>

#include "../common/dropout_element.h"

namespace rdf {
namespace bindings {

// The Python layer (python/regdrop_fast/_checks.py) computed every field; nothing is decided here.
inline DropoutParams dropout_params(uint64_t seed, uint64_t offset, uint32_t threshold, bool drop_all,
                                    double scale) {
  return DropoutParams{seed, offset, threshold, drop_all, scale};
}

}  // namespace bindings
}  // namespace rdf
