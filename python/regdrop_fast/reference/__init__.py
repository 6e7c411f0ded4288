"""Readable pure-NumPy versions of every regdrop_fast kernel: the specification in executable form.

Same names and signatures as the native functions in ``regdrop_fast``; the native kernels must agree with
these bit for bit (masks and values; penalty values within the documented tolerance).
"""

from .._mask import Mask
from .dropout import dropout, dropout_backward, dropout_mask
from .penalty import decay, max_norm, penalty, penalty_grad, prox_l1
from .philox import philox4x32

del philox  # the submodule (shadowed names dropout / penalty are the functions): only the API is public

__all__ = [
    "Mask",
    "decay",
    "dropout",
    "dropout_backward",
    "dropout_mask",
    "max_norm",
    "penalty",
    "penalty_grad",
    "philox4x32",
    "prox_l1",
]
