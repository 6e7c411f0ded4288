// CUDA entry points called by the CUDA bindings. Pointers are device pointers of the current device,
// arguments were validated by the Python layer (python/regdrop_fast/cuda.py); every launch goes on
// `stream` (the caller's current stream) and nothing synchronizes the host.
#pragma once
#include <cstdint>

#include "../common/dropout_element.h"

namespace rdf {
namespace cuda {

using Stream = void*;  // cudaStream_t, kept opaque so the bindings need no CUDA headers

void dropout_forward(DType dt, const void* x, void* y, uint8_t* bits, int64_t n, const DropoutParams& prm,
                     Stream stream);
void dropout_backward(DType dt, const void* grad, void* dx, const uint8_t* bits, int64_t n,
                      const DropoutParams& prm, Stream stream);
void dropout_mask(uint8_t* bits, int64_t n, const DropoutParams& prm, Stream stream);

int device_count();                  // 0 when there is no driver or no device
const char* device_name(int device);  // name of device `device`
int pointer_device(const void* p);   // the device a pointer lives on; -1 for host memory

}  // namespace cuda
}  // namespace rdf
