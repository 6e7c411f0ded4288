"""drop_path, alpha_dropout and alpha_dropout_backward written for reading: the decisions are dropout's at
the reduced shape (reference/dropout.py), only the values differ (docs/rng.md, "Broadcast axes")."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .. import _validate
from .._calls import VariantCall
from .._mask import Mask
from .dropout import _apply_broadcast, _deliver, dropout_mask, mask_keep


def _block_kwargs(call: VariantCall) -> dict[str, Any]:
    """dropout_mask's global_shape= and local_start= of a validated call (none for a plain call)."""
    b = call.full_block
    return {} if b is None else {"global_shape": b.global_shape, "local_start": b.local_start}


def drop_path(x: Any, p: float, *, scale_by_keep: bool = True, seed: int | None = None, offset: int = 0,
              out: Any = None, store: str = "bits", global_shape: Sequence[int] | None = None,
              local_start: Sequence[int] | None = None) -> tuple[np.ndarray, Mask]:
    """NumPy specification of ``regdrop_fast.drop_path``, equal to it bit for bit.

    ``dropout(x, p, broadcast_dims=(1, ..., ndim - 1))``: one decision per sample (axis 0), decision i at
    stream position ``offset + i``; kept samples are ``x * scale`` with ``scale = 1 / (1 - p)``, or 1 with
    ``scale_by_keep=False``, computed and rounded as dropout's; dropped samples are 0. Host arrays only.

    Parameters
    ----------
    x : array_like
        A float array of at least one axis.
    p : float
        Drop probability of a sample.
    scale_by_keep : bool, default True
        Scale kept samples by ``1 / (1 - p)``.
    seed : int, optional
        Seed in ``[0, 2**64)``; None draws one.
    offset : int, default 0
        Position of sample 0's decision in the stream.
    out : ndarray, optional
        Where to write y.
    store : {"bits", "seed"}, default "bits"
        Keep the bits or only the seed.
    global_shape, local_start : sequence of int, optional
        x is the block at local_start of a global tensor of shape global_shape (``dropout_mask``'s).

    Returns
    -------
    y : ndarray
    mask : regdrop_fast.Mask

    Examples
    --------
    >>> x = np.arange(8, dtype=np.float32).reshape(4, 2)
    >>> y, m = rf.reference.drop_path(x, 0.5, seed=1)
    >>> np.array_equal(y, rf.drop_path(x, 0.5, seed=1)[0])
    True
    """
    _, call = _validate.variant(x, p, (), seed, offset, out, store, "drop_path", scale_by_keep, global_shape,
                                local_start, host_only=True)
    mask = dropout_mask(call.shape, call.p, seed=call.seed, offset=call.offset, broadcast_dims=call.dims,
                        **_block_kwargs(call))
    mask.scale_by_keep = bool(scale_by_keep)
    y = _deliver(_apply_broadcast(call.x, mask_keep(mask, mask.bits), mask.scale), call.x, call.out)
    if not call.keep_bits:
        mask.bits = None
    return y, mask


def _alpha_values(x: np.ndarray, keep: np.ndarray, a: float, b: float, sat: float) -> np.ndarray:
    """(keep ? x : sat) * a + b in float32 (float64 for float64 input): the product rounded, then the sum,
    then one rounding to x's dtype. A selection: a dropped NaN or inf becomes the dropped constant."""
    compute: Any = np.float64 if x.dtype == np.float64 else np.float32
    with np.errstate(all="ignore"):  # overflow to inf is the defined result, not an error
        v = np.where(np.broadcast_to(keep, x.shape), x.astype(compute), compute(sat))
        return ((v * compute(a)) + compute(b)).astype(x.dtype)


def alpha_dropout(x: Any, p: float, *, broadcast_dims: int | Sequence[int] = (), seed: int | None = None,
                  offset: int = 0, out: Any = None, store: str = "bits", global_shape: Sequence[int] | None = None,
                  local_start: Sequence[int] | None = None) -> tuple[np.ndarray, Mask]:
    """NumPy specification of ``regdrop_fast.alpha_dropout``, equal to it bit for bit.

    The decisions of ``dropout(x, p, broadcast_dims=..., seed=, offset=)``; then
    ``y = (keep ? x : sat) * a + b`` with ``sat = -1.0507009873554805 * 1.6732632423543772``,
    ``a = ((1 - p) * (1 + p * sat**2)) ** -0.5`` and ``b = -a * sat * p`` (``a = b = 0`` when p rounds to
    1), each constant rounded once to the compute type (float32; float64 for float64). Host arrays only.

    Parameters
    ----------
    x : array_like
        A float array.
    p : float
        Drop probability.
    broadcast_dims : int or sequence of int, default ()
        Axes sharing one decision.
    seed : int, optional
        Seed in ``[0, 2**64)``; None draws one.
    offset : int, default 0
        Position of decision 0 in the stream.
    out : ndarray, optional
        Where to write y.
    store : {"bits", "seed"}, default "bits"
        Keep the bits or only the seed.
    global_shape, local_start : sequence of int, optional
        x is the block at local_start of a global tensor of shape global_shape (``dropout_mask``'s).

    Returns
    -------
    y : ndarray
    mask : regdrop_fast.Mask

    Examples
    --------
    >>> x = np.linspace(-2, 2, 9, dtype=np.float32)
    >>> np.array_equal(rf.reference.alpha_dropout(x, 0.3, seed=2)[0], rf.alpha_dropout(x, 0.3, seed=2)[0])
    True
    """
    _, call = _validate.variant(x, p, broadcast_dims, seed, offset, out, store, "alpha", True, global_shape,
                                local_start, host_only=True)
    mask = dropout_mask(call.shape, call.p, seed=call.seed, offset=call.offset, broadcast_dims=call.dims,
                        **_block_kwargs(call))
    rule = call.alpha
    y = _deliver(_alpha_values(call.x, mask_keep(mask, mask.bits), rule.a, rule.b, rule.sat), call.x, call.out)
    if not call.keep_bits:
        mask.bits = None
    return y, mask


def alpha_dropout_backward(grad: Any, mask: Mask, *, out: Any = None) -> np.ndarray:
    """NumPy specification of ``regdrop_fast.alpha_dropout_backward``: ``keep ? grad * a : 0``, computed and
    rounded as dropout's backward with a in place of its scale. Host arrays only.

    Parameters
    ----------
    grad : array_like
        Gradient with respect to y.
    mask : regdrop_fast.Mask
        From ``alpha_dropout``.
    out : ndarray, optional
        Where to write the result.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> _, m = rf.alpha_dropout(np.ones(5, np.float32), 0.4, seed=9, store="seed")
    >>> g = np.arange(5, dtype=np.float32)
    >>> np.array_equal(rf.reference.alpha_dropout_backward(g, m), rf.alpha_dropout_backward(g, m))
    True
    """
    _, call = _validate.variant_backward(grad, mask, out, alpha=True, host_only=True)
    return _deliver(_apply_broadcast(call.x, mask_keep(mask, call.bits), call.scale), call.x, call.out)
