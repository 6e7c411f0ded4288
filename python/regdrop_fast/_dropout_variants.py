"""drop_path and alpha_dropout (with alpha_dropout_backward): the mask-based dropout variants beside
dropout's broadcast_dims, on the same kernels (csrc/common/dropout_broadcast_element.h): validate once
(_validate.variant), run on the backend the arrays chose."""

from __future__ import annotations

from typing import Any, Sequence

from . import _validate
from ._mask import Mask


def drop_path(x: Any, p: float, *, scale_by_keep: bool = True, seed: int | None = None, offset: int = 0,
              out: Any = None, store: str = "bits", global_shape: Sequence[int] | None = None,
              local_start: Sequence[int] | None = None) -> tuple[Any, Mask]:
    """Stochastic depth (DropPath): each sample (index along axis 0) is kept or zeroed whole.

    One decision per sample, kept samples scaled by ``1 / (1 - p)`` (torchvision's ``stochastic_depth``
    in "row" mode, timm's ``drop_path``); ``scale_by_keep=False`` leaves kept samples unscaled (timm).
    It is ``dropout(x, p, broadcast_dims=(1, ..., x.ndim - 1))``, bit for bit, with one bit per sample
    in the mask: decision i (sample i) uses stream position ``offset + i`` (docs/rng.md).

    Parameters
    ----------
    x : array_like
        float32, float64, float16 or bfloat16 array of at least one axis (the samples), any strides; a
        CuPy array or a PyTorch CUDA tensor runs on the GPU.
    p : float
        Drop probability of a sample, ``0 <= p <= 1``.
    scale_by_keep : bool, default True
        Scale kept samples by ``1 / (1 - p)``.
    seed : int, optional
        Seed in ``[0, 2**64)``; None draws a fresh one from the OS (recorded in the mask).
    offset : int, default 0
        Position of sample 0's decision in the random stream.
    out : array, optional
        Where to write y (x's shape and dtype, dense; ``out=x`` works in place).
    store : {"bits", "seed"}, default "bits"
        Keep the mask as packed bits (one bit per sample) or only the seed.
    global_shape, local_start : sequence of int, optional
        x is the block at local_start (default zeros) of a global tensor of shape global_shape: the
        decisions are those of one call on the whole tensor at the block's slices (docs/rng.md, "Global
        addressing").

    Returns
    -------
    y : array
        Of x's kind (``out`` when given), in x's layout (as ``dropout``).
    mask : Mask
        ``broadcast_dims = (1, ..., ndim - 1)``, ``scale_by_keep`` as given: what ``dropout_backward``
        needs.

    Raises
    ------
    TypeError
        x is not an array of a supported dtype, or an argument has the wrong type.
    ValueError
        A 0-d x, p outside [0, 1], a negative seed or offset, a bad ``store`` or an ``out`` that does not
        fit.

    Examples
    --------
    >>> x = np.ones((4, 3), np.float32)
    >>> y, mask = rf.drop_path(x, 0.5, seed=7)
    >>> y
    array([[2., 2., 2.],
           [2., 2., 2.],
           [0., 0., 0.],
           [0., 0., 0.]], dtype=float32)
    >>> mask.reduced_shape, np.array_equal(y, rf.dropout(x, 0.5, broadcast_dims=1, seed=7)[0])
    ((4, 1), True)
    >>> np.array_equal(rf.dropout_backward(np.ones_like(x), mask), y)
    True
    """
    backend, call = _validate.variant(x, p, (), seed, offset, out, store, "drop_path", scale_by_keep, global_shape,
                                      local_start)
    y, bits = backend.dropout_variant(call)
    return y, Mask._trusted(call.shape, call.p, call.seed, call.offset, bits, call.dims, bool(scale_by_keep),
                            call.full_block)


