"""Argument checking shared by the native wrappers and the NumPy reference.

Every public function validates all of its arguments here before any array is touched, so a rejected
call modifies nothing. Wrong types raise TypeError, wrong values/shapes/ranges raise ValueError, each
message naming the argument.
"""

from __future__ import annotations

import math
import numbers
import os

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
        return int.from_bytes(os.urandom(8), "little")
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


def kernel_params(p: float) -> tuple[int, bool, float]:
    """(threshold, drop_all, scale) as the native kernels take them (csrc/common/dropout_element.h)."""
    threshold = keep_threshold(p)
    if threshold == 1 << 32:
        return 0, True, 0.0
    return threshold, False, 1.0 / (1.0 - p)


def keep_scale(p: float) -> float:
    """1 / (1 - p), the inverted-dropout scale of kept values; 0.0 when every element is dropped."""
    return kernel_params(p)[2]


def mask_args(shape, p, seed, offset) -> tuple[tuple[int, ...], float, int, int, int]:
    """dropout_mask's arguments checked, plus the element count n."""
    shape = shape_tuple(shape)
    n = int(np.prod(shape, dtype=np.int64))
    return shape, probability(p), uint64(seed, "seed"), uint64(offset, "offset"), n


def dropout_args(p, seed, offset, store) -> tuple[float, int, int, str]:
    """The scalar arguments of dropout(), checked (x and out are checked by the caller's backend)."""
    return probability(p), seed_or_fresh(seed), uint64(offset, "offset"), store_mode(store)


def backward_args(grad, mask, out) -> np.ndarray:
    """Checks dropout_backward's host arguments; returns grad as a float ndarray."""
    from ._mask import Mask

    if not isinstance(mask, Mask):
        raise TypeError(f"mask: expected a regdrop_fast.Mask, got {type(mask).__name__}")
    if mask.bits is not None and not isinstance(mask.bits, np.ndarray):
        raise ValueError("mask: its bits live on a CUDA device but grad is a host array")
    grad = float_array(grad, "grad")
    if grad.shape != mask.shape:
        raise ValueError(f"grad: shape {grad.shape} does not match the mask's {mask.shape}")
    if mask.bits is not None:
        mask_bits_fit(mask.bits, grad.size)
    if out is not None:
        out_array(out, grad)
    return grad


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


# ---------------------------------------------------------------------------------------------------------
# Weight penalties (penalty_grad, penalty, prox_l1, decay, max_norm)
#
# The native list operations first try csrc/bindings/array_list.h, which accepts a call only when every array is
# already in the kernels' form; otherwise (and always in the reference) the checks below run, one array at
# a time, before anything is modified.

# NumPy type numbers of the supported dtypes in DType code order (bfloat16's is assigned at run time).
TYPE_NUMS = tuple(dt.num for dt in sorted(DTYPE_CODES, key=DTYPE_CODES.get))


def array_sequence(x, name: str):
    """One array or a sequence of arrays, as a list or tuple (a single ndarray becomes [x])."""
    if isinstance(x, (list, tuple)):
        return x
    if isinstance(x, np.ndarray):
        return [x]
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name}: expected an array or a sequence of arrays, got {type(x).__name__}")
    try:
        return list(x)
    except TypeError:
        pass
    raise TypeError(f"{name}: expected an array or a sequence of arrays, got {type(x).__name__}")


def _real(value, name: str, what: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected {what}, got {type(value).__name__}")
    return float(value)


def nonnegative(value, name: str, upper: float | None = None) -> float:
    """A finite real number >= 0 (and <= upper when given)."""
    what = "a finite number >= 0" if upper is None else f"a number in [0, {upper:g}]"
    v = _real(value, name, what)
    if not (math.isfinite(v) and v >= 0.0 and (upper is None or v <= upper)):
        raise ValueError(f"{name}: expected {what}, got {v!r}")
    return v


def coefficients(value, count: int, name: str, upper: float | None = None) -> np.ndarray:
    """A coefficient for every array: one number for all, or a sequence with one per array.

    Returns a C-contiguous float64 array of length count (the form the kernels take).
    """
    if isinstance(value, numbers.Real) or (isinstance(value, np.ndarray) and value.ndim == 0):
        v = nonnegative(value.item() if isinstance(value, np.ndarray) else value, name, upper)
        return np.full(count, v)
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name}: expected a number or a sequence of numbers, got {type(value).__name__}")
    try:
        arr = np.asarray(value)
    except Exception:
        arr = np.asarray(None)  # ragged and the like: reported as not numbers below
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name}: expected real numbers, got {arr.dtype} values")
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a number or a flat sequence, one per array, got shape {arr.shape}")
    if arr.shape[0] != count:
        raise ValueError(f"{name}: {arr.shape[0]} coefficients for {count} arrays; expected one per array")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    bad = ~(np.isfinite(arr) & (arr >= 0.0) & (arr <= (np.inf if upper is None else upper)))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        nonnegative(float(arr[i]), f"{name}[{i}]", upper)
    return arr


