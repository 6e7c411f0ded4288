"""The fused transformer epilogue residual + dropout(x + bias) and its backward, written for reading."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _validate
from .._mask import Mask
from .dropout import _apply, _deliver, dropout_backward, dropout_mask

# Rows of dx per partial sum of the bias gradient (csrc/common/bias_dropout_add_element.h: kBiasRowBlock).
ROW_BLOCK = 64


def _compute_type(dtype: np.dtype) -> Any:
    return np.float64 if dtype == np.float64 else np.float32


def bias_dropout_add(x: Any, bias: Any, residual: Any, p: float, *, seed: int | None = None, offset: int = 0,
                     out: Any = None, store: str = "bits", global_shape: Sequence[int] | None = None,
                     local_start: Sequence[int] | None = None) -> tuple[np.ndarray, Mask]:
    """NumPy specification of ``regdrop_fast.bias_dropout_add``, equal to it bit for bit (y and mask).

    The mask is ``dropout_mask(x.shape, p, seed=seed, offset=offset, global_shape=global_shape,
    local_start=local_start)`` (a block of a global tensor: the whole tensor's decisions at the block). In float32 (float64 for float64
    input): ``t = x + bias`` (bias along the last axis), ``d = t * (1 / (1 - p))`` where kept and exactly 0
    where dropped (a selection), ``y = residual + d``; only y is rounded to x's dtype. Host arrays only.

    Parameters
    ----------
    x : array_like
        float32, float64, float16 or bfloat16 array, any shape.
    bias : array_like or None
        Shape ``(x.shape[-1],)``, x's dtype; None for no bias.
    residual : array_like
        x's shape and dtype.
    p : float
        Drop probability, ``0 <= p <= 1``.
    seed : int, optional
        Seed in ``[0, 2**64)``; None draws a fresh one.
    offset : int, default 0
        Position of element 0 in the random stream.
    out : ndarray, optional
        Where to write y (C-contiguous); may be x or residual itself.
    store : {"bits", "seed"}, default "bits"
        Keep the mask as packed bits or only the seed.
    global_shape : sequence of int, optional
        x is the block at local_start of a global tensor of this shape; bias is the block's own slice.
    local_start : sequence of int, optional
        The global index of x's first element (default zeros); only with global_shape.

    Returns
    -------
    y : ndarray
        ``residual + dropout(x + bias)`` (``out`` when given).
    mask : regdrop_fast.Mask
        The mask of ``dropout(x, p, seed=seed, offset=offset, global_shape=global_shape,
        local_start=local_start)``.

    Raises
    ------
    TypeError
        An argument is not an array of a supported dtype, or has the wrong type.
    ValueError
        As ``regdrop_fast.bias_dropout_add``.

    Examples
    --------
    >>> x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
    >>> b, r = np.ones(3, np.float32), np.ones((4, 3), np.float32)
    >>> y, m = rf.reference.bias_dropout_add(x, b, r, 0.3, seed=7)
    >>> y2, m2 = rf.bias_dropout_add(x, b, r, 0.3, seed=7)
    >>> np.array_equal(y, y2), np.array_equal(m.bits, m2.bits)
    (True, True)
    """
    _, call = _validate.bias_dropout_add(x, bias, residual, p, seed, offset, out, store, global_shape, local_start,
                                         host_only=True)
    x = call.x
    b = call.block
    block = {} if b is None else {"global_shape": b.global_shape, "local_start": b.local_start}
    mask = dropout_mask(x.shape, call.p, seed=call.seed, offset=call.offset, **block)
    keep = np.unpackbits(mask.bits, count=x.size, bitorder="little").astype(bool)
    compute = _compute_type(x.dtype)
    with np.errstate(all="ignore"):  # overflow to inf is the defined result
        t = x.astype(compute)
        if call.bias is not None:
            t = t + call.bias.astype(compute)
        y = (call.residual.astype(compute) + _apply(t, keep, mask.scale)).astype(x.dtype)
    y = _deliver(y, np.empty(y.shape, y.dtype), call.out)  # C order (like: a C array), as the fused kernels return y
    if not call.keep_bits:
        mask = Mask(mask.shape, call.p, call.seed, call.offset, None, **block)
    return y, mask


def dropout_add(x: Any, residual: Any, p: float, *, seed: int | None = None, offset: int = 0, out: Any = None,
                store: str = "bits", global_shape: Sequence[int] | None = None,
                local_start: Sequence[int] | None = None) -> tuple[np.ndarray, Mask]:
    """NumPy specification of ``regdrop_fast.dropout_add``: ``bias_dropout_add`` with no bias.

    Parameters
    ----------
    x : array_like
        A supported float array.
    residual : array_like
        x's shape and dtype.
    p : float
        Drop probability.
    seed : int, optional
        Seed in ``[0, 2**64)``.
    offset : int, default 0
        Position of element 0 in the random stream.
    out : ndarray, optional
        Where to write y.
    store : {"bits", "seed"}, default "bits"
        Keep the mask as packed bits or only the seed.
    global_shape : sequence of int, optional
        x is the block at local_start of a global tensor of this shape.
    local_start : sequence of int, optional
        The global index of x's first element; only with global_shape.

    Returns
    -------
    y : ndarray
        ``residual + dropout(x)``.
    mask : regdrop_fast.Mask
        dropout's mask.

    Raises
    ------
    TypeError
        A bad array or argument type.
    ValueError
        As ``regdrop_fast.dropout_add``.

    Examples
    --------
    >>> x, r = np.ones(5, np.float16), np.ones(5, np.float16)
    >>> np.array_equal(rf.reference.dropout_add(x, r, 0.5, seed=4)[0], rf.dropout_add(x, r, 0.5, seed=4)[0])
    True
    """
    return bias_dropout_add(x, None, residual, p, seed=seed, offset=offset, out=out, store=store,
                            global_shape=global_shape, local_start=local_start)


def bias_dropout_add_backward(grad: Any, mask: Mask, *, out: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NumPy specification of ``regdrop_fast.bias_dropout_add_backward``, equal to it bit for bit.

    ``dx = dropout_backward(grad, mask)``; ``dbias`` adds the rows of dx (viewed as ``(rows, H)``, loaded into
    float32, float64 for float64) one after another within each block of ``ROW_BLOCK`` rows, starting from 0,
    then adds the block sums one after another in block order, starting from 0, and rounds the total once to
    grad's dtype; ``dresidual`` is grad itself. Host arrays only.

    Parameters
    ----------
    grad : array_like
        Gradient with respect to y: the mask's shape, at least one axis.
    mask : regdrop_fast.Mask
        From ``bias_dropout_add`` (either implementation).
    out : ndarray, optional
        Where to write dx (C-contiguous); may not overlap grad.

    Returns
    -------
    dx : ndarray
        ``dropout_backward(grad, mask)`` (``out`` when given).
    dbias : ndarray
        Shape ``(grad.shape[-1],)``, grad's dtype.
    dresidual : ndarray
        grad.

    Raises
    ------
    TypeError
        grad is not an array of a supported dtype, or mask is not a Mask.
    ValueError
        grad's shape differs from the mask's, grad is 0-d, or ``out`` does not fit or overlaps grad.

    Examples
    --------
    >>> g = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
    >>> _, m = rf.bias_dropout_add(np.ones((4, 3), np.float32), None, g, 0.5, seed=1)
    >>> ref, native = rf.reference.bias_dropout_add_backward(g, m), rf.bias_dropout_add_backward(g, m)
    >>> all(np.array_equal(a, b) for a, b in zip(ref, native))
    True
    """
    _, call = _validate.bias_dropout_add_backward(grad, mask, out, host_only=True)
    grad = call.grad.grad
    dx = dropout_backward(grad, mask, out=call.grad.out)
    compute = _compute_type(dx.dtype)
    rows = dx.reshape(call.rows, call.h).astype(compute)
    total = np.zeros(call.h, compute)
    with np.errstate(all="ignore"):  # overflow to inf is the defined result
        for start in range(0, call.rows, ROW_BLOCK):
            block_sum = np.zeros(call.h, compute)
            for row in rows[start:start + ROW_BLOCK]:
                block_sum = block_sum + row
            total = total + block_sum
        dbias = total.astype(dx.dtype)
    return dx, dbias, grad
