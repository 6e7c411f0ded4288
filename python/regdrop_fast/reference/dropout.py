"""Inverted dropout, forward and backward, written for reading (docs/rng.md has the same rules in prose)."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .. import _args, _arrays, _validate
from .._mask import Mask
from .philox import dropout_words, stream_words


def keep_decisions(n: int, p: float, seed: int, offset: int) -> np.ndarray:
    """Bool keep decision of each of the n elements: word >= round(p * 2^32); all False when that is 2^32."""
    threshold = _args.keep_threshold(p)
    if threshold == 1 << 32:
        return np.zeros(n, dtype=bool)
    return dropout_words(n, seed, offset) >= np.uint32(threshold)


def global_indices(shape: tuple, global_shape: tuple, local_start: tuple) -> np.ndarray:
    """The flat C-order index in global_shape of each element of a block of this shape at local_start (a
    uint64 array of the block's shape): the sum over the axes of (local_start[d] + i_d) * global stride d."""
    index = np.zeros(shape, np.uint64)
    stride = 1
    for d in reversed(range(len(shape))):
        along = (np.arange(shape[d], dtype=np.uint64) + np.uint64(local_start[d])) * np.uint64(stride)
        index += along.reshape((-1,) + (1,) * (len(shape) - 1 - d))
        stride *= global_shape[d]
    return index


def global_keep_decisions(shape: tuple, global_shape: tuple, local_start: tuple, p: float, seed: int,
                          offset: int) -> np.ndarray:
    """Keep decisions (block's shape) of a block of a global tensor: the element of global flat index g
    decides with the word of stream position offset + g, as in one call on the whole tensor."""
    threshold = _args.keep_threshold(p)
    if threshold == 1 << 32:
        return np.zeros(shape, dtype=bool)
    g = np.uint64(offset) + global_indices(shape, global_shape, local_start).ravel()  # wraps mod 2^64
    return (stream_words(g, seed) >= np.uint32(threshold)).reshape(shape)


def dropout_mask(shape: int | Sequence[int], p: float, *, seed: int, offset: int = 0,
                 broadcast_dims: int | Sequence[int] = (), global_shape: Sequence[int] | None = None,
                 local_start: Sequence[int] | None = None) -> Mask:
    """NumPy specification of ``regdrop_fast.dropout_mask``, equal to it bit for bit.

    Element ``i`` is kept when the 32-bit Philox word of stream position ``offset + i`` is at least
    ``round(p * 2**32)`` (none is kept when that is ``2**32``, i.e. p = 1); see docs/rng.md.

    Parameters
    ----------
    shape : int or sequence of int
        Shape of the array the mask is for.
    p : float
        Drop probability, ``0 <= p <= 1``.
    seed : int
        Seed in ``[0, 2**64)``.
    offset : int, default 0
        Position of element 0 in the random stream.
    broadcast_dims : int or sequence of int, default ()
        Broadcast axes: the decisions are those of the reduced shape (shape with these axes set to 1).
    global_shape, local_start : sequence of int, optional
        The mask of a block of this shape at local_start of a global tensor: each element decides with the
        stream position offset + its flat index in global_shape.

    Returns
    -------
    Mask
        With packed bits (little bit order, C-order flat index of the reduced shape).

    Raises
    ------
    TypeError
        A non-integer shape, seed or offset.
    ValueError
        A negative dimension, p outside [0, 1], a negative seed or offset.

    Examples
    --------
    >>> m = rf.reference.dropout_mask((2, 3), 0.5, seed=42)
    >>> np.array_equal(m.bits, rf.dropout_mask((2, 3), 0.5, seed=42).bits)
    True
    """
    call = _validate.dropout_mask(shape, p, seed, offset, global_shape, local_start)
    dims = _args.broadcast_dims(broadcast_dims, len(call.shape))
    if call.block is not None:
        b = call.block
        mask = Mask(call.shape, call.p, call.seed, call.offset, broadcast_dims=dims, global_shape=b.global_shape,
                    local_start=b.local_start)
        mask.bits = np.packbits(mask_keep(mask, None).ravel(), bitorder="little")
        return mask
    reduced = _args.reduced_shape(call.shape, dims)
    keep = keep_decisions(math.prod(reduced), call.p, call.seed, call.offset)  # decision i: position offset + i
    return Mask(call.shape, call.p, call.seed, call.offset, np.packbits(keep, bitorder="little"),
                broadcast_dims=dims)


def mask_keep(mask: Mask, bits: Any) -> np.ndarray:
    """The decisions of a mask at its reduced shape, from bits (host array) or, when None, regenerated."""
    reduced = mask.reduced_shape
    n = math.prod(reduced)
    if bits is not None:
        return np.unpackbits(bits, count=n, bitorder="little").astype(bool).reshape(reduced)
    if mask.global_shape is not None and mask.local_start is not None:  # both or neither
        # a block's decisions are the block of the reduced global shape (broadcast axes set to 1, their
        # start to 0): those of one call on the whole tensor at the block's slices
        dims = mask.broadcast_dims
        rglobal = tuple(1 if d in dims else g for d, g in enumerate(mask.global_shape))
        rstart = tuple(0 if d in dims else s for d, s in enumerate(mask.local_start))
        return global_keep_decisions(reduced, rglobal, rstart, mask.p, mask.seed, mask.offset)
    return keep_decisions(n, mask.p, mask.seed, mask.offset).reshape(reduced)


def _apply(values: np.ndarray, keep: np.ndarray, scale: float) -> np.ndarray:
    """keep ? value * scale : 0, computed in float32 (float64 for float64 input), rounded once to the dtype.

    A selection, not a multiply by zero: dropped NaN/inf become 0, kept ones propagate.
    """
    compute: Any = np.float64 if values.dtype == np.float64 else np.float32  # a NumPy scalar type
    with np.errstate(all="ignore"):  # overflow to inf is the defined result, not an error
        scaled = values.astype(compute) * compute(scale)
        result = np.where(keep.reshape(values.shape), scaled, compute(0))
        return result.astype(values.dtype)


def _apply_broadcast(values: np.ndarray, keep: np.ndarray, scale: float) -> np.ndarray:
    """_apply with the decisions at a reduced shape, each applied to its whole slice (NumPy broadcasting)."""
    return _apply(values, np.broadcast_to(keep, values.shape), scale)


def _deliver(result: np.ndarray, like: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """result written into out, or into a new array in the input's layout (as the native call returns it)."""
    if out is None:
        out = _arrays.new_like(like)
    out[...] = result
    return out


# Array arguments (x, grad, out) are Any: any array-like, or a CPU tensor (viewed as NumPy).
def dropout(x: Any, p: float, *, broadcast_dims: int | Sequence[int] = (), seed: int | None = None,
            offset: int = 0, out: Any = None, store: str = "bits", global_shape: Sequence[int] | None = None,
            local_start: Sequence[int] | None = None) -> tuple[np.ndarray, Mask]:
    """NumPy specification of ``regdrop_fast.dropout``, equal to it bit for bit (y and mask).

    Kept elements become ``x * (1 / (1 - p))`` computed in float32 (float64 for float64 input) and rounded
    once to x's dtype; dropped elements are exactly 0 (a selection, so a dropped NaN or inf is 0 too).
    Works on host arrays only (a NumPy array, an array-like or a CPU tensor, viewed as NumPy).

    Parameters
    ----------
    x : array_like
        float32, float64, float16 or bfloat16 (``ml_dtypes``) array, any shape.
    p : float
        Drop probability, ``0 <= p <= 1``.
    broadcast_dims : int or sequence of int, default ()
        Axes sharing one decision: the decisions are ``dropout_mask`` of the reduced shape (x's shape with
        these axes set to 1), each applied to its whole slice.
    seed : int, optional
        Seed in ``[0, 2**64)``; None draws a fresh one from the OS (recorded in the mask).
    offset : int, default 0
        Position of element 0 in the random stream.
    out : ndarray, optional
        Where to write y (x's shape and dtype; ``out=x`` works in place).
    store : {"bits", "seed"}, default "bits"
        Keep the mask as packed bits or keep only the seed.
    global_shape, local_start : sequence of int, optional
        x is the block at local_start of a global tensor of shape global_shape: each element decides as
        the element of the same global index does in a call on the whole tensor (``global_keep_decisions``).

    Returns
    -------
    y : ndarray
        The dropped-out array (``out`` when given).
    mask : regdrop_fast.Mask
        What ``dropout_backward`` needs.

    Raises
    ------
    TypeError
        x is not an array of a supported dtype, or an argument has the wrong type.
    ValueError
        p outside [0, 1], a negative seed or offset, a bad ``store`` or an ``out`` of another shape or dtype.

    Examples
    --------
    >>> x = np.linspace(-1, 1, 10, dtype=np.float32)
    >>> y, mask = rf.reference.dropout(x, 0.3, seed=7)
    >>> y_native, mask_native = rf.dropout(x, 0.3, seed=7)
    >>> np.array_equal(y, y_native), np.array_equal(mask.bits, mask_native.bits)
    (True, True)
    """
    _, call = _validate.variant(x, p, broadcast_dims, seed, offset, out, store, "dropout", True, global_shape,
                                local_start, host_only=True)
    x, p, seed, offset = call.x, call.p, call.seed, call.offset
    b = call.full_block
    block = {} if b is None else {"global_shape": b.global_shape, "local_start": b.local_start}
    mask = dropout_mask(x.shape, p, seed=seed, offset=offset, broadcast_dims=call.dims, **block)
    y = _deliver(_apply_broadcast(x, mask_keep(mask, mask.bits), mask.scale), x, call.out)
    if not call.keep_bits:
        mask.bits = None
    return y, mask


def dropout_backward(grad: Any, mask: Mask, *, out: Any = None) -> np.ndarray:
    """NumPy specification of ``regdrop_fast.dropout_backward``, equal to it bit for bit.

    ``grad * mask.scale`` where the mask kept the element, 0 elsewhere (computed and rounded as in
    ``dropout``); the keep decisions come from the mask's bits or, for a ``store="seed"`` mask, are
    regenerated from its seed and offset. Works on host arrays only (a NumPy array, an array-like or a CPU tensor, viewed as NumPy).

    Parameters
    ----------
    grad : array_like
        Gradient with respect to y; the mask's shape, a supported float dtype.
    mask : regdrop_fast.Mask
        From ``dropout`` (either implementation) or ``dropout_mask``.
    out : ndarray, optional
        Where to write the result (grad's shape and dtype; ``out=grad`` works in place).

    Returns
    -------
    ndarray
        The gradient with respect to x (``out`` when given).

    Raises
    ------
    TypeError
        grad is not an array of a supported dtype, or mask is not a Mask.
    ValueError
        grad's shape differs from the mask's, or ``out`` does not fit.

    Examples
    --------
    >>> g = np.arange(6, dtype=np.float32)
    >>> _, mask = rf.dropout(np.ones(6, np.float32), 0.5, seed=3, store="seed")
    >>> np.array_equal(rf.reference.dropout_backward(g, mask), rf.dropout_backward(g, mask))
    True
    """
    _, call = _validate.variant_backward(grad, mask, out, host_only=True)
    return _deliver(_apply_broadcast(call.x, mask_keep(mask, call.bits), mask.scale), call.x, call.out)
