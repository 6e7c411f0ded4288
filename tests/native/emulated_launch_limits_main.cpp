// The CUDA emulation's launch checks (tests/native/cuda_emulation/cuda_runtime.h) and csrc/cuda/check_cuda.h's
// check_launch together: a launch outside the device's limits runs nothing, is reported by the next
// cudaGetLastError() and becomes a C++ exception naming the launch; the error is cleared once reported; a
// launch inside the limits runs every (block, thread) exactly once. Prints "ok <cases>" on success.
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "../../csrc/cuda/check_cuda.h"

namespace {

int failures = 0;
int cases = 0;

void expect(bool ok, const std::string& what) {
  ++cases;
  if (!ok) {
    ++failures;
    std::printf("FAILED: %s\n", what.c_str());
  }
}

// Launches a kernel that counts its (block, thread) visits with the given configuration, then reports
// through check_launch as the library's launchers do. Returns the exception message, or "" if none.
std::string launch(unsigned int grid, unsigned int block, std::vector<int>& visits) {
  rdf_emulate_launch(grid, block, [&] { ++visits[blockIdx.x * blockDim.x + threadIdx.x]; });
  try {
    rdf::cuda::check_launch("test kernel launch", nullptr);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

int main() {
  std::vector<int> visits(64 * 1024, 0);
  // Outside the limits: 0 blocks, 0 threads, more than 1,024 threads per block, more than 2^31 - 1 blocks.
  const unsigned int bad[][2] = {{0, 32}, {4, 0}, {1, 1025}, {2, 2048}, {0x80000000u, 1}, {0xFFFFFFFFu, 256}};
  for (const auto& cfg : bad) {
    const std::string label = "grid " + std::to_string(cfg[0]) + ", block " + std::to_string(cfg[1]);
    const std::string msg = launch(cfg[0], cfg[1], visits);
    expect(msg.find("test kernel launch") != std::string::npos, label + ": the error names the launch: " + msg);
    expect(msg.find("invalid configuration") != std::string::npos, label + ": invalid configuration: " + msg);
    bool untouched = true;
    for (int v : visits) untouched = untouched && v == 0;
    expect(untouched, label + ": nothing ran");
    expect(cudaGetLastError() == cudaSuccess, label + ": the error is cleared once reported");
  }
  // Inside the limits, at the per-block maximum: every thread of every block once, no error.
  const std::string msg = launch(64, 1024, visits);
  expect(msg.empty(), "grid 64, block 1024: no error: " + msg);
  bool once = true;
  for (int v : visits) once = once && v == 1;
  expect(once, "grid 64, block 1024: every (block, thread) ran exactly once");
  if (failures) return 1;
  std::printf("ok %d\n", cases);
  return 0;
}
