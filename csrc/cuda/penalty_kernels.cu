// CUDA iteration for the weight penalties: penalty_grad / penalty, prox_l1, decay on lists of arrays, and
// max_norm. Every value comes from the element bodies of csrc/common/penalty_element.h (built with
// --fmad=false, like the CPU's -ffp-contract=off), so gradients, prox_l1, decay and max_norm are
// bit-identical to the CPU kernels and the NumPy reference.
//
// List ops: csrc/cuda/list_plan.h packs the list into launches; one block of kListThreads threads handles
// one chunk of kChunkElems elements of one array. The array's dtype (and for the penalty its terms) is read
// from the launch metadata, so every branch on it is uniform across the block. Data moves in 16-byte
// vectors when the chunk's pointers are 16-byte aligned (chunks start at multiples of kChunkElems, so a
// chunk is aligned when its array is), element by element otherwise.
//
// Sums (penalty values, zero counts, rescale counts) never use atomics: every block reduces its threads'
// partials in a fixed tree order and writes the result into its own slot of the caller's scratch buffer;
// one final single-block kernel adds the slots in a fixed order into the 0-d output. The same call gives the
// same bits on every run. (The penalty value is grouped differently from the CPU's 16-lane sums, so it
// agrees with the CPU and the reference to within a few float64 roundings, not bit for bit.)
//
// max_norm reproduces the CPU's norms exactly: lane l of a slice sums the squares of the elements
// k = l, l + 16, l + 32, ... in increasing k, and the 16 lanes are folded by fold_lanes; one thread per
// (slice, lane) does the first part, one thread per slice the fold, the decision and the factor.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "../common/constraint_element.h"
#include "../common/penalty_element.h"
#include "check_cuda.h"
#include "list_plan.h"
#include "entry_points.h"

