// Reading Python lists of NumPy arrays into kernel items, for the list operations (penalty_grad, penalty,
// prox_l1, decay), without a Python-level step per array.
//
// Why this is C++: a list of 1,000 small arrays must cost well under a microsecond per array, and reading a
// data pointer, dtype, shape and flags through Python attributes costs about that much on its own. So the
// bindings read those fields straight from the array structs here and accept the call only when every
// array is already in the form the kernels take ("fast form"): an ndarray of a supported dtype in native
// byte order, C-contiguous and aligned, writeable when it is written, paired arrays of equal shape and
// dtype, and no written array overlapping any other array of the call. Otherwise they return None without
// touching anything, and the Python layer (python/regdrop_fast/_checks.py: penalty_arrays, update_arrays)
// applies the same rules one array at a time, raising the error with its message or converting read-only
// inputs (copies of non-contiguous parameters) before calling again. Every error message lives in Python.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../common/dtypes.h"
#include "../cpu/penalty_driver.h"

namespace rdf {
namespace pyarrays {

namespace py = pybind11;

// NumPy type numbers of the supported dtypes, indexed by rdf::DType code; bfloat16's number is assigned
// when ml_dtypes registers it, so the Python layer passes all four in.
struct TypeNums {
  int num[4];
};

struct ArrayFields {
  DType dtype;
  void* data;
  int64_t n;
  int64_t bytes;
  int ndim;
  const ssize_t* dims;
};

// Fields of obj when it is an array in fast form (see above); false otherwise.
inline bool fast_array(PyObject* obj, const TypeNums& nums, bool written, ArrayFields& out) {
  const auto& api = py::detail::npy_api::get();
  if (!api.PyArray_Check_(obj)) return false;
  const auto* arr = py::detail::array_proxy(obj);
  const int need = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ | py::detail::npy_api::NPY_ARRAY_ALIGNED_ |
                   (written ? py::detail::npy_api::NPY_ARRAY_WRITEABLE_ : 0);
  if ((arr->flags & need) != need) return false;
  const auto* descr = py::detail::array_descriptor_proxy(arr->descr);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  if (descr->byteorder == '<') return false;
#else
  if (descr->byteorder == '>') return false;
#endif
  int code = -1;
  for (int c = 0; c < 4; ++c)
    if (descr->type_num == nums.num[c]) code = c;
  if (code < 0) return false;
  int64_t n = 1;
  for (int d = 0; d < arr->nd; ++d) n *= static_cast<int64_t>(arr->dimensions[d]);
  out.dtype = static_cast<DType>(code);
  out.data = arr->data;
  out.n = n;
  out.bytes = n * dispatch_dtype(out.dtype, [](auto tag) { return static_cast<int64_t>(sizeof(tag)); });
  out.ndim = arr->nd;
  out.dims = arr->dimensions;
  return true;
}

inline bool same_shape_and_dtype(const ArrayFields& a, const ArrayFields& b) {
  return a.dtype == b.dtype && a.ndim == b.ndim &&
         (a.ndim == 0 || std::memcmp(a.dims, b.dims, sizeof(ssize_t) * static_cast<size_t>(a.ndim)) == 0);
}

// The items of seq as a tuple that holds a reference to each of them while the kernels run with the GIL
// released (a list could be changed by another thread meanwhile); false unless seq is a list or tuple
// (other sequences are turned into lists by the Python layer first).
inline bool held_items(const py::handle& seq, py::object& held, PyObject* const*& items, Py_ssize_t& count) {
  if (!PyList_Check(seq.ptr()) && !PyTuple_Check(seq.ptr())) return false;
  held = py::reinterpret_steal<py::object>(PySequence_Tuple(seq.ptr()));
  if (!held) throw py::error_already_set();
  items = &PyTuple_GET_ITEM(held.ptr(), 0);
  count = PyTuple_GET_SIZE(held.ptr());
  return true;
}

// Memory ranges of a call: a written range may overlap no other range, except the read range of its own
// pair when the two coincide exactly (grads is params). Same rule as _checks.disjoint_writes.
struct Range {
  uintptr_t lo, hi;
  int64_t pair;
  bool written;
};

inline bool disjoint_writes(std::vector<Range>& ranges) {
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.lo != b.lo ? a.lo < b.lo : a.hi < b.hi; });
  // Clusters of chained overlaps: one holding a written range must be that range alone, or it with its
  // own identical read range.
  size_t first = 0;
  while (first < ranges.size()) {
    size_t last = first + 1;
    uintptr_t hi = ranges[first].hi;
    bool written = ranges[first].written;
    while (last < ranges.size() && ranges[last].lo < hi) {
      hi = std::max(hi, ranges[last].hi);
      written = written || ranges[last].written;
      ++last;
    }
    if (written && last - first > 1) {
      const Range& a = ranges[first];
      const Range& b = ranges[first + 1];
      const bool identical_pair =
          last - first == 2 && a.pair == b.pair && a.written != b.written && a.lo == b.lo && a.hi == b.hi;
      if (!identical_pair) return false;
    }
    first = last;
  }
  return true;
}

