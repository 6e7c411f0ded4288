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
from ._calls import (BackwardCall, BiasDropoutAddCall, BiasGradCall, DropoutCall, GaussianCall, GroupL1Call, GroupView,
                     MaskCall, MaxNormCall, NormConstraintCall, PenaltyCall, UpdateCall, VariantCall)
from ._gaussian_noise import GaussianNoise
from ._mask import Mask


_new = tuple.__new__

# ---------------------------------------------------------------------------------------------------------
# dropout


def _stream_args(p, seed, offset, store) -> tuple[float, int, int, bool]:
    """The scalars of every op that draws the dropout stream, checked in this order: p, seed (drawn when
    None), offset, store ("bits" keeps the mask bits)."""
    return (_args.probability(p), _args.seed_or_fresh(seed), _args.uint64(offset, "offset"),
            _args.store_mode(store) == "bits")


def _input_and_out(backend: ModuleType, x, out) -> tuple[Any, Any]:
    """x and out (or None) checked as the backend's arrays: out matching x's shape and dtype."""
    xa: Any  # a host ndarray or a DeviceArray, by backend
    if backend is _route.CPU:
        xa = _arrays.host_array(x, "x")
        return xa, None if out is None else _arrays.host_out(out, xa)
    xa = _arrays.device_array(x, "x")
    return xa, None if out is None else _arrays.device_out(out, xa)


def dropout(x, p, seed, offset, out, store, global_shape=None, local_start=None, *,
            host_only: bool = False) -> tuple[ModuleType, DropoutCall]:
    backend = _route.CPU if host_only or type(x) is np.ndarray else _route.backend_for(x)
    p, seed, offset, keep_bits = _stream_args(p, seed, offset, store)
    xa, oa = _input_and_out(backend, x, out)
    block = _args.global_block(global_shape, local_start, xa.shape)  # None for a plain call
    # tuple.__new__ skips the generated NamedTuple.__new__ (a Python function): 0.15 us of a ~3.5 us call.
    return backend, _new(DropoutCall, (xa, oa, xa.shape, p, seed, offset, keep_bits, _args.keep_rule(p), block))


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
    return backend, BackwardCall(ga, oa, bits, mask._seed, mask._offset, _args.keep_rule(mask._p), mask._block)


def dropout_mask(shape, p, seed, offset, global_shape=None, local_start=None) -> MaskCall:
    shape = _args.shape_tuple(shape)
    p = _args.probability(p)
    n = math.prod(shape)
    seed, offset = _args.uint64(seed, "seed"), _args.uint64(offset, "offset")
    block = _args.global_block(global_shape, local_start, shape)
    return MaskCall(shape, n, p, seed, offset, _args.keep_rule(p), block)


# ---------------------------------------------------------------------------------------------------------
# the mask-based variants: dropout with broadcast axes, drop_path, alpha_dropout

SCALED, ALPHA = 0, 1  # MaskedValue (csrc/common/dropout_broadcast_element.h)
_NO_ALPHA = _args.AlphaRule(0.0, 0.0, 0.0)


def _variant_x(x, out, host_only: bool) -> tuple[ModuleType, Any, Any]:
    backend = _route.CPU if host_only or type(x) is np.ndarray else _route.backend_for(x)
    return (backend, *_input_and_out(backend, x, out))


