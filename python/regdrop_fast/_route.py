"""Which backend runs a call: the one function that decides it from the kind of the call's first array
(_arrays.is_device_array: PyTorch CUDA tensors and CuPy arrays go to CUDA, everything else to the CPU)."""

from __future__ import annotations

from types import ModuleType

import numpy as np

from . import _arrays
from . import _backend_cpu as CPU
from . import _backend_cuda as CUDA


def backend_for(a) -> ModuleType:
    if type(a) is np.ndarray:  # the common case, decided without looking further
        return CPU
    return CUDA if _arrays.is_device_array(a) else CPU


__all__ = ["CPU", "CUDA", "backend_for"]
