// Python bindings of the CUDA kernels (module regdrop_fast._cuda). Device pointers and the stream arrive
// as integers from __cuda_array_interface__ / the caller's library, `device` is the CUDA device the arrays
// live on; validation and allocation happen in python/regdrop_fast/cuda.py and _penalty_cuda.py. The GIL
// is released around every launch (gil.h's without_gil, which also keeps a daemon thread from aborting
// the process when it comes back while the interpreter exits).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "../cuda/entry_points.h"
#include "common.h"
#include "gil.h"

namespace py = pybind11;
using rdf::bindings::dropout_params;
using rdf::bindings::global_rows;

namespace {

template <class P>
P* ptr(uintptr_t address) {
  return reinterpret_cast<P*>(address);
}

// The per-array columns of a list call: 1-d arrays (NumPy arrays from the plan of _lists.device_list; any
// sequence is converted, forcecast), read in place without a Python step per array.
template <class T>
using Column = py::array_t<T, py::array::c_style | py::array::forcecast>;

// The arrays of a list call from its columns (b and c2 may be empty: no gradients, no second coefficient).
std::vector<rdf::cuda::ListItem> list_items(const Column<int32_t>& dtype, const Column<int64_t>& n,
                                            const Column<uint64_t>& a, const Column<uint64_t>& b,
                                            const Column<double>& c1, const Column<double>& c2) {
  const auto count = dtype.size();
  for (const py::array* col : {static_cast<const py::array*>(&dtype), static_cast<const py::array*>(&n),
                               static_cast<const py::array*>(&a), static_cast<const py::array*>(&b),
                               static_cast<const py::array*>(&c1), static_cast<const py::array*>(&c2)})
    if (col->ndim() != 1) throw std::invalid_argument("regdrop_fast CUDA: per-array columns must be 1-d");
  if (n.size() != count || a.size() != count || c1.size() != count || (b.size() != 0 && b.size() != count) ||
      (c2.size() != 0 && c2.size() != count))
    throw std::invalid_argument("regdrop_fast CUDA: per-array lists of different lengths");
  const int32_t* dt = dtype.data();
  const int64_t* nn = n.data();
  const uint64_t* pa = a.data();
  const uint64_t* pb = b.size() ? b.data() : nullptr;
  const double* x1 = c1.data();
  const double* x2 = c2.size() ? c2.data() : nullptr;
  std::vector<rdf::cuda::ListItem> items(static_cast<size_t>(count));
  for (size_t i = 0; i < items.size(); ++i)
    items[i] = rdf::cuda::ListItem{dt[i], nn[i], ptr<void>(pa[i]), pb ? ptr<void>(pb[i]) : nullptr, x1[i],
                                   x2 ? x2[i] : 0.0};
  return items;
}

rdf::cuda::WalkLayout walk_layout(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides) {
  if (shape.size() != strides.size() || shape.size() > static_cast<size_t>(rdf::cuda::kMaxWalkDims))
    throw std::invalid_argument("regdrop_fast CUDA: walk layout of bad rank");
  rdf::cuda::WalkLayout layout{};
  layout.ndim = static_cast<int>(shape.size());
  for (size_t d = 0; d < shape.size(); ++d) {
    layout.shape[d] = shape[d];
    layout.stride[d] = strides[d];
  }
  return layout;
}

Column<uint64_t> no_pointers() { return Column<uint64_t>(0); }
Column<double> no_values() { return Column<double>(0); }

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "regdrop_fast CUDA kernels (private; use the regdrop_fast package)";

