"""The benchmark figure: GB/s against size per implementation, with the copy bandwidth as a line.

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


def _dropout_panel(ax: Any, rows: Sequence[dict], title: str) -> None:
    impls: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        impls.setdefault(row["impl"], []).append((row["size"], row["gbps"]))
    for name, points in impls.items():
        points.sort()
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        if name.startswith("np.copyto"):
            ax.plot(xs, ys, "k--", linewidth=1.5, label="copy bandwidth (np.copyto)")
        else:
            ax.plot(xs, ys, marker="o", markersize=3, label=name)
    sizes = sorted({r["size"] for r in rows})
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([size_label(s) for s in sizes], fontsize=7)
    ax.set_xlabel("elements")
    ax.set_ylabel("GB/s (read + written)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6)


def _penalty_panel(ax: Any, rows: Sequence[dict]) -> None:
    lists = list(dict.fromkeys(r["op"] for r in rows))
    impls = [name for name in dict.fromkeys(r["impl"] for r in rows) if not name.startswith("np.copyto")]
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
            if r["op"] == key and r["impl"].startswith("np.copyto"):
                ax.hlines(r["gbps"], i - 0.45, i + 0.45, colors="k", linestyles="--",
                          label="copy bandwidth (np.copyto)" if i == 0 else None)
    ax.set_xticks(range(len(lists)))
    ax.set_xticklabels(lists, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("GB/s (read w, g; write g)")
    ax.set_title("penalty_grad over parameter lists, float32", fontsize=9)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2)  # below: bars fill the top


def _latency_panel(ax: Any, rows: Sequence[dict]) -> None:
    names = [r["impl"] for r in rows]
    ax.barh(range(len(rows)), [r["seconds"] * 1e6 for r in rows],
            color=["C0" if r["framework"] == "regdrop_fast" else "C1" for r in rows])
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("microseconds per call")
    ax.set_title(f"{rows[0]['op']}, end to end from Python", fontsize=9)
    ax.grid(True, axis="x", which="both", alpha=0.3)


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
    fig = Figure(figsize=(6.5 * ncols, 4.2 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    for k, draw in enumerate(panels):
        draw(fig.add_subplot(nrows, ncols, k + 1))
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
