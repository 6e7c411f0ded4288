"""The CPU backend: runs validated call records (_records) on the native CPU kernels (_native.core).

Every op has the same signature as in _backend_cuda. Host lists are read by the native reader, which also
applies the list rules (see _lists); a refused call comes back as a refusal tuple and touches nothing.
"""

from __future__ import annotations

import numpy as np

from . import _args, _arrays, _dtypes, _lists, _native


def _same_layout(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether a and b (one shape) place every element at the same offset (strides of size-1 axes aside)."""
    return all(d == 1 or s == t for d, s, t in zip(a.shape, a.strides, b.strides))


def _source(a: np.ndarray, y: np.ndarray, out) -> np.ndarray:
    """a in y's layout (y dense: C-contiguous or _arrays.dense_strides), as the kernel reads it while it
    writes y: a itself when it has that layout and is out itself or does not overlap out, else a copy with
    y's strides. (In place, out=a, each element is read before it is written, by one task.)"""
    if a is out or (_same_layout(a, y) and not (out is not None and np.may_share_memory(a, out))):
        return a
    src = np.lib.stride_tricks.as_strided(np.empty(y.size, y.dtype), y.shape, y.strides)
    np.copyto(src, a)
    return src


def _output(a: np.ndarray, out) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """(the output array, the element strides the kernel iterates over: None for C order): out, or a new
    array in a's layout (_arrays.new_like)."""
    y = _arrays.new_like(a) if out is None else out
    return y, _arrays.dense_strides(y)


def _global(code: int, src, dst, bits, n: int, seed: int, offset: int, rule, block) -> None:
    """The kernel of a block of a global tensor (src and dst C-contiguous or both None: the mask alone)."""
    _native.core.dropout_global(code, src, dst, bits, n, seed, block.base(offset), rule.threshold, rule.drop_all,
                                rule.scale, block.outer_shape, block.outer_strides, block.row_len)


def _global_pass(code: int, a: np.ndarray, out, bits, seed: int, offset: int, rule, block) -> np.ndarray:
    """The global-addressing pass over a (x, or grad with no mask bits): through C-contiguous buffers (the
    rows are runs of the block's C order), the result delivered in a's layout (or into out)."""
    y, _ = _output(a, out)
    src = np.ascontiguousarray(a)
    if y.flags.c_contiguous and (y is src or not np.may_share_memory(src, y)):
        dst = y  # in place (out=a, C-contiguous) reads each element before writing it
    else:
        dst = np.empty(a.shape, a.dtype)
    _global(code, src, dst, bits, a.size, seed, offset, rule, block)
    if dst is not y:
        np.copyto(y, dst)
    return y


def dropout(call):
    """(y, bits): y in x's layout (or out); bits None unless call.keep_bits."""
    x = call.x
    bits = np.empty((x.size + 7) // 8, np.uint8) if call.keep_bits else None
    rule = call.rule
    if call.block is not None and call.block.outer_shape:
        y = _global_pass(_dtypes.CODES[x.dtype], x, call.out, bits, call.seed, call.offset, rule, call.block)
        return y, bits
    offset = call.offset if call.block is None else call.block.base(call.offset)  # one run: a plain call
    y, strides = _output(x, call.out)
    _native.core.dropout_forward(_dtypes.CODES[x.dtype], _source(x, y, call.out), y, bits, x.size, call.seed,
                                 offset, rule.threshold, rule.drop_all, rule.scale, strides)
    return y, bits


def dropout_backward(call):
    g = call.grad
    rule = call.rule
    bits = call.bits
    block = call.block if bits is None else None  # stored bits are in the block's own order: a plain pass
    if block is not None and block.outer_shape:
        return _global_pass(_dtypes.CODES[g.dtype], g, call.out, None, call.seed, call.offset, rule, block)
    offset = call.offset if block is None else block.base(call.offset)
    dx, strides = _output(g, call.out)
    if bits is not None and call.out is not None and np.may_share_memory(bits, call.out):
        bits = bits.copy()  # read before out is written, as grad is (_source)
    _native.core.dropout_backward(_dtypes.CODES[g.dtype], _source(g, dx, call.out), dx, bits, g.size,
                                  call.seed, offset, rule.threshold, rule.drop_all, rule.scale, strides)
    return dx


def dropout_mask(call) -> np.ndarray:
    bits = np.empty((call.n + 7) // 8, np.uint8)
    block = call.block
    if block is not None and block.outer_shape:
        _global(0, None, None, bits, call.n, call.seed, call.offset, call.rule, block)
        return bits
    offset = call.offset if block is None else block.base(call.offset)
    _native.core.dropout_mask(bits, call.n, call.seed, offset, call.rule.threshold, call.rule.drop_all)
    return bits


def dropout_variant(call):
    """(y, bits) of a mask-based variant (forward: call.bits None) or (dx, None) of its backward; bits (the
    decisions at the reduced shape) None unless call.keep_bits."""
    x = call.x
    out = call.out
    y, _ = _output(x, out)  # dense; C order beyond the axis limit (new_like; a dense out= is C-contiguous there)
    bits = np.empty((call.m + 7) // 8, np.uint8) if call.keep_bits else None
    bits_in = call.bits
    if call.block is not None and bits_in is None:
        # A block of a global tensor: its decisions (the reduced block's) are drawn first by the global mask
        # kernel, then applied like stored bits; they are the mask's bits when it keeps them.
        bits_in = bits if bits is not None else np.empty((call.m + 7) // 8, np.uint8)
        _global(0, None, None, bits_in, call.m, call.seed, call.offset, call.rule, call.block)
        bits = None if bits is None else bits_in
        bits_out = None
    else:
        bits_out = bits
    if bits_in is not None and out is not None and np.may_share_memory(bits_in, out):
        bits_in = bits_in.copy()  # read before out is written, as the source is (_source)
    src = _source(x, y, out)
    shape, strides, rstrides = _arrays.variant_layout(y.shape, tuple(s // y.itemsize for s in y.strides),
                                                      call.dims, _native.core.MAX_BROADCAST_DIMS)
    rule, alpha = call.rule, call.alpha
    _native.core.dropout_broadcast(_dtypes.CODES[x.dtype], src, y, bits_in, bits_out, shape, strides, rstrides, call.m,
                                   call.seed, call.offset, rule.threshold, rule.drop_all, call.scale, call.value,
                                   alpha.a, alpha.b, alpha.sat)
    return y, bits


def bias_dropout_add(call):
    """(y, bits): bits None unless call.keep_bits. out may be x or residual itself (validated: no other overlap)."""
    x = call.x
    y = np.empty(x.shape, x.dtype) if call.out is None else call.out
    bits = np.empty((x.size + 7) // 8, np.uint8) if call.keep_bits else None
    bias = None if call.bias is None else np.ascontiguousarray(call.bias)
    rule = call.rule
    offset, outer_shape, outer_strides, row_len = _args.block_kernel_args(call.offset, call.block)
    _native.core.bias_dropout_add_forward(_dtypes.CODES[x.dtype], np.ascontiguousarray(x), bias,
                                          np.ascontiguousarray(call.residual), y, bits, x.size, call.h, call.seed,
                                          offset, rule.threshold, rule.drop_all, rule.scale, outer_shape,
                                          outer_strides, row_len)
    return y, bits


def bias_dropout_add_backward(call):
    """(dx, dbias, dresidual): dresidual is grad itself."""
    b = call.grad
    g = b.grad
    dx = np.empty(g.shape, g.dtype) if b.out is None else b.out  # out never overlaps grad (validated)
    dbias = np.empty(call.h, g.dtype)
    rule = b.rule
    bits = b.bits
    if bits is not None and b.out is not None and np.may_share_memory(bits, b.out):
        bits = bits.copy()  # read before out is written, as in dropout_backward
    # stored bits are in the block's own order: the block matters only to regenerate them
    offset, outer_shape, outer_strides, row_len = _args.block_kernel_args(b.offset, b.block if bits is None else None)
    _native.core.bias_dropout_add_backward(_dtypes.CODES[g.dtype], np.ascontiguousarray(g), dx, bits, dbias,
                                           call.rows, call.h, b.seed, offset, rule.threshold, rule.drop_all,
                                           rule.scale, outer_shape, outer_strides, row_len)
    return dx, dbias, g


def gaussian_dropout(call) -> np.ndarray:
    """y (out when given: C-contiguous, x itself or apart from it) = x * (1 + std * z); x is read through a
    C-contiguous copy when it is not C-contiguous (the stream follows the flat C order). A block of a global
    tensor whose rows are one run (no outer axes) is a plain call at the block's first stream position."""
    x = call.x
    y = np.empty(x.shape, x.dtype) if call.out is None else call.out
    code, src, block = _dtypes.CODES[x.dtype], np.ascontiguousarray(x), call.block
    if block is not None and block.outer_shape:
        _native.core.gaussian_dropout_global(code, src, y, x.size, call.seed, block.base(call.offset), call.std,
                                             block.outer_shape, block.outer_strides, block.row_len)
        return y
    offset = call.offset if block is None else block.base(call.offset)
    _native.core.gaussian_dropout(code, src, y, x.size, call.seed, offset, call.std)
    return y


def bits_to_bool(bits: np.ndarray, n: int, shape) -> np.ndarray:
    return np.unpackbits(bits, count=n, bitorder="little").view(bool).reshape(shape)


def _checked(result, params, grads=None):
    if type(result) is tuple:
        raise _lists.refusal_error(result, params, grads, host_call=True)
    return result


def penalty_grad(call) -> float:
    """penalty_grad (call.grads given) or penalty: the value as a Python float."""
    n = len(call.params)
    l1, l2 = _args.per_array(call.l1, n), _args.per_array(call.l2, n)
    if call.group is None:
        value = _native.core.penalty_grad(call.params, call.grads, l1, l2, _dtypes.TYPE_NUMS)
        return _checked(value, call.params, call.grads)
    params, grads, views = _group_arrays(call)
    value = _native.core.penalty_grad(params, grads, l1, l2, _dtypes.TYPE_NUMS, np.asarray(call.group, np.float64),
                                      views)
    return _checked(value, params, grads)


def _group_arrays(call):
    """The lists the kernels read for a call with a group_l1 term (already checked by _lists in Python) and the
    (outer, reduce, inner) of each array: an array whose reduced axes are not adjacent as a C-contiguous copy
    permuted to its GroupView's order, its gradient as the matching permuted view (written where it is)."""
    params, grads = list(call.params), None if call.grads is None else list(call.grads)
    views = np.zeros((len(params), 3), np.int64)
    for i, v in enumerate(call.views):
        if v is None:
            continue
        views[i] = (v.outer, v.reduce, v.inner)
        if v.order is not None:
            params[i] = np.ascontiguousarray(np.transpose(params[i], v.order))
            if grads is not None:
                grads[i] = np.transpose(grads[i], v.order)
    return params, grads, views


def prox_l1(call) -> int:
    zeros = _native.core.prox_l1(call.params, _args.per_array(call.coef, len(call.params)), _dtypes.TYPE_NUMS)
    return _checked(zeros, call.params)


def decay(call) -> None:
    _checked(_native.core.decay(call.params, _args.per_array(call.coef, len(call.params)), _dtypes.TYPE_NUMS),
             call.params)


def max_norm(call) -> int:
    w = call.w
    code = _dtypes.CODES[w.dtype]
    if call.order is None:
        return _native.core.max_norm(code, w, call.outer, call.reduce, call.inner, call.max_value)
    t = np.ascontiguousarray(np.transpose(w, call.order))
    rescaled = _native.core.max_norm(code, t, call.outer, call.reduce, call.inner, call.max_value)
    if rescaled:  # slices left alone are unchanged, so nothing to write back when none was rescaled
        w[...] = np.transpose(t, np.argsort(call.order))
    return rescaled


def norm_constraint(call) -> int:
    """norm_constraint and unit_norm: max_norm's slices (the same copy rules), Keras MinMaxNorm's bounds."""
    c = call.slices
    w = c.w
    code = _dtypes.CODES[w.dtype]
    if c.order is None:
        return _native.core.norm_constraint(code, w, c.outer, c.reduce, c.inner, call.min_value, c.max_value,
                                            call.rate)
    t = np.ascontiguousarray(np.transpose(w, c.order))
    rescaled = _native.core.norm_constraint(code, t, c.outer, c.reduce, c.inner, call.min_value, c.max_value,
                                            call.rate)
    if rescaled:  # slices left alone are unchanged, so nothing to write back when none was rescaled
        w[...] = np.transpose(t, np.argsort(c.order))
    return rescaled


def non_neg(call) -> int:
    unused = np.zeros(len(call.params))
    return _checked(_native.core.non_neg(call.params, unused, _dtypes.TYPE_NUMS), call.params)


def prox_group_l1(call) -> int:
    """Each array on max_norm's slices; through the permuted copy (written back whole: groups that are only
    shrunk are not counted, so the count cannot tell whether anything changed) where max_norm takes it."""
    zeroed = 0
    for c, t in zip(call.slices, call.thresholds):
        w = c.w
        code = _dtypes.CODES[w.dtype]
        if c.order is None:
            zeroed += _native.core.prox_group_l1(code, w, c.outer, c.reduce, c.inner, t)
            continue
        work = np.ascontiguousarray(np.transpose(w, c.order))
        zeroed += _native.core.prox_group_l1(code, work, c.outer, c.reduce, c.inner, t)
        w[...] = np.transpose(work, np.argsort(c.order))
    return zeroed
