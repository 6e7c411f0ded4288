"""Weight penalties written for reading: the specification of csrc/common/penalty_element.h.

Compute type: float32 for float32, float16 and bfloat16 arrays, float64 for float64 arrays. Each result
is computed in the compute type with the operations in the order written here (every operation rounded,
nothing fused) and rounded once to the array's dtype. Coefficients are Python floats (float64) converted
once to the compute type where they enter an element formula.

Gradients, prox_l1, decay and max_norm agree with the native kernels bit for bit. The penalty value is
the float64 sum written below; the kernels add the same float64 terms in a fixed blocked order (16 lanes
per segment of at most 2^16 elements, see csrc/cpu/penalty_driver.h), so the two agree to within a few
float64 roundings (1e-12 relative is tested) and the kernels' value is the same bits on any thread count.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .. import _args, _lists, _validate
from .._calls import GroupView

SUM_LANES = 16  # csrc/common/penalty_element.h: kSumLanes

# Arrays and lists of arrays (params, grads, w) are Any: NumPy arrays, array-likes or CPU tensors. A
# coefficient is one number for every array or one per array (a sequence or an ndarray).


def _compute_type(dtype: np.dtype) -> Any:  # a NumPy scalar type: float32 or float64
    return np.float64 if dtype == np.float64 else np.float32


def _terms(l1: float, l2: float) -> tuple[bool, bool]:
    """A zero coefficient leaves its term out (it is not multiplied by 0: an inf weight gives no NaN)."""
    return l1 != 0.0, l2 != 0.0


def _grad_update(w: np.ndarray, g: np.ndarray, l1: float, l2: float) -> None:
    """g += l1*sign(w) + l2*w, as g + ((c1*sign(w)) + (c2*w)) in the compute type, rounded once."""
    with_l1, with_l2 = _terms(l1, l2)
    if not (with_l1 or with_l2):
        return
    ct = _compute_type(w.dtype)
    wc, gc = w.astype(ct), g.astype(ct)
    c1, c2 = ct(l1), ct(l2)
    with np.errstate(all="ignore"):  # inf and NaN are propagated, not errors
        if with_l1 and with_l2:
            new = gc + (c1 * np.sign(wc) + c2 * wc)
        elif with_l1:
            new = gc + c1 * np.sign(wc)
        else:
            new = gc + c2 * wc
        g[...] = new.astype(g.dtype)


def _value(w: np.ndarray, l1: float, l2: float) -> float:
    """l1*sum|w| + (l2/2)*sum w^2 in float64 (each omitted when its coefficient is 0)."""
    with_l1, with_l2 = _terms(l1, l2)
    wd = w.astype(np.float64).ravel()
    value = 0.0
    with np.errstate(all="ignore"):
        if with_l1:
            value += l1 * float(np.sum(np.abs(wd)))
        if with_l2:
            value += (0.5 * l2) * float(np.sum(wd * wd))
    return value


def _coefficients(call_coef: float | list[float] | np.ndarray, count: int) -> list[float]:
    return _args.as_list(call_coef, count)


def _group_rows(a: np.ndarray, view: GroupView) -> np.ndarray:
    """One row per group (a GroupView of a's shape): the reduced axes last, in their original order."""
    if view.order is not None:
        a = np.transpose(a, view.order)
    shape = (view.outer, view.reduce, view.inner)
    return np.ascontiguousarray(np.moveaxis(a.reshape(shape), 1, 2)).reshape(view.outer * view.inner, view.reduce)


def _group_value(w: np.ndarray, view: GroupView, c: float) -> float:
    """c * sum_g ||w_g||_2, the norms as slice_norms sums them, added in float64."""
    with np.errstate(all="ignore"):
        return c * float(np.sum(slice_norms(_group_rows(w, view)))) if w.size else 0.0


def _group_grad_update(w: np.ndarray, g: np.ndarray, l1: float, l2: float, c: float, view: GroupView) -> None:
    """g += l1*sign(w) + l2*w + c*w_g/||w_g||: per group f = C(c / norm) (no group term where norm == 0), then
    g + ((c1*sign(w) + c2*w) + f*w) with the terms present, in the compute type, rounded once."""
    if w.size == 0:
        return
    ct = _compute_type(w.dtype)
    rows, grows = _group_rows(w, view).astype(ct), _group_rows(g, view).astype(ct)
    with np.errstate(all="ignore"):
        norms = slice_norms(_group_rows(w, view))
        grouped = (norms != 0)[:, None]
        f = (c / np.where(norms != 0, norms, 1.0)).astype(ct)[:, None]
        with_l1, with_l2 = _terms(l1, l2)
        c1, c2 = ct(l1), ct(l2)
        if with_l1 and with_l2:
            others = c1 * np.sign(rows) + c2 * rows
        elif with_l1:
            others = c1 * np.sign(rows)
        elif with_l2:
            others = c2 * rows
        else:
            others = None
        with_group = grows + (f * rows if others is None else others + f * rows)
        without = grows if others is None else grows + others
        new = np.where(grouped, with_group, without).astype(g.dtype)
    # back to g's shape: rows (outer * inner, reduce) -> (outer, inner, reduce) -> (outer, reduce, inner)
    shape = tuple(w.shape[a] for a in view.order) if view.order is not None else w.shape
    back = np.moveaxis(new.reshape(view.outer, view.inner, view.reduce), 2, 1).reshape(shape)
    g[...] = back if view.order is None else np.transpose(back, np.argsort(view.order))


def penalty_grad(params: Any, grads: Any, *, l1: float | Sequence[float] | np.ndarray = 0.0,
                 l2: float | Sequence[float] | np.ndarray = 0.0, group_l1: float | Sequence[float] | np.ndarray = 0.0,
                 axis: int | tuple[int, ...] | None = None) -> float:
    """NumPy specification of ``regdrop_fast.penalty_grad``, equal to it bit for bit (the gradients; the
    value within the documented tolerance).

    In place ``grad += l1*sign(w) + l2*w`` (as ``g + (l1*sign(w) + l2*w)`` in float32, float64 for float64
    arrays, rounded once); returns ``l1*sum|w| + (l2/2)*sum w^2`` over all arrays, of the weights as they
    were on entry, summed in float64. A zero coefficient leaves its term out. Works on host arrays only (NumPy arrays or CPU tensors, viewed as NumPy).

    group_l1 with axis adds ``group_l1 * sum_g ||w_g||_2`` over max_norm's slices (the norms as
    ``slice_norms`` sums them) and, to each group of nonzero norm, ``f * w`` with ``f = C(group_l1 / norm)``:
    ``g + ((l1*sign(w) + l2*w) + f*w)`` with the terms present (``_group_grad_update``).

    Parameters
    ----------
    params : array or sequence of arrays
        The weights w (float32, float64, float16 or bfloat16).
    grads : array or sequence of arrays
        Their gradients, updated in place (each the shape and dtype of its parameter).
    l1, l2 : float or sequence of float, default 0.0
        Coefficients >= 0, one for all arrays or one per array.

    Returns
    -------
    float
        The penalty value.

    Raises
    ------
    TypeError
        Arrays of an unsupported kind or dtype, non-numeric coefficients.
    ValueError
        Mismatched lists, shapes or dtypes, negative coefficients, overlapping or read-only grads. Nothing
        is written.

    Examples
    --------
    >>> w = np.array([0.5, -1.5, 0.0, 2.0], np.float32)
    >>> g_ref, g_native = np.ones(4, np.float32), np.ones(4, np.float32)
    >>> rf.reference.penalty_grad([w], [g_ref], l1=0.1, l2=0.01)
    0.4...
    >>> _ = rf.penalty_grad([w], [g_native], l1=0.1, l2=0.01)
    >>> np.array_equal(g_ref, g_native)
    True
    """
    _, call = _validate.penalty(params, grads, l1, l2, False, group_l1, axis, host_only=True)
    grads = call.grads
    params = _lists.host_arrays(call.params, grads, written_params=False)
    c1, c2 = _coefficients(call.l1, len(params)), _coefficients(call.l2, len(params))
    views = call.views or [None] * len(params)
    # Values first: a gradient may be its own parameter (grads is params); the value is of the weights
    # as they were on entry, which is also what each update reads (it is computed whole before storing).
    params = [w.copy() if v is not None else w for w, v in zip(params, views)]
    values = [_value(w, float(a), float(b)) + (0.0 if v is None else _group_value(w, v, call.group[i]))
              for i, (w, a, b, v) in enumerate(zip(params, c1, c2, views))]
    for i, (w, g, a, b, v) in enumerate(zip(params, grads, c1, c2, views)):
        if v is None:
            _grad_update(w, g, float(a), float(b))
        else:
            _group_grad_update(w, g, float(a), float(b), call.group[i], v)
    return float(sum(values))


def penalty(params: Any, *, l1: float | Sequence[float] | np.ndarray = 0.0,
            l2: float | Sequence[float] | np.ndarray = 0.0, group_l1: float | Sequence[float] | np.ndarray = 0.0,
            axis: int | tuple[int, ...] | None = None) -> float:
    """NumPy specification of ``regdrop_fast.penalty``, equal to it (within the documented tolerance of
    penalty values).

    ``l1*sum|w| + (l2/2)*sum w^2`` over all arrays, summed in float64; a zero coefficient leaves its term
    out. Works on host arrays only (NumPy arrays or CPU tensors, viewed as NumPy).

    Parameters
    ----------
    params : array or sequence of arrays
        The weights w; read only.
    l1, l2 : float or sequence of float, default 0.0
        Coefficients >= 0, one for all arrays or one per array.

    Returns
    -------
    float
        The penalty value.

    Raises
    ------
    TypeError
        Arrays of an unsupported kind or dtype, non-numeric coefficients.
    ValueError
        Negative coefficients, a coefficient list of the wrong length.

    Examples
    --------
    >>> ws = [np.array([3.0, -4.0], np.float32), np.array([1.0], np.float64)]
    >>> rf.reference.penalty(ws, l1=1.0, l2=[2.0, 0.0])  # 7 + 25 + 1
    33.0
    >>> rf.reference.penalty(ws, l1=1.0, l2=[2.0, 0.0]) == rf.penalty(ws, l1=1.0, l2=[2.0, 0.0])
    True
    """
    _, call = _validate.penalty(params, None, l1, l2, False, group_l1, axis, host_only=True)
    params = _lists.host_arrays(call.params, None, written_params=False)
    c1, c2 = _coefficients(call.l1, len(params)), _coefficients(call.l2, len(params))
    views = call.views or [None] * len(params)
    return float(sum(_value(w, float(a), float(b)) + (0.0 if v is None else _group_value(w, v, call.group[i]))
                     for i, (w, a, b, v) in enumerate(zip(params, c1, c2, views))))


def _soft_threshold(w: np.ndarray, threshold: float) -> np.ndarray:
    """m = |w| - t; m <= 0 -> +0, else m with w's sign (NaN stays NaN: m <= 0 is false for it)."""
    ct = _compute_type(w.dtype)
    wc, t = w.astype(ct), ct(threshold)
    with np.errstate(all="ignore"):
        m = np.where(wc < 0, -wc, wc) - t
        return np.where(m <= 0, ct(0), np.where(wc < 0, -m, m)).astype(w.dtype)


def prox_l1(params: Any, threshold: float | Sequence[float] | np.ndarray) -> int:
    """NumPy specification of ``regdrop_fast.prox_l1``, equal to it bit for bit.

    Soft-thresholding in place, ``w = sign(w) * max(|w| - threshold, 0)`` in float32 (float64 for float64
    arrays): thresholded values are +0, NaN stays NaN. Returns the number of elements exactly zero
    afterwards, over all arrays. Works on host arrays only (NumPy arrays or CPU tensors, viewed as NumPy).

    Parameters
    ----------
    params : array or sequence of arrays
        Updated in place (writeable, not overlapping).
    threshold : float or sequence of float
        >= 0, one for all arrays or one per array.

    Returns
    -------
    int
        The number of exact zeros after the update.

    Raises
    ------
    TypeError
        Arrays of an unsupported kind or dtype, a non-numeric threshold.
    ValueError
        A negative threshold, read-only or overlapping arrays. Nothing is written.

    Examples
    --------
    >>> w_ref = np.array([0.5, -2.0, 0.1, -0.3], np.float32)
    >>> w_native = w_ref.copy()
    >>> rf.reference.prox_l1(w_ref, 0.25), rf.prox_l1(w_native, 0.25)
    (1, 1)
    >>> np.array_equal(w_ref, w_native)
    True
    """
    _, call = _validate.update(params, threshold, "threshold", None, False, host_only=True)
    params = _lists.host_arrays(call.params, None, written_params=True)
    t = _coefficients(call.coef, len(params))
    zeros = 0
    for w, ti in zip(params, t):
        w[...] = _soft_threshold(w, float(ti))
        zeros += int(np.count_nonzero(w == 0))
    return zeros


def decay(params: Any, factor: float | Sequence[float] | np.ndarray) -> None:
    """NumPy specification of ``regdrop_fast.decay``, equal to it bit for bit.

    In place ``w = w * C(1 - factor)``: ``1 - factor`` is formed in float64 and rounded to the compute type
    C (float32, float64 for float64 arrays), the product rounded once to w's dtype; a factor of 0 leaves
    its array alone. Works on host arrays only (NumPy arrays or CPU tensors, viewed as NumPy).

    Parameters
    ----------
    params : array or sequence of arrays
        Updated in place (writeable, not overlapping).
    factor : float or sequence of float
        In [0, 1], one for all arrays or one per array.

    Returns
    -------
    None

    Raises
    ------
    TypeError
        Arrays of an unsupported kind or dtype, a non-numeric factor.
    ValueError
        A factor outside [0, 1], read-only or overlapping arrays. Nothing is written.

    Examples
    --------
    >>> w_ref = np.array([1.0, -2.0, 3.0], np.float32)
    >>> w_native = w_ref.copy()
    >>> rf.reference.decay(w_ref, 0.1)
    >>> rf.decay(w_native, 0.1)
    >>> np.array_equal(w_ref, w_native)
    True
    """
    _, call = _validate.update(params, factor, "factor", 1.0, False, host_only=True)
    params = _lists.host_arrays(call.params, None, written_params=True)
    f = _coefficients(call.coef, len(params))
    for w, fi in zip(params, f):
        if fi == 0.0:
            continue
        ct = _compute_type(w.dtype)
        with np.errstate(all="ignore"):
            w[...] = (w.astype(ct) * ct(1.0 - float(fi))).astype(w.dtype)


def slice_norms(rows: np.ndarray) -> np.ndarray:
    """L2 norm of each row of a 2-D array, in float64, summed exactly as the kernels do.

    Element k of a row adds its square into lane k % 16, lanes filled in increasing k; the 16 lanes are
    then folded by halving (lane l += lane l + h for h = 8, 4, 2, 1); the norm is the sqrt of lane 0.
    """
    n_rows, k = rows.shape
    padded = np.zeros((n_rows, -(-k // SUM_LANES) * SUM_LANES))  # +0.0 padding leaves every sum unchanged
    padded[:, :k] = rows.astype(np.float64)
    with np.errstate(all="ignore"):
        squares = padded * padded
        lanes = np.zeros((n_rows, SUM_LANES))
        for j in range(padded.shape[1] // SUM_LANES):
            lanes += squares[:, j * SUM_LANES:(j + 1) * SUM_LANES]
        h = SUM_LANES // 2
        while h >= 1:
            lanes[:, :h] += lanes[:, h:2 * h]
            h //= 2
    return np.sqrt(lanes[:, 0])


def max_norm(w: Any, max_value: float, *, axis: int | tuple[int, ...]) -> int:
    """NumPy specification of ``regdrop_fast.max_norm``, equal to it bit for bit.

    Slices (indexed by the axes not in ``axis``) whose L2 norm over ``axis`` exceeds max_value become
    ``w * C(max_value / norm)``, the factor formed in float64 and rounded to the compute type C (float32,
    float64 for float64 arrays); the others are not changed. The norm is summed in float64 in the kernels'
    order (see ``slice_norms``). Works on host arrays only (NumPy arrays or CPU tensors, viewed as NumPy).

    Parameters
    ----------
    w : array
        Updated in place (writeable).
    max_value : float
        The bound, > 0.
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
        max_value <= 0, an axis out of range or repeated, a read-only array. Nothing is written.

    Examples
    --------
    >>> w_ref = np.array([[3.0, 0.1], [4.0, 0.1]], np.float32)
    >>> w_native = w_ref.copy()
    >>> rf.reference.max_norm(w_ref, 1.0, axis=0), rf.max_norm(w_native, 1.0, axis=0)
    (1, 1)
    >>> np.array_equal(w_ref, w_native)
    True
    """
    _, call = _validate.max_norm(w, max_value, axis, False, host_only=True)
    w, max_value, axes = call.w, call.max_value, call.axes
    kept = tuple(a for a in range(w.ndim) if a not in axes)
    order = kept + axes
    # One row per slice; the reduced axes in their original order make the reduced index C order.
    n_slices, n_reduced = math.prod(w.shape[a] for a in kept), math.prod(w.shape[a] for a in axes)
    rows = np.transpose(w, order).reshape(n_slices, n_reduced).copy()
    norms = slice_norms(rows)
    exceed = norms > max_value
    if exceed.any():
        ct = _compute_type(w.dtype)
        factor = (max_value / norms[exceed]).astype(ct)
        with np.errstate(all="ignore"):
            rows[exceed] = (rows[exceed].astype(ct) * factor[:, None]).astype(w.dtype)
        w[...] = np.transpose(rows.reshape([w.shape[a] for a in order]), np.argsort(order))
    return int(np.count_nonzero(exceed))
