// Host/device qualifiers so that one element-level body compiles for the CPU loops (plain C++) and the
// CUDA kernels (nvcc). Every function in csrc/common/ is written against these macros and nothing else.
#pragma once

#if defined(__CUDACC__)
#define RDF_HD __host__ __device__ __forceinline__
#else
#define RDF_HD inline __attribute__((always_inline))
#endif
