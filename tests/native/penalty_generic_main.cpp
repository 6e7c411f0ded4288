// Runs the portable (generic) penalty kernels on arrays read from stdin and prints the results as hex, so
// tests/test_penalty_portable.py can build it for another architecture (aarch64 under qemu-user) and
// compare with the x86 extension: the code other architectures run must give the same bits.
//
// usage: penalty_generic_main DTYPE N L1 L2 THRESHOLD FACTOR MAX_VALUE ROWS
//        (DTYPE: 0 f32, 1 f64, 2 f16, 3 bf16)
// stdin: w then g, N values each. stdout, one hex line each: g after penalty_grad(w, g, l1, l2) and the
// value's float64 bits; w after prox_l1(threshold) and the zero count; that w after decay(factor); that w
// after max_norm(max_value) over the columns of w viewed as (ROWS, N / ROWS). N is at most 2^16 (one task).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../../csrc/common/penalty_element.h"
#include "../../csrc/cpu/isa.h"

static void print_hex(const std::vector<uint8_t>& bytes) {
  for (uint8_t b : bytes) std::printf("%02x", b);
  std::printf("\n");
}

int main(int argc, char** argv) {
  if (argc != 9) {
    std::fprintf(stderr, "usage: %s DTYPE N L1 L2 THRESHOLD FACTOR MAX_VALUE ROWS\n", argv[0]);
    return 2;
  }
  const auto dtype = static_cast<rdf::DType>(std::atoi(argv[1]));
  const int64_t n = std::atoll(argv[2]);
  const double l1 = std::strtod(argv[3], nullptr), l2 = std::strtod(argv[4], nullptr);
  const double threshold = std::strtod(argv[5], nullptr), factor = std::strtod(argv[6], nullptr);
  const double max_value = std::strtod(argv[7], nullptr);
  const int64_t rows = std::atoll(argv[8]);
  const size_t width = dtype == rdf::DType::kFloat64 ? 8 : dtype == rdf::DType::kFloat32 ? 4 : 2;
  std::vector<uint8_t> w(static_cast<size_t>(n) * width), g(w.size());
  if (std::fread(w.data(), 1, w.size(), stdin) != w.size()) return 3;
  if (std::fread(g.data(), 1, g.size(), stdin) != g.size()) return 3;

  namespace k = rdf::cpu::generic;
  const rdf::cpu::PenaltyItem item{dtype, n, w.data(), g.data(), l1, l2};
  const double value = k::penalty_grad_range(item, 0, n);
  print_hex(g);
  uint64_t value_bits;
  std::memcpy(&value_bits, &value, sizeof value_bits);
  std::printf("%016llx\n", static_cast<unsigned long long>(value_bits));

  const int64_t zeros = k::prox_l1_range(rdf::cpu::UpdateItem{dtype, n, w.data(), threshold}, 0, n);
  print_hex(w);
  std::printf("%lld\n", static_cast<long long>(zeros));

  k::decay_range(rdf::cpu::UpdateItem{dtype, n, w.data(), factor}, 0, n);
  print_hex(w);

  const int64_t cols = n / rows;
  std::vector<double> scratch(static_cast<size_t>((rdf::kSumLanes + 1) * cols));
  const rdf::cpu::MaxNormProblem problem{dtype, w.data(), 1, rows, cols, max_value};
  const int64_t rescaled = k::max_norm_columns(problem, 0, 0, cols, scratch.data());
  print_hex(w);
  std::printf("%lld\n", static_cast<long long>(rescaled));
  return 0;
}
