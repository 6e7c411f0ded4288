// Reading Python lists of NumPy arrays into kernel items, for the list operations (penalty_grad, penalty,
// prox_l1, decay), without a Python-level step per array.
//
// Why this is C++: a list of 1,000 small arrays must cost well under a microsecond per array, and reading a
// data pointer, dtype, shape and flags through Python attributes costs about that much on its own. So the
// fields are read straight from the array structs here, and every rule of a list call is decided here,
// once, for the Python layer too: an array the kernels read ("fast form") is an ndarray of a supported
// dtype in native byte order, C-contiguous and aligned; an array they write is an aligned writeable ndarray
// of a supported dtype in any layout whose elements do not overlap each other (walked in place: see
// strided_fields); paired arrays have equal shape and dtype; and no written array overlaps another array of
// the call (csrc/common/list_rules.h).
// A parameter that is only read and not in fast form is converted here (a C-contiguous aligned copy, held
// until the kernels return), as long as its dtype is supported. Anything else is refused with a Refusal
// naming the rule and the arrays, before anything is touched; the Python layer turns it into the error and
// its message (every message lives in Python).
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <vector>

#include "../common/dtypes.h"
#include "../common/list_rules.h"
#include "../cpu/penalty_driver.h"

namespace rdf {
namespace pyarrays {

namespace py = pybind11;
using npy = py::detail::npy_api;

// NumPy type numbers of the supported dtypes, indexed by rdf::DType code; bfloat16's number is assigned
// when ml_dtypes registers it, so the Python layer passes all four in.
struct TypeNums {
  int num[4];
};

inline TypeNums type_nums(const py::tuple& nums) {
  TypeNums t{};
  for (int c = 0; c < 4; ++c) t.num[c] = nums[static_cast<size_t>(c)].cast<int>();
  return t;
}

// Why a call was refused: rule, the list ("params" or "grads") array i belongs to, and a second index j
// (-1 when unused). Rules: "sequence" (the list is not a list or tuple), "length" (i = len(grads),
// j = len(params)), "device" (a CUDA array among host arrays), "convert" (array-like that NumPy cannot convert), "type" (written array not an
// ndarray), "dtype", "aligned", "writeable", "self_overlap" (a written array whose elements overlap each
// other), "pair_dtype", "pair_shape" (grads[i] against params[i]), "overlap" (i written, j the array it
// overlaps, both numbered in params + grads).
struct Refusal {
  const char* rule = nullptr;
  const char* name = nullptr;
  int64_t i = -1;
  int64_t j = -1;
};

inline bool refuse(Refusal& r, const char* rule, const char* name, int64_t i, int64_t j = -1) {
  r = Refusal{rule, name, i, j};
  return false;
}

inline py::object refusal_tuple(const Refusal& r) { return py::make_tuple(r.rule, r.name, r.i, r.j); }

struct ArrayFields {
  DType dtype;
  void* data;
  int64_t n;
  int64_t bytes;
  int ndim;
  const ssize_t* dims;
  int flags;
  uintptr_t lo, hi;  // the memory from the lowest to past the highest element (strided arrays: conservative)
};

// Fields of ndarray obj; false when its dtype is not one of the four (or not in native byte order).
inline bool array_fields(PyObject* obj, const TypeNums& nums, ArrayFields& out) {
  const auto* arr = py::detail::array_proxy(obj);
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
  out.flags = arr->flags;
  out.lo = reinterpret_cast<uintptr_t>(out.data);
  out.hi = out.lo + static_cast<uintptr_t>(out.bytes);
  return true;
}

// How the kernels walk a written array.
enum class WriteForm { kContiguous, kFlat, kStrided };

// A written array that is not C-contiguous (already aligned and writeable, n > 0). Refused when its
// elements overlap each other ("self_overlap": the rule of _arrays.self_overlapping, on the dims of size > 1
// sorted by |stride|, each must step past all the elements the smaller ones reach). Otherwise the memory
// from its lowest to its highest element goes into out.lo / out.hi, and:
//   kFlat: it is dense in some memory order (transposed, Fortran, negative strides: exactly n elements in
//     that span, starting at out.lo); for an op whose elements are independent and whose result has no
//     order (prox_l1, decay) it is then one contiguous block, with no copy;
//   kStrided: it is not; the loops walk it in C order.
// Either way `layout` holds it collapsed (size-1 dims dropped, a dim merged into the next when it steps
// exactly over it), from out.data.
inline WriteForm strided_fields(PyObject* obj, ArrayFields& out, cpu::StridedWalk& layout, bool& overlap) {
  const auto* arr = py::detail::array_proxy(obj);
  const int64_t item = out.bytes / out.n;
  layout.ndim = 0;
  for (int d = 0; d < arr->nd; ++d) {
    if (arr->dimensions[d] == 1) continue;
    const int64_t dim = static_cast<int64_t>(arr->dimensions[d]);
    const int64_t stride = static_cast<int64_t>(arr->strides[d]) / item;  // aligned: whole elements
    const int m = layout.ndim;
    if (m > 0 && layout.strides[m - 1] == stride * dim) {
      layout.dims[m - 1] *= dim;
      layout.strides[m - 1] = stride;
      continue;
    }
    layout.dims[m] = dim;
    layout.strides[m] = stride;
    layout.ndim = m + 1;
  }
  const int nd = layout.ndim;
  int order[cpu::kMaxStridedDims];
  for (int d = 0; d < nd; ++d) order[d] = d;
  std::sort(order, order + nd, [&](int a, int b) {
    return std::llabs(layout.strides[a]) < std::llabs(layout.strides[b]);
  });
  int64_t reach = 0, low = 0, high = 0;
  overlap = false;
  for (int k = 0; k < nd; ++k) {
    const int64_t s = layout.strides[order[k]], step = std::llabs(s), extent = (layout.dims[order[k]] - 1) * s;
    if (step <= reach) overlap = true;
    reach += extent < 0 ? -extent : extent;
    (s < 0 ? low : high) += extent;
  }
  if (overlap) return WriteForm::kStrided;
  char* base = static_cast<char*>(out.data);
  out.lo = reinterpret_cast<uintptr_t>(base + low * item);
  out.hi = reinterpret_cast<uintptr_t>(base + (high + 1) * item);
  return high - low + 1 == out.n ? WriteForm::kFlat : WriteForm::kStrided;
}

constexpr int kFastFlags = npy::NPY_ARRAY_C_CONTIGUOUS_ | npy::NPY_ARRAY_ALIGNED_;

// params[i], only read: in fast form as it is, or converted into `converted` (which keeps the copy alive).
inline bool read_array(PyObject* obj, const TypeNums& nums, int64_t i, ArrayFields& out,
                       std::vector<py::object>& converted, Refusal& r) {
  const auto& api = npy::get();
  if (api.PyArray_Check_(obj)) {
    if (!array_fields(obj, nums, out)) return refuse(r, "dtype", "params", i);
    if ((out.flags & kFastFlags) == kFastFlags) return true;
  }
  // A CUDA array (CuPy, a torch CUDA tensor) in a host call is refused, never copied to the host: the
  // Python layer names the device mix-up.
  if (PyObject_HasAttrString(obj, "__cuda_array_interface__")) return refuse(r, "device", "params", i);
  // Not an ndarray, or one that is not C-contiguous and aligned: NumPy's own conversion (no dtype change:
  // an int array stays int and is refused below).
  PyObject* arr = api.PyArray_FromAny_(obj, nullptr, 0, 0, kFastFlags, nullptr);
  if (!arr) {
    PyErr_Clear();
    return refuse(r, "convert", "params", i);
  }
  converted.push_back(py::reinterpret_steal<py::object>(arr));
  if (!array_fields(arr, nums, out)) return refuse(r, "dtype", "params", i);
  return true;
}

// params[i] (update ops) or grads[i], written in place as it is: an aligned writeable ndarray of a
// supported dtype, in any layout that does not overlap itself. A C-contiguous one is taken as it is; any
// other is described by strided_fields, and a strided one's layout is kept in `layouts` (a deque: the
// items point into it, and it only grows) and returned through `layout` (else null). `flat_ok`: the op may
// take an array dense in another memory order as one block (prox_l1, decay; not a gradient, whose elements
// pair with its parameter's in C order).
inline bool written_array(PyObject* obj, const TypeNums& nums, const char* name, int64_t i, ArrayFields& out,
                          bool flat_ok, std::deque<cpu::StridedWalk>& layouts,
                          const cpu::StridedWalk*& layout, Refusal& r) {
  layout = nullptr;
  if (!npy::get().PyArray_Check_(obj)) return refuse(r, "type", name, i);
  if (!array_fields(obj, nums, out)) return refuse(r, "dtype", name, i);
  if (!(out.flags & npy::NPY_ARRAY_ALIGNED_)) return refuse(r, "aligned", name, i);
  if (!(out.flags & npy::NPY_ARRAY_WRITEABLE_)) return refuse(r, "writeable", name, i);
  if ((out.flags & npy::NPY_ARRAY_C_CONTIGUOUS_) || out.n == 0) return true;
  cpu::StridedWalk strided;
  bool overlap;
  const WriteForm form = strided_fields(obj, out, strided, overlap);
  if (overlap) return refuse(r, "self_overlap", name, i);
  if (form == WriteForm::kFlat && flat_ok) {
    out.data = reinterpret_cast<void*>(out.lo);
    return true;
  }
  layouts.push_back(strided);
  layout = &layouts.back();
  return true;
}

inline bool same_shape(const ArrayFields& a, const ArrayFields& b) {
  return a.ndim == b.ndim &&
         (a.ndim == 0 || std::memcmp(a.dims, b.dims, sizeof(ssize_t) * static_cast<size_t>(a.ndim)) == 0);
}

// The items of seq as a tuple that holds a reference to each of them while the kernels run with the GIL
// released (a list could be changed by another thread meanwhile); refused unless seq is a list or tuple
// (the Python layer turns other iterables into lists first).
inline bool held_items(const py::handle& seq, const char* name, py::object& held, PyObject* const*& items,
                       Py_ssize_t& count, Refusal& r) {
  if (!PyList_Check(seq.ptr()) && !PyTuple_Check(seq.ptr())) return refuse(r, "sequence", name, -1);
  held = py::reinterpret_steal<py::object>(PySequence_Tuple(seq.ptr()));
  if (!held) throw py::error_already_set();
  items = &PyTuple_GET_ITEM(held.ptr(), 0);
  count = PyTuple_GET_SIZE(held.ptr());
  return true;
}

inline void add_range(std::vector<MemRange>& ranges, const ArrayFields& f, int64_t index, int64_t pair,
                      bool written) {
  if (f.bytes == 0) return;  // holds no memory (write_conflict would drop it)
  ranges.push_back(MemRange{f.lo, f.hi, index, pair, written});
}

// The overlap rule over the ranges of a call; `n_params` tells params (index < n_params) from grads.
inline bool no_overlap(std::vector<MemRange>& ranges, int64_t n_params, Refusal& r) {
  int64_t w, other;
  if (!write_conflict(ranges, w, other)) return true;
  return refuse(r, "overlap", w < n_params ? "params" : "grads", w, other);
}

// What a list call holds while its kernels run: the lists' items and any converted parameters.
struct Held {
  py::object lists[2];
  std::vector<py::object> converted;
  std::deque<cpu::StridedWalk> layouts;  // of the written arrays walked strided (the items point here)
};

// Items of a penalty call: params[i] read, grads[i] written (grads None: the value only), coefficients
// l1[i], l2[i]. Checks run per index i ascending, params[i] then grads[i]; lengths before any array, the
// overlap rule after all of them.
// group (null: no group_l1 term) holds each array's group_l1 coefficient and views (outer, reduce, inner,
// three int64 per array, from the Python layer, which has checked them against the shapes).
inline bool penalty_items(const py::handle& params, const py::handle& grads, const double* l1,
                          const double* l2, const TypeNums& nums, std::vector<cpu::PenaltyItem>& items,
                          Held& held, Refusal& r, const double* group = nullptr, const int64_t* views = nullptr) {
  PyObject* const* ps;
  PyObject* const* gs = nullptr;
  Py_ssize_t n, n_grads = 0;
  const bool with_grads = !grads.is_none();
  if (!held_items(params, "params", held.lists[0], ps, n, r)) return false;
  if (with_grads) {
    if (!held_items(grads, "grads", held.lists[1], gs, n_grads, r)) return false;
    if (n_grads != n) return refuse(r, "length", "grads", n_grads, n);
  }
  items.resize(static_cast<size_t>(n));
  std::vector<MemRange> ranges;
  if (with_grads) ranges.reserve(2 * static_cast<size_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i) {
    ArrayFields w, g;
    const cpu::StridedWalk* grad_layout = nullptr;
    if (!read_array(ps[i], nums, i, w, held.converted, r)) return false;
    if (with_grads) {
      if (!written_array(gs[i], nums, "grads", i, g, false, held.layouts, grad_layout, r)) return false;
      if (g.dtype != w.dtype) return refuse(r, "pair_dtype", "grads", i);
      if (!same_shape(w, g)) return refuse(r, "pair_shape", "grads", i);
      add_range(ranges, w, i, i, false);
      // A strided gradient is never exactly its parameter's memory element for element (the parameter is
      // C-contiguous), even over the same span: it gets a pair of its own.
      add_range(ranges, g, n + i, grad_layout ? n + i : i, true);
    }
    void* grad = with_grads ? g.data : nullptr;
    cpu::PenaltyItem& item = items[static_cast<size_t>(i)];
    item = cpu::PenaltyItem{w.dtype, w.n, w.data, grad, l1[i], l2[i], grad_layout};
    if (group != nullptr && group[i] != 0.0) {
      item.group = group[i];
      item.outer = views[3 * i];
      item.reduce = views[3 * i + 1];
      item.inner = views[3 * i + 2];
    }
  }
  return !with_grads || no_overlap(ranges, n, r);
}

// Items of an in-place list operation (prox_l1, decay): params[i] written with coefficient coef[i].
inline bool update_items(const py::handle& params, const double* coef, const TypeNums& nums,
                         std::vector<cpu::UpdateItem>& items, Held& held, Refusal& r) {
  PyObject* const* ps;
  Py_ssize_t n;
  if (!held_items(params, "params", held.lists[0], ps, n, r)) return false;
  items.resize(static_cast<size_t>(n));
  std::vector<MemRange> ranges;
  ranges.reserve(static_cast<size_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i) {
    ArrayFields w;
    const cpu::StridedWalk* layout;
    if (!written_array(ps[i], nums, "params", i, w, true, held.layouts, layout, r)) return false;
    add_range(ranges, w, i, i, true);
    items[static_cast<size_t>(i)] = cpu::UpdateItem{w.dtype, w.n, w.data, coef[i], layout};
  }
  return no_overlap(ranges, n, r);
}

}  // namespace pyarrays
}  // namespace rdf