namespace rdf {
namespace cuda {
namespace {

constexpr int kListThreads = 256;    // threads per block of the list kernels (one chunk per block)
constexpr int kReduceThreads = 512;  // threads of the single block that adds the slots
constexpr int kNormThreads = 256;    // threads per block of the max_norm kernels

using Count = long long;  // the device-side int64 of counts
static_assert(sizeof(Count) == sizeof(int64_t), "counts are int64 in the scratch and output buffers");

// 16 bytes of T: 4 float32, 2 float64 or 8 half values.
template <class T>
struct alignas(16) Vec {
  static constexpr int kSize = 16 / static_cast<int>(sizeof(T));
  T v[kSize];
};
static_assert(sizeof(Vec<half_t>) == 16 && sizeof(Vec<bfloat16_t>) == 16 && sizeof(Vec<double>) == 16,
              "a Vec is one 16-byte access");
static_assert(kChunkElems % 8 == 0, "chunks of an aligned array stay 16-byte aligned");
#if defined(__CUDACC__) && defined(CUDART_VERSION)
static_assert(CUDART_VERSION >= 12010, "ListLaunch needs the 32 KB kernel parameters of CUDA 12.1+");
#endif

// One 128-bit load / store, whatever T is (p is 16-byte aligned).
template <class T>
__device__ __forceinline__ Vec<T> load_vec(const Vec<T>* p) {
  const uint4 u = *reinterpret_cast<const uint4*>(p);
  Vec<T> r;
  memcpy(&r, &u, sizeof r);
  return r;
}
template <class T>
__device__ __forceinline__ void store_vec(Vec<T>* p, const Vec<T>& x) {
  uint4 u;
  memcpy(&u, &x, sizeof u);
  *reinterpret_cast<uint4*>(p) = u;
}

__device__ __forceinline__ bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

// The sum over the block's kThreads threads of v, added in a fixed tree order (thread x adds x + h for
// h = kThreads/2, ..., 1), returned to every thread. Every thread of the block must call it.
template <int kThreads, class A>
__device__ __forceinline__ A block_sum(A v, A* shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
#pragma unroll
  for (int h = kThreads / 2; h > 0; h /= 2) {
    if (static_cast<int>(threadIdx.x) < h) shared[threadIdx.x] += shared[threadIdx.x + h];
    __syncthreads();
  }
  const A total = shared[0];
  __syncthreads();  // shared may be reused as soon as this returns
  return total;
}

// The final step of every sum: slots[0, n) added by one block in a fixed order into out[0] (0 when n = 0).
template <class A>
__global__ void __launch_bounds__(kReduceThreads) sum_slots_kernel(const A* slots, int64_t n, A* out) {
  __shared__ A shared[kReduceThreads];
  A v = A(0);
  for (int64_t i = threadIdx.x; i < n; i += kReduceThreads) v += slots[i];
  v = block_sum<kReduceThreads>(v, shared);
  if (threadIdx.x == 0) out[0] = v;
}

// ---------------------------------------------------------------------------------------------------------
// penalty_grad / penalty

template <PenaltyTerms kTerms, class T>
__device__ __forceinline__ void add_value(const T& w, double& s1, double& s2) {
  const double x = static_cast<double>(load(w));
  if constexpr (has_l1(kTerms)) s1 += abs_contribution(x);
  if constexpr (has_l2(kTerms)) s2 += square_contribution(x);
}

template <PenaltyTerms kTerms, bool kGrad, class T>
__device__ __forceinline__ void penalty_vec(const Vec<T>& w, Vec<T>& g, compute_t<T> c1, compute_t<T> c2,
                                            double& s1, double& s2) {
#pragma unroll
  for (int k = 0; k < Vec<T>::kSize; ++k) {
    add_value<kTerms>(w.v[k], s1, s2);
    if constexpr (kGrad) penalty_grad_element<kTerms>(w.v[k], g.v[k], c1, c2);
  }
}

// One chunk: count elements at w (and g). g may be w itself (a gradient that is its own parameter): every
// element is read before it is written, by the same thread, so the value and the update see the original
// weights. Hence no __restrict__ here.
template <PenaltyTerms kTerms, bool kGrad, class T>
__device__ void penalty_chunk(const T* w, T* g, int count, double l1, double l2, double& s1, double& s2) {
  using C = compute_t<T>;
  const C c1 = static_cast<C>(l1), c2 = static_cast<C>(l2);
  constexpr int kV = Vec<T>::kSize;
  int first_scalar = 0;
  if (aligned16(w) && (!kGrad || aligned16(g))) {
    const int vecs = count / kV;
    const auto* wv = reinterpret_cast<const Vec<T>*>(w);
    auto* gv = reinterpret_cast<Vec<T>*>(g);
    int v = threadIdx.x;
    // Two vectors per step, both loaded before either is stored, so more loads are in flight; the two
    // never overlap.
    for (; v + kListThreads < vecs; v += 2 * kListThreads) {
      const Vec<T> w0 = load_vec(wv + v), w1 = load_vec(wv + v + kListThreads);
      Vec<T> g0{}, g1{};
      if constexpr (kGrad) {
        g0 = load_vec(gv + v);
        g1 = load_vec(gv + v + kListThreads);
      }
      penalty_vec<kTerms, kGrad>(w0, g0, c1, c2, s1, s2);
      penalty_vec<kTerms, kGrad>(w1, g1, c1, c2, s1, s2);
      if constexpr (kGrad) {
        store_vec(gv + v, g0);
        store_vec(gv + v + kListThreads, g1);
      }
    }
    for (; v < vecs; v += kListThreads) {
      const Vec<T> w0 = load_vec(wv + v);
      Vec<T> g0{};
      if constexpr (kGrad) g0 = load_vec(gv + v);
      penalty_vec<kTerms, kGrad>(w0, g0, c1, c2, s1, s2);
      if constexpr (kGrad) store_vec(gv + v, g0);
    }
    first_scalar = vecs * kV;
  }
  for (int i = first_scalar + static_cast<int>(threadIdx.x); i < count; i += kListThreads) {
    add_value<kTerms>(w[i], s1, s2);
    if constexpr (kGrad) penalty_grad_element<kTerms>(w[i], g[i], c1, c2);
  }
}

template <bool kGrad, class T>
__device__ __forceinline__ void penalty_chunk_terms(PenaltyTerms terms, void* a, void* b, int64_t begin, int count,
                                                    double l1, double l2, double& s1, double& s2) {
  const T* w = static_cast<const T*>(a) + begin;
  T* g = kGrad ? static_cast<T*>(b) + begin : nullptr;
  switch (terms) {
    case PenaltyTerms::kL1L2:
      penalty_chunk<PenaltyTerms::kL1L2, kGrad, T>(w, g, count, l1, l2, s1, s2);
      break;
    case PenaltyTerms::kL1:
      penalty_chunk<PenaltyTerms::kL1, kGrad, T>(w, g, count, l1, l2, s1, s2);
      break;
    case PenaltyTerms::kL2:
      penalty_chunk<PenaltyTerms::kL2, kGrad, T>(w, g, count, l1, l2, s1, s2);
      break;
    case PenaltyTerms::kNone:  // never planned
      break;
  }
}

// Where a block's chunk lies: its array slot, first element and length (block_chunk of list_plan.h: a
// binary search over the launch's array slots). The launch metadata is a __grid_constant__ kernel parameter,
// read in place through the reference (never copied to local memory).
#define RDF_BLOCK_CHUNK(L)                                                                  \
  const BlockChunk bc = block_chunk((L), static_cast<int>(blockIdx.x));                     \
  const int t = bc.tensor;                                                                  \
  const int64_t begin = static_cast<int64_t>(bc.chunk) * kChunkElems;                       \
  const int64_t left = (L).n[t] - begin;                                                    \
  const int count = static_cast<int>(left < kChunkElems ? left : kChunkElems)

template <bool kGrad>
__global__ void __launch_bounds__(kListThreads) penalty_kernel(const __grid_constant__ ListLaunch L, double* slots) {
  __shared__ double shared[kListThreads];
  RDF_BLOCK_CHUNK(L);
  const double l1 = L.c1[t], l2 = L.c2[t];
  const PenaltyTerms terms = penalty_terms(l1, l2);
  void* const a = L.a[t];
  void* const b = L.b[t];
  double s1 = 0.0, s2 = 0.0;
  dispatch_dtype(static_cast<DType>(L.dtype[t]), [&](auto tag) {
    penalty_chunk_terms<kGrad, decltype(tag)>(terms, a, b, begin, count, l1, l2, s1, s2);
  });
  s1 = block_sum<kListThreads>(s1, shared);
  s2 = block_sum<kListThreads>(s2, shared);
  if (threadIdx.x == 0) slots[L.first_slot + blockIdx.x] = penalty_segment_value(terms, l1, l2, s1, s2);
}

// ---------------------------------------------------------------------------------------------------------
// prox_l1 and decay

// op(element) on every element of an array's chunk, in place: 16-byte vectors when the chunk is aligned,
// single elements for the rest (prox_l1 and decay).
template <class T, class Op>
__device__ __forceinline__ void update_chunk(T* w, int count, Op op) {
  constexpr int kV = Vec<T>::kSize;
  int first_scalar = 0;
  if (aligned16(w)) {
    const int vecs = count / kV;
    auto* wv = reinterpret_cast<Vec<T>*>(w);
    for (int v = threadIdx.x; v < vecs; v += kListThreads) {
      Vec<T> x = load_vec(wv + v);
#pragma unroll
      for (int k = 0; k < kV; ++k) op(x.v[k]);
      store_vec(wv + v, x);
    }
    first_scalar = vecs * kV;
  }
  for (int i = first_scalar + static_cast<int>(threadIdx.x); i < count; i += kListThreads) op(w[i]);
}

__global__ void __launch_bounds__(kListThreads) prox_l1_kernel(const __grid_constant__ ListLaunch L, Count* slots) {
  __shared__ Count shared[kListThreads];
  RDF_BLOCK_CHUNK(L);
  void* const a = L.a[t];
  const double threshold = L.c1[t];
  Count zeros = 0;
  dispatch_dtype(static_cast<DType>(L.dtype[t]), [&](auto tag) {
    using T = decltype(tag);
    const auto c = static_cast<compute_t<T>>(threshold);
    update_chunk(static_cast<T*>(a) + begin, count, [&](T& x) { zeros += soft_threshold_element(x, c) ? 1 : 0; });
  });
  zeros = block_sum<kListThreads>(zeros, shared);
  if (threadIdx.x == 0) slots[L.first_slot + blockIdx.x] = zeros;
}

// non_neg: the negatives counted as prox_l1 counts zeros.
__global__ void __launch_bounds__(kListThreads) non_neg_kernel(const __grid_constant__ ListLaunch L, Count* slots) {
  __shared__ Count shared[kListThreads];
  RDF_BLOCK_CHUNK(L);
  void* const a = L.a[t];
  Count negatives = 0;
  dispatch_dtype(static_cast<DType>(L.dtype[t]), [&](auto tag) {
    using T = decltype(tag);
    update_chunk(static_cast<T*>(a) + begin, count, [&](T& x) { negatives += non_neg_element(x) ? 1 : 0; });
  });
  negatives = block_sum<kListThreads>(negatives, shared);
  if (threadIdx.x == 0) slots[L.first_slot + blockIdx.x] = negatives;
}

__global__ void __launch_bounds__(kListThreads) decay_kernel(const __grid_constant__ ListLaunch L) {
  RDF_BLOCK_CHUNK(L);
  void* const a = L.a[t];
  const double factor = L.c1[t];
  dispatch_dtype(static_cast<DType>(L.dtype[t]), [&](auto tag) {
    using T = decltype(tag);
    const auto m = static_cast<compute_t<T>>(decay_multiplier(factor));
    update_chunk(static_cast<T*>(a) + begin, count, [&](T& x) { decay_element(x, m); });
  });
}

#undef RDF_BLOCK_CHUNK

// ---------------------------------------------------------------------------------------------------------
// max_norm
//
// Both kernels walk tiles of slices with a grid-stride loop (uniform across the block, so the barriers
// inside are reached by every thread) and count the slices they rescale; the block's count goes into slot
// blockIdx.x. Per tile: each thread sums its lanes, a barrier, one thread per slice folds the 16 lanes and
// decides (factor -1: leave the slice alone), a barrier, then the slice's threads rescale it. A factor is
// read only after the barrier that follows its write, and rewritten only after the next tile's first
// barrier, which every reader of the old one has passed.

constexpr int kRowsPerTile = kNormThreads / kSumLanes;  // contiguous slices (inner == 1): 16 lanes per row
constexpr int kColsPerTile = 32;                         // strided slices: one warp reads 32 adjacent columns
constexpr int kLaneGroups = kNormThreads / kColsPerTile;
constexpr int kLanesPerThread = kSumLanes / kLaneGroups;
static_assert(kNormThreads % kSumLanes == 0 && kSumLanes % kLaneGroups == 0, "tile shapes");

// One slice's decision from its 16 partial sums (constraint_element.h: slice_factor): the factor to
// rescale it by (>= 0), kLeaveSlice or kZeroSlice; counts the slices the op counts. Called by one thread
// per slice.
__device__ __forceinline__ double decide_slice(bool valid, double* slice_lanes, const NormBounds& bounds,
                                               Count& rescaled) {
  if (!valid) return kLeaveSlice;
  bool counted;
  const double factor = slice_factor(sqrt(fold_lanes(slice_lanes)), bounds, counted);
  rescaled += counted ? 1 : 0;
  return factor;
}

// Slices are the rows w[a, 0:reduce]: thread (r, lane) of the tile sums lane `lane` of row r.
template <class T>
__global__ void __launch_bounds__(kNormThreads)
    max_norm_rows_kernel(T* w, int64_t outer, int64_t reduce, NormBounds bounds, Count* slots) {
  __shared__ double lanes[kRowsPerTile][kSumLanes];
  __shared__ double factors[kRowsPerTile];
  __shared__ Count counts[kNormThreads];
  const int lane = static_cast<int>(threadIdx.x) % kSumLanes;
  const int r = static_cast<int>(threadIdx.x) / kSumLanes;
  const int64_t tiles = (outer + kRowsPerTile - 1) / kRowsPerTile;
  Count rescaled = 0;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t a = tile * kRowsPerTile + r;
    const bool valid = a < outer;
    const int64_t row = valid ? a * reduce : 0;  // index of the row's first element
    double acc = 0.0;
    if (valid) {
#pragma unroll 4
      for (int64_t k = lane; k < reduce; k += kSumLanes)
        acc += square_contribution(static_cast<double>(load(w[row + k])));
    }
    lanes[r][lane] = acc;
    __syncthreads();
    if (lane == 0) factors[r] = decide_slice(valid, lanes[r], bounds, rescaled);
    __syncthreads();
    const double factor = factors[r];
    if (factor >= 0.0) {
      const auto f = static_cast<compute_t<T>>(factor);
      for (int64_t k = lane; k < reduce; k += kSumLanes) rescale_element(w[row + k], f);
    } else if (factor == kZeroSlice) {
      for (int64_t k = lane; k < reduce; k += kSumLanes) zero_element(w[row + k]);
    }
  }
  rescaled = block_sum<kNormThreads>(rescaled, counts);
  if (threadIdx.x == 0) slots[blockIdx.x] = rescaled;
}

// Slices are the columns w[a, 0:reduce, b] (element k at a * reduce * inner + k * inner + b): a tile is 32
// adjacent columns of one outer block; thread (group, col) sums lanes group, group + 8 of column col.
template <class T>
__global__ void __launch_bounds__(kNormThreads) max_norm_columns_kernel(T* w, int64_t outer, int64_t reduce,
                                                                        int64_t inner, NormBounds bounds,
                                                                        Count* slots) {
  __shared__ double lanes[kColsPerTile][kSumLanes + 1];  // a column's lanes contiguous; +1 shifts the banks
  __shared__ double factors[kColsPerTile];
  __shared__ Count counts[kNormThreads];
  const int col = static_cast<int>(threadIdx.x) % kColsPerTile;
  const int group = static_cast<int>(threadIdx.x) / kColsPerTile;
  const int64_t col_tiles = (inner + kColsPerTile - 1) / kColsPerTile;
  const int64_t tiles = outer * col_tiles;
  Count rescaled = 0;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t a = tile / col_tiles;
    const int64_t b = (tile % col_tiles) * kColsPerTile + col;
    const bool valid = b < inner;
    const int64_t first = valid ? a * reduce * inner + b : 0;  // index of the slice's element k = 0
#pragma unroll
    for (int j = 0; j < kLanesPerThread; ++j) {
      const int l = group + j * kLaneGroups;
      double acc = 0.0;
      if (valid) {
#pragma unroll 4
        for (int64_t k = l; k < reduce; k += kSumLanes)
          acc += square_contribution(static_cast<double>(load(w[first + k * inner])));
      }
      lanes[col][l] = acc;
    }
    __syncthreads();
    if (group == 0) factors[col] = decide_slice(valid, lanes[col], bounds, rescaled);
    __syncthreads();
    const double factor = factors[col];
    if (factor >= 0.0) {
      const auto f = static_cast<compute_t<T>>(factor);
      for (int64_t k = group; k < reduce; k += kLaneGroups) rescale_element(w[first + k * inner], f);
    } else if (factor == kZeroSlice) {
      for (int64_t k = group; k < reduce; k += kLaneGroups) zero_element(w[first + k * inner]);
    }
  }
  rescaled = block_sum<kNormThreads>(rescaled, counts);
  if (threadIdx.x == 0) slots[blockIdx.x] = rescaled;
}

// ---------------------------------------------------------------------------------------------------------
// penalty_grad / penalty with a group_l1 term on one array: max_norm's tiles and norms (the same lanes, so the
// same bits as the CPU's), then each group's gradient update with the factor of penalty_element.h
// (group_grad_factor; kLeaveSlice: no group term, a group of norm 0). Besides the lanes, every thread keeps
// float64 sums of |w| and w * w over the elements it reads and of the norms it decides; the block adds them
// in its fixed tree order and writes its value into its slot (as the list kernels' values, the grouping
// differs from the CPU's: agreement within a few roundings).

// The terms are a run-time value here (uniform across the grid): one kernel per dtype and view keeps the
// build time of this file in bounds, and the branch costs nothing next to the group's memory traffic.
template <class T>
__device__ __forceinline__ void group_update(PenaltyTerms terms, const T* w, T* g, int64_t i, compute_t<T> c1,
                                             compute_t<T> c2, double factor) {
  const bool grouped = factor != kLeaveSlice;
  const auto f = static_cast<compute_t<T>>(grouped ? factor : 0.0);
  switch (terms) {
    case PenaltyTerms::kL1L2:
      penalty_group_grad_element<PenaltyTerms::kL1L2>(w[i], g[i], c1, c2, f, grouped);
      break;
    case PenaltyTerms::kL1:
      penalty_group_grad_element<PenaltyTerms::kL1>(w[i], g[i], c1, c2, f, grouped);
      break;
    case PenaltyTerms::kL2:
      penalty_group_grad_element<PenaltyTerms::kL2>(w[i], g[i], c1, c2, f, grouped);
      break;
    case PenaltyTerms::kNone:
      penalty_group_grad_element<PenaltyTerms::kNone>(w[i], g[i], c1, c2, f, grouped);
      break;
  }
}

// One thread per slice: the fold, the norm added to the thread's sum, the factor.
__device__ __forceinline__ double group_decide(bool valid, double* slice_lanes, double c, double& norms) {
  if (!valid) return kLeaveSlice;
  const double norm = sqrt(fold_lanes(slice_lanes));
  norms += norm;
  return group_term_applies(norm) ? group_grad_factor(c, norm) : kLeaveSlice;
}

__device__ __forceinline__ void group_block_value(PenaltyTerms terms, double s1, double s2, double norms, double l1,
                                                  double l2, double c, double* shared, double* slots) {
  s1 = block_sum<kNormThreads>(s1, shared);
  s2 = block_sum<kNormThreads>(s2, shared);
  norms = block_sum<kNormThreads>(norms, shared);
  if (threadIdx.x == 0) slots[blockIdx.x] = penalty_group_value(terms, l1, l2, c, s1, s2, norms);
}

// g null: the value only.
template <class T>
__global__ void __launch_bounds__(kNormThreads)
    penalty_group_rows_kernel(const T* w, T* g, int64_t outer, int64_t reduce, double l1, double l2, double c,
                              double* slots) {
  __shared__ double lanes[kRowsPerTile][kSumLanes];
  __shared__ double factors[kRowsPerTile];
  __shared__ double shared[kNormThreads];
  using C = compute_t<T>;
  const C c1 = static_cast<C>(l1), c2 = static_cast<C>(l2);
  const PenaltyTerms terms = penalty_terms(l1, l2);
  const bool with_l1 = has_l1(terms);
  const int lane = static_cast<int>(threadIdx.x) % kSumLanes;
  const int r = static_cast<int>(threadIdx.x) / kSumLanes;
  const int64_t tiles = (outer + kRowsPerTile - 1) / kRowsPerTile;
  double s1 = 0.0, s2 = 0.0, norms = 0.0;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t a = tile * kRowsPerTile + r;
    const bool valid = a < outer;
    const int64_t row = valid ? a * reduce : 0;
    double acc = 0.0;
    if (valid) {
      for (int64_t k = lane; k < reduce; k += kSumLanes) {
        const double x = static_cast<double>(load(w[row + k]));
        acc += square_contribution(x);
        if (with_l1) s1 += abs_contribution(x);
      }
    }
    s2 += acc;
    lanes[r][lane] = acc;
    __syncthreads();
    if (lane == 0) factors[r] = group_decide(valid, lanes[r], c, norms);
    __syncthreads();
    const double factor = factors[r];
    if (g != nullptr && valid && (factor != kLeaveSlice || terms != PenaltyTerms::kNone))
      for (int64_t k = lane; k < reduce; k += kSumLanes) group_update(terms, w, g, row + k, c1, c2, factor);
  }
  group_block_value(terms, s1, s2, norms, l1, l2, c, shared, slots);
}