def variant(x, p, broadcast_dims, seed, offset, out, store, kind: str, scale_by_keep: bool = True,
            global_shape=None, local_start=None, *, host_only: bool = False) -> tuple[ModuleType, VariantCall]:
    """dropout with broadcast_dims (kind "dropout"), drop_path ("drop_path": every axis but 0 broadcast;
    broadcast_dims unused) or alpha_dropout ("alpha")."""
    p, seed, offset, keep_bits = _stream_args(p, seed, offset, store)
    if kind == "drop_path":
        scale_by_keep = _args.flag(scale_by_keep, "scale_by_keep")
    backend, xa, oa = _variant_x(x, out, host_only)
    shape = xa.shape
    if kind == "drop_path":
        if len(shape) == 0:
            raise ValueError("x: is 0-d; drop_path takes one decision per sample along axis 0, so x needs one")
        dims = tuple(range(1, len(shape)))
    else:
        dims = _args.broadcast_dims(broadcast_dims, len(shape))
    reduced = _args.reduced_shape(shape, dims)
    full_block = _args.global_block(global_shape, local_start, shape)  # None for a plain call
    block = None if full_block is None else _args.reduced_block(full_block, dims, shape)
    rule = _args.keep_rule(p)
    if kind == "alpha":
        alpha = _args.alpha_rule(p)
        value, scale = ALPHA, 0.0
    else:
        alpha = _NO_ALPHA
        value, scale = SCALED, rule.scale if scale_by_keep or rule.drop_all else 1.0
    return backend, VariantCall(xa, oa, None, shape, dims, reduced, math.prod(reduced), p, seed, offset,
                                keep_bits, rule, value, scale, alpha, "x", block, full_block)


def variant_backward(grad, mask, out, *, alpha: bool = False,
                     host_only: bool = False) -> tuple[ModuleType, VariantCall]:
    """dropout_backward of a mask with broadcast axes or without scale_by_keep, or alpha_dropout_backward
    (alpha: dx = a * grad where kept, 0 elsewhere)."""
    if not isinstance(mask, Mask):
        raise TypeError(f"mask: expected a regdrop_fast.Mask, got {type(mask).__name__}")
    backend = _route.CPU if host_only else _route.backend_for(grad)
    bits = mask._bits
    ga: Any
    if backend is _route.CPU:
        if bits is not None and not isinstance(bits, np.ndarray):
            raise ValueError("mask: its bits live on a CUDA device but grad is a host array")
        ga = _arrays.host_array(grad, "grad")
    else:
        ga = _arrays.device_array(grad, "grad")
        if bits is not None and (not _arrays.is_device_array(bits) or _arrays.wrap(bits).device != ga.device):
            raise ValueError("mask: its bits live on another device than grad")
    if ga.shape != mask._shape:
        raise ValueError(f"grad: shape {ga.shape} does not match the mask's {mask._shape}")
    reduced = _args.reduced_shape(mask._shape, mask._dims)
    m = math.prod(reduced)
    if bits is not None and backend is _route.CPU:
        _arrays.mask_bits(bits, m, "mask: bits")
    oa: Any = None
    if out is not None:
        oa = _arrays.host_out(out, ga) if backend is _route.CPU else _arrays.device_out(out, ga)
    rule = _args.keep_rule(mask._p)
    if alpha:
        scale = _args.alpha_rule(mask._p).a
    else:
        scale = rule.scale if mask._scale_by_keep or rule.drop_all else 1.0
    block = None
    if bits is None and mask._block is not None:  # regenerated: the decisions' block
        block = _args.reduced_block(mask._block, mask._dims, mask._shape)
    return backend, VariantCall(ga, oa, bits, mask._shape, mask._dims, reduced, m, mask._p, mask._seed,
                                mask._offset, False, rule, SCALED, scale, _NO_ALPHA, "grad", block)


def dropout_mask_dims(shape, p, seed, offset, broadcast_dims, global_shape=None,
                      local_start=None) -> tuple[MaskCall, tuple[int, ...], Any]:
    """dropout_mask with broadcast axes: the MaskCall of the reduced shape (with the decisions' block), the
    axes, and the array's own block (None without global_shape)."""
    call = dropout_mask(shape, p, seed, offset, global_shape, local_start)
    dims = _args.broadcast_dims(broadcast_dims, len(call.shape))
    reduced = _args.reduced_shape(call.shape, dims)
    block = None if call.block is None else _args.reduced_block(call.block, dims, call.shape)
    return call._replace(shape=reduced, n=math.prod(reduced), block=block), dims, call.block


