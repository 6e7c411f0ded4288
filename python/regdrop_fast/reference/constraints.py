"""The weight constraints of Keras written for reading: the specification of csrc/common/constraint_element.h.

norm_constraint (Keras MinMaxNorm; unit_norm is its case min_value = max_value = 1) works on max_norm's
slices with max_norm's norms (regdrop_fast.reference.penalty.slice_norms: float64, 16 lanes folded), so a
slice's decision and factor are the kernels' bit for bit; the factor is formed in float64 and each element
becomes w * C(factor) in the compute type C (float32, float64 for float64 arrays), rounded once.
non_neg sets negative elements to +0. prox_group_l1 (group soft-thresholding) works on the same slices.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _args, _lists, _validate
from .penalty import _compute_type, slice_norms


def _outside(norms: np.ndarray, lo: float, hi: float, rate: float) -> np.ndarray:
    """The slices rescaled: rate > 0, norm > 0 and outside [lo, hi], finite unless rate == 1 (NaN: never)."""
    with np.errstate(invalid="ignore"):
        out = (norms > 0) & ((norms < lo) | (norms > hi))
        if rate != 1.0:
            out &= np.isfinite(norms)
    return out & (rate > 0.0)


def _factors(norms: np.ndarray, lo: float, hi: float, rate: float) -> np.ndarray:
    """desired / norm in float64, desired = rate * clip + (1 - rate) * norm (exactly the clip for rate 1)."""
    clipped = np.where(norms > hi, hi, lo)
    desired = clipped if rate == 1.0 else rate * clipped + (1.0 - rate) * norms
    return desired / norms


def norm_constraint(w: Any, *, min_value: float = 0.0, max_value: float = math.inf, rate: float = 1.0,
                    axis: int | tuple[int, ...]) -> int:
    """NumPy specification of ``regdrop_fast.norm_constraint``, equal to it bit for bit.

    Slices (indexed by the axes not in ``axis``) whose L2 norm over ``axis`` lies outside
    ``[min_value, max_value]`` become ``w * C(desired / norm)`` with
    ``desired = rate * clip(norm, min_value, max_value) + (1 - rate) * norm``; slices of norm 0, NaN norms,
    infinite norms unless rate is 1, and every slice when rate is 0 are left alone. Works on host arrays only
    (NumPy arrays or CPU tensors, viewed as NumPy).

    Parameters
    ----------
    w : array
        Updated in place (writeable).
    min_value, max_value : float
        The bounds, 0 <= min_value <= max_value, max_value > 0 (may be inf).
    rate : float, default 1.0
        In [0, 1].
    axis : int or tuple of int
        The axes the norm is taken over.

    Returns
    -------
    int
        The number of slices rescaled.

    Raises
    ------
    TypeError
        An unsupported array or dtype, a non-numeric bound, a non-integer axis.
    ValueError
        Bounds or rate out of range, an axis out of range or repeated, a read-only array. Nothing is
        written.

    Examples
    --------
    >>> w_ref = np.array([[3.0, 0.1], [4.0, 0.1]], np.float32)
    >>> w_native = w_ref.copy()
    >>> rf.reference.norm_constraint(w_ref, min_value=0.5, max_value=1.0, axis=0)
    2
    >>> rf.norm_constraint(w_native, min_value=0.5, max_value=1.0, axis=0)
    2
    >>> np.array_equal(w_ref, w_native)
    True
    """
    _, call = _validate.norm_constraint(w, min_value, max_value, rate, axis, False, host_only=True)
    return _apply(call.slices.w, call.slices.axes, call.min_value, call.slices.max_value, call.rate)


def unit_norm(w: Any, *, axis: int | tuple[int, ...]) -> int:
    """NumPy specification of ``regdrop_fast.unit_norm``: ``norm_constraint`` with min_value = max_value = 1.

    Parameters
    ----------
    w : array
        Updated in place (writeable).
    axis : int or tuple of int
        The axes the norm is taken over.

    Returns
    -------
    int
        The number of slices rescaled.

    Raises
    ------
    TypeError
        An unsupported array or dtype, a non-integer axis.
    ValueError
        An axis out of range or repeated, a read-only array. Nothing is written.

    Examples
    --------
    >>> w_ref = np.array([[3.0, 0.0], [4.0, 0.0]], np.float32)
    >>> w_native = w_ref.copy()
    >>> rf.reference.unit_norm(w_ref, axis=0), rf.unit_norm(w_native, axis=0)
    (1, 1)
    >>> np.array_equal(w_ref, w_native)
    True
    """
    _, call = _validate.norm_constraint(w, 1.0, 1.0, 1.0, axis, False, host_only=True)
    return _apply(call.slices.w, call.slices.axes, 1.0, 1.0, 1.0)


def _apply(w: np.ndarray, axes: tuple, lo: float, hi: float, rate: float) -> int:
    kept = tuple(a for a in range(w.ndim) if a not in axes)
    order = kept + axes
    # One row per slice; the reduced axes in their original order make the reduced index C order.
    n_slices, n_reduced = math.prod(w.shape[a] for a in kept), math.prod(w.shape[a] for a in axes)
    rows = np.transpose(w, order).reshape(n_slices, n_reduced).copy()
    norms = slice_norms(rows)
    change = _outside(norms, lo, hi, rate)
    if change.any():
        ct = _compute_type(w.dtype)
        factor = _factors(norms[change], lo, hi, rate).astype(ct)
        with np.errstate(all="ignore"):
            rows[change] = (rows[change].astype(ct) * factor[:, None]).astype(w.dtype)
        w[...] = np.transpose(rows.reshape([w.shape[a] for a in order]), np.argsort(order))
    return int(np.count_nonzero(change))


def non_neg(params: Any) -> int:
    """NumPy specification of ``regdrop_fast.non_neg``, equal to it bit for bit.

    In place, every element ``w < 0`` becomes +0; others (+-0, positive, +inf, NaN) stay. Returns the number
    of elements that were negative, over all arrays. Works on host arrays only.

    Parameters
    ----------
    params : array or sequence of arrays
        Updated in place (writeable, not overlapping).

    Returns
    -------
    int
        The number of elements set to zero.

    Raises
    ------
    TypeError
        Arrays of an unsupported kind or dtype.
    ValueError
        Read-only or overlapping arrays. Nothing is written.

    Examples
    --------
    >>> w_ref = np.array([-1.0, 0.5, -0.0, np.nan], np.float32)
    >>> w_native = w_ref.copy()
    >>> rf.reference.non_neg(w_ref), rf.non_neg(w_native)
    (1, 1)
    >>> np.array_equal(w_ref, w_native, equal_nan=True)
    True
    """
    _, call = _validate.non_neg(params, False, host_only=True)
    params = _lists.host_arrays(call.params, None, written_params=True)
    negatives = 0
    for w in params:
        with np.errstate(invalid="ignore"):
            negative = w < 0
        negatives += int(np.count_nonzero(negative))
        w[negative] = 0
    return negatives


def prox_group_l1(params: Any, threshold: Any, *, axis: int | tuple[int, ...]) -> int:
    """NumPy specification of ``regdrop_fast.prox_group_l1``, equal to it bit for bit.

    Each group (a slice of max_norm over ``axis``) with norm <= t becomes +0; a group with a larger norm
    becomes ``w * C(1 - t / norm)`` (the factor in float64, rounded once to the compute type C, each product
    rounded once); t = 0 and NaN norms leave a group alone. Returns the number of groups zero afterwards
    (groups of no elements, over an axis of length 0, are not counted). Works on host arrays only.

    Parameters
    ----------
    params : array or sequence of arrays
        Updated in place (writeable, not overlapping).
    threshold : float or sequence of float
        >= 0, one for all arrays or one per array.
    axis : int or tuple of int
        The axes each group's norm is taken over.

    Returns
    -------
    int
        The number of groups set to zero.

    Raises
    ------
    TypeError
        Arrays of an unsupported kind or dtype, a non-numeric threshold, a non-integer axis.
    ValueError
        A negative threshold, an axis out of range, read-only or overlapping arrays. Nothing is written.

    Examples
    --------
    >>> w_ref = np.array([[3.0, 4.0], [0.3, 0.4]], np.float32)
    >>> w_native = w_ref.copy()
    >>> rf.reference.prox_group_l1(w_ref, 1.0, axis=1), rf.prox_group_l1(w_native, 1.0, axis=1)
    (1, 1)
    >>> np.array_equal(w_ref, w_native)
    True
    """
    _, call = _validate.prox_group_l1(params, threshold, axis, False, host_only=True)
    zeroed = 0
    for c, t in zip(call.slices, _args.as_list(call.thresholds, len(call.slices))):
        w, axes = c.w, c.axes
        kept = tuple(a for a in range(w.ndim) if a not in axes)
        order = kept + axes
        n_groups, n_reduced = math.prod(w.shape[a] for a in kept), math.prod(w.shape[a] for a in axes)
        rows = np.transpose(w, order).reshape(n_groups, n_reduced).copy()
        norms = slice_norms(rows)
        with np.errstate(invalid="ignore"):
            zero = norms <= t
            shrink = (norms > t) & (t != 0.0)
        ct = _compute_type(w.dtype)
        rows[zero] = 0
        if shrink.any():
            factor = (1.0 - t / norms[shrink]).astype(ct)
            with np.errstate(all="ignore"):
                rows[shrink] = (rows[shrink].astype(ct) * factor[:, None]).astype(w.dtype)
        w[...] = np.transpose(rows.reshape([w.shape[a] for a in order]), np.argsort(order))
        zeroed += int(np.count_nonzero(zero)) if n_reduced else 0  # a group of no elements is not counted
    return zeroed
