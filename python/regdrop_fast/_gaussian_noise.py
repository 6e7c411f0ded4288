"""The GaussianNoise record returned by gaussian_dropout and consumed by gaussian_dropout_backward (native and
reference alike): the stream position of the noise, from which the backward regenerates it, and the global
tensor the array is a block of, if any."""

from __future__ import annotations

import math
from typing import Any, Sequence

from . import _args


class GaussianNoise:
    """Where the noise of one ``gaussian_dropout`` call came from: everything its backward needs.

    The noise is a pure function of ``(seed, offset + flat index)`` (docs/rng.md, "Gaussian noise"), so
    nothing but these numbers is kept; ``gaussian_dropout_backward`` regenerates it. Constructing one by
    hand describes the noise of a call with these arguments. Immutable.

    With ``global_shape`` the noise is that of a block of a global tensor (``gaussian_dropout(...,
    global_shape=, local_start=)``): the element of global flat index g took the normal of stream position
    ``offset + g`` (docs/rng.md, "Global addressing"), and the backward regenerates the same.

    Parameters
    ----------
    shape : int or sequence of int
        Shape of the array the noise belongs to.
    p : float
        Drop probability, ``0 <= p < 1``: the noise has mean 1 and variance ``p / (1 - p)``.
    seed : int
        Seed in ``[0, 2**64)``.
    offset : int, default 0
        Position of element 0 in the random stream; with global_shape, of the global tensor's element 0.
    global_shape : sequence of int, optional
        The noise belongs to a block of shape ``shape`` of a global tensor of this shape (same number of
        axes, the block inside it).
    local_start : sequence of int, optional
        The global index of the block's first element (default zeros); only with global_shape.

    Attributes
    ----------
    shape : tuple of int
    p : float
    seed, offset : int
    global_shape, local_start : tuple of int or None
        The global tensor and the block's start; None for the noise of a whole call.
    size : int
        Number of elements (the product of shape).
    std : float
        ``sqrt(p / (1 - p))``, the noise's standard deviation.

    Raises
    ------
    TypeError
        A non-integer shape, seed or offset, a non-real p, a global_shape or local_start that is not a
        tuple or list of ints.
    ValueError
        A negative dimension, p outside [0, 1), a seed or offset outside ``[0, 2**64)``, a global_shape or
        local_start of another number of axes than shape, a block outside global_shape, local_start without
        global_shape.

    Examples
    --------
    >>> n = rf.GaussianNoise((2, 3), 0.2, seed=5)
    >>> n
    GaussianNoise(shape=(2, 3), p=0.2, seed=5, offset=0)
    >>> n.size, n.std
    (6, 0.5)
    """

    __slots__ = ("_shape", "_p", "_seed", "_offset", "_block")

    def __init__(self, shape: int | Sequence[int], p: float, seed: int, offset: int = 0, *,
                 global_shape: Sequence[int] | None = None, local_start: Sequence[int] | None = None) -> None:
        self._shape = _args.shape_tuple(shape)
        self._p = _args.gaussian_probability(p)
        self._seed = _args.uint64(seed, "seed")
        self._offset = _args.uint64(offset, "offset")
        self._block = _args.global_block(global_shape, local_start, self._shape)

    @classmethod
    def _trusted(cls, shape: tuple[int, ...], p: float, seed: int, offset: int, block: Any = None) -> GaussianNoise:
        """Construct from values a kernel wrapper has already validated (skips the checks); block an
        _args.GlobalBlock of shape or None."""
        noise = object.__new__(cls)
        noise._shape, noise._p, noise._seed, noise._offset, noise._block = shape, p, seed, offset, block
        return noise

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def p(self) -> float:
        return self._p

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def offset(self) -> int:
        return self._offset

    @property
    def global_shape(self) -> tuple[int, ...] | None:
        return None if self._block is None else self._block.global_shape

    @property
    def local_start(self) -> tuple[int, ...] | None:
        return None if self._block is None else self._block.local_start

    @property
    def size(self) -> int:
        return math.prod(self._shape)

    @property
    def std(self) -> float:
        return _args.noise_std(self._p)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GaussianNoise):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple:
        return (self._shape, self._p, self._seed, self._offset, self.global_shape, self.local_start)

    def __repr__(self) -> str:
        extra = "" if self._block is None else (f", global_shape={self._block.global_shape}, "
                                                f"local_start={self._block.local_start}")
        return f"GaussianNoise(shape={self._shape}, p={self._p}, seed={self._seed}, offset={self._offset}{extra})"
