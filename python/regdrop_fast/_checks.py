"""Argument checking shared by the native wrappers and the NumPy reference.

Every public function validates all of its arguments here before any array is touched, so a rejected
call modifies nothing. Wrong types raise TypeError, wrong values/shapes/ranges raise ValueError, each
message naming the argument.
"""

from __future__ import annotations

import math
import numbers

import ml_dtypes
import numpy as np

BFLOAT16 = np.dtype(ml_dtypes.bfloat16)

# dtype -> code understood by the native module (csrc/common/dtypes.h: DType).
DTYPE_CODES = {
    np.dtype(np.float32): 0,
    np.dtype(np.float64): 1,
    np.dtype(np.float16): 2,
    BFLOAT16: 3,
}
SUPPORTED = "float32, float64, float16 or bfloat16"

U64 = 1 << 64
STORE_CHOICES = ("bits", "seed")


def float_array(x, name: str) -> np.ndarray:
    """x as an ndarray of a supported floating dtype (no copy when it already is one)."""
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except Exception as exc:  # ragged lists and the like
            raise ValueError(f"{name}: cannot be converted to an array ({exc})") from None
    if arr.dtype not in DTYPE_CODES:
        raise TypeError(f"{name}: dtype {arr.dtype} is not supported; expected {SUPPORTED}")
    return arr


def probability(p) -> float:
    """A dropout probability: a real number in [0, 1]."""
    if type(p) is float and 0.0 <= p <= 1.0:  # the common case, kept cheap for small calls
        return p
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, numbers.Real):
        raise TypeError(f"p: expected a real number in [0, 1], got {type(p).__name__}")
    p = float(p)
    if math.isnan(p) or not 0.0 <= p <= 1.0:
        raise ValueError(f"p: dropout probability has to be between 0 and 1, but got {p}")
    return p


def uint64(value, name: str) -> int:
    """An integer in [0, 2^64) (seeds, offsets)."""
    if type(value) is int and 0 <= value < U64:  # the common case, kept cheap for small calls
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int in [0, 2**64), got {type(value).__name__}")
    value = int(value)
    if not 0 <= value < U64:
        raise ValueError(f"{name}: {value} is outside [0, 2**64)")
    return value


def seed_or_fresh(seed) -> int:
    """seed=None draws 64 bits from the OS; anything else must be an int in [0, 2^64)."""
    if seed is None:
        return int.from_bytes(np.random.SeedSequence().generate_state(2, np.uint32).tobytes(), "little")
    return uint64(seed, "seed")


def store_mode(store) -> str:
    if not isinstance(store, str) or store not in STORE_CHOICES:
        raise ValueError(f"store: expected 'bits' or 'seed', got {store!r}")
    return store


def keep_threshold(p: float) -> int:
    """The integer threshold of docs/rng.md: an element is kept iff its 32-bit word >= round(p * 2^32).

    p * 2^32 is exact in float64; ties round to even. The result lies in [0, 2^32]; 2^32 means that no
    word can reach it, so every element is dropped (p == 1, or p within 2^-33 of 1).
    """
    return int(round(p * 4294967296.0))


def keep_scale(p: float) -> float:
    """1 / (1 - p), the inverted-dropout scale of kept values; 0.0 when every element is dropped."""
    return 0.0 if keep_threshold(p) == 1 << 32 else 1.0 / (1.0 - p)


def out_array(out, like: np.ndarray) -> np.ndarray:
    """An `out=` argument: a writeable C-contiguous ndarray of like's shape and dtype."""
    if not isinstance(out, np.ndarray):
        if hasattr(out, "__cuda_array_interface__") or getattr(out, "is_cuda", False):
            raise ValueError("out: is on a CUDA device but the input is a host array")
        raise TypeError(f"out: expected a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != like.dtype:
        raise ValueError(f"out: dtype {out.dtype} does not match the input's {like.dtype}")
    if out.shape != like.shape:
        raise ValueError(f"out: shape {out.shape} does not match the input's {like.shape}")
    if not out.flags.c_contiguous:
        raise ValueError("out: must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError("out: must be writeable")
    return out


def mask_bits_fit(bits: np.ndarray, n: int) -> None:
    """A host Mask's bits, checked again where a kernel reads them: Mask attributes can be reassigned
    after construction, and bits too short for n elements would be read past their end."""
    if bits.dtype != np.uint8 or bits.ndim != 1 or bits.size != (n + 7) // 8 or not bits.flags.c_contiguous:
        raise ValueError(
            f"mask: bits must be a contiguous 1-d uint8 array of {(n + 7) // 8} bytes for {n} elements, "
            f"got shape {bits.shape} and dtype {bits.dtype}"
        )


def shape_tuple(shape) -> tuple[int, ...]:
    """A shape: an int or a sequence of non-negative ints."""
    if isinstance(shape, numbers.Integral) and not isinstance(shape, (bool, np.bool_)):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"shape: expected an int or a sequence of ints, got {type(shape).__name__}") from None
    for d in dims:
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, numbers.Integral):
            raise TypeError(f"shape: expected ints, got {type(d).__name__}")
        if d < 0:
            raise ValueError(f"shape: negative dimension {d}")
    return tuple(int(d) for d in dims)


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
    if isinstance(rounds, (bool, np.bool_)) or not isinstance(rounds, numbers.Integral):
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
