// Runs the portable (generic) dropout kernel on a deterministic input and prints the mask bits and output
// bytes as hex, so tests/test_portable_build.py can build it for another architecture (aarch64 under
// qemu-user) and compare with the x86 extension: the code other architectures run must give the same bits.
//
// usage: dropout_generic_main DTYPE N SEED OFFSET THRESHOLD SCALE  (DTYPE: 0 f32, 1 f64, 2 f16, 3 bf16)
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../../csrc/cpu/isa.h"

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: %s DTYPE N SEED OFFSET THRESHOLD SCALE\n", argv[0]);
    return 2;
  }
  const int dtype = std::atoi(argv[1]);
  const int64_t n = std::atoll(argv[2]);
  const uint64_t seed = std::strtoull(argv[3], nullptr, 10);
  const uint64_t offset = std::strtoull(argv[4], nullptr, 10);
  const uint32_t threshold = static_cast<uint32_t>(std::strtoul(argv[5], nullptr, 10));
  const double scale = std::strtod(argv[6], nullptr);
  const size_t width = dtype == 1 ? 8 : dtype == 0 ? 4 : 2;

  // Input bytes: a fixed xorshift pattern, masked to finite values of the dtype (the test builds the same).
  std::vector<uint8_t> x(static_cast<size_t>(n) * width), y(x.size());
  uint32_t state = 2463534242u;
  for (size_t i = 0; i < x.size(); ++i) {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    x[i] = static_cast<uint8_t>(state);
    if (i % width == width - 1) x[i] &= 0x3F;  // clear the top exponent bits: no inf or NaN
  }
  std::vector<uint8_t> bits(static_cast<size_t>((n + 7) / 8));
  const rdf::cpu::DropoutPass pass{static_cast<rdf::DType>(dtype), x.data(), y.data(), nullptr, bits.data(),
                                   rdf::DropoutParams{seed, offset, threshold, false, scale}};
  rdf::cpu::generic::dropout_range(pass, 0, n);
  for (uint8_t b : bits) std::printf("%02x", b);
  std::printf("\n");
  for (uint8_t b : y) std::printf("%02x", b);
  std::printf("\n");
  return 0;
}
