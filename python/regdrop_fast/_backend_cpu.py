"""The CPU backend: runs validated call records (_records) on the native CPU kernels (_native.core).

Every op has the same signature as in _backend_cuda. Host lists are read by the native reader, which also
applies the list rules (see _lists); a refused call comes back as a refusal tuple and touches nothing.
"""

from __future__ import annotations

import numpy as np

from . import _args, _dtypes, _lists, _native


def _source(a: np.ndarray, out) -> np.ndarray:
    """a as a C-contiguous array that the kernel may read while writing `out` (copied if they overlap)."""
    src = a if a.flags.c_contiguous else np.ascontiguousarray(a)
    if out is not None and src is not out and np.may_share_memory(src, out):
        src = src.copy()
    return src


def dropout(call):
    """(y, bits): bits None unless call.keep_bits."""
    x = call.x
    y = np.empty(x.shape, x.dtype) if call.out is None else call.out
    bits = np.empty((x.size + 7) // 8, np.uint8) if call.keep_bits else None
    rule = call.rule
    _native.core.dropout_forward(_dtypes.CODES[x.dtype], _source(x, call.out), y, bits, x.size, call.seed,
                                 call.offset, rule.threshold, rule.drop_all, rule.scale)
    return y, bits


def dropout_backward(call):
    g = call.grad
    dx = np.empty(g.shape, g.dtype) if call.out is None else call.out
    rule = call.rule
    bits = call.bits
    if bits is not None and call.out is not None and np.may_share_memory(bits, call.out):
        bits = bits.copy()  # read before out is written, as grad is (_source)
    _native.core.dropout_backward(_dtypes.CODES[g.dtype], _source(g, call.out), dx, bits, g.size,
                                  call.seed, call.offset, rule.threshold, rule.drop_all, rule.scale)
    return dx


def dropout_mask(call) -> np.ndarray:
    bits = np.empty((call.n + 7) // 8, np.uint8)
    _native.core.dropout_mask(bits, call.n, call.seed, call.offset, call.rule.threshold, call.rule.drop_all)
    return bits


def bits_to_bool(bits: np.ndarray, n: int, shape) -> np.ndarray:
    return np.unpackbits(bits, count=n, bitorder="little").view(bool).reshape(shape)


def _checked(result, params, grads=None):
    if type(result) is tuple:
        raise _lists.refusal_error(result, params, grads, host_call=True)
    return result


def penalty_grad(call) -> float:
    """penalty_grad (call.grads given) or penalty: the value as a Python float."""
    n = len(call.params)
    value = _native.core.penalty_grad(call.params, call.grads, _args.per_array(call.l1, n),
                                      _args.per_array(call.l2, n), _dtypes.TYPE_NUMS)
    return _checked(value, call.params, call.grads)


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
