"""The weight constraints of Keras: norm_constraint (MinMaxNorm, of which max_norm is a case), unit_norm
(UnitNorm) and non_neg (NonNeg), in place.

Validate once (_validate), run on the backend the array chose; the formulas and the decision to leave a
slice alone are in csrc/common/constraint_element.h and the NumPy reference
(regdrop_fast.reference.constraints). Slices and their layouts are max_norm's (_penalty.max_norm).
"""

from __future__ import annotations

import math
from typing import Any

from . import _validate


def norm_constraint(w: Any, *, min_value: float = 0.0, max_value: float = math.inf, rate: float = 1.0,
                    axis: int | tuple[int, ...], as_int: bool = False) -> Any:
    """Keras MinMaxNorm in place: the L2 norm of w is taken along ``axis`` (an int or a tuple of ints, as in
    max_norm), and every slice whose norm lies outside ``[min_value, max_value]`` is rescaled to the norm
    ``rate * clip(norm, min_value, max_value) + (1 - rate) * norm``. Returns the number of slices rescaled:
    a Python int for a NumPy array; for a CUDA array a 0-d int64 device array (``as_int=True``: a Python
    int, which waits for the device).

    The factor ``desired / norm`` is formed in float64 and each element becomes ``w * factor`` rounded once
    (float32 arithmetic for float32, float16 and bfloat16 arrays, float64 for float64). Keras divides by
    ``epsilon + norm`` instead and so moves every slice slightly; here a slice within the bounds is left
    bit for bit as it was, and so is a slice of norm 0 (Keras leaves it 0 too), every slice when rate is 0,
    a NaN norm, and an infinite norm unless rate is 1. With the defaults for min_value and rate this is
    ``max_norm(w, max_value, axis=axis)``, bit for bit.

    Layouts: as max_norm (host and CUDA arrays of any writeable layout, the same bits as on a C-contiguous
    copy). On KeyboardInterrupt (Ctrl-C, checked between chunks of calls over 2^24
    elements) the array is partly written.

    Parameters
    ----------
    w : array
        Updated in place (writeable; float32, float64, float16 or bfloat16).
    min_value : float, default 0.0
        The lower bound, finite and >= 0.
    max_value : float, default inf
        The upper bound, > 0 and >= min_value.
    rate : float, default 1.0
        In [0, 1]: how far toward the bounds a slice moves (Keras's rate).
    axis : int or tuple of int
        The axes the norm is taken over (Keras's axis; e.g. 0 for a Dense kernel (in, out), (0, 1, 2) for a
        Conv2D kernel (h, w, in, out)).
    as_int : bool, default False
        For CUDA arrays: return a Python int (waits for the device).

    Returns
    -------
    int or 0-d device array
        The number of slices rescaled.

    Raises
    ------
    TypeError
        An unsupported array or dtype, a non-numeric bound or rate, a non-integer axis.
    ValueError
        A negative or infinite min_value, max_value <= 0 or below min_value, rate outside [0, 1], an axis
        out of range or repeated, a read-only or self-overlapping array. Nothing is written.

    Examples
    --------
    >>> w = np.array([[3.0, 0.1, 0.0], [4.0, 0.1, 0.0]], np.float32)  # column norms 5, 0.14, 0
    >>> rf.norm_constraint(w, min_value=1.0, max_value=2.0, axis=0)
    2
    >>> np.round(np.sqrt((w.astype(float) ** 2).sum(axis=0)), 6).tolist()
    [2.0, 1.0, 0.0]
    """
    backend, call = _validate.norm_constraint(w, min_value, max_value, rate, axis, as_int)
    return backend.norm_constraint(call)


def unit_norm(w: Any, *, axis: int | tuple[int, ...], as_int: bool = False) -> Any:
    """Keras UnitNorm in place: every slice along ``axis`` (as in max_norm) is rescaled to L2 norm 1, as
    ``norm_constraint(w, min_value=1, max_value=1, axis=axis)``: ``w * (1 / norm)`` with the factor formed in
    float64 and rounded once. A slice of norm exactly 1, of norm 0 (Keras leaves it 0 too) or with a NaN or
    infinite norm is left as it is. Returns the number of slices rescaled (a Python int for a NumPy array;
    a 0-d int64 device array for a CUDA array unless ``as_int=True``).

    Parameters
    ----------
    w : array
        Updated in place (writeable; host and CUDA arrays in any layout).
    axis : int or tuple of int
        The axes the norm is taken over (Keras's axis, default 0 there).
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
        An axis out of range or repeated, a read-only or self-overlapping array. Nothing is written.

    Examples
    --------
    >>> w = np.array([[3.0, 0.0], [4.0, 0.0]], np.float32)
    >>> rf.unit_norm(w, axis=0)  # the zero column stays zero
    1
    >>> np.round(w.astype(float), 6).tolist()
    [[0.6, 0.0], [0.8, 0.0]]
    """
    backend, call = _validate.norm_constraint(w, 1.0, 1.0, 1.0, axis, as_int)
    return backend.norm_constraint(call)


def non_neg(params: Any, *, as_int: bool = False) -> Any:
    """Keras NonNeg in place: every negative element becomes +0 (Keras's ``w * (w >= 0)`` gives -0.0 there,
    which compares equal); zeros, positive values, +inf and NaN stay as they are. Returns the number of
    elements that were negative, over all arrays: a Python int for NumPy arrays; for CUDA arrays a 0-d
    int64 device array (``as_int=True``: a Python int, which waits for the device).

    A list operation like prox_l1: one array or a sequence of arrays in one call, host arrays of any
    writeable layout (host or CUDA) modified where they are. On KeyboardInterrupt (Ctrl-C,
    checked between chunks of calls over 2^24 elements) the arrays are partly written.

    Parameters
    ----------
    params : array or sequence of arrays
        Updated in place (writeable, not overlapping each other).
    as_int : bool, default False
        For CUDA arrays: return a Python int (waits for the device).

    Returns
    -------
    int or 0-d device array
        The number of elements set to zero.

    Raises
    ------
    TypeError
        Arrays of an unsupported kind or dtype.
    ValueError
        Read-only, self-overlapping or mutually overlapping arrays. Nothing is written.

    Examples
    --------
    >>> w = np.array([-1.5, 0.0, 2.0, -0.25], np.float32)
    >>> rf.non_neg(w), w.tolist()
    (2, [0.0, 0.0, 2.0, 0.0])
    """
    backend, call = _validate.non_neg(params, as_int)
    return backend.non_neg(call)
