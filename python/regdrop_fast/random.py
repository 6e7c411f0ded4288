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
    """
    counter, key, rounds = _args.philox_args(counter, key, rounds)
    out = _np.empty(counter.shape, _np.uint32)
    _native.core.philox4x32(counter, key, out, out.size // 4, rounds)
    return out
