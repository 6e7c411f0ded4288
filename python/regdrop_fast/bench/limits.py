"""The limits every CPU row is measured against: what the same bytes cost on the same threads.

Benchmark instruments, not API. A dropout call reads x and writes y (plus an eighth of a byte of mask per
element); ``copy`` moves the same bytes with the kernels' own kind of access (vector loads and stores of
the SIMD width in use; non-temporal stores by the kernels' rule for their outputs, csrc/cpu/output_streaming.h,
applied to the copy's own bytes, half the row's: for a kernel that reads more arrays than it writes, as the
epilogue, the ruler streams from a smaller output than the kernel does), on the same thread pool, cut into
as many tasks as the kernel cuts the call into. penalty_grad reads w and g and writes g in place; ``rmw``
does ``dst ^= src`` over the same bytes. ``mask_only`` is the other ceiling of a row that draws random
words: the packed keep mask of n elements alone (Philox, compare, pack; n/8 bytes written), which is all the arithmetic of
the stream and almost no memory. A row's limit is the slower of the ceilings that apply to it.
"""

from __future__ import annotations

import numpy as np

from .. import _args, _native

# Elements per task of the dropout and penalty drivers (kDropoutTaskElems in csrc/cpu/isa.h,
# kPenaltyTaskElems in csrc/cpu/penalty_driver.h; tests/test_bench_limits.py reads them there).
DROPOUT_TASK_ELEMS = 1 << 16
PENALTY_TASK_ELEMS = 1 << 16


def tasks_for(elements: int, task_elems: int) -> int:
    """The number of tasks a driver cuts `elements` into (at least 1)."""
    return max(1, -(-elements // task_elems))


def _task_bytes(nbytes: int, tasks: int) -> int:
    """Bytes per task so that nbytes is cut into `tasks` tasks, each a whole number of 64-byte lines (fewer
    tasks only when there are fewer lines than tasks)."""
    if tasks < 1:
        raise ValueError(f"tasks: expected at least 1, got {tasks}")
    lines = -(-nbytes // 64)
    return max(1, -(-lines // tasks)) * 64


def _buffers(src: np.ndarray, dst: np.ndarray, what: str) -> int:
    for name, a in (("src", src), ("dst", dst)):
        if not isinstance(a, np.ndarray) or a.dtype != np.uint8 or a.ndim != 1 or not a.flags.c_contiguous:
            raise TypeError(f"{what}: {name} must be a 1-D C-contiguous uint8 NumPy array")
    if src.size != dst.size:
        raise ValueError(f"{what}: src has {src.size} bytes, dst {dst.size}")
    if not dst.flags.writeable:
        raise ValueError(f"{what}: dst is read-only")
    if np.may_share_memory(src, dst):
        raise ValueError(f"{what}: src and dst overlap (tasks on different threads would race)")
    return int(src.size)


def copy(src: np.ndarray, dst: np.ndarray, tasks: int = 1) -> None:
    """dst[:] = src on the kernels' thread pool, in `tasks` tasks."""
    n = _buffers(src, dst, "copy")
    _native.core.limit_copy(src, dst, n, _task_bytes(n, tasks))


def rmw(src: np.ndarray, dst: np.ndarray, tasks: int = 1) -> None:
    """dst ^= src in place on the kernels' thread pool, in `tasks` tasks."""
    n = _buffers(src, dst, "rmw")
    _native.core.limit_rmw(src, dst, n, _task_bytes(n, tasks))


def mask_only(bits: np.ndarray, n: int, p: float, seed: int) -> None:
    """The packed keep mask of n elements into bits (ceil(n/8) bytes, uint8): the dropout stream's
    arithmetic alone, on the same tasks and threads as a dropout call of n elements."""
    if not isinstance(bits, np.ndarray) or bits.dtype != np.uint8 or not bits.flags.c_contiguous \
            or not bits.flags.writeable or bits.size != (n + 7) // 8:
        raise ValueError(f"mask_only: bits must be a writeable C-contiguous uint8 array of {(n + 7) // 8} bytes")
    rule = _args.keep_rule(p)
    _native.core.dropout_mask(bits, n, seed, 0, rule.threshold, rule.drop_all)
