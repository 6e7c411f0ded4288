"""Readable pure-NumPy versions of every regdrop_fast kernel: the specification in executable form.

Same names and signatures as the native functions in ``regdrop_fast``; the native kernels must agree with
these bit for bit (masks and values; penalty values within the documented tolerance).
"""

from .._mask import Mask
from .bias_dropout_add import bias_dropout_add, bias_dropout_add_backward, dropout_add
from .dropout import dropout, dropout_backward, dropout_mask
from .gaussian_dropout import gaussian_dropout, gaussian_dropout_backward, standard_normals
from .dropout_variants import alpha_dropout, alpha_dropout_backward, drop_path
from .penalty import decay, max_norm, penalty, penalty_grad, prox_l1
from .constraints import non_neg, norm_constraint, prox_group_l1, unit_norm
from .philox import philox4x32

# The import system binds the submodule `philox` here (dropout / penalty are rebound to the functions): drop
# the name so the namespace holds only the API; `import regdrop_fast.reference.philox` still works.
globals().pop("philox", None)
globals().pop("constraints", None)
globals().pop("dropout_variants", None)

__all__ = [
    "Mask",
    "alpha_dropout",
    "alpha_dropout_backward",
    "bias_dropout_add",
    "bias_dropout_add_backward",
    "decay",
    "drop_path",
    "dropout",
    "dropout_add",
    "dropout_backward",
    "dropout_mask",
    "gaussian_dropout",
    "gaussian_dropout_backward",
    "max_norm",
    "non_neg",
    "norm_constraint",
    "penalty",
    "penalty_grad",
    "philox4x32",
    "prox_group_l1",
    "prox_l1",
    "standard_normals",
    "unit_norm",
]
