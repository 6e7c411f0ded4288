"""The dropout variants (``regdrop-fast bench --cases variants``): Gaussian dropout at 2^24 float32, forward and
forward+backward, against the formula a user writes without regdrop_fast, ``x * (1 + std * randn)``, in NumPy
(``default_rng().standard_normal``) and in torch eager (``torch.randn_like``; autograd for the backward).

Bytes, counted once per case as what the operation must move (the same for every row): the forward reads x
and writes y (2 n items); the backward reads grad and writes dx (2 n more; the noise is regenerated, nothing
per element is stored). The limits (limits.py): a copy of the same bytes on the kernels' threads and task
split, and the mask-only time of the n stream words the op draws (the stream's ceiling; the normal transform
on top of it is the op's own arithmetic, so the row can sit below that ceiling when the transform binds).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import regdrop_fast as rdf

from . import limits
from .cases import DTYPES, SEED, Case, Impl, _copy_impl, _random, copy_limit_impl, mask_limit_impl

P = 0.3  # Keras's GaussianDropout test rate
SIZE = 1 << 24
TINY_SIZE = 1 << 12  # the hidden --tiny option (tests)
OPS = ("forward", "forward+backward")

# Issue 13's CPU targets for every variant at 2^24 float32: (label, "limit" or a peer framework, at least).
# Printed under each table with the measured ratio; a benchmark reports them, no test asserts them.
TARGETS = (("x limit", "limit", 0.8), ("vs torch", "torch", 10.0))


def target_lines(group: list[dict]) -> list[str]:
    """One line with each target the regdrop_fast row of a case measures: the ratio, the minimum, met or not."""
    ours = next((r for r in group if r["framework"] == "regdrop_fast"), None)
    if ours is None:
        return []
    parts = []
    for label, against, at_least in TARGETS:
        ratio = ours.get("limit_fraction") if against == "limit" else ours.get("speedup", {}).get(against)
        if ratio is not None:
            parts.append(f"{label} {ratio:.2f} (>= {at_least:g}: {'met' if ratio >= at_least else 'NOT met'})")
    if ours.get("rng_seconds") and ours.get("seconds"):
        parts.append(f"x RNG ceiling {ours['rng_seconds'] / ours['seconds']:.2f}")
    return ["targets: " + "; ".join(parts)] if parts else []


def gaussian_bytes(n: int, itemsize: int, op: str) -> int:
    """What `op` must move for n elements (see the module docstring)."""
    return (2 if op == "forward" else 4) * n * itemsize


def _torch_impl(torch: Any, x: np.ndarray, g: np.ndarray, op: str, nbytes: int) -> Impl:
    xt, gt = torch.from_numpy(x), torch.from_numpy(g)
    std = math.sqrt(P / (1 - P))
    torch.manual_seed(SEED)

    def forward() -> Any:
        with torch.no_grad():
            return xt * (1 + std * torch.randn_like(xt))

    def step() -> Any:
        leaf = xt.detach().requires_grad_()
        (leaf * (1 + std * torch.randn_like(leaf))).backward(gt)
        return leaf.grad

    return Impl("torch eager: x * (1 + std * randn_like(x))", "torch", forward if op == "forward" else step, nbytes)


def _numpy_impl(x: np.ndarray, g: np.ndarray, op: str, nbytes: int) -> Impl:
    rng = np.random.default_rng(SEED)
    std = np.float32(math.sqrt(P / (1 - P)))

    def forward() -> Any:
        noise = 1 + std * rng.standard_normal(x.shape, dtype=np.float32)
        return x * noise, noise

    def step() -> Any:
        _, noise = forward()
        return g * noise

    return Impl("numpy: x * (1 + std * standard_normal)", "numpy", forward if op == "forward" else step, nbytes)


def gaussian_case(op: str, n: int, peer_names: set[str]) -> Case:
    dtype = DTYPES["float32"]
    nbytes = gaussian_bytes(n, dtype.itemsize, op)

    def build() -> list[Impl]:
        x, g = _random(n, dtype, SEED), _random(n, dtype, SEED + 1)
        out, dx = np.empty_like(x), np.empty_like(x)
        impls = [copy_limit_impl(nbytes, limits.tasks_for(n, limits.DROPOUT_TASK_ELEMS)), mask_limit_impl(n),
                 _copy_impl(nbytes)]
        if op == "forward":
            impls.append(Impl("regdrop_fast gaussian_dropout", "regdrop_fast",
                              lambda: rdf.gaussian_dropout(x, P, seed=SEED, out=out), nbytes, draws=True))
        else:
            def ours() -> Any:
                _, noise = rdf.gaussian_dropout(x, P, seed=SEED, out=out)
                return rdf.gaussian_dropout_backward(g, noise, out=dx)

            # draws the stream twice (forward, and the backward's regenerated noise); its ceiling is taken as
            # one mask-only time, the stricter reading
            impls.append(Impl("regdrop_fast gaussian_dropout + backward", "regdrop_fast", ours, nbytes, draws=True))
        if "torch" in peer_names:
            import torch

            impls.append(_torch_impl(torch, x, g, op, nbytes))
        if "numpy" in peer_names:
            impls.append(_numpy_impl(x, g, op, nbytes))
        return impls

    return Case("variants", f"gaussian_dropout {op}", "float32", n, f"variants gaussian_dropout {op} n={n}", build)


def variant_cases(peer_names: set[str], tiny: bool) -> list[Case]:
    n = TINY_SIZE if tiny else SIZE
    return [gaussian_case(op, n, peer_names) for op in OPS]
