"""Validation, once per call: the arguments of every public function become one call record (_calls), and
the backend that will run it is chosen (by the kind of the call's first array: _route). A backend receives
only records (_backend_cpu, _backend_cuda: the same signature per op); nothing here modifies an array, so
a rejected call leaves everything as it was. The NumPy reference validates with the same functions
(host_only=True).
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy as np

from . import _args, _arrays, _lists, _route
from ._calls import (BackwardCall, BiasDropoutAddCall, BiasGradCall, DropoutCall, GroupL1Call, MaskCall, MaxNormCall,
                     NormConstraintCall, PenaltyCall, UpdateCall)
from ._mask import Mask


_new = tuple.__new__

# ---------------------------------------------------------------------------------------------------------
# dropout


def _stream_args(p, seed, offset, store) -> tuple[float, int, int, bool]:
    """The scalars of every op that draws the dropout stream, checked in this order: p, seed (drawn when
    None), offset, store ("bits" keeps the mask bits)."""
    return (_args.probability(p), _args.seed_or_fresh(seed), _args.uint64(offset, "offset"),
            _args.store_mode(store) == "bits")


def dropout(x, p, seed, offset, out, store, *, host_only: bool = False) -> tuple[ModuleType, DropoutCall]:
    backend = _route.CPU if host_only or type(x) is np.ndarray else _route.backend_for(x)
    p, seed, offset, keep_bits = _stream_args(p, seed, offset, store)
    xa: Any
    oa: Any = None
    if backend is _route.CPU:
        xa = _arrays.host_array(x, "x")
        if out is not None:
            oa = _arrays.host_out(out, xa)
    else:
        xa = _arrays.device_array(x, "x")
        if out is not None:
            oa = _arrays.device_out(out, xa)
    # tuple.__new__ skips the generated NamedTuple.__new__ (a Python function): 0.15 us of a ~3.5 us call.
    return backend, _new(DropoutCall, (xa, oa, xa.shape, p, seed, offset, keep_bits, _args.keep_rule(p)))


def dropout_backward(grad, mask, out, *, host_only: bool = False) -> tuple[ModuleType, BackwardCall]:
    if not isinstance(mask, Mask):
        raise TypeError(f"mask: expected a regdrop_fast.Mask, got {type(mask).__name__}")
    backend = _route.CPU if host_only else _route.backend_for(grad)
    bits = mask._bits  # the fields as stored (each checked when it was set)
    ga: Any
    oa: Any = None
    if backend is _route.CPU:
        if bits is not None and not isinstance(bits, np.ndarray):
            raise ValueError("mask: its bits live on a CUDA device but grad is a host array")
        ga = _arrays.host_array(grad, "grad")
        if ga.shape != mask._shape:
            raise ValueError(f"grad: shape {ga.shape} does not match the mask's {mask._shape}")
        if bits is not None:
            _arrays.mask_bits(bits, ga.size, "mask: bits")
        if out is not None:
            oa = _arrays.host_out(out, ga)
    else:
        ga = _arrays.device_array(grad, "grad")
        if ga.shape != mask._shape:
            raise ValueError(f"grad: shape {ga.shape} does not match the mask's {mask._shape}")
        if bits is not None and (not _arrays.is_device_array(bits) or _arrays.wrap(bits).device != ga.device):
            raise ValueError("mask: its bits live on another device than grad")
        if out is not None:
            oa = _arrays.device_out(out, ga)
    return backend, BackwardCall(ga, oa, bits, mask._seed, mask._offset, _args.keep_rule(mask._p))


def dropout_mask(shape, p, seed, offset) -> MaskCall:
    shape = _args.shape_tuple(shape)
    p = _args.probability(p)
    n = math.prod(shape)
    return MaskCall(shape, n, p, _args.uint64(seed, "seed"), _args.uint64(offset, "offset"), _args.keep_rule(p))


# ---------------------------------------------------------------------------------------------------------
# bias_dropout_add (and dropout_add: bias None)


def _host_alias(a: np.ndarray, out: np.ndarray) -> bool:
    """out is exactly a (same first byte, both C-contiguous, same shape and dtype): in place is allowed."""
    return a.flags.c_contiguous and a.ctypes.data == out.ctypes.data and a.shape == out.shape


def _device_alias(a, out) -> bool:
    return a.contiguous and a.ptr == out.ptr and a.shape == out.shape


def bias_operands(x_shape: tuple, x_dtype, bias: tuple | None, r_shape: tuple, r_dtype) -> int:
    """The rules between x, bias ((shape, dtype) or None) and residual, all of supported dtypes (also used by
    regdrop_fast.torch before it draws a seed); returns h, the bias length (x's size without a bias)."""
    if r_dtype != x_dtype:
        raise ValueError(f"residual: dtype {r_dtype} does not match x's {x_dtype}")
    if r_shape != x_shape:
        raise ValueError(f"residual: shape {r_shape} does not match x's {x_shape}")
    if bias is None:
        return math.prod(x_shape)
    b_shape, b_dtype = bias
    if b_dtype != x_dtype:
        raise ValueError(f"bias: dtype {b_dtype} does not match x's {x_dtype}")
    if len(x_shape) == 0 or b_shape != x_shape[-1:]:
        raise ValueError(f"bias: shape {b_shape} is not ({x_shape[-1] if x_shape else 'H'},), the length of "
                         f"x's last axis (x has shape {x_shape})")
    return x_shape[-1]


def bias_dropout_add(x, bias, residual, p, seed, offset, out, store, *,
                     host_only: bool = False) -> tuple[ModuleType, BiasDropoutAddCall]:
    backend = _route.CPU if host_only or type(x) is np.ndarray else _route.backend_for(x)
    p, seed, offset, keep_bits = _stream_args(p, seed, offset, store)
    xa: Any
    ra: Any
    ba: Any = None
    oa: Any = None
    if backend is _route.CPU:
        xa = _arrays.host_array(x, "x")
        ra = _arrays.host_array(residual, "residual")
        if bias is not None:
            ba = _arrays.host_array(bias, "bias")
    else:
        xa = _arrays.device_array(x, "x")
        ra = _arrays.same_device(residual, "residual", xa, "x")
        if bias is not None:
            ba = _arrays.same_device(bias, "bias", xa, "x")
    h = bias_operands(xa.shape, xa.dtype, None if ba is None else (ba.shape, ba.dtype), ra.shape, ra.dtype)
    if out is not None:
        # y may replace x or residual whole (each element is read before it is written, by the same lane or
        # thread), but no other overlap: a partly shifted x or residual would be read after being written,
        # and bias is read again for every row.
        if backend is _route.CPU:
            oa = _arrays.host_out(out, xa)
            for a, name in ((xa, "x"), (ra, "residual")):
                if not _host_alias(a, oa) and np.may_share_memory(a, oa):
                    raise ValueError(f"out: overlaps {name} partially; out may be {name} itself (in place) "
                                     "or memory apart from it")
            if ba is not None and np.may_share_memory(ba, oa):
                raise ValueError("out: overlaps bias; bias is read for every row")
        else:
            oa = _arrays.device_out(out, xa)
            for a, name in ((xa, "x"), (ra, "residual")):
                if not _device_alias(a, oa) and a.overlaps(oa):
                    raise ValueError(f"out: overlaps {name} partially; out may be {name} itself (in place) "
                                     "or memory apart from it")
            if ba is not None and ba.overlaps(oa):
                raise ValueError("out: overlaps bias; bias is read for every row")
    return backend, BiasDropoutAddCall(xa, ba, ra, oa, xa.shape, h, p, seed, offset, keep_bits, _args.keep_rule(p))


def bias_dropout_add_backward(grad, mask, out, *, host_only: bool = False) -> tuple[ModuleType, BiasGradCall]:
    backend, call = dropout_backward(grad, mask, out, host_only=host_only)
    shape = call.grad.shape
    if len(shape) == 0:
        raise ValueError("grad: is 0-d; the bias gradient sums over all axes but the last, so grad needs one")
    o, g = call.out, call.grad
    if o is not None and (np.may_share_memory(o, g) if backend is _route.CPU else o.overlaps(g)):
        raise ValueError("out: overlaps grad; grad is returned as dresidual, so dx needs memory of its own")
    return backend, BiasGradCall(call, math.prod(shape[:-1]), shape[-1])


# ---------------------------------------------------------------------------------------------------------
# penalties


def _list_backend(params, host_only: bool) -> ModuleType:
    if host_only or not params:
        return _route.CPU
    return _route.backend_for(params[0])


def penalty(params, grads, l1, l2, as_float, *, host_only: bool = False) -> tuple[ModuleType, PenaltyCall]:
    """penalty_grad (grads given) or penalty (grads None)."""
    params = _lists.sequence(params, "params")
    if grads is not None:
        grads = _lists.sequence(grads, "grads")
        if len(grads) != len(params):
            raise _lists.refusal_error(("length", "grads", len(grads), len(params)), params, grads)
    c1 = _args.coefficients(l1, len(params), "l1")
    c2 = _args.coefficients(l2, len(params), "l2")
    as_float = _args.flag(as_float, "as_float")
    backend = _list_backend(params, host_only)
    if backend is _route.CUDA:
        params = _lists.device_list(params, grads, written_params=False)
        grads = None if grads is None else params
    return backend, PenaltyCall(params, grads, c1, c2, as_float)


def update(params, coef, name: str, upper, as_int, *, host_only: bool = False) -> tuple[ModuleType, UpdateCall]:
    """prox_l1 (coef: threshold) or decay (coef: factor, upper 1)."""
    params = _lists.sequence(params, "params")
    c = _args.coefficients(coef, len(params), name, upper)
    as_int = _args.flag(as_int, "as_int")
    backend = _list_backend(params, host_only)
    if backend is _route.CUDA:
        params = _lists.device_list(params, None, written_params=True)
    return backend, UpdateCall(params, c, as_int)


def _host_slices(w: np.ndarray, axes: tuple) -> tuple[np.ndarray, tuple]:
    """A host array that is not C-contiguous, for max_norm: the array the kernel works on and its reduced
    axes. Each slice's norm must be summed over the reduced index in C order of the reduced axes (the order
    of a C-contiguous copy, so the same bits come out): when w is dense in some memory order and its reduced
    axes of size > 1 keep their order there, unflipped, that C-contiguous view of w itself (no copy); else w
    with all its axes, which the backend reads through a permuted copy and writes back (the path of
    reduced axes that are not adjacent)."""
    viewed = _arrays.memory_order(w)
    if viewed is not None:
        v, perm, flipped = viewed
        moved = [a for a in perm if a in axes and w.shape[a] > 1]
        if moved == sorted(moved) and not any(flipped[a] for a in axes):
            return v, tuple(sorted(perm.index(a) for a in axes))
    return w, axes


def _written_w(w, host_only: bool) -> tuple[ModuleType, Any]:
    """The backend for w and w checked as an array written in place (max_norm, norm_constraint)."""
    backend = _route.CPU if host_only else _route.backend_for(w)
    if backend is _route.CPU:
        return backend, _arrays.written_host(w, "w")
    return backend, _arrays.written_device(_arrays.device_array(w, "w"), "w")


def max_norm(w, max_value, axis, as_int, *, host_only: bool = False) -> tuple[ModuleType, MaxNormCall]:
    as_int = _args.flag(as_int, "as_int")
    backend, wa = _written_w(w, host_only)
    return backend, _slices(backend, wa, _args.max_value(max_value), axis, as_int)


def norm_constraint(w, min_value, max_value, rate, axis, as_int, *,
                    host_only: bool = False) -> tuple[ModuleType, NormConstraintCall]:
    """norm_constraint (unit_norm: min_value = max_value = rate = 1)."""
    as_int = _args.flag(as_int, "as_int")
    backend, wa = _written_w(w, host_only)
    lo, hi, r = _args.norm_bounds(min_value, max_value, rate)
    return backend, NormConstraintCall(_slices(backend, wa, hi, axis, as_int), lo, r)


def _slices(backend, wa, v: float, axis, as_int: bool) -> MaxNormCall:
    """The slices of a max_norm / norm_constraint call (wa already checked, v the bound)."""
    axes = _args.axes(axis, len(wa.shape))
    if backend is _route.CPU and not wa.flags.c_contiguous:
        wa, axes = _host_slices(wa, axes)
    shape = wa.shape
    lo, hi = axes[0], axes[-1] + 1
    if axes == tuple(range(lo, hi)) and (backend is not _route.CPU or wa.flags.c_contiguous):
        # Adjacent reduced axes: w itself viewed as (outer, reduce, inner).
        return MaxNormCall(wa, v, axes, None, math.prod(shape[:lo]), math.prod(shape[lo:hi]),
                           math.prod(shape[hi:]), as_int)
    # Reduced axes apart: a copy with the kept axes first and the reduced axes last (each in its original
    # order, so the reduced index is the same C order), viewed as (outer, reduce, 1).
    kept = tuple(a for a in range(len(shape)) if a not in axes)
    return MaxNormCall(wa, v, axes, kept + axes, math.prod(shape[a] for a in kept),
                       math.prod(shape[a] for a in axes), 1, as_int)


def non_neg(params, as_int, *, host_only: bool = False) -> tuple[ModuleType, UpdateCall]:
    """non_neg: a list operation like prox_l1, without a coefficient (coef 0.0, unused)."""
    params = _lists.sequence(params, "params")
    as_int = _args.flag(as_int, "as_int")
    backend = _list_backend(params, host_only)
    if backend is _route.CUDA:
        params = _lists.device_list(params, None, written_params=True)
    return backend, UpdateCall(params, 0.0, as_int)


def prox_group_l1(params, threshold, axis, as_int, *, host_only: bool = False) -> tuple[ModuleType, GroupL1Call]:
    """prox_group_l1: the list rules of prox_l1 (written arrays: _lists), then each array's groups as
    max_norm's slices over `axis`."""
    params = _lists.sequence(params, "params")
    t = _args.coefficients(threshold, len(params), "threshold")
    as_int = _args.flag(as_int, "as_int")
    backend = _list_backend(params, host_only)
    if backend is _route.CUDA:
        arrays, _ = _lists.device_lists(params, None, written_params=True)
    else:
        arrays = _lists.host_arrays(params, None, written_params=True)
    slices = [_slices(backend, a, 0.0, axis, as_int) for a in arrays]
    return backend, GroupL1Call(slices, _args.as_list(t, len(arrays)), as_int)