def written_array(a, name: str) -> np.ndarray:
    """An array modified in place: an ndarray of a supported dtype, C-contiguous, aligned, writeable."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray (it is modified in place), got {type(a).__name__}")
    float_array(a, name)
    if not a.flags.c_contiguous:
        raise ValueError(f"{name}: must be C-contiguous (it is modified in place)")
    if not a.flags.aligned:
        raise ValueError(f"{name}: must be aligned (it is modified in place)")
    if not a.flags.writeable:
        raise ValueError(f"{name}: must be writeable (it is modified in place)")
    return a


def _readable(a, name: str) -> np.ndarray:
    """A parameter that is only read: any array-like of a supported dtype, made C-contiguous and aligned."""
    arr = float_array(a, name)
    if not (arr.flags.c_contiguous and arr.flags.aligned):
        arr = np.array(arr, order="C", copy=True)
    return arr


def disjoint_writes(arrays, names, pairs, written) -> None:
    """A written array may share memory with no other array of the call, except its own parameter when the
    two are the very same memory (grads is params). Same rule as csrc/common/list_rules.h: write_conflict."""
    ranges = []
    for k, a in enumerate(arrays):
        if a.nbytes:
            lo = a.__array_interface__["data"][0]
            ranges.append((lo, lo + a.nbytes, k))
    disjoint_ranges(ranges, names, pairs, written)


def disjoint_ranges(ranges, names, pairs, written) -> None:
    """disjoint_writes on memory ranges (lo, hi, k) of non-empty arrays k (the CUDA path's device memory)."""
    ranges = sorted(ranges)
    first = 0
    while first < len(ranges):
        last, hi = first + 1, ranges[first][1]
        while last < len(ranges) and ranges[last][0] < hi:
            hi = max(hi, ranges[last][1])
            last += 1
        cluster = ranges[first:last]
        first = last
        if len(cluster) < 2 or not any(written[k] for _, _, k in cluster):
            continue
        (lo_a, hi_a, a), (lo_b, hi_b, b) = cluster[0], cluster[1]
        if (len(cluster) == 2 and pairs[a] == pairs[b] and written[a] != written[b]
                and (lo_a, hi_a) == (lo_b, hi_b)):
            continue
        w = next(k for _, _, k in cluster if written[k])
        lo_w, hi_w = next((lo, hi) for lo, hi, k in cluster if k == w)
        touching = [k for lo, hi, k in cluster if k != w and lo < hi_w and lo_w < hi]
        other = next((k for k in touching if pairs[k] != pairs[w]), touching[0])
        raise ValueError(
            f"{names[w]} overlaps {names[other]} in memory: an array modified in place may not share memory "
            "with any other array of the call (a gradient may only be its own parameter)"
        )


def penalty_arrays(params, grads=None) -> list:
    """Checks every array of penalty_grad (grads given) or penalty (grads None) before any is touched.

    Returns params as C-contiguous arrays (read-only inputs are converted or copied as needed); grads must
    already be writeable C-contiguous ndarrays pairing up with params in shape and dtype.
    """
    if grads is not None and len(grads) != len(params):
        raise ValueError(f"grads: {len(grads)} arrays for {len(params)} params; they must pair up")
    out = []
    for i, p in enumerate(params):
        w = _readable(p, f"params[{i}]")
        if grads is not None:
            g = written_array(grads[i], f"grads[{i}]")
            if g.dtype != w.dtype:
                raise ValueError(f"grads[{i}]: dtype {g.dtype} does not match params[{i}]'s {w.dtype}")
            if g.shape != w.shape:
                raise ValueError(f"grads[{i}]: shape {g.shape} does not match params[{i}]'s {w.shape}")
        out.append(w)
    if grads is not None:
        n = len(out)
        disjoint_writes(
            out + list(grads),
            [f"params[{i}]" for i in range(n)] + [f"grads[{i}]" for i in range(n)],
            list(range(n)) * 2,
            [False] * n + [True] * n,
        )
    return out


def update_arrays(params) -> list:
    """Checks every array of an in-place list operation (prox_l1, decay) before any is touched."""
    out = [written_array(p, f"params[{i}]") for i, p in enumerate(params)]
    disjoint_writes(out, [f"params[{i}]" for i in range(len(out))], list(range(len(out))), [True] * len(out))
    return out


def max_norm_args(w, max_value, axis):
    """(w, max_value, reduced axes as a sorted tuple) for max_norm."""
    w = written_array(w, "w")
    v, axes = max_norm_scalars(max_value, axis, w.ndim)
    return w, v, axes


def max_norm_scalars(max_value, axis, ndim: int):
    """(max_value, reduced axes as a sorted tuple) of max_norm on an array of ndim dimensions."""
    v = _real(max_value, "max_value", "a finite number > 0")
    if not (math.isfinite(v) and v > 0.0):
        raise ValueError(f"max_value: expected a finite number > 0, got {v!r}")
    items = axis if isinstance(axis, (tuple, list)) else (axis,)
    axes = []
    for a in items:
        if isinstance(a, (bool, np.bool_)) or not isinstance(a, numbers.Integral):
            raise TypeError(f"axis: expected an int or a tuple of ints, got {type(a).__name__}")
        if not -ndim <= a < ndim:
            raise ValueError(f"axis: {int(a)} is out of range for an array of {ndim} dimension(s)")
        axes.append(int(a) % ndim)
    if not axes:
        raise ValueError("axis: expected at least one axis")
    if len(set(axes)) != len(axes):
        raise ValueError(f"axis: repeated axis in {tuple(items)}")
    return v, tuple(sorted(axes))
