"""Rules for the scalar arguments of every public function (probabilities, seeds, offsets, shapes,
coefficients, axes, flags). Wrong types raise TypeError, wrong values ValueError, each message naming the
argument. Plain Python on numbers, so torch.compile traces the torch wrappers that call it."""

from __future__ import annotations

import functools
import math
import numbers
import os
from typing import NamedTuple

import numpy as np

U64 = 1 << 64
I64_LIMIT = 1 << 63  # a shape's element count (and each dimension) must be below it: the kernels count in int64
STORE_CHOICES = ("bits", "seed")


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def probability(p, label: str = "p: ") -> float:
    """A dropout probability: a real number in [0, 1]. The message formats p as given, like torch's, which
    regdrop_fast.torch reproduces exactly with label=""."""
    if type(p) is float and 0.0 <= p <= 1.0:  # the common case, kept cheap for small calls
        return p
    if not _is_real(p):
        raise TypeError(f"{label}expected a real number, got {type(p).__name__}")
    if not 0.0 <= p <= 1.0:  # False for NaN too (and exact for huge ints: no float() is taken before)
        raise ValueError(f"{label}dropout probability has to be between 0 and 1, but got {p}")
    return _float(p, label.removesuffix(": ") or "p")


def _float(value, name: str) -> float:
    """float(value), a ValueError (naming the argument) for a real number too large for a float (an int
    like 10**400, a Fraction): it is a value out of range, not a wrong type."""
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name}: {type(value).__name__} value too large for a float (above 1.8e308)") from None


def uint64(value, name: str) -> int:
    """An integer in [0, 2^64) (seeds, offsets)."""
    if type(value) is int and 0 <= value < U64:  # the common case, kept cheap for small calls
        return value
    if not _is_int(value):
        raise TypeError(f"{name}: expected an int in [0, 2**64), got {type(value).__name__}")
    value = int(value)
    if not 0 <= value < U64:
        raise ValueError(f"{name}: {value} is outside [0, 2**64)")
    return value


def seed_or_fresh(seed) -> int:
    """seed=None draws 64 bits from the OS; anything else must be an int in [0, 2^64)."""
    if seed is None:
        return int.from_bytes(os.urandom(8), "little")
    return uint64(seed, "seed")


def choice(value, choices: tuple[str, ...], name: str) -> str:
    """One of a few strings: TypeError for anything not a str, ValueError for a str not among them."""
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected one of {choices}, got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{name}: expected one of {choices}, got {value!r}")
    return value


def store_mode(store) -> str:
    """store="bits" | "seed": TypeError for anything not a str, ValueError for another str."""
    if not isinstance(store, str):
        raise TypeError(f"store: expected 'bits' or 'seed', got {type(store).__name__}")
    if store not in STORE_CHOICES:
        raise ValueError(f"store: expected 'bits' or 'seed', got {store!r}")
    return store


def flag(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {type(value).__name__}")
    return bool(value)


def shape_tuple(shape) -> tuple[int, ...]:
    """A shape: an int or a sequence of non-negative ints."""
    if _is_int(shape):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"shape: expected an int or a sequence of ints, got {type(shape).__name__}") from None
    n = 1
    for d in dims:
        if not _is_int(d):
            raise TypeError(f"shape: expected ints, got {type(d).__name__}")
        if d < 0:
            raise ValueError(f"shape: negative dimension {d}")
        if d >= I64_LIMIT:
            raise ValueError(f"shape: dimension {d} is too large; each must be below 2**63")
        n *= int(d)
    if n >= I64_LIMIT:
        raise ValueError(f"shape: {dims} has {n} elements; a shape must have fewer than 2**63")
    return tuple(int(d) for d in dims)


# ---------------------------------------------------------------------------------------------------------
# Global addressing: a block of a global tensor (docs/rng.md, "Global addressing")

GLOBAL_MAX_OUTER_DIMS = 16  # csrc/common/global_block.h: kMaxGlobalOuterDims (a test holds them equal)


