// Run-time SIMD dispatch. Each per-ISA source (dropout_loop.cpp, ...) is compiled once per instruction set
// with RDF_ISA set to one of the names below (CMakeLists.txt); its functions live in namespace
// rdf::cpu::<isa>, so copies built with different flags can never be merged by the linker.
#pragma once
#include <cstdint>

#include "../common/dropout_element.h"
#include "../common/strided_layout.h"
#include "bias_dropout_add_driver.h"
#include "gaussian_dropout_driver.h"
#include "dropout_broadcast_driver.h"
#include "penalty_driver.h"

namespace rdf {
namespace cpu {

enum class Isa : int { kGeneric = 0, kAvx2 = 1, kAvx512 = 2 };

// The widest ISA this CPU supports that this build contains, lowered by REGDROP_SIMD=generic|avx2|avx512
// (for tests and benchmarks: every path must give the same bits).
Isa active_isa();
const char* isa_name(Isa isa);
Isa best_isa();          // widest usable here, ignoring the override
void set_isa(Isa isa);   // clamps to best_isa()

// Elements handled per dropout task: a multiple of 8 so tasks never share a mask byte. Fixed, so the split
// depends only on n.
constexpr int64_t kDropoutTaskElems = int64_t{1} << 16;

// What one dropout pass does over elements [begin, end) of a call (begin a multiple of 8):
// the keep decision comes from bits_in when given, else from the Philox stream; `in`/`out` (both null or
// both set) receive the dropout of each element; bits_out, when given, receives the packed decisions.
struct DropoutPass {
  DType dtype;
  const void* in;
  void* out;
  const uint8_t* bits_in;
  uint8_t* bits_out;
  DropoutParams params;
  bool stream_out = false;  // out is written with non-temporal stores (an output larger than the caches)
  int64_t prefetch_bytes = 0;  // in's lines this far ahead of each tile are prefetched (input_prefetch.h)
};

// Dropout over a dense strided array (dropout_strided.cpp) works in units: tiles of the plane of the
// layout's inner and minor axes, or runs of up to kRun elements when those axes are one. A tile holds the
// whole minor axis up to kTileMinorMax elements (so with a short minor axis, as channels_last with up to
// 128 channels, the tile is one contiguous stretch of memory), and as many inner indices as fit in
// kTileElems, between kTileInnerMin (a row of 8 Philox blocks at least) and kTileInnerMax; its decisions
// (4 bytes each, 16 KiB) stay in L1. The sizes depend only on the layout, so the units do too.
namespace strided {
constexpr int64_t kRun = 4096;
constexpr int64_t kTileElems = 4096;
constexpr int64_t kTileMinorMax = 128;
constexpr int64_t kTileInnerMin = 32;
constexpr int64_t kTileInnerMax = 512;

// (inner, minor) extent of a full tile of layout L (inner != minor).
inline void tile_extent(const StridedLayout& L, int64_t& ti, int64_t& tm) {
  tm = L.shape[L.minor] < kTileMinorMax ? L.shape[L.minor] : kTileMinorMax;
  ti = kTileElems / tm;
  ti = ti < kTileInnerMin ? kTileInnerMin : ti > kTileInnerMax ? kTileInnerMax : ti;
  if (ti > L.shape[L.inner]) ti = L.shape[L.inner];
}

// Whether a forward over layout L writes its mask bits in the strided pass itself, from the decisions the
// pass draws for its values (else the driver writes them first with the contiguous mask pass, and the pass
// reads them back: the stream drawn once either way, the mask's bits touched twice). It can when each row
// of a tile covers whole bytes of the mask, so that no two tasks write one byte: the inner axis's length
// and the tile's inner extent are multiples of 8 (every other axis's logical stride is a multiple of the
// inner length, so every row starts on a byte); and every tile takes the pass's word path, which packs 32
// decisions per word in the mask's bit order: each tile's minor extent, the last one's included (the minor
// length past the last multiple of tm), is 16 or more, at least every ISA's kLanes (a narrower tile takes
// the path of one -1/0 mask per element, which writes no bits).
inline bool writes_own_bits(const StridedLayout& L) {
  if (L.inner == L.minor) return false;
  int64_t ti, tm;
  tile_extent(L, ti, tm);
  const int64_t last_tm = L.shape[L.minor] % tm;
  return tm >= 16 && (last_tm == 0 || last_tm >= 16) && ti % 8 == 0 && L.shape[L.inner] % 8 == 0;
}
}  // namespace strided

#define RDF_DECLARE_ISA_KERNELS(ns)                                        \
  namespace ns {                                                           \
  void dropout_range(const DropoutPass& pass, int64_t begin, int64_t end); \
  void dropout_strided_range(const DropoutPass& pass, const StridedLayout& layout, int64_t begin,         \
                             int64_t end);                                                              \
  void bias_dropout_add_range(const BiasDropoutAddPass& pass, int64_t begin, int64_t end);              \
  void dropout_broadcast_range(const BroadcastPass& pass, int64_t begin, int64_t end);                  \
  void bias_grad_blocks(const BiasGradPass& pass, int64_t b0, int64_t b1, int64_t c0, int64_t c1);      \
  void bias_grad_combine(DType dt, const void* partials, int64_t blocks, int64_t h, void* dbias, int64_t c0, \
                         int64_t c1);                                                                   \
  void philox4x32_blocks(const uint32_t* counters, const uint32_t* keys, uint32_t* out, int64_t n,      \
                         int rounds);                                                                   \
  double penalty_grad_range(const PenaltyItem& item, int64_t begin, int64_t end);               \
  double penalty_group_range(const PenaltyItem& item, int64_t a0, int64_t a1, int64_t b0, int64_t b1, \
                             double* scratch);                                                   \
  int64_t prox_l1_range(const UpdateItem& item, int64_t begin, int64_t end);                     \
  void decay_range(const UpdateItem& item, int64_t begin, int64_t end);                          \
  int64_t non_neg_range(const UpdateItem& item, int64_t begin, int64_t end);                     \
  int64_t max_norm_rows(const MaxNormProblem& problem, int64_t a0, int64_t a1);                  \
  int64_t max_norm_columns(const MaxNormProblem& problem, int64_t a, int64_t b0, int64_t b1,     \
                           double* scratch);                                                     \
  void limit_copy_range(const uint8_t* src, uint8_t* dst, int64_t n, bool stream);                            \
  void limit_rmw_range(const uint8_t* src, uint8_t* dst, int64_t n);                             \
  void gaussian_dropout_range(const GaussianPass& pass, int64_t begin, int64_t end);             \
  }
RDF_DECLARE_ISA_KERNELS(generic)
RDF_DECLARE_ISA_KERNELS(avx2)
RDF_DECLARE_ISA_KERNELS(avx512)
#undef RDF_DECLARE_ISA_KERNELS

// The one ISA pick of the drivers: the copy of a per-ISA kernel built for `isa` (which the caller has
// clamped to best_isa()). Spelled through RDF_ISA_KERNEL(isa, name) because a build without the x86
// copies has only generic::name to refer to.
template <class Fn>
Fn pick_isa(Isa isa, Fn generic_fn, Fn avx2_fn, Fn avx512_fn) {
  switch (isa) {
    case Isa::kAvx512:
      return avx512_fn;
    case Isa::kAvx2:
      return avx2_fn;
    case Isa::kGeneric:
      break;
  }
  return generic_fn;
}
#if defined(RDF_HAVE_X86_ISAS)
#define RDF_ISA_KERNEL(isa, fn) ::rdf::cpu::pick_isa((isa), generic::fn, avx2::fn, avx512::fn)
#else
#define RDF_ISA_KERNEL(isa, fn) ((void)(isa), generic::fn)
#endif
// The copy for the ISA in use (active_isa()).
#define RDF_ACTIVE_ISA_KERNEL(fn) RDF_ISA_KERNEL(::rdf::cpu::active_isa(), fn)

}  // namespace cpu
}  // namespace rdf
