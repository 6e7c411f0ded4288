"""Input prefetch of the dropout and gaussian loops on and off, in one process (csrc/cpu/input_prefetch.h).

    PYTHONPATH=python python bench/prefetch_ab.py [--rounds 21] [--n 2^24] [--dtypes float32,bfloat16,float64]

Dropout forward (store="bits", out= preallocated), backward from the bits and gaussian_dropout, each dtype,
with the loops' prefetch distance switched between 0 (no prefetches) and the default between interleaved calls
(`_core.set_prefetch_bytes`; the order alternates from round to round). Prints the median time of each and
the median of the per-round ratios off / on (above 1: the prefetch is faster). float64 does not prefetch
(prefetch_bytes_for), so its rows show the noise of the method. Same bits either way
(tests/test_input_prefetch.py).
"""

from __future__ import annotations

import argparse
import statistics
import time

import ml_dtypes
import numpy as np

import regdrop_fast as rdf
from regdrop_fast import _native
from regdrop_fast.bench.cases import parse_size

DTYPES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16, "float16": np.float16, "float64": np.float64}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--n", type=parse_size, default=1 << 24)
    ap.add_argument("--dtypes", default="float32,bfloat16,float64")
    args = ap.parse_args()
    core = _native.core
    default = core.prefetch_bytes()
    settings = (0, default)
    print(f"n={args.n}, threads={rdf.get_num_threads()}, simd={rdf.backend_info()['simd']}, "
          f"prefetch distance {default} bytes against none; medians of {args.rounds} rounds")
    try:
        for name in args.dtypes.split(","):
            dtype = DTYPES[name]
            x = np.random.default_rng(0).standard_normal(args.n).astype(dtype)
            y, dx = np.empty_like(x), np.empty_like(x)
            _, mask = rdf.dropout(x, 0.5, seed=3, out=y)
            calls = {"forward": lambda: rdf.dropout(x, 0.5, seed=3, out=y),
                     "backward from bits": lambda: rdf.dropout_backward(x, mask, out=dx),
                     "gaussian_dropout": lambda: rdf.gaussian_dropout(x, 0.3, seed=3, out=y)}
            for what, call in calls.items():
                times: dict[int, list[float]] = {s: [] for s in settings}
                for r in range(args.rounds):
                    for s in settings if r % 2 == 0 else settings[::-1]:
                        core.set_prefetch_bytes(s)
                        call()
                        t0 = time.perf_counter()
                        call()
                        call()
                        times[s].append((time.perf_counter() - t0) / 2)
                ratio = statistics.median(a / b for a, b in zip(times[0], times[default]))
                print(f"{name:9s} {what:18s}: off {statistics.median(times[0]) * 1e3:6.2f} ms, "
                      f"on {statistics.median(times[default]) * 1e3:6.2f} ms, off / on {ratio:.3f}")
    finally:
        core.set_prefetch_bytes(default)


if __name__ == "__main__":
    main()
