"""The benchmark figure: GB/s against size per implementation, with the limits as lines: the same bytes
copied on the same threads (dashed), and the mask-only ceiling expressed as the GB/s a store="bits" call
would reach if drawing the words were all it did (dotted).

matplotlib is optional (the `bench` extra); without it no figure is drawn and the caller says so. The
object-oriented Agg canvas is used directly, so no global backend is switched and no display is needed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from .cases import size_label


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


# Limit rows drawn as lines: impl name -> (legend label, line style).
LIMIT_LINES = {
    "limit: copy (bits bytes)": ("limit: same bytes copied, same threads", "--"),
    "limit: mask only (RNG)": ("limit: mask only (RNG), as GB/s of a bits row", ":"),
}


def _dropout_panel(ax: Any, rows: Sequence[dict], title: str) -> None:
    impls: dict[str, list[tuple[int, float]]] = {}
    bits_bytes = {r["size"]: r["bytes"] for r in rows if r["impl"] == "regdrop_fast bits"}
    for row in rows:
        gbps = row["gbps"]
        if row.get("ceiling") == "rng":  # the rate a bits row would have at the mask-only time
            gbps = bits_bytes.get(row["size"], row["bytes"]) / row["seconds"] / 1e9
        impls.setdefault(row["impl"], []).append((row["size"], gbps))
    sizes = sorted({r["size"] for r in rows})
    single = len(sizes) == 1
    for name, points in impls.items():
        points.sort()
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        if name in LIMIT_LINES:
            label, style = LIMIT_LINES[name]
            if single:  # a dashed line needs two points: a short horizontal segment and a marker instead
                ax.hlines(ys[0], xs[0] / 1.6, xs[0] * 1.6, colors="k", linestyles=style, linewidth=1.5)
                ax.plot(xs, ys, "k_", markersize=14, markeredgewidth=2, label=label)
            else:
                ax.plot(xs, ys, "k" + style, linewidth=1.5, label=label)
        elif not name.startswith("limit:"):
            ax.plot(xs, ys, marker="o", markersize=4 if not single else 6, label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    if single:
        ax.set_xlim(sizes[0] / 2, sizes[0] * 2)
    ax.set_xticks(sizes)
    ax.set_xticklabels([size_label(s) for s in sizes], fontsize=7)
    ax.xaxis.set_minor_locator(_null_locator())
    ax.set_xlabel("elements")
    _plain_log_ticks(ax.yaxis)
    ax.set_ylabel("GB/s (read + written)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    # Outside the axes, to the right: inside, it covered the copy line in the bfloat16 panels.
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _null_locator() -> Any:
    from matplotlib.ticker import NullLocator

    return NullLocator()


def _plain_log_ticks(axis: Any) -> None:
    """Log-axis ticks at 1, 2, 5 x 10^k written as plain numbers ("20", "0.5"), not "2 x 10^1"."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _penalty_panel(ax: Any, rows: Sequence[dict]) -> None:
    lists = list(dict.fromkeys(r["op"] for r in rows))
    impls = [name for name in dict.fromkeys(r["impl"] for r in rows) if not name.startswith("limit:")]
    width = 0.8 / max(len(impls), 1)
    for j, name in enumerate(impls):
        xs, ys = [], []
        for i, key in enumerate(lists):
            for r in rows:
                if r["op"] == key and r["impl"] == name:
                    xs.append(i - 0.4 + width * (j + 0.5))
                    ys.append(r["gbps"])
        ax.bar(xs, ys, width, label=name)
    for i, key in enumerate(lists):
        for r in rows:
            if r["op"] == key and r["impl"].startswith("limit:"):
                ax.hlines(r["gbps"], i - 0.45, i + 0.45, colors="k", linestyles="--",
                          label="limit: same bytes updated in place, same threads" if i == 0 else None)
    ax.set_xticks(range(len(lists)))
    ax.set_xticklabels(lists, fontsize=7)
    ax.set_yscale("log")
    _plain_log_ticks(ax.yaxis)
    ax.set_ylabel("GB/s (read w, g; write g)")
    ax.set_title("penalty_grad over parameter lists, float32", fontsize=9)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2)  # below: bars fill the top


def _latency_panel(ax: Any, rows: Sequence[dict]) -> None:
    """Horizontal bars on a linear axis from 0, so bar lengths are proportional to the times; each bar is
    labelled with its time and, for the peers, the ratio to the fastest regdrop_fast row."""
    names = [r["impl"] for r in rows]
    micros = [r["seconds"] * 1e6 for r in rows]
    ours = [us for us, r in zip(micros, rows) if r["framework"] == "regdrop_fast"]
    best = min(ours) if ours else None
    ax.barh(range(len(rows)), micros,
            color=["C0" if r["framework"] == "regdrop_fast" else "C1" for r in rows])
    for i, us in enumerate(micros):
        text = f" {us:.3g} us"
        if best and rows[i]["framework"] != "regdrop_fast":
            text += f" ({us / best:.1f}x)"
        ax.text(us, i, text, va="center", ha="left", fontsize=7)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, max(micros) * 1.3)  # linear from 0, room for the labels
    ax.set_xlabel("microseconds per call (linear axis from 0)")
    ax.set_title(f"{rows[0]['op']}, end to end from Python", fontsize=9)
    ax.grid(True, axis="x", alpha=0.3)


def plot(rows: Sequence[dict], path: Path, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels: list[Callable[[Any], None]] = []  # each draws one panel on the axes it is given
    for op in ("forward", "backward"):
        for dtype in ("float32", "bfloat16"):
            sel = [r for r in rows if r["section"] == "dropout" and r["op"] == op and r["dtype"] == dtype]
            if sel:
                panels.append(partial(_dropout_panel, rows=sel, title=f"dropout {op}, {dtype}"))
    penalty = [r for r in rows if r["section"] == "penalty"]
    if penalty:
        panels.append(partial(_penalty_panel, rows=penalty))
    latency = [r for r in rows if r["section"] == "latency"]
    if latency:
        panels.append(partial(_latency_panel, rows=latency))
    if not panels:
        return
    ncols = 2 if len(panels) > 1 else 1
    nrows = (len(panels) + ncols - 1) // ncols
    fig = Figure(figsize=(8.0 * ncols, 4.2 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    for k, draw in enumerate(panels):
        draw(fig.add_subplot(nrows, ncols, k + 1))
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
