"""The dropout variants (``regdrop-fast bench --cases variants``), each at 2^24 float32 against what a user
writes without regdrop_fast:

- Gaussian dropout, forward and forward+backward, against ``x * (1 + std * randn)`` in NumPy
  (``default_rng().standard_normal``) and torch eager (``torch.randn_like``; autograd for the backward);
- Dropout2d forward+backward on (64, 256, 32, 32): ``dropout(x, p, broadcast_dims=(2, 3))`` and
  ``dropout_backward`` against torch.nn.Dropout2d (autograd), and NumPy's ``where`` with a (N, C, 1, 1) mask;
  the row records the mask bytes each keeps for the backward (``mask_bytes``: ours N * C / 8);
- DropPath forward on (64, 2^18): ``drop_path`` against torchvision's ``stochastic_depth(x, p, "row")`` when
  torchvision is installed, else the same formula in torch eager (a (N, 1) Bernoulli tensor divided by the
  keep probability, times x: timm's ``drop_path``), and NumPy;
- alpha dropout forward: ``alpha_dropout`` against ``torch.nn.functional.alpha_dropout`` and the NumPy formula
  (``where(keep, x, sat) * a + b``).

Bytes, counted once per case as what the operation must move (the same for every row): a forward reads x and
writes y (2 n items) plus the packed mask it keeps (one bit per decision: n for alpha dropout, N * C for
Dropout2d, N for DropPath; Gaussian dropout keeps none, its backward regenerates the noise); a backward reads
grad (and the mask) and writes dx. The limits (limits.py): a copy of the same bytes on the kernels' threads
and task split, and the mask-only time of the stream words the op draws (the stream's ceiling; the normal
transform of Gaussian dropout is arithmetic on top of it, so that row can sit below the ceiling).
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


def dropout2d_shape(tiny: bool) -> tuple[int, int, int, int]:
    return (4, 16, 8, 8) if tiny else (64, 256, 32, 32)


def dropout2d_bytes(shape: tuple[int, ...], itemsize: int) -> int:
    """Forward+backward: x read, y written, grad read, dx written, the N * C mask bits written and read."""
    n = math.prod(shape)
    return 4 * n * itemsize + 2 * ((shape[0] * shape[1] + 7) // 8)


def dropout2d_case(shape: tuple[int, int, int, int], peer_names: set[str]) -> Case:
    """Dropout2d forward+backward (channel dropout: one decision per (sample, channel))."""
    n = math.prod(shape)
    decisions = shape[0] * shape[1]
    nbytes = dropout2d_bytes(shape, 4)

    def build() -> list[Impl]:
        x, g = _random(shape, DTYPES["float32"], SEED), _random(shape, DTYPES["float32"], SEED + 1)
        out, dx = np.empty_like(x), np.empty_like(x)
        impls = [copy_limit_impl(nbytes, limits.tasks_for(n, limits.DROPOUT_TASK_ELEMS)), mask_limit_impl(decisions),
                 _copy_impl(nbytes)]

        def ours() -> Any:
            _, mask = rdf.dropout(x, P, broadcast_dims=(2, 3), seed=SEED, out=out)
            return rdf.dropout_backward(g, mask, out=dx)

        impls.append(Impl("regdrop_fast dropout(broadcast_dims=(2, 3)) + backward", "regdrop_fast", ours, nbytes,
                          draws=True))
        if "torch" in peer_names:
            import torch

            xt, gt = torch.from_numpy(x), torch.from_numpy(g)
            module = torch.nn.Dropout2d(P)
            torch.manual_seed(SEED)

            def torch_step() -> Any:
                leaf = xt.detach().requires_grad_()
                module(leaf).backward(gt)
                return leaf.grad

            impls.append(Impl("torch eager: nn.Dropout2d + autograd", "torch", torch_step, nbytes))
        if "numpy" in peer_names:
            rng = np.random.default_rng(SEED)
            scale = np.float32(1 / (1 - P))

            def numpy_step() -> Any:
                factor = (rng.random((shape[0], shape[1], 1, 1), dtype=np.float32) >= P) * scale
                return x * factor, g * factor

            impls.append(Impl("numpy: (N, C, 1, 1) mask, multiply", "numpy", numpy_step, nbytes))
        return impls

    return Case("variants", "Dropout2d forward+backward", "float32", n,
                f"variants Dropout2d forward+backward {'x'.join(map(str, shape))}", build,
                extra={"shape": list(shape), "mask_bytes": (decisions + 7) // 8})


def drop_path_shape(tiny: bool) -> tuple[int, int]:
    return (16, 256) if tiny else (64, 1 << 18)


def drop_path_case(shape: tuple[int, int], peer_names: set[str], notes: list[str]) -> Case:
    """DropPath forward (one decision per sample)."""
    n = math.prod(shape)
    nbytes = 2 * n * 4 + (shape[0] + 7) // 8

    def build() -> list[Impl]:
        x = _random(shape, DTYPES["float32"], SEED)
        out = np.empty_like(x)
        impls = [copy_limit_impl(nbytes, limits.tasks_for(n, limits.DROPOUT_TASK_ELEMS)), mask_limit_impl(shape[0]),
                 _copy_impl(nbytes),
                 Impl("regdrop_fast drop_path", "regdrop_fast", lambda: rdf.drop_path(x, P, seed=SEED, out=out),
                      nbytes, draws=True)]
        if "torch" in peer_names:
            import torch

            xt = torch.from_numpy(x)
            torch.manual_seed(SEED)
            try:
                from torchvision.ops import stochastic_depth
            except ImportError:
                note = "variants: torchvision is not installed: DropPath compared with its formula in torch eager"
                if note not in notes:
                    notes.append(note)

                def formula() -> Any:
                    keep = xt.new_empty((shape[0], 1)).bernoulli_(1 - P).div_(1 - P)
                    return xt * keep

                impls.append(Impl("torch eager: stochastic_depth's formula", "torch", formula, nbytes))
            else:
                impls.append(Impl("torchvision stochastic_depth(x, p, 'row')", "torch",
                                  lambda: stochastic_depth(xt, P, "row", True), nbytes))
        if "numpy" in peer_names:
            rng = np.random.default_rng(SEED)
            scale = np.float32(1 / (1 - P))
            impls.append(Impl("numpy: (N, 1) mask, multiply", "numpy",
                              lambda: x * ((rng.random((shape[0], 1), dtype=np.float32) >= P) * scale), nbytes))
        return impls

    return Case("variants", "DropPath forward", "float32", n, f"variants DropPath forward {shape[0]}x{shape[1]}",
                build, extra={"shape": list(shape)})


def alpha_case(n: int, peer_names: set[str]) -> Case:
    """Alpha dropout forward."""
    nbytes = 2 * n * 4 + (n + 7) // 8
    alpha_p = 0.2

    def build() -> list[Impl]:
        x = _random(n, DTYPES["float32"], SEED)
        out = np.empty_like(x)
        impls = [copy_limit_impl(nbytes, limits.tasks_for(n, limits.DROPOUT_TASK_ELEMS)), mask_limit_impl(n),
                 _copy_impl(nbytes),
                 Impl("regdrop_fast alpha_dropout", "regdrop_fast",
                      lambda: rdf.alpha_dropout(x, alpha_p, seed=SEED, out=out), nbytes, draws=True)]
        if "torch" in peer_names:
            import torch

            xt = torch.from_numpy(x)
            torch.manual_seed(SEED)
            impls.append(Impl("torch eager: F.alpha_dropout", "torch",
                              lambda: torch.nn.functional.alpha_dropout(xt, alpha_p, True), nbytes))
        if "numpy" in peer_names:
            rng = np.random.default_rng(SEED)
            sat = -1.7580993408473766  # -SELU scale * SELU alpha
            a = (1 - alpha_p) * (1 + alpha_p * sat * sat)
            a = np.float32(a ** -0.5)
            b = np.float32(-a * alpha_p * sat)
            impls.append(Impl("numpy: where(keep, x, sat) * a + b", "numpy",
                              lambda: np.where(rng.random(n, dtype=np.float32) >= alpha_p, x, np.float32(sat)) * a + b,
                              nbytes))
        return impls

    return Case("variants", "alpha_dropout forward", "float32", n, f"variants alpha_dropout forward n={n}", build)


def variant_cases(peer_names: set[str], tiny: bool, notes: list[str]) -> list[Case]:
    n = TINY_SIZE if tiny else SIZE
    return [gaussian_case(op, n, peer_names) for op in OPS] + [
        dropout2d_case(dropout2d_shape(tiny), peer_names), drop_path_case(drop_path_shape(tiny), peer_names, notes),
        alpha_case(n, peer_names)]
