"""The compiled modules: _core (CPU kernels, always built) and _cuda (CUDA kernels, optional).

This is the only module that imports them. ``cuda`` is None when the package was built without CUDA; the
tests replace it (with kernels built against a CPU emulation of the CUDA runtime) by assigning to it, so
every use reads ``_native.cuda`` at call time.
"""

from __future__ import annotations

from types import ModuleType

from . import _core as core

cuda: ModuleType | None
try:
    from . import _cuda
except ImportError:  # built without CUDA
    cuda = None
else:
    cuda = _cuda


def cuda_kernels(name: str) -> ModuleType:
    """The CUDA module for a call whose array `name` is a CUDA array; the one "built without CUDA" error."""
    if cuda is None:
        raise ValueError(f"{name}: is a CUDA array but regdrop_fast was built without CUDA support")
    return cuda


__all__ = ["core", "cuda", "cuda_kernels"]