  // shape and strides (elements): empty for C-contiguous arrays, else the layout x and y share.
  m.def("dropout_forward", [](int dtype, uintptr_t x, uintptr_t y, uintptr_t bits, int64_t n, uint64_t seed,
                              uint64_t offset, uint32_t threshold, bool drop_all, double scale, int device,
                              uintptr_t stream, const std::vector<int64_t>& shape, const std::vector<int64_t>& strides) {
    const rdf::cuda::ArrayLayout layout{static_cast<int>(shape.size()), shape.data(), strides.data()};
    rdf::bindings::without_gil([&] {
      rdf::cuda::dropout_forward(static_cast<rdf::DType>(dtype), ptr<const void>(x), ptr<void>(y), ptr<uint8_t>(bits),
                                 n, dropout_params(seed, offset, threshold, drop_all, scale), device, ptr<void>(stream),
                                 strides.empty() ? nullptr : &layout);
    });
  }, py::arg("dtype"), py::arg("x"), py::arg("y"), py::arg("bits"), py::arg("n"), py::arg("seed"), py::arg("offset"),
     py::arg("threshold"), py::arg("drop_all"), py::arg("scale"), py::arg("device"), py::arg("stream"),
     py::arg("shape") = std::vector<int64_t>(), py::arg("strides") = std::vector<int64_t>());
  m.def("dropout_backward", [](int dtype, uintptr_t grad, uintptr_t dx, uintptr_t bits, int64_t n, uint64_t seed,
                               uint64_t offset, uint32_t threshold, bool drop_all, double scale, int device,
                               uintptr_t stream, const std::vector<int64_t>& shape, const std::vector<int64_t>& strides) {
    const rdf::cuda::ArrayLayout layout{static_cast<int>(shape.size()), shape.data(), strides.data()};
    rdf::bindings::without_gil([&] {
      rdf::cuda::dropout_backward(static_cast<rdf::DType>(dtype), ptr<const void>(grad), ptr<void>(dx),
                                  ptr<const uint8_t>(bits), n, dropout_params(seed, offset, threshold, drop_all, scale),
                                  device, ptr<void>(stream), strides.empty() ? nullptr : &layout);
    });
  }, py::arg("dtype"), py::arg("grad"), py::arg("dx"), py::arg("bits"), py::arg("n"), py::arg("seed"),
     py::arg("offset"), py::arg("threshold"), py::arg("drop_all"), py::arg("scale"), py::arg("device"),
     py::arg("stream"), py::arg("shape") = std::vector<int64_t>(), py::arg("strides") = std::vector<int64_t>());
  // A block of a global tensor: the rows as the Python layer computed them (_args.global_block).
  m.def("dropout_global", [](int dtype, uintptr_t x, uintptr_t y, uintptr_t bits, int64_t n, uint64_t seed,
                             uint64_t base, uint32_t threshold, bool drop_all, double scale,
                             const std::vector<int64_t>& outer_shape, const std::vector<uint64_t>& outer_strides,
                             int64_t row_len, int device, uintptr_t stream) {
    const rdf::GlobalRows rows = global_rows(base, outer_shape, outer_strides, row_len);
    rdf::bindings::without_gil([&] {
      rdf::cuda::dropout_global(static_cast<rdf::DType>(dtype), ptr<const void>(x), ptr<void>(y), ptr<uint8_t>(bits), n,
                                dropout_params(seed, base, threshold, drop_all, scale), rows, device, ptr<void>(stream));
    });
  });
  m.attr("MAX_GLOBAL_OUTER_DIMS") = rdf::kMaxGlobalOuterDims;
  m.def("gaussian_dropout", [](int dtype, uintptr_t x, uintptr_t y, int64_t n, uint64_t seed, uint64_t offset,
                               double std, int device, uintptr_t stream) {
    rdf::bindings::without_gil([&] {
      rdf::cuda::gaussian_dropout(static_cast<rdf::DType>(dtype), ptr<const void>(x), ptr<void>(y), n, seed, offset, std,
                                  device, ptr<void>(stream));
    });
  });
  // Gaussian dropout of a block of a global tensor (x and y C-contiguous; the rows from _args.global_block).
  m.def("gaussian_dropout_global", [](int dtype, uintptr_t x, uintptr_t y, int64_t n, uint64_t seed, uint64_t base,
                                      double std, const std::vector<int64_t>& outer_shape,
                                      const std::vector<uint64_t>& outer_strides, int64_t row_len, int device,
                                      uintptr_t stream) {
    const rdf::GlobalRows rows = global_rows(base, outer_shape, outer_strides, row_len);
    rdf::bindings::without_gil([&] {
      rdf::cuda::gaussian_dropout_global(static_cast<rdf::DType>(dtype), ptr<const void>(x), ptr<void>(y), n, seed, std,
                                         rows, device, ptr<void>(stream));
    });
  });
  m.def("dropout_mask", [](uintptr_t bits, int64_t n, uint64_t seed, uint64_t offset, uint32_t threshold,
                           bool drop_all, int device, uintptr_t stream) {
    rdf::bindings::without_gil([&] {
      rdf::cuda::dropout_mask(ptr<uint8_t>(bits), n, dropout_params(seed, offset, threshold, drop_all, 0.0), device,
                              ptr<void>(stream));
    });
  });
  // The fused epilogue and its backward. A block of a global tensor passes its rows (outer_shape,
  // outer_strides, row_len; offset is then the block's first stream position); no outer axes: a plain call.
  m.def("bias_dropout_add_forward", [](int dtype, uintptr_t x, uintptr_t bias, uintptr_t residual, uintptr_t y,
                                       uintptr_t bits, int64_t n, int64_t h, uint64_t seed, uint64_t offset,
                                       uint32_t threshold, bool drop_all, double scale, int device, uintptr_t stream,
                                       const std::vector<int64_t>& outer_shape,
                                       const std::vector<uint64_t>& outer_strides, int64_t row_len) {
    const rdf::GlobalRows rows = global_rows(offset, outer_shape, outer_strides, row_len);
    rdf::bindings::without_gil([&] {
      rdf::cuda::bias_dropout_add_forward(static_cast<rdf::DType>(dtype), ptr<const void>(x), ptr<const void>(bias),
                                          ptr<const void>(residual), ptr<void>(y), ptr<uint8_t>(bits), n, h,
                                          dropout_params(seed, offset, threshold, drop_all, scale), device,
                                          ptr<void>(stream), outer_shape.empty() ? nullptr : &rows);
    });
  }, py::arg("dtype"), py::arg("x"), py::arg("bias"), py::arg("residual"), py::arg("y"), py::arg("bits"), py::arg("n"),
     py::arg("h"), py::arg("seed"), py::arg("offset"), py::arg("threshold"), py::arg("drop_all"), py::arg("scale"),
     py::arg("device"), py::arg("stream"), py::arg("outer_shape") = std::vector<int64_t>(),
     py::arg("outer_strides") = std::vector<uint64_t>(), py::arg("row_len") = int64_t{0});
  m.def("bias_dropout_add_backward", [](int dtype, uintptr_t grad, uintptr_t dx, uintptr_t bits, uintptr_t scratch_bits,
                                        uintptr_t partials, uintptr_t dbias, int64_t rows, int64_t h, uint64_t seed,
                                        uint64_t offset, uint32_t threshold, bool drop_all, double scale, int device,
                                        uintptr_t stream, const std::vector<int64_t>& outer_shape,
                                        const std::vector<uint64_t>& outer_strides, int64_t row_len) {
    const rdf::GlobalRows block = global_rows(offset, outer_shape, outer_strides, row_len);
    rdf::bindings::without_gil([&] {
      rdf::cuda::bias_dropout_add_backward(static_cast<rdf::DType>(dtype), ptr<const void>(grad), ptr<void>(dx),
                                           ptr<const uint8_t>(bits), ptr<uint8_t>(scratch_bits), ptr<void>(partials),
                                           ptr<void>(dbias), rows, h,
                                           dropout_params(seed, offset, threshold, drop_all, scale), device,
                                           ptr<void>(stream), outer_shape.empty() ? nullptr : &block);
    });
  }, py::arg("dtype"), py::arg("grad"), py::arg("dx"), py::arg("bits"), py::arg("scratch_bits"), py::arg("partials"),
     py::arg("dbias"), py::arg("rows"), py::arg("h"), py::arg("seed"), py::arg("offset"), py::arg("threshold"),
     py::arg("drop_all"), py::arg("scale"), py::arg("device"), py::arg("stream"),
     py::arg("outer_shape") = std::vector<int64_t>(), py::arg("outer_strides") = std::vector<uint64_t>(),
     py::arg("row_len") = int64_t{0});
  m.def("dropout_broadcast", [](int dtype, uintptr_t x, uintptr_t y, uintptr_t bits_in, uintptr_t bits_out,
                                uintptr_t scratch, const std::vector<int64_t>& shape, const std::vector<int64_t>& strides,
                                const std::vector<int64_t>& rstrides, int64_t m, uint64_t seed, uint64_t offset,
                                uint32_t threshold, bool drop_all, double scale, int value, double a, double b,
                                double sat, int device, uintptr_t stream) {
    const rdf::MaskedParams prm{dropout_params(seed, offset, threshold, drop_all, scale),
                                static_cast<rdf::MaskedValue>(value), a, b, sat};
    rdf::bindings::without_gil([&] {
      rdf::cuda::dropout_broadcast(static_cast<rdf::DType>(dtype), ptr<const void>(x), ptr<void>(y),
                                   ptr<const uint8_t>(bits_in), ptr<uint8_t>(bits_out), ptr<uint8_t>(scratch),
                                   static_cast<int>(shape.size()), shape.data(), strides.data(), rstrides.data(), m, prm,
                                   device, ptr<void>(stream));
    });
  });
  m.attr("MAX_BROADCAST_DIMS") = rdf::kMaxBroadcastDims;
  m.def("philox4x32", [](uintptr_t counters, uintptr_t keys, uintptr_t out, int64_t n, int rounds, int device,
                         uintptr_t stream) {
    rdf::bindings::without_gil([&] {
      rdf::cuda::philox4x32(ptr<const uint32_t>(counters), ptr<const uint32_t>(keys), ptr<uint32_t>(out), n, rounds,
                            device, ptr<void>(stream));
    });
  });

