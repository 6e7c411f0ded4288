"""Weight penalties: L1 / L2 / elastic-net value and gradient, proximal L1, decoupled decay, max-norm.

Validate once (_records), run on the backend the arrays chose. A whole list of arrays is one native call;
the formulas, rounding and summation order are in csrc/common/penalty_element.h and the NumPy reference
(regdrop_fast.reference.penalty).

CUDA arrays (PyTorch CUDA tensors, CuPy arrays; decided by the first array of a call) go to the CUDA
kernels, which return sums as 0-d device arrays unless a Python number is asked for with
``as_float=True`` / ``as_int=True``; mixing host and device arrays in one call is a ValueError.

On the CPU a call over more than about 2^24 elements checks for Ctrl-C between chunks: on
KeyboardInterrupt the outputs (grads, or the arrays updated in place) are partly written.
"""

from __future__ import annotations

from typing import Any, Sequence, Union

import numpy as np

from . import _validate

# Arrays are Any (NumPy arrays, CuPy arrays or torch CUDA tensors, one or a sequence); coefficients are one
# number for every array or one per array.
Coefficient = Union[float, Sequence[float], np.ndarray]


def penalty_grad(params: Any, grads: Any, *, l1: Coefficient = 0.0, l2: Coefficient = 0.0,
                 group_l1: Coefficient = 0.0, axis: int | tuple[int, ...] | None = None,
                 as_float: bool = False) -> Any:
    """In one pass per parameter, in place ``grad += l1*sign(w) + l2*w``; returns the penalty value
    ``l1*sum|w| + (l2/2)*sum w^2`` over all arrays.

    params, grads: one array or equally long sequences of arrays (each grad the shape and dtype of its
    parameter, writeable; host grads in any layout, see below). l1, l2: a number >= 0 or one per array; a zero coefficient
    leaves its term out for that array, both zero leave the array alone (biases, norm scales).

    group_l1 (with ``axis``) adds the group-sparsity term ``group_l1 * sum_g ||w_g||_2`` (group Lasso, L2,1; the
    penalty of scikit-learn's MultiTaskLasso) over the groups ``axis`` defines, max_norm's slices (prox_group_l1's
    convention: ``axis=1`` makes each row of a matrix a group, ``axis=(1, 2, 3)`` each filter of a conv weight).
    Its gradient ``group_l1 * w_g / ||w_g||`` is added to every group of nonzero norm; an all-zero group gets no
    term (0: the subgradient chosen there, as sign(0) = 0 for L1). Per element: ``f = group_l1 / ||w_g||`` in
    float64 rounded once to the compute type, then ``g + ((l1*sign(w) + l2*w) + f*w)`` (the terms present),
    each operation rounded. A NaN in a group gives its whole gradient NaN. The norms are max_norm's (float64,
    the same bits); each group is read for its norm and then updated while it is in cache. ``axis`` applies to
    every array whose group_l1 coefficient is nonzero (give 0 for biases); an array whose reduced axes are not
    adjacent is read from a permuted copy. A call with a group term checks its lists in Python (the groups
    need the shapes), so it costs about a microsecond more per array.

    NumPy arrays: the value is a Python float. CUDA arrays (PyTorch CUDA tensors or CuPy arrays, all on one
    device, from one library): the kernels run on the current stream and the value is a 0-d float64 array
    of that library on that device, so the host does not wait; ``as_float=True`` returns a Python float
    instead (which waits for the device).

    Host arrays modified in place may have any layout (transposed, Fortran order, sliced, negative
    strides) and are modified where they are, with no copy: the elements are visited in the C order of a
    contiguous copy, so the value is the same bits. Only arrays whose elements overlap each other (a
    broadcast view) are refused. CUDA arrays modified in place may have the same layouts (docs/cuda.md).

    On KeyboardInterrupt (Ctrl-C, checked between chunks of calls over 2^24 elements) the outputs are
    partly written.

    Parameters
    ----------
    params : array or sequence of arrays
        The weights w (float32, float64, float16 or bfloat16).
    grads : array or sequence of arrays
        Their gradients, updated in place (None entries are not allowed).
    l1, l2 : float or sequence of float, default 0.0
        Coefficients >= 0, one for all arrays or one per array.
    group_l1 : float or sequence of float, default 0.0
        The group term's coefficient >= 0, one for all arrays or one per array.
    axis : int or tuple of int, optional
        The axes each group's norm is taken over; required when a group_l1 coefficient is nonzero.
    as_float : bool, default False
        For CUDA arrays: return a Python float (waits for the device).

    Returns
    -------
    float or 0-d device array
        The penalty value, summed in float64 in a fixed order (the same bits on any thread count).

    Raises
    ------
    TypeError
        Arrays of an unsupported kind or dtype, non-numeric coefficients, a non-integer axis.
    ValueError
        Mismatched lists, shapes or dtypes, negative coefficients, overlapping or read-only grads, host
        and device arrays mixed, group_l1 without axis, an axis out of range or repeated for an array with a
        group term. Nothing is written.

    Examples
    --------
    >>> w, g = np.full(4, 2.0, np.float32), np.zeros(4, np.float32)
    >>> rf.penalty_grad([w], [g], l1=0.5, l2=0.25)  # 0.5 * 8 + 0.125 * 16
    6.0
    >>> g.tolist()  # 0.5 * sign(w) + 0.25 * w
    [1.0, 1.0, 1.0, 1.0]
    >>> w, g = np.array([[3.0, 4.0], [0.0, 0.0]], np.float32), np.zeros((2, 2), np.float32)
    >>> rf.penalty_grad(w, g, group_l1=2.0, axis=1)  # 2 * (5 + 0)
    10.0
    >>> g.tolist()  # 2 * w_g / ||w_g||; the zero row gets no term
    [[1.2000000476837158, 1.600000023841858], [0.0, 0.0]]
    """
    backend, call = _validate.penalty(params, grads, l1, l2, as_float, group_l1, axis)
    return backend.penalty_grad(call)


