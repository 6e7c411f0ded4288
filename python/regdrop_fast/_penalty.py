"""Native weight penalties: L1 / L2 / elastic-net value and gradient, proximal L1, decoupled decay, max-norm.

A whole list of arrays is one native call (csrc/cpu/penalty_driver.h). Coefficients are checked here;
the arrays are read by csrc/bindings/array_list.h, which takes the call only when every array is already in the
kernels' form. Anything else (a non-contiguous parameter, a wrong dtype, a read-only gradient, ...) goes
through the checks in _checks, which raise the error or prepare the arrays, before anything is modified.
The formulas, rounding and summation order are in csrc/common/penalty_element.h and the NumPy reference
(regdrop_fast.reference.penalty).

CUDA arrays (PyTorch CUDA tensors, CuPy arrays; decided by the first array of a call) go to the CUDA
kernels (_penalty_cuda), which return sums as 0-d device arrays unless a Python number is asked for with
``as_float=True`` / ``as_int=True``; mixing host and device arrays in one call is a ValueError.
"""

from __future__ import annotations

import math

import numpy as np

from . import _checks, _core, cuda

_NUMS = _checks.TYPE_NUMS


def _sequence(x, name: str):
    """array_sequence, with a single CUDA array (which iterates over its rows) taken as one array."""
    return [x] if cuda.is_device_array(x) else _checks.array_sequence(x, name)


def _on_device(params) -> bool:
    return len(params) > 0 and cuda.is_device_array(params[0])


def _host_only(params, grads=None) -> None:
    """A host call (params[0] is not a CUDA array) with a CUDA array in it is a ValueError."""
    for name, seq in (("params", params), ("grads", grads or ())):
        for i, a in enumerate(seq):
            if cuda.is_device_array(a):
                raise ValueError(
                    f"{name}[{i}]: is a CUDA array but params[0] is a host array; all arrays of a call must be "
                    "on one device"
                )