class GlobalBlock(NamedTuple):
    """A call's array as the block of a global C-order tensor starting at local_start, and the rows the
    kernels run (csrc/common/global_block.h: GlobalRows): runs of row_len elements consecutive both in the
    block's C order and in the global flat index; row r (in C order over outer_shape) starts at global flat
    index start + sum of its outer indices times outer_strides."""

    global_shape: tuple
    local_start: tuple
    start: int  # global flat index of the block's first element
    row_len: int
    outer_shape: tuple
    outer_strides: tuple

    def base(self, offset: int) -> int:
        """The stream position of the block's first element."""
        return (offset + self.start) % U64


def block_kernel_args(offset: int, block: GlobalBlock | None) -> tuple[int, tuple, tuple, int]:
    """(offset, outer_shape, outer_strides, row_len) of a kernel that takes an optional block (the fused
    epilogue's): a block passes its rows with its first element's stream position as the offset; no outer
    axes (no block, or a block of one run) is a plain call at that offset."""
    if block is None:
        return offset, (), (), 0
    return block.base(offset), block.outer_shape, block.outer_strides, block.row_len


def _index_tuple(value, name: str, what: str) -> tuple[int, ...]:
    """A tuple (or list) of ints: TypeError for anything else."""
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{name}: expected a tuple of ints ({what}), got {type(value).__name__}")
    for d in value:
        if not _is_int(d):
            raise TypeError(f"{name}: expected a tuple of ints ({what}), got an element of type {type(d).__name__}")
    return tuple(int(d) for d in value)


def global_block(global_shape, local_start, shape: tuple) -> GlobalBlock | None:
    """global_shape and local_start of an array of this shape: None when both are None (a plain call), else
    the block, checked: same rank, non-negative, the block inside the global shape."""
    if global_shape is None:
        if local_start is not None:
            _index_tuple(local_start, "local_start", "the block's first index")
            raise ValueError("local_start: given without global_shape")
        return None
    gshape = _index_tuple(global_shape, "global_shape", "the shape of the whole tensor")
    start = (0,) * len(shape) if local_start is None else _index_tuple(local_start, "local_start",
                                                                        "the block's first index")
    if len(gshape) != len(shape):
        raise ValueError(f"global_shape: {gshape} has {len(gshape)} axes but the array has {len(shape)} ({shape})")
    if len(start) != len(shape):
        raise ValueError(f"local_start: {start} has {len(start)} axes but the array has {len(shape)} ({shape})")
    for d, (g, s, n) in enumerate(zip(gshape, start, shape)):
        if g < 0:
            raise ValueError(f"global_shape: negative dimension {g}")
        if s < 0:
            raise ValueError(f"local_start: negative index {s}")
        if s + n > g:
            raise ValueError(f"local_start: the block {shape} at {start} does not fit in global_shape {gshape} "
                             f"(axis {d}: {s} + {n} > {g})")
    if math.prod(gshape) >= I64_LIMIT:
        raise ValueError(f"global_shape: {gshape} has {math.prod(gshape)} elements; it must have fewer than 2**63")
    return _block_rows(gshape, start, shape)


def reduced_block(block: GlobalBlock, dims: tuple, shape: tuple) -> GlobalBlock:
    """The decisions' block of a call with broadcast axes `dims` on a block of this shape: the block of the
    reduced local shape in the reduced global shape (both with the axes of dims set to 1), starting at
    local_start with those axes set to 0 (docs/rng.md, "Global addressing")."""
    rg = tuple(1 if d in dims else g for d, g in enumerate(block.global_shape))
    rs = tuple(0 if d in dims else s for d, s in enumerate(block.local_start))
    return _block_rows(rg, rs, reduced_shape(shape, dims))


