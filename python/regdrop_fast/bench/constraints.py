"""The `constraints` section: prox_group_l1, norm_constraint and non_neg over ResNet-50's convolution filters
(every 4-d weight (out, in, h, w) of RESNET50_PARAMETERS, a group / slice per filter: axis (1, 2, 3); non_neg
element-wise) against the NumPy and torch compositions a user would write (norm, divide, where / clamp,
multiply in place; maximum / clamp_), and penalty_grad's group_l1 term (norm, then g += c * w / norm) against
the read-modify-write limit. Targets (issue #15): >= 0.8x limit; >= 3x torch for prox_group_l1 and
norm_constraint, which BENCHMARKS.md shows cannot be reached by a memory-bound op against a memory-bound
composition of two passes (1.5x at most by bytes).

Repeated calls must do the same work on the same data, so the arguments leave the weights unchanged while
doing every step of a real call: prox_group_l1 with a threshold far below every filter's norm (each filter
is multiplied by 1 - t/norm, which is exactly 1.0 in float64) and norm_constraint with every norm below
min_value and rate 1e-300 (desired = rate*min + (1 - rate)*norm rounds to norm, the factor to exactly 1.0).
Every filter is still read for its norm and then written. Bytes counted: read w + write w (what one fused
pass over a filter in cache must move), the same for every implementation. The limit row (limits.copy)
moves the same bytes on the kernels' threads, read once and written once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

import regdrop_fast as rdf

from . import limits
from .cases import SEED, Case, Impl, copy_limit_impl, rmw_limit_impl
from .frameworks import Framework
from .shapes import RESNET50_PARAMETERS

THRESHOLD = 1e-30  # prox_group_l1: far below every filter norm
GROUP_L1 = 1e-3  # penalty_grad's group_l1 term (its gradient is added to the same grads on every repeat)
MIN_VALUE, RATE = 1e6, 1e-300  # norm_constraint: every norm below min_value, the factor exactly 1
AXES = (1, 2, 3)


def conv_filters(tiny: bool = False) -> tuple[tuple[int, ...], ...]:
    shapes = tuple(shape for _, shape in RESNET50_PARAMETERS if len(shape) == 4)
    return shapes[:6] if tiny else shapes


def _numpy_prox(ws: Sequence[np.ndarray], t: float) -> None:
    for w in ws:
        norms = np.sqrt(np.sum(w * w, axis=AXES, keepdims=True))
        w *= np.where(norms > t, 1 - t / np.maximum(norms, t), 0)


def _numpy_norm_constraint(ws: Sequence[np.ndarray], lo: float, hi: float, rate: float) -> None:
    for w in ws:
        norms = np.sqrt(np.sum(w * w, axis=AXES, keepdims=True))
        desired = rate * np.clip(norms, lo, hi) + (1 - rate) * norms
        w *= np.where(norms > 0, desired / np.where(norms > 0, norms, 1), 1)


def _torch_ops(torch, ws: Sequence[np.ndarray]):
    tws = [torch.from_numpy(w) for w in ws]

    def prox() -> None:
        for w in tws:
            norms = torch.linalg.vector_norm(w, dim=AXES, keepdim=True)
            w.mul_(torch.clamp(1 - THRESHOLD / norms, min=0))

    def norm_constraint() -> None:
        for w in tws:
            norms = torch.linalg.vector_norm(w, dim=AXES, keepdim=True)
            desired = RATE * torch.clamp(norms, MIN_VALUE, float("inf")) + (1 - RATE) * norms
            w.mul_(torch.where(norms > 0, desired / norms, torch.ones_like(norms)))

    return prox, norm_constraint


def numpy_group_penalty(ws: Sequence[np.ndarray], gs: Sequence[np.ndarray]) -> None:
    """The NumPy a user writes for the group_l1 gradient: a norm pass, then g += w * (c / norm)."""
    for w, g in zip(ws, gs):
        g += w * (GROUP_L1 / np.sqrt(np.sum(w * w, axis=AXES, keepdims=True)))


def torch_group_penalty(torch, ws: Sequence[np.ndarray], gs: Sequence[np.ndarray]):
    """The torch a user writes for it: vector_norm, then one fused in-place g.addcdiv_(w, norm, value=c)."""
    tws, tgs = [torch.from_numpy(w) for w in ws], [torch.from_numpy(g) for g in gs]

    def op() -> None:
        for w, g in zip(tws, tgs):
            g.addcdiv_(w, torch.linalg.vector_norm(w, dim=AXES, keepdim=True), value=GROUP_L1)

    return op


def constraint_cases(peers: Sequence[Framework], notes: list[str], tiny: bool = False) -> list[Case]:
    shapes = conv_filters(tiny)
    n = sum(int(np.prod(s)) for s in shapes)
    nbytes = 2 * 4 * n
    tasks = limits.tasks_for(n, limits.PENALTY_TASK_ELEMS)
    torch = next((fw.module for fw in peers if fw.name == "torch"), None)
    label = f"ResNet-50 conv filters ({len(shapes)} weights{', tiny' if tiny else ''})"

    def weights() -> list[np.ndarray]:
        rng = np.random.default_rng(SEED)
        return [rng.standard_normal(s, dtype=np.float32) for s in shapes]

    def build_prox() -> list[Impl]:
        ws = weights()
        impls = [copy_limit_impl(nbytes, tasks),
                 Impl("regdrop_fast prox_group_l1", "regdrop_fast",
                      lambda: rdf.prox_group_l1(ws, THRESHOLD, axis=AXES), nbytes),
                 Impl("numpy norm/where/multiply", "numpy", lambda: _numpy_prox(ws, THRESHOLD), nbytes)]
        if torch is not None:
            impls.append(Impl("torch vector_norm/clamp/mul_", "torch", _torch_ops(torch, ws)[0], nbytes))
        return impls

    def build_norm() -> list[Impl]:
        ws = weights()

        def ours() -> None:
            for w in ws:
                rdf.norm_constraint(w, min_value=MIN_VALUE, rate=RATE, axis=AXES)

        impls = [copy_limit_impl(nbytes, tasks),
                 Impl("regdrop_fast norm_constraint", "regdrop_fast", ours, nbytes),
                 Impl("numpy norm/clip/divide/multiply", "numpy",
                      lambda: _numpy_norm_constraint(ws, MIN_VALUE, np.inf, RATE), nbytes)]
        if torch is not None:
            impls.append(Impl("torch vector_norm/clamp/where/mul_", "torch", _torch_ops(torch, ws)[1], nbytes))
        return impls

    def build_non_neg() -> list[Impl]:
        # Absolute values: every call finds the data it leaves (nothing to clamp) yet reads and writes it all.
        ws = [np.abs(w) for w in weights()]
        impls = [copy_limit_impl(nbytes, tasks),
                 Impl("regdrop_fast non_neg", "regdrop_fast", lambda: rdf.non_neg(ws), nbytes),
                 Impl("numpy maximum(w, 0, out=w)", "numpy",
                      lambda: [np.maximum(w, 0, out=w) for w in ws], nbytes)]
        if torch is not None:
            tws = [torch.from_numpy(w) for w in ws]
            impls.append(Impl("torch clamp_(min=0)", "torch", lambda: [w.clamp_(min=0) for w in tws], nbytes))
        return impls

    def build_group_penalty() -> list[Impl]:
        # penalty_grad with the group_l1 term: reads w (its norm, then again from cache) and g, writes g; the
        # limit is the read-modify-write of the same bytes (dst ^= src).
        ws = weights()
        gs = [np.zeros_like(w) for w in ws]
        impls = [rmw_limit_impl(3 * 4 * n, tasks),
                 Impl("regdrop_fast penalty_grad(group_l1=)", "regdrop_fast",
                      lambda: rdf.penalty_grad(ws, gs, group_l1=GROUP_L1, axis=AXES), 3 * 4 * n),
                 Impl("numpy norm/divide/multiply-add", "numpy", lambda: numpy_group_penalty(ws, gs), 3 * 4 * n)]
        if torch is not None:
            impls.append(Impl("torch vector_norm/addcdiv_", "torch", torch_group_penalty(torch, ws, gs), 3 * 4 * n))
        return impls

    if torch is None:
        notes.append("constraints: no torch row (torch is not among the peers)")
    return [Case("constraints", "prox_group_l1", "float32", n, f"prox_group_l1 {label}", build_prox,
                 extra={"arrays": len(shapes)}),
            Case("constraints", "norm_constraint", "float32", n, f"norm_constraint {label}", build_norm,
                 extra={"arrays": len(shapes)}),
            Case("constraints", "non_neg", "float32", n, f"non_neg {label}", build_non_neg,
                 extra={"arrays": len(shapes)}),
            Case("constraints", "penalty_group_l1", "float32", n, f"penalty_grad group_l1 {label}",
                 build_group_penalty, extra={"arrays": len(shapes)})]
