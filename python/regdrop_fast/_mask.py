"""The Mask record returned by dropout and consumed by dropout_backward (native and reference alike)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import _args, _route
from ._calls import MaskCall


class Mask:
    """Which elements a dropout call kept, and everything needed to apply or regenerate that decision.

    Attributes
    ----------
    shape : tuple of int      the shape of the array the mask belongs to
    p : float                 drop probability
    scale : float             1 / (1 - p), applied to kept values (0.0 when p rounds to 1)
    seed, offset : int        the Philox stream position of element 0 (docs/rng.md)
    bits : uint8 array or None
        ceil(n / 8) bytes, bit k of byte j = element 8j + k of the C-order flattening, 1 = kept
        (``np.packbits(keep.ravel(), bitorder="little")``); None for ``store="seed"``, in which case the
        mask is regenerated from (seed, offset) when needed.
    """

    __slots__ = ("shape", "p", "seed", "offset", "bits")

    shape: tuple[int, ...]
    p: float
    seed: int
    offset: int
    bits: Any  # a uint8 ndarray, a device array of the same bytes (CUDA calls), or None

    def __init__(self, shape: int | Sequence[int], p: float, seed: int, offset: int = 0,
                 bits: np.ndarray | None = None) -> None:
        self.shape = _args.shape_tuple(shape)
        self.p = _args.probability(p)
        self.seed = _args.uint64(seed, "seed")
        self.offset = _args.uint64(offset, "offset")
        if bits is not None:
            if not isinstance(bits, np.ndarray):
                raise TypeError(f"bits: expected a numpy.ndarray or None, got {type(bits).__name__}")
            if bits.dtype != np.uint8:
                raise TypeError(f"bits: expected dtype uint8, got {bits.dtype}")
            if bits.ndim != 1 or bits.size != (self.size + 7) // 8 or not bits.flags.c_contiguous:
                raise ValueError(
                    f"bits: expected a contiguous 1-d array of {(self.size + 7) // 8} bytes for shape "
                    f"{self.shape}, got shape {bits.shape}"
                )
        self.bits = bits

    @classmethod
    def _trusted(cls, shape: tuple[int, ...], p: float, seed: int, offset: int, bits: Any) -> Mask:
        """Construct from values a kernel wrapper has already validated (skips the checks)."""
        mask = object.__new__(cls)
        mask.shape, mask.p, mask.seed, mask.offset, mask.bits = shape, p, seed, offset, bits
        return mask

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def scale(self) -> float:
        return _args.keep_rule(self.p).scale

    def to_bool(self) -> np.ndarray:
        """The keep mask as a bool array of the mask's shape (regenerated when no bits are stored)."""
        bits = self.bits
        if bits is None:
            rule = _args.keep_rule(self.p)
            bits = _route.CPU.dropout_mask(MaskCall(self.shape, self.size, self.p, self.seed, self.offset, rule))
        return _route.backend_for(bits).bits_to_bool(bits, self.size, self.shape)

    def __repr__(self) -> str:
        stored = "bits" if self.bits is not None else "seed"
        return (
            f"Mask(shape={self.shape}, p={self.p}, seed={self.seed}, offset={self.offset}, "
            f"store={stored!r})"
        )
