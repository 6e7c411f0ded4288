// The element-level bodies of the weight constraints of Keras (MinMaxNorm / MaxNorm / UnitNorm: norm_constraint,
// max_norm, unit_norm; NonNeg: non_neg) and of group sparsity (prox_group_l1), shared by the CPU loops and
// the CUDA kernels.
//
// norm_constraint works slice by slice like max_norm (csrc/common/penalty_element.h: the norm of a slice is
// sqrt(S) in float64, S its sum of w * w in 16 lanes folded by fold_lanes); max_norm is its case
// min_value = 0, rate = 1, and unit_norm its case min_value = max_value = 1, rate = 1. The NumPy reference
// (python/regdrop_fast/reference/constraints.py) performs the same operations in the same order.
#pragma once

#include "dtypes.h"
#include "hd.h"

namespace rdf {

// Keras MinMaxNorm: the norm a slice should have is
//   desired = rate * clip(norm, min_value, max_value) + (1 - rate) * norm
// (exactly the clipped norm when rate == 1), and the slice becomes w * C(desired / norm), the factor formed
// in float64 and converted once to the compute type C, each product rounded once to the storage type.
// Unlike Keras (w * desired / (epsilon + norm)) there is no epsilon: a slice whose norm is already within
// [min_value, max_value] is not written at all (bit for bit unchanged), nor is a slice of norm 0 (nothing
// can give it a norm; Keras leaves it 0 too) or rate 0, nor a NaN norm (every comparison false), nor an
// infinite norm unless rate == 1 (the formula would give inf / inf; with rate 1 the factor is 0, as
// max_norm's). Bounds: 0 <= min_value <= max_value (max_value may be inf), 0 <= rate <= 1.
//
// prox_group_l1 runs on the same slices (its groups) with op kGroupShrink: see slice_factor.
enum class SliceOp : int { kNormBounds = 0, kGroupShrink = 1 };
struct NormBounds {
  double min_value;
  double max_value;
  double rate;
  SliceOp op = SliceOp::kNormBounds;
  double threshold = 0.0;  // kGroupShrink's t
};

RDF_HD NormBounds group_shrink(double threshold) {
  NormBounds b{0.0, 0.0, 0.0};
  b.op = SliceOp::kGroupShrink;
  b.threshold = threshold;
  return b;
}

RDF_HD bool norm_outside(double norm, const NormBounds& b) {
  const bool finite_or_clipped = b.rate == 1.0 || norm - norm == 0.0;  // norm - norm is NaN for inf
  return b.rate > 0.0 && norm > 0.0 && (norm < b.min_value || norm > b.max_value) && finite_or_clipped;
}

// max_norm(max_value): with max_value > 0, norm_outside is norm > max_value and the factor max_value / norm.
RDF_HD NormBounds max_norm_bounds(double max_value) { return NormBounds{0.0, max_value, 1.0}; }

// Called only for a slice with norm_outside: the float64 factor desired / norm.
RDF_HD double norm_factor(double norm, const NormBounds& b) {
  const double clipped = norm > b.max_value ? b.max_value : b.min_value;
  const double desired = b.rate == 1.0 ? clipped : b.rate * clipped + (1.0 - b.rate) * norm;
  return desired / norm;
}

// What the slice loops do to a slice of norm `norm` (from its folded lanes): rescale it by the returned
// factor (>= 0: w * C(factor), rounded once), leave it (kLeaveSlice) or store +0 in all its elements
// (kZeroSlice); `counted` says whether it counts in the op's result.
//   kNormBounds (max_norm, norm_constraint, unit_norm): rescaled when norm_outside, by norm_factor; counted
//     when rescaled.
//   kGroupShrink (prox_group_l1, the proximal step of t * ||w_g||_2, block soft-thresholding
//     w_g * max(0, 1 - t / norm)): a group with norm <= t becomes exactly +0 and is counted (a group that is
//     already zero too: -0 becomes +0, as prox_l1 does); a larger norm is rescaled by the float64
//     1 - t / norm (not counted); t = 0 and NaN norms leave the group alone.
constexpr double kLeaveSlice = -1.0;
constexpr double kZeroSlice = -2.0;

RDF_HD double slice_factor(double norm, const NormBounds& b, bool& counted) {
  if (b.op == SliceOp::kGroupShrink) {
    counted = norm <= b.threshold;
    if (counted) return kZeroSlice;
    if (!(norm > b.threshold) || b.threshold == 0.0) return kLeaveSlice;
    return 1.0 - b.threshold / norm;
  }
  counted = norm_outside(norm, b);
  return counted ? norm_factor(norm, b) : kLeaveSlice;
}

template <class T>
RDF_HD void zero_element(T& w) {
  store(w, compute_t<T>(0));
}

// Keras NonNeg (w * (w >= 0)): a negative element becomes +0 (Keras's product gives -0.0 there; the two
// compare equal), anything else (+-0, positive, NaN, +inf) stays as it is. V: one value or a CPU lane
// vector (see penalty_element.h).
template <class V>
RDF_HD V non_neg_value(V w) {
  const V zero = V{};
  return w < zero ? zero : w;
}

// Stores the element and reports whether it was negative (set to zero).
template <class T>
RDF_HD bool non_neg_element(T& w) {
  const auto x = load(w);
  const bool negative = x < compute_t<T>(0);
  store(w, non_neg_value(x));
  return negative;
}

}  // namespace rdf
