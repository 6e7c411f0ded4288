// Device queries for the Python layer: how many GPUs, their names, where a pointer lives.
#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "check_cuda.h"
#include "entry_points.h"

namespace rdf {
namespace cuda {

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver"/"no device" error so later calls start clean
    return 0;
  }
  return count;
}

const char* device_name(int device) {
  static std::vector<std::string> names;
  if (names.empty()) {
    const int count = device_count();
    for (int d = 0; d < count; ++d) {
      cudaDeviceProp prop;
      check(cudaGetDeviceProperties(&prop, d), "cudaGetDeviceProperties");
      names.emplace_back(prop.name);
    }
  }
  if (device < 0 || device >= static_cast<int>(names.size())) throw std::out_of_range("no such CUDA device");
  return names[device].c_str();
}

int pointer_device(const void* p) {
  cudaPointerAttributes attr;
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    cudaGetLastError();
    return -1;
  }
  return attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged ? attr.device : -1;
}

}  // namespace cuda
}  // namespace rdf