inline void add_range(std::vector<Range>& ranges, const ArrayFields& f, int64_t pair, bool written) {
  if (f.bytes == 0) return;
  const auto lo = reinterpret_cast<uintptr_t>(f.data);
  ranges.push_back(Range{lo, lo + static_cast<uintptr_t>(f.bytes), pair, written});
}

inline TypeNums type_nums(const py::tuple& nums) {
  TypeNums t{};
  for (int c = 0; c < 4; ++c) t.num[c] = nums[static_cast<size_t>(c)].cast<int>();
  return t;
}

// Items of a penalty call: params[i] read, grads[i] written (grads None: the value only), coefficients
// l1[i], l2[i]. False, with nothing read beyond the fields, unless every array is in fast form.
inline bool penalty_items(const py::handle& params, const py::handle& grads, const double* l1,
                          const double* l2, const TypeNums& nums, std::vector<cpu::PenaltyItem>& items,
                          py::object held[2]) {
  PyObject* const* ps;
  PyObject* const* gs = nullptr;
  Py_ssize_t n, n_grads = 0;
  const bool with_grads = !grads.is_none();
  if (!held_items(params, held[0], ps, n)) return false;
  if (with_grads && (!held_items(grads, held[1], gs, n_grads) || n_grads != n)) return false;
  items.resize(static_cast<size_t>(n));
  std::vector<Range> ranges;
  if (with_grads) ranges.reserve(2 * static_cast<size_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i) {
    ArrayFields w, g;
    if (!fast_array(ps[i], nums, false, w)) return false;
    if (with_grads) {
      if (!fast_array(gs[i], nums, true, g) || !same_shape_and_dtype(w, g)) return false;
      add_range(ranges, w, i, false);
      add_range(ranges, g, i, true);
    }
    void* grad = with_grads ? g.data : nullptr;
    items[static_cast<size_t>(i)] = cpu::PenaltyItem{w.dtype, w.n, w.data, grad, l1[i], l2[i]};
  }
  return !with_grads || disjoint_writes(ranges);
}

// Items of an in-place list operation (prox_l1, decay): params[i] written with coefficient coef[i].
inline bool update_items(const py::handle& params, const double* coef, const TypeNums& nums,
                         std::vector<cpu::UpdateItem>& items, py::object& held) {
  PyObject* const* ps;
  Py_ssize_t n;
  if (!held_items(params, held, ps, n)) return false;
  items.resize(static_cast<size_t>(n));
  std::vector<Range> ranges;
  ranges.reserve(static_cast<size_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i) {
    ArrayFields w;
    if (!fast_array(ps[i], nums, true, w)) return false;
    add_range(ranges, w, i, true);
    items[static_cast<size_t>(i)] = cpu::UpdateItem{w.dtype, w.n, w.data, coef[i]};
  }
  return disjoint_writes(ranges);
}

}  // namespace pyarrays
}  // namespace rdf