def _block_rows(gshape: tuple, start: tuple, shape: tuple) -> GlobalBlock:
    """The rows of a checked block: the last axis merged with each axis before it that the block covers
    whole; then the outer axes, those of extent 1 dropped (their index is fixed: in start) and each merged
    with the one before it when it is covered whole (then the pair's indices step one global stride)."""
    ndim = len(shape)
    gstrides = [1] * ndim
    for d in range(ndim - 2, -1, -1):
        gstrides[d] = gstrides[d + 1] * gshape[d + 1]
    flat = sum(s * t for s, t in zip(start, gstrides))
    if ndim == 0:
        return GlobalBlock(gshape, start, flat, 1, (), ())
    k = ndim - 1
    row_len = shape[k]
    while k > 0 and shape[k] == gshape[k]:
        k -= 1
        row_len *= shape[k]
    outer_shape: list[int] = []
    outer_strides: list[int] = []
    prev = -2
    for d in range(k):
        if shape[d] == 1:
            continue
        if outer_shape and prev == d - 1 and shape[d] == gshape[d]:
            outer_shape[-1] *= shape[d]
            outer_strides[-1] = gstrides[d]
        else:
            outer_shape.append(shape[d])
            outer_strides.append(gstrides[d])
        prev = d
    if len(outer_shape) > GLOBAL_MAX_OUTER_DIMS:
        raise ValueError(f"global_shape: the block {shape} at {start} of {gshape} splits too many axes (its rows "
                         f"have {len(outer_shape)} index axes; at most {GLOBAL_MAX_OUTER_DIMS} are supported)")
    return GlobalBlock(gshape, start, flat, max(row_len, 1), tuple(outer_shape), tuple(outer_strides))


# ---------------------------------------------------------------------------------------------------------
# Dropout: p -> what the kernels take


class KeepRule(NamedTuple):
    """What the kernels take of p (csrc/common/dropout_element.h: DropoutParams)."""

    threshold: int  # keep iff the element's 32-bit word >= threshold
    drop_all: bool  # no word can reach the threshold: every element is dropped
    scale: float  # 1 / (1 - p) applied to kept values; 0.0 when drop_all


def keep_threshold(p: float) -> int:
    """The integer threshold of docs/rng.md: an element is kept iff its 32-bit word >= round(p * 2^32).

    p * 2^32 is exact in float64; ties round to even. The result lies in [0, 2^32]; 2^32 means that no
    word can reach it, so every element is dropped (p == 1, or p within 2^-33 of 1).
    """
    return int(round(p * 4294967296.0))


@functools.lru_cache(maxsize=256)  # a few distinct p per program; saves a small call ~0.5 us
def keep_rule(p: float) -> KeepRule:
    threshold = keep_threshold(p)
    if threshold == 1 << 32:
        return KeepRule(0, True, 0.0)
    return KeepRule(threshold, False, 1.0 / (1.0 - p))


def broadcast_dims(dims, ndim: int) -> tuple[int, ...]:
    """The broadcast (shared) axes of a dropout variant: an int or a sequence of ints, each in [-ndim, ndim),
    no repeats; returned non-negative and sorted (an empty sequence: none)."""
    if _is_int(dims):
        items: tuple = (dims,)
    elif isinstance(dims, (tuple, list)):
        items = tuple(dims)
    else:
        raise TypeError(f"broadcast_dims: expected an int or a tuple of ints, got {type(dims).__name__}")
    out = []
    for a in items:
        if not _is_int(a):
            raise TypeError(f"broadcast_dims: expected ints, got {type(a).__name__}")
        if not -ndim <= a < ndim:
            raise ValueError(f"broadcast_dims: axis {int(a)} is out of range for an array of {ndim} dimension(s)")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"broadcast_dims: repeated axis in {items}")
    return tuple(sorted(out))


def reduced_shape(shape: tuple, dims: tuple) -> tuple[int, ...]:
    """The shape of a variant's decisions: shape with each broadcast axis set to 1 (docs/rng.md)."""
    return tuple(1 if d in dims else n for d, n in enumerate(shape))


# SELU's constants (Klambauer et al. 2017, as PyTorch's and Keras's SELU and AlphaDropout use them) and the
# saturation value -scale * alpha that alpha dropout gives a dropped unit.
SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805
ALPHA_SAT = -SELU_SCALE * SELU_ALPHA


class AlphaRule(NamedTuple):
    """Alpha dropout's affine correction of p: y = (keep ? x : sat) * a + b (0 everywhere when p rounds to 1)."""

    a: float
    b: float
    sat: float


