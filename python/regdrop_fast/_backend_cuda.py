"""The CUDA backend: runs validated call records (_records) on the CUDA kernels (_native.cuda), with the same
signature per op as _backend_cpu. Arrays arrive as DeviceArrays (_arrays); outputs, scratch and 0-d results
are allocated through the caller's library (PyTorch or CuPy) on its current stream, so its allocator orders
their reuse after these kernels, and nothing here waits for the device unless a Python number is asked for
(as_float / as_int). docs/cuda.md describes the launches.
"""

from __future__ import annotations

import numpy as np

from . import _args, _arrays, _dtypes, _native

_FLOAT64 = np.dtype(np.float64)
_INT64 = np.dtype(np.int64)
_UINT8 = np.dtype(np.uint8)


def _source(a: _arrays.DeviceArray, y: _arrays.DeviceArray, out: _arrays.DeviceArray | None) -> _arrays.DeviceArray:
    """a in y's layout (C-contiguous or dense strided), an array the kernel may read while writing y: a
    itself when it has that layout and is out exactly or does not overlap it (out=x in place is fine: each
    element is read, then written, by one thread), else a copy in y's layout."""
    if y.contiguous:
        src = a.contiguous_copy()
        if out is not None and src.ptr != out.ptr and src.overlaps(out):
            src = src.fresh_copy()
        return src
    if a.same_layout(y) and (out is None or a.ptr == out.ptr or not a.overlaps(out)):
        return a
    return a.copy_in_layout_of(y)


def _output(a: _arrays.DeviceArray, out: _arrays.DeviceArray | None):
    """(the output as a DeviceArray, the (shape, strides) arguments of the kernel: empty for C order): out,
    or a new array in a's layout."""
    y = a.new_like() if out is None else out
    strides = y.layout()
    return y, (() if strides is None else y.shape), (() if strides is None else strides)


def _ptr(obj) -> int:
    return 0 if obj is None else _arrays.wrap(obj).ptr


