#include "isa.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace rdf {
namespace cpu {
namespace {

Isa detect_best() {
#if defined(RDF_HAVE_X86_ISAS) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
    return Isa::kAvx2;
#endif
  return Isa::kGeneric;
}

Isa from_env(Isa best) {
  const char* env = std::getenv("REGDROP_SIMD");
  Isa want = best;
  if (env && std::strcmp(env, "generic") == 0) want = Isa::kGeneric;
  if (env && std::strcmp(env, "avx2") == 0) want = Isa::kAvx2;
  if (env && std::strcmp(env, "avx512") == 0) want = Isa::kAvx512;
  return static_cast<int>(want) < static_cast<int>(best) ? want : best;
}

std::atomic<int> g_isa{-1};

}  // namespace

Isa best_isa() {
  static const Isa best = detect_best();
  return best;
}

Isa active_isa() {
  int v = g_isa.load(std::memory_order_relaxed);
  if (v < 0) {
    v = static_cast<int>(from_env(best_isa()));
    g_isa.store(v, std::memory_order_relaxed);
  }
  return static_cast<Isa>(v);
}

void set_isa(Isa isa) {
  const Isa best = best_isa();
  g_isa.store(static_cast<int>(static_cast<int>(isa) < static_cast<int>(best) ? isa : best));
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kGeneric:
      break;
  }
  return "generic";
}

}  // namespace cpu
}  // namespace rdf