# ---------------------------------------------------------------------------------------------------------
# bias_dropout_add (and dropout_add: bias None)


def _c_order_out(oa, backend) -> None:
    """Refuse an out= (already checked dense by host_out / device_out) that is not C-contiguous, for the ops
    whose kernels write their result in C order: the epilogue (rows of the bias's length) and gaussian
    dropout (the stream's flat order). dropout and its variants follow out's strides instead; here another
    dense layout (Fortran order, channels_last) would receive the values in the wrong places."""
    if not (oa.flags.c_contiguous if backend is _route.CPU else oa.contiguous):
        raise ValueError("out: must be C-contiguous (this op writes its result in C order)")


def _host_alias(a: np.ndarray, out: np.ndarray) -> bool:
    """out (C-contiguous) is exactly a (the same object, or the same first byte, shape and dtype, a C-contiguous
    too): in place is allowed. Ask only when np.may_share_memory(a, out): reading an address through
    ``.ctypes`` costs ~1 us, twice the rest of a small call's checks."""
    return a is out or (a.flags.c_contiguous and a.shape == out.shape and a.ctypes.data == out.ctypes.data)


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


def bias_dropout_add(x, bias, residual, p, seed, offset, out, store, global_shape=None, local_start=None, *,
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
    # x (residual, out) as a block of a global tensor; bias is the block's own slice (bias_operands checked
    # its length against the block's last axis), so it needs no global position
    block = _args.global_block(global_shape, local_start, xa.shape)  # None for a plain call
    if out is not None:
        # y may replace x or residual whole (each element is read before it is written, by the same lane or
        # thread), but no other overlap: a partly shifted x or residual would be read after being written,
        # and bias is read again for every row.
        if backend is _route.CPU:
            oa = _arrays.host_out(out, xa)
            _c_order_out(oa, backend)
            for a, name in ((xa, "x"), (ra, "residual")):
                if np.may_share_memory(a, oa) and not _host_alias(a, oa):
                    raise ValueError(f"out: overlaps {name} partially; out may be {name} itself (in place) "
                                     "or memory apart from it")
            if ba is not None and np.may_share_memory(ba, oa):
                raise ValueError("out: overlaps bias; bias is read for every row")
        else:
            oa = _arrays.device_out(out, xa)
            _c_order_out(oa, backend)
            for a, name in ((xa, "x"), (ra, "residual")):
                if not _device_alias(a, oa) and a.overlaps(oa):
                    raise ValueError(f"out: overlaps {name} partially; out may be {name} itself (in place) "
                                     "or memory apart from it")
            if ba is not None and ba.overlaps(oa):
                raise ValueError("out: overlaps bias; bias is read for every row")
    return backend, BiasDropoutAddCall(xa, ba, ra, oa, xa.shape, h, p, seed, offset, keep_bits, _args.keep_rule(p),
                                       block)


def bias_dropout_add_backward(grad, mask, out, *, host_only: bool = False) -> tuple[ModuleType, BiasGradCall]:
    if isinstance(mask, Mask) and (mask._dims or not mask._scale_by_keep):
        raise ValueError("mask: is a dropout variant's (broadcast_dims or scale_by_keep=False); "
                         "bias_dropout_add_backward takes the mask of bias_dropout_add (one decision per element)")
    backend, call = dropout_backward(grad, mask, out, host_only=host_only)
    shape = call.grad.shape
    if len(shape) == 0:
        raise ValueError("grad: is 0-d; the bias gradient sums over all axes but the last, so grad needs one")
    o, g = call.out, call.grad
    if o is not None:
        _c_order_out(o, backend)
    if o is not None and (np.may_share_memory(o, g) if backend is _route.CPU else o.overlaps(g)):
        raise ValueError("out: overlaps grad; grad is returned as dresidual, so dx needs memory of its own")
    return backend, BiasGradCall(call, math.prod(shape[:-1]), shape[-1])


# ---------------------------------------------------------------------------------------------------------
# gaussian_dropout


def _gaussian_operands(backend, x, out, name: str) -> tuple[Any, Any]:
    """x (any strides) and out (C-contiguous: the kernels write the stream's flat order) checked; out may
    be x itself but overlap no other part of it."""
    xa: Any
    oa: Any = None
    if backend is _route.CPU:
        xa = _arrays.host_array(x, name)
        if out is not None:
            oa = _arrays.host_out(out, xa)
            _c_order_out(oa, backend)
            if np.may_share_memory(xa, oa) and not _host_alias(xa, oa):
                raise ValueError(f"out: overlaps {name} partially; out may be {name} itself (in place) or "
                                 "memory apart from it")
    else:
        xa = _arrays.device_array(x, name)
        if out is not None:
            oa = _arrays.device_out(out, xa)
            _c_order_out(oa, backend)
            if not _device_alias(xa, oa) and xa.overlaps(oa):
                raise ValueError(f"out: overlaps {name} partially; out may be {name} itself (in place) or "
                                 "memory apart from it")
    return xa, oa


def gaussian_dropout(x, p, seed, offset, out, global_shape=None, local_start=None, *,
                     host_only: bool = False) -> tuple[ModuleType, GaussianCall]:
    backend = _route.CPU if host_only or type(x) is np.ndarray else _route.backend_for(x)
    p = _args.gaussian_probability(p)
    seed = _args.seed_or_fresh(seed)
    offset = _args.uint64(offset, "offset")
    xa, oa = _gaussian_operands(backend, x, out, "x")
    block = _args.global_block(global_shape, local_start, xa.shape)  # None for a plain call
    return backend, GaussianCall(xa, oa, xa.shape, p, seed, offset, _args.noise_std(p), block)


def gaussian_dropout_backward(grad, noise, out, *, host_only: bool = False) -> tuple[ModuleType, GaussianCall]:
    if not isinstance(noise, GaussianNoise):
        raise TypeError(f"noise: expected a regdrop_fast.GaussianNoise, got {type(noise).__name__}")
    backend = _route.CPU if host_only else _route.backend_for(grad)
    ga, oa = _gaussian_operands(backend, grad, out, "grad")
    if ga.shape != noise.shape:
        raise ValueError(f"grad: shape {ga.shape} does not match the noise's {noise.shape}")
    return backend, GaussianCall(ga, oa, ga.shape, noise.p, noise.seed, noise.offset, noise.std, noise._block)


# ---------------------------------------------------------------------------------------------------------
# penalties


def _list_backend(params, host_only: bool) -> ModuleType:
    if host_only or not params:
        return _route.CPU
    return _route.backend_for(params[0])


def penalty(params, grads, l1, l2, as_float, group_l1=0.0, axis=None, *,
            host_only: bool = False) -> tuple[ModuleType, PenaltyCall]:
    """penalty_grad (grads given) or penalty (grads None); group_l1 with axis adds the group term."""
    params = _lists.sequence(params, "params")
    if grads is not None:
        grads = _lists.sequence(grads, "grads")
        if len(grads) != len(params):
            raise _lists.refusal_error(("length", "grads", len(grads), len(params)), params, grads)
    c1 = _args.coefficients(l1, len(params), "l1")
    c2 = _args.coefficients(l2, len(params), "l2")
    cg = _args.coefficients(group_l1, len(params), "group_l1")
    as_float = _args.flag(as_float, "as_float")
    group: list[float] | None = _args.as_list(cg, len(params))
    if not any(group or ()):
        if axis is not None:
            _args.axis_items(axis)
        group = None
    elif axis is None:
        raise ValueError("axis: required with a nonzero group_l1 (the axes each group's norm is taken over)")
    backend = _list_backend(params, host_only)
    if backend is _route.CUDA:
        listed = _lists.device_list(params, grads, written_params=False, arrays_wanted=group is not None)
        shapes = [w.shape for w in listed.ws]
        params, grads = listed, None if grads is None else listed
    elif group is not None:
        # The groups need every array's shape: the rules of the native reader, in Python (_lists), here.
        params = _lists.host_arrays(params, grads, written_params=False)
        shapes = [p.shape for p in params]
    if group is None:
        return backend, PenaltyCall(params, grads, c1, c2, as_float)
    axes_of: dict[int, tuple[int, ...]] = {}  # by ndim: axis is checked once per rank, not once per array
    views = [None if c == 0.0 else _group_view(tuple(s), axis, i, axes_of)
             for i, (s, c) in enumerate(zip(shapes, group))]
    return backend, PenaltyCall(params, grads, c1, c2, as_float, group, views)


def _group_view(shape: tuple, axis, i: int, axes_of: dict[int, tuple[int, ...]]) -> GroupView:
    """params[i]'s groups over `axis` (max_norm's slices); axes_of holds the axes already found for a rank
    (whether axis is valid depends on the rank alone, so the first array of a bad rank still raises)."""
    axes = axes_of.get(len(shape))
    if axes is None:
        try:
            axes = axes_of[len(shape)] = _args.axes(axis, len(shape))
        except ValueError as exc:
            raise ValueError(f"{exc} (params[{i}] has shape {shape})") from None
    lo, hi = axes[0], axes[-1] + 1
    if axes == tuple(range(lo, hi)):
        return GroupView(None, math.prod(shape[:lo]), math.prod(shape[lo:hi]), math.prod(shape[hi:]))
    kept = tuple(a for a in range(len(shape)) if a not in axes)
    return GroupView(kept + axes, math.prod(shape[a] for a in kept), math.prod(shape[a] for a in axes), 1)


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


def _device_slices(d: _arrays.DeviceArray, axes: tuple) -> tuple[_arrays.DeviceArray, tuple]:
    """_host_slices for a CUDA array that is not C-contiguous: when it is dense in some memory order with its
    reduced axes of size > 1 in their order there, unflipped and adjacent, a C-contiguous DeviceArray view of its memory
    (its lowest address, the permuted shape; obj still the argument, for allocations and the stream) and the
    reduced axes in it; else d itself, which the backend reads through a permuted copy written back."""
    order = _arrays.device_memory_order(d)
    if order is not None:
        perm, flipped, low = order
        moved = [a for a in perm if a in axes and d.shape[a] > 1]
        mapped = tuple(sorted(perm.index(a) for a in axes))
        adjacent = mapped == tuple(range(mapped[0], mapped[-1] + 1))
        if moved == sorted(moved) and not any(flipped[a] for a in axes) and adjacent:
            shape = tuple(d.shape[a] for a in perm)
            strides, step = [], 1
            for n in reversed(shape):
                strides.append(step)
                step *= n
            view = _arrays.DeviceArray(d.obj, d.lib, d.ptr + low * d.dtype.itemsize, shape, d.dtype, d.device, True,
                                       tuple(reversed(strides)))
            return view, mapped
    return d, axes


def _slices(backend, wa, v: float, axis, as_int: bool) -> MaxNormCall:
    """The slices of a max_norm / norm_constraint call (wa already checked, v the bound)."""
    axes = _args.axes(axis, len(wa.shape))
    if backend is _route.CPU and not wa.flags.c_contiguous:
        wa, axes = _host_slices(wa, axes)
    elif backend is not _route.CPU and not wa.contiguous:
        wa, axes = _device_slices(wa, axes)
    shape = wa.shape
    lo, hi = axes[0], axes[-1] + 1
    if axes == tuple(range(lo, hi)) and (wa.flags.c_contiguous if backend is _route.CPU else wa.contiguous):
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
