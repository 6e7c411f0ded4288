"""Gaussian dropout (multiplicative N(1, p / (1 - p)) noise), forward and backward, written for reading: the
transform from the dropout stream's words to standard normals is docs/rng.md's "Gaussian noise", in the
float32 operations of csrc/common/gaussian_dropout_element.h, one by one in the same order (NumPy's float32
array arithmetic rounds each operation once, to nearest even, as the kernels do)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .. import _args, _validate
from .._calls import GaussianCall
from .._gaussian_noise import GaussianNoise
from .dropout import global_indices
from .philox import MASK32, philox4x32

F32 = np.float32

# The polynomial coefficients, the bits of csrc/common/gaussian_dropout_element.h (hexadecimal literals there
# and here; tests/test_gaussian_dropout.py reads both and compares).
LOG = tuple(F32(float.fromhex(h)) for h in ("0x1.555556p-2", "0x1.99999ap-3", "0x1.24924ap-3", "0x1.c71c72p-4",
                                            "0x1.745d18p-4"))  # 1/3, 1/5, 1/7, 1/9, 1/11
LN2 = F32(float.fromhex("0x1.62e430p-1"))
SIN = tuple(F32(float.fromhex(h)) for h in ("0x1.921fb6p-1", "-0x1.4abbcep-4", "0x1.466bc6p-9", "-0x1.32d2ccp-15",
                                            "0x1.507834p-22"))  # (pi/4)^k / k!, k = 1, 3, ..., 9, signed
COS = tuple(F32(float.fromhex(h)) for h in ("-0x1.3bd3ccp-2", "0x1.03c1f0p-6", "-0x1.55d3c8p-12", "0x1.e1f506p-19",
                                            "-0x1.a6d1f2p-26"))  # k = 2, 4, ..., 10


def words_at(g: np.ndarray, seed: int) -> np.ndarray:
    """The dropout stream's word of each global index in g (uint64; docs/rng.md)."""
    block = g >> np.uint64(2)
    counter = np.zeros((g.size, 4), dtype=np.uint32)
    counter[:, 0] = block & np.uint64(MASK32)
    counter[:, 1] = block >> np.uint64(32)
    key = np.array([seed & MASK32, seed >> 32], dtype=np.uint32)
    return philox4x32(counter, key)[np.arange(g.size), (g & np.uint64(3)).astype(np.intp)]


def radius(a: np.ndarray) -> np.ndarray:
    """sqrt(-2 ln u), u = ((a >> 8) | 1) * 2^-24, with ln by range reduction and the atanh series."""
    u = ((a >> np.uint32(8)) | np.uint32(1)).astype(F32) * F32(2.0**-24)  # exact
    bits = u.view(np.uint32)
    biased = (bits + np.uint32(0x3F800000 - 0x3F3504F3)) >> np.uint32(23)  # e + 127; m in [sqrt(1/2), sqrt(2))
    e = biased.astype(F32) - F32(127)
    m = (bits - ((biased - np.uint32(127)) << np.uint32(23))).view(F32)  # uint32 arithmetic wraps
    f = m - F32(1)
    s = f / (f + F32(2))
    s2 = s * s
    poly = LOG[4]
    for c in LOG[3::-1]:
        poly = c + s2 * poly
    half_ln_m = s + s * (s2 * poly)
    ln_u = e * LN2 + (half_ln_m + half_ln_m)
    return np.sqrt(ln_u * F32(-2))


