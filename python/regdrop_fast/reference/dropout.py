"""Inverted dropout, forward and backward, written for reading (docs/rng.md has the same rules in prose)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .. import _args, _validate
from .._mask import Mask
from .philox import dropout_words


def keep_decisions(n: int, p: float, seed: int, offset: int) -> np.ndarray:
    """Bool keep decision of each of the n elements: word >= round(p * 2^32); all False when that is 2^32."""
    threshold = _args.keep_threshold(p)
    if threshold == 1 << 32:
        return np.zeros(n, dtype=bool)
    return dropout_words(n, seed, offset) >= np.uint32(threshold)


def dropout_mask(shape: int | Sequence[int], p: float, *, seed: int, offset: int = 0) -> Mask:
    call = _validate.dropout_mask(shape, p, seed, offset)
    keep = keep_decisions(call.n, call.p, call.seed, call.offset)
    return Mask(call.shape, call.p, call.seed, call.offset, np.packbits(keep, bitorder="little"))


def _apply(values: np.ndarray, keep: np.ndarray, scale: float) -> np.ndarray:
    """keep ? value * scale : 0, computed in float32 (float64 for float64 input), rounded once to the dtype.

    A selection, not a multiply by zero: dropped NaN/inf become 0, kept ones propagate.
    """
    compute: Any = np.float64 if values.dtype == np.float64 else np.float32  # a NumPy scalar type
    with np.errstate(all="ignore"):  # overflow to inf is the defined result, not an error
        scaled = values.astype(compute) * compute(scale)
        result = np.where(keep.reshape(values.shape), scaled, compute(0))
        return result.astype(values.dtype)


def _deliver(result: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    if out is None:
        return result
    out[...] = result
    return out


# Array arguments (x, grad, out) are Any: any array-like, or a CPU tensor (viewed as NumPy).
def dropout(x: Any, p: float, *, seed: int | None = None, offset: int = 0, out: Any = None,
            store: str = "bits") -> tuple[np.ndarray, Mask]:
    _, call = _validate.dropout(x, p, seed, offset, out, store, host_only=True)
    x, p, seed, offset = call.x, call.p, call.seed, call.offset
    mask = dropout_mask(x.shape, p, seed=seed, offset=offset)
    keep = np.unpackbits(mask.bits, count=x.size, bitorder="little").astype(bool)
    y = _deliver(_apply(x, keep, mask.scale), call.out)
    if not call.keep_bits:
        mask = Mask(mask.shape, p, seed, offset, None)
    return y, mask


def dropout_backward(grad: Any, mask: Mask, *, out: Any = None) -> np.ndarray:
    _, call = _validate.dropout_backward(grad, mask, out, host_only=True)
    grad, out = call.grad, call.out
    if call.bits is not None:
        keep = np.unpackbits(call.bits, count=grad.size, bitorder="little").astype(bool)
    else:
        keep = keep_decisions(grad.size, mask.p, mask.seed, mask.offset)
    return _deliver(_apply(grad, keep, mask.scale), out)