def dropout(call):
    """(y, bits) as arrays of the input's library; bits None unless call.keep_bits."""
    kernels = _native.cuda_kernels("x")
    x = call.x
    y, shape, strides = _output(x, call.out)
    bits = x.empty(((x.size + 7) // 8,), _UINT8) if call.keep_bits else None
    rule = call.rule
    src = _source(x, y, call.out)  # held until the launch is queued (a copy's memory must outlive the call)
    kernels.dropout_forward(_dtypes.CODES[x.dtype], src.ptr, y.ptr, _ptr(bits), x.size, call.seed, call.offset,
                            rule.threshold, rule.drop_all, rule.scale, x.device, x.stream(), shape, strides)
    return y.obj, bits


def dropout_backward(call):
    kernels = _native.cuda_kernels("grad")
    g = call.grad
    dx, shape, strides = _output(g, call.out)
    rule = call.rule
    src = _source(g, dx, call.out)  # held until the launch is queued
    bits = None if call.bits is None else _arrays.wrap(call.bits)
    if bits is not None and call.out is not None and bits.overlaps(call.out):
        bits = bits.fresh_copy()  # read before out is written, as grad is; held until the launch is queued
    kernels.dropout_backward(_dtypes.CODES[g.dtype], src.ptr, dx.ptr, 0 if bits is None else bits.ptr, g.size,
                             call.seed, call.offset, rule.threshold, rule.drop_all, rule.scale, g.device,
                             g.stream(), shape, strides)
    return dx.obj


def bias_dropout_add(call):
    """(y, bits) as arrays of the input's library; bits None unless call.keep_bits (one launch that decides,
    writes the values and, with bits, the mask)."""
    kernels = _native.cuda_kernels("x")
    x = call.x
    y = call.out.obj if call.out is not None else x.empty(x.shape)
    bits = x.empty(((x.size + 7) // 8,), _UINT8) if call.keep_bits else None
    rule = call.rule
    # contiguous sources, held until the launch is queued; out overlaps x or residual only exactly (validated)
    xs, rs = x.contiguous_copy(), call.residual.contiguous_copy()
    bs = None if call.bias is None else call.bias.contiguous_copy()
    kernels.bias_dropout_add_forward(_dtypes.CODES[x.dtype], xs.ptr, 0 if bs is None else bs.ptr, rs.ptr, _ptr(y),
                                     _ptr(bits), x.size, call.h, call.seed, call.offset, rule.threshold,
                                     rule.drop_all, rule.scale, x.device, x.stream())
    return y, bits


def bias_dropout_add_backward(call):
    """(dx, dbias, dresidual): dresidual is grad itself. Scratch: the block partials of dbias and, for a
    store="seed" mask, its regenerated bits."""
    kernels = _native.cuda_kernels("grad")
    b = call.grad
    g = b.grad
    gs = g.contiguous_copy()  # held until the launch is queued
    dx = g.empty(g.shape) if b.out is None else b.out.obj  # out never overlaps grad (validated)
    bits = None if b.bits is None else _arrays.wrap(b.bits)
    if bits is not None and b.out is not None and bits.overlaps(b.out):
        bits = bits.fresh_copy()  # read before out is written, as in dropout_backward; held until queued
    dbias = g.empty((call.h,))
    blocks = -(-call.rows // kernels.BIAS_ROW_BLOCK)
    partials = g.empty((max(blocks * call.h, 1),), _FLOAT64 if g.dtype == _FLOAT64 else np.dtype(np.float32))
    scratch = g.empty(((g.size + 7) // 8,), _UINT8) if b.bits is None else None
    rule = b.rule
    kernels.bias_dropout_add_backward(_dtypes.CODES[g.dtype], gs.ptr, _ptr(dx), 0 if bits is None else bits.ptr,
                                      _ptr(scratch),
                                      _ptr(partials), _ptr(dbias), call.rows, call.h, b.seed, b.offset,
                                      rule.threshold, rule.drop_all, rule.scale, g.device, g.stream())
    return dx, dbias, g.obj


def bits_to_bool(bits, n: int, shape):
    """Device mask bits (little bit order) unpacked to a bool array of `shape` with the bits' library."""
    b = _arrays.wrap(bits)
    if b.lib == "torch":
        import torch

        shifts = torch.arange(8, device=bits.device, dtype=torch.uint8)
        return ((bits.unsqueeze(1) >> shifts) & 1).reshape(-1)[:n].bool().reshape(shape)
    import cupy

    with cupy.cuda.Device(b.device):
        return cupy.unpackbits(bits, bitorder="little")[:n].astype(bool).reshape(shape)


def _slots(kernels, arrays) -> int:
    """Scratch slots a list call may use: one per chunk of every array (csrc/cuda/list_plan.h)."""
    chunk = kernels.CHUNK_ELEMS
    return sum(-(-a.size // chunk) for a in arrays)


def _columns(arrays):
    """The per-array lists the bindings take: dtype codes, sizes, pointers."""
    codes = _dtypes.CODES
    return [codes[a.dtype] for a in arrays], [a.size for a in arrays], [a.ptr for a in arrays]


def _per_array(c, n: int) -> list:
    """Checked coefficients (_args.coefficients) as the list of n floats the bindings take."""
    return [c] * n if isinstance(c, float) else _args.per_array(c, n).tolist()


def _result(out, as_python: bool, kind):
    return kind(out.item()) if as_python else out


def penalty_grad(call):
    """penalty_grad (call.grads given) or penalty: the value as a 0-d float64 device array (or a float)."""
    kernels = _native.cuda_kernels("params[0]")
    ws, gs = call.params, call.grads
    ref, n = ws[0], len(ws)
    codes, sizes, ptrs = _columns(ws)
    slots_n = _slots(kernels, ws)
    slots = ref.empty((slots_n,), _FLOAT64)
    out = ref.empty((), _FLOAT64)
    kernels.penalty_grad(codes, sizes, ptrs, [g.ptr for g in gs] if gs else [], _per_array(call.l1, n),
                         _per_array(call.l2, n), _ptr(slots), slots_n, _ptr(out), ref.device,
                         ref.stream())
    return _result(out, call.as_python, float)


def _count_over_list(call, entry: str, *coefficients):
    """A list op that counts (prox_l1's zeros, non_neg's clamped values): per-chunk counts into scratch slots,
    summed on the device into a 0-d int64 array (or a Python int with as_int)."""
    kernels = _native.cuda_kernels("params[0]")
    ws = call.params
    ref = ws[0]
    codes, sizes, ptrs = _columns(ws)
    slots_n = _slots(kernels, ws)
    slots = ref.empty((slots_n,), _INT64)
    out = ref.empty((), _INT64)
    getattr(kernels, entry)(codes, sizes, ptrs, *coefficients, _ptr(slots), slots_n, _ptr(out), ref.device,
                            ref.stream())
    return _result(out, call.as_python, int)


def prox_l1(call):
    return _count_over_list(call, "prox_l1", _per_array(call.coef, len(call.params)))


def decay(call) -> None:
    kernels = _native.cuda_kernels("params[0]")
    ws = call.params
    codes, sizes, ptrs = _columns(ws)
    kernels.decay(codes, sizes, ptrs, _per_array(call.coef, len(ws)), ws[0].device, ws[0].stream())


def _on_slices(c, launch):
    """max_norm's slices (c: the slices record) of one array: launch(kernels, dtype code, work, slots, out) on
    w itself, or with the
    reduced axes apart on a permuted copy written back whole (the host does not wait to learn whether any
    slice changed, and slices left alone are copied back bit for bit). Returns the count (a 0-d device array,
    or a Python int with as_int)."""
    kernels = _native.cuda_kernels("w")
    w = c.w
    slots = w.empty((kernels.MAX_NORM_SLOTS,), _INT64)
    out = w.empty((), _INT64)
    work = w.obj if c.order is None else w.permuted_copy(c.order)
    launch(kernels, _dtypes.CODES[w.dtype], _ptr(work), _ptr(slots), _ptr(out))
    if c.order is not None:
        w.assign_permuted(work, c.order)
    return _result(out, c.as_python, int)


def max_norm(call):
    return _on_slices(call, lambda k, code, work, slots, out: k.max_norm(
        code, work, call.outer, call.reduce, call.inner, call.max_value, slots, k.MAX_NORM_SLOTS, out,
        call.w.device, call.w.stream()))


def norm_constraint(call):
    """norm_constraint and unit_norm: max_norm's slices, Keras MinMaxNorm's bounds."""
    c = call.slices
    return _on_slices(c, lambda k, code, work, slots, out: k.norm_constraint(
        code, work, c.outer, c.reduce, c.inner, call.min_value, c.max_value, call.rate, slots,
        k.MAX_NORM_SLOTS, out, c.w.device, c.w.stream()))


def non_neg(call):
    return _count_over_list(call, "non_neg")


def prox_group_l1(call):
    """Each array on max_norm's slices, its count into its own element of one device array, then summed
    there (the host does not wait)."""
    kernels = _native.cuda_kernels("params[0]")
    ref = call.slices[0].w
    n = len(call.slices)
    slots = ref.empty((kernels.MAX_NORM_SLOTS,), _INT64)
    outs = ref.empty((n,) if n > 1 else (), _INT64)
    base = _ptr(outs)
    for i, (c, t) in enumerate(zip(call.slices, call.thresholds)):
        w = c.w
        work = w.obj if c.order is None else w.permuted_copy(c.order)
        kernels.prox_group_l1(_dtypes.CODES[w.dtype], _ptr(work), c.outer, c.reduce, c.inner, t, _ptr(slots),
                              kernels.MAX_NORM_SLOTS, base + 8 * i, w.device, w.stream())
        if c.order is not None:
            w.assign_permuted(work, c.order)
    return _result(outs if n == 1 else outs.sum(), call.as_python, int)
