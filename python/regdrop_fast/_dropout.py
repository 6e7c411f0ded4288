"""dropout, dropout_backward, dropout_mask: validate once (_records), run on the backend the arrays chose."""

from __future__ import annotations

from typing import Any, Sequence

from . import _route, _validate
from ._mask import Mask


# Arrays are Any: a NumPy array (or array-like), a CuPy array or a torch tensor; results are of the input's kind.


def dropout(x: Any, p: float, *, seed: int | None = None, offset: int = 0, out: Any = None,
            store: str = "bits") -> tuple[Any, Mask]:
    """Inverted dropout in one pass: returns (y, mask).

    Each element is kept with probability 1 - p and scaled by 1 / (1 - p); dropped elements are exactly 0.
    The keep decisions are a pure function of (seed, offset + flat index), see docs/rng.md.
    A call of more than 2^24 elements checks for Ctrl-C between chunks: on KeyboardInterrupt the outputs
    (y, out=) are partly written.
    """
    backend, call = _validate.dropout(x, p, seed, offset, out, store)
    y, bits = backend.dropout(call)
    return y, Mask._trusted(call.shape, call.p, call.seed, call.offset, bits)


def dropout_backward(grad: Any, mask: Mask, *, out: Any = None) -> Any:
    """grad * mask.scale where the mask kept the element, 0 elsewhere (mask from bits or regenerated).

    Beyond 2^24 elements, on KeyboardInterrupt (Ctrl-C, checked between chunks) the outputs are partly
    written.
    """
    backend, call = _validate.dropout_backward(grad, mask, out)
    return backend.dropout_backward(call)


def dropout_mask(shape: int | Sequence[int], p: float, *, seed: int, offset: int = 0) -> Mask:
    """The Mask a dropout call with these arguments would return, without touching any data."""
    call = _validate.dropout_mask(shape, p, seed, offset)
    return Mask._trusted(call.shape, call.p, call.seed, call.offset, _route.CPU.dropout_mask(call))