@functools.lru_cache(maxsize=256)
def alpha_rule(p: float) -> AlphaRule:
    """a = ((1 - p) * (1 + p * sat^2))^(-1/2), b = -a * sat * p (Keras's and PyTorch's AlphaDropout), which
    keep a zero-mean unit-variance input so; a = b = 0 when every unit is dropped (PyTorch gives x * 0)."""
    if keep_rule(p).drop_all:
        return AlphaRule(0.0, 0.0, ALPHA_SAT)
    a = ((1.0 - p) * (1.0 + p * ALPHA_SAT * ALPHA_SAT)) ** -0.5
    return AlphaRule(a, -a * ALPHA_SAT * p, ALPHA_SAT)


# ---------------------------------------------------------------------------------------------------------
# Penalties: coefficients, max_norm's bound and axes


def nonnegative(value, name: str, upper: float | None = None) -> float:
    """A finite real number >= 0 (and <= upper when given)."""
    what = "a finite number >= 0" if upper is None else f"a number in [0, {upper:g}]"
    if not _is_real(value):
        raise TypeError(f"{name}: expected {what}, got {type(value).__name__}")
    v = _float(value, name)
    if not (math.isfinite(v) and v >= 0.0 and (upper is None or v <= upper)):
        raise ValueError(f"{name}: expected {what}, got {v!r}")
    return v


def coefficients(value, count: int, name: str, upper: float | None = None):
    """A coefficient for every array: one number for all, or one per array.

    Returns a float (the same for every array), a list of floats (from a sequence; plain Python, so
    torch.compile traces it) or a float64 ndarray (from an ndarray, checked in one vectorized pass). The
    backends expand them with ``per_array``.
    """
    if isinstance(value, numbers.Real):  # bools included: nonnegative names them
        return nonnegative(value, name, upper)
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return nonnegative(value.item(), name, upper)
        if value.dtype.kind not in "iuf":
            raise TypeError(f"{name}: expected real numbers, got {value.dtype} values")
        _one_per_array(value.shape, count, name)
        arr = np.ascontiguousarray(value, dtype=np.float64)
        bad = ~(np.isfinite(arr) & (arr >= 0.0) & (arr <= (np.inf if upper is None else upper)))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            nonnegative(float(arr[i]), f"{name}[{i}]", upper)
        return arr
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name}: expected a number or a sequence of numbers, got {type(value).__name__}")
    if not hasattr(value, "__iter__"):
        raise TypeError(f"{name}: expected real numbers, got object values")
    items = list(value)
    for v in items:
        if isinstance(v, (list, tuple, np.ndarray)):
            raise ValueError(f"{name}: expected a number or a flat sequence, one per array")
        if not _is_real(v):
            raise TypeError(f"{name}: expected real numbers, got {type(v).__name__} values")
    _one_per_array((len(items),), count, name)
    return [nonnegative(v, f"{name}[{i}]", upper) for i, v in enumerate(items)]


def _one_per_array(shape: tuple, count: int, name: str) -> None:
    if len(shape) != 1:
        raise ValueError(f"{name}: expected a number or a flat sequence, one per array, got shape {shape}")
    if shape[0] != count:
        raise ValueError(f"{name}: {shape[0]} coefficients for {count} arrays; expected one per array")


def per_array(c, count: int) -> np.ndarray:
    """Checked coefficients (see coefficients) as the C-contiguous float64 array of length count the
    kernels read."""
    if isinstance(c, float):
        return np.full(count, c)
    return np.asarray(c, dtype=np.float64)


def as_list(c, count: int) -> list[float]:
    """Checked coefficients as a list of count floats (torch custom ops take float[])."""
    if isinstance(c, float):
        return [c] * count
    return [float(v) for v in c]


def max_value(value) -> float:
    if not _is_real(value):
        raise TypeError(f"max_value: expected a finite number > 0, got {type(value).__name__}")
    v = _float(value, "max_value")
    if not (math.isfinite(v) and v > 0.0):
        raise ValueError(f"max_value: expected a finite number > 0, got {v!r}")
    return v


def norm_bounds(min_value, max_value, rate) -> tuple[float, float, float]:
    """norm_constraint's bounds (Keras MinMaxNorm): 0 <= min_value finite, min_value <= max_value (inf
    allowed) and max_value > 0, rate in [0, 1]."""
    lo = nonnegative(min_value, "min_value")
    if not _is_real(max_value):
        raise TypeError(f"max_value: expected a number > 0 and >= min_value, got {type(max_value).__name__}")
    hi = _float(max_value, "max_value")
    if not (hi > 0.0 and hi >= lo):  # NaN fails both
        raise ValueError(f"max_value: expected a number > 0 and >= min_value ({lo!r}), got {hi!r}")
    return lo, hi, nonnegative(rate, "rate", 1.0)