def penalty(params: Any, *, l1: Coefficient = 0.0, l2: Coefficient = 0.0, group_l1: Coefficient = 0.0,
            axis: int | tuple[int, ...] | None = None, as_float: bool = False) -> Any:
    """The penalty value ``l1*sum|w| + (l2/2)*sum w^2 (+ group_l1*sum_g ||w_g||_2)`` over all arrays (l1, l2,
    group_l1, axis and the type of the result as in penalty_grad). On KeyboardInterrupt (calls over 2^24
    elements) nothing is written.

    Parameters
    ----------
    params : array or sequence of arrays
        The weights w; read only.
    l1, l2 : float or sequence of float, default 0.0
        Coefficients >= 0, one for all arrays or one per array.
    group_l1 : float or sequence of float, default 0.0
        The group term's coefficient >= 0, one for all arrays or one per array.
    axis : int or tuple of int, optional
        The axes each group's norm is taken over (max_norm's slices); required with a nonzero group_l1.
    as_float : bool, default False
        For CUDA arrays: return a Python float (waits for the device).

    Returns
    -------
    float or 0-d device array
        ``l1*sum|w| + (l2/2)*sum w^2 + group_l1*sum_g ||w_g||_2``.

    Raises
    ------
    TypeError
        Arrays of an unsupported kind or dtype, non-numeric coefficients, a non-integer axis.
    ValueError
        Negative coefficients, a coefficient list of the wrong length, group_l1 without axis, an axis out of
        range or repeated for an array with a group term.

    Examples
    --------
    >>> rf.penalty([np.array([3.0, -4.0], np.float32)], l1=1.0, l2=2.0)  # 7 + 25
    32.0
    >>> rf.penalty(np.array([[3.0, 4.0], [6.0, 8.0]]), group_l1=0.5, axis=1)  # 0.5 * (5 + 10)
    7.5
    """
    backend, call = _validate.penalty(params, None, l1, l2, as_float, group_l1, axis)
    return backend.penalty_grad(call)


