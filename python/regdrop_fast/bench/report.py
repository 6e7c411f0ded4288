"""Turn timings into result rows, print them as tables, and write results.json."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import epilogue
from .cases import Case, Impl, size_label
from .timing import NOISY_SPREAD, Timing

OURS = "regdrop_fast"
COPY = "copy"
NOISY_MARK = "~"
NOISY_LEGEND = (f"{NOISY_MARK} after a time: noisy row, the repeats' spread (slowest - fastest) / median exceeds "
                f"{NOISY_SPREAD:.0%}; its ratios are uncertain (close other work and rerun, or raise --repeats)")


def make_rows(case: Case, impls: Sequence[Impl], timings: Mapping[str, Timing]) -> list[dict[str, Any]]:
    """One row per implementation: seconds per call (median and spread), bytes, GB/s, fraction of the
    copy row's GB/s, and for regdrop_fast rows the speedup over every peer row of the case."""
    copy_gbps: float | None = None
    for impl in impls:
        if impl.framework == COPY:
            copy_gbps = impl.bytes / timings[impl.name].median / 1e9
    rows: list[dict[str, Any]] = []
    for impl in impls:
        t = timings[impl.name]
        gbps = impl.bytes / t.median / 1e9
        rows.append({
            "section": case.section,
            "op": case.op,
            "dtype": case.dtype,
            "size": case.size,
            "impl": impl.name,
            "framework": impl.framework,
            "seconds": t.median,
            "seconds_q1": t.q1,
            "seconds_q3": t.q3,
            "seconds_min": t.min,
            "seconds_max": t.max,
            "spread": None if math.isnan(t.spread) else t.spread,  # (max - min) / median of the repeats
            "noisy": bool(t.spread > NOISY_SPREAD),
            "calls_per_sample": t.calls,
            "repeats": t.repeats,
            "bytes": impl.bytes,
            "gbps": gbps,
            "copy_fraction": gbps / copy_gbps if copy_gbps else None,
            **case.extra,
        })
    for row in rows:
        if row["framework"] == OURS:
            row["speedup"] = {
                peer["framework"]: peer["seconds"] / row["seconds"]
                for peer in rows
                if peer["framework"] not in (OURS, COPY)
            }
    return rows


def format_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _time(row: dict) -> str:
    """The median time, marked when the row is noisy."""
    return format_time(row["seconds"]) + (NOISY_MARK if row.get("noisy") else " ")


def _us(row: dict) -> str:
    return f"{row['seconds'] * 1e6:.2f} us" + (NOISY_MARK if row.get("noisy") else " ")


def _table(headers: list[str], body: list[list[str]], left: int) -> list[str]:
    """Columns [0, left) left-aligned, the rest right-aligned."""
    widths = [max(len(r[i]) for r in [headers] + body) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return [line(headers), "  ".join("-" * w for w in widths)] + [line(r) for r in body]


def _peers(rows: Sequence[dict]) -> list[str]:
    seen: list[str] = []
    for row in rows:
        for name in row.get("speedup", {}):
            if name not in seen:
                seen.append(name)
    return seen


def _speedups(row: dict, peers: list[str]) -> list[str]:
    sp = row.get("speedup")
    if sp is None:
        return [""] * len(peers)
    return [f"{sp[p]:.2f}x" if p in sp else "" for p in peers]


def _group(rows: Sequence[dict], section: str) -> dict[tuple[str, str], list[dict]]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        if row["section"] == section:
            groups.setdefault((row["op"], row["dtype"]), []).append(row)
    return groups


def format_tables(rows: Sequence[dict], p: float) -> str:
    """Every section as a plain-text table (the same text goes to stdout and to table.txt)."""
    out: list[str] = []
    for (op, dtype), group in _group(rows, "dropout").items():
        peers = _peers(group)
        out.append(f"dropout {op}, {dtype}, p={p}  (GB/s: bytes read + written incl. packed mask / time)")
        body = []
        last_size = None
        for row in group:
            size = size_label(row["size"]) if row["size"] != last_size else ""
            last_size = row["size"]
            body.append([size, row["impl"], _time(row), f"{row['gbps']:.2f}",
                         f"{row['copy_fraction']:.2f}"] + _speedups(row, peers))
        out += _table(["size", "implementation", "time", "GB/s", "x copy"] + [f"vs {p_}" for p_ in peers],
                      body, 2)
        out.append("")
    for (op, _), group in _group(rows, "penalty").items():
        peers = _peers(group)
        first = group[0]
        out.append(f"penalty_grad over list {op} ({first['size']:,} float32 values; "
                   f"GB/s: read w + read g + write g)")
        body = [[row["impl"], _time(row), f"{row['seconds'] / row['arrays'] * 1e6:.3f}",
                 f"{row['gbps']:.2f}", f"{row['copy_fraction']:.2f}"] + _speedups(row, peers) for row in group]
        out += _table(["implementation", "time", "us/array", "GB/s", "x copy"] + [f"vs {p_}" for p_ in peers],
                      body, 1)
        out.append("")
    for (op, _), group in _group(rows, "latency").items():
        peers = _peers(group)
        out.append(f"latency: {op}, float32, end to end from Python")
        body = [[row["impl"], _us(row)] + _speedups(row, peers) for row in group]
        out += _table(["implementation", "time"] + [f"vs {p_}" for p_ in peers], body, 1)
        out.append("")
    for (op, dtype), group in _group(rows, "layer").items():
        peers = _peers(group)
        out.append(f"{op}, {dtype}, n={size_label(group[0]['size'])}, p={p}  (regdrop_fast.torch.Dropout vs "
                   "torch.nn.Dropout in training: forward, then backward)")
        body = [[row["impl"], _time(row), f"{row['gbps']:.2f}"] + _speedups(row, peers)
                for row in group]
        out += _table(["implementation", "time", "GB/s"] + [f"vs {p_}" for p_ in peers], body, 1)
        out.append("")
    for (op, dtype), group in _group(rows, "epilogue").items():
        peers = _peers(group)
        shape = "x".join(str(d) for d in group[0].get("shape", [group[0]["size"]]))
        out.append(f"epilogue residual + dropout(x + bias) {op}, {dtype}, {shape}, p={p}  (GB/s: bytes the op "
                   "must move, incl. packed mask / time)")
        body = [[row["impl"], _time(row), f"{row['gbps']:.2f}", f"{row['copy_fraction']:.2f}"] + _speedups(row, peers)
                for row in group]
        out += _table(["implementation", "time", "GB/s", "x copy"] + [f"vs {p_}" for p_ in peers], body, 1)
        out += epilogue.target_lines(group)
        out.append("")
    if any(row.get("noisy") for row in rows):
        out.append(NOISY_LEGEND)
        out.append("")
    return "\n".join(out)


def write_json(path: Path, meta: dict, rows: Sequence[dict]) -> None:
    path.write_text(json.dumps({"meta": meta, "rows": list(rows)}, indent=1, sort_keys=False) + "\n")