template <class T>
__global__ void __launch_bounds__(kNormThreads)
    penalty_group_columns_kernel(const T* w, T* g, int64_t outer, int64_t reduce, int64_t inner, double l1,
                                 double l2, double c, double* slots) {
  __shared__ double lanes[kColsPerTile][kSumLanes + 1];
  __shared__ double factors[kColsPerTile];
  __shared__ double shared[kNormThreads];
  using C = compute_t<T>;
  const C c1 = static_cast<C>(l1), c2 = static_cast<C>(l2);
  const PenaltyTerms terms = penalty_terms(l1, l2);
  const bool with_l1 = has_l1(terms);
  const int col = static_cast<int>(threadIdx.x) % kColsPerTile;
  const int group = static_cast<int>(threadIdx.x) / kColsPerTile;
  const int64_t col_tiles = (inner + kColsPerTile - 1) / kColsPerTile;
  const int64_t tiles = outer * col_tiles;
  double s1 = 0.0, s2 = 0.0, norms = 0.0;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t a = tile / col_tiles;
    const int64_t b = (tile % col_tiles) * kColsPerTile + col;
    const bool valid = b < inner;
    const int64_t first = valid ? a * reduce * inner + b : 0;
#pragma unroll
    for (int j = 0; j < kLanesPerThread; ++j) {
      const int l = group + j * kLaneGroups;
      double acc = 0.0;
      if (valid) {
        for (int64_t k = l; k < reduce; k += kSumLanes) {
          const double x = static_cast<double>(load(w[first + k * inner]));
          acc += square_contribution(x);
          if (with_l1) s1 += abs_contribution(x);
        }
      }
      s2 += acc;
      lanes[col][l] = acc;
    }
    __syncthreads();
    if (group == 0) factors[col] = group_decide(valid, lanes[col], c, norms);
    __syncthreads();
    const double factor = factors[col];
    if (g != nullptr && valid && (factor != kLeaveSlice || terms != PenaltyTerms::kNone))
      for (int64_t k = group; k < reduce; k += kLaneGroups)
        group_update(terms, w, g, first + k * inner, c1, c2, factor);
  }
  group_block_value(terms, s1, s2, norms, l1, l2, c, shared, slots);
}

