#include "bias_dropout_add_driver.h"

#include <algorithm>
#include <vector>

#include "isa.h"
#include "output_streaming.h"
#include "parallel.h"

namespace rdf {
namespace cpu {

void bias_dropout_add_forward(DType dt, const void* x, const void* bias, const void* residual, void* y,
                              uint8_t* bits, int64_t n, int64_t h, const DropoutParams& prm,
                              const GlobalRows* block) {
  if (n <= 0) return;
  BiasDropoutAddPass pass{dt, x, bias, residual, y, bits, bias ? h : n, prm, block};
  pass.stream_out = streams_output(dt, n, y, y == x || y == residual);
  const auto range = RDF_ACTIVE_ISA_KERNEL(bias_dropout_add_range);
  // dropout's task split (a multiple of 8 elements, so tasks never share a mask byte)
  parallel_for((n + kDropoutTaskElems - 1) / kDropoutTaskElems, [&](int64_t t) {
    const int64_t begin = t * kDropoutTaskElems;
    range(pass, begin, std::min(n, begin + kDropoutTaskElems));
  });
}

void bias_dropout_add_backward(DType dt, const void* grad, void* dx, const uint8_t* bits, void* dbias,
                               int64_t rows, int64_t h, const DropoutParams& prm, const GlobalRows* block) {
  if (h <= 0) return;
  const int64_t blocks = (rows + kBiasRowBlock - 1) / kBiasRowBlock;
  const int64_t compute_size = dt == DType::kFloat64 ? 8 : 4;
  std::vector<double> partials((blocks * h * compute_size + 7) / 8);  // doubles: aligned for float too
  BiasGradPass pass{dt, grad, dx, bits, partials.data(), rows, h, prm, block};
  pass.stream_out = streams_output(dt, rows * h, dx, dx == grad);  // (the Python layer refuses dx over grad)
  // Tasks of whole row blocks x column ranges, about kDropoutTaskElems elements each; the split depends on
  // the shape only, and no sum is split across tasks.
  const int64_t col_tasks = (h + kBiasGradColumns - 1) / kBiasGradColumns;
  const int64_t width = std::min(h, kBiasGradColumns);
  const int64_t blocks_per_task = std::max<int64_t>(1, kDropoutTaskElems / (kBiasRowBlock * width));
  const int64_t block_tasks = (blocks + blocks_per_task - 1) / blocks_per_task;
  const auto block_range = RDF_ACTIVE_ISA_KERNEL(bias_grad_blocks);
  parallel_for(block_tasks * col_tasks, [&](int64_t t) {
    const int64_t b0 = (t / col_tasks) * blocks_per_task, c0 = (t % col_tasks) * kBiasGradColumns;
    block_range(pass, b0, std::min(blocks, b0 + blocks_per_task), c0, std::min(h, c0 + kBiasGradColumns));
  });
  const auto combine = RDF_ACTIVE_ISA_KERNEL(bias_grad_combine);
  parallel_for(col_tasks, [&](int64_t t) {
    const int64_t c0 = t * kBiasGradColumns;
    combine(dt, partials.data(), blocks, h, dbias, c0, std::min(h, c0 + kBiasGradColumns));
  });
}

}  // namespace cpu
}  // namespace rdf
