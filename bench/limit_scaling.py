"""Scaling of the CPU dropout kernels against their limits over SIMD levels and thread counts (issue 18).

    PYTHONPATH=python python bench/limit_scaling.py [--sizes 2^16,2^20,2^24] [--repeats 9] [--json FILE]

For each case (dropout forward/backward, float32/bfloat16, each size) the case's implementations from the
`regdrop-fast bench` harness (regdrop_fast.bench.cases: store="bits" and "seed", the same-bytes copy limits
and the mask-only ceiling) run under every SIMD level this CPU has and on 1 and 2 threads, all in one
process: within each repeat every (level, threads) configuration runs every implementation, in orders
rotated from repeat to repeat, so drifts of a shared machine fall on all of them alike. Each figure is the
median over the repeats; "spread" is (slowest - fastest) / median. x limit and the binding ceiling are
computed exactly as the bench table does (regdrop_fast.bench.report.make_rows).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys

import regdrop_fast as rdf
from regdrop_fast._info import SIMD_LEVELS as LEVELS
from regdrop_fast.bench import cases, report
from regdrop_fast.bench.timing import Timing, _sample, calibrate


def _configs(threads: list[int]) -> list[tuple[str, int]]:
    best = rdf.backend_info()["simd_best"]
    levels = LEVELS[: LEVELS.index(best) + 1]
    return [(level, t) for level in levels for t in threads]


def run_case(case: cases.Case, configs: list[tuple[str, int]], repeats: int, min_sample_s: float) -> list[dict]:
    impls = [i for i in case.build() if i.framework != "copy"]  # np.copyto is one thread on every config
    calls: dict[tuple, int] = {}
    samples: dict[tuple, list[float]] = {}
    for cfg in configs:
        rdf.set_simd(cfg[0])
        rdf.set_num_threads(cfg[1])
        for impl in impls:
            impl.fn()
            calls[cfg + (impl.name,)] = calibrate(impl.fn, min_sample_s)
            samples[cfg + (impl.name,)] = []
    gc.disable()
    try:
        for r in range(repeats):
            order = configs[r % len(configs):] + configs[: r % len(configs)]
            for cfg in order:
                rdf.set_simd(cfg[0])
                rdf.set_num_threads(cfg[1])
                k = r % len(impls)
                for impl in impls[k:] + impls[:k]:
                    key = cfg + (impl.name,)
                    samples[key].append(_sample(impl.fn, calls[key]))
            gc.collect()
    finally:
        gc.enable()
    rows = []
    for cfg in configs:
        timings = {}
        for impl in impls:
            s = sorted(samples[cfg + (impl.name,)])
            med = statistics.median(s)
            timings[impl.name] = Timing(median=med, q1=s[len(s) // 4], q3=s[(3 * len(s)) // 4], min=s[0],
                                        calls=calls[cfg + (impl.name,)], repeats=repeats, max=s[-1])
        for row in report.make_rows(case, impls, timings):
            row.update(simd=cfg[0], threads=cfg[1])
            if row.get("ceiling") == "rng":
                row["words_per_s_per_thread"] = row["words_per_s"] / cfg[1]
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="2^16,2^20,2^24")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--min-sample-s", type=float, default=0.01)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    sizes = [cases.parse_size(s) for s in args.sizes.split(",")]
    configs = _configs([int(t) for t in args.threads.split(",")])
    before = (rdf.backend_info()["simd"], rdf.get_num_threads())
    all_rows: list[dict] = []
    try:
        for n in sizes:
            for dtype in args.dtypes.split(","):
                for op in ("forward", "backward"):
                    case = cases.dropout_case(op, dtype, n, [], [])
                    print(f"{case.label} ...", file=sys.stderr, flush=True)
                    all_rows += run_case(case, configs, args.repeats, args.min_sample_s)
    finally:
        rdf.set_simd(before[0])
        rdf.set_num_threads(before[1])
    print("| case | simd | threads | copy limit (bits bytes) | mask only: G words/s per thread | bits: time, x limit, bound "
          "| seed: time, x limit, bound | spread max |")
    print("|---|---|---|---|---|---|---|---|")
    key = lambda r: (r["size"], r["dtype"], r["op"], r["simd"], r["threads"])  # noqa: E731
    groups: dict[tuple, dict[str, dict]] = {}
    for r in all_rows:
        groups.setdefault(key(r), {})[r["impl"]] = r
    for (n, dtype, op, simd, threads), g in groups.items():
        bits, seed = g["regdrop_fast bits"], g["regdrop_fast seed"]
        lim, rng = g["limit: copy (bits bytes)"], g["limit: mask only (RNG)"]

        def cell(r: dict) -> str:
            b = "mem" if r["bound"] == "memory" else "rng"
            margin = f" {r['bound_margin']:.2f}x" if r["bound_margin"] else ""
            return f"{report.format_time(r['seconds'])}, {r['limit_fraction']:.2f}, {b}{margin}"

        spread = max(r["spread"] for r in g.values())
        print(f"| {op} {dtype} {cases.size_label(n)} | {simd} | {threads} | {report.format_time(lim['seconds'])} "
              f"({lim['gbps']:.1f} GB/s) | {rng['words_per_s_per_thread'] / 1e9:.2f} | {cell(bits)} | {cell(seed)} "
              f"| {spread:.0%} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"argv": sys.argv, "rows": all_rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