// ---------------------------------------------------------------------------------------------------------
// arrays that are not one dense block (entry_points.h: WalkLayout), one array per launch: a grid-stride loop
// over the logical index, each element's offset from its index, the same element bodies as the list kernels.

constexpr int kWalkBlocks = kMaxNormBlocks;

__device__ __forceinline__ int64_t walk_offset(const WalkLayout& L, int64_t i) {
  int64_t offset = 0;
  for (int d = L.ndim - 1; d >= 0; --d) {
    offset += (i % L.shape[d]) * L.stride[d];
    i /= L.shape[d];
  }
  return offset;
}

template <WalkOp kOp, class T>
__global__ void __launch_bounds__(kListThreads)
    walk_update_kernel(T* a, const __grid_constant__ WalkLayout L, int64_t n, double coef, Count* slots) {
  __shared__ Count shared[kListThreads];
  using C = compute_t<T>;
  const C c = static_cast<C>(kOp == WalkOp::kDecay ? decay_multiplier(coef) : coef);
  Count count = 0;
  const int64_t step = static_cast<int64_t>(gridDim.x) * kListThreads;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kListThreads + threadIdx.x; i < n; i += step) {
    T& x = a[walk_offset(L, i)];
    if constexpr (kOp == WalkOp::kProxL1)
      count += soft_threshold_element(x, c) ? 1 : 0;
    else if constexpr (kOp == WalkOp::kNonNeg)
      count += non_neg_element(x) ? 1 : 0;
    else
      decay_element(x, c);
  }
  count = block_sum<kListThreads>(count, shared);
  if (threadIdx.x == 0) slots[blockIdx.x] = count;
}

