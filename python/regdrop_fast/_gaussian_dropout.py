"""gaussian_dropout and gaussian_dropout_backward: validate once, run on the backend the arrays chose."""

from __future__ import annotations

from typing import Any

from . import _validate
from ._gaussian_noise import GaussianNoise


def gaussian_dropout(x: Any, p: float, *, seed: int | None = None, offset: int = 0,
                     out: Any = None) -> tuple[Any, GaussianNoise]:
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
        of one long call.
    out : array, optional
        Where to write y: x's shape and dtype, C-contiguous; ``out=x`` works in place.

    Returns
    -------
    y : array
        Of x's kind, C-contiguous (``out`` when given).
    noise : GaussianNoise
        The noise's stream position, all that ``gaussian_dropout_backward`` needs (nothing per element is
        kept: the backward regenerates the noise).

    Raises
    ------
    TypeError
        x is not an array of a supported dtype, or an argument has the wrong type.
    ValueError
        p outside [0, 1) (NaN included), a seed or offset outside ``[0, 2**64)``, an ``out`` of another
        shape or dtype, not C-contiguous, or overlapping x other than exactly.

    Examples
    --------
    >>> x = np.ones((20, 500), np.float32)
    >>> y, noise = rf.gaussian_dropout(x, 0.3, seed=42)
    >>> round(float(y.mean()), 2), round(float(y.std()), 2), round(noise.std, 4)  # Keras: std sqrt(p/(1-p))
    (1.0, 0.65, 0.6547)
    >>> np.array_equal(y, rf.reference.gaussian_dropout(x, 0.3, seed=42)[0])
    True
    """
    backend, call = _validate.gaussian_dropout(x, p, seed, offset, out)
    y = backend.gaussian_dropout(call)
    return y, GaussianNoise._trusted(call.shape, call.p, call.seed, call.offset)


def gaussian_dropout_backward(grad: Any, noise: GaussianNoise, *, out: Any = None) -> Any:
    """Backward of gaussian_dropout: ``grad * (1 + std * z)`` with the forward's noise, regenerated from
    ``(noise.seed, noise.offset)``: the same pass as the forward, over the gradient.

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