def prox_l1(params: Any, threshold: Coefficient, *, as_int: bool = False) -> Any:
    """Soft-thresholding in place, ``w = sign(w) * max(|w| - threshold, 0)`` (thresholded values are +0);
    returns the number of elements that are exactly zero afterwards, over all arrays.

    threshold: a number >= 0 or one per array (for ISTA / Lasso: step size times the L1 coefficient).
    The count is a Python int for NumPy arrays; for CUDA arrays a 0-d int64 device array (``as_int=True``:
    a Python int, which waits for the device).

    On KeyboardInterrupt (Ctrl-C, checked between chunks of calls over 2^24 elements) the outputs are
    partly written.

    Parameters
    ----------
    params : array or sequence of arrays
        Updated in place (writeable, not overlapping; host arrays in any layout, as in penalty_grad).
    threshold : float or sequence of float
        >= 0, one for all arrays or one per array.
    as_int : bool, default False
        For CUDA arrays: return a Python int (waits for the device).

    Returns
    -------
    int or 0-d device array
        The number of exact zeros after the update.

    Raises
    ------
    TypeError
        Arrays of an unsupported kind or dtype, a non-numeric threshold.
    ValueError
        A negative threshold, read-only or overlapping arrays. Nothing is written.

    Examples
    --------
    >>> w = np.array([0.5, -2.0, 0.1], np.float32)
    >>> rf.prox_l1([w], 0.25), w.tolist()
    (1, [0.25, -1.75, 0.0])
    """
    backend, call = _validate.update(params, threshold, "threshold", None, as_int)
    return backend.prox_l1(call)


def decay(params: Any, factor: Coefficient) -> None:
    """Decoupled weight decay in place, ``w *= (1 - factor)`` (AdamW's lr * weight_decay).

    factor: a number in [0, 1] or one per array; 0 leaves an array alone.

    On KeyboardInterrupt (Ctrl-C, checked between chunks of calls over 2^24 elements) the outputs are
    partly written.

    Parameters
    ----------
    params : array or sequence of arrays
        Updated in place (writeable, not overlapping; host arrays in any layout, as in penalty_grad).
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
    >>> w = np.array([1.0, -2.0], np.float32)
    >>> rf.decay(w, 0.5)
    >>> w.tolist()
    [0.5, -1.0]
    """
    backend, call = _validate.update(params, factor, "factor", 1.0, False)
    backend.decay(call)


def max_norm(w: Any, max_value: float, *, axis: int | tuple[int, ...], as_int: bool = False) -> Any:
    """Max-norm constraint in place: the L2 norm of w is taken along ``axis`` (an int or a tuple of ints;
    Keras MaxNorm's convention), and every slice whose norm exceeds max_value is rescaled to norm
    max_value; slices within the bound stay bit for bit unchanged. Returns the number of slices rescaled:
    a Python int for a NumPy array; for a CUDA array a 0-d int64 device array (``as_int=True``: a Python
    int, which waits for the device).

    ``torch.renorm(w, 2, dim, max_value)`` corresponds to ``axis`` = every axis except ``dim`` (without
    torch's 1e-7 added to the norm); see docs/conventions.md.

    On KeyboardInterrupt (Ctrl-C, checked between chunks of calls over 2^24 elements) the outputs are
    partly written.

    Parameters
    ----------
    w : array
        Updated in place (writeable). A host array may have any layout: one dense in some memory order
        (transposed, Fortran) is worked on where it is when its reduced axes keep their order in memory;
        any other (a slice, a reversed reduced axis) through a copy with the reduced axes last that is
        written back, as for reduced axes that are not adjacent. The result is the same bits as on a
        C-contiguous copy either way. A CUDA array: the same layouts and rules.
    max_value : float
        The bound, > 0.
    axis : int or tuple of int
        The axes the norm is taken over.
    as_int : bool, default False
        For CUDA arrays: return a Python int (waits for the device).

    Returns
    -------
    int or 0-d device array
        The number of slices rescaled.

    Raises
    ------
    TypeError
        An unsupported array or dtype, a non-integer axis.
    ValueError
        max_value <= 0, an axis out of range or repeated, a read-only or self-overlapping (broadcast)
        array. Nothing is written.

    Examples
    --------
    >>> w = np.array([[3.0, 0.1], [4.0, 0.1]], np.float32)
    >>> rf.max_norm(w, 1.0, axis=0)  # column 0 has norm 5, column 1 is within the bound
    1
    >>> np.round(w[:, 0].astype(float), 6).tolist()
    [0.6, 0.8]
    """
    backend, call = _validate.max_norm(w, max_value, axis, as_int)
    return backend.max_norm(call)


