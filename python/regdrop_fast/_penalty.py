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
                 as_float: bool = False) -> Any:
    """In one pass per parameter, in place ``grad += l1*sign(w) + l2*w``; returns the penalty value
    ``l1*sum|w| + (l2/2)*sum w^2`` over all arrays.

    params, grads: one array or equally long sequences of arrays (each grad the shape and dtype of its
    parameter; C-contiguous and writeable). l1, l2: a number >= 0 or one per array; a zero coefficient
    leaves its term out for that array, both zero leave the array alone (biases, norm scales).

    NumPy arrays: the value is a Python float. CUDA arrays (PyTorch CUDA tensors or CuPy arrays, all on one
    device, from one library): the kernels run on the current stream and the value is a 0-d float64 array
    of that library on that device, so the host does not wait; ``as_float=True`` returns a Python float
    instead (which waits for the device).

    On KeyboardInterrupt (Ctrl-C, checked between chunks of calls over 2^24 elements) the outputs are
    partly written.
    """
    backend, call = _validate.penalty(params, grads, l1, l2, as_float)
    return backend.penalty_grad(call)


def penalty(params: Any, *, l1: Coefficient = 0.0, l2: Coefficient = 0.0, as_float: bool = False) -> Any:
    """The penalty value ``l1*sum|w| + (l2/2)*sum w^2`` over all arrays (l1, l2 and the type of the result
    as in penalty_grad). On KeyboardInterrupt (calls over 2^24 elements) nothing is written."""
    backend, call = _validate.penalty(params, None, l1, l2, as_float)
    return backend.penalty_grad(call)


def prox_l1(params: Any, threshold: Coefficient, *, as_int: bool = False) -> Any:
    """Soft-thresholding in place, ``w = sign(w) * max(|w| - threshold, 0)`` (thresholded values are +0);
    returns the number of elements that are exactly zero afterwards, over all arrays.

    threshold: a number >= 0 or one per array (for ISTA / Lasso: step size times the L1 coefficient).
    The count is a Python int for NumPy arrays; for CUDA arrays a 0-d int64 device array (``as_int=True``:
    a Python int, which waits for the device).

    On KeyboardInterrupt (Ctrl-C, checked between chunks of calls over 2^24 elements) the outputs are
    partly written.
    """
    backend, call = _validate.update(params, threshold, "threshold", None, as_int)
    return backend.prox_l1(call)


def decay(params: Any, factor: Coefficient) -> None:
    """Decoupled weight decay in place, ``w *= (1 - factor)`` (AdamW's lr * weight_decay).

    factor: a number in [0, 1] or one per array; 0 leaves an array alone.

    On KeyboardInterrupt (Ctrl-C, checked between chunks of calls over 2^24 elements) the outputs are
    partly written.
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
    """
    backend, call = _validate.max_norm(w, max_value, axis, as_int)
    return backend.max_norm(call)
