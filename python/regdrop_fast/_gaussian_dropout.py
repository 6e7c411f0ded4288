"""gaussian_dropout and gaussian_dropout_backward: validate once, run on the backend the arrays chose."""

from __future__ import annotations

from typing import Any, Sequence

from . import _validate
from ._gaussian_noise import GaussianNoise


def gaussian_dropout(x: Any, p: float, *, seed: int | None = None, offset: int = 0, out: Any = None,
                     global_shape: Sequence[int] | None = None,
                     local_start: Sequence[int] | None = None) -> tuple[Any, GaussianNoise]:
    """Gaussian dropout (Keras ``GaussianDropout``) in one pass: returns ``(y, noise)``.

    ``y = x * (1 + std * z)`` with ``std = sqrt(p / (1 - p))`` and z a standard normal per element, so the
    multiplicative noise has mean 1 and variance ``p / (1 - p)`` (the variance of inverted dropout's
    ``keep / (1 - p)``). z is a pure function of ``(seed, offset + flat index)``: a pair of words of the
    dropout stream through Box-Muller, written with correctly rounded float32 operations only, so the
    noise is the same on every thread count, SIMD level and device and in ``regdrop_fast.reference``
    (docs/rng.md, "Gaussian noise"). Computed in float32 (float64 for float64 input), rounded once.

    Parameters
    ----------
    x : array_like
        float32, float64, float16 or bfloat16 (``ml_dtypes``) array, any shape and strides; a CuPy array
        or a PyTorch CUDA tensor runs on the GPU.
    p : float
        ``0 <= p < 1`` (p = 0 returns x's values unchanged; p = 1 would mean infinite variance).
    seed : int, optional
        Seed in ``[0, 2**64)``; None draws a fresh one from the OS (recorded in the noise record).
    offset : int, default 0
        Position of element 0 in the random stream: element ``i`` takes the noise of element ``offset + i``
        of one long call. With global_shape, the position of the global tensor's element 0.
    out : array, optional
        Where to write y: x's shape and dtype, C-contiguous; ``out=x`` works in place.
    global_shape : sequence of int, optional
        x is a block of a global tensor of this shape (a shard of a tensor split across devices or
        processes; same number of axes as x): each element takes the normal that
        ``gaussian_dropout(whole, p, seed=seed, offset=offset)`` gives at its flat C-order index in the
        global tensor, so the blocks of all shards together make one call's noise, whatever axes are split
        and however unevenly (docs/rng.md, "Global addressing"). The noise record keeps the block, and the
        backward regenerates the same noise.
    local_start : sequence of int, optional
        The global index of x's first element (default zeros); the block must lie inside global_shape.
        Only with global_shape.

    Returns
    -------
    y : array
        Of x's kind, C-contiguous (``out`` when given).
    noise : GaussianNoise
        The noise's stream position (and the block, with global_shape), all that
        ``gaussian_dropout_backward`` needs (nothing per element is kept: the backward regenerates the noise).

    Raises
    ------
    TypeError
        x is not an array of a supported dtype, or an argument has the wrong type (global_shape or
        local_start not a tuple or list of ints included).
    ValueError
        p outside [0, 1) (NaN included), a seed or offset outside ``[0, 2**64)``, an ``out`` of another
        shape or dtype, not C-contiguous, or overlapping x other than exactly; a global_shape or local_start
        of another number of axes than x, negative, a block outside global_shape, a global shape of 2**63
        elements or more, local_start without global_shape.

    Examples
    --------
    >>> x = np.ones((20, 500), np.float32)
    >>> y, noise = rf.gaussian_dropout(x, 0.3, seed=42)
    >>> round(float(y.mean()), 2), round(float(y.std()), 2), round(noise.std, 4)  # Keras: std sqrt(p/(1-p))
    (1.0, 0.65, 0.6547)
    >>> np.array_equal(y, rf.reference.gaussian_dropout(x, 0.3, seed=42)[0])
    True

    A block of a global tensor takes the whole call's noise at its slice:

    >>> yb, nb = rf.gaussian_dropout(x[5:15, 100:], 0.3, seed=42, global_shape=(20, 500), local_start=(5, 100))
    >>> np.array_equal(yb, y[5:15, 100:]), nb.global_shape, nb.local_start
    (True, (20, 500), (5, 100))
    """
    backend, call = _validate.gaussian_dropout(x, p, seed, offset, out, global_shape, local_start)
    y = backend.gaussian_dropout(call)
    return y, GaussianNoise._trusted(call.shape, call.p, call.seed, call.offset, call.block)


def gaussian_dropout_backward(grad: Any, noise: GaussianNoise, *, out: Any = None) -> Any:
    """Backward of gaussian_dropout: ``grad * (1 + std * z)`` with the forward's noise, regenerated from
    ``(noise.seed, noise.offset)`` (and the block, ``noise.global_shape`` and ``noise.local_start``, of a
    forward with global_shape): the same pass as the forward, over the gradient.

    Parameters
    ----------
    grad : array_like
        Gradient of the loss with respect to y: the noise's shape, a supported float dtype.
    noise : GaussianNoise
        From ``gaussian_dropout`` (or made by hand for a call with those arguments).
    out : array, optional
        Where to write the result: grad's shape and dtype, C-contiguous; ``out=grad`` works in place.

    Returns
    -------
    array
        The gradient with respect to x, of grad's kind, C-contiguous (``out`` when given).

    Raises
    ------
    TypeError
        grad is not an array of a supported dtype, or noise is not a GaussianNoise.
    ValueError
        grad's shape differs from the noise's, or ``out`` does not fit.

    Examples
    --------
    >>> x = np.ones(6, np.float32)
    >>> y, noise = rf.gaussian_dropout(x, 0.5, seed=1)
    >>> np.array_equal(rf.gaussian_dropout_backward(np.ones(6, np.float32), noise), y)  # the same factors
    True
    """
    backend, call = _validate.gaussian_dropout_backward(grad, noise, out)
    return backend.gaussian_dropout(call)