// The terms at run time (uniform), as in the group kernels: one kernel per dtype.
template <class T>
__global__ void __launch_bounds__(kListThreads)
    walk_penalty_kernel(const T* w, T* g, const __grid_constant__ WalkLayout L, int64_t n, double l1, double l2,
                        double* slots) {
  __shared__ double shared[kListThreads];
  using C = compute_t<T>;
  const C c1 = static_cast<C>(l1), c2 = static_cast<C>(l2);
  const PenaltyTerms terms = penalty_terms(l1, l2);
  double s1 = 0.0, s2 = 0.0;
  const int64_t step = static_cast<int64_t>(gridDim.x) * kListThreads;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kListThreads + threadIdx.x; i < n; i += step) {
    T& gi = g[walk_offset(L, i)];
    switch (terms) {
      case PenaltyTerms::kL1L2:
        add_value<PenaltyTerms::kL1L2>(w[i], s1, s2);
        penalty_grad_element<PenaltyTerms::kL1L2>(w[i], gi, c1, c2);
        break;
      case PenaltyTerms::kL1:
        add_value<PenaltyTerms::kL1>(w[i], s1, s2);
        penalty_grad_element<PenaltyTerms::kL1>(w[i], gi, c1, c2);
        break;
      case PenaltyTerms::kL2:
        add_value<PenaltyTerms::kL2>(w[i], s1, s2);
        penalty_grad_element<PenaltyTerms::kL2>(w[i], gi, c1, c2);
        break;
      case PenaltyTerms::kNone:
        break;
    }
  }
  s1 = block_sum<kListThreads>(s1, shared);
  s2 = block_sum<kListThreads>(s2, shared);
  if (threadIdx.x == 0) slots[blockIdx.x] = penalty_segment_value(terms, l1, l2, s1, s2);
}

