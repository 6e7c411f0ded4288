// CPU entry points of the fused epilogue y = residual + dropout(x + bias) and its backward, called by the
// bindings. Arguments arrive validated by the Python layer (python/regdrop_fast/_validate.py): dtypes known,
// buffers C-contiguous, y overlapping x or residual only exactly, bias not overlapping y.
#pragma once
#include <cstdint>

#include "../common/bias_dropout_add_element.h"
#include "../common/global_block.h"

namespace rdf {
namespace cpu {

// One forward call over n elements viewed as rows of h (h = n when there is no bias): bias (h values) or
// null; bits_out (ceil(n/8) bytes) receives dropout's keep mask of the call, or is null (store="seed").
// block: the call's arrays are a block of a global tensor (global_block.h; params.offset unused, block->base
// holds it): the decisions are dropout_global's, from the rows' pieces; null: a plain call.
struct BiasDropoutAddPass {
  DType dtype;
  const void* x;
  const void* bias;
  const void* residual;
  void* y;
  uint8_t* bits_out;
  int64_t h;
  DropoutParams params;
  const GlobalRows* block;
  bool stream_out = false;  // y is written with non-temporal stores (output_streaming.h)
};

// One backward call over rows x h elements: dx = dropout_backward(grad) with the decisions from bits_in (or
// regenerated from the stream when null: from the block's rows when `block` is set, as in the forward), and
// partials[b * h + c] (compute type: float, double for float64)
// the sum of dx[r, c] over the rows r of row block b (kBiasRowBlock rows), in row order.
struct BiasGradPass {
  DType dtype;
  const void* grad;
  void* dx;
  const uint8_t* bits_in;
  void* partials;
  int64_t rows;
  int64_t h;
  DropoutParams params;
  const GlobalRows* block;
  bool stream_out = false;  // dx is written with non-temporal stores (output_streaming.h)
};

// Columns per backward task (and per stack buffer of column sums): splits the work only, never the order of
// a sum, so it does not change any bit. Rows up to this width are walked whole, one contiguous run per row
// block, which the hardware prefetchers stream; a row cut into column ranges makes each piece a new short
// stream (at 1,024 columns the (8192, 2048) float32 backward ran at ~0.5-0.65x its copy limit). The sums
// take 16 KiB of stack in float32, 32 KiB in float64.
constexpr int64_t kBiasGradColumns = 4096;

// block: the arrays are a block of a global tensor (null: a plain call); see BiasDropoutAddPass.
void bias_dropout_add_forward(DType dt, const void* x, const void* bias, const void* residual, void* y,
                              uint8_t* bits, int64_t n, int64_t h, const DropoutParams& prm,
                              const GlobalRows* block = nullptr);
// dbias (h values of dt) = the fixed-order sum of dx over the rows (kBiasRowBlock). block: used only to
// regenerate the decisions (bits null) of a block's mask.
void bias_dropout_add_backward(DType dt, const void* grad, void* dx, const uint8_t* bits, void* dbias,
                               int64_t rows, int64_t h, const DropoutParams& prm, const GlobalRows* block = nullptr);

}  // namespace cpu
}  // namespace rdf
