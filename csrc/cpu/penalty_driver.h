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
#include "../common/penalty_element.h"

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
// group != 0 adds the group_l1 term over the groups of the parameter viewed as (outer, reduce, inner), group
// (a, b) being w[a, :, b] (max_norm's slices; the Python layer hands in a permuted copy of the parameter, and
// the gradient's matching permuted view, when the reduced axes are not adjacent). Such an item is not part
// of the concatenation: its tasks hold whole groups (SliceSplit), each group's norm, its other terms and its
// gradient in one pass while the group is in cache.
struct PenaltyItem {
  DType dtype;
  int64_t n;
  const void* param;
  void* grad;
  double l1;
  double l2;
  const StridedWalk* grad_layout;
  double group = 0.0;
  int64_t outer = 0, reduce = 0, inner = 0;
};

// How the slices of a (outer, reduce, inner) view are cut into tasks of about kPenaltyTaskElems elements
// holding whole slices (max_norm, and the group items of penalty_grad): runs of rows [a0, a1) when slices are
// contiguous (inner == 1); else column bands [b0, b1) of one outer block, at least kSumLanes columns wide (a
// multiple of it unless it is all of them), or runs of whole outer blocks [a0, a1) when one band spans all
// columns. Fixed by the sizes alone, so sums come out the same on any thread count.
struct SliceSplit {
  int64_t outer, reduce, inner;
  int64_t per_task = 1;                       // rows per task (inner == 1)
  int64_t width = 0, bands = 0, blocks_per_task = 1;  // inner > 1
  int64_t tasks = 0;                          // 0 when there are no slices or every slice is empty
  SliceSplit(int64_t o, int64_t r, int64_t i);
  bool rows() const { return inner == 1; }
  // Task t's rows [a0, a1), or its blocks [a0, a1) and columns [b0, b1).
  void task(int64_t t, int64_t& a0, int64_t& a1, int64_t& b0, int64_t& b1) const;
  // Doubles of scratch a column task needs (lane sums and one factor per column).
  int64_t scratch() const { return (kSumLanes + 1) * width; }
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

// grad += l1 * sign(w) + l2 * w (+ group * w_g / ||w_g|| for group items, penalty_element.h) for every item with
// a grad (terms with a zero coefficient omitted, items with all zero untouched); returns the sum over items
// of l1 * sum|w| + (l2 / 2) * sum w^2 (+ group * sum_g ||w_g||): the concatenation's tasks in order, then each
// group item's tasks in order, items in list order.
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
