"""Philox4x32-R (Salmon et al., SC'11) over arrays of counters and keys, and the dropout stream layout."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _args

M0, M1 = 0xD2511F53, 0xCD9E8D57  # round multipliers for counter words 0 and 2
W0, W1 = 0x9E3779B9, 0xBB67AE85  # key increments between rounds
MASK32 = 0xFFFFFFFF


def _mulhilo(a: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    product = a.astype(np.uint64) * np.uint64(m)
    return (product >> np.uint64(32)).astype(np.uint32), (product & np.uint64(MASK32)).astype(np.uint32)


def philox4x32(counter: Any, key: Any, rounds: int = 10) -> np.ndarray:  # counter, key: array-likes
    """NumPy specification of ``regdrop_fast.random.philox4x32``, equal to it bit for bit.

    Philox4x32-R: counter uint32 (..., 4) and key uint32 (..., 2) -> uint32 (..., 4), leading axes
    broadcast; rounds=10 is Philox4x32-10, the generator of the dropout stream.

    Parameters
    ----------
    counter : array_like of int
        Counter words, shape ``(..., 4)``, values in ``[0, 2**32)``.
    key : array_like of int
        Key words, shape ``(..., 2)``, values in ``[0, 2**32)``.
    rounds : int, default 10
        Number of rounds, 1 to 16.

    Returns
    -------
    ndarray of uint32
        Shape ``(..., 4)``: the leading axes of counter and key broadcast together.

    Raises
    ------
    TypeError
        counter or key is not an integer array, or rounds is not an int.
    ValueError
        Values outside ``[0, 2**32)``, a last axis other than 4 (counter) or 2 (key), leading axes that do
        not broadcast, or rounds outside 1..16.

    Examples
    --------
    >>> counter = np.arange(12, dtype=np.uint32).reshape(3, 4)
    >>> out = rf.reference.philox4x32(counter, [1, 2], rounds=7)
    >>> out.dtype, np.array_equal(out, rf.random.philox4x32(counter, [1, 2], rounds=7))
    (dtype('uint32'), True)
    """
    counter, key, rounds = _args.philox_args(counter, key, rounds)
    lead = counter.shape[:-1]
    # Flattened to 1-d lanes so every word is an array even for a single block: NumPy wraps uint32 array
    # arithmetic silently, while the scalar arithmetic of 0-d operands warns on overflow.
    counter, key = counter.reshape(-1, 4), key.reshape(-1, 2)
    c0, c1, c2, c3 = (counter[:, w].copy() for w in range(4))
    k0, k1 = key[:, 0].copy(), key[:, 1].copy()
    for r in range(rounds):
        if r > 0:  # the key is bumped between rounds, not before the first
            k0 = k0 + np.uint32(W0)  # uint32 arithmetic wraps mod 2^32
            k1 = k1 + np.uint32(W1)
        hi0, lo0 = _mulhilo(c0, M0)
        hi1, lo1 = _mulhilo(c2, M1)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return np.stack([c0, c1, c2, c3], axis=-1).reshape(lead + (4,))


def dropout_words(n: int, seed: int, offset: int) -> np.ndarray:
    """The 32-bit word of each of the n elements of a call at `offset` (docs/rng.md).

    Element i has global index g = (offset + i) mod 2^64 and uses word (g mod 4) of the Philox4x32-10 block
    with counter (lo32(g // 4), hi32(g // 4), 0, 0) and key (lo32(seed), hi32(seed)).
    """
    g = np.uint64(offset) + np.arange(n, dtype=np.uint64)  # uint64 arithmetic wraps mod 2^64
    return stream_words(g, seed)


def stream_words(g: np.ndarray, seed: int) -> np.ndarray:
    """The 32-bit word of each stream position in g (a 1-d uint64 array of global indices, any order)."""
    n = len(g)
    block = g >> np.uint64(2)
    lane = (g & np.uint64(3)).astype(np.intp)
    counter = np.zeros((n, 4), dtype=np.uint32)
    counter[:, 0] = block & np.uint64(MASK32)
    counter[:, 1] = block >> np.uint64(32)
    key = np.array([seed & MASK32, seed >> 32], dtype=np.uint32)
    words = philox4x32(counter, key)
    return words[np.arange(n), lane]
