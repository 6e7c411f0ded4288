"""Raw access to the counter-based generator behind every mask."""

from __future__ import annotations

del annotations  # the __future__ flag, not API

from typing import Any as _Any

import numpy as _np

from . import _args, _native

__all__ = ["philox4x32"]


def philox4x32(counter: _Any, key: _Any, rounds: int = 10) -> _np.ndarray:  # counter, key: array-likes
    """Philox4x32-R: counter uint32 (..., 4) and key uint32 (..., 2) -> uint32 (..., 4).

    Leading axes broadcast. rounds=10 is Philox4x32-10, the generator of the dropout stream.

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
    The Random123 known answer for a zero counter and key:

    >>> out = rf.random.philox4x32([0, 0, 0, 0], [0, 0])
    >>> [f"{w:08x}" for w in out]
    ['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']
    >>> rf.random.philox4x32(np.zeros((3, 4), np.uint32), [0, 0]).shape  # the key broadcasts
    (3, 4)
    """
    counter, key, rounds = _args.philox_args(counter, key, rounds)
    out = _np.empty(counter.shape, _np.uint32)
    _native.core.philox4x32(counter, key, out, out.size // 4, rounds)
    return out
