"""Native dropout: validate in Python (see _checks), then one fused pass in the C++ kernels."""

from __future__ import annotations

import numpy as np

from . import _checks, _core, cuda
from ._mask import Mask

def _source(a: np.ndarray, out) -> np.ndarray:
    """a as a C-contiguous array that the kernel may read while writing `out` (copied if they overlap)."""
    src = a if a.flags.c_contiguous else np.ascontiguousarray(a)
    if out is not None and src is not out and np.may_share_memory(src, out):
        src = src.copy()
    return src


def dropout(x, p, *, seed=None, offset=0, out=None, store="bits"):
    """Inverted dropout in one pass: returns (y, mask).

    Each element is kept with probability 1 - p and scaled by 1 / (1 - p); dropped elements are exactly 0.
    The keep decisions are a pure function of (seed, offset + flat index), see docs/rng.md.
    """
    on_device = not isinstance(x, np.ndarray) and cuda.is_device_array(x)
    if not on_device:
        x = _checks.float_array(x, "x")
    p, seed, offset, store = _checks.dropout_args(p, seed, offset, store)
    if on_device:
        return cuda.dropout(x, p, seed, offset, out, store)
    if out is not None:
        _checks.out_array(out, x)
    src = _source(x, out)
    y = np.empty(x.shape, x.dtype) if out is None else out
    bits = np.empty((x.size + 7) // 8, np.uint8) if store == "bits" else None
    threshold, drop_all, scale = _checks.kernel_params(p)
    _core.dropout_forward(
        _checks.DTYPE_CODES[x.dtype], src, y, bits, x.size, seed, offset, threshold, drop_all, scale
    )
    return y, Mask._trusted(x.shape, p, seed, offset, bits)


def dropout_backward(grad, mask, *, out=None):
    """grad * mask.scale where the mask kept the element, 0 elsewhere (mask from bits or regenerated)."""
    if isinstance(mask, Mask) and not isinstance(grad, np.ndarray) and cuda.is_device_array(grad):
        return cuda.dropout_backward(grad, mask, out)
    grad = _checks.backward_args(grad, mask, out)
    src = _source(grad, out)
    dx = np.empty(grad.shape, grad.dtype) if out is None else out
    threshold, drop_all, scale = _checks.kernel_params(mask.p)
    _core.dropout_backward(
        _checks.DTYPE_CODES[grad.dtype], src, dx, mask.bits, grad.size, mask.seed, mask.offset,
        threshold, drop_all, scale,
    )
    return dx


def dropout_mask(shape, p, *, seed, offset=0) -> Mask:
    """The Mask a dropout call with these arguments would return, without touching any data."""
    shape, p, seed, offset, n = _checks.mask_args(shape, p, seed, offset)
    bits = np.empty((n + 7) // 8, np.uint8)
    threshold, drop_all, _ = _checks.kernel_params(p)
    _core.dropout_mask(bits, n, seed, offset, threshold, drop_all)
    return Mask._trusted(shape, p, seed, offset, bits)
