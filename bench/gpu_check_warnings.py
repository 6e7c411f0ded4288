"""pytest plugin of bench/gpu_check.sh (loaded with ``-p gpu_check_warnings``, bench/ on PYTHONPATH).

pyproject.toml turns every warning into an error. On the GPU machine the installed torch (2.11) and CuPy (14)
may raise deprecation warnings from inside their own code, which this project cannot change; those alone are
ignored here: DeprecationWarning, PendingDeprecationWarning and FutureWarning whose module (the code the
warning is attributed to) is torch, CuPy or one of their submodules. Every other warning stays an error:
ours, and a deprecation that torch attributes to our call of it (stacklevel pointing into regdrop_fast or
the tests).

pytest's ``-W`` option matches the module name literally (``-W ignore::DeprecationWarning:torch`` would not
cover ``torch.cuda``), so the filters are added as ini lines, whose module field is a regular expression.
"""

from __future__ import annotations

import os

THIRD_PARTY_MODULES = r"(torch|torchvision|triton|cupy|cupyx|cupy_backends|fastrlock)(\..*)?\Z"
CATEGORIES = ("DeprecationWarning", "PendingDeprecationWarning", "FutureWarning")


def filters() -> list[str]:
    """The filterwarnings lines this plugin adds (after pyproject's "error", so they take precedence)."""
    return [f"ignore::{category}:{THIRD_PARTY_MODULES}" for category in CATEGORIES]


def pytest_configure(config) -> None:
    for line in filters():
        config.addinivalue_line("filterwarnings", line)
    if os.environ.get("GPU_CHECK_NO_POOL") == "1":
        _cupy_without_pool()


def _cupy_without_pool() -> None:
    """Under compute-sanitizer (GPU_CHECK_NO_POOL=1): CuPy allocates every array with its own cudaMalloc, as
    PYTORCH_NO_CUDA_MEMORY_CACHING=1 does for torch, so an access past an array's end is outside any
    allocation and memcheck reports it."""
    try:
        import cupy
    except ImportError:
        return
    cupy.cuda.set_allocator(None)
    cupy.cuda.set_pinned_memory_allocator(None)