int64_t walk_blocks(const WalkLayout& L, int64_t& n) {
  if (L.ndim < 0 || L.ndim > kMaxWalkDims) throw std::invalid_argument("regdrop_fast CUDA: walk layout of bad rank");
  n = 1;
  for (int d = 0; d < L.ndim; ++d) n *= L.shape[d];
  const int64_t blocks = (n + 16 * kListThreads - 1) / (16 * kListThreads);
  return blocks < kWalkBlocks ? blocks : kWalkBlocks;
}

// ---------------------------------------------------------------------------------------------------------
// host side

void check_capacity(int64_t needed, int64_t capacity) {
  if (needed > capacity)
    throw std::invalid_argument("regdrop_fast CUDA: the scratch buffer has " + std::to_string(capacity) +
                                " slots, the call needs " + std::to_string(needed));
}

}  // namespace

void penalty_grad(const ListItem* items, int64_t count, bool with_grad, double* slots, int64_t slot_capacity,
                  double* out, int device, Stream stream) {
  const std::vector<ListLaunch> launches = plan_list(items, count, [](const ListItem& it) {
    return penalty_terms(it.c1, it.c2) != PenaltyTerms::kNone;
  });
  const int64_t used = plan_slots(launches);
  check_capacity(used, slot_capacity);
  DeviceGuard guard(device);
  auto s = static_cast<cudaStream_t>(stream);
  for (const ListLaunch& L : launches) {
    if (with_grad)
      penalty_kernel<true><<<L.blocks, kListThreads, 0, s>>>(L, slots);
    else
      penalty_kernel<false><<<L.blocks, kListThreads, 0, s>>>(L, slots);
    check_launch("penalty kernel launch", s);
  }
  sum_slots_kernel<double><<<1, kReduceThreads, 0, s>>>(slots, used, out);
  check_launch("penalty sum launch", s);
}

