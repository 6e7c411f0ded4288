// CUDA entry points called by the CUDA bindings. Pointers are device pointers of device `device`,
// arguments were validated by the Python layer (python/regdrop_fast/cuda.py); every launch goes on
// `stream` (the caller's current stream) and nothing synchronizes the host.
#pragma once
#include <cstdint>

#include "../common/constraint_element.h"
#include "../common/bias_dropout_add_element.h"
#include "../common/dropout_broadcast_element.h"
#include "../common/dropout_element.h"
#include "../common/global_block.h"
#include "list_plan.h"

namespace rdf {
namespace cuda {

using Stream = void*;
constexpr int kMaxWalkDims = 32;  // axes of a walked layout once collapsed (the Python layer checks)  // cudaStream_t, kept opaque so the bindings need no CUDA headers

// The strides shared by a dropout call's input and output, in elements: a dense, non-overlapping array of
// ndim <= kMaxLayoutDims axes (csrc/common/strided_layout.h); null for C-contiguous arrays. The mask and the
// stream belong to the C-order flat index either way.
struct ArrayLayout {
  int ndim;
  const int64_t* shape;
  const int64_t* strides;
};

// `device` (where the arrays live) is made current for the launches and restored after.
void dropout_forward(DType dt, const void* x, void* y, uint8_t* bits, int64_t n, const DropoutParams& prm,
                     int device, Stream stream, const ArrayLayout* layout = nullptr);
void dropout_backward(DType dt, const void* grad, void* dx, const uint8_t* bits, int64_t n,
                      const DropoutParams& prm, int device, Stream stream, const ArrayLayout* layout = nullptr);
void dropout_mask(uint8_t* bits, int64_t n, const DropoutParams& prm, int device, Stream stream);
// Dropout of a block of a global tensor (csrc/common/global_block.h; prm.offset unused, rows.base holds it):
// in/out C-contiguous, both set (forward, or backward regenerating the mask) or both null (the mask alone);
// bits, when set, receives the block's packed decisions in its C order (ceil(n/8) bytes).
void dropout_global(DType dt, const void* in, void* out, uint8_t* bits, int64_t n, const DropoutParams& prm,
                    const GlobalRows& rows, int device, Stream stream);
// The fused epilogue y = residual + dropout(x + bias) (bias null: no bias; h its length) on rows of h; bits
// (ceil(n/8) bytes) receives dropout's keep mask (a scratch buffer when the mask keeps only its seed).
void bias_dropout_add_forward(DType dt, const void* x, const void* bias, const void* residual, void* y,
                              uint8_t* bits, int64_t n, int64_t h, const DropoutParams& prm, int device,
                              Stream stream, const GlobalRows* block = nullptr);
// dx = dropout_backward(grad) and dbias (h values) = its fixed-order sum over the rows (kBiasRowBlock). bits
// null: the mask is regenerated into scratch_bits (ceil(rows*h/8) bytes); partials holds
// ceil(rows / kBiasRowBlock) * h values of the compute type (float, double for float64).
// block (forward and backward): the arrays are a block of a global tensor (csrc/common/global_block.h;
// prm.offset unused, block->base holds it), decided as dropout_global decides; null: a plain call. The
// backward uses it only to regenerate the mask.
void bias_dropout_add_backward(DType dt, const void* grad, void* dx, const uint8_t* bits, uint8_t* scratch_bits,
                               void* partials, void* dbias, int64_t rows, int64_t h, const DropoutParams& prm,
                               int device, Stream stream, const GlobalRows* block = nullptr);
// Gaussian dropout (csrc/common/gaussian_dropout_element.h): out = in * (1 + std * z) over n elements, z the
// standard normal of stream index offset + i; the forward (x -> y) and the backward (grad -> dx) alike. out
// is in itself or apart from it; both C-contiguous.
void gaussian_dropout(DType dt, const void* in, void* out, int64_t n, uint64_t seed, uint64_t offset, double std,
                      int device, Stream stream);
// Gaussian dropout of a block of a global tensor (csrc/common/global_block.h; rows.base holds the offset): the
// element of global flat index g takes the normal of stream position offset + g. in and out C-contiguous,
// out in itself or apart from it.
void gaussian_dropout_global(DType dt, const void* in, void* out, int64_t n, uint64_t seed, double std,
                             const GlobalRows& rows, int device, Stream stream);
// The mask-based dropout variants and their backward (csrc/common/dropout_broadcast_element.h): out = the
// variant of in (dense, with the shared memory strides) under the decisions of dropout_mask(reduced shape),
// read from bits_in, or generated first into bits_out (the call's mask) or else into scratch (ceil(m/8)
// bytes). The layout: ndim <= kMaxBroadcastDims axes, memory strides and reduced C-order strides (0 along a
// broadcast axis), in elements; m the reduced shape's element count.
void dropout_broadcast(DType dt, const void* in, void* out, const uint8_t* bits_in, uint8_t* bits_out,
                       uint8_t* scratch, int ndim, const int64_t* shape, const int64_t* strides,
                       const int64_t* rstrides, int64_t m, const MaskedParams& prm, int device, Stream stream);
// Raw Philox4x32-R over n (counter, key) pairs (counters n x 4, keys n x 2, out n x 4 words), 1 <= rounds <= 16.
void philox4x32(const uint32_t* counters, const uint32_t* keys, uint32_t* out, int64_t n, int rounds, int device,
                Stream stream);

// Weight penalties on lists of arrays (csrc/cuda/list_plan.h: the launch layout; csrc/cuda/penalty_kernels.cu).
// Results that are sums (the penalty value, zero and rescale counts) are written as 0-d device values into
// `out`: every block writes its partial into its own slot of `slots` (capacity `slot_capacity`, at least
// one slot per chunk: sum of ceil(n / kChunkElems)), and one final single-block kernel adds the slots in
// a fixed tree order. Nothing is allocated and the host never waits.
void penalty_grad(const ListItem* items, int64_t count, bool with_grad, double* slots, int64_t slot_capacity,
                  double* out, int device, Stream stream);
void prox_l1(const ListItem* items, int64_t count, int64_t* slots, int64_t slot_capacity, int64_t* out,
             int device, Stream stream);
void decay(const ListItem* items, int64_t count, int device, Stream stream);
// max_norm on a C-contiguous array viewed as (outer, reduce, inner), slices w[a, :, b]; `slots` needs
// kMaxNormBlocks entries.
constexpr int kMaxNormBlocks = 1024;
void max_norm(DType dt, void* w, int64_t outer, int64_t reduce, int64_t inner, double max_value, int64_t* slots,
              int64_t slot_capacity, int64_t* out, int device, Stream stream);
// norm_constraint (csrc/common/constraint_element.h; max_norm is its case max_norm_bounds, prox_group_l1 its
// op group_shrink), as max_norm.
void norm_constraint(DType dt, void* w, int64_t outer, int64_t reduce, int64_t inner, const NormBounds& bounds,
                     int64_t* slots, int64_t slot_capacity, int64_t* out, int device, Stream stream);
// penalty_grad / penalty with a group_l1 term (penalty_element.h) on one C-contiguous array viewed as
// (outer, reduce, inner), groups w[a, :, b]: g (null: the value only) updated with every term, the value
// l1*sum|w| + (l2/2)*sum w^2 + group*sum_g ||w_g|| into the 0-d `out`; `slots` as max_norm's.
void penalty_group(DType dt, const void* w, void* g, int64_t outer, int64_t reduce, int64_t inner, double l1,
                   double l2, double group, double* slots, int64_t slot_capacity, double* out, int device,
                   Stream stream);
// non_neg on a list (negative elements -> +0), the count of negatives into `out`, slots as prox_l1's.
void non_neg(const ListItem* items, int64_t count, int64_t* slots, int64_t slot_capacity, int64_t* out,
             int device, Stream stream);

// A written array that is not one dense block (a slice, a strided view), walked element by element in the C
// order of its collapsed layout (size-1 axes dropped, axes merged where they continue each other in memory):
// element i at a + sum(i_d * stride[d]) elements, strides of either sign.
struct WalkLayout {
  int ndim;
  int64_t shape[kMaxWalkDims];
  int64_t stride[kMaxWalkDims];
};
// prox_l1 (coef: threshold; counts zeros), decay (coef: factor) or non_neg (counts negatives) on one walked
// array; the count (0 for decay) into the 0-d int64 `out`; `slots` as max_norm's.
enum class WalkOp : int { kProxL1 = 0, kDecay = 1, kNonNeg = 2 };
void walk_update(WalkOp op, DType dt, void* a, const WalkLayout& layout, double coef, int64_t* slots,
                 int64_t slot_capacity, int64_t* out, int device, Stream stream);
// penalty_grad on one walked gradient g whose parameter w is C-contiguous in the walk's order: g updated, the
// value l1*sum|w| + (l2/2)*sum w^2 into the 0-d float64 `out`.
void walk_penalty(DType dt, const void* w, void* g, const WalkLayout& layout, double l1, double l2, double* slots,
                  int64_t slot_capacity, double* out, int device, Stream stream);

int device_count();                  // 0 when there is no driver or no device
const char* device_name(int device);  // name of device `device`
int pointer_device(const void* p);   // the device a pointer lives on; -1 for host memory

}  // namespace cuda
}  // namespace rdf
