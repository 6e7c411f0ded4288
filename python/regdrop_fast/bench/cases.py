"""What is measured: dropout forward/backward over a size sweep, penalty_grad over parameter lists, and
the end-to-end cost of one small dropout call.

A case builds its data when it runs (and drops it afterwards), then hands the timer one callable per
implementation. Bytes are counted once per case, the same for every implementation of that case, as the
bytes the operation must move: dropout forward reads x and writes y and the packed mask (n/8 bytes);
backward reads the gradient and the packed mask and writes dx; ``store="seed"`` rows move no mask bytes;
penalty_grad reads w and g and writes g.

Every CPU case also times its limits (limits.py), on the threads and task split regdrop_fast uses: a copy of
the same bytes for each byte count of the case's rows (dropout), an in-place read-modify-write of the same
bytes (penalty_grad), and for the dropout cases the mask-only ceiling, the stream's arithmetic without the
data. ``np.copyto`` of the same bytes (one thread) stays as a peer row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import ml_dtypes
import numpy as np

import regdrop_fast as rdf

from . import limits
from .frameworks import Framework, Op
from .shapes import ParameterList

DTYPES = {"float32": np.dtype(np.float32), "bfloat16": np.dtype(ml_dtypes.bfloat16)}
P = 0.5  # drop probability of every dropout case
SEED = 20240607
L1, L2 = 1e-5, 1e-4  # penalty coefficients (any positive values exercise the same code)
LATENCY_SIZE = 1024


@dataclass
class Impl:
    """One timed implementation of a case."""

    name: str
    framework: str  # "regdrop_fast", "copy" (np.copyto), "limit", or a peer framework's name
    fn: Callable[[], object]
    bytes: int
    draws: bool = False  # generates the dropout stream's words: the mask-only ceiling applies to it too
    ceiling: str = ""  # for framework "limit": "memory" or "rng"
    elements: int = 0  # for the "rng" ceiling: keep decisions (Philox words) per call


@dataclass
class Case:
    section: str  # "dropout", "penalty" or "latency"
    op: str
    dtype: str
    size: int  # elements
    label: str
    build: Callable[[], list[Impl]] = field(repr=False)
    extra: dict[str, Any] = field(default_factory=dict)


COPY_NAME = "np.copyto (same bytes, 1 thread)"


def _copy_impl(total_bytes: int) -> Impl:
    """np.copyto between two byte buffers of half the case's bytes: reads + writes total_bytes."""
    half = (total_bytes + 1) // 2
    src = np.full(half, 0x5A, np.uint8)
    dst = np.empty_like(src)  # its pages are faulted in by the warm-up call, before any timing
    return Impl(COPY_NAME, "copy", lambda: np.copyto(dst, src), 2 * half)


def copy_limit_impl(total_bytes: int, tasks: int, name: str = "limit: copy") -> Impl:
    """limits.copy of half of total_bytes into the other half, in `tasks` tasks on the kernels' threads."""
    half = (total_bytes + 1) // 2
    src = np.full(half, 0x5A, np.uint8)
    dst = np.empty_like(src)
    return Impl(name, "limit", lambda: limits.copy(src, dst, tasks), 2 * half, ceiling="memory")


def rmw_limit_impl(total_bytes: int, tasks: int) -> Impl:
    """limits.rmw (dst ^= src) over a third of total_bytes each: reads 2/3, writes 1/3, as penalty_grad."""
    third = (total_bytes + 2) // 3
    src = np.full(third, 0x5A, np.uint8)
    dst = np.zeros_like(src)
    return Impl("limit: read-modify-write", "limit", lambda: limits.rmw(src, dst, tasks), 3 * third,
                ceiling="memory")