// A list op that counts per block (prox_l1's zeros, non_neg's negatives set to 0): every non-empty array takes
// part (a threshold of 0 still turns -0 into +0), each launch's blocks write their counts into their slots,
// and one fixed-order sum gives the total. launch(L, counts, s) launches the op's kernel for one ListLaunch.
template <class Launch>
void count_over_list(const ListItem* items, int64_t count, int64_t* slots, int64_t slot_capacity, int64_t* out,
                     int device, Stream stream, const char* what, Launch launch) {
  const std::vector<ListLaunch> launches = plan_list(items, count, [](const ListItem&) { return true; });
  const int64_t used = plan_slots(launches);
  check_capacity(used, slot_capacity);
  DeviceGuard guard(device);
  auto s = static_cast<cudaStream_t>(stream);
  auto* counts = reinterpret_cast<Count*>(slots);
  const std::string name(what);
  for (const ListLaunch& L : launches) {
    launch(L, counts, s);
    check_launch((name + " kernel launch").c_str(), s);
  }
  sum_slots_kernel<Count><<<1, kReduceThreads, 0, s>>>(counts, used, reinterpret_cast<Count*>(out));
  check_launch((name + " sum launch").c_str(), s);
}

void prox_l1(const ListItem* items, int64_t count, int64_t* slots, int64_t slot_capacity, int64_t* out,
             int device, Stream stream) {
  count_over_list(items, count, slots, slot_capacity, out, device, stream, "prox_l1",
                  [](const ListLaunch& L, Count* counts, cudaStream_t s) {
                    prox_l1_kernel<<<L.blocks, kListThreads, 0, s>>>(L, counts);
                  });
}

void non_neg(const ListItem* items, int64_t count, int64_t* slots, int64_t slot_capacity, int64_t* out,
             int device, Stream stream) {
  count_over_list(items, count, slots, slot_capacity, out, device, stream, "non_neg",
                  [](const ListLaunch& L, Count* counts, cudaStream_t s) {
                    non_neg_kernel<<<L.blocks, kListThreads, 0, s>>>(L, counts);
                  });
}

void decay(const ListItem* items, int64_t count, int device, Stream stream) {
  const std::vector<ListLaunch> launches = plan_list(items, count, [](const ListItem& it) { return it.c1 != 0.0; });
  if (launches.empty()) return;
  DeviceGuard guard(device);
  auto s = static_cast<cudaStream_t>(stream);
  for (const ListLaunch& L : launches) {
    decay_kernel<<<L.blocks, kListThreads, 0, s>>>(L);
    check_launch("decay kernel launch", s);
  }
}

void max_norm(DType dt, void* w, int64_t outer, int64_t reduce, int64_t inner, double max_value, int64_t* slots,
              int64_t slot_capacity, int64_t* out, int device, Stream stream) {
  norm_constraint(dt, w, outer, reduce, inner, max_norm_bounds(max_value), slots, slot_capacity, out, device,
                  stream);
}

void norm_constraint(DType dt, void* w, int64_t outer, int64_t reduce, int64_t inner, const NormBounds& bounds,
                     int64_t* slots, int64_t slot_capacity, int64_t* out, int device, Stream stream) {
  if (outer < 0 || reduce < 0 || inner < 0) throw std::invalid_argument("regdrop_fast CUDA: negative max_norm shape");
  DeviceGuard guard(device);
  auto s = static_cast<cudaStream_t>(stream);
  auto* counts = reinterpret_cast<Count*>(slots);
  int64_t blocks = 0;
  if (outer > 0 && reduce > 0 && inner > 0) {  // else: no slices, or every norm is 0
    const int64_t tiles = inner == 1 ? (outer + kRowsPerTile - 1) / kRowsPerTile
                                     : outer * ((inner + kColsPerTile - 1) / kColsPerTile);
    blocks = tiles < kMaxNormBlocks ? tiles : kMaxNormBlocks;
    check_capacity(blocks, slot_capacity);
    const auto grid = static_cast<unsigned int>(blocks);
    dispatch_dtype(dt, [&](auto tag) {
      using T = decltype(tag);
      T* data = static_cast<T*>(w);
      if (inner == 1)
        max_norm_rows_kernel<T><<<grid, kNormThreads, 0, s>>>(data, outer, reduce, bounds, counts);
      else
        max_norm_columns_kernel<T><<<grid, kNormThreads, 0, s>>>(data, outer, reduce, inner, bounds, counts);
    });
    check_launch("max_norm kernel launch", s);
  }
  sum_slots_kernel<Count><<<1, kReduceThreads, 0, s>>>(counts, blocks, reinterpret_cast<Count*>(out));
  check_launch("max_norm sum launch", s);
}

