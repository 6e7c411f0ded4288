// The element-level body of the fused transformer epilogue y = residual + dropout(x + bias) and of its
// backward, shared by the CPU loops and the CUDA kernels. The keep decisions are dropout's own (the same
// mask bits: csrc/common/dropout_element.h), so only the arithmetic around them lives here.
#pragma once
#include <cstdint>

#include "dropout_element.h"
#include "dtypes.h"
#include "hd.h"

namespace rdf {

// Rows (elements of the leading axes) per partial sum of the bias gradient. The sum over the rows of one
// block is taken in row order, then the block partials are added in block order, each in the compute type
// (float32, float64 for float64): a fixed order that depends only on the shape, so dbias has the same bits on
// every thread count, SIMD level and device (python/regdrop_fast/reference/bias_dropout_add.py spells it
// out). A multiple of nothing in particular: 64 rows keep the partials (rows / 64 x H values) small next to
// dx and the sequential part of each column short.
constexpr int64_t kBiasRowBlock = 64;

// One output value in the compute type C: x + bias, dropped out by dropout's own selection, plus the
// residual, with nothing rounded to the storage type in between (the single rounding is the caller's
// store). HAS_BIAS false (dropout_add) skips the add rather than adding 0, so x = -0.0 stays -0.0 as in
// dropout(x). C may be a CPU lane vector with K its -1/0 lane mask, as in dropout_value.
template <bool HAS_BIAS, class C, class K>
RDF_HD C bias_dropout_add_value(C x, C bias, C residual, K keep, C scale) {
  if constexpr (HAS_BIAS) x = x + bias;
  return residual + dropout_value(x, keep, scale);
}

// Storage-level element: load, compute, round once, store.
template <bool HAS_BIAS, class T>
RDF_HD void bias_dropout_add_element(const T& x, const T* bias, const T& residual, T& y, bool keep,
                                     compute_t<T> scale) {
  const compute_t<T> b = HAS_BIAS ? load(*bias) : compute_t<T>{};
  store(y, bias_dropout_add_value<HAS_BIAS>(load(x), b, load(residual), keep, scale));
}

// Backward of one element: dx as dropout_backward gives it (rounded to the storage type), and that stored dx
// added to its column's running bias-gradient sum, so dbias is exactly the sum of the dx the call returns.
template <class T>
RDF_HD void bias_dropout_add_grad_element(const T& grad, T& dx, bool keep, compute_t<T> scale, compute_t<T>& acc) {
  dropout_element(grad, dx, keep, scale);
  acc = acc + load(dx);
}

}  // namespace rdf
