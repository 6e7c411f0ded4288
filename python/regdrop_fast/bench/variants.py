"""The dropout variants (``regdrop-fast bench --cases variants``): channel dropout (Dropout2d), DropPath and
alpha dropout, forward+backward, next to their limits and to the torch equivalents.

Each case has the shape of its use at the bench's largest size n: Dropout2d on NCHW (64 channels of 64 x 64
maps per sample at 2^24 elements: one decision per map), DropPath on (samples, tokens, features) rows of
4096 elements (one decision per sample), alpha dropout element-wise on the same data. Rows:

- regdrop_fast (the NumPy API, store="bits" and store="seed"): the forward with a preallocated out, then the
  backward from its Mask;
- torch (when compared): ``F.dropout2d`` / torchvision's ``stochastic_depth(x, p, "row")`` written as torch
  ops (torchvision itself is not a dependency: ``x * bernoulli(1 - p) / (1 - p)`` over a (N, 1, ..., 1) noise
  tensor, its formula) / ``F.alpha_dropout``, forward then autograd backward, on CPU tensors sharing the
  arrays' memory.

Bytes, counted once per case as what forward+backward must move: x read, y written, the kept mask written
and read again, grad read, dx written (4 n items + 2 x mask bytes; store="seed" rows move no mask). The
limits (limits.py): a copy of the same bytes on the kernels' threads and task split, and the mask-only time of
the case's decisions (the stream's ceiling). The "mask kept" column is what each implementation keeps between
forward and backward: the Mask's bits (none with store="seed": 16 bytes of seed and offset), and for torch the
bytes of the tensors autograd saves besides x itself (measured with saved-tensor hooks).

Gaussian dropout (gaussian_cases) has no mask: its forward and its forward+backward (the backward regenerates
the noise) run at n float32 elements against ``x * (1 + std * randn)`` in torch eager (``randn_like``;
autograd for the backward) and NumPy (``default_rng().standard_normal``); bytes 2 n items per pass, the
mask-only ceiling of its n stream words (the normal transform is arithmetic on top of it, so the row can sit
below that ceiling when the transform binds).

Other variant cases join by appending a builder to BUILDERS: a function (op label, dtype name, n, peer names,
notes) -> Case, and printing in the same table (report.py groups the section by op and dtype).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

import regdrop_fast as rdf

from . import limits
from .cases import DTYPES, P, SEED, Case, Impl, _copy_impl, _random, copy_limit_impl, mask_limit_impl

SECTION = "variants"
# The CPU targets at 2^24 float32, for the store="bits" row: (label, "limit" or a peer, at least).
TARGETS = (("x limit", "limit", 0.8), ("vs torch", "torch", 10.0))


def target_lines(group: list[dict]) -> list[str]:
    """One line with each target the rows of one case measure: the ratio, the wanted minimum, met or not (the
    store="bits" row; Gaussian dropout's only row)."""
    ours = next((r for r in group if r["framework"] == "regdrop_fast" and r["impl"].endswith("bits")), None)
    if ours is None:
        ours = next((r for r in group if r["framework"] == "regdrop_fast"), None)
    if ours is None:
        return []
    parts = []
    for label, against, at_least in TARGETS:
        ratio = ours.get("limit_fraction") if against == "limit" else ours.get("speedup", {}).get(against)
        if ratio is not None:
            parts.append(f"{label} {ratio:.2f} (>= {at_least:g}: {'met' if ratio >= at_least else 'NOT met'})")
    which = "targets (bits row): " if ours["impl"].endswith("bits") else "targets: "
    return [which + "; ".join(parts)] if parts else []


def nchw(n: int) -> tuple[int, int, int, int]:
    """Dropout2d's shape at n elements: 64 x 64 maps, 64 channels, n / 2^18 samples (smaller n: fewer)."""
    hw = 64 if n >= 1 << 18 else 8
    c = 64 if n >= 1 << 12 else 4
    return max(1, n // (c * hw * hw)), c, hw, hw


def rows_of(n: int) -> tuple[int, int, int]:
    """DropPath's shape: samples of 16 tokens x 256 features."""
    return max(1, n // 4096), 16, 256


def variant_bytes(n: int, itemsize: int, decisions: int, store: str = "bits") -> int:
    """What forward+backward must move (module docstring)."""
    mask = (decisions + 7) // 8 if store == "bits" else 0
    return 4 * n * itemsize + 2 * mask


def _saved_bytes(torch: Any, fn: Callable[[Any], Any], x: Any) -> int:
    """Bytes of the tensors autograd saves for fn(x)'s backward, x's own storage left out."""
    seen: dict[int, int] = {}
    base = x.untyped_storage().data_ptr()

    def pack(t: Any) -> Any:
        storage = t.untyped_storage()
        if storage.data_ptr() != base:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    leaf = x.detach().requires_grad_()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(leaf)
    return sum(seen.values())


def _case(op: str, dtype_name: str, shape: tuple[int, ...], decisions: int, ours: Callable[..., Any],
          backward: Callable[..., Any], torch_fn: Callable[[Any, Any], Any] | None, torch_label: str,
          peer_names: set[str]) -> Case:
    """A forward+backward case: ours(x, out=, store=) -> (y, mask) and backward(g, mask, out=) -> dx (the
    NumPy API), torch_fn(torch, x) the peer (None: no peer)."""
    dtype = DTYPES[dtype_name]
    n = int(np.prod(shape))
    nbytes = variant_bytes(n, dtype.itemsize, decisions)
    seed_bytes = variant_bytes(n, dtype.itemsize, decisions, "seed")
    kept: dict[str, int] = {}

    def build() -> list[Impl]:
        x, g = _random(shape, dtype, SEED), _random(shape, dtype, SEED + 1)
        out, dx = np.empty_like(x), np.empty_like(x)
        tasks = limits.tasks_for(n, limits.DROPOUT_TASK_ELEMS)
        impls = [copy_limit_impl(nbytes, tasks), mask_limit_impl(decisions), _copy_impl(nbytes)]
        for store, b in (("bits", nbytes), ("seed", seed_bytes)):
            def step(store: str = store) -> Any:
                _, mask = ours(x, out=out, store=store)
                return backward(g, mask, out=dx)

            name = f"regdrop_fast {op} + backward {store}"
            mask = ours(x, out=out, store=store)[1]
            kept[name] = 0 if mask.bits is None else mask.bits.nbytes
            impls.append(Impl(name, "regdrop_fast", step, b, draws=True))
        if torch_fn is not None and "torch" in peer_names:
            import torch

            def tensor(a: np.ndarray) -> Any:
                if a.dtype == DTYPES["bfloat16"]:  # torch does not know ml_dtypes: the same bytes
                    return torch.from_numpy(a.view(np.uint16)).view(torch.bfloat16)
                return torch.from_numpy(a)

            xt, gt = tensor(x), tensor(g)
            torch.manual_seed(SEED)
            kept[torch_label] = _saved_bytes(torch, lambda t: torch_fn(torch, t), xt)

            def torch_step() -> Any:
                leaf = xt.detach().requires_grad_()
                torch_fn(torch, leaf).backward(gt)
                return leaf.grad

            impls.append(Impl(torch_label, "torch", torch_step, nbytes))
        return impls

    label = f"variants {op} forward+backward {dtype_name} {'x'.join(map(str, shape))}"
    return Case(SECTION, op, dtype_name, n, label, build,
                extra={"shape": list(shape), "decisions": decisions, "mask_kept": kept})


def dropout2d_case(dtype_name: str, n: int, peer_names: set[str], notes: list[str]) -> Case:
    shape = nchw(n)

    def torch_fn(torch: Any, t: Any) -> Any:
        return torch.nn.functional.dropout2d(t, P, training=True)

    return _case("dropout2d", dtype_name, shape, shape[0] * shape[1],
                 lambda x, **kw: rdf.dropout(x, P, broadcast_dims=(2, 3), seed=SEED, **kw), rdf.dropout_backward,
                 torch_fn, "torch F.dropout2d + autograd", peer_names)


def drop_path_case(dtype_name: str, n: int, peer_names: set[str], notes: list[str]) -> Case:
    shape = rows_of(n)

    def torch_fn(torch: Any, t: Any) -> Any:
        # torchvision.ops.stochastic_depth(t, P, "row", training=True), written out (its formula)
        survival = 1.0 - P
        noise = torch.empty([t.shape[0]] + [1] * (t.ndim - 1), dtype=t.dtype).bernoulli_(survival)
        return t * noise.div_(survival)

    return _case("drop_path", dtype_name, shape, shape[0],
                 lambda x, **kw: rdf.drop_path(x, P, seed=SEED, **kw), rdf.dropout_backward,
                 torch_fn, "torch stochastic_depth formula (row) + autograd", peer_names)


def alpha_case(dtype_name: str, n: int, peer_names: set[str], notes: list[str]) -> Case:
    shape = rows_of(n)

    def torch_fn(torch: Any, t: Any) -> Any:
        return torch.nn.functional.alpha_dropout(t, P, training=True)

    return _case("alpha_dropout", dtype_name, shape, int(np.prod(shape)),
                 lambda x, **kw: rdf.alpha_dropout(x, P, seed=SEED, **kw), rdf.alpha_dropout_backward,
                 torch_fn, "torch F.alpha_dropout + autograd", peer_names)


BUILDERS: list[Callable[[str, int, set[str], list[str]], Case]] = [dropout2d_case, drop_path_case, alpha_case]

GAUSSIAN_P = 0.3  # Keras's GaussianDropout test rate
GAUSSIAN_OPS = ("gaussian_dropout forward", "gaussian_dropout forward+backward")


def gaussian_bytes(n: int, itemsize: int, op: str) -> int:
    """x read and y written per pass; the forward+backward makes two passes (module docstring)."""
    return (2 if op.endswith(" forward") else 4) * n * itemsize


def gaussian_case(op: str, n: int, peer_names: set[str]) -> Case:
    """Gaussian dropout, ``op`` one of GAUSSIAN_OPS, at n float32 elements."""
    dtype = DTYPES["float32"]
    nbytes = gaussian_bytes(n, dtype.itemsize, op)
    forward_only = op.endswith(" forward")
    std = math.sqrt(GAUSSIAN_P / (1 - GAUSSIAN_P))

    def build() -> list[Impl]:
        x, g = _random(n, dtype, SEED), _random(n, dtype, SEED + 1)
        out, dx = np.empty_like(x), np.empty_like(x)
        impls = [copy_limit_impl(nbytes, limits.tasks_for(n, limits.DROPOUT_TASK_ELEMS)), mask_limit_impl(n),
                 _copy_impl(nbytes)]

        def ours() -> Any:
            y, noise = rdf.gaussian_dropout(x, GAUSSIAN_P, seed=SEED, out=out)
            return y if forward_only else rdf.gaussian_dropout_backward(g, noise, out=dx)

        # draws the stream (the forward+backward twice: its ceiling is taken as one mask-only time, the
        # stricter reading)
        impls.append(Impl("regdrop_fast gaussian_dropout" + ("" if forward_only else " + backward"), "regdrop_fast",
                          ours, nbytes, draws=True))
        if "torch" in peer_names:
            import torch

            xt, gt = torch.from_numpy(x), torch.from_numpy(g)
            torch.manual_seed(SEED)

            def torch_step() -> Any:
                if forward_only:
                    with torch.no_grad():
                        return xt * (1 + std * torch.randn_like(xt))
                leaf = xt.detach().requires_grad_()
                (leaf * (1 + std * torch.randn_like(leaf))).backward(gt)
                return leaf.grad

            impls.append(Impl("torch eager: x * (1 + std * randn_like(x))", "torch", torch_step, nbytes))
        if "numpy" in peer_names:
            rng = np.random.default_rng(SEED)
            std32 = np.float32(std)

            def numpy_step() -> Any:
                noise = 1 + std32 * rng.standard_normal(x.shape, dtype=np.float32)
                return x * noise if forward_only else (x * noise, g * noise)

            impls.append(Impl("numpy: x * (1 + std * standard_normal)", "numpy", numpy_step, nbytes))
        return impls

    return Case(SECTION, op, "float32", n, f"variants {op} float32 n={n}", build,
                extra={"title": f"variants {op}, float32, n={n}, p={GAUSSIAN_P}  (GB/s: bytes the op must move "
                                "/ time; nothing kept: the backward regenerates the noise)"})


def variant_cases(dtypes: list[str], n: int, peer_names: set[str], notes: list[str]) -> list[Case]:
    """Every builder's case for each dtype, at n elements, and Gaussian dropout's (float32)."""
    return [build(dtype, n, peer_names, notes) for build in BUILDERS for dtype in dtypes] + [
        gaussian_case(op, n, peer_names) for op in GAUSSIAN_OPS]


def format_section(rows: list[dict], p: float, table: Callable[..., list[str]], cells: Callable[[dict], list[str]],
                   peers_of: Callable[[list[dict]], list[str]], speedups: Callable[..., list[str]]) -> list[str]:
    """The section's tables, one per (op, dtype), with the mask-kept column and the target line (report.py
    passes its cell formatters: time, GB/s, x limit, bound)."""
    out: list[str] = []
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        if row["section"] == SECTION:
            groups.setdefault((row["op"], row["dtype"]), []).append(row)
    for (op, dtype), group in groups.items():
        peers = peers_of(group)
        if "title" in group[0]:  # Gaussian dropout: no mask, no mask-kept column
            out.append(group[0]["title"])
            body = [[row["impl"]] + cells(row) + speedups(row, peers) for row in group]
            out += table(["implementation", "time", "GB/s", "x limit", "bound"] + [f"vs {p_}" for p_ in peers], body, 1)
            out += target_lines(group)
            out.append("")
            continue
        shape = "x".join(str(d) for d in group[0].get("shape", [group[0]["size"]]))
        out.append(f"variants {op} forward+backward, {dtype}, {shape}, {group[0].get('decisions', 0):,} decisions, "
                   f"p={p}  (GB/s: bytes the op must move, incl. packed mask / time; mask kept: bytes held for "
                   "the backward)")
        body = []
        for row in group:
            k = row.get("mask_kept", {}).get(row["impl"])
            body.append([row["impl"]] + cells(row) + ["" if k is None else f"{k:,} B"] + speedups(row, peers))
        out += table(["implementation", "time", "GB/s", "x limit", "bound", "mask kept"]
                     + [f"vs {p_}" for p_ in peers], body, 1)
        out += target_lines(group)
        out.append("")
    return out
