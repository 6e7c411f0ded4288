// CPU iteration for the weight penalties over one task's segment (csrc/cpu/penalty_driver.h describes the
// task cut). Compiled once per ISA (see isa.h); every value comes from csrc/common/penalty_element.h.
//
// Loops run the element bodies on lane vectors of the compute type (one register each; half types are
// loaded and stored by vec.h with the same single rounding as the scalar load/store). Float64 sums keep
// 16 lanes on every ISA (the vectors of one group of 16 elements map to consecutive lanes), so lane l holds
// the elements j with j % 16 == l whatever the vector width; the last n % 16 elements of a segment go
// through the same bodies one value at a time. A vector's loads come before its stores: a gradient array
// that is its own parameter reads the original weights.
//
// Nothing here may instantiate an out-of-line function shared with other ISAs' copies (std containers,
// non-inline templates outside this namespace): the linker could keep the AVX-512 copy for every path.
// Scratch memory comes from the caller for that reason.
#include <cmath>
#include <cstdint>

#include "../common/constraint_element.h"
#include "../common/penalty_element.h"
#include "isa.h"
#include "vec.h"

namespace rdf {
namespace cpu {
namespace RDF_ISA {
namespace {

constexpr int kL = kSumLanes;

// Every vector below is one register wide (RDF_VEC_BYTES): GCC lowers wider vector conditionals and
// conversions lane by lane. Float-computed types use vec.h's vf32 (kLanes values, half types converted
// by load_lanes/store_lanes); float64 uses vd, vec.h's vf64 (kLanes / 2 values). Sums are vd vectors.
using vd = vf64;
typedef float vf_half __attribute__((vector_size(RDF_VEC_BYTES / 2)));
constexpr int kDoubleLanes = kLanes / 2;
constexpr int kSumVectors = kL / kDoubleLanes;  // vd vectors holding the kSumLanes sum lanes
static_assert(kL % kLanes == 0, "a group of kSumLanes elements is a whole number of vectors");

inline vf32 load_vec(const float* p) { return load_lanes(p); }
inline vf32 load_vec(const half_t* p) { return load_lanes(p); }
inline vf32 load_vec(const bfloat16_t* p) { return load_lanes(p); }
inline vd load_vec(const double* p) { return RDF_ISA::load_vec<vd>(p); }
inline void store_vec(float* p, vf32 v) { store_lanes(p, v); }
inline void store_vec(half_t* p, vf32 v) { store_lanes(p, v); }
inline void store_vec(bfloat16_t* p, vf32 v) { store_lanes(p, v); }
inline void store_vec(double* p, vd v) { RDF_ISA::store_vec(p, v); }

template <class T>
using vec_t = decltype(load_vec(static_cast<const T*>(nullptr)));
template <class T>
constexpr int vec_lanes() {
  return static_cast<int>(sizeof(vec_t<T>) / sizeof(compute_t<T>));
}

// Every lane = c (c already of the lanes' type, so nothing is rounded here).
template <class V, class C>
inline V splat(C c) {
  return V{} + c;
}

// The lower and upper halves of a float vector as doubles (exact). GCC 12 splits the generic widening
// conversion into quarter-width pieces on x86, so the AVX2/AVX-512 builds say it with intrinsics.
inline void widen(vf32 x, vd& lo, vd& hi) {
#if defined(__AVX512F__) && defined(__AVX512DQ__) && RDF_VEC_BYTES == 64
  const __m512 m = reinterpret_cast<__m512>(x);
  lo = reinterpret_cast<vd>(_mm512_cvtps_pd(_mm512_castps512_ps256(m)));
  hi = reinterpret_cast<vd>(_mm512_cvtps_pd(_mm512_extractf32x8_ps(m, 1)));
#elif defined(__AVX2__) && RDF_VEC_BYTES == 32
  const __m256 m = reinterpret_cast<__m256>(x);
  lo = reinterpret_cast<vd>(_mm256_cvtps_pd(_mm256_castps256_ps128(m)));
  hi = reinterpret_cast<vd>(_mm256_cvtps_pd(_mm256_extractf128_ps(m, 1)));
#else
#if RDF_VEC_BYTES == 16
#define RDF_LOWER_HALF 0, 1
#define RDF_UPPER_HALF 2, 3
#elif RDF_VEC_BYTES == 32
#define RDF_LOWER_HALF 0, 1, 2, 3
#define RDF_UPPER_HALF 4, 5, 6, 7
#else
#define RDF_LOWER_HALF 0, 1, 2, 3, 4, 5, 6, 7
#define RDF_UPPER_HALF 8, 9, 10, 11, 12, 13, 14, 15
#endif
  const vf_half l = __builtin_shufflevector(x, x, RDF_LOWER_HALF);
  const vf_half h = __builtin_shufflevector(x, x, RDF_UPPER_HALF);
  lo = __builtin_convertvector(l, vd);
  hi = __builtin_convertvector(h, vd);
#undef RDF_LOWER_HALF
#undef RDF_UPPER_HALF
#endif
}

// The kSumLanes float64 sums as vd vectors. Vector q of a group holds the group's elements [q * n, q * n + n)
// (n = vec_lanes<T>()) and adds them into the sum lanes of the same numbers: a float vector widens into
// two vd vectors, a double vector is one.
struct SumLanes {
  vd v[kSumVectors] = {};
  template <class F>
  void add(vf32 x, int q, F f) {
    vd lo, hi;
    widen(x, lo, hi);
    v[2 * q] += f(lo);
    v[2 * q + 1] += f(hi);
  }
  template <class F>
  void add(vd x, int q, F f) {
    v[q] += f(x);
  }
  void spill(double lanes[kL]) const { __builtin_memcpy(lanes, v, sizeof v); }
};

// Calls f(k, offset) for the elements k in [begin, end) of a strided array (penalty_driver.h: StridedWalk),
// in C order, offset in elements from the data pointer: the index of `begin` is found once, then the last
// dim is walked in runs, carrying into the dims before it. Scalar: a strided array has no vector loads.
template <class F>
inline void walk_strided(const StridedWalk& layout, int64_t begin, int64_t end, F f) {
  int64_t idx[kMaxStridedDims];
  const int last = layout.ndim - 1;
  int64_t offset = 0, rest = begin;
  for (int d = last; d >= 0; --d) {
    idx[d] = rest % layout.dims[d];
    rest /= layout.dims[d];
    offset += idx[d] * layout.strides[d];
  }
  const int64_t step = layout.strides[last];
  int64_t k = begin;
  while (k < end) {
    const int64_t left = layout.dims[last] - idx[last];
    const int64_t run = left < end - k ? left : end - k;
    for (int64_t j = 0; j < run; ++j) f(k + j, offset + j * step);
    k += run;
    offset += run * step;
    idx[last] += run;
    for (int d = last; d > 0 && idx[d] == layout.dims[d]; --d) {
      offset += layout.strides[d - 1] - idx[d] * layout.strides[d];
      idx[d] = 0;
      ++idx[d - 1];
    }
  }
}

struct AbsOf {
  vd operator()(vd x) const { return abs_contribution(x); }
};
struct SquareOf {
  vd operator()(vd x) const { return square_contribution(x); }
};

template <PenaltyTerms kTerms, bool kGrad, class T>
double grad_segment(const PenaltyItem& item, int64_t begin, int64_t end) {
  using C = compute_t<T>;
  using V = vec_t<T>;
  const T* w = static_cast<const T*>(item.param) + begin;
  T* g = kGrad ? static_cast<T*>(item.grad) + begin : nullptr;
  const int64_t n = end - begin;
  const C c1 = static_cast<C>(item.l1), c2 = static_cast<C>(item.l2);
  const V c1v = splat<V>(c1), c2v = splat<V>(c2);
  SumLanes s1, s2;
  int64_t i = 0;
  for (; i + kL <= n; i += kL) {
    for (int q = 0; q < kL / vec_lanes<T>(); ++q) {
      const int64_t e = i + q * vec_lanes<T>();
      const V x = load_vec(w + e);
      if (kGrad) store_vec(g + e, penalty_grad_value<kTerms>(x, load_vec(g + e), c1v, c2v));
      if (has_l1(kTerms)) s1.add(x, q, AbsOf());
      if (has_l2(kTerms)) s2.add(x, q, SquareOf());
    }
  }
  double a1[kL], a2[kL];
  s1.spill(a1);
  s2.spill(a2);
  for (int l = 0; i + l < n; ++l) {
    const double xd = static_cast<double>(load(w[i + l]));
    if (kGrad) penalty_grad_element<kTerms>(w[i + l], g[i + l], c1, c2);
    if (has_l1(kTerms)) a1[l] += abs_contribution(xd);
    if (has_l2(kTerms)) a2[l] += square_contribution(xd);
  }
  return penalty_segment_value(kTerms, item.l1, item.l2, fold_lanes(a1), fold_lanes(a2));
}

// A strided gradient (its parameter is C-contiguous): the same bodies one element at a time, element k
// adding into sum lane (k - begin) % 16 as in grad_segment, so the value is the same bits as for a
// C-contiguous gradient.
template <PenaltyTerms kTerms, class T>
double grad_segment_strided(const PenaltyItem& item, int64_t begin, int64_t end) {
  using C = compute_t<T>;
  const T* w = static_cast<const T*>(item.param);
  T* g = static_cast<T*>(item.grad);
  const C c1 = static_cast<C>(item.l1), c2 = static_cast<C>(item.l2);
  double a1[kL] = {}, a2[kL] = {};
  walk_strided(*item.grad_layout, begin, end, [&](int64_t k, int64_t offset) {
    const int l = static_cast<int>((k - begin) % kL);
    const double xd = static_cast<double>(load(w[k]));
    penalty_grad_element<kTerms>(w[k], g[offset], c1, c2);
    if (has_l1(kTerms)) a1[l] += abs_contribution(xd);
    if (has_l2(kTerms)) a2[l] += square_contribution(xd);
  });
  return penalty_segment_value(kTerms, item.l1, item.l2, fold_lanes(a1), fold_lanes(a2));
}

template <class T>
double grad_segment_terms(const PenaltyItem& item, int64_t begin, int64_t end) {
  const bool with_grad = item.grad != nullptr;
  const bool strided = with_grad && item.grad_layout != nullptr;
  switch (penalty_terms(item.l1, item.l2)) {
    case PenaltyTerms::kL1L2:
      if (strided) return grad_segment_strided<PenaltyTerms::kL1L2, T>(item, begin, end);
      return with_grad ? grad_segment<PenaltyTerms::kL1L2, true, T>(item, begin, end)
                       : grad_segment<PenaltyTerms::kL1L2, false, T>(item, begin, end);
    case PenaltyTerms::kL1:
      if (strided) return grad_segment_strided<PenaltyTerms::kL1, T>(item, begin, end);
      return with_grad ? grad_segment<PenaltyTerms::kL1, true, T>(item, begin, end)
                       : grad_segment<PenaltyTerms::kL1, false, T>(item, begin, end);
    case PenaltyTerms::kL2:
      if (strided) return grad_segment_strided<PenaltyTerms::kL2, T>(item, begin, end);
      return with_grad ? grad_segment<PenaltyTerms::kL2, true, T>(item, begin, end)
                       : grad_segment<PenaltyTerms::kL2, false, T>(item, begin, end);
    case PenaltyTerms::kNone:
      break;
  }
  return 0.0;
}

// Zeros are counted on the stored values (a half type may round a tiny result to zero).
template <class T>
int64_t prox_segment(const UpdateItem& item, int64_t begin, int64_t end) {
  using C = compute_t<T>;
  using V = vec_t<T>;
  T* w = static_cast<T*>(item.param);
  const C t = static_cast<C>(item.coef);
  if (item.layout != nullptr) {
    int64_t zeros = 0;
    walk_strided(*item.layout, begin, end,
                 [&](int64_t, int64_t offset) { zeros += soft_threshold_element(w[offset], t) ? 1 : 0; });
    return zeros;
  }
  const V tv = splat<V>(t), zero = V{};
  decltype(zero == zero) zero_lanes = {};  // each lane counts down by one per zero (true is all ones)
  int64_t i = begin;
  for (; i + vec_lanes<T>() <= end; i += vec_lanes<T>()) {
    store_vec(w + i, soft_threshold_value(load_vec(w + i), tv));
    zero_lanes += load_vec(w + i) == zero;
  }
  int64_t zeros = 0;
  for (int l = 0; l < vec_lanes<T>(); ++l) zeros -= zero_lanes[l];
  for (; i < end; ++i) zeros += soft_threshold_element(w[i], t) ? 1 : 0;
  return zeros;
}

// Negative elements counted as they are set to +0 (constraint_element.h).
template <class T>
int64_t non_neg_segment(const UpdateItem& item, int64_t begin, int64_t end) {
  using V = vec_t<T>;
  T* w = static_cast<T*>(item.param);
  int64_t negatives = 0;
  if (item.layout != nullptr) {
    walk_strided(*item.layout, begin, end,
                 [&](int64_t, int64_t offset) { negatives += non_neg_element(w[offset]) ? 1 : 0; });
    return negatives;
  }
  const V zero = V{};
  decltype(zero == zero) negative_lanes = {};  // each lane counts down by one per negative (true is all ones)
  int64_t i = begin;
  for (; i + vec_lanes<T>() <= end; i += vec_lanes<T>()) {
    const V x = load_vec(w + i);
    negative_lanes += x < zero;
    store_vec(w + i, non_neg_value(x));
  }
  for (int l = 0; l < vec_lanes<T>(); ++l) negatives -= negative_lanes[l];
  for (; i < end; ++i) negatives += non_neg_element(w[i]) ? 1 : 0;
  return negatives;
}

template <class T>
void decay_segment(const UpdateItem& item, int64_t begin, int64_t end) {
  using V = vec_t<T>;
  T* w = static_cast<T*>(item.param);
  const double multiplier = decay_multiplier(item.coef);
  if (item.layout != nullptr) {
    walk_strided(*item.layout, begin, end,
                 [&](int64_t, int64_t offset) { decay_element(w[offset], static_cast<compute_t<T>>(multiplier)); });
    return;
  }
  const V mv = splat<V>(static_cast<compute_t<T>>(multiplier));
  int64_t i = begin;
  for (; i + vec_lanes<T>() <= end; i += vec_lanes<T>()) store_vec(w + i, load_vec(w + i) * mv);
  for (; i < end; ++i) decay_element(w[i], static_cast<compute_t<T>>(multiplier));
}

// Squared norm of n contiguous elements: lane sums, folded.
template <class T>
double contiguous_sum_squares(const T* w, int64_t n) {
  SumLanes acc;
  int64_t k = 0;
  for (; k + kL <= n; k += kL)
    for (int q = 0; q < kL / vec_lanes<T>(); ++q)
      acc.add(load_vec(w + k + q * vec_lanes<T>()), q, SquareOf());
  double a[kL];
  acc.spill(a);
  for (int l = 0; k + l < n; ++l) a[l] += square_contribution(static_cast<double>(load(w[k + l])));
  return fold_lanes(a);
}

template <class T>
void rescale_contiguous(T* w, int64_t n, double factor) {
  using V = vec_t<T>;
  const V fv = splat<V>(static_cast<compute_t<T>>(factor));
  int64_t k = 0;
  for (; k + vec_lanes<T>() <= n; k += vec_lanes<T>()) store_vec(w + k, load_vec(w + k) * fv);
  for (; k < n; ++k) rescale_element(w[k], static_cast<compute_t<T>>(factor));
}

template <class T>
int64_t max_norm_rows_typed(const MaxNormProblem& p, int64_t a0, int64_t a1) {
  int64_t rescaled = 0;
  for (int64_t a = a0; a < a1; ++a) {
    T* w = static_cast<T*>(p.w) + a * p.reduce;
    const double norm = std::sqrt(contiguous_sum_squares(w, p.reduce));
    bool counted;
    const double factor = slice_factor(norm, p.bounds, counted);
    if (factor == kZeroSlice)
      for (int64_t k = 0; k < p.reduce; ++k) zero_element(w[k]);
    else if (factor >= 0.0)
      rescale_contiguous(w, p.reduce, factor);
    rescaled += counted ? 1 : 0;
  }
  return rescaled;
}

// Columns [b0, b1) of outer block a. acc (kL * width doubles, lane-major) holds the lane sums of every
// column side by side, so each row of the block is one contiguous sweep and the fold runs across all
// columns at once; factor (width doubles) then holds each column's factor, or -1 to leave it alone.
template <class T>
int64_t max_norm_columns_typed(const MaxNormProblem& p, int64_t a, int64_t b0, int64_t b1, double* acc,
                               double* factor) {
  const int64_t width = b1 - b0;
  T* block = static_cast<T*>(p.w) + a * p.reduce * p.inner + b0;
  for (int64_t j = 0; j < kL * width; ++j) acc[j] = 0.0;
  for (int64_t k = 0; k < p.reduce; ++k) {
    const T* row = block + k * p.inner;
    double* lane = acc + (k % kL) * width;
    for (int64_t j = 0; j < width; ++j) lane[j] += square_contribution(static_cast<double>(load(row[j])));
  }
  for (int h = kL / 2; h >= 1; h /= 2)
    for (int l = 0; l < h; ++l)
      for (int64_t j = 0; j < width; ++j) acc[l * width + j] += acc[(l + h) * width + j];
  int64_t rescaled = 0;
  bool writes = false;
  for (int64_t j = 0; j < width; ++j) {
    bool counted;
    factor[j] = slice_factor(std::sqrt(acc[j]), p.bounds, counted);  // kLeaveSlice, kZeroSlice or >= 0
    rescaled += counted ? 1 : 0;
    writes = writes || factor[j] != kLeaveSlice;
  }
  if (!writes) return rescaled;
  for (int64_t k = 0; k < p.reduce; ++k) {
    T* row = block + k * p.inner;
    for (int64_t j = 0; j < width; ++j) {
      if (factor[j] >= 0.0)
        rescale_element(row[j], static_cast<compute_t<T>>(factor[j]));
      else if (factor[j] == kZeroSlice)
        zero_element(row[j]);
    }
  }
  return rescaled;
}

// ---------------------------------------------------------------------------------------------------------
// penalty_grad / penalty with a group_l1 term (penalty_driver.h: group items), one task of whole groups.
// Each group is read twice while it is in cache: once for its norm (max_norm's lanes, so the norm is the
// same bits as max_norm's) and the other terms' sums, once for the gradient update; the value sums run in
// group order. A strided gradient is reached through its walk over each run of consecutive logical indices.

// Calls f(j, g_j) for the gradient elements of logical indices [begin, end) (j = index - begin).
template <class T, class F>
inline void grad_run(const PenaltyItem& it, int64_t begin, int64_t end, F f) {
  T* g = static_cast<T*>(it.grad);
  if (it.grad_layout == nullptr) {
    for (int64_t k = begin; k < end; ++k) f(k - begin, g[k]);
    return;
  }
  walk_strided(*it.grad_layout, begin, end, [&](int64_t k, int64_t offset) { f(k - begin, g[offset]); });
}

template <PenaltyTerms kTerms, bool kGrad, class T>
double group_rows(const PenaltyItem& it, int64_t a0, int64_t a1) {
  using C = compute_t<T>;
  using V = vec_t<T>;
  const int64_t r = it.reduce;
  const C c1 = static_cast<C>(it.l1), c2 = static_cast<C>(it.l2);
  const V c1v = splat<V>(c1), c2v = splat<V>(c2);
  double s1 = 0.0, s2 = 0.0, norms = 0.0;
  // The gradient's row is fetched while the norm is summed (a row is a few KiB: the two streams would
  // otherwise take turns, each restarting the hardware prefetcher at every row).
  T* const g_base = kGrad && it.grad_layout == nullptr ? static_cast<T*>(it.grad) : nullptr;
  constexpr int64_t kLine = 64 / static_cast<int64_t>(sizeof(T));
  for (int64_t a = a0; a < a1; ++a) {
    const T* w = static_cast<const T*>(it.param) + a * r;
    SumLanes sq, ab;
    int64_t k = 0;
    for (; k + kL <= r; k += kL) {
      if (g_base != nullptr)
        for (int64_t c = 0; c < kL; c += kLine) __builtin_prefetch(g_base + a * r + k + c, 1);
      for (int q = 0; q < kL / vec_lanes<T>(); ++q) {
        const V x = load_vec(w + k + q * vec_lanes<T>());
        sq.add(x, q, SquareOf());
        if (has_l1(kTerms)) ab.add(x, q, AbsOf());
      }
    }
    double lq[kL], la[kL];
    sq.spill(lq);
    ab.spill(la);
    for (int l = 0; k + l < r; ++l) {
      const double xd = static_cast<double>(load(w[k + l]));
      lq[l] += square_contribution(xd);
      if (has_l1(kTerms)) la[l] += abs_contribution(xd);
    }
    const double s = fold_lanes(lq), norm = std::sqrt(s);
    s2 += s;
    if (has_l1(kTerms)) s1 += fold_lanes(la);
    norms += norm;
    if (!kGrad) continue;
    const bool grouped = group_term_applies(norm);
    if (!grouped && kTerms == PenaltyTerms::kNone) continue;
    const C f = static_cast<C>(group_grad_factor(it.group, norm));
    if (it.grad_layout == nullptr) {
      T* g = static_cast<T*>(it.grad) + a * r;
      const V fv = splat<V>(f);
      int64_t j = 0;
      for (; j + vec_lanes<T>() <= r; j += vec_lanes<T>()) {
        const V x = load_vec(w + j), gv = load_vec(g + j);
        if (grouped)
          store_vec(g + j, penalty_group_grad_value<kTerms>(x, gv, c1v, c2v, fv));
        else if constexpr (kTerms != PenaltyTerms::kNone)
          store_vec(g + j, penalty_grad_value<kTerms>(x, gv, c1v, c2v));
      }
      for (; j < r; ++j) penalty_group_grad_element<kTerms>(w[j], g[j], c1, c2, f, grouped);
    } else {
      grad_run<T>(it, a * r, a * r + r,
                  [&](int64_t j, T& g) { penalty_group_grad_element<kTerms>(w[j], g, c1, c2, f, grouped); });
    }
  }
  return penalty_group_value(kTerms, it.l1, it.l2, it.group, s1, s2, norms);
}

// Columns [b0, b1) of outer blocks [a0, a1): max_norm_columns_typed's lane sums (acc, kL * width doubles,
// lane-major) and then each column's factor (factor, width doubles; kLeaveSlice: no group term).
template <PenaltyTerms kTerms, bool kGrad, class T>
double group_columns(const PenaltyItem& it, int64_t a0, int64_t a1, int64_t b0, int64_t b1, double* acc,
                     double* factor) {
  using C = compute_t<T>;
  const int64_t width = b1 - b0, r = it.reduce, inner = it.inner;
  const C c1 = static_cast<C>(it.l1), c2 = static_cast<C>(it.l2);
  double s1 = 0.0, s2 = 0.0, norms = 0.0;
  for (int64_t a = a0; a < a1; ++a) {
    const int64_t first = a * r * inner + b0;  // logical index of column b0's element k = 0
    const T* block = static_cast<const T*>(it.param) + first;
    for (int64_t j = 0; j < kL * width; ++j) acc[j] = 0.0;
    for (int64_t k = 0; k < r; ++k) {
      const T* row = block + k * inner;
      double* lane = acc + (k % kL) * width;
      for (int64_t j = 0; j < width; ++j) {
        const double xd = static_cast<double>(load(row[j]));
        lane[j] += square_contribution(xd);
        if (has_l1(kTerms)) s1 += abs_contribution(xd);
      }
    }
    for (int h = kL / 2; h >= 1; h /= 2)
      for (int l = 0; l < h; ++l)
        for (int64_t j = 0; j < width; ++j) acc[l * width + j] += acc[(l + h) * width + j];
    bool writes = kTerms != PenaltyTerms::kNone;
    for (int64_t j = 0; j < width; ++j) {
      const double norm = std::sqrt(acc[j]);
      s2 += acc[j];
      norms += norm;
      const bool grouped = group_term_applies(norm);
      factor[j] = grouped ? group_grad_factor(it.group, norm) : kLeaveSlice;
      writes = writes || grouped;
    }
    if (!kGrad || !writes) continue;
    for (int64_t k = 0; k < r; ++k) {
      const T* row = block + k * inner;
      grad_run<T>(it, first + k * inner, first + k * inner + width, [&](int64_t j, T& g) {
        const bool grouped = factor[j] != kLeaveSlice;
        penalty_group_grad_element<kTerms>(row[j], g, c1, c2, static_cast<C>(grouped ? factor[j] : 0.0), grouped);
      });
    }
  }
  return penalty_group_value(kTerms, it.l1, it.l2, it.group, s1, s2, norms);
}

template <PenaltyTerms kTerms, bool kGrad, class T>
double group_task(const PenaltyItem& it, int64_t a0, int64_t a1, int64_t b0, int64_t b1, double* scratch) {
  if (it.inner == 1) return group_rows<kTerms, kGrad, T>(it, a0, a1);
  return group_columns<kTerms, kGrad, T>(it, a0, a1, b0, b1, scratch, scratch + kL * (b1 - b0));
}

template <class T>
double group_task_terms(const PenaltyItem& it, int64_t a0, int64_t a1, int64_t b0, int64_t b1, double* scratch) {
  const bool g = it.grad != nullptr;
  switch (penalty_terms(it.l1, it.l2)) {
    case PenaltyTerms::kL1L2:
      return g ? group_task<PenaltyTerms::kL1L2, true, T>(it, a0, a1, b0, b1, scratch)
               : group_task<PenaltyTerms::kL1L2, false, T>(it, a0, a1, b0, b1, scratch);
    case PenaltyTerms::kL1:
      return g ? group_task<PenaltyTerms::kL1, true, T>(it, a0, a1, b0, b1, scratch)
               : group_task<PenaltyTerms::kL1, false, T>(it, a0, a1, b0, b1, scratch);
    case PenaltyTerms::kL2:
      return g ? group_task<PenaltyTerms::kL2, true, T>(it, a0, a1, b0, b1, scratch)
               : group_task<PenaltyTerms::kL2, false, T>(it, a0, a1, b0, b1, scratch);
    case PenaltyTerms::kNone:
      break;
  }
  return g ? group_task<PenaltyTerms::kNone, true, T>(it, a0, a1, b0, b1, scratch)
           : group_task<PenaltyTerms::kNone, false, T>(it, a0, a1, b0, b1, scratch);
}

}  // namespace

double penalty_grad_range(const PenaltyItem& item, int64_t begin, int64_t end) {
  return dispatch_dtype(item.dtype,
                        [&](auto tag) { return grad_segment_terms<decltype(tag)>(item, begin, end); });
}

double penalty_group_range(const PenaltyItem& item, int64_t a0, int64_t a1, int64_t b0, int64_t b1,
                           double* scratch) {
  return dispatch_dtype(item.dtype, [&](auto tag) {
    return group_task_terms<decltype(tag)>(item, a0, a1, b0, b1, scratch);
  });
}

int64_t prox_l1_range(const UpdateItem& item, int64_t begin, int64_t end) {
  return dispatch_dtype(item.dtype, [&](auto tag) { return prox_segment<decltype(tag)>(item, begin, end); });
}

int64_t non_neg_range(const UpdateItem& item, int64_t begin, int64_t end) {
  return dispatch_dtype(item.dtype, [&](auto tag) { return non_neg_segment<decltype(tag)>(item, begin, end); });
}

void decay_range(const UpdateItem& item, int64_t begin, int64_t end) {
  dispatch_dtype(item.dtype, [&](auto tag) { decay_segment<decltype(tag)>(item, begin, end); });
}

int64_t max_norm_rows(const MaxNormProblem& problem, int64_t a0, int64_t a1) {
  return dispatch_dtype(problem.dtype,
                        [&](auto tag) { return max_norm_rows_typed<decltype(tag)>(problem, a0, a1); });
}

int64_t max_norm_columns(const MaxNormProblem& problem, int64_t a, int64_t b0, int64_t b1, double* scratch) {
  const int64_t width = b1 - b0;
  return dispatch_dtype(problem.dtype, [&](auto tag) {
    return max_norm_columns_typed<decltype(tag)>(problem, a, b0, b1, scratch, scratch + kL * width);
  });
}

}  // namespace RDF_ISA
}  // namespace cpu
}  // namespace rdf
