// Device queries of the emulated CUDA build (tests/native/cuda_emulation/cuda_runtime.h): one device.
#include "../../../csrc/cuda/ops_cuda.h"

namespace rdf {
namespace cuda {

int device_count() { return 1; }
const char* device_name(int) { return "emulated"; }
int pointer_device(const void*) { return 0; }

}  // namespace cuda
}  // namespace rdf
