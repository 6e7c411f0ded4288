"""dropout, dropout_backward, dropout_mask: validate once (_records), run on the backend the arrays chose."""

from __future__ import annotations

from typing import Any, Sequence

from . import _args, _route, _validate
from ._mask import Mask


# Arrays are Any: a NumPy array (or array-like), a CuPy array or a torch tensor; results are of the input's kind.


def dropout(x: Any, p: float, *, broadcast_dims: int | Sequence[int] = (), seed: int | None = None,
            offset: int = 0, out: Any = None, store: str = "bits", global_shape: Sequence[int] | None = None,
            local_start: Sequence[int] | None = None) -> tuple[Any, Mask]:
    """Inverted dropout in one pass: returns ``(y, mask)``.

    Each element is kept with probability ``1 - p`` and scaled by ``1 / (1 - p)``; dropped elements are
    exactly 0. The keep decisions are a pure function of ``(seed, offset + flat index)`` (docs/rng.md), so
    the result is the same on every thread count and SIMD level. The flat index is the logical C-order
    one, so an array stored in another axis order (channels_last, transposed) gets the mask of its
    C-contiguous twin, and y comes back in x's layout (as ``np.empty_like(x)``; docs/rng.md, "Layouts").

    Parameters
    ----------
    x : array_like
        float32, float64, float16 or bfloat16 (``ml_dtypes``) array, any shape and strides; a CuPy array
        or a PyTorch CUDA tensor runs on the GPU.
    p : float
        Drop probability, ``0 <= p <= 1`` (``p = 1`` drops everything).
    broadcast_dims : int or sequence of int, default ()
        Axes along which one decision is shared (Flax's name; Keras's ``noise_shape`` with 1 on these
        axes): one decision per slice along the other axes, so whole slices are kept or zeroed. Channel
        (spatial) dropout of NCHW is ``broadcast_dims=(2, 3)``, time-shared (variational) RNN dropout of
        (T, N, H) is ``broadcast_dims=0``. The mask is stored at the reduced shape (x's shape with these
        axes set to 1: N*C bits for NCHW) and decision i, at flat C-order index i of the reduced shape,
        uses stream position ``offset + i`` (docs/rng.md, "Broadcast axes"). Negative axes count from the
        end. ``()`` is plain dropout.
    seed : int, optional
        Seed in ``[0, 2**64)``; None draws a fresh one from the OS (recorded in the mask).
    offset : int, default 0
        Position of element 0 (decision 0 with broadcast axes) in the random stream: element ``i``
        decides as element ``offset + i`` of one long call. With global_shape, the position of the global
        tensor's element 0 (the same on every shard).
    out : array, optional
        Where to write y (same shape and dtype as x, dense: C-contiguous or its axes in any order;
        ``out=x`` works in place).
    store : {"bits", "seed"}, default "bits"
        Keep the mask as packed bits (1/8 byte per element) or keep only the seed (backward regenerates
        the mask).
    global_shape : sequence of int, optional
        x is a block of a global tensor of this shape (a shard of a tensor split across devices or
        processes: any axes split, evenly or not): each element takes the decision that
        ``dropout(whole, p, seed=seed, offset=offset)`` makes at its flat C-order index in the global
        tensor (docs/rng.md, "Global addressing"), so the blocks of all shards together make exactly the
        mask of one call on the whole tensor. Same number of axes as x. With broadcast_dims the decisions
        are those of the whole tensor's reduced shape at the block's slices.
    local_start : sequence of int, optional
        The global index of x's first element (default zeros); the block must lie inside global_shape.
        Only with global_shape.

    Returns
    -------
    y : array
        The dropped-out array, of x's kind (``out`` when given), in x's layout: x's strides when x is
        dense (C order, channels_last, any permutation of the axes: read and written in place, no copy),
        else dense in x's axis order.
    mask : Mask
        What ``dropout_backward`` needs.

    Raises
    ------
    TypeError
        x is not an array of a supported dtype, or an argument has the wrong type (a non-int axis).
    ValueError
        p outside [0, 1], a negative seed or offset, a bad ``store``, an ``out`` of another shape or dtype,
        or a broadcast axis out of range or repeated.

    Notes
    -----
    A call of more than 2^24 elements checks for Ctrl-C between chunks: on KeyboardInterrupt the outputs
    (y, ``out=``) are partly written.

    Examples
    --------
    >>> x = np.ones(8, np.float32)
    >>> y, mask = rf.dropout(x, 0.5, seed=42)
    >>> sorted(set(y.tolist()))
    [0.0, 2.0]
    >>> np.array_equal(y, rf.reference.dropout(x, 0.5, seed=42)[0])
    True
    >>> xt = np.ones((3, 4), np.float32).T  # Fortran order: its twin is np.ascontiguousarray(xt)
    >>> yt, mt = rf.dropout(xt, 0.5, seed=42)
    >>> yt.strides == xt.strides, np.array_equal(yt, rf.dropout(np.ascontiguousarray(xt), 0.5, seed=42)[0])
    (True, True)
    >>> maps = np.ones((2, 3, 4, 4), np.float32)  # NCHW: whole feature maps kept or zeroed
    >>> y2, m2 = rf.dropout(maps, 0.5, broadcast_dims=(2, 3), seed=42)
    >>> m2.reduced_shape, bool(np.all((y2 == 0).all(axis=(2, 3)) | (y2 != 0).all(axis=(2, 3))))
    ((2, 3, 1, 1), True)
    """
    if type(broadcast_dims) is tuple and not broadcast_dims:  # plain dropout: its own kernels
        backend, call = _validate.dropout(x, p, seed, offset, out, store, global_shape, local_start)
        y, bits = backend.dropout(call)
        return y, Mask._trusted(call.shape, call.p, call.seed, call.offset, bits, (), True, call.block)
    vbackend, vcall = _validate.variant(x, p, broadcast_dims, seed, offset, out, store, "dropout", True, global_shape,
                                        local_start)
    y, bits = vbackend.dropout_variant(vcall)
    return y, Mask._trusted(vcall.shape, vcall.p, vcall.seed, vcall.offset, bits, vcall.dims, True, vcall.full_block)