def angle(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of 2 pi (b >> 8) / 2^24: a quarter turn q from the bits, polynomials on the rest."""
    c = ((b >> np.uint32(8)) + np.uint32(0x200000)) & np.uint32(0xFFFFFF)
    q = c >> np.uint32(22)
    t = ((c & np.uint32(0x3FFFFF)).astype(F32) - F32(2097152)) * F32(2.0**-21)
    t2 = t * t
    sp = SIN[4]
    for k in SIN[3::-1]:
        sp = k + t2 * sp
    sin_phi = t * sp
    cp = COS[4]
    for k in COS[3::-1]:
        cp = k + t2 * cp
    cos_phi = F32(1) + t2 * cp
    odd = (q & np.uint32(1)) != 0
    x0 = np.where(odd, sin_phi, cos_phi)
    y0 = np.where(odd, cos_phi, sin_phi)
    cos_theta = np.where(((q + np.uint32(1)) & np.uint32(2)) != 0, -x0, x0)
    sin_theta = np.where((q & np.uint32(2)) != 0, -y0, y0)
    return cos_theta, sin_theta


def standard_normals(n: int, seed: int, offset: int = 0) -> np.ndarray:
    """The float32 standard normal z of each of the n elements of a call at `offset` (docs/rng.md).

    The element of global index g = (offset + i) mod 2^64 belongs to the pair P = g >> 1, whose words are
    those of indices 2P (a) and 2P + 1 (b) of the dropout stream; z = r cos(theta) for the even element,
    r sin(theta) for the odd one (``radius`` and ``angle``).

    Parameters
    ----------
    n : int
        Number of elements.
    seed : int
        Seed in ``[0, 2**64)``.
    offset : int, default 0
        Position of element 0 in the random stream.

    Returns
    -------
    ndarray of float32
        Shape ``(n,)``.

    Raises
    ------
    TypeError, ValueError
        A seed or offset that is not an int in ``[0, 2**64)``, a negative n.

    Examples
    --------
    >>> z = rf.reference.standard_normals(4, seed=1)
    >>> y, _ = rf.gaussian_dropout(np.ones(4, np.float64), 0.5, seed=1)  # std 1: factors 1 + z
    >>> np.array_equal(y, 1.0 + z.astype(np.float64))
    True
    """
    seed, offset = _args.uint64(seed, "seed"), _args.uint64(offset, "offset")
    (n,) = _args.shape_tuple((n,))  # an int >= 0, checked as a length
    return normals_at(np.uint64(offset) + np.arange(n, dtype=np.uint64), seed)  # wraps mod 2^64


def normals_at(g: np.ndarray, seed: int) -> np.ndarray:
    """The float32 standard normal of each stream position in g (a uint64 array, any order): the pair of
    position g is P = g >> 1, whatever position comes before it in g."""
    even = g & ~np.uint64(1)
    with np.errstate(all="ignore"):
        r = radius(words_at(even, seed))
        cos_theta, sin_theta = angle(words_at(even | np.uint64(1), seed))
        return np.where((g & np.uint64(1)) == 0, r * cos_theta, r * sin_theta)


def _apply(values: np.ndarray, z: np.ndarray, std: float) -> np.ndarray:
    """x * (1 + std * z) in float32 (float64 for float64 input, z widened exactly), rounded once."""
    compute: Any = np.float64 if values.dtype == np.float64 else np.float32
    with np.errstate(all="ignore"):  # overflow to inf and NaN are defined results
        noisy = values.astype(compute) * (compute(1) + compute(std) * z.astype(compute).reshape(values.shape))
        return np.asarray(noisy).astype(values.dtype).reshape(values.shape)  # 0-d arithmetic gives scalars


def _deliver(result: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """result in a new C-contiguous array (as the kernels return y), or written into out."""
    if out is None:
        return np.array(result, order="C")
    out[...] = result
    return out


# Array arguments (x, grad, out) are Any: any array-like, or a CPU tensor (viewed as NumPy).
def _call_normals(call: GaussianCall) -> np.ndarray:
    """The normals of a call's elements (flat C order): of positions offset + i, or, for a block of a global
    tensor, offset + the element's flat C-order index in the global shape (docs/rng.md, "Global addressing")."""
    if call.block is None:
        return standard_normals(call.x.size, call.seed, call.offset)
    b = call.block
    g = np.uint64(call.offset) + global_indices(call.shape, b.global_shape, b.local_start).ravel()  # wraps mod 2^64
    return normals_at(g, call.seed)


def gaussian_dropout(x: Any, p: float, *, seed: int | None = None, offset: int = 0, out: Any = None,
                     global_shape: Sequence[int] | None = None,
                     local_start: Sequence[int] | None = None) -> tuple[np.ndarray, GaussianNoise]:
    """NumPy specification of ``regdrop_fast.gaussian_dropout``, equal to it bit for bit.

    ``y = x * (1 + std * z)`` with ``std = sqrt(p / (1 - p))`` and z the standard normal of each element's
    stream position (``standard_normals``; docs/rng.md), computed in float32 (float64 for float64 input)
    and rounded once to x's dtype. Host arrays only.

    Parameters
    ----------
    x : array_like
        float32, float64, float16 or bfloat16 (``ml_dtypes``) array, any shape.
    p : float
        ``0 <= p < 1``.
    seed : int, optional
        Seed in ``[0, 2**64)``; None draws a fresh one from the OS (recorded in the noise record).
    offset : int, default 0
        Position of element 0 in the random stream.
    out : ndarray, optional
        Where to write y (x's shape and dtype, C-contiguous; ``out=x`` works in place).
    global_shape, local_start : sequence of int, optional
        x is the block at local_start of a global tensor of shape global_shape: each element takes the
        normal of stream position offset + its flat C-order index in global_shape (``global_indices``), so
        the block's values are those of the call on the whole tensor at the block's slice.

    Returns
    -------
    y : ndarray
    noise : GaussianNoise

    Raises
    ------
    TypeError, ValueError
        As ``regdrop_fast.gaussian_dropout``.

    Examples
    --------
    >>> x = np.linspace(-1, 1, 10, dtype=np.float32)
    >>> y, noise = rf.reference.gaussian_dropout(x, 0.3, seed=7)
    >>> np.array_equal(y, rf.gaussian_dropout(x, 0.3, seed=7)[0])
    True
    """
    _, call = _validate.gaussian_dropout(x, p, seed, offset, out, global_shape, local_start, host_only=True)
    y = _deliver(_apply(call.x, _call_normals(call), call.std), call.out)
    return y, GaussianNoise._trusted(call.shape, call.p, call.seed, call.offset, call.block)


def gaussian_dropout_backward(grad: Any, noise: GaussianNoise, *, out: Any = None) -> np.ndarray:
    """NumPy specification of ``regdrop_fast.gaussian_dropout_backward``: ``grad * (1 + std * z)`` with the
    forward's noise, regenerated from ``(noise.seed, noise.offset)`` and, for a block of a global tensor,
    the noise's block.

    Parameters
    ----------
    grad : array_like
        Gradient with respect to y, of the noise's shape.
    noise : GaussianNoise
        From ``gaussian_dropout`` (either implementation).
    out : ndarray, optional
        Where to write the result (grad's shape and dtype, C-contiguous; ``out=grad`` works in place).

    Returns
    -------
    ndarray

    Raises
    ------
    TypeError, ValueError
        As ``regdrop_fast.gaussian_dropout_backward``.

    Examples
    --------
    >>> g = np.arange(6, dtype=np.float32)
    >>> _, noise = rf.gaussian_dropout(np.ones(6, np.float32), 0.5, seed=3)
    >>> np.array_equal(rf.reference.gaussian_dropout_backward(g, noise), rf.gaussian_dropout_backward(g, noise))
    True
    """
    _, call = _validate.gaussian_dropout_backward(grad, noise, out, host_only=True)
    return _deliver(_apply(call.x, _call_normals(call), call.std), call.out)
