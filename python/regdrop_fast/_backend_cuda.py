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


def _global_pass(kernels, a: _arrays.DeviceArray, out, bits, seed: int, offset: int, rule, block):
    """The global-addressing kernel over a (x, or grad with no mask bits; _backend_cpu._global_pass): through
    C-contiguous buffers, the result delivered in a's layout (or into out)."""
    y = a.new_like() if out is None else out
    src = a.contiguous_copy()  # held until the launch is queued
    dst = y if y.contiguous and (y.ptr == src.ptr or not src.overlaps(y)) else _arrays.wrap(a.empty(a.shape))
    kernels.dropout_global(_dtypes.CODES[a.dtype], src.ptr, dst.ptr, _ptr(bits), a.size, seed, block.base(offset),
                           rule.threshold, rule.drop_all, rule.scale, block.outer_shape, block.outer_strides,
                           block.row_len, a.device, a.stream())
    if dst is not y:
        y.assign_permuted(dst.obj, tuple(range(len(a.shape))))
    return y.obj


def dropout(call):
    """(y, bits) as arrays of the input's library; bits None unless call.keep_bits."""
    kernels = _native.cuda_kernels("x")
    x = call.x
    bits = x.empty(((x.size + 7) // 8,), _UINT8) if call.keep_bits else None
    rule = call.rule
    block = call.block
    if block is not None and block.outer_shape:
        return _global_pass(kernels, x, call.out, bits, call.seed, call.offset, rule, block), bits
    offset = call.offset if block is None else block.base(call.offset)  # one run: a plain call
    y, shape, strides = _output(x, call.out)
    src = _source(x, y, call.out)  # held until the launch is queued (a copy's memory must outlive the call)
    kernels.dropout_forward(_dtypes.CODES[x.dtype], src.ptr, y.ptr, _ptr(bits), x.size, call.seed, offset,
                            rule.threshold, rule.drop_all, rule.scale, x.device, x.stream(), shape, strides)
    return y.obj, bits


def dropout_backward(call):
    kernels = _native.cuda_kernels("grad")
    g = call.grad
    rule = call.rule
    block = call.block if call.bits is None else None  # stored bits are in the block's own order: a plain pass
    if block is not None and block.outer_shape:
        return _global_pass(kernels, g, call.out, None, call.seed, call.offset, rule, block)
    offset = call.offset if block is None else block.base(call.offset)
    dx, shape, strides = _output(g, call.out)
    src = _source(g, dx, call.out)  # held until the launch is queued
    bits = None if call.bits is None else _arrays.wrap(call.bits)
    if bits is not None and call.out is not None and bits.overlaps(call.out):
        bits = bits.fresh_copy()  # read before out is written, as grad is; held until the launch is queued
    kernels.dropout_backward(_dtypes.CODES[g.dtype], src.ptr, dx.ptr, 0 if bits is None else bits.ptr, g.size,
                             call.seed, offset, rule.threshold, rule.drop_all, rule.scale, g.device,
                             g.stream(), shape, strides)
    return dx.obj


def dropout_variant(call):
    """(y, bits) of a mask-based variant (forward) or (dx, None) of its backward, as arrays of the input's
    library; bits (the reduced shape's decisions) None unless call.keep_bits. A call that generates its
    decisions without keeping them writes them into scratch first."""
    kernels = _native.cuda_kernels(call.name)
    x = call.x
    y, _, _ = _output(x, call.out)  # dense; C order beyond the axis limit (a dense out= is C-contiguous there)
    bits = x.empty(((call.m + 7) // 8,), _UINT8) if call.keep_bits else None
    scratch = x.empty((max((call.m + 7) // 8, 1),), _UINT8) if call.bits is None and bits is None else None
    src = _source(x, y, call.out)  # held until the launch is queued
    bits_in = None if call.bits is None else _arrays.wrap(call.bits)
    bits_out = bits
    if call.block is not None and bits_in is None:
        # A block of a global tensor: its decisions (the reduced block's) are drawn first by the global mask
        # kernel (into the mask's bits, or scratch), then applied like stored bits.
        bits_in = _arrays.wrap(bits if bits is not None else scratch)
        b, rule = call.block, call.rule
        kernels.dropout_global(0, 0, 0, bits_in.ptr, call.m, call.seed, b.base(call.offset), rule.threshold,
                               rule.drop_all, 0.0, b.outer_shape, b.outer_strides, b.row_len, x.device, x.stream())
        bits_out = scratch = None
    if bits_in is not None and call.out is not None and bits_in.overlaps(call.out):
        bits_in = bits_in.fresh_copy()  # read before out is written; held until the launch is queued
    strides = y.strides
    if y.contiguous:  # C-order strides (a contiguous array's own may be arbitrary on size-1 axes)
        strides, step = [0] * len(y.shape), 1
        for d in range(len(y.shape) - 1, -1, -1):
            strides[d], step = step, step * y.shape[d]
    shape, mstrides, rstrides = _arrays.variant_layout(tuple(y.shape), tuple(strides), call.dims, kernels.MAX_BROADCAST_DIMS)
    rule, alpha = call.rule, call.alpha
    kernels.dropout_broadcast(_dtypes.CODES[x.dtype], src.ptr, y.ptr, 0 if bits_in is None else bits_in.ptr, _ptr(bits_out),
                              _ptr(scratch), shape, mstrides, rstrides, call.m, call.seed, call.offset, rule.threshold,
                              rule.drop_all, call.scale, call.value, alpha.a, alpha.b, alpha.sat, x.device, x.stream())
    return y.obj, bits


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
    offset, outer_shape, outer_strides, row_len = _args.block_kernel_args(call.offset, call.block)
    kernels.bias_dropout_add_forward(_dtypes.CODES[x.dtype], xs.ptr, 0 if bs is None else bs.ptr, rs.ptr, _ptr(y),
                                     _ptr(bits), x.size, call.h, call.seed, offset, rule.threshold,
                                     rule.drop_all, rule.scale, x.device, x.stream(), outer_shape, outer_strides,
                                     row_len)
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
    # stored bits are in the block's own order: the block matters only to regenerate them
    offset, outer_shape, outer_strides, row_len = _args.block_kernel_args(b.offset, b.block if bits is None else None)
    kernels.bias_dropout_add_backward(_dtypes.CODES[g.dtype], gs.ptr, _ptr(dx), 0 if bits is None else bits.ptr,
                                      _ptr(scratch),
                                      _ptr(partials), _ptr(dbias), call.rows, call.h, b.seed, offset,
                                      rule.threshold, rule.drop_all, rule.scale, g.device, g.stream(), outer_shape,
                                      outer_strides, row_len)
    return dx, dbias, g.obj


def gaussian_dropout(call):
    """y (out when given: C-contiguous, x itself or apart from it) = x * (1 + std * z), as an array of the
    input's library. A block of a global tensor takes the global kernel, or the plain one at the block's
    first stream position when its rows are one run (no outer axes)."""
    kernels = _native.cuda_kernels("x")
    x = call.x
    y = call.out.obj if call.out is not None else x.empty(x.shape)
    src = x.contiguous_copy()  # held until the launch is queued
    code, block = _dtypes.CODES[x.dtype], call.block
    if block is not None and block.outer_shape:
        kernels.gaussian_dropout_global(code, src.ptr, _ptr(y), x.size, call.seed, block.base(call.offset), call.std,
                                        block.outer_shape, block.outer_strides, block.row_len, x.device,
                                        x.stream())
        return y
    offset = call.offset if block is None else block.base(call.offset)
    kernels.gaussian_dropout(code, src.ptr, _ptr(y), x.size, call.seed, offset, call.std, x.device, x.stream())
    return y


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
    """The per-array columns the bindings take: dtype codes, sizes, pointers (as a DeviceListPlan's)."""
    codes = _dtypes.CODES
    return (np.array([codes[a.dtype] for a in arrays], np.int32), np.array([a.size for a in arrays], np.int64),
            np.array([a.ptr for a in arrays], np.uint64))


# In-place ops on CUDA arrays of any layout (as on the host): a C-contiguous array, or one dense in another memory
# order (transposed, Fortran, reversed: its elements are the one block from its lowest address, element-wise ops
# need no order), joins the list launch; any other (a slice) is walked by the walk kernels, one launch each.
_WALK_PROX_L1, _WALK_DECAY, _WALK_NON_NEG = 0, 1, 2


def _blocks(arrays):
    """(codes, sizes, pointers) for the list launch, where a walked array has size 0 (it takes no part), and the
    indices of the walked arrays."""
    codes, sizes, ptrs = _columns(arrays)
    walked = []
    for i, a in enumerate(arrays):
        if a.contiguous:
            continue
        order = _arrays.device_memory_order(a)
        if order is None:
            sizes[i] = 0
            walked.append(i)
        else:
            ptrs[i] = a.ptr + order[2] * a.dtype.itemsize
    return codes, sizes, ptrs, walked


def _walk(kernels, op: int, a, coef: float, slots, out_ptr: int) -> None:
    shape, strides = _arrays.walk_layout(a)
    kernels.walk_update(op, _dtypes.CODES[a.dtype], a.ptr, shape, strides, coef, _ptr(slots), kernels.MAX_NORM_SLOTS,
                        out_ptr, a.device, a.stream())


def _per_array(c, n: int) -> list:
    """Checked coefficients (_args.coefficients) as the list of n floats the bindings take."""
    return [c] * n if isinstance(c, float) else _args.per_array(c, n).tolist()


def _result(out, as_python: bool, kind):
    return kind(out.item()) if as_python else out


def penalty_grad(call):
    """penalty_grad (call.grads given) or penalty: the value as a 0-d float64 device array (or a float). Arrays
    with a group_l1 term leave the list launch (their l1 and l2 set to 0 there) and run one by one through the
    group kernels, each value into its own element of one device array, added to the list's value there."""
    kernels = _native.cuda_kernels("params[0]")
    if call.group is None and call.params.contiguous:
        return _planned_penalty_grad(kernels, call)
    ws, gs = list(call.params.ws), None if call.grads is None else list(call.params.gs)
    ref, n = ws[0], len(ws)
    codes, sizes, ptrs = _columns(ws)
    l1, l2 = _per_array(call.l1, n), _per_array(call.l2, n)
    grouped = [] if call.group is None else [i for i, v in enumerate(call.views) if v is not None]
    list_l1, list_l2 = list(l1), list(l2)
    for i in grouped:
        list_l1[i] = list_l2[i] = 0.0
    gptrs, walked, held = [], [], []
    for i, g in enumerate(gs or ()):
        gptrs.append(g.ptr)
        if g.contiguous or i in grouped:
            continue
        order = _arrays.device_memory_order(g)
        if order is None:  # walked: w (C-contiguous) in C order, g through its layout
            walked.append(i)
            list_l1[i] = list_l2[i] = 0.0
        else:  # g's memory order: its block from the lowest address, w copied into that order (it is only read)
            w_in_order = _arrays.wrap(ws[i].reordered_copy(order[0], order[1]))
            held.append(w_in_order)  # held until the launch is queued
            ptrs[i], gptrs[i] = w_in_order.ptr, g.ptr + order[2] * g.dtype.itemsize
    extra = grouped + walked
    slots_n = _slots(kernels, ws)
    slots = ref.empty((slots_n,), _FLOAT64)
    out = ref.empty((1 + len(extra),), _FLOAT64) if extra else ref.empty((), _FLOAT64)
    kernels.penalty_grad(codes, sizes, ptrs, np.array(gptrs, np.uint64), np.array(list_l1, np.float64),
                         np.array(list_l2, np.float64), _ptr(slots), slots_n, _ptr(out), ref.device,
                         ref.stream())
    if not extra:
        return _result(out, call.as_python, float)
    more_slots = ref.empty((kernels.MAX_NORM_SLOTS,), _FLOAT64)
    for k, i in enumerate(walked, start=1 + len(grouped)):
        g = gs[i]
        shape, strides = _arrays.walk_layout(g)
        kernels.walk_penalty(int(codes[i]), ws[i].ptr, g.ptr, shape, strides, l1[i], l2[i], _ptr(more_slots),
                             kernels.MAX_NORM_SLOTS, _ptr(out) + 8 * k, g.device, g.stream())
    for k, i in enumerate(grouped, start=1):
        # The group kernels take C-contiguous arrays (w is: read-only parameters are contiguous copies); a
        # gradient in another layout, or one whose reduced axes are apart, is updated in a permuted copy that is
        # written back whole.
        v, w, g = call.views[i], ws[i], None if gs is None else gs[i]
        order = v.order if v.order is not None else tuple(range(len(w.shape)))
        work_w = w.obj if v.order is None else w.permuted_copy(order)
        copied_g = g is not None and (v.order is not None or not g.contiguous)
        work_g = None if g is None else (g.permuted_copy(order) if copied_g else g.obj)
        kernels.penalty_group(int(codes[i]), _ptr(work_w), _ptr(work_g), v.outer, v.reduce, v.inner, l1[i], l2[i],
                              call.group[i], _ptr(more_slots), kernels.MAX_NORM_SLOTS, _ptr(out) + 8 * k, w.device,
                              w.stream())
        if copied_g:
            g.assign_permuted(work_g, order)
    return _result(out.sum(), call.as_python, float)


def _planned_penalty_grad(kernels, call):
    """penalty_grad over C-contiguous arrays without a group term: the kernel arguments come from the list's
    plan (_lists.DeviceList) as arrays (no per-array Python step)."""
    ref, plan = call.params.ref, call.params.plan
    slots_n = plan.slots(kernels.CHUNK_ELEMS)
    slots, slots_ptr, out, out_ptr, stream = ref.list_scratch(slots_n, _FLOAT64)  # slots held to the launch
    n = plan.count
    kernels.penalty_grad(plan.codes, plan.sizes, plan.ptrs, _NO_POINTERS if call.grads is None else plan.grad_ptrs,
                         _args.per_array(call.l1, n), _args.per_array(call.l2, n), slots_ptr, slots_n, out_ptr,
                         ref.device, stream)
    return _result(out, call.as_python, float)


_NO_POINTERS = np.zeros(0, np.uint64)  # penalty without gradients


def _count_over_list(call, entry: str, walk_op: int, coefficients=None):
    """A list op that counts (prox_l1's zeros, non_neg's clamped values): per-chunk counts into scratch slots,
    summed on the device into a 0-d int64 array (or a Python int with as_int); walked arrays count into their
    own elements of the output, added there."""
    kernels = _native.cuda_kernels("params[0]")
    args = () if coefficients is None else (coefficients,)
    if call.params.contiguous:
        ref, plan = call.params.ref, call.params.plan
        slots_n = plan.slots(kernels.CHUNK_ELEMS)
        slots, slots_ptr, out, out_ptr, stream = ref.list_scratch(slots_n, _INT64)  # slots held to the launch
        getattr(kernels, entry)(plan.codes, plan.sizes, plan.ptrs, *args, slots_ptr, slots_n, out_ptr, ref.device,
                                stream)
        return _result(out, call.as_python, int)
    ws = list(call.params.ws)
    ref = ws[0]
    codes, sizes, ptrs, walked = _blocks(ws)
    slots_n = _slots(kernels, ws)
    slots = ref.empty((slots_n,), _INT64)
    out = ref.empty((1 + len(walked),), _INT64) if walked else ref.empty((), _INT64)
    getattr(kernels, entry)(codes, sizes, ptrs, *args, _ptr(slots), slots_n, _ptr(out), ref.device, ref.stream())
    if not walked:
        return _result(out, call.as_python, int)
    walk_slots = ref.empty((kernels.MAX_NORM_SLOTS,), _INT64)
    for k, i in enumerate(walked, start=1):
        _walk(kernels, walk_op, ws[i], 0.0 if coefficients is None else coefficients[i], walk_slots, _ptr(out) + 8 * k)
    return _result(out.sum(), call.as_python, int)


def prox_l1(call):
    return _count_over_list(call, "prox_l1", _WALK_PROX_L1, _args.per_array(call.coef, call.params.plan.count))


def decay(call) -> None:
    kernels = _native.cuda_kernels("params[0]")
    if call.params.contiguous:
        ref, plan = call.params.ref, call.params.plan
        kernels.decay(plan.codes, plan.sizes, plan.ptrs, _args.per_array(call.coef, plan.count), ref.device,
                      ref.stream())
        return
    ws = list(call.params.ws)
    codes, sizes, ptrs, walked = _blocks(ws)
    factors = _per_array(call.coef, len(ws))
    kernels.decay(codes, sizes, ptrs, factors, ws[0].device, ws[0].stream())
    walked = [i for i in walked if factors[i] != 0.0]
    if walked:
        scratch = ws[0].empty((kernels.MAX_NORM_SLOTS + 1,), _INT64)  # counts of none; the last slot: the sum
        for i in walked:
            _walk(kernels, _WALK_DECAY, ws[i], factors[i], scratch, _ptr(scratch) + 8 * kernels.MAX_NORM_SLOTS)


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
    # w.ptr: w itself, or the C-contiguous view of its memory (_validate._device_slices)
    work = None if c.order is None else w.permuted_copy(c.order)
    launch(kernels, _dtypes.CODES[w.dtype], w.ptr if work is None else _ptr(work), _ptr(slots), _ptr(out))
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
    return _count_over_list(call, "non_neg", _WALK_NON_NEG)


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
        work = None if c.order is None else w.permuted_copy(c.order)
        kernels.prox_group_l1(_dtypes.CODES[w.dtype], w.ptr if work is None else _ptr(work), c.outer, c.reduce,
                              c.inner, t, _ptr(slots),
                              kernels.MAX_NORM_SLOTS, base + 8 * i, w.device, w.stream())
        if c.order is not None:
            w.assign_permuted(work, c.order)
    return _result(outs if n == 1 else outs.sum(), call.as_python, int)