def mask_limit_impl(n: int) -> Impl:
    """The packed keep mask of n elements alone (limits.mask_only): the dropout stream's ceiling."""
    bits = np.empty((n + 7) // 8, np.uint8)
    return Impl("limit: mask only (RNG)", "limit", lambda: limits.mask_only(bits, n, P, SEED), bits.size,
                ceiling="rng", elements=n)


def _random(shape: int | tuple[int, ...], dtype: np.dtype, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32).astype(dtype)


def _add_peer(impls: list[Impl], fw: Framework, label: str, make: Callable[[], Op | None], nbytes: int,
              notes: list[str]) -> None:
    """Append a peer's callable; a framework that fails to set up is noted and skipped, not fatal."""
    try:
        fn = make()
    except Exception as exc:  # a broken third-party install must not stop the benchmark
        notes.append(f"{fw.name}: {label}: skipped ({type(exc).__name__}: {exc})")
        return
    if fn is not None:
        impls.append(Impl(label, fw.name, fn, nbytes))


def dropout_case(op: str, dtype_name: str, n: int, peers: Sequence[Framework], notes: list[str]) -> Case:
    dtype = DTYPES[dtype_name]
    mask_bytes = (n + 7) // 8
    data_bytes = 2 * n * dtype.itemsize

    def build() -> list[Impl]:
        x = _random(n, dtype, SEED)
        out = np.empty_like(x)
        tasks = limits.tasks_for(n, limits.DROPOUT_TASK_ELEMS)
        impls = [copy_limit_impl(data_bytes + mask_bytes, tasks, "limit: copy (bits bytes)"),
                 copy_limit_impl(data_bytes, tasks, "limit: copy (seed bytes)"),
                 mask_limit_impl(n), _copy_impl(data_bytes + mask_bytes)]
        if op == "forward":
            impls += [
                Impl("regdrop_fast bits", "regdrop_fast",
                     lambda: rdf.dropout(x, P, seed=SEED, out=out), data_bytes + mask_bytes, draws=True),
                Impl("regdrop_fast seed", "regdrop_fast",
                     lambda: rdf.dropout(x, P, seed=SEED, out=out, store="seed"), data_bytes, draws=True),
            ]
            for fw in peers:
                _add_peer(impls, fw, fw.forward_label, partial(fw.dropout_forward, x, P, SEED),
                          data_bytes + mask_bytes, notes)
        else:
            grad = _random(n, dtype, SEED + 1)
            _, bits_mask = rdf.dropout(x, P, seed=SEED)
            _, seed_mask = rdf.dropout(x, P, seed=SEED, store="seed")
            impls += [
                Impl("regdrop_fast bits", "regdrop_fast",
                     lambda: rdf.dropout_backward(grad, bits_mask, out=out), data_bytes + mask_bytes),
                Impl("regdrop_fast seed", "regdrop_fast",
                     lambda: rdf.dropout_backward(grad, seed_mask, out=out), data_bytes, draws=True),
            ]
            for fw in peers:
                _add_peer(impls, fw, fw.backward_label,
                          partial(fw.dropout_backward, x, grad, P, SEED), data_bytes + mask_bytes, notes)
        return impls

    return Case("dropout", op, dtype_name, n, f"dropout {op} {dtype_name} n={n}", build)


def penalty_case(plist: ParameterList, peers: Sequence[Framework], notes: list[str]) -> Case:
    n = plist.values
    nbytes = 3 * 4 * n  # float32: read w, read g, write g

    def build() -> list[Impl]:
        rng = np.random.default_rng(SEED)
        params = [rng.standard_normal(s, dtype=np.float32) for s in plist.shapes]
        grads = [rng.standard_normal(s, dtype=np.float32) for s in plist.shapes]
        # Every implementation adds into the same grads in place, as a training step would; the growth
        # (l2 * w per call) is far too small to change the speed of float arithmetic.
        impls = [
            rmw_limit_impl(nbytes, limits.tasks_for(n, limits.PENALTY_TASK_ELEMS)),
            _copy_impl(nbytes),
            Impl("regdrop_fast penalty_grad l2", "regdrop_fast",
                 lambda: rdf.penalty_grad(params, grads, l2=L2), nbytes),
            Impl("regdrop_fast penalty_grad l1+l2", "regdrop_fast",
                 lambda: rdf.penalty_grad(params, grads, l1=L1, l2=L2), nbytes),
        ]
        for fw in peers:
            _add_peer(impls, fw, fw.penalty_label, partial(fw.penalty_l2, params, grads, L2), nbytes, notes)
        return impls

    return Case("penalty", plist.label, "float32", n, f"penalty_grad {plist.label}", build,
                extra={"arrays": len(plist.shapes)})


def latency_case(peers: Sequence[Framework], notes: list[str]) -> Case:
    """One 1,024-element float32 dropout forward, end to end from Python, as users call it; with torch among
    the peers, also regdrop_fast.torch.dropout on a CPU tensor (no grad, and a leaf that requires grad),
    next to torch's own row."""
    n = LATENCY_SIZE

    def build() -> list[Impl]:
        x = _random(n, DTYPES["float32"], SEED)
        out = np.empty_like(x)
        nbytes = 2 * 4 * n + n // 8
        impls = [
            Impl("regdrop_fast dropout(x, p, seed=s)", "regdrop_fast", lambda: rdf.dropout(x, P, seed=SEED), nbytes),
            Impl("regdrop_fast ... out=y", "regdrop_fast", lambda: rdf.dropout(x, P, seed=SEED, out=out), nbytes),
            Impl("regdrop_fast ... seed=None", "regdrop_fast", lambda: rdf.dropout(x, P), nbytes),
        ]
        if any(fw.name == "torch" for fw in peers):
            impls += _torch_layer_latency_impls(x, nbytes)
        for fw in peers:
            _add_peer(impls, fw, fw.forward_label, partial(fw.dropout_forward, x, P, SEED), nbytes, notes)
        return impls

    return Case("latency", f"dropout forward, {n} elements", "float32", n, f"latency dropout n={n}", build)


def _torch_layer_latency_impls(x: np.ndarray, nbytes: int) -> list[Impl]:
    """regdrop_fast.torch.dropout on x as a CPU tensor: without grad, and on a leaf requiring grad (the
    forward of a training step: the autograd Function's cost included)."""
    import torch

    import regdrop_fast.torch as rt

    xt = torch.from_numpy(x)
    leaf = xt.clone().requires_grad_(True)
    return [Impl("regdrop_fast.torch.dropout(t, p)", "regdrop_fast", lambda: rt.dropout(xt, P), nbytes),
            Impl("regdrop_fast.torch ... t.requires_grad", "regdrop_fast", lambda: rt.dropout(leaf, P), nbytes)]


def layer_case(n: int, peers: Sequence[Framework], notes: list[str]) -> Case | None:
    """regdrop_fast.torch.Dropout against torch.nn.Dropout as a layer, forward + backward (torch_layer.py);
    None (with a note) when torch is not among the peers."""
    if not any(fw.name == "torch" for fw in peers):
        notes.append("layer: regdrop_fast.torch.Dropout vs torch.nn.Dropout needs torch")
        return None

    def build() -> list[Impl]:
        from .torch_layer import OURS, OURS_SEED, TORCH, layer_bytes, layer_impls

        fns = layer_impls(n)
        with_mask, seed_only = layer_bytes(n, 4, "bits"), layer_bytes(n, 4, "seed")
        return [Impl(OURS, "regdrop_fast", fns[OURS], with_mask),
                Impl(OURS_SEED, "regdrop_fast", fns[OURS_SEED], seed_only),
                Impl(TORCH, "torch", fns[TORCH], with_mask)]

    return Case("layer", "torch layer forward+backward", "float32", n, f"layer n={size_label(n)}", build)


LAYOUT_TARGET = 0.8  # channels_last speed / C-contiguous speed the layout case is held to (issue 11)


def layout_shape(n: int) -> tuple[int, int, int, int]:
    """An NCHW shape of about n elements (64 channels, 32 x 32 images; at least one image)."""
    return (max(1, n // (64 * 32 * 32)), 64, 32, 32)


def layout_case(op: str, n: int) -> Case:
    """dropout on a channels_last float32 array against its C-contiguous twin (same values, same mask):
    ``op`` "forward" (dropout) or "forward+backward" (dropout, then dropout_backward of a gradient in the
    same layout). The ratio of the two is what the strided iteration costs (target LAYOUT_TARGET)."""
    shape = layout_shape(n)
    size = shape[0] * shape[1] * shape[2] * shape[3]

    def build() -> list[Impl]:
        twin = _random(shape, DTYPES["float32"], SEED)
        grad_twin = _random(shape, DTYPES["float32"], SEED + 1)
        channels_last = np.ascontiguousarray(twin.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        grad_last = np.ascontiguousarray(grad_twin.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)

        # Outputs kept between calls, in the input's layout (empty_like keeps strides), as the other dropout
        # cases keep theirs: a fresh 64 MiB output per call adds its page faults to both sides, which hid
        # the strided pass's own cost (0.59-0.84 in three runs before the outputs were kept).
        def run(x: np.ndarray, g: np.ndarray) -> Callable[[], object]:
            y, dx = np.empty_like(x), np.empty_like(g)
            if op == "forward":
                return partial(rdf.dropout, x, P, seed=SEED, out=y)

            def both() -> object:
                _, mask = rdf.dropout(x, P, seed=SEED, out=y)
                return rdf.dropout_backward(g, mask, out=dx)

            return both

        nbytes = 2 * size * 4 + size // 8 if op == "forward" else 4 * size * 4 + 2 * (size // 8)
        return [Impl("channels_last", "regdrop_fast", run(channels_last, grad_last), nbytes),
                Impl("C-contiguous twin", "contiguous", run(twin, grad_twin), nbytes)]

    return Case("layout", f"dropout {op}", "float32", size, f"layout {op} n={size_label(size)}", build)


GLOBAL_TARGET = 0.9  # Shard(1) block speed / contiguous call speed the global case is held to (issue 16)
GLOBAL_COLS = 4096  # columns of the global tensor: a tensor-parallel hidden size split in two


def global_case(op: str, n: int) -> Case:
    """dropout of a Shard(1) block against a contiguous call of the same size: the block is the right half
    of a (R, 4096) float32 tensor, local (R, 2048) at column 2048 with R = n / 2048 (so n elements), its rows
    runs of 2048 elements in the global flat index (global_shape=, local_start=); the twin is the same
    (R, 2048) array dropped as a plain call. ``op`` "forward" or "forward+backward" (the backward from the
    stored bits, which is a plain pass). The ratio of the two is what global addressing costs (target
    GLOBAL_TARGET)."""
    half = GLOBAL_COLS // 2
    rows = max(1, n // half)
    size = rows * half
    block = {"global_shape": (rows, GLOBAL_COLS), "local_start": (0, half)}

    def build() -> list[Impl]:
        x = _random((rows, half), DTYPES["float32"], SEED)
        g = _random((rows, half), DTYPES["float32"], SEED + 1)
        y = np.empty_like(x)

        def run(extra: dict) -> Callable[[], object]:
            if op == "forward":
                return partial(rdf.dropout, x, P, seed=SEED, out=y, **extra)

            def both() -> object:
                _, mask = rdf.dropout(x, P, seed=SEED, out=y, **extra)
                return rdf.dropout_backward(g, mask, out=y)

            return both

        nbytes = 2 * size * 4 + size // 8 if op == "forward" else 4 * size * 4 + 2 * (size // 8)
        return [Impl("Shard(1) block (global_shape=)", "regdrop_fast", run(block), nbytes),
                Impl("contiguous call", "contiguous", run({}), nbytes)]

    return Case("global", f"dropout {op}", "float32", size, f"global {op} n={size_label(size)}", build,
                extra={"shape": [rows, half], "global_shape": [rows, GLOBAL_COLS]})


def parse_size(text: str) -> int:
    """An element count written as an integer ("65536") or a power of two ("2^16"); > 0."""
    s = text.strip()
    try:
        if "^" in s:
            base, exp = s.split("^", 1)
            if base.strip() != "2":
                raise ValueError
            e = int(exp)
            if e < 0:
                raise ValueError
            value = 1 << e
        else:
            value = int(s)
    except ValueError:
        raise ValueError(f"size {text!r} is neither a positive integer nor 2^K") from None
    if value <= 0:
        raise ValueError(f"size {text!r} must be positive")
    if value > 1 << 34:
        raise ValueError(f"size {text!r} exceeds 2^34 elements")
    return value


def size_label(n: int) -> str:
    """'2^20' for powers of two, else the plain count."""
    return f"2^{n.bit_length() - 1}" if n & (n - 1) == 0 else str(n)


def default_sizes(quick: bool) -> list[int]:
    exps: Sequence[int] = range(10, 25, 2)
    if quick:
        exps = (10, 14, 18, 22)
    return [1 << e for e in exps]

