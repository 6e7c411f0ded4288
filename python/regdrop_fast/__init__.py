"""regdrop_fast: fused, reproducible dropout and weight-penalty kernels for NumPy (and PyTorch).

Every mask is a pure function of (seed, offset + element index) through Philox4x32-10 (docs/rng.md), so
results are identical on every thread count and SIMD path, and ``regdrop_fast.reference`` reproduces
them bit for bit in plain NumPy.
"""

from . import cuda, random, reference
from ._bias_dropout_add import bias_dropout_add, bias_dropout_add_backward, dropout_add
from ._dropout import dropout, dropout_backward, dropout_mask
from ._gaussian_dropout import gaussian_dropout, gaussian_dropout_backward
from ._gaussian_noise import GaussianNoise
from ._dropout_variants import alpha_dropout, alpha_dropout_backward, drop_path
from ._generator import DataParallelGenerator, Generator
from ._info import _version, backend_info, get_num_threads, set_num_threads, set_simd
from ._mask import Mask
from ._penalty import decay, max_norm, penalty, penalty_grad, prox_l1
from ._penalty import prox_group_l1
from ._constraints import non_neg, norm_constraint, unit_norm

__version__ = _version()

__all__ = [
    "DataParallelGenerator",
    "GaussianNoise",
    "Generator",
    "Mask",
    "alpha_dropout",
    "alpha_dropout_backward",
    "backend_info",
    "bias_dropout_add",
    "bias_dropout_add_backward",
    "cuda",
    "decay",
    "drop_path",
    "dropout",
    "dropout_add",
    "dropout_backward",
    "dropout_mask",
    "gaussian_dropout",
    "gaussian_dropout_backward",
    "get_num_threads",
    "max_norm",
    "non_neg",
    "norm_constraint",
    "penalty",
    "penalty_grad",
    "prox_group_l1",
    "prox_l1",
    "random",
    "reference",
    "set_num_threads",
    "set_simd",
    "unit_norm",
]
