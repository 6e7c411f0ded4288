"""Generator: a position (seed, offset) in the dropout stream that moves on by the elements each call uses.

Every mask is a pure function of (seed, offset + flat index) (docs/rng.md). A Generator hands out
consecutive, non-overlapping ranges of that stream: a call on n elements gets the current (seed, offset)
and the offset advances by n, the way PyTorch's Philox generator advances its offset per kernel launch.
Two generators with the same seed hand out the same sequence of masks.

The state lives in a two-element uint64 NumPy array. ``regdrop_fast.torch`` reads and advances it through
a zero-copy int64 tensor view of that same memory, so NumPy code, eager PyTorch and torch.compile'd graphs
(where the advance is an in-place op on that tensor) all share one state.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import numpy as np

from . import _args

__all__ = ["Generator"]

_U64 = 1 << 64

# Serializes read-and-advance, here and in regdrop_fast.torch (which advances through its tensor view).
LOCK = threading.Lock()

# Called with every Generator whose state array has just been created (construction, unpickling,
# copying); regdrop_fast.torch installs a hook that attaches the tensor view. None without torch.
on_new_state: Callable[[Generator], None] | None = None


class Generator:
    """A dropout-stream position: ``Generator(seed=None, offset=0)``.

    ``next(n)`` returns the ``(seed, offset)`` for a call on n elements and advances the offset by n, so
    consecutive calls draw fresh, non-overlapping masks. Use it with the NumPy API as
    ``rf.dropout(x, p, seed=s, offset=o)`` after ``s, o = gen.next(x.size)``, or pass it as ``generator=``
    to ``regdrop_fast.torch``. Two generators with the same seed hand out the same sequence of masks.

    Each advance is atomic, so threads sharing a generator never get overlapping ranges (which thread gets
    which range then depends on timing). A copy (``copy.copy``, ``copy.deepcopy``, pickle) gets its own
    state with the same values.

    Parameters
    ----------
    seed : int, optional
        Seed in ``[0, 2**64)``; None draws 64 bits from the operating system.
    offset : int, default 0
        The stream index the first call's element 0 gets.

    Attributes
    ----------
    seed : int
        The seed (read-only; ``manual_seed`` or ``set_state`` change it).
    offset : int
        The stream index the next call's element 0 gets (read-only; ``set_offset`` changes it).

    Raises
    ------
    TypeError
        A seed or offset that is not an int.
    ValueError
        A seed or offset outside ``[0, 2**64)``.

    Examples
    --------
    >>> gen = rf.Generator(seed=42)
    >>> gen.next(8), gen.next(8)
    ((42, 0), (42, 8))
    >>> x = np.ones(8, np.float32)
    >>> s, o = rf.Generator(seed=42).next(x.size)
    >>> y, mask = rf.dropout(x, 0.5, seed=s, offset=o)
    >>> np.array_equal(y, rf.dropout(x, 0.5, seed=42)[0])
    True
    >>> gen
    regdrop_fast.Generator(seed=42, offset=16)
    """

    def __init__(self, seed: int | None = None, offset: int = 0) -> None:
        seed = _args.seed_or_fresh(seed)
        offset = _args.uint64(offset, "offset")
        self._new_state(seed, offset)

    def _new_state(self, seed: int, offset: int) -> None:
        self._state = np.array([seed, offset], dtype=np.uint64)
        self._torch_state: Any = None  # a torch int64 view of _state, once regdrop_fast.torch is imported
        if on_new_state is not None:
            on_new_state(self)

    # --- state --------------------------------------------------------------------------------------------

    @property
    def seed(self) -> int:
        """The seed, in ``[0, 2**64)`` (``initial_seed()``)."""
        return int(self._state[0])

    @property
    def offset(self) -> int:
        """The stream index the next call's element 0 gets (``get_offset()``)."""
        return int(self._state[1])

    def initial_seed(self) -> int:
        """The seed (named as torch.Generator names it).

        Returns
        -------
        int
            The seed, in ``[0, 2**64)``.

        Examples
        --------
        >>> rf.Generator(seed=5).initial_seed()
        5
        """
        return self.seed

    def manual_seed(self, seed: int) -> Generator:
        """Restart at ``(seed, 0)``, as torch.Generator.manual_seed does; returns self.

        Parameters
        ----------
        seed : int
            Seed in ``[0, 2**64)``.

        Returns
        -------
        Generator
            self.

        Raises
        ------
        TypeError
            seed is not an int.
        ValueError
            seed is outside ``[0, 2**64)``.

        Examples
        --------
        >>> gen = rf.Generator(seed=1, offset=100)
        >>> gen.manual_seed(7).get_state()
        (7, 0)
        """
        seed = _args.uint64(seed, "seed")
        with LOCK:
            self._state[0] = seed
            self._state[1] = 0
        return self

    def get_offset(self) -> int:
        """The stream index the next call's element 0 gets (torch.Generator's name).

        Returns
        -------
        int
            The offset, in ``[0, 2**64)``.

        Examples
        --------
        >>> gen = rf.Generator(seed=1)
        >>> _ = gen.next(10)
        >>> gen.get_offset()
        10
        """
        return self.offset

    def set_offset(self, offset: int) -> None:
        """Move to stream index offset, keeping the seed.

        Parameters
        ----------
        offset : int
            The stream index the next call's element 0 gets, in ``[0, 2**64)``.

        Raises
        ------
        TypeError
            offset is not an int.
        ValueError
            offset is outside ``[0, 2**64)``.

        Examples
        --------
        >>> gen = rf.Generator(seed=1)
        >>> gen.set_offset(64)
        >>> gen.next(4)
        (1, 64)
        """
        offset = _args.uint64(offset, "offset")
        with LOCK:
            self._state[1] = offset

    def get_state(self) -> tuple[int, int]:
        """``(seed, offset)``; ``set_state`` of it restores this exact position.

        Returns
        -------
        tuple of (int, int)
            The seed and the offset, read together.

        Examples
        --------
        >>> gen = rf.Generator(seed=3)
        >>> state = gen.get_state()
        >>> first = gen.next(8)
        >>> gen.set_state(state)
        >>> gen.next(8) == first
        True
        """
        with LOCK:
            return int(self._state[0]), int(self._state[1])

    def set_state(self, state: tuple[int, int]) -> None:
        """Move to the position ``state = (seed, offset)`` (as ``get_state`` returns it).

        Parameters
        ----------
        state : tuple of (int, int)
            Seed and offset, each in ``[0, 2**64)``.

        Raises
        ------
        TypeError
            state is not a pair, or the seed or offset is not an int.
        ValueError
            The seed or offset is outside ``[0, 2**64)``.

        Examples
        --------
        >>> gen = rf.Generator(seed=0)
        >>> gen.set_state((9, 32))
        >>> gen
        regdrop_fast.Generator(seed=9, offset=32)
        >>> gen.set_state(9)
        Traceback (most recent call last):
            ...
        TypeError: state: expected a (seed, offset) pair, got 9
        """
        try:
            seed, offset = state
        except (TypeError, ValueError):
            raise TypeError(f"state: expected a (seed, offset) pair, got {state!r}") from None
        seed = _args.uint64(seed, "seed")
        offset = _args.uint64(offset, "offset")
        with LOCK:
            self._state[0] = seed
            self._state[1] = offset

    def next(self, n: int) -> tuple[int, int]:
        """Reserve n elements: returns ``(seed, offset)`` for a call on n elements and advances the offset by
        n (mod 2^64, the stream wraps).

        The read and the advance are one atomic step, so threads sharing a generator get disjoint ranges.

        Parameters
        ----------
        n : int
            Number of elements the call uses (``x.size``), in ``[0, 2**64)``.

        Returns
        -------
        seed : int
            The generator's seed.
        offset : int
            The offset before the advance: pass both as ``seed=``, ``offset=`` to the call.

        Raises
        ------
        TypeError
            n is not an int.
        ValueError
            n is outside ``[0, 2**64)``.

        Examples
        --------
        >>> gen = rf.Generator(seed=11, offset=2**64 - 4)
        >>> gen.next(6)
        (11, 18446744073709551612)
        >>> gen.offset  # wrapped
        2
        """
        n = _args.uint64(n, "n")
        with LOCK:
            seed, offset = int(self._state[0]), int(self._state[1])
            self._state[1] = (offset + n) % _U64
        return seed, offset

    # --- a copy (copy.copy, copy.deepcopy, pickle) gets its own state array with the same values ----------

    def __getstate__(self) -> tuple[int, int]:
        return self.get_state()

    def __setstate__(self, state: tuple[int, int]) -> None:
        seed, offset = state
        self._new_state(_args.uint64(seed, "seed"), _args.uint64(offset, "offset"))

    def __copy__(self) -> Generator:
        new = object.__new__(type(self))
        new.__setstate__(self.get_state())
        return new

    def __deepcopy__(self, memo: dict[int, Any]) -> Generator:
        return self.__copy__()

    def __repr__(self) -> str:
        seed, offset = self.get_state()
        return f"regdrop_fast.Generator(seed={seed}, offset={offset})"