def alpha_dropout(x: Any, p: float, *, broadcast_dims: int | Sequence[int] = (), seed: int | None = None,
                  offset: int = 0, out: Any = None, store: str = "bits", global_shape: Sequence[int] | None = None,
                  local_start: Sequence[int] | None = None) -> tuple[Any, Mask]:
    """Alpha dropout (for SELU networks) in one pass: returns ``(y, mask)``.

    A dropped unit takes SELU's negative saturation value ``sat = -scale * alpha`` and then every unit the
    affine correction that keeps a zero-mean, unit-variance input so::

        y = a * (keep ? x : sat) + b
        a = ((1 - p) * (1 + p * sat**2)) ** -0.5,  b = -a * sat * p

    with SELU's ``alpha = 1.6732632423543772`` and ``scale = 1.0507009873554805`` (``sat =
    -1.7580993408473766``): the formula of PyTorch's ``alpha_dropout`` and Keras's ``AlphaDropout``. The
    keep decisions are exactly ``dropout``'s for the same ``(p, seed, offset, broadcast_dims)`` (the same
    mask bits); ``broadcast_dims`` over the spatial axes gives feature alpha dropout (PyTorch's
    ``FeatureAlphaDropout``). Computed in float32 (float64 for float64), ``v * a`` then ``+ b``, each
    rounded, then rounded once to x's dtype. p rounding to 1 gives 0 everywhere (PyTorch: ``x * 0``).

    Parameters
    ----------
    x : array_like
        float32, float64, float16 or bfloat16 array, any shape and strides (CuPy / CUDA tensors on the
        GPU).
    p : float
        Drop probability, ``0 <= p <= 1``.
    broadcast_dims : int or sequence of int, default ()
        Axes sharing one decision, as in ``dropout``.
    seed : int, optional
        Seed in ``[0, 2**64)``; None draws a fresh one from the OS (recorded in the mask).
    offset : int, default 0
        Position of decision 0 in the random stream.
    out : array, optional
        Where to write y (x's shape and dtype, dense; ``out=x`` works in place).
    store : {"bits", "seed"}, default "bits"
        Keep the mask as packed bits or only the seed.
    global_shape, local_start : sequence of int, optional
        x is the block at local_start (default zeros) of a global tensor of shape global_shape: the
        decisions are those of one call on the whole tensor at the block's slices (docs/rng.md, "Global
        addressing").

    Returns
    -------
    y : array
        Of x's kind (``out`` when given), in x's layout.
    mask : Mask
        What ``alpha_dropout_backward`` needs.

    Raises
    ------
    TypeError
        x is not an array of a supported dtype, or an argument has the wrong type.
    ValueError
        p outside [0, 1], a negative seed or offset, a bad ``store``, an ``out`` that does not fit, a
        broadcast axis out of range or repeated.

    Examples
    --------
    >>> x = np.zeros(6, np.float32)
    >>> y, mask = rf.alpha_dropout(x, 0.5, seed=3)
    >>> np.array_equal(mask.bits, rf.dropout(x, 0.5, seed=3)[1].bits)  # dropout's decisions
    True
    >>> sorted(set(np.round(y, 4).tolist()))  # kept: b; dropped: a * sat + b
    [-0.7792, 0.7792]
    """
    backend, call = _validate.variant(x, p, broadcast_dims, seed, offset, out, store, "alpha", True, global_shape,
                                      local_start)
    y, bits = backend.dropout_variant(call)
    return y, Mask._trusted(call.shape, call.p, call.seed, call.offset, bits, call.dims, True, call.full_block)


def alpha_dropout_backward(grad: Any, mask: Mask, *, out: Any = None) -> Any:
    """Backward of ``alpha_dropout``: ``a * grad`` where the mask kept the unit, 0 elsewhere (a as in
    ``alpha_dropout``, from ``mask.p``; computed and rounded as dropout's backward with scale a).

    Parameters
    ----------
    grad : array_like
        Gradient with respect to y; the mask's shape, a supported float dtype.
    mask : Mask
        From ``alpha_dropout`` (bits, or regenerated from the seed when ``store="seed"``).
    out : array, optional
        Where to write the result (grad's shape and dtype, dense; ``out=grad`` works in place).

    Returns
    -------
    array
        The gradient with respect to x, of grad's kind, in grad's layout.

    Raises
    ------
    TypeError
        grad is not an array of a supported dtype, or mask is not a Mask.
    ValueError
        grad's shape differs from the mask's, or ``out`` does not fit.

    Examples
    --------
    >>> x = np.linspace(-1, 1, 8, dtype=np.float32)
    >>> y, mask = rf.alpha_dropout(x, 0.2, seed=5)
    >>> dx = rf.alpha_dropout_backward(np.ones(8, np.float32), mask)
    >>> np.array_equal(dx != 0, mask.to_bool())
    True
    """
    backend, call = _validate.variant_backward(grad, mask, out, alpha=True)
    return backend.dropout_variant(call)[0]