def prox_group_l1(params: Any, threshold: Coefficient, *, axis: int | tuple[int, ...], as_int: bool = False) -> Any:
    """Group soft-thresholding in place (the proximal step of ``t * sum_g ||w_g||_2``, group Lasso, L2,1):
    every group ``w_g`` becomes ``max(0, 1 - t / ||w_g||) * w_g``. The groups of an array are max_norm's
    slices: the L2 norm is taken over ``axis`` (an int or a tuple of ints, applied to every array), so
    ``axis=1`` on a (features, tasks) coefficient matrix makes each feature's row a group, ``axis=0`` each
    column, ``axis=(1, 2, 3)`` on a torch Conv2d weight each filter. Returns the number of groups that are
    exactly zero afterwards (those with norm <= t; groups of no elements are not counted), over all arrays:
    a Python int for NumPy arrays; for CUDA
    arrays a 0-d int64 device array (``as_int=True``: a Python int, which waits for the device).

    A group with norm <= t is set to +0 (every element, signs included); a larger one is multiplied by the
    factor ``1 - t / norm`` formed in float64 and rounded once to the compute type (float32 for float32,
    float16 and bfloat16 arrays, float64 for float64), each product rounded once; t = 0 and NaN norms leave
    a group alone (zero groups still become +0). The norms are summed as max_norm's.

    Layouts as in max_norm (host and CUDA arrays of any writeable layout). On
    KeyboardInterrupt (Ctrl-C, checked between chunks of calls over 2^24 elements) the arrays are partly
    written.

    Parameters
    ----------
    params : array or sequence of arrays
        Updated in place (writeable, not overlapping each other).
    threshold : float or sequence of float
        t >= 0 (step size times the group penalty's coefficient), one for all arrays or one per array.
    axis : int or tuple of int
        The axes each group's norm is taken over.
    as_int : bool, default False
        For CUDA arrays: return a Python int (waits for the device).

    Returns
    -------
    int or 0-d device array
        The number of groups that are exactly zero afterwards.

    Raises
    ------
    TypeError
        Arrays of an unsupported kind or dtype, a non-numeric threshold, a non-integer axis.
    ValueError
        A negative threshold, an axis out of range or repeated for an array, read-only, self-overlapping
        or mutually overlapping arrays. Nothing is written.

    Examples
    --------
    >>> w = np.array([[3.0, 4.0], [0.3, 0.4]], np.float32)  # row norms 5 and 0.5
    >>> rf.prox_group_l1(w, 1.0, axis=1)  # row 0 shrinks to norm 4, row 1 becomes zero
    1
    >>> np.round(w.astype(float), 6).tolist()
    [[2.4, 3.2], [0.0, 0.0]]
    """
    backend, call = _validate.prox_group_l1(params, threshold, axis, as_int)
    return backend.prox_group_l1(call)
