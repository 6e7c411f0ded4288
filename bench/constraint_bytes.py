"""Bytes per element of prox_group_l1 / norm_constraint against the torch composition a user writes, and the
ceiling that puts on our speedup over it (BENCHMARKS.md, "constraints: the bytes behind the 3x target").

Over ResNet-50's conv filters (the bench's constraints section: 53 float32 weights, a group per filter, axis
(1, 2, 3)) it times, interleaved in one process (the machine is shared: medians of interleaved repeats, never
absolute times), on the same number of threads for torch and regdrop_fast:

  read pass      rdf.penalty(ws, l2=1)            reads w once                       4 B / value
  rmw pass       rdf.decay(ws, 1e-30)             reads w, writes it back (x 1.0)    8 B / value
  copy limit     limits.copy of 4 B / value       reads a source, writes a second    8 B / value (+4 B RFO)
  ours           prox_group_l1, norm_constraint   per filter: norm, then rescale     8 B / value if the
                                                  from cache                         filter stays cached
  torch norm     vector_norm(w, dim, keepdim)     reads w                            4 B / value
  torch mul_     w.mul_(factor)                   reads w, writes it                 8 B / value
  torch total    the bench's composition          norm pass + elementwise on the     12 B / value
                                                  (out, 1, 1, 1) factors + mul_ pass

The largest filter has 512 * 3 * 3 = 4,608 values (18 KiB), so a filter read for its norm is still in L1 when
it is rescaled: ours needs one pass over memory, the torch composition two. If both are memory-bound, our
speedup over torch is at most (t_read + t_rmw) / t_rmw, about 1.5 when a read pass costs half a read-write
pass; the 3x target would need torch to run at a third of the memory speed.

A max-norm constraint whose slices are all within the bound (the common case after a small step) is the
exception: ours reads 4 B / value and writes nothing, while torch.renorm and the composition still multiply
every slice by 1 (12 B / value): a ceiling of 3x by bytes, also timed here.

usage: PYTHONPATH=python python bench/constraint_bytes.py [--repeats 15] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import regdrop_fast as rdf
from regdrop_fast.bench import constraints, limits


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    rdf.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    shapes = constraints.conv_filters()
    rng = np.random.default_rng(0)
    ws = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
    n = sum(w.size for w in ws)
    tws = [torch.from_numpy(w) for w in ws]
    src, dst = np.full(4 * n, 0x5A, np.uint8), np.zeros(4 * n, np.uint8)
    tasks = limits.tasks_for(n, limits.PENALTY_TASK_ELEMS)
    t, axes = constraints.THRESHOLD, constraints.AXES
    norms = [torch.linalg.vector_norm(w, dim=axes, keepdim=True) for w in tws]
    ones = [torch.clamp(1 - t / m, min=0) for m in norms]  # exactly 1.0: mul_ leaves w unchanged

    def torch_prox() -> None:
        for w in tws:
            m = torch.linalg.vector_norm(w, dim=axes, keepdim=True)
            w.mul_(torch.clamp(1 - t / m, min=0))

    ops = {
        "read pass (rdf.penalty l2)": (lambda: rdf.penalty(ws, l2=1.0), 4),
        "rmw pass (rdf.decay x1.0)": (lambda: rdf.decay(ws, 1e-30), 8),
        "copy limit": (lambda: limits.copy(src, dst, tasks), 8),
        "ours prox_group_l1": (lambda: rdf.prox_group_l1(ws, t, axis=axes), 8),
        "ours norm_constraint": (lambda: [rdf.norm_constraint(w, min_value=constraints.MIN_VALUE,
                                                              rate=constraints.RATE, axis=axes) for w in ws], 8),
        "torch vector_norm alone": (lambda: [torch.linalg.vector_norm(w, dim=axes, keepdim=True) for w in tws], 4),
        "torch mul_ alone": (lambda: [w.mul_(f) for w, f in zip(tws, ones)], 8),
        "torch composition (bench)": (torch_prox, 12),
        # max-norm with every filter within the bound (the common case of a constraint applied after each
        # step): ours reads and decides, writing nothing; torch's renorm (its one op for it) and the composition
        # multiply every filter by 1.
        "ours max_norm, none over": (lambda: [rdf.max_norm(w, 1e30, axis=axes) for w in ws], 4),
        "torch renorm, none over": (lambda: [torch.renorm(w, 2, 0, 1e30, out=w) for w in tws], 12),
        "torch composition, none over": (lambda: [w.mul_(torch.clamp(1e30 / torch.linalg.vector_norm(
            w, dim=axes, keepdim=True), max=1.0)) for w in tws], 12),
    }
    times: dict[str, list[float]] = {k: [] for k in ops}
    for fn, _ in ops.values():
        fn()
    for _ in range(args.repeats):
        for name, (fn, _) in ops.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{n:,} float32 values, {args.threads} threads, {args.repeats} interleaved repeats, medians (and minima)")
    print(f"{'op':32s} {'ms':>8s} {'min ms':>8s} {'B/value':>8s} {'GB/s':>7s} {'spread':>7s}")
    for name, (_, per) in ops.items():
        v = times[name]
        spread = (max(v) - min(v)) / med[name]
        print(f"{name:32s} {med[name] * 1e3:8.2f} {min(v) * 1e3:8.2f} {per:8d} {per * n / med[name] / 1e9:7.2f} "
              f"{spread:7.0%}")
    r, m = med["read pass (rdf.penalty l2)"], med["rmw pass (rdf.decay x1.0)"]
    print(f"ceiling (t_read + t_rmw) / t_rmw = {(r + m) / m:.2f}")
    tn, tm = med["torch vector_norm alone"], med["torch mul_ alone"]
    print(f"torch's own passes: (norm + mul_) / mul_ = {(tn + tm) / tm:.2f}; "
          f"composition / (norm + mul_) = {med['torch composition (bench)'] / (tn + tm):.2f}")
    for ours in ("ours prox_group_l1", "ours norm_constraint"):
        print(f"{ours}: vs torch composition {med['torch composition (bench)'] / med[ours]:.2f}x "
              f"(minima {min(times['torch composition (bench)']) / min(times[ours]):.2f}x), "
              f"vs rmw pass {m / med[ours]:.2f}, vs copy limit {med['copy limit'] / med[ours]:.2f}")
    ours = "ours max_norm, none over"
    for theirs in ("torch renorm, none over", "torch composition, none over"):
        print(f"{ours}: vs {theirs} {med[theirs] / med[ours]:.2f}x (minima {min(times[theirs]) / min(times[ours]):.2f}x)")


    # The same passes on one filter bank that stays in L2 (64 x 512 x 3 x 3, 1.2 MB): what each costs without
    # memory, i.e. whether ours is memory-bound or limited by its own arithmetic.
    small = rng.standard_normal((64, 512, 3, 3), dtype=np.float32)
    in_cache = {"read pass": lambda: rdf.penalty(small, l2=1.0), "rmw pass": lambda: rdf.decay(small, 1e-30),
                "ours prox_group_l1": lambda: rdf.prox_group_l1(small, t, axis=axes)}
    best = {k: float("inf") for k in in_cache}
    for _ in range(20 * args.repeats):
        for name, fn in in_cache.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    print("in L2 (1.2 MB), minima: " + ", ".join(f"{k} {v * 1e9 / small.size:.3f} ns/value" for k, v in best.items()))


if __name__ == "__main__":
    main()
