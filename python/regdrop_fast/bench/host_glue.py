"""The host cost of one CUDA list call: ``penalty_grad`` and ``prox_l1`` over ResNet-50's 161 parameter arrays
(and their 161 gradients), the Python and binding work per call that is not the kernels'. Target: under
HOST_TARGET_US microseconds per call (issue 19), so that the host keeps ahead of the GPU, which needs about
80 us for the penalty_grad over 25.6 M float32 values at ~4 TB/s.

    python -m regdrop_fast.bench.host_glue [--device stand-in|cuda] [--calls N]

``stand-in`` (any machine): the arrays are stand-ins for CuPy arrays (host memory, their fields stored as
attributes, as cheap to read as CuPy's own), allocation goes through a stand-in CuPy module, and the kernel
module is a stub whose list entry points take the same arguments and do nothing: the time is regdrop_fast's
validation, plan lookup, scratch allocation and call. The bindings' own argument conversion is not in it
(it is ~1 us for the NumPy columns the backend passes). ``cuda``: PyTorch CUDA tensors and the real
kernels; the calls are queued without waiting, so the host time per call is what is measured (the GPU's
own time is the penalty row of ``regdrop-fast bench --device cuda``).

Time is the calling thread's CPU time (time.thread_time) over `calls` calls, the median of `repeats` samples:
on a loaded machine the wall clock also counts the time other processes hold the CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import sys
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .shapes import RESNET50_PARAMETERS

HOST_TARGET_US = 100.0  # per call, 161 arrays (+ 161 gradients)
L2, THRESHOLD = 1e-4, 1e-6


class StandInArray:
    """A stand-in CuPy array over host memory: regdrop_fast takes an object for a CuPy array when its type's
    module is "cupy" and it has __cuda_array_interface__; every field is a stored attribute, as CuPy's are
    C-level fields."""

    __module__ = "cupy"

    def __init__(self, host: np.ndarray) -> None:
        self.host = host
        self.data = types.SimpleNamespace(ptr=host.__array_interface__["data"][0])
        self.device = types.SimpleNamespace(id=0)
        self.shape, self.strides, self.dtype, self.size = host.shape, host.strides, host.dtype, host.size
        self.flags = types.SimpleNamespace(c_contiguous=host.flags.c_contiguous)
        self.__cuda_array_interface__ = {"shape": host.shape, "data": (self.data.ptr, False), "version": 3}

    def item(self) -> Any:
        return self.host.item()


def _stand_in_cupy() -> types.ModuleType:
    """What regdrop_fast uses of CuPy for a list call: empty() on a device, the current stream."""
    mod = types.ModuleType("cupy")
    mod.empty = lambda shape, dtype: StandInArray(np.empty(shape, dtype))  # type: ignore[attr-defined]
    mod.cuda = types.SimpleNamespace(  # type: ignore[attr-defined]
        Device=lambda i: contextlib.nullcontext(), get_current_stream=lambda: types.SimpleNamespace(ptr=1))
    return mod


def _stub_kernels(chunk: int) -> types.SimpleNamespace:
    """The CUDA module's list entry points and constants, doing nothing."""
    def penalty_grad(dtype, n, params, grads, l1, l2, slots, slot_capacity, out, device, stream):
        return None

    def prox_l1(dtype, n, params, threshold, slots, slot_capacity, out, device, stream):
        return None

    return types.SimpleNamespace(penalty_grad=penalty_grad, prox_l1=prox_l1, CHUNK_ELEMS=chunk,
                                 MAX_NORM_SLOTS=1024, device_count=lambda: 1)


@contextlib.contextmanager
def stand_in() -> Iterator[tuple[list, list]]:
    """(params, grads) of ResNet-50's shapes as stand-in CuPy arrays, with the stand-in CuPy module and the
    stub kernels installed for the duration (both restored afterwards)."""
    from regdrop_fast import _native

    shapes = [s for _, s in RESNET50_PARAMETERS]
    params = [StandInArray(np.zeros(math.prod(s), np.float32).reshape(s)) for s in shapes]
    grads = [StandInArray(np.zeros(math.prod(s), np.float32).reshape(s)) for s in shapes]
    saved_cupy, saved_cuda = sys.modules.get("cupy"), _native.cuda
    chunk = 1 << 14 if saved_cuda is None else saved_cuda.CHUNK_ELEMS
    sys.modules["cupy"] = _stand_in_cupy()
    _native.cuda = _stub_kernels(chunk)  # type: ignore[assignment]
    try:
        yield params, grads
    finally:
        _native.cuda = saved_cuda
        if saved_cupy is None:
            del sys.modules["cupy"]
        else:
            sys.modules["cupy"] = saved_cupy


def per_call_us(fn: Callable[[], object], calls: int, repeats: int = 7, warmup: int = 20,
                after: Callable[[], object] = lambda: None) -> float:
    """Median over `repeats` samples of the calling thread's CPU time per call of fn, in microseconds
    (`after` runs after each sample, untimed: a device synchronize)."""
    for _ in range(warmup):
        fn()
    after()
    samples = []
    for _ in range(repeats):
        t0 = time.thread_time()
        for _ in range(calls):
            fn()
        samples.append((time.thread_time() - t0) / calls)
        after()
    return statistics.median(samples) * 1e6


def rows(params: list, grads: list, calls: int, after: Callable[[], object] = lambda: None) -> list[dict]:
    """The host cost rows of penalty_grad and prox_l1 over params (and grads), each against the target."""
    import regdrop_fast as rf

    cases = {
        "penalty_grad(params, grads, l2)": lambda: rf.penalty_grad(params, grads, l2=L2),
        "prox_l1(params, threshold)": lambda: rf.prox_l1(params, THRESHOLD),
    }
    out = []
    for name, fn in cases.items():
        us = per_call_us(fn, calls, after=after)
        out.append({"call": name, "arrays": len(params), "us_per_call": us, "target_us": HOST_TARGET_US,
                    "met": us < HOST_TARGET_US})
    return out


def cuda_rows(torch: Any, calls: int = 100) -> list[dict]:
    """rows() on PyTorch CUDA tensors of ResNet-50's shapes with the real kernels (queued, not waited for)."""
    shapes = [s for _, s in RESNET50_PARAMETERS]
    params = [torch.zeros(s, device="cuda") for s in shapes]
    grads = [torch.zeros(s, device="cuda") for s in shapes]
    return rows(params, grads, calls, after=torch.cuda.synchronize)


def format_rows(found: list[dict], device: str) -> str:
    lines = [f"host cost per CUDA list call ({device}; thread CPU time, median of 7 samples)"]
    for r in found:
        lines.append(f"  {r['call']:34s} {r['arrays']} arrays: {r['us_per_call']:7.1f} us per call "
                     f"(target < {r['target_us']:.0f} us: {'met' if r['met'] else 'NOT met'})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("stand-in", "cuda"), default="stand-in")
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args(argv)
    if args.device == "cuda":
        import torch

        found = cuda_rows(torch, args.calls)
    else:
        with stand_in() as (params, grads):
            found = rows(params, grads, args.calls)
    print(format_rows(found, args.device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
