"""The weight penalties on CUDA arrays (PyTorch CUDA tensors, CuPy arrays); called by _penalty when the
first array of a call is one.

Every array of a call must be a CUDA array of the same library on the same device (else ValueError); the
checks are those of the CPU path (_checks), all made before anything is launched, so a rejected call
modifies nothing. Parameters that are only read may have any strides (a contiguous copy is made on the
device); arrays written in place must be C-contiguous.

A list is a few launches in all (csrc/cuda/list_plan.h), on the caller's current stream. Sums come back as
0-d device arrays of the caller's library (float64 for penalty values, int64 for counts), so nothing waits
for the device unless a Python number is asked for (as_float / as_int). The scratch buffer of the sums
and the 0-d result are allocated through the caller's library on its current stream, so its allocator
orders their reuse after these kernels.
"""

from __future__ import annotations

import math

import numpy as np

from . import _checks, cuda

_FLOAT64 = np.dtype(np.float64)
_INT64 = np.dtype(np.int64)


def _native():
    if cuda._cuda is None:
        raise ValueError("params[0]: is a CUDA array but regdrop_fast was built without CUDA support")
    return cuda._cuda


def _member(a, name: str, ref: cuda.DeviceArray, ref_name: str) -> cuda.DeviceArray:
    """a as a DeviceArray on ref's device and of ref's library (ValueError) with a supported dtype (TypeError)."""
    if not cuda.is_device_array(a):
        raise ValueError(
            f"{name}: is a host array but {ref_name} is a CUDA array; all arrays of a call must be on one device"
        )
    d = cuda.wrap(a)
    if d.lib != ref.lib:
        raise ValueError(
            f"{name}: is a {d.lib} array but {ref_name} is a {ref.lib} array; all arrays of a call must come "
            "from one library"
        )
    if d.device != ref.device:
        raise ValueError(
            f"{name}: is on CUDA device {d.device} but {ref_name} is on device {ref.device}; all arrays of a "
            "call must be on one device"
        )
    if d.dtype not in _checks.DTYPE_CODES:
        raise TypeError(f"{name}: dtype {d.dtype} is not supported; expected {_checks.SUPPORTED}")
    return d


def _first(params) -> cuda.DeviceArray:
    return cuda.float_device_array(params[0], "params[0]")


def _written(d: cuda.DeviceArray, name: str) -> cuda.DeviceArray:
    if not d.contiguous:
        raise ValueError(f"{name}: must be C-contiguous (it is modified in place)")
    return d


def _check_disjoint(arrays, names, pairs, written) -> None:
    """_checks.disjoint_ranges on the arrays' device memory; names(), pairs and written as it takes them."""
    ranges = sorted((a.ptr, a.ptr + a.nbytes, k) for k, a in enumerate(arrays) if a.nbytes)
    if all(nxt[0] >= cur[1] for cur, nxt in zip(ranges, ranges[1:])):
        return  # no two arrays share memory (the common case, checked in one pass)
    _checks.disjoint_ranges(ranges, names(), pairs, written)


