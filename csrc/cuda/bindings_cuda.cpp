// Python bindings of the CUDA kernels (module regdrop_fast._cuda). Device pointers and the stream arrive
// as integers from __cuda_array_interface__ / the caller's library; validation and allocation happen in
// python/regdrop_fast/cuda.py. The GIL is released around every launch.
#include <pybind11/pybind11.h>

#include "ops_cuda.h"

namespace py = pybind11;

namespace {

template <class P>
P* ptr(uintptr_t address) {
  return reinterpret_cast<P*>(address);
}

rdf::DropoutParams params(uint64_t seed, uint64_t offset, uint32_t threshold, bool drop_all, double scale) {
  return rdf::DropoutParams{seed, offset, threshold, drop_all, scale};
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "regdrop_fast CUDA kernels (private; use the regdrop_fast package)";

  m.def("dropout_forward", [](int dtype, uintptr_t x, uintptr_t y, uintptr_t bits, int64_t n, uint64_t seed,
                              uint64_t offset, uint32_t threshold, bool drop_all, double scale, uintptr_t stream) {
    py::gil_scoped_release release;
    rdf::cuda::dropout_forward(static_cast<rdf::DType>(dtype), ptr<const void>(x), ptr<void>(y), ptr<uint8_t>(bits),
                               n, params(seed, offset, threshold, drop_all, scale), ptr<void>(stream));
  });
  m.def("dropout_backward", [](int dtype, uintptr_t grad, uintptr_t dx, uintptr_t bits, int64_t n, uint64_t seed,
                               uint64_t offset, uint32_t threshold, bool drop_all, double scale, uintptr_t stream) {
    py::gil_scoped_release release;
    rdf::cuda::dropout_backward(static_cast<rdf::DType>(dtype), ptr<const void>(grad), ptr<void>(dx),
                                ptr<const uint8_t>(bits), n, params(seed, offset, threshold, drop_all, scale),
                                ptr<void>(stream));
  });
  m.def("dropout_mask", [](uintptr_t bits, int64_t n, uint64_t seed, uint64_t offset, uint32_t threshold,
                           bool drop_all, uintptr_t stream) {
    py::gil_scoped_release release;
    rdf::cuda::dropout_mask(ptr<uint8_t>(bits), n, params(seed, offset, threshold, drop_all, 0.0), ptr<void>(stream));
  });
  m.def("device_count", &rdf::cuda::device_count);
  m.def("device_name", &rdf::cuda::device_name);
  m.def("pointer_device", [](uintptr_t p) { return rdf::cuda::pointer_device(ptr<const void>(p)); });
}
