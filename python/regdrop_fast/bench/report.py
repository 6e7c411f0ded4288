"""Turn timings into result rows, print them as tables, and write results.json."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import epilogue, variants
from .cases import GLOBAL_TARGET, LAYOUT_TARGET, Case, Impl, size_label
from .timing import NOISY_SPREAD, Timing

OURS = "regdrop_fast"
COPY = "copy"
LIMIT = "limit"
NOT_PEERS = (OURS, COPY, LIMIT)
LIMIT_LEGEND = ("x limit: the limit's time / the row's time (1.00 = at the limit). The limit is the same bytes "
                "copied (dropout, epilogue, constraints, variants) or updated in place (penalty_grad) on the same threads "
                "and tasks, or for a "
                "row that draws random words the mask-only time if that is slower; bound: the ceiling that "
                "sets it (mem, rng) and its time over the other's. The mask-only row's GB/s column gives "
                "G words/s.")
NOISY_MARK = "~"
NOISY_LEGEND = (f"{NOISY_MARK} after a time: noisy row, the repeats' spread (slowest - fastest) / median exceeds "
                f"{NOISY_SPREAD:.0%}; its ratios are uncertain (close other work and rerun, or raise --repeats)")


def row_limit(impl: Impl, limit_impls: Sequence[Impl], timings: Mapping[str, Timing]) -> dict[str, Any]:
    """The limit of one row: the memory ceiling (the case's memory limit whose bytes are nearest the row's,
    its time scaled to the row's bytes) and, for a row that draws the stream's words, the mask-only time;
    the slower of the two is the limit. Empty when the case has no limits (latency, layer, layout) or the row is
    a limit itself."""
    memory = [m for m in limit_impls if m.ceiling == "memory"]
    if impl.framework == LIMIT or not memory:
        return {}
    nearest = min(memory, key=lambda m: abs(m.bytes - impl.bytes))
    mem_s = timings[nearest.name].median * impl.bytes / nearest.bytes
    rng = [m for m in limit_impls if m.ceiling == "rng"]
    rng_s = timings[rng[0].name].median if impl.draws and rng else None
    if rng_s is None:
        return {"limit_seconds": mem_s, "bound": "memory", "bound_margin": None, "memory_seconds": mem_s,
                "rng_seconds": None}
    bound = "memory" if mem_s >= rng_s else "rng"
    return {"limit_seconds": max(mem_s, rng_s), "bound": bound, "bound_margin": max(mem_s, rng_s) / min(mem_s, rng_s),
            "memory_seconds": mem_s, "rng_seconds": rng_s}


def make_rows(case: Case, impls: Sequence[Impl], timings: Mapping[str, Timing]) -> list[dict[str, Any]]:
    """One row per implementation: seconds per call (median and spread), bytes, GB/s, the row's limit and
    its fraction of it (x limit: limit time / row time), which ceiling binds, and for regdrop_fast rows the
    speedup over every peer row of the case."""
    limit_impls = [i for i in impls if i.framework == LIMIT]
    rows: list[dict[str, Any]] = []
    for impl in impls:
        t = timings[impl.name]
        gbps = impl.bytes / t.median / 1e9
        limit = row_limit(impl, limit_impls, timings)
        ceiling: dict[str, Any] = {}
        if impl.framework == LIMIT:
            ceiling = {"ceiling": impl.ceiling}
            if impl.ceiling == "rng":
                ceiling["words_per_s"] = impl.elements / t.median
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
            "limit_fraction": limit["limit_seconds"] / t.median if limit else None,
            **limit,
            **ceiling,
            **case.extra,
        })
    for row in rows:
        if row["framework"] == OURS:
            row["speedup"] = {
                peer["framework"]: peer["seconds"] / row["seconds"]
                for peer in rows
                if peer["framework"] not in NOT_PEERS
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


def _x_limit(row: dict) -> str:
    return "" if row.get("limit_fraction") is None else f"{row['limit_fraction']:.2f}"


def _bound(row: dict) -> str:
    """"mem", or "mem 1.52x" / "rng 1.30x" (the binding ceiling's time over the other's) for drawing rows."""
    bound = row.get("bound")
    if bound is None:
        return {"memory": "(mem)", "rng": "(rng)"}.get(row.get("ceiling", ""), "")
    short = {"memory": "mem", "rng": "rng"}[bound]
    return short if row.get("bound_margin") is None else f"{short} {row['bound_margin']:.2f}x"


def _gbps(row: dict) -> str:
    if row.get("ceiling") == "rng":
        return f"{row['words_per_s'] / 1e9:.2f} Gw/s"
    return f"{row['gbps']:.2f}"


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
            body.append([size, row["impl"], _time(row), _gbps(row), _x_limit(row), _bound(row)]
                        + _speedups(row, peers))
        out += _table(["size", "implementation", "time", "GB/s", "x limit", "bound"]
                      + [f"vs {p_}" for p_ in peers], body, 2)
        out.append("")
    for (op, _), group in _group(rows, "penalty").items():
        peers = _peers(group)
        first = group[0]
        out.append(f"penalty_grad over list {op} ({first['size']:,} float32 values; "
                   f"GB/s: read w + read g + write g)")
        body = [[row["impl"], _time(row), f"{row['seconds'] / row['arrays'] * 1e6:.3f}",
                 _gbps(row), _x_limit(row), _bound(row)] + _speedups(row, peers) for row in group]
        out += _table(["implementation", "time", "us/array", "GB/s", "x limit", "bound"]
                      + [f"vs {p_}" for p_ in peers], body, 1)
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
    for (op, _), group in _group(rows, "constraints").items():
        peers = _peers(group)
        groups = "element-wise" if op == "non_neg" else "a group per filter"
        moved = "read w, read g + write g" if op == "penalty_group_l1" else "read w + write w"
        out.append(f"{op} over ResNet-50's conv filters ({group[0]['size']:,} float32 values, {groups}; "
                   f"GB/s: {moved})")
        body = [[row["impl"], _time(row), _gbps(row), _x_limit(row), _bound(row)] + _speedups(row, peers)
                for row in group]
        out += _table(["implementation", "time", "GB/s", "x limit", "bound"] + [f"vs {p_}" for p_ in peers],
                      body, 1)
        out.append("")
    for (op, dtype), group in _group(rows, "epilogue").items():
        peers = _peers(group)
        shape = "x".join(str(d) for d in group[0].get("shape", [group[0]["size"]]))
        out.append(f"epilogue residual + dropout(x + bias) {op}, {dtype}, {shape}, p={p}  (GB/s: bytes the op "
                   "must move, incl. packed mask / time)")
        body = [[row["impl"], _time(row), _gbps(row), _x_limit(row), _bound(row)] + _speedups(row, peers)
                for row in group]
        out += _table(["implementation", "time", "GB/s", "x limit", "bound"] + [f"vs {p_}" for p_ in peers],
                      body, 1)
        out += epilogue.target_lines(group)
        out.append("")
    out += variants.format_section(list(rows), p, _table,
                                   lambda row: [_time(row), _gbps(row), _x_limit(row), _bound(row)], _peers, _speedups)
    for (op, dtype), group in _group(rows, "layout").items():
        out.append(f"{op} on a channels_last array vs its C-contiguous twin, {dtype}, "
                   f"n={size_label(group[0]['size'])}, p={p}  (speed ratio = twin time / channels_last time; "
                   f"target >= {LAYOUT_TARGET})")
        body = [[row["impl"], _time(row), f"{row['gbps']:.2f}",
                 f"{row['speedup']['contiguous']:.2f}" if "speedup" in row else ""] for row in group]
        out += _table(["implementation", "time", "GB/s", "speed ratio"], body, 1)
        out.append("")
    for (op, dtype), group in _group(rows, "global").items():
        rows_, cols = group[0]["shape"]
        out.append(f"{op} of a Shard(1) block (local {rows_}x{cols} at column {cols} of {rows_}x{2 * cols}) vs a "
                   f"contiguous call of the same size, {dtype}, p={p}  (speed ratio = contiguous time / block time; "
                   f"target >= {GLOBAL_TARGET})")
        body = [[row["impl"], _time(row), f"{row['gbps']:.2f}",
                 f"{row['speedup']['contiguous']:.2f}" if "speedup" in row else ""] for row in group]
        out += _table(["implementation", "time", "GB/s", "speed ratio"], body, 1)
        ours = next((r for r in group if "speedup" in r), None)
        if ours is not None:
            ratio = ours["speedup"]["contiguous"]
            verdict = "met" if ratio >= GLOBAL_TARGET else "NOT met"
            out.append(f"target: speed ratio {ratio:.2f} (>= {GLOBAL_TARGET:g}: {verdict})")
        out.append("")
    legends = [LIMIT_LEGEND] if any(row.get("limit_fraction") is not None for row in rows) else []
    if any(row.get("noisy") for row in rows):
        legends.append(NOISY_LEGEND)
    if legends:
        out += legends + [""]
    return "\n".join(out)


def write_json(path: Path, meta: dict, rows: Sequence[dict]) -> None:
    path.write_text(json.dumps({"meta": meta, "rows": list(rows)}, indent=1, sort_keys=False) + "\n")
