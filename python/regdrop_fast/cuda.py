"""Whether the CUDA backend is here: PyTorch CUDA tensors and CuPy arrays passed to any regdrop_fast function
run on the CUDA kernels (on the caller's current stream, outputs of the same library on the same device);
this module only answers questions about it. docs/cuda.md describes the kernels."""

from __future__ import annotations

del annotations  # the __future__ flag, not API

from . import _native
from ._arrays import is_device_array

__all__ = ["device_count", "device_names", "is_available", "is_device_array"]


def device_count() -> int:
    return 0 if _native.cuda is None else _native.cuda.device_count()


def is_available() -> bool:
    """True when the CUDA extension was built and a CUDA device is present."""
    return device_count() > 0


def device_names() -> list[str]:
    return [_native.cuda.device_name(d) for d in range(device_count())]  # type: ignore[union-attr]
