"""bias_dropout_add, dropout_add, bias_dropout_add_backward: the fused transformer epilogue
``residual + dropout(x + bias)`` in one pass, validated once (_validate), run on the backend the arrays chose."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import _validate
from ._mask import Mask


# Arrays are Any: a NumPy array (or array-like), a CuPy array or a torch tensor; results are of the input's kind.


def bias_dropout_add(x: Any, bias: Any, residual: Any, p: float, *, seed: int | None = None, offset: int = 0,
                     out: Any = None, store: str = "bits", global_shape: Sequence[int] | None = None,
                     local_start: Sequence[int] | None = None) -> tuple[Any, Mask]:
    """``residual + dropout(x + bias)`` in one pass over memory: returns ``(y, mask)``.

    The keep decisions are exactly those of ``dropout(x, p, seed=seed, offset=offset,
    global_shape=global_shape, local_start=local_start)``: the same random stream and the same mask bits.
    ``x + bias``, the dropout (a selection: dropped elements contribute
    exactly 0, even when NaN or inf) and the sum with ``residual`` are computed in float32 (float64 for
    float64 input) and only the final sum is rounded to x's dtype. So on float32 and float64 y equals
    ``residual + dropout(x + bias)[0]`` of NumPy and ``regdrop_fast.dropout`` bit for bit; on float16 and
    bfloat16 it rounds once where that composition rounds three times (after ``x + bias``, after the
    dropout and after the add).

    Parameters
    ----------
    x : array_like
        float32, float64, float16 or bfloat16 (``ml_dtypes``) array, any shape and strides; a CuPy array or a
        PyTorch CUDA tensor runs on the GPU.
    bias : array_like or None
        Shape ``(x.shape[-1],)`` and x's dtype, broadcast along x's last axis; None adds no bias (as
        ``dropout_add``).
    residual : array_like
        x's shape and dtype, on x's device.
    p : float
        Drop probability, ``0 <= p <= 1``.
    seed : int, optional
        Seed in ``[0, 2**64)``; None draws a fresh one from the OS (recorded in the mask).
    offset : int, default 0
        Position of element 0 in the random stream (as for ``dropout``); with global_shape, of the global
        tensor's element 0 (the same on every shard).
    out : array, optional
        Where to write y (x's shape and dtype, C-contiguous). ``out=residual`` (the usual in-place residual
        stream) and ``out=x`` work in place; an ``out`` that overlaps x or residual only partly, or overlaps
        bias at all, is rejected.
    store : {"bits", "seed"}, default "bits"
        Keep the mask as packed bits (1/8 byte per element) or only the seed (the backward regenerates it).
    global_shape : sequence of int, optional
        x, residual and y are the block at local_start of a global tensor of this shape (a shard of a
        tensor split across devices or processes; any axes split, evenly or not): each element takes the
        decision that the call on the whole tensor makes at its flat C-order index in the global tensor, as
        ``dropout(..., global_shape=)`` does (docs/rng.md, "Global addressing"), so the shards' results
        together are the whole call's. Same number of axes as x. bias is the block's own slice of the whole
        call's bias (shape ``(x.shape[-1],)``: with the last axis split, as in a column-parallel linear
        layer, each rank passes its bias shard), not the global one. The mask records the block, so the
        backward regenerates a ``store="seed"`` mask's decisions.
    local_start : sequence of int, optional
        The global index of x's first element (default zeros); the block must lie inside global_shape.
        Only with global_shape.

    Returns
    -------
    y : array
        ``residual + dropout(x + bias)``, of x's kind (``out`` when given).
    mask : Mask
        dropout's mask of this call: what ``bias_dropout_add_backward`` (or ``dropout_backward``) needs.

    Raises
    ------
    TypeError
        An argument is not an array of a supported dtype, or has the wrong type.
    ValueError
        p outside [0, 1], a negative seed or offset, a bad ``store``; bias not of shape ``(x.shape[-1],)``,
        residual of another shape, bias or residual of another (supported) dtype than x; an ``out`` that does
        not fit, is not C-contiguous (Fortran order, channels_last) or overlaps its inputs partly; a
        global_shape of another rank than x, a block outside it, or local_start without global_shape.

    Examples
    --------
    >>> x = np.arange(6, dtype=np.float32).reshape(2, 3)
    >>> bias, residual = np.ones(3, np.float32), np.full((2, 3), 10, np.float32)
    >>> y, mask = rf.bias_dropout_add(x, bias, residual, 0.5, seed=3)
    >>> z, mask2 = rf.dropout(x + bias, 0.5, seed=3)
    >>> np.array_equal(y, residual + z), np.array_equal(mask.bits, mask2.bits)
    (True, True)
    """
    backend, call = _validate.bias_dropout_add(x, bias, residual, p, seed, offset, out, store, global_shape,
                                               local_start)
    y, bits = backend.bias_dropout_add(call)
    return y, Mask._trusted(call.shape, call.p, call.seed, call.offset, bits, block=call.block)


def dropout_add(x: Any, residual: Any, p: float, *, seed: int | None = None, offset: int = 0, out: Any = None,
                store: str = "bits", global_shape: Sequence[int] | None = None,
                local_start: Sequence[int] | None = None) -> tuple[Any, Mask]:
    """``residual + dropout(x)`` in one pass: ``bias_dropout_add`` without a bias.

    Parameters
    ----------
    x : array_like
        float32, float64, float16 or bfloat16 array, any shape (a CuPy array or a PyTorch CUDA tensor runs
        on the GPU).
    residual : array_like
        x's shape and dtype.
    p : float
        Drop probability, ``0 <= p <= 1``.
    seed : int, optional
        Seed in ``[0, 2**64)``; None draws a fresh one.
    offset : int, default 0
        Position of element 0 in the random stream.
    out : array, optional
        Where to write y (C-contiguous); may be x or residual itself (in place), never a partial overlap of
        them.
    store : {"bits", "seed"}, default "bits"
        Keep the mask as packed bits or only the seed.
    global_shape : sequence of int, optional
        x and residual are the block at local_start of a global tensor of this shape, decided as the whole
        tensor's call decides there (as for ``bias_dropout_add``).
    local_start : sequence of int, optional
        The global index of x's first element (default zeros); only with global_shape.

    Returns
    -------
    y : array
        ``residual + dropout(x)``, rounded once to x's dtype.
    mask : Mask
        The same mask as ``dropout(x, p, seed=seed, offset=offset, global_shape=global_shape,
        local_start=local_start)``.

    Raises
    ------
    TypeError
        An argument is not an array of a supported dtype, or has the wrong type.
    ValueError
        A bad p, seed, offset or store; residual of another shape or dtype; a misfit, non-C-contiguous or
        overlapping ``out``; a bad global_shape or local_start.

    Examples
    --------
    >>> x, residual = np.ones(8, np.float32), np.arange(8, dtype=np.float32)
    >>> y, mask = rf.dropout_add(x, residual, 0.5, seed=1)
    >>> np.array_equal(y, residual + rf.dropout(x, 0.5, seed=1)[0])
    True
    """
    return bias_dropout_add(x, None, residual, p, seed=seed, offset=offset, out=out, store=store,
                            global_shape=global_shape, local_start=local_start)


def bias_dropout_add_backward(grad: Any, mask: Mask, *, out: Any = None) -> tuple[Any, Any, Any]:
    """Backward of ``bias_dropout_add``: returns ``(dx, dbias, dresidual)``.

    ``dx`` is exactly ``dropout_backward(grad, mask)``; ``dbias`` is dx summed over every axis but the last,
    computed in the same pass over memory; ``dresidual`` is ``grad`` itself (no copy).

    The sum runs in float32 (float64 for float64 grad) in a fixed order: the rows of dx (grad viewed as
    ``(-1, H)``) are added in order within blocks of ``64`` rows, then the block sums in block order, and the
    total is rounded once to grad's dtype. The order depends only on the shape, so dbias has the same bits on
    every thread count, SIMD level and device; ``regdrop_fast.reference.bias_dropout_add_backward`` spells it
    out.

    Parameters
    ----------
    grad : array_like
        Gradient of the loss with respect to y: the mask's shape (at least one axis), a supported float dtype.
    mask : Mask
        From ``bias_dropout_add`` / ``dropout_add`` (bits, or regenerated from the seed for ``store="seed"``,
        also for a block of a global tensor: the mask records the block). dbias of a block is the sum over
        the block's own rows, the block's share of the whole call's.
    out : array, optional
        Where to write dx (grad's shape and dtype, C-contiguous); it may not overlap grad, which is returned
        as dresidual.

    Returns
    -------
    dx : array
        Gradient with respect to x, of grad's kind (``out`` when given).
    dbias : array
        Shape ``(grad.shape[-1],)``, grad's dtype.
    dresidual : array
        grad (as given; a host array-like as its ndarray view).

    Raises
    ------
    TypeError
        grad is not an array of a supported dtype, or mask is not a Mask.
    ValueError
        grad's shape differs from the mask's, grad is 0-d, or ``out`` does not fit, is not C-contiguous or
        overlaps grad.

    Examples
    --------
    >>> x = np.ones((4, 3), np.float32)
    >>> y, mask = rf.bias_dropout_add(x, np.zeros(3, np.float32), x, 0.5, seed=2)
    >>> dx, dbias, dres = rf.bias_dropout_add_backward(np.ones((4, 3), np.float32), mask)
    >>> np.array_equal(dx, rf.dropout_backward(np.ones((4, 3), np.float32), mask))
    True
    >>> np.array_equal(dbias, dx.sum(axis=0))
    True
    """
    backend, call = _validate.bias_dropout_add_backward(grad, mask, out)
    return backend.bias_dropout_add_backward(call)
