"""The thread pool's polling window on and off, in one process (csrc/cpu/parallel.cpp).

    PYTHONPATH=python python bench/pool_spin_ab.py [--rounds 31] [--sizes 2^15,...,2^21] [--gap-ms 2]

float32 dropout forward (store="bits", out= preallocated), backward from the bits and mask-only calls of each
size, with the pool's polling window (`_core.set_pool_spin_ns`) switched between 0 (idle workers and a
waiting caller sleep at once) and the default between interleaved calls (the order alternates from round to
round). Two kinds of call: "hot", right after the previous call (a loop of small calls; the workers still
poll), and "cold", after --gap-ms of sleep (the workers have gone to sleep either way). Prints the median time
of each and the median of the per-round ratios off / on (above 1: polling is faster), next to the same call
on one thread. Calls of one task (2^16 elements and fewer) run on the calling thread alone, so their rows
show the noise of the method. Same bits either way: no result depends on the pool.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import regdrop_fast as rdf
from regdrop_fast import _native
from regdrop_fast.bench.cases import parse_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=31)
    ap.add_argument("--sizes", default="2^15,2^16,2^17,2^18,2^19,2^20,2^21")
    ap.add_argument("--gap-ms", type=float, default=2.0)
    args = ap.parse_args()
    core = _native.core
    default = core.pool_spin_ns()
    threads = rdf.get_num_threads()
    print(f"threads={threads}, simd={rdf.backend_info()['simd']}, polling window {default} ns against none; "
          f"medians of {args.rounds} rounds; cold calls after {args.gap_ms} ms of sleep")
    print(f"{'call':28s} {'1 thread':>9s} {'off':>9s} {'on':>9s}  off/on  1t/on")
    try:
        for size in args.sizes.split(","):
            n = parse_size(size)
            x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
            y, dx = np.empty_like(x), np.empty_like(x)
            _, mask = rdf.dropout(x, 0.5, seed=3, out=y)
            calls = {"forward": lambda: rdf.dropout(x, 0.5, seed=3, out=y),
                     "backward from bits": lambda: rdf.dropout_backward(x, mask, out=dx),
                     "mask only": lambda: rdf.dropout_mask(x.shape, 0.5, seed=3)}
            for what, call in calls.items():
                for kind in ("hot", "cold"):
                    # keys: the polling window, or "1t" (one thread; the thread count is not switched
                    # between calls: joining and starting workers would be part of the time)
                    times: dict[object, list[float]] = {0: [], default: [], "1t": []}
                    for r in range(args.rounds):
                        for s in (0, default) if r % 2 == 0 else (default, 0):
                            core.set_pool_spin_ns(s)
                            call()  # after a change of setting: the workers settle into it
                            if kind == "cold":
                                time.sleep(args.gap_ms / 1e3)
                            t0 = time.perf_counter()
                            call()
                            times[s].append(time.perf_counter() - t0)
                    rdf.set_num_threads(1)
                    try:
                        for r in range(args.rounds):
                            if kind == "cold":
                                time.sleep(args.gap_ms / 1e3)
                            t0 = time.perf_counter()
                            call()
                            times["1t"].append(time.perf_counter() - t0)
                    finally:
                        rdf.set_num_threads(threads)
                    med = {k: statistics.median(v) * 1e6 for k, v in times.items()}
                    ratio = statistics.median(a / b for a, b in zip(times[0], times[default]))
                    print(f"{size:>5s} {what:18s} {kind:4s} {med['1t']:7.1f}us {med[0]:7.1f}us "
                          f"{med[default]:7.1f}us  {ratio:5.2f}  {med['1t'] / med[default]:5.2f}")
    finally:
        core.set_pool_spin_ns(default)


if __name__ == "__main__":
    main()
