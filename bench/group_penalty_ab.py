"""A/B of two builds of the native penalty_grad with a group_l1 term, in one process (BENCHMARKS.md, "issue 15:
penalty_grad(group_l1=)").

The shared 2-vCPU machine drifts by tens of percent between processes, so two builds are compared inside one
process: each build's _core module is loaded under its own name (each with its own thread pool) and the two
are timed interleaved, orders rotated, together with the read-modify-write limit of the bench's constraints
section (limits.rmw over the same bytes: read w, read g, write g). Before timing, both builds must give the
same value and the same gradient bits.

  memory  ResNet-50's 53 conv weights (23.45 M float32, a group per filter, axis (1, 2, 3)): the bench's case,
          without the Python layer (validation, which both builds share, is timed by `python -m timeit`)
  l2      one weight small enough that w and g stay in L2 (default 16 x 512 x 3 x 3): the loop's own cost,
          ns per value, 1 thread

usage: PYTHONPATH=python python bench/group_penalty_ab.py A_core.so B_core.so [--threads 2] [--repeats 21]
       [--l2 16x512x3x3] [--l1 0]
(copy a build's python/regdrop_fast/_core*.so aside before rebuilding to keep it as A)
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time

import numpy as np

from regdrop_fast import _args, _backend_cpu, _dtypes, _validate
from regdrop_fast.bench import constraints, limits


def load(path: str, tag: str):
    spec = importlib.util.spec_from_file_location(f"{tag}._core", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def native_call(core, ws, gs, l1: float):
    """The arguments _backend_cpu.penalty_grad hands the native module, bound to `core`."""
    _, call = _validate.penalty(ws, gs, l1, 0.0, False, constraints.GROUP_L1, constraints.AXES)
    params, grads, views = _backend_cpu._group_arrays(call)
    c1, c2 = _args.per_array(call.l1, len(ws)), _args.per_array(call.l2, len(ws))
    group = np.asarray(call.group, np.float64)
    return lambda: core.penalty_grad(params, grads, c1, c2, _dtypes.TYPE_NUMS, group, views)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--l2", default=None, help="one weight's shape, e.g. 16x512x3x3: the L2-resident mode")
    ap.add_argument("--l1", type=float, default=0.0, help="an l1 term as well (the |w| sums and sign(w))")
    args = ap.parse_args()
    cores = {"A": load(args.a, "rdf_ab_a"), "B": load(args.b, "rdf_ab_b")}
    threads = 1 if args.l2 else args.threads
    for core in cores.values():
        core.set_num_threads(threads)
    rng = np.random.default_rng(0)
    shapes = [tuple(int(d) for d in args.l2.split("x"))] if args.l2 else list(constraints.conv_filters())
    ws = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
    gs = [np.zeros_like(w) for w in ws]
    n = sum(w.size for w in ws)
    ops = {k: native_call(core, ws, gs, args.l1) for k, core in cores.items()}

    start = [g.copy() for g in gs]
    results = []
    for op in ops.values():
        for g, g0 in zip(gs, start):
            g[...] = g0
        results.append((op(), [g.copy() for g in gs]))
    (va, ga), (vb, gb) = results
    if va != vb or not all(np.array_equal(x.view(np.uint32), y.view(np.uint32)) for x, y in zip(ga, gb)):
        raise SystemExit(f"the builds disagree: value {va!r} against {vb!r}, or the gradients' bits")

    inner = 50 if args.l2 else 1
    if not args.l2:
        src, dst = np.full(4 * n, 0x5A, np.uint8), np.zeros(4 * n, np.uint8)
        tasks = limits.tasks_for(n, limits.PENALTY_TASK_ELEMS)
        ops = {"rmw limit": lambda: limits.rmw(src, dst, tasks), **ops}
    times: dict[str, list[float]] = {k: [] for k in ops}
    for op in ops.values():
        op()
    keys = list(ops)
    for r in range(args.repeats):
        for k in keys[r % len(keys):] + keys[:r % len(keys)]:
            t0 = time.perf_counter()
            for _ in range(inner):
                ops[k]()
            times[k].append((time.perf_counter() - t0) / inner)
    med = {k: statistics.median(v) for k, v in times.items()}
    low = {k: min(v) for k, v in times.items()}
    with open("/proc/loadavg") as f:
        load_avg = f.read().split()[0]
    print(f"{'l2 ' + args.l2 if args.l2 else 'ResNet-50 filters'}, {threads} thread(s), {args.repeats} repeats, "
          f"load average {load_avg}")
    for k in ops:
        line = f"  {k:9s} median {med[k] * 1e3:8.3f} ms  min {low[k] * 1e3:8.3f} ms"
        if args.l2:
            line += f"  ({med[k] / n * 1e9:.4f} ns/value median)"
        elif k != "rmw limit":
            line += f"  x limit {med['rmw limit'] / med[k]:.2f} (min {low['rmw limit'] / low[k]:.2f})"
        print(line)
    print(f"  B / A: median {med['B'] / med['A']:.3f}, min {low['B'] / low['A']:.3f}")


if __name__ == "__main__":
    main()