def axes(axis, ndim: int) -> tuple[int, ...]:
    """max_norm's reduced axes: an int or a tuple of ints, each in [-ndim, ndim), no repeats; sorted."""
    items = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in items:
        if not _is_int(a):
            raise TypeError(f"axis: expected an int or a tuple of ints, got {type(a).__name__}")
        if not -ndim <= a < ndim:
            raise ValueError(f"axis: {int(a)} is out of range for an array of {ndim} dimension(s)")
        out.append(int(a) % ndim)
    if not out:
        raise ValueError("axis: expected at least one axis")
    if len(set(out)) != len(out):
        raise ValueError(f"axis: repeated axis in {tuple(items)}")
    return tuple(sorted(out))


def axis_items(axis) -> None:
    """An axis argument that no array uses (group_l1 zero for every array): its type only, as axes checks it."""
    for a in axis if isinstance(axis, (tuple, list)) else (axis,):
        if not _is_int(a):
            raise TypeError(f"axis: expected an int or a tuple of ints, got {type(a).__name__}")


# ---------------------------------------------------------------------------------------------------------
# The raw generator


def uint32_words(a, name: str, width: int) -> np.ndarray:
    """An integer array of shape (..., width) with values in [0, 2^32), as uint32."""
    arr = np.asarray(a)
    if arr.dtype == np.uint32:
        pass
    elif arr.dtype.kind in "iu":
        if arr.size and (arr.min() < 0 or arr.max() > 0xFFFFFFFF):
            raise ValueError(f"{name}: values must lie in [0, 2**32)")
        arr = arr.astype(np.uint32)
    elif arr.dtype == object and all(isinstance(v, numbers.Integral) for v in arr.flat):
        if any(not 0 <= int(v) <= 0xFFFFFFFF for v in arr.flat):
            raise ValueError(f"{name}: values must lie in [0, 2**32)")
        arr = arr.astype(np.uint32)
    else:
        raise TypeError(f"{name}: expected an unsigned 32-bit integer array, got dtype {arr.dtype}")
    if arr.ndim == 0 or arr.shape[-1] != width:
        raise ValueError(f"{name}: expected shape (..., {width}), got {arr.shape}")
    return arr


def philox_args(counter, key, rounds) -> tuple[np.ndarray, np.ndarray, int]:
    """Counter (..., 4) and key (..., 2) broadcast over their leading axes, C-contiguous uint32."""
    counter = uint32_words(counter, "counter", 4)
    key = uint32_words(key, "key", 2)
    if not _is_int(rounds):
        raise TypeError(f"rounds: expected an int, got {type(rounds).__name__}")
    if not 1 <= rounds <= 16:
        raise ValueError(f"rounds: expected 1..16, got {rounds}")
    try:
        lead = np.broadcast_shapes(counter.shape[:-1], key.shape[:-1])
    except ValueError:
        raise ValueError(
            f"counter {counter.shape} and key {key.shape}: leading axes do not broadcast"
        ) from None
    counter = np.ascontiguousarray(np.broadcast_to(counter, lead + (4,)))
    key = np.ascontiguousarray(np.broadcast_to(key, lead + (2,)))
    return counter, key, int(rounds)


# ---------------------------------------------------------------------------------------------------------
# Gaussian dropout


def gaussian_probability(p) -> float:
    """p of a Gaussian dropout call: dropout's rule (a real number in [0, 1]) and below 1, where the noise's
    variance p / (1 - p) would be infinite."""
    p = probability(p)
    if p == 1.0:
        raise ValueError("p: gaussian dropout needs p < 1 (the noise variance p / (1 - p) is infinite at 1), "
                         "got 1.0")
    return p


def noise_std(p: float) -> float:
    """sqrt(p / (1 - p)) in float64: the standard deviation of Gaussian dropout's multiplicative noise (Keras
    GaussianDropout's stddev)."""
    return math.sqrt(p / (1.0 - p))
