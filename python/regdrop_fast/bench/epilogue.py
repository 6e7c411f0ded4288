"""The fused transformer epilogue ``residual + dropout(x + bias)`` (``regdrop-fast bench --cases epilogue``).

At (8192, 2048), float32 and bfloat16, forward and forward+backward: regdrop_fast.bias_dropout_add (and its
backward) against (a) torch eager's three ops ``r + F.dropout(x + b)`` (autograd for the backward),
(b) ``torch.compile`` of the same three ops (inductor, which fuses them with its own RNG), (c) NumPy
(``np.random`` mask, ``where``, add; ``where`` and a column sum for the backward). The peers run when they
are among the compared frameworks (torch, numpy).

Bytes, counted once per case as what the operation must move (the same for every row of the case): the
forward reads x and residual, writes y (3 n items), reads the bias (H items) and writes the packed mask
(n/8 bytes); the backward reads grad and the packed mask, writes dx (2 n items + n/8 bytes) and dbias (H
items); dresidual is grad itself and moves nothing. ``store="seed"`` rows move no mask bytes. The limits
(limits.py): a copy of the same bytes on the kernels' threads and task split, and the mask-only time of the
n decisions (the random stream's ceiling); np.copyto of the same bytes stays as a one-thread peer row.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import regdrop_fast as rdf

from . import limits
from .cases import DTYPES, P, SEED, Case, Impl, _copy_impl, _random, copy_limit_impl, mask_limit_impl

SHAPE = (8192, 2048)
TINY_SHAPE = (64, 256)  # the hidden --tiny option (tests): the same code on little data, no torch.compile
OPS = ("forward", "forward+backward")


# Issue 14's CPU targets for the store="bits" row of every epilogue case: (label, "limit" or a peer framework,
# at least); the ">= 0.8x copy bandwidth" is measured against the limit (issue 18). Printed under each table with the measured ratio; a benchmark reports them, no test asserts them.
TARGETS = (("x limit", "limit", 0.8), ("vs torch eager", "torch", 10.0), ("vs torch.compile", "torch.compile", 3.0))


def target_lines(group: list[dict]) -> list[str]:
    """One line with each target the rows of one case measure: the ratio, the wanted minimum, met or not."""
    ours = next((r for r in group if r["framework"] == "regdrop_fast" and r["impl"].endswith("bits")), None)
    if ours is None:
        return []
    parts = []
    for label, against, at_least in TARGETS:
        ratio = ours.get("limit_fraction") if against == "limit" else ours.get("speedup", {}).get(against)
        if ratio is not None:
            parts.append(f"{label} {ratio:.2f} (>= {at_least:g}: {'met' if ratio >= at_least else 'NOT met'})")
    return ["targets (bits row): " + "; ".join(parts)] if parts else []


def epilogue_bytes(shape: tuple[int, int], itemsize: int, op: str, store: str = "bits") -> int:
    """What `op` must move for x of `shape` (see the module docstring)."""
    n, h = shape[0] * shape[1], shape[1]
    mask = (n + 7) // 8 if store == "bits" else 0
    forward = 3 * n * itemsize + h * itemsize + mask
    if op == "forward":
        return forward
    return forward + 2 * n * itemsize + h * itemsize + mask


def _torch_impls(torch: Any, x: np.ndarray, b: np.ndarray, r: np.ndarray, g: np.ndarray, op: str, nbytes: int,
                 compiled: bool) -> list[Impl]:
    """torch eager's three ops and, when `compiled`, torch.compile of them, on CPU tensors sharing the arrays'
    memory."""
    def tensor(a: np.ndarray) -> Any:
        if a.dtype == DTYPES["bfloat16"]:  # torch does not know ml_dtypes: the same bytes reinterpreted
            return torch.from_numpy(a.view(np.uint16)).view(torch.bfloat16)
        return torch.from_numpy(a)

    xt, bt, rt, gt = (tensor(a) for a in (x, b, r, g))
    dropout = torch.nn.functional.dropout

    def three_ops(x: Any, b: Any, r: Any) -> Any:
        return r + dropout(x + b, P, training=True)

    def run(fn: Any) -> Any:
        if op == "forward":
            def forward() -> Any:
                with torch.no_grad():
                    return fn(xt, bt, rt)
            return forward

        def step() -> Any:
            leaves = [t.detach().requires_grad_() for t in (xt, bt, rt)]
            fn(*leaves).backward(gt)
            return leaves[0].grad, leaves[1].grad

        return step

    torch.manual_seed(SEED)
    impls = [Impl("torch eager: r + F.dropout(x + b)", "torch", run(three_ops), nbytes)]
    if compiled:
        impls.append(Impl("torch.compile (inductor) of the same", "torch.compile",
                          run(torch.compile(three_ops, fullgraph=True)), nbytes))
    return impls


def _numpy_impl(x: np.ndarray, b: np.ndarray, r: np.ndarray, g: np.ndarray, op: str, nbytes: int) -> Impl:
    rng = np.random.default_rng(SEED)
    scale = x.dtype.type(1.0 / (1.0 - P))
    zero = x.dtype.type(0)

    def forward() -> Any:
        keep = rng.random(x.shape, dtype=np.float32) >= P
        return r + np.where(keep, (x + b) * scale, zero), keep

    def step() -> Any:
        _, keep = forward()
        dx = np.where(keep, g * scale, zero)
        return dx, dx.sum(axis=0)

    return Impl("numpy: random mask, where, add", "numpy", forward if op == "forward" else step, nbytes)


def epilogue_case(op: str, dtype_name: str, shape: tuple[int, int], peer_names: set[str], tiny: bool,
                  notes: list[str]) -> Case:
    dtype = DTYPES[dtype_name]
    nbytes = epilogue_bytes(shape, dtype.itemsize, op)
    seed_bytes = epilogue_bytes(shape, dtype.itemsize, op, "seed")

    def build() -> list[Impl]:
        x, r, g = (_random(shape, dtype, SEED + k) for k in range(3))
        b = _random(shape[1], dtype, SEED + 3)
        out, dx = np.empty_like(x), np.empty_like(x)  # preallocated outputs, as in the dropout cases
        n = shape[0] * shape[1]
        tasks = limits.tasks_for(n, limits.DROPOUT_TASK_ELEMS)
        impls = [copy_limit_impl(nbytes, tasks), mask_limit_impl(n), _copy_impl(nbytes)]
        if op == "forward":
            impls += [
                Impl("regdrop_fast bias_dropout_add bits", "regdrop_fast",
                     lambda: rdf.bias_dropout_add(x, b, r, P, seed=SEED, out=out), nbytes, draws=True),
                Impl("regdrop_fast bias_dropout_add seed", "regdrop_fast",
                     lambda: rdf.bias_dropout_add(x, b, r, P, seed=SEED, out=out, store="seed"), seed_bytes,
                     draws=True),
            ]
        else:
            def ours(store: str) -> Any:
                def step() -> Any:
                    _, mask = rdf.bias_dropout_add(x, b, r, P, seed=SEED, out=out, store=store)
                    return rdf.bias_dropout_add_backward(g, mask, out=dx)
                return step

            # Both draw the stream (the seed row twice: forward and the backward's regenerated mask; its
            # ceiling is taken as one mask-only time, the stricter of the two readings).
            impls += [Impl("regdrop_fast bias_dropout_add + backward bits", "regdrop_fast", ours("bits"), nbytes,
                           draws=True),
                      Impl("regdrop_fast bias_dropout_add + backward seed", "regdrop_fast", ours("seed"),
                           seed_bytes, draws=True)]
        if "torch" in peer_names:
            import torch

            impls += _torch_impls(torch, x, b, r, g, op, nbytes, compiled=not tiny)
        if "numpy" in peer_names:
            impls.append(_numpy_impl(x, b, r, g, op, nbytes))
        return impls

    if tiny and "torch" in peer_names:
        note = "epilogue: torch.compile rows skipped with --tiny (compile time)"
        if note not in notes:
            notes.append(note)
    return Case("epilogue", op, dtype_name, shape[0] * shape[1],
                f"epilogue {op} {dtype_name} {shape[0]}x{shape[1]}", build, extra={"shape": list(shape)})
