// Python bindings of the CPU kernels: unpack buffers and scalars, release the GIL, call. Validation,
// dtype codes, thresholds and scales all come from the Python layer (python/regdrop_fast/_checks.py).
#include <pybind11/pybind11.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "array_list.h"
#include "common.h"
#include "gil.h"
#include "../common/philox.h"
#include "../cpu/bias_dropout_add_driver.h"
#include "../cpu/isa.h"
#include "../cpu/dropout_broadcast_driver.h"
#include "../cpu/dropout_driver.h"
#include "../cpu/fresh_memory.h"
#include "../cpu/gaussian_dropout_driver.h"
#include "../cpu/input_prefetch.h"
#include "../cpu/limit_driver.h"
#include "../cpu/output_streaming.h"
#include "../cpu/parallel.h"
#include "../cpu/penalty_driver.h"

namespace py = pybind11;
using rdf::bindings::dropout_params;
using rdf::bindings::global_rows;

namespace {

const void* data_of(const py::array& a) { return a.data(); }
void* mutable_data_of(py::array& a) { return a.mutable_data(); }  // raises if read-only
uint8_t* optional_bits(py::object bits) {
  if (bits.is_none()) return nullptr;
  py::array arr = bits.cast<py::array>();
  return static_cast<uint8_t*>(mutable_data_of(arr));
}

// The layout argument of the dropout calls: None for C-contiguous arrays, else the element strides the
// input and output share (the shape is the input's).
struct LayoutArg {
  std::vector<int64_t> shape, strides;
  rdf::cpu::ArrayLayout layout{};
  const rdf::cpu::ArrayLayout* get() const { return strides.empty() ? nullptr : &layout; }
  LayoutArg(const py::array& a, const py::object& strides_obj) {
    if (strides_obj.is_none()) return;
    strides = strides_obj.cast<std::vector<int64_t>>();
    shape.assign(a.shape(), a.shape() + a.ndim());
    layout = rdf::cpu::ArrayLayout{static_cast<int>(a.ndim()), shape.data(), strides.data()};
  }
};

// Between chunks of a long call (csrc/cpu/parallel.h): a pending signal (Ctrl-C) stops the call and raises
// its exception (KeyboardInterrupt), with the outputs partly written. Takes the GIL only there, so calls of
// up to kCheckpointTasks tasks never do.
void check_signals() {
  // The error is fetched while the GIL is held; the exception then leaves without it, and without_gil (gil.h)
  // takes the GIL back before the binding raises it in Python.
  rdf::bindings::with_gil_inside_work([] {
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  });
}

// Runs kernel() with the GIL released (gil.h) and the signal check set for this thread, and returns its
// result.
template <class Kernel>
auto without_gil(Kernel&& kernel) -> decltype(kernel()) {
  rdf::ScopedCheckpoint checkpoint{check_signals};
  return rdf::bindings::without_gil(kernel);
}

// An in-place list operation (prox_l1, decay): the refusal, or wrap(kernel(items, count)) with the kernel
// run without the GIL.
template <class Kernel, class Wrap>
py::object update_list(py::handle params, const py::array& coef, const py::tuple& type_nums, Kernel kernel,
                       Wrap wrap) {
  std::vector<rdf::cpu::UpdateItem> items;
  rdf::pyarrays::Held held;
  rdf::pyarrays::Refusal refusal;
  if (!rdf::pyarrays::update_items(params, static_cast<const double*>(data_of(coef)),
                                   rdf::pyarrays::type_nums(type_nums), items, held, refusal))
    return rdf::pyarrays::refusal_tuple(refusal);
  const int64_t result = without_gil([&] { return kernel(items.data(), static_cast<int64_t>(items.size())); });
  return wrap(result);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "regdrop_fast native CPU kernels (private; use the regdrop_fast package)";

  m.def("dropout_forward",
        [](int dtype, const py::array& x, py::array& y, py::object bits, int64_t n, uint64_t seed,
           uint64_t offset, uint32_t threshold, bool drop_all, double scale, py::object strides) {
          const void* xp = data_of(x);
          void* yp = mutable_data_of(y);
          uint8_t* bp = optional_bits(bits);
          const LayoutArg layout(x, strides);
          without_gil([&] {
            rdf::cpu::dropout_forward(static_cast<rdf::DType>(dtype), xp, yp, bp, n,
                                      dropout_params(seed, offset, threshold, drop_all, scale), layout.get());
          });
        },
        py::arg("dtype"), py::arg("x"), py::arg("y"), py::arg("bits"), py::arg("n"), py::arg("seed"),
        py::arg("offset"), py::arg("threshold"), py::arg("drop_all"), py::arg("scale"),
        py::arg("strides") = py::none());

  m.def("dropout_backward",
        [](int dtype, const py::array& grad, py::array& dx, py::object bits, int64_t n, uint64_t seed,
           uint64_t offset, uint32_t threshold, bool drop_all, double scale, py::object strides) {
          const void* gp = data_of(grad);
          void* dp = mutable_data_of(dx);
          const uint8_t* bp = bits.is_none() ? nullptr : static_cast<const uint8_t*>(data_of(bits.cast<py::array>()));
          const LayoutArg layout(grad, strides);
          without_gil([&] {
            rdf::cpu::dropout_backward(static_cast<rdf::DType>(dtype), gp, dp, bp, n,
                                       dropout_params(seed, offset, threshold, drop_all, scale), layout.get());
          });
        },
        py::arg("dtype"), py::arg("grad"), py::arg("dx"), py::arg("bits"), py::arg("n"), py::arg("seed"),
        py::arg("offset"), py::arg("threshold"), py::arg("drop_all"), py::arg("scale"),
        py::arg("strides") = py::none());

  m.def("dropout_mask", [](py::array& bits, int64_t n, uint64_t seed, uint64_t offset, uint32_t threshold,
                           bool drop_all) {
    uint8_t* bp = static_cast<uint8_t*>(mutable_data_of(bits));
    without_gil([&] {
      rdf::cpu::dropout_mask(bp, n, dropout_params(seed, offset, threshold, drop_all, 0.0));
    });
  });

  // Dropout of a block of a global tensor (csrc/common/global_block.h): forward (bits may be set), backward
  // regenerating the mask (bits None) or the mask alone (x and y None); x and y C-contiguous. The rows as the
  // Python layer computed them (_args.global_block): base, outer shape and strides, row length.
  m.def("dropout_global",
        [](int dtype, py::object x, py::object y, py::object bits, int64_t n, uint64_t seed, uint64_t base,
           uint32_t threshold, bool drop_all, double scale, const std::vector<int64_t>& outer_shape,
           const std::vector<uint64_t>& outer_strides, int64_t row_len) {
          const void* xp = x.is_none() ? nullptr : data_of(x.cast<py::array>());
          void* yp = nullptr;
          if (!y.is_none()) {
            py::array ya = y.cast<py::array>();
            yp = mutable_data_of(ya);
          }
          uint8_t* bp = optional_bits(bits);
          const rdf::GlobalRows rows = global_rows(base, outer_shape, outer_strides, row_len);
          without_gil([&] {
            rdf::cpu::dropout_global(static_cast<rdf::DType>(dtype), xp, yp, bp, n,
                                     dropout_params(seed, base, threshold, drop_all, scale), rows);
          });
        });
  m.attr("MAX_GLOBAL_OUTER_DIMS") = rdf::kMaxGlobalOuterDims;

  // Gaussian dropout, forward (x -> y) and backward (grad -> dx) alike.
  m.def("gaussian_dropout", [](int dtype, const py::array& x, py::array& y, int64_t n, uint64_t seed, uint64_t offset,
                               double std) {
    const void* xp = data_of(x);
    void* yp = mutable_data_of(y);
    without_gil([&] {
      rdf::cpu::gaussian_dropout(static_cast<rdf::DType>(dtype), xp, yp, n, seed, offset, std);
    });
  });
  // Gaussian dropout of a block of a global tensor, forward and backward alike: x and y C-contiguous, the rows
  // as the Python layer computed them (_args.global_block).
  m.def("gaussian_dropout_global",
        [](int dtype, const py::array& x, py::array& y, int64_t n, uint64_t seed, uint64_t base, double std,
           const std::vector<int64_t>& outer_shape, const std::vector<uint64_t>& outer_strides, int64_t row_len) {
          const void* xp = data_of(x);
          void* yp = mutable_data_of(y);
          const rdf::GlobalRows rows = global_rows(base, outer_shape, outer_strides, row_len);
          without_gil([&] {
            rdf::cpu::gaussian_dropout_global(static_cast<rdf::DType>(dtype), xp, yp, n, seed, std, rows);
          });
        });

  // The mask-based variants (broadcast axes, drop_path, alpha dropout) and their backward: decisions at the
  // reduced shape, read from bits_in or generated (into bits_out when given); the layout as the Python layer
  // computed it (shape, shared memory strides, reduced strides, in elements).
  m.def("dropout_broadcast",
        [](int dtype, const py::array& x, py::array& y, py::object bits_in, py::object bits_out,
           const std::vector<int64_t>& shape, const std::vector<int64_t>& strides,
           const std::vector<int64_t>& rstrides, int64_t m, uint64_t seed, uint64_t offset, uint32_t threshold,
           bool drop_all, double scale, int value, double a, double b, double sat) {
          const void* xp = data_of(x);
          void* yp = mutable_data_of(y);
          const uint8_t* ip =
              bits_in.is_none() ? nullptr : static_cast<const uint8_t*>(data_of(bits_in.cast<py::array>()));
          uint8_t* op = optional_bits(bits_out);
          const rdf::MaskedParams prm{dropout_params(seed, offset, threshold, drop_all, scale),
                                      static_cast<rdf::MaskedValue>(value), a, b, sat};
          without_gil([&] {
            rdf::cpu::dropout_broadcast(static_cast<rdf::DType>(dtype), xp, yp, ip, op, static_cast<int>(shape.size()),
                                        shape.data(), strides.data(), rstrides.data(), m, prm);
          });
        });
  m.attr("MAX_BROADCAST_DIMS") = rdf::kMaxBroadcastDims;

  // The fused epilogue y = residual + dropout(x + bias) (bias None: dropout_add) and its backward. A block
  // of a global tensor passes its rows (outer_shape, outer_strides, row_len; offset is then the block's first
  // stream position); no outer axes: a plain call.
  m.def("bias_dropout_add_forward",
        [](int dtype, const py::array& x, py::object bias, const py::array& residual, py::array& y, py::object bits,
           int64_t n, int64_t h, uint64_t seed, uint64_t offset, uint32_t threshold, bool drop_all, double scale,
           const std::vector<int64_t>& outer_shape, const std::vector<uint64_t>& outer_strides, int64_t row_len) {
          const void* xp = data_of(x);
          const void* bp = bias.is_none() ? nullptr : data_of(bias.cast<py::array>());
          const void* rp = data_of(residual);
          void* yp = mutable_data_of(y);
          uint8_t* mp = optional_bits(bits);
          const rdf::GlobalRows rows = global_rows(offset, outer_shape, outer_strides, row_len);
          without_gil([&] {
            rdf::cpu::bias_dropout_add_forward(static_cast<rdf::DType>(dtype), xp, bp, rp, yp, mp, n, h,
                                               dropout_params(seed, offset, threshold, drop_all, scale),
                                               outer_shape.empty() ? nullptr : &rows);
          });
        },
        py::arg("dtype"), py::arg("x"), py::arg("bias"), py::arg("residual"), py::arg("y"), py::arg("bits"),
        py::arg("n"), py::arg("h"), py::arg("seed"), py::arg("offset"), py::arg("threshold"), py::arg("drop_all"),
        py::arg("scale"), py::arg("outer_shape") = std::vector<int64_t>(),
        py::arg("outer_strides") = std::vector<uint64_t>(), py::arg("row_len") = int64_t{0});

  m.def("bias_dropout_add_backward",
        [](int dtype, const py::array& grad, py::array& dx, py::object bits, py::array& dbias, int64_t rows,
           int64_t h, uint64_t seed, uint64_t offset, uint32_t threshold, bool drop_all, double scale,
           const std::vector<int64_t>& outer_shape, const std::vector<uint64_t>& outer_strides, int64_t row_len) {
          const void* gp = data_of(grad);
          void* dp = mutable_data_of(dx);
          const uint8_t* mp = bits.is_none() ? nullptr : static_cast<const uint8_t*>(data_of(bits.cast<py::array>()));
          void* bp = mutable_data_of(dbias);
          const rdf::GlobalRows block = global_rows(offset, outer_shape, outer_strides, row_len);
          without_gil([&] {
            rdf::cpu::bias_dropout_add_backward(static_cast<rdf::DType>(dtype), gp, dp, mp, bp, rows, h,
                                                dropout_params(seed, offset, threshold, drop_all, scale),
                                                outer_shape.empty() ? nullptr : &block);
          });
        },
        py::arg("dtype"), py::arg("grad"), py::arg("dx"), py::arg("bits"), py::arg("dbias"), py::arg("rows"),
        py::arg("h"), py::arg("seed"), py::arg("offset"), py::arg("threshold"), py::arg("drop_all"), py::arg("scale"),
        py::arg("outer_shape") = std::vector<int64_t>(), py::arg("outer_strides") = std::vector<uint64_t>(),
        py::arg("row_len") = int64_t{0});
  m.attr("BIAS_ROW_BLOCK") = rdf::kBiasRowBlock;  // rows per partial sum of dbias (the reference checks it)

  m.def("philox4x32", [](const py::array& counters, const py::array& keys, py::array& out, int64_t n,
                         int rounds) {
    const auto* cp = static_cast<const uint32_t*>(data_of(counters));
    const auto* kp = static_cast<const uint32_t*>(data_of(keys));
    auto* op = static_cast<uint32_t*>(mutable_data_of(out));
    without_gil([&] {
      rdf::cpu::philox4x32_raw(cp, kp, op, n, rounds);
    });
  });

  // The same blocks through the SIMD lane code of one ISA (0 generic, 1 avx2, 2 avx512), for the
  // known-answer tests of every Philox implementation.
  m.def("philox4x32_simd", [](const py::array& counters, const py::array& keys, py::array& out, int64_t n,
                              int rounds, int isa) {
    if (isa < 0 || isa > static_cast<int>(rdf::cpu::best_isa()))
      throw py::value_error("philox4x32_simd: ISA " + std::to_string(isa) +
                            " is not in this build or not supported by this CPU");
    if (rounds < 1 || rounds > rdf::kPhiloxMaxRounds) throw py::value_error("philox4x32_simd: rounds 1..16");
    const auto* cp = static_cast<const uint32_t*>(data_of(counters));
    const auto* kp = static_cast<const uint32_t*>(data_of(keys));
    auto* op = static_cast<uint32_t*>(mutable_data_of(out));
    without_gil([&] {
      rdf::cpu::philox4x32_simd(cp, kp, op, n, rounds, static_cast<rdf::cpu::Isa>(isa));
    });
  });

  // Penalty list operations: arrays are read from the lists by array_list.h, which decides every rule of a
  // list call. A refused call returns the refusal (rule, name, i, j) and touches nothing; the Python layer
  // raises the matching error.
  // group, views: None, or the group_l1 coefficients (float64, one per array) and each array's groups as
  // (outer, reduce, inner) (int64, three per array).
  m.def("penalty_grad", [](py::handle params, py::handle grads, const py::array& l1, const py::array& l2,
                           const py::tuple& type_nums, py::object group, py::object views) -> py::object {
    std::vector<rdf::cpu::PenaltyItem> items;
    rdf::pyarrays::Held held;
    rdf::pyarrays::Refusal refusal;
    const double* gp = group.is_none() ? nullptr : static_cast<const double*>(data_of(group.cast<py::array>()));
    const int64_t* vp = views.is_none() ? nullptr : static_cast<const int64_t*>(data_of(views.cast<py::array>()));
    if (!rdf::pyarrays::penalty_items(params, grads, static_cast<const double*>(data_of(l1)),
                                      static_cast<const double*>(data_of(l2)),
                                      rdf::pyarrays::type_nums(type_nums), items, held, refusal, gp, vp))
      return rdf::pyarrays::refusal_tuple(refusal);
    const double value = without_gil([&] { return rdf::cpu::penalty_grad(items.data(), static_cast<int64_t>(items.size())); });
    return py::float_(value);
  }, py::arg("params"), py::arg("grads"), py::arg("l1"), py::arg("l2"), py::arg("type_nums"),
     py::arg("group") = py::none(), py::arg("views") = py::none());

  m.def("prox_l1", [](py::handle params, const py::array& threshold, const py::tuple& type_nums) {
    return update_list(params, threshold, type_nums, rdf::cpu::prox_l1, [](int64_t zeros) { return py::int_(zeros); });
  });

  m.def("non_neg", [](py::handle params, const py::array& unused, const py::tuple& type_nums) {
    return update_list(params, unused, type_nums, rdf::cpu::non_neg, [](int64_t negatives) { return py::int_(negatives); });
  });

  m.def("decay", [](py::handle params, const py::array& factor, const py::tuple& type_nums) {
    const auto decay = [](const rdf::cpu::UpdateItem* items, int64_t count) {
      rdf::cpu::decay(items, count);
      return int64_t{0};
    };
    return update_list(params, factor, type_nums, decay, [](int64_t) { return py::none(); });
  });

  // The overlap rule of csrc/common/list_rules.h on memory ranges [lo[k], hi[k]) of arrays k (the CUDA
  // path's device memory): (written array, array it overlaps) of the first conflict, or None.
  m.def("write_conflict", [](const std::vector<uintptr_t>& lo, const std::vector<uintptr_t>& hi,
                             const std::vector<int64_t>& pair, const std::vector<bool>& written) -> py::object {
    const size_t n = lo.size();
    if (hi.size() != n || pair.size() != n || written.size() != n)
      throw py::value_error("write_conflict: lo, hi, pair and written must have one entry per array");
    std::vector<rdf::MemRange> ranges(n);
    for (size_t k = 0; k < n; ++k)
      ranges[k] = rdf::MemRange{lo[k], hi[k], static_cast<int64_t>(k), pair[k], written[k]};
    int64_t w, other;
    if (!rdf::write_conflict(ranges, w, other)) return py::none();
    return py::make_tuple(w, other);
  });

  m.def("max_norm", [](int dtype, py::array& w, int64_t outer, int64_t reduce, int64_t inner,
                       double max_value) {
    const rdf::cpu::MaxNormProblem problem{static_cast<rdf::DType>(dtype), mutable_data_of(w), outer, reduce,
                                           inner, rdf::max_norm_bounds(max_value)};
    return without_gil([&] { return rdf::cpu::max_norm(problem); });
  });

  m.def("prox_group_l1", [](int dtype, py::array& w, int64_t outer, int64_t reduce, int64_t inner,
                            double threshold) {
    const rdf::cpu::MaxNormProblem problem{static_cast<rdf::DType>(dtype), mutable_data_of(w), outer, reduce,
                                           inner, rdf::group_shrink(threshold)};
    return without_gil([&] { return rdf::cpu::max_norm(problem); });
  });

  m.def("norm_constraint", [](int dtype, py::array& w, int64_t outer, int64_t reduce, int64_t inner,
                              double min_value, double max_value, double rate) {
    const rdf::cpu::MaxNormProblem problem{static_cast<rdf::DType>(dtype), mutable_data_of(w), outer, reduce,
                                           inner, rdf::NormBounds{min_value, max_value, rate}};
    return without_gil([&] { return rdf::cpu::max_norm(problem); });
  });

  // a: a new output array (regdrop_fast._arrays.advise_fresh_output decides when).
  m.def("advise_huge_pages", [](py::array& a) {
    return rdf::cpu::advise_huge_pages(mutable_data_of(a), static_cast<size_t>(a.nbytes()));
  });

  // Benchmark instruments (python/regdrop_fast/bench/limits.py checks the arguments): the same-bytes,
  // same-threads memory limits every CPU row is measured against. Private: not part of the API.
  m.def("limit_copy", [](const py::array& src, py::array& dst, int64_t n, int64_t task_bytes) {
    const auto* sp = static_cast<const uint8_t*>(data_of(src));
    auto* dp = static_cast<uint8_t*>(mutable_data_of(dst));
    without_gil([&] {
      rdf::cpu::limit_copy(sp, dp, n, task_bytes);
    });
  });
  m.def("limit_rmw", [](const py::array& src, py::array& dst, int64_t n, int64_t task_bytes) {
    const auto* sp = static_cast<const uint8_t*>(data_of(src));
    auto* dp = static_cast<uint8_t*>(mutable_data_of(dst));
    without_gil([&] {
      rdf::cpu::limit_rmw(sp, dp, n, task_bytes);
    });
  });
  // Private, for tests and A/B benchmarks: how far ahead the dropout and gaussian loops prefetch their input
  // (csrc/cpu/input_prefetch.h) and the output size from which stores are non-temporal
  // (csrc/cpu/output_streaming.h), and how long the thread pool polls before it sleeps (csrc/cpu/parallel.h);
  // no value depends on any of them.
  m.def("prefetch_bytes", &rdf::cpu::prefetch_bytes);
  m.def("set_prefetch_bytes", &rdf::cpu::set_prefetch_bytes);
  m.def("stream_output_bytes", &rdf::cpu::stream_output_bytes);
  m.def("set_stream_output_bytes", &rdf::cpu::set_stream_output_bytes);
  m.def("streams_output", [](py::array& a, bool in_place) {
    return rdf::cpu::streams_output(static_cast<int64_t>(a.nbytes()), data_of(a), in_place);
  });
  m.def("pool_spin_ns", &rdf::pool_spin_ns);
  m.def("set_pool_spin_ns", &rdf::set_pool_spin_ns);

  m.def("get_num_threads", &rdf::get_num_threads);
  m.def("set_num_threads", &rdf::set_num_threads);
  m.def("default_num_threads", &rdf::default_num_threads);
  m.def("simd", [] { return rdf::cpu::isa_name(rdf::cpu::active_isa()); });
  m.def("simd_best", [] { return rdf::cpu::isa_name(rdf::cpu::best_isa()); });
  m.def("set_simd", [](int isa) { rdf::cpu::set_isa(static_cast<rdf::cpu::Isa>(isa)); });
}
