"""The Mask record returned by dropout and consumed by dropout_backward (native and reference alike)."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from . import _args, _arrays, _route
from ._calls import MaskCall


class Mask:
    """Which elements a dropout call kept, and everything needed to apply or regenerate that decision.

    ``dropout`` and ``dropout_mask`` return one; ``dropout_backward`` consumes one. Constructing one by hand
    describes the mask of a dropout call with these arguments: with ``bits=None`` the keep decisions are
    regenerated from ``(seed, offset)`` when needed (as for ``store="seed"``).

    Parameters
    ----------
    shape : int or sequence of int
        Shape of the array the mask belongs to.
    p : float
        Drop probability, ``0 <= p <= 1``.
    seed : int
        Seed in ``[0, 2**64)``.
    offset : int, default 0
        Position of element 0 in the random stream (docs/rng.md); with global_shape, of the global
        tensor's element 0.
    bits : uint8 ndarray, optional
        The packed keep decisions: a C-contiguous 1-d array of ``ceil(reduced_size / 8)`` bytes (a CUDA
        array of those bytes for a CUDA call's mask), or None to keep only the seed.
    broadcast_dims : int or sequence of int, default ()
        The broadcast (shared) axes of the call (``dropout(..., broadcast_dims=)``, ``drop_path``,
        ``alpha_dropout``): one decision per slice along the other axes, stored at the reduced shape.
    scale_by_keep : bool, default True
        Whether kept values are scaled by ``1 / (1 - p)`` (False: ``drop_path(..., scale_by_keep=False)``).
    global_shape : sequence of int, optional
        The mask belongs to a block of a global tensor of this shape (``dropout(..., global_shape=)``):
        element i of the block decides as the element of the same global index in a call on the whole
        tensor (docs/rng.md, "Global addressing"); with broadcast_dims, those of the whole tensor's reduced
        shape at the block's slices.
    local_start : sequence of int, optional
        The global index of the block's first element (default zeros; only with global_shape).

    Attributes
    ----------
    shape : tuple of int
        The shape of the array the mask belongs to.
    p : float
        Drop probability.
    seed, offset : int
        The Philox stream position of element 0 (docs/rng.md).
    bits : uint8 array or None
        ``ceil(reduced_size / 8)`` bytes, bit k of byte j = decision 8j + k of the C-order flattening of
        the reduced shape, 1 = kept (``np.packbits(keep.ravel(), bitorder="little")``); None for
        ``store="seed"``, in which case the mask is regenerated from (seed, offset) when needed.
    broadcast_dims : tuple of int
        The broadcast axes, non-negative and sorted (empty for plain dropout).
    scale_by_keep : bool
        Whether kept values are scaled by ``1 / (1 - p)``.
    global_shape, local_start : tuple of int or None
        The global tensor the mask's array is a block of, and where the block starts; None for a plain
        call. The bits (if stored) are the block's decisions in the block's own C order. Setting
        global_shape to None clears both; local_start may be set only with a global_shape.
    size : int
        Number of elements of the array (the product of shape; read-only).
    reduced_shape : tuple of int
        The shape of the decisions: shape with each broadcast axis set to 1 (read-only; shape itself
        without broadcast axes). Decision i is the one at flat C-order index i of the reduced shape, and
        it uses stream position ``offset + i`` (docs/rng.md, "Broadcast axes").
    reduced_size : int
        Number of decisions (the product of reduced_shape; read-only).
    scale : float
        The factor of kept values: ``1 / (1 - p)`` (1.0 with ``scale_by_keep=False``; 0.0 when p rounds
        to 1; read-only).

    Every field except size, reduced_shape, reduced_size and scale may be assigned; an assignment is
    checked as the constructor checks its argument (TypeError for a wrong type, ValueError for a bad
    value), global_shape and local_start must hold the shape, and bits must fit the reduced shape (a shape
    or broadcast_dims whose decision count the stored bits do not fit is refused: set bits to None first).

    Raises
    ------
    TypeError
        A non-integer shape, seed or offset, a non-real p, or bits that are not a uint8 array or None.
    ValueError
        A negative dimension, p outside [0, 1], a seed or offset outside ``[0, 2**64)``, broadcast_dims
        out of range or repeated, or bits that are not a contiguous 1-d array of ``ceil(reduced_size / 8)``
        bytes.

    Examples
    --------
    >>> m = rf.Mask((2, 4), 0.5, seed=7)
    >>> m
    Mask(shape=(2, 4), p=0.5, seed=7, offset=0, store='seed')
    >>> m.size, m.scale
    (8, 2.0)
    >>> np.array_equal(m.to_bool(), rf.dropout_mask((2, 4), 0.5, seed=7).to_bool())
    True
    >>> m.bits = np.packbits(m.to_bool().ravel(), bitorder="little")  # store the bits
    >>> m.bits.shape
    (1,)
    >>> m.p = 1.5
    Traceback (most recent call last):
        ...
    ValueError: p: dropout probability has to be between 0 and 1, but got 1.5
    """

    __slots__ = ("_shape", "_p", "_seed", "_offset", "_bits", "_dims", "_scale_by_keep", "_block")

    def __init__(self, shape: int | Sequence[int], p: float, seed: int, offset: int = 0,
                 bits: Any = None, *, broadcast_dims: int | Sequence[int] = (), scale_by_keep: bool = True,
                 global_shape: Sequence[int] | None = None, local_start: Sequence[int] | None = None) -> None:
        self._shape = _args.shape_tuple(shape)
        self._p = _args.probability(p)
        self._seed = _args.uint64(seed, "seed")
        self._offset = _args.uint64(offset, "offset")
        self._dims = _args.broadcast_dims(broadcast_dims, len(self._shape))
        self._scale_by_keep = _args.flag(scale_by_keep, "scale_by_keep")
        self._block = _args.global_block(global_shape, local_start, self._shape)
        self._bits = _arrays.mask_bits(bits, self.reduced_size)

    @classmethod
    def _trusted(cls, shape: tuple[int, ...], p: float, seed: int, offset: int, bits: Any,
                 dims: tuple[int, ...] = (), scale_by_keep: bool = True, block: Any = None) -> Mask:
        """Construct from values a kernel wrapper has already validated (skips the checks)."""
        mask = object.__new__(cls)
        mask._shape, mask._p, mask._seed, mask._offset, mask._bits = shape, p, seed, offset, bits
        mask._dims, mask._scale_by_keep, mask._block = dims, scale_by_keep, block
        return mask

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @shape.setter
    def shape(self, shape: int | Sequence[int]) -> None:
        shape = _args.shape_tuple(shape)
        if self._dims and self._dims[-1] >= len(shape):
            raise ValueError(f"shape: {shape} has no axis {self._dims[-1]} of the mask's broadcast_dims "
                             f"{self._dims}; set broadcast_dims first")
        self._check_fit(shape, self._dims, "shape")
        block = self._block
        if block is not None:
            try:
                block = _args.global_block(block.global_shape, block.local_start, shape)
            except ValueError as e:
                raise ValueError(f"shape: {shape} does not fit the mask's global block ({e}); set global_shape "
                                 "first (or to None)") from None
        self._shape, self._block = shape, block

    def _check_fit(self, shape: tuple[int, ...], dims: tuple[int, ...], name: str) -> None:
        """The stored bits (if any) must hold the decisions of (shape, dims)."""
        n = math.prod(_args.reduced_shape(shape, dims))
        if self._bits is not None and len(self._bits) != (n + 7) // 8:
            raise ValueError(
                f"{name}: the reduced shape {_args.reduced_shape(shape, dims)} has {n} decisions, which the "
                f"mask's {len(self._bits)} bytes of bits do not fit; make a new Mask (or set bits to None first)"
            )

    @property
    def broadcast_dims(self) -> tuple[int, ...]:
        return self._dims

    @broadcast_dims.setter
    def broadcast_dims(self, dims: int | Sequence[int]) -> None:
        dims = _args.broadcast_dims(dims, len(self._shape))
        self._check_fit(self._shape, dims, "broadcast_dims")
        self._dims = dims

    @property
    def global_shape(self) -> tuple[int, ...] | None:
        return None if self._block is None else self._block.global_shape

    @global_shape.setter
    def global_shape(self, global_shape: Sequence[int] | None) -> None:
        if global_shape is None:
            self._block = None
            return
        start = None if self._block is None else self._block.local_start
        self._block = _args.global_block(global_shape, start, self._shape)

    @property
    def local_start(self) -> tuple[int, ...] | None:
        return None if self._block is None else self._block.local_start

    @local_start.setter
    def local_start(self, local_start: Sequence[int] | None) -> None:
        if self._block is None:
            _args.global_block(None, local_start, self._shape)  # TypeError, or ValueError: no global_shape
            return
        self._block = _args.global_block(self._block.global_shape, local_start, self._shape)

    @property
    def scale_by_keep(self) -> bool:
        return self._scale_by_keep

    @scale_by_keep.setter
    def scale_by_keep(self, value: bool) -> None:
        self._scale_by_keep = _args.flag(value, "scale_by_keep")

    @property
    def p(self) -> float:
        return self._p

    @p.setter
    def p(self, p: float) -> None:
        self._p = _args.probability(p)

    @property
    def seed(self) -> int:
        return self._seed

    @seed.setter
    def seed(self, seed: int) -> None:
        self._seed = _args.uint64(seed, "seed")

    @property
    def offset(self) -> int:
        return self._offset

    @offset.setter
    def offset(self, offset: int) -> None:
        self._offset = _args.uint64(offset, "offset")

    @property
    def bits(self) -> Any:
        """A uint8 ndarray, a device array of the same bytes (CUDA calls), or None."""
        return self._bits

    @bits.setter
    def bits(self, bits: Any) -> None:
        self._bits = _arrays.mask_bits(bits, self.reduced_size)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def reduced_shape(self) -> tuple[int, ...]:
        return _args.reduced_shape(self._shape, self._dims)

    @property
    def reduced_size(self) -> int:
        return math.prod(self.reduced_shape)

    @property
    def scale(self) -> float:
        rule = _args.keep_rule(self.p)
        return rule.scale if self._scale_by_keep or rule.drop_all else 1.0

    def to_bool(self) -> np.ndarray:
        """The keep decisions as a bool array of the reduced shape (regenerated when no bits are stored).

        Returns
        -------
        ndarray of bool
            Shape ``self.reduced_shape`` (``self.shape`` without broadcast axes; it broadcasts against the
            array), True where kept. With no bits stored the decisions are
            regenerated on the CPU from ``(seed, offset)``; with a CUDA array of bits the result is an
            array of that library on that device.

        Raises
        ------
        TypeError, ValueError
            The stored bits no longer are ``ceil(size / 8)`` contiguous uint8 bytes (they are checked
            again before being read, e.g. after the array was resized in place).

        Examples
        --------
        >>> y, mask = rf.dropout(np.ones((2, 3), np.float32), 0.5, seed=3)
        >>> keep = mask.to_bool()
        >>> keep.shape, keep.dtype
        ((2, 3), dtype('bool'))
        >>> np.array_equal(y != 0, keep)
        True
        >>> np.array_equal(rf.Mask((2, 3), 0.5, seed=3).to_bool(), keep)  # regenerated from the seed
        True
        """
        reduced = self.reduced_shape
        n = math.prod(reduced)
        bits = _arrays.mask_bits(self._bits, n, "mask: bits")  # never unpacked past their end
        if bits is None:
            rule = _args.keep_rule(self._p)
            block = None if self._block is None else _args.reduced_block(self._block, self._dims, self._shape)
            bits = _route.CPU.dropout_mask(MaskCall(reduced, n, self._p, self._seed, self._offset, rule, block))
        return _route.backend_for(bits).bits_to_bool(bits, n, reduced)

    def __repr__(self) -> str:
        stored = "bits" if self.bits is not None else "seed"
        extra = f", broadcast_dims={self._dims}" if self._dims else ""
        if not self._scale_by_keep:
            extra += ", scale_by_keep=False"
        if self._block is not None:
            extra += f", global_shape={self._block.global_shape}, local_start={self._block.local_start}"
        return (
            f"Mask(shape={self.shape}, p={self.p}, seed={self.seed}, offset={self.offset}{extra}, "
            f"store={stored!r})"
        )
