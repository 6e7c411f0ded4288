#include "dropout_broadcast_driver.h"

#include <algorithm>
#include <vector>

#include "dropout_driver.h"
#include "isa.h"
#include "parallel.h"

namespace rdf {
namespace cpu {

void dropout_broadcast(DType dt, const void* in, void* out, const uint8_t* bits_in, uint8_t* bits_out, int ndim,
                       const int64_t* shape, const int64_t* strides, const int64_t* rstrides, int64_t m,
                       const MaskedParams& prm) {
  BroadcastLayout L;
  simplify_broadcast(ndim, shape, strides, rstrides, L);
  int64_t n = 1;
  for (int d = 0; d < ndim; ++d) n *= shape[d];
  // Fused: a layout of one axis with decisions in element order from the stream (alpha dropout without a
  // broadcast axis): each unit generates its own bits next to its values, as dropout's loop does, so the
  // Philox work overlaps the memory traffic. Otherwise the reduced mask is generated first, whole (it is
  // n / size of the broadcast axes elements: small next to x), and the units read it.
  const bool fused = bits_in == nullptr && L.ndim == 1 && L.rstride[0] == 1 &&
                     keep_source(false, prm.keep) == KeepSource::kStream;
  std::vector<uint8_t> scratch;
  const uint8_t* bits = bits_in;
  if (bits == nullptr && !fused) {
    uint8_t* target = bits_out;
    if (target == nullptr) {
      scratch.resize(static_cast<size_t>((m + 7) / 8));
      target = scratch.data();
    }
    dropout_mask(target, m, prm.keep);
    bits = target;
  }
  if (n <= 0) return;
  const int64_t period = fused ? 0 : fold_periodic_rows(L, kBroadcastMaxPeriod);
  const int64_t chunk = period ? kBroadcastChunk / period * period : kBroadcastChunk;
  const int64_t inner = L.shape[L.ndim - 1];
  const BroadcastPass pass{dt, in, out, bits, fused ? bits_out : nullptr, &L, period, chunk, prm};
  const int64_t per_row = (inner + chunk - 1) / chunk;
  const int64_t units = n / inner * per_row;
  const int64_t per_task = std::max<int64_t>(1, kDropoutTaskElems / std::min(inner, chunk));
  const int64_t n_tasks = (units + per_task - 1) / per_task;
  const auto range = RDF_ACTIVE_ISA_KERNEL(dropout_broadcast_range);
  if (n_tasks <= 1) {
    range(pass, 0, units);
    return;
  }
  parallel_for(n_tasks, [&](int64_t t) {
    const int64_t begin = t * per_task;
    range(pass, begin, std::min(units, begin + per_task));
  });
}

}  // namespace cpu
}  // namespace rdf