def dropout_backward(grad: Any, mask: Mask, *, out: Any = None) -> Any:
    """Backward of dropout: ``grad * mask.scale`` where the mask kept the element, 0 elsewhere.

    Parameters
    ----------
    grad : array_like
        Gradient of the loss with respect to y; the mask's shape, a supported float dtype.
    mask : Mask
        From ``dropout`` (bits, or regenerated from the seed when ``store="seed"``).
    out : array, optional
        Where to write the result (grad's shape and dtype, dense in any axis order; ``out=grad`` works in
        place).

    Returns
    -------
    array
        The gradient with respect to x, of grad's kind, in grad's layout (as ``dropout`` returns y). A
        mask with broadcast axes (``dropout(..., broadcast_dims=)``, ``drop_path``) applies each decision
        to its whole slice; one of ``drop_path(..., scale_by_keep=False)`` does not scale.

    Raises
    ------
    TypeError
        grad is not an array of a supported dtype, or mask is not a Mask.
    ValueError
        grad's shape differs from the mask's, or ``out`` does not fit.

    Notes
    -----
    Beyond 2^24 elements, on KeyboardInterrupt (Ctrl-C, checked between chunks) the outputs are partly
    written.

    Examples
    --------
    >>> y, mask = rf.dropout(np.ones(6, np.float32), 0.5, seed=1)
    >>> dx = rf.dropout_backward(np.ones(6, np.float32), mask)
    >>> np.array_equal(dx, y)  # the same decisions and the same scale
    True
    """
    if isinstance(mask, Mask) and (mask._dims or not mask._scale_by_keep):
        vbackend, vcall = _validate.variant_backward(grad, mask, out)
        return vbackend.dropout_variant(vcall)[0]
    backend, call = _validate.dropout_backward(grad, mask, out)
    return backend.dropout_backward(call)


def dropout_mask(shape: int | Sequence[int], p: float, *, seed: int, offset: int = 0,
                 broadcast_dims: int | Sequence[int] = (), global_shape: Sequence[int] | None = None,
                 local_start: Sequence[int] | None = None) -> Mask:
    """The Mask a dropout call with these arguments would return, without touching any data.

    Parameters
    ----------
    shape : int or sequence of int
        Shape of the array the mask is for.
    p : float
        Drop probability, ``0 <= p <= 1``.
    seed : int
        Seed in ``[0, 2**64)``.
    offset : int, default 0
        Position of element 0 in the random stream.
    broadcast_dims : int or sequence of int, default ()
        As in ``dropout``: the decisions are those of the reduced shape.
    global_shape, local_start : sequence of int, optional
        As in ``dropout``: the mask of a block (of this shape, at local_start) of a global tensor.

    Returns
    -------
    Mask
        With packed bits; ``mask.to_bool()`` gives the keep decisions (at the reduced shape).

    Raises
    ------
    TypeError
        A non-integer shape, seed or offset.
    ValueError
        A negative dimension, p outside [0, 1], a negative seed or offset, a broadcast axis out of range
        or repeated.

    Examples
    --------
    >>> m = rf.dropout_mask((2, 3), 0.5, seed=42)
    >>> m.shape, m.to_bool().dtype
    ((2, 3), dtype('bool'))
    >>> np.array_equal(m.to_bool(), rf.dropout(np.ones((2, 3), np.float32), 0.5, seed=42)[1].to_bool())
    True
    """
    if isinstance(broadcast_dims, (tuple, list)) and not broadcast_dims:
        call = _validate.dropout_mask(shape, p, seed, offset, global_shape, local_start)
        return Mask._trusted(call.shape, call.p, call.seed, call.offset, _route.CPU.dropout_mask(call), (), True,
                             call.block)
    reduced, dims, block = _validate.dropout_mask_dims(shape, p, seed, offset, broadcast_dims, global_shape,
                                                       local_start)
    full = _args.shape_tuple(shape)
    return Mask._trusted(full, reduced.p, reduced.seed, reduced.offset, _route.CPU.dropout_mask(reduced), dims, True,
                         block)