  // List ops: one entry per array in each list (grads empty for the value only).
  m.def("penalty_grad", [](const Column<int32_t>& dtype, const Column<int64_t>& n, const Column<uint64_t>& params,
                           const Column<uint64_t>& grads, const Column<double>& l1, const Column<double>& l2,
                           uintptr_t slots, int64_t slot_capacity, uintptr_t out, int device, uintptr_t stream) {
    const auto items = list_items(dtype, n, params, grads, l1, l2);
    rdf::bindings::without_gil([&] {
      rdf::cuda::penalty_grad(items.data(), static_cast<int64_t>(items.size()), grads.size() != 0,
                              ptr<double>(slots), slot_capacity, ptr<double>(out), device, ptr<void>(stream));
    });
  });
  m.def("prox_l1", [](const Column<int32_t>& dtype, const Column<int64_t>& n, const Column<uint64_t>& params,
                      const Column<double>& threshold, uintptr_t slots, int64_t slot_capacity, uintptr_t out,
                      int device, uintptr_t stream) {
    const auto items = list_items(dtype, n, params, no_pointers(), threshold, no_values());
    rdf::bindings::without_gil([&] {
      rdf::cuda::prox_l1(items.data(), static_cast<int64_t>(items.size()), ptr<int64_t>(slots), slot_capacity,
                         ptr<int64_t>(out), device, ptr<void>(stream));
    });
  });
  m.def("decay", [](const Column<int32_t>& dtype, const Column<int64_t>& n, const Column<uint64_t>& params,
                    const Column<double>& factor, int device, uintptr_t stream) {
    const auto items = list_items(dtype, n, params, no_pointers(), factor, no_values());
    rdf::bindings::without_gil([&] {
      rdf::cuda::decay(items.data(), static_cast<int64_t>(items.size()), device, ptr<void>(stream));
    });
  });
  m.def("max_norm", [](int dtype, uintptr_t w, int64_t outer, int64_t reduce, int64_t inner, double max_value,
                       uintptr_t slots, int64_t slot_capacity, uintptr_t out, int device, uintptr_t stream) {
    rdf::bindings::without_gil([&] {
      rdf::cuda::max_norm(static_cast<rdf::DType>(dtype), ptr<void>(w), outer, reduce, inner, max_value,
                          ptr<int64_t>(slots), slot_capacity, ptr<int64_t>(out), device, ptr<void>(stream));
    });
  });
  m.def("norm_constraint", [](int dtype, uintptr_t w, int64_t outer, int64_t reduce, int64_t inner,
                              double min_value, double max_value, double rate, uintptr_t slots,
                              int64_t slot_capacity, uintptr_t out, int device, uintptr_t stream) {
    rdf::bindings::without_gil([&] {
      rdf::cuda::norm_constraint(static_cast<rdf::DType>(dtype), ptr<void>(w), outer, reduce, inner,
                                 rdf::NormBounds{min_value, max_value, rate}, ptr<int64_t>(slots), slot_capacity,
                                 ptr<int64_t>(out), device, ptr<void>(stream));
    });
  });
  m.def("prox_group_l1", [](int dtype, uintptr_t w, int64_t outer, int64_t reduce, int64_t inner, double threshold,
                            uintptr_t slots, int64_t slot_capacity, uintptr_t out, int device, uintptr_t stream) {
    rdf::bindings::without_gil([&] {
      rdf::cuda::norm_constraint(static_cast<rdf::DType>(dtype), ptr<void>(w), outer, reduce, inner,
                                 rdf::group_shrink(threshold), ptr<int64_t>(slots), slot_capacity, ptr<int64_t>(out),
                                 device, ptr<void>(stream));
    });
  });
  m.def("penalty_group", [](int dtype, uintptr_t w, uintptr_t g, int64_t outer, int64_t reduce, int64_t inner,
                            double l1, double l2, double group, uintptr_t slots, int64_t slot_capacity, uintptr_t out,
                            int device, uintptr_t stream) {
    rdf::bindings::without_gil([&] {
      rdf::cuda::penalty_group(static_cast<rdf::DType>(dtype), ptr<const void>(w), ptr<void>(g), outer, reduce, inner,
                               l1, l2, group, ptr<double>(slots), slot_capacity, ptr<double>(out), device,
                               ptr<void>(stream));
    });
  });
  // One array walked through its layout (shape, strides in elements: collapsed by the Python layer).
  m.def("walk_update", [](int op, int dtype, uintptr_t a, const std::vector<int64_t>& shape,
                          const std::vector<int64_t>& strides, double coef, uintptr_t slots, int64_t slot_capacity,
                          uintptr_t out, int device, uintptr_t stream) {
    const rdf::cuda::WalkLayout layout = walk_layout(shape, strides);
    rdf::bindings::without_gil([&] {
      rdf::cuda::walk_update(static_cast<rdf::cuda::WalkOp>(op), static_cast<rdf::DType>(dtype), ptr<void>(a), layout,
                             coef, ptr<int64_t>(slots), slot_capacity, ptr<int64_t>(out), device, ptr<void>(stream));
    });
  });
  m.def("walk_penalty", [](int dtype, uintptr_t w, uintptr_t g, const std::vector<int64_t>& shape,
                           const std::vector<int64_t>& strides, double l1, double l2, uintptr_t slots,
                           int64_t slot_capacity, uintptr_t out, int device, uintptr_t stream) {
    const rdf::cuda::WalkLayout layout = walk_layout(shape, strides);
    rdf::bindings::without_gil([&] {
      rdf::cuda::walk_penalty(static_cast<rdf::DType>(dtype), ptr<const void>(w), ptr<void>(g), layout, l1, l2,
                              ptr<double>(slots), slot_capacity, ptr<double>(out), device, ptr<void>(stream));
    });
  });
  m.attr("MAX_WALK_DIMS") = rdf::cuda::kMaxWalkDims;
  m.def("non_neg", [](const Column<int32_t>& dtype, const Column<int64_t>& n, const Column<uint64_t>& params,
                      uintptr_t slots, int64_t slot_capacity, uintptr_t out, int device, uintptr_t stream) {
    Column<double> unused(params.size());  // zeros: non_neg takes no coefficient
    std::fill(unused.mutable_data(), unused.mutable_data() + unused.size(), 0.0);
    const auto items = list_items(dtype, n, params, no_pointers(), unused, no_values());
    rdf::bindings::without_gil([&] {
      rdf::cuda::non_neg(items.data(), static_cast<int64_t>(items.size()), ptr<int64_t>(slots), slot_capacity,
                         ptr<int64_t>(out), device, ptr<void>(stream));
    });
  });
  m.attr("CHUNK_ELEMS") = rdf::cuda::kChunkElems;          // scratch slots of a list call: one per chunk
  m.attr("BIAS_ROW_BLOCK") = rdf::kBiasRowBlock;           // rows per partial of a bias gradient
  m.attr("MAX_NORM_SLOTS") = rdf::cuda::kMaxNormBlocks;    // scratch slots of a max_norm call
  m.attr("MAX_TENSORS_PER_LAUNCH") = rdf::cuda::kMaxTensors;
  m.attr("MAX_BLOCKS_PER_LAUNCH") = rdf::cuda::kMaxBlocks;

  m.def("device_count", &rdf::cuda::device_count);
  m.def("device_name", &rdf::cuda::device_name);
  m.def("pointer_device", [](uintptr_t p) { return rdf::cuda::pointer_device(ptr<const void>(p)); });
}