def _flag(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {type(value).__name__}")
    return bool(value)


def _not_in_kernel_form(op: str):
    # _checks accepted what csrc/bindings/array_list.h refused: the two sets of rules disagree (a bug).
    return RuntimeError(
        f"regdrop_fast.{op}: internal error: the native layer refused arrays that passed the checks"
    )


def _value_and_grad(params, grads, l1, l2, op, as_float):
    params = _sequence(params, "params")
    if grads is not None:
        grads = _sequence(grads, "grads")
        if len(grads) != len(params):
            raise ValueError(f"grads: {len(grads)} arrays for {len(params)} params; they must pair up")
    c1 = _checks.coefficients(l1, len(params), "l1")
    c2 = _checks.coefficients(l2, len(params), "l2")
    as_float = _flag(as_float, "as_float")
    if _on_device(params):
        from . import _penalty_cuda

        return _penalty_cuda.penalty_grad(params, grads, c1, c2, as_float)
    value = _core.penalty_grad(params, grads, c1, c2, _NUMS)
    if value is None:
        _host_only(params, grads)
        params = _checks.penalty_arrays(params, grads)
        value = _core.penalty_grad(params, grads, c1, c2, _NUMS)
        if value is None:
            raise _not_in_kernel_form(op)
    return value


def penalty_grad(params, grads, *, l1=0.0, l2=0.0, as_float=False):
    """In one pass per parameter, in place ``grad += l1*sign(w) + l2*w``; returns the penalty value
    ``l1*sum|w| + (l2/2)*sum w^2`` over all arrays.

    params, grads: one array or equally long sequences of arrays (each grad the shape and dtype of its
    parameter; C-contiguous and writeable). l1, l2: a number >= 0 or one per array; a zero coefficient
    leaves its term out for that array, both zero leave the array alone (biases, norm scales).

    NumPy arrays: the value is a Python float. CUDA arrays (PyTorch CUDA tensors or CuPy arrays, all on one
    device, from one library): the kernels run on the current stream and the value is a 0-d float64 array
    of that library on that device, so the host does not wait; ``as_float=True`` returns a Python float
    instead (which waits for the device).
    """
    return _value_and_grad(params, grads, l1, l2, "penalty_grad", as_float)


def penalty(params, *, l1=0.0, l2=0.0, as_float=False):
    """The penalty value ``l1*sum|w| + (l2/2)*sum w^2`` over all arrays (l1, l2 and the type of the result
    as in penalty_grad)."""
    return _value_and_grad(params, None, l1, l2, "penalty", as_float)


def _update(op, params, coef, name, upper=None, as_int=False):
    params = _sequence(params, "params")
    c = _checks.coefficients(coef, len(params), name, upper)
    as_int = _flag(as_int, "as_int")
    if _on_device(params):
        from . import _penalty_cuda

        if op == "decay":
            return _penalty_cuda.decay(params, c)
        return _penalty_cuda.prox_l1(params, c, as_int)
    result = getattr(_core, op)(params, c, _NUMS)
    if result is None:
        _host_only(params)
        params = _checks.update_arrays(params)
        result = getattr(_core, op)(params, c, _NUMS)
        if result is None:
            raise _not_in_kernel_form(op)
    return result


def prox_l1(params, threshold, *, as_int=False):
    """Soft-thresholding in place, ``w = sign(w) * max(|w| - threshold, 0)`` (thresholded values are +0);
    returns the number of elements that are exactly zero afterwards, over all arrays.

    threshold: a number >= 0 or one per array (for ISTA / Lasso: step size times the L1 coefficient).
    The count is a Python int for NumPy arrays; for CUDA arrays a 0-d int64 device array (``as_int=True``:
    a Python int, which waits for the device).
    """
    return _update("prox_l1", params, threshold, "threshold", as_int=as_int)


def decay(params, factor) -> None:
    """Decoupled weight decay in place, ``w *= (1 - factor)`` (AdamW's lr * weight_decay).

    factor: a number in [0, 1] or one per array; 0 leaves an array alone.
    """
    _update("decay", params, factor, "factor", upper=1.0)


def max_norm(w, max_value, *, axis, as_int=False):
    """Max-norm constraint in place: the L2 norm of w is taken along ``axis`` (an int or a tuple of ints;
    Keras MaxNorm's convention), and every slice whose norm exceeds max_value is rescaled to norm
    max_value; slices within the bound stay bit for bit unchanged. Returns the number of slices rescaled:
    a Python int for a NumPy array; for a CUDA array a 0-d int64 device array (``as_int=True``: a Python
    int, which waits for the device).

    ``torch.renorm(w, 2, dim, max_value)`` corresponds to ``axis`` = every axis except ``dim`` (without
    torch's 1e-7 added to the norm); see docs/conventions.md.
    """
    as_int = _flag(as_int, "as_int")
    if cuda.is_device_array(w):
        from . import _penalty_cuda

        return _penalty_cuda.max_norm(w, max_value, axis, as_int)
    w, max_value, axes = _checks.max_norm_args(w, max_value, axis)
    code = _checks.DTYPE_CODES[w.dtype]
    shape = w.shape
    lo, hi = axes[0], axes[-1] + 1
    if axes == tuple(range(lo, hi)):
        # Adjacent reduced axes: w viewed as (outer, reduce, inner) in place.
        outer, reduce, inner = math.prod(shape[:lo]), math.prod(shape[lo:hi]), math.prod(shape[hi:])
        return _core.max_norm(code, w, outer, reduce, inner, max_value)
    # Reduced axes apart: a copy with the kept axes first and the reduced axes last (each in its original
    # order, so the reduced index is the same C order), written back only if a slice was rescaled.
    kept = tuple(a for a in range(w.ndim) if a not in axes)
    order = kept + axes
    t = np.ascontiguousarray(np.transpose(w, order))
    rescaled = _core.max_norm(
        code, t, math.prod(shape[a] for a in kept), math.prod(shape[a] for a in axes), 1, max_value
    )
    if rescaled:
        w[...] = np.transpose(t, np.argsort(order))
    return rescaled