void penalty_group(DType dt, const void* w, void* g, int64_t outer, int64_t reduce, int64_t inner, double l1,
                   double l2, double group, double* slots, int64_t slot_capacity, double* out, int device,
                   Stream stream) {
  if (outer < 0 || reduce < 0 || inner < 0) throw std::invalid_argument("regdrop_fast CUDA: negative group shape");
  DeviceGuard guard(device);
  auto s = static_cast<cudaStream_t>(stream);
  int64_t blocks = 0;
  if (outer > 0 && reduce > 0 && inner > 0) {  // else: no groups, or every group empty (value 0)
    const int64_t tiles = inner == 1 ? (outer + kRowsPerTile - 1) / kRowsPerTile
                                     : outer * ((inner + kColsPerTile - 1) / kColsPerTile);
    blocks = tiles < kMaxNormBlocks ? tiles : kMaxNormBlocks;
    check_capacity(blocks, slot_capacity);
    const auto grid = static_cast<unsigned int>(blocks);
    dispatch_dtype(dt, [&](auto tag) {
      using T = decltype(tag);
      const T* wp = static_cast<const T*>(w);
      T* gp = static_cast<T*>(g);
      if (inner == 1)
        penalty_group_rows_kernel<T><<<grid, kNormThreads, 0, s>>>(wp, gp, outer, reduce, l1, l2, group, slots);
      else
        penalty_group_columns_kernel<T><<<grid, kNormThreads, 0, s>>>(wp, gp, outer, reduce, inner, l1, l2, group,
                                                                      slots);
    });
    check_launch("penalty group kernel launch", s);
  }
  sum_slots_kernel<double><<<1, kReduceThreads, 0, s>>>(slots, blocks, out);
  check_launch("penalty group sum launch", s);
}

void walk_update(WalkOp op, DType dt, void* a, const WalkLayout& layout, double coef, int64_t* slots,
                 int64_t slot_capacity, int64_t* out, int device, Stream stream) {
  int64_t n;
  const int64_t blocks = walk_blocks(layout, n);
  check_capacity(blocks, slot_capacity);
  DeviceGuard guard(device);
  auto s = static_cast<cudaStream_t>(stream);
  auto* counts = reinterpret_cast<Count*>(slots);
  if (blocks > 0) {
    const auto grid = static_cast<unsigned int>(blocks);
    dispatch_dtype(dt, [&](auto tag) {
      using T = decltype(tag);
      T* data = static_cast<T*>(a);
      if (op == WalkOp::kProxL1)
        walk_update_kernel<WalkOp::kProxL1, T><<<grid, kListThreads, 0, s>>>(data, layout, n, coef, counts);
      else if (op == WalkOp::kNonNeg)
        walk_update_kernel<WalkOp::kNonNeg, T><<<grid, kListThreads, 0, s>>>(data, layout, n, coef, counts);
      else
        walk_update_kernel<WalkOp::kDecay, T><<<grid, kListThreads, 0, s>>>(data, layout, n, coef, counts);
    });
    check_launch("walk kernel launch", s);
  }
  sum_slots_kernel<Count><<<1, kReduceThreads, 0, s>>>(counts, blocks, reinterpret_cast<Count*>(out));
  check_launch("walk sum launch", s);
}

void walk_penalty(DType dt, const void* w, void* g, const WalkLayout& layout, double l1, double l2, double* slots,
                  int64_t slot_capacity, double* out, int device, Stream stream) {
  int64_t n;
  const int64_t blocks = penalty_terms(l1, l2) == PenaltyTerms::kNone ? 0 : walk_blocks(layout, n);
  check_capacity(blocks, slot_capacity);
  DeviceGuard guard(device);
  auto s = static_cast<cudaStream_t>(stream);
  if (blocks > 0) {
    const auto grid = static_cast<unsigned int>(blocks);
    dispatch_dtype(dt, [&](auto tag) {
      using T = decltype(tag);
      const T* wp = static_cast<const T*>(w);
      T* gp = static_cast<T*>(g);
      walk_penalty_kernel<T><<<grid, kListThreads, 0, s>>>(wp, gp, layout, n, l1, l2, slots);
    });
    check_launch("walk penalty kernel launch", s);
  }
  sum_slots_kernel<double><<<1, kReduceThreads, 0, s>>>(slots, blocks, out);
  check_launch("walk penalty sum launch", s);
}

}  // namespace cuda
}  // namespace rdf
