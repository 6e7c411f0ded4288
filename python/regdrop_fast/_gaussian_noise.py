"""The GaussianNoise record returned by gaussian_dropout and consumed by gaussian_dropout_backward (native and
reference alike): the stream position of the noise, from which the backward regenerates it."""

from __future__ import annotations

import math
from typing import Sequence

from . import _args


class GaussianNoise:
    """Where the noise of one ``gaussian_dropout`` call came from: everything its backward needs.

    The noise is a pure function of ``(seed, offset + flat index)`` (docs/rng.md, "Gaussian noise"), so
    nothing but these numbers is kept; ``gaussian_dropout_backward`` regenerates it. Constructing one by
    hand describes the noise of a call with these arguments. Immutable.

    Parameters
    ----------
    shape : int or sequence of int
        Shape of the array the noise belongs to.
    p : float
        Drop probability, ``0 <= p < 1``: the noise has mean 1 and variance ``p / (1 - p)``.
    seed : int
        Seed in ``[0, 2**64)``.
    offset : int, default 0
        Position of element 0 in the random stream.

    Attributes
    ----------
    shape : tuple of int
    p : float
    seed, offset : int
    size : int
        Number of elements (the product of shape).
    std : float
        ``sqrt(p / (1 - p))``, the noise's standard deviation.

    Raises
    ------
    TypeError
        A non-integer shape, seed or offset, or a non-real p.
    ValueError
        A negative dimension, p outside [0, 1), a seed or offset outside ``[0, 2**64)``.

    Examples
    --------
    >>> n = rf.GaussianNoise((2, 3), 0.2, seed=5)
    >>> n
    GaussianNoise(shape=(2, 3), p=0.2, seed=5, offset=0)
    >>> n.size, n.std
    (6, 0.5)
    """

    __slots__ = ("_shape", "_p", "_seed", "_offset")

    def __init__(self, shape: int | Sequence[int], p: float, seed: int, offset: int = 0) -> None:
        self._shape = _args.shape_tuple(shape)
        self._p = _args.gaussian_probability(p)
        self._seed = _args.uint64(seed, "seed")
        self._offset = _args.uint64(offset, "offset")

    @classmethod
    def _trusted(cls, shape: tuple[int, ...], p: float, seed: int, offset: int) -> GaussianNoise:
        """Construct from values a kernel wrapper has already validated (skips the checks)."""
        noise = object.__new__(cls)
        noise._shape, noise._p, noise._seed, noise._offset = shape, p, seed, offset
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
    def size(self) -> int:
        return math.prod(self._shape)

    @property
    def std(self) -> float:
        return _args.noise_std(self._p)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GaussianNoise):
            return NotImplemented
        return (self._shape, self._p, self._seed, self._offset) == (other._shape, other._p, other._seed,
                                                                    other._offset)

    def __hash__(self) -> int:
        return hash((self._shape, self._p, self._seed, self._offset))

    def __repr__(self) -> str:
        return f"GaussianNoise(shape={self._shape}, p={self._p}, seed={self._seed}, offset={self._offset})"
