// CPU entry points of the weight penalties, called by the bindings with arrays already checked (dtype codes
// known, buffers aligned and sized for n elements, C-contiguous unless an item carries a StridedWalk,
// written arrays writeable, not overlapping themselves and disjoint from every other array of the call,
// coefficients finite and in range).
//
// A list of arrays is one call. The arrays that take part are laid end to end (in list order) and the
// concatenation is cut into tasks of kPenaltyTaskElems elements; a task handles the piece of each array
// that falls inside it, one "segment" per array. Tasks run on rdf::parallel_for and write their partial
// results into their own slot, which are then combined in task order. The cut depends only on the sizes,
// so values and counts are the same bits for every thread count, and one huge array among many tiny ones
// is shared out as evenly as anything else.
#pragma once
#include <cstdint>

#include "../common/constraint_element.h"
#include "../common/dtypes.h"

namespace rdf {
namespace cpu {

// Elements per penalty task (and per max_norm task, approximately: whole slices are never split).
constexpr int64_t kPenaltyTaskElems = int64_t{1} << 16;

// A written array that is not one C-contiguous block, walked in place: its elements in C order of `dims`
// (the order of a C-contiguous copy, so sums and counts come out the same), element (i0, i1, ...) at
// data + sum(i_d * strides[d]) elements (strides of either sign). The reader (csrc/bindings/array_list.h)
// collapses it first (no size-1 dims; a dim merged into the next when it steps exactly over it), so a
// sliced matrix has two dims whatever its rank was.
constexpr int kMaxStridedDims = 64;  // NumPy's NPY_MAXDIMS
struct StridedWalk {
  int ndim;
  int64_t dims[kMaxStridedDims];
  int64_t strides[kMaxStridedDims];
};

// One parameter of penalty_grad / penalty: the gradient (same dtype and size) is null for the value only.
// grad_layout is null when the gradient is C-contiguous (the parameter always is: a parameter that is only
// read and not C-contiguous is read from a C-contiguous copy).
struct PenaltyItem {
  DType dtype;
  int64_t n;
  const void* param;
  void* grad;
  double l1;
  double l2;
  const StridedWalk* grad_layout;
};

// One parameter updated in place by prox_l1 (coef = threshold) or decay (coef = factor). layout is null
// when param is one contiguous block of n elements: C-contiguous, or dense in another memory order (a
// transposed or Fortran-ordered array, or one with negative strides, given by its lowest address), since
// each element's update depends on that element alone and the zero count on no order.
struct UpdateItem {
  DType dtype;
  int64_t n;
  void* param;
  double coef;
  const StridedWalk* layout;
};

// norm_constraint (max_norm, unit_norm: its cases, csrc/common/constraint_element.h) on a C-contiguous
// array viewed as (outer, reduce, inner): slice (a, b) is w[a, :, b], its reduced index k runs over the
// middle axis.
struct MaxNormProblem {
  DType dtype;
  void* w;
  int64_t outer;
  int64_t reduce;
  int64_t inner;
  NormBounds bounds;
};

// grad += l1 * sign(w) + l2 * w for every item with a grad (terms with a zero coefficient omitted, items
// with both zero untouched); returns sum over items of l1 * sum|w| + (l2 / 2) * sum w^2.
double penalty_grad(const PenaltyItem* items, int64_t count);
// w = sign(w) * max(|w| - threshold, 0); returns the number of exact zeros left in all items.
int64_t prox_l1(const UpdateItem* items, int64_t count);
// w *= 1 - factor (items with factor 0 untouched).
void decay(const UpdateItem* items, int64_t count);
// Rescales every slice whose L2 norm is outside the bounds (max_norm: above max_value) as
// constraint_element.h says; returns how many were rescaled.
int64_t max_norm(const MaxNormProblem& problem);
// w = max(w, 0) elementwise (negative -> +0); returns the number of elements that were negative.
int64_t non_neg(const UpdateItem* items, int64_t count);

}  // namespace cpu
}  // namespace rdf
