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
from typing import Any, Callable, Mapping

import numpy as np

from . import _args

__all__ = ["DataParallelGenerator", "Generator"]

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

    def state_dict(self) -> dict[str, int]:
        """The position as ``{"seed": int, "offset": int}``, for checkpoints (``torch.save`` stores it as is).

        The offset is the position in the whole stream, so a checkpoint taken by a
        ``DataParallelGenerator`` on any world size resumes on any other (``load_state_dict``).

        Returns
        -------
        dict
            ``{"seed": seed, "offset": offset}``, plain ints in ``[0, 2**64)``, read together.

        Examples
        --------
        >>> gen = rf.Generator(seed=3)
        >>> _ = gen.next(100)
        >>> gen.state_dict()
        {'seed': 3, 'offset': 100}
        """
        seed, offset = self.get_state()
        return {"seed": seed, "offset": offset}

    def load_state_dict(self, state_dict: Mapping[str, int]) -> None:
        """Move to the position a ``state_dict()`` recorded (from this or any other generator).

        Parameters
        ----------
        state_dict : mapping
            With exactly the keys ``"seed"`` and ``"offset"``, ints in ``[0, 2**64)``.

        Raises
        ------
        TypeError
            state_dict is not a mapping, or a value is not an int.
        ValueError
            A key is missing or unknown, or a value is outside ``[0, 2**64)``. Nothing changes then.

        Examples
        --------
        >>> gen = rf.Generator(seed=3)
        >>> saved = gen.state_dict()
        >>> first = gen.next(8)
        >>> gen.load_state_dict(saved)
        >>> gen.next(8) == first
        True
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict: expected a mapping with keys 'seed' and 'offset', got "
                            f"{type(state_dict).__name__}")
        keys = set(state_dict)
        if keys != {"seed", "offset"}:
            missing, unknown = sorted({"seed", "offset"} - keys), sorted(map(repr, keys - {"seed", "offset"}))
            raise ValueError(f"state_dict: expected exactly the keys 'seed' and 'offset'"
                             + (f"; missing {missing}" if missing else "")
                             + (f"; unknown {', '.join(unknown)}" if unknown else ""))
        self.set_state((state_dict["seed"], state_dict["offset"]))

    # --- a copy (copy.copy, copy.deepcopy, pickle) gets its own state array with the same values ----------

    def __getstate__(self) -> tuple[int, int]:
        return self.get_state()

    def __setstate__(self, state: tuple[int, int]) -> None:
        seed, offset = state
        self._new_state(_args.uint64(seed, "seed"), _args.uint64(offset, "offset"))

    def __copy__(self) -> Generator:
        new = object.__new__(type(self))
        new.__setstate__(self.__getstate__())
        return new

    def __deepcopy__(self, memo: dict[int, Any]) -> Generator:
        return self.__copy__()

    def __repr__(self) -> str:
        seed, offset = self.get_state()
        return f"regdrop_fast.Generator(seed={seed}, offset={offset})"


class DataParallelGenerator(Generator):
    """The generator of one data-parallel rank: ``DataParallelGenerator(seed=None, offset=0, *, rank, world_size)``.

    Data parallelism splits a global batch of ``world_size * B`` samples into equal contiguous runs, rank r
    holding samples ``r*B .. (r+1)*B - 1``. With the samples on the leading axis, rank r's part of any
    activation is a contiguous run of the global tensor's flat index, starting at ``r * n`` for a local
    tensor of n elements. So a call on n local elements gets ``(seed, offset + rank * n)`` and every rank
    advances the shared position by ``world_size * n``, the size of the global call: each rank draws exactly
    its slice of the mask one process with the whole batch draws (the Generator of that process moves
    the same way), with no communication. ``state_dict()`` holds that global position, so a run resumes
    on another world size by ``load_state_dict`` into the new ranks' generators.

    Every rank must make the same calls with the same local sizes (equal local batches: DistributedSampler
    pads the last one; or ``drop_last=True``), and the leading axis of each tensor (of the decisions' reduced
    shape for broadcast axes, after any axis of size 1) must be the sample axis. ``regdrop_fast.torch``
    accepts it wherever it accepts a Generator (``generator=``), torch.compile included.

    Parameters
    ----------
    seed : int, optional
        Seed in ``[0, 2**64)``, the same on every rank; None draws 64 bits from the operating system (then
        broadcast it to the other ranks).
    offset : int, default 0
        The global stream index the next global call's element 0 gets.
    rank : int
        This process's data-parallel rank, in ``[0, world_size)``.
    world_size : int
        Number of data-parallel ranks, >= 1.

    Attributes
    ----------
    seed : int
        The seed (read-only; as Generator).
    offset : int
        The global stream position, the same on every rank (read-only; as Generator).
    rank : int
        This process's data-parallel rank (read-only).
    world_size : int
        The number of data-parallel ranks (read-only).

    Raises
    ------
    TypeError
        A seed, offset, rank or world_size that is not an int.
    ValueError
        A seed or offset outside ``[0, 2**64)``, world_size < 1, or rank outside ``[0, world_size)``.

    Examples
    --------
    >>> x = np.arange(1, 13, dtype=np.float32).reshape(4, 3)  # a global batch of 4 samples
    >>> whole, _ = rf.dropout(x, 0.5, seed=7)
    >>> parts = []
    >>> for rank in range(2):  # two ranks, two samples each
    ...     gen = rf.DataParallelGenerator(7, rank=rank, world_size=2)
    ...     s, o = gen.next(6)
    ...     parts.append(rf.dropout(x[2 * rank:2 * rank + 2], 0.5, seed=s, offset=o)[0])
    >>> np.array_equal(np.concatenate(parts), whole), gen.offset  # every rank moved on by 12
    (True, 12)
    """

    def __init__(self, seed: int | None = None, offset: int = 0, *, rank: int, world_size: int) -> None:
        self._rank, self._world_size = _layout(rank, world_size)
        super().__init__(seed, offset)

    def _new_state(self, seed: int, offset: int) -> None:
        # Four words, [seed, offset, rank, world_size]: regdrop_fast.torch advances the state inside one custom
        # op that reads the layout from words 2 and 3, so a compiled graph needs no Python attribute of ours.
        self._state = np.array([seed, offset, self._rank, self._world_size], dtype=np.uint64)
        self._torch_state = None
        if on_new_state is not None:
            on_new_state(self)

    @property
    def rank(self) -> int:
        """This process's data-parallel rank."""
        return self._rank

    @property
    def world_size(self) -> int:
        """Number of data-parallel ranks."""
        return self._world_size

    def next(self, n: int) -> tuple[int, int]:
        """Reserve this rank's n elements of a global call on ``world_size * n``: returns
        ``(seed, offset + rank * n)`` and advances the offset by ``world_size * n`` (mod 2^64).

        Parameters
        ----------
        n : int
            Number of local elements the call uses, the same on every rank.

        Returns
        -------
        seed : int
            The generator's seed.
        offset : int
            Where this rank's elements start in the stream.

        Raises
        ------
        TypeError
            n is not an int.
        ValueError
            n is outside ``[0, 2**64)``.

        Examples
        --------
        >>> gen = rf.DataParallelGenerator(5, rank=1, world_size=4)
        >>> gen.next(10), gen.next(10)
        ((5, 10), (5, 50))
        """
        n = _args.uint64(n, "n")
        with LOCK:
            seed, offset = int(self._state[0]), int(self._state[1])
            self._state[1] = (offset + self._world_size * n) % _U64
        return seed, (offset + self._rank * n) % _U64

    def __getstate__(self) -> tuple[int, int, int, int]:  # type: ignore[override]
        seed, offset = self.get_state()
        return seed, offset, self._rank, self._world_size

    def __setstate__(self, state: tuple[int, ...]) -> None:
        seed, offset, rank, world_size = state
        self._rank, self._world_size = _layout(rank, world_size)
        self._new_state(_args.uint64(seed, "seed"), _args.uint64(offset, "offset"))

    def __repr__(self) -> str:
        seed, offset = self.get_state()
        return (f"regdrop_fast.DataParallelGenerator(seed={seed}, offset={offset}, rank={self._rank}, "
                f"world_size={self._world_size})")


def _layout(rank: object, world_size: object) -> tuple[int, int]:
    """(rank, world_size) checked: ints (not bools), world_size >= 1, 0 <= rank < world_size."""
    for name, value in (("rank", rank), ("world_size", world_size)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    world, r = int(world_size), int(rank)  # type: ignore[call-overload]
    if not 1 <= world < _U64:
        raise ValueError(f"world_size: expected an int >= 1, got {world}")
    if not 0 <= r < world:
        raise ValueError(f"rank: expected an int in [0, world_size={world}), got {r}")
    return r, world
