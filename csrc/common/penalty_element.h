// The element-level bodies of the weight penalties (penalty_grad, penalty, prox_l1, decay, max_norm),
// shared by the CPU loops and the CUDA kernels. Every rounding step that decides a bit lives here; the
// backends only choose which elements a thread or SIMD lane visits and how partial sums are grouped
// (that grouping is fixed by sizes alone, see csrc/cpu/penalty_driver.h).
//
// The NumPy reference (python/regdrop_fast/reference/penalty.py) performs the same operations in the same
// order; the build uses -ffp-contract=off, so no a*b+c below is ever fused into one rounding.
//
// Types: C is the compute type, compute_t<T> (float for float32/float16/bfloat16, double for float64).
// Coefficients arrive as doubles and are converted to C once per call (static_cast, round to nearest).
#pragma once
#include <cstdint>

#include "dtypes.h"
#include "hd.h"

namespace rdf {

// Lanes of every float64 partial sum (penalty values, max_norm norms): element j of a segment adds into
// accumulator j % kSumLanes, in increasing j, and the lanes are then folded by halving (see fold_lanes).
// Fixed at 16 for every ISA and device so that sums are the same bits on any of them.
constexpr int kSumLanes = 16;

// Folds acc[0..kSumLanes) into acc[0]: for h = 8, 4, 2, 1: acc[l] += acc[l + h] for l < h.
RDF_HD double fold_lanes(double acc[kSumLanes]) {
  for (int h = kSumLanes / 2; h >= 1; h /= 2)
    for (int l = 0; l < h; ++l) acc[l] += acc[l + h];
  return acc[0];
}

// Every body below that takes V (or D) runs on one value (float or double: CUDA and the CPU's scalar
// tails) and on a CPU lane vector of them, whose comparisons give -1/0 lane masks that the GCC/Clang
// vector conditional selects with; V{} is zero and V{} + 1 one in both cases.

// NumPy's sign: 1 for w > 0, -1 for w < 0, +0 for either zero, NaN for NaN.
template <class V>
RDF_HD V penalty_sign(V w) {
  const V zero = V{};
  return w == w ? (w > zero ? zero + 1 : (w < zero ? zero - 1 : zero)) : w;
}

// Which terms a penalty call applies to one array. A zero coefficient omits its term altogether (it is not
// multiplied by 0), so an excluded term never turns an inf weight into a NaN gradient. Both zero: the array
// is not read or written at all.
enum class PenaltyTerms : int { kNone = 0, kL1 = 1, kL2 = 2, kL1L2 = 3 };

// Whether terms include the L1 (|w|, sign(w)) or the L2 (w * w, w) term: the one spelling of that test.
RDF_HD constexpr bool has_l1(PenaltyTerms terms) {
  return terms == PenaltyTerms::kL1 || terms == PenaltyTerms::kL1L2;
}
RDF_HD constexpr bool has_l2(PenaltyTerms terms) {
  return terms == PenaltyTerms::kL2 || terms == PenaltyTerms::kL1L2;
}

RDF_HD PenaltyTerms penalty_terms(double l1, double l2) {
  return static_cast<PenaltyTerms>((l1 != 0.0 ? 1 : 0) | (l2 != 0.0 ? 2 : 0));
}

// The gradient update in the compute type, c1 = C(l1), c2 = C(l2):
//   kL1L2: g + ((c1 * sign(w)) + (c2 * w))
//   kL1:   g + (c1 * sign(w))
//   kL2:   g + (c2 * w)
// each operation rounded to C; the caller rounds the result to the storage type once.
template <PenaltyTerms kTerms, class V>
RDF_HD V penalty_grad_value(V w, V g, V c1, V c2) {
  if (kTerms == PenaltyTerms::kL1L2) return g + (c1 * penalty_sign(w) + c2 * w);
  if (kTerms == PenaltyTerms::kL1) return g + c1 * penalty_sign(w);
  return g + c2 * w;
}

template <PenaltyTerms kTerms, class T>
RDF_HD void penalty_grad_element(const T& w, T& g, compute_t<T> c1, compute_t<T> c2) {
  store(g, penalty_grad_value<kTerms>(load(w), load(g), c1, c2));
}

// The group_l1 term (c * sum_g ||w_g||_2, the groups being max_norm's slices): its gradient on the elements
// of a group of norm `norm` (max_norm's: float64, 16 lanes folded) is f * w with f = C(c / norm), the float64
// quotient rounded once to the compute type. A group of norm 0 gets no term at all (0 is the subgradient
// chosen there, as sign(0) = 0 for L1); a NaN norm gives f = NaN and an infinite one f = 0, as the formula
// does. With the other terms the update is g + ((their sum as above) + f * w), each operation rounded to C.
RDF_HD bool group_term_applies(double norm) { return norm != 0.0; }
RDF_HD double group_grad_factor(double c, double norm) { return c / norm; }

template <PenaltyTerms kTerms, class V>
RDF_HD V penalty_group_grad_value(V w, V g, V c1, V c2, V f) {
  if (kTerms == PenaltyTerms::kL1L2) return g + ((c1 * penalty_sign(w) + c2 * w) + f * w);
  if (kTerms == PenaltyTerms::kL1) return g + (c1 * penalty_sign(w) + f * w);
  if (kTerms == PenaltyTerms::kL2) return g + (c2 * w + f * w);
  return g + f * w;
}

// One element of a group: with the group term (grouped) or with the other terms alone (none: unchanged).
template <PenaltyTerms kTerms, class T>
RDF_HD void penalty_group_grad_element(const T& w, T& g, compute_t<T> c1, compute_t<T> c2, compute_t<T> f,
                                       bool grouped) {
  if (grouped)
    store(g, penalty_group_grad_value<kTerms>(load(w), load(g), c1, c2, f));
  else if (kTerms != PenaltyTerms::kNone)
    penalty_grad_element<kTerms>(w, g, c1, c2);
}

// Per-element contributions to the penalty value, in float64 (w converted exactly from its compute type):
// |w| to the L1 sum, w * w to the L2 sum. A segment's value is then l1 * S1 + (0.5 * l2) * S2 with the
// double coefficients, an omitted term (zero coefficient) contributing nothing.
// D is double or a vector of doubles.
template <class D>
RDF_HD D abs_contribution(D w) {
  return w < D{} ? -w : w;
}
template <class D>
RDF_HD D square_contribution(D w) {
  return w * w;
}

RDF_HD double penalty_segment_value(PenaltyTerms terms, double l1, double l2, double s1, double s2) {
  if (has_l1(terms) && has_l2(terms)) return l1 * s1 + (0.5 * l2) * s2;
  if (has_l1(terms)) return l1 * s1;
  if (has_l2(terms)) return (0.5 * l2) * s2;
  return 0.0;
}

// The value of a piece of an array with a group_l1 term: the other terms' value as above plus c * G, G the
// float64 sum of the piece's group norms (whole groups only).
RDF_HD double penalty_group_value(PenaltyTerms terms, double l1, double l2, double c, double s1, double s2,
                                  double norms) {
  return penalty_segment_value(terms, l1, l2, s1, s2) + c * norms;
}

// Soft-thresholding (the proximal step of t * ||w||_1) in the compute type, t = C(threshold):
//   m = |w| - t;  result = m <= 0 ? +0 : copysign(m, w)
// Thresholded elements become +0 (never -0); NaN stays NaN (m <= 0 is false for NaN); +-inf stay +-inf.
template <class V>
RDF_HD V soft_threshold_value(V w, V t) {
  const V zero = V{};
  const V m = (w < zero ? -w : w) - t;
  return m <= zero ? zero : (w < zero ? -m : m);
}

// Stores the soft-thresholded element and reports whether the stored value is an exact zero (a half type
// may round a tiny nonzero m to zero, which is then counted too).
template <class T>
RDF_HD bool soft_threshold_element(T& w, compute_t<T> t) {
  store(w, soft_threshold_value(load(w), t));
  return load(w) == compute_t<T>(0);
}

// Decoupled weight decay: the multiplier 1 - factor is formed in float64, converted to C once, and each
// element becomes w * C(1 - factor), rounded once to the storage type (torch's param.mul_(1 - lr * wd)).
RDF_HD double decay_multiplier(double factor) { return 1.0 - factor; }

template <class T>
RDF_HD void decay_element(T& w, compute_t<T> multiplier) {
  store(w, load(w) * multiplier);
}

// max_norm: the norm of a slice is sqrt(S) in float64, S its sum of w * w (16 lanes over the reduced index,
// folded as above). A slice is rescaled only when norm > max_value, by the float64 factor
// max_value / norm converted once to C: w = w * C(max_value / norm), rounded once to the storage type.
// Slices with norm <= max_value (and NaN norms) are never written. The loops decide and form the factor
// through norm_constraint's bodies (constraint_element.h), of which this is the case max_norm_bounds:
// the same comparisons and the same division.

template <class T>
RDF_HD void rescale_element(T& w, compute_t<T> factor) {
  store(w, load(w) * factor);
}

}  // namespace rdf