def _slots(arrays) -> int:
    """Scratch slots a list call may use: one per chunk of every array (csrc/cuda/list_plan.h)."""
    chunk = cuda._cuda.CHUNK_ELEMS
    return sum(-(-a.size // chunk) for a in arrays)


def _columns(arrays):
    """The per-array lists the bindings take: dtype codes, sizes, pointers."""
    codes = [_checks.DTYPE_CODES[a.dtype] for a in arrays]
    return codes, [a.size for a in arrays], [a.ptr for a in arrays]


def _result(out, as_python, kind):
    return kind(out.item()) if as_python else out


def penalty_grad(params, grads, c1: np.ndarray, c2: np.ndarray, as_float: bool):
    """penalty_grad (grads given) or penalty (grads None) on CUDA arrays; coefficients already checked."""
    native = _native()
    ref = _first(params)
    ws, gs = [], []
    for i, p in enumerate(params):
        w = ref if i == 0 else _member(p, f"params[{i}]", ref, "params[0]")
        ws.append(w if w.contiguous else w.contiguous_copy())
        if grads is not None:
            g = _written(_member(grads[i], f"grads[{i}]", ref, "params[0]"), f"grads[{i}]")
            if g.dtype != w.dtype:
                raise ValueError(f"grads[{i}]: dtype {g.dtype} does not match params[{i}]'s {w.dtype}")
            if g.shape != w.shape:
                raise ValueError(f"grads[{i}]: shape {g.shape} does not match params[{i}]'s {w.shape}")
            gs.append(g)
    n = len(ws)
    if grads is not None:
        _check_disjoint(ws + gs, lambda: [f"params[{i}]" for i in range(n)] + [f"grads[{i}]" for i in range(n)],
                        list(range(n)) * 2, [False] * n + [True] * n)
    codes, sizes, ptrs = _columns(ws)
    slots_n = _slots(ws)
    slots = ref.empty((slots_n,), _FLOAT64)
    out = ref.empty((), _FLOAT64)
    native.penalty_grad(
        codes, sizes, ptrs, [g.ptr for g in gs], c1.tolist(), c2.tolist(), cuda.wrap(slots).ptr, slots_n,
        cuda.wrap(out).ptr, ref.device, ref.stream(),
    )
    return _result(out, as_float, float)


def _update_arrays(params) -> tuple[cuda.DeviceArray, list]:
    ref = _first(params)
    ws = [_written(ref if i == 0 else _member(p, f"params[{i}]", ref, "params[0]"), f"params[{i}]")
          for i, p in enumerate(params)]
    n = len(ws)
    _check_disjoint(ws, lambda: [f"params[{i}]" for i in range(n)], list(range(n)), [True] * n)
    return ref, ws


def prox_l1(params, threshold: np.ndarray, as_int: bool):
    native = _native()
    ref, ws = _update_arrays(params)
    codes, sizes, ptrs = _columns(ws)
    slots_n = _slots(ws)
    slots = ref.empty((slots_n,), _INT64)
    out = ref.empty((), _INT64)
    native.prox_l1(codes, sizes, ptrs, threshold.tolist(), cuda.wrap(slots).ptr, slots_n, cuda.wrap(out).ptr,
                   ref.device, ref.stream())
    return _result(out, as_int, int)


def decay(params, factor: np.ndarray) -> None:
    native = _native()
    ref, ws = _update_arrays(params)
    codes, sizes, ptrs = _columns(ws)
    native.decay(codes, sizes, ptrs, factor.tolist(), ref.device, ref.stream())


def _permuted_copy(w: cuda.DeviceArray, order):
    """A C-contiguous copy of w with its axes in `order`, in w's library."""
    if w.lib == "torch":
        return w.obj.detach().permute(order).contiguous()
    import cupy

    with cupy.cuda.Device(w.device):
        return cupy.ascontiguousarray(cupy.transpose(w.obj, order))


def _copy_back(w: cuda.DeviceArray, t, order) -> None:
    """w[...] = t with t's axes (in `order`) put back in w's order."""
    inverse = tuple(int(k) for k in np.argsort(order))
    if w.lib == "torch":
        import torch

        with torch.no_grad():  # a parameter that requires grad is written like any other array
            w.obj.copy_(t.permute(inverse))
        return
    import cupy

    with cupy.cuda.Device(w.device):
        w.obj[...] = cupy.transpose(t, inverse)


def max_norm(w, max_value, axis, as_int: bool):
    """max_norm on a CUDA array w (its arguments not yet checked)."""
    native = _native()
    wa = _written(cuda.float_device_array(w, "w"), "w")
    v, axes = _checks.max_norm_scalars(max_value, axis, len(wa.shape))
    shape, code = wa.shape, _checks.DTYPE_CODES[wa.dtype]
    slots = wa.empty((native.MAX_NORM_SLOTS,), _INT64)
    out = wa.empty((), _INT64)
    lo, hi = axes[0], axes[-1] + 1
    if axes == tuple(range(lo, hi)):
        # Adjacent reduced axes: w viewed as (outer, reduce, inner) in place.
        outer, reduce, inner = math.prod(shape[:lo]), math.prod(shape[lo:hi]), math.prod(shape[hi:])
        native.max_norm(code, wa.ptr, outer, reduce, inner, v, cuda.wrap(slots).ptr, native.MAX_NORM_SLOTS,
                        cuda.wrap(out).ptr, wa.device, wa.stream())
        return _result(out, as_int, int)
    # Reduced axes apart: a copy with the kept axes first and the reduced axes last (each in its original
    # order, so the reduced index is the same C order), written back whole: the host does not wait to learn
    # whether any slice was rescaled, and slices left alone are copied back bit for bit.
    kept = tuple(a for a in range(len(shape)) if a not in axes)
    order = kept + axes
    t = _permuted_copy(wa, order)
    native.max_norm(code, cuda.wrap(t).ptr, math.prod(shape[a] for a in kept), math.prod(shape[a] for a in axes),
                    1, v, cuda.wrap(slots).ptr, native.MAX_NORM_SLOTS, cuda.wrap(out).ptr, wa.device, wa.stream())
    _copy_back(wa, t, order)
    return _result(out, as_int, int)
