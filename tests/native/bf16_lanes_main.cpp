// The lane conversions of csrc/cpu/vec.h for bfloat16 against the scalar ones of csrc/common/dtypes.h, for
// every input: store_lanes (round to nearest even, NaN -> sign | 0x7FC0) over all 2^32 float32 patterns,
// with the value it returns (the stored bfloat16 widened back, what load_lanes would read), and load_lanes
// over all 2^16 bfloat16 ones. Built by tests/test_bf16_lanes.py once per ISA the host runs, with
// that ISA's flags from CMakeLists.txt (RDF_ISA, RDF_VEC_BYTES and the -m options). Prints "ok <isa>" or
// the first mismatches and exits 1.
#include <cstdint>
#include <cstdio>

#include "../../csrc/cpu/vec.h"

using namespace rdf;
using namespace rdf::cpu::RDF_ISA;

#define RDF_STR2(x) #x
#define RDF_STR(x) RDF_STR2(x)

int main() {
  int64_t bad = 0;
  for (uint64_t base = 0; base < (uint64_t{1} << 32); base += kLanes) {
    vu32 u;
    for (int l = 0; l < kLanes; ++l) u[l] = static_cast<uint32_t>(base + l);
    bfloat16_t out[kLanes];
    const vf32 stored = store_lanes(out, reinterpret_cast<vf32>(u));
    for (int l = 0; l < kLanes; ++l) {
      const uint16_t want = float_to_bfloat16(bits_float(u[l]));
      if (out[l].bits != want && bad++ < 8)
        std::printf("store_lanes %08x: %04x, float_to_bfloat16 %04x\n", static_cast<unsigned>(u[l]), out[l].bits, want);
      if (float_bits(stored[l]) != static_cast<uint32_t>(want) << 16 && bad++ < 8)
        std::printf("store_lanes %08x returned %08x, stored %04x\n", static_cast<unsigned>(u[l]),
                    static_cast<unsigned>(float_bits(stored[l])), want);
    }
  }
  for (uint32_t b = 0; b < 65536; b += kLanes) {
    bfloat16_t in[kLanes];
    for (int l = 0; l < kLanes; ++l) in[l].bits = static_cast<uint16_t>(b + l);
    const vf32 v = load_lanes(in);
    for (int l = 0; l < kLanes; ++l) {
      if (float_bits(v[l]) != float_bits(bfloat16_to_float(in[l].bits)) && bad++ < 8)
        std::printf("load_lanes %04x: %08x\n", in[l].bits, static_cast<unsigned>(float_bits(v[l])));
    }
  }
  if (bad != 0) {
    std::printf("%lld mismatches\n", static_cast<long long>(bad));
    return 1;
  }
  std::printf("ok %s\n", RDF_STR(RDF_ISA));
  return 0;
}
