"""Threads, SIMD level and build facts."""

from __future__ import annotations

import numbers

from . import _core, cuda

SIMD_LEVELS = ("generic", "avx2", "avx512")


def get_num_threads() -> int:
    """Threads the kernels may use (default: the CPUs this process may run on)."""
    return _core.get_num_threads()


def set_num_threads(n: int) -> None:
    """Use at most n >= 1 threads; results are bit-identical for every n."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n: expected an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n: expected at least 1 thread, got {n}")
    _core.set_num_threads(int(min(n, 1 << 16)))


def set_simd(level: str) -> str:
    """Lower the SIMD path ('generic', 'avx2', 'avx512'; capped at what the CPU has); returns the one in use.

    For tests and benchmarks: every path produces the same bits. REGDROP_SIMD sets it at import.
    """
    if level not in SIMD_LEVELS:
        raise ValueError(f"level: expected one of {SIMD_LEVELS}, got {level!r}")
    _core.set_simd(SIMD_LEVELS.index(level))
    return _core.simd()


def cuda_compiled() -> bool:
    try:
        from . import _cuda  # noqa: F401
    except ImportError:
        return False
    return True


def backend_info() -> dict:
    """Version, SIMD path in use (and the best available), thread counts, and whether CUDA was compiled."""
    from . import __version__

    return {
        "version": __version__,
        "simd": _core.simd(),
        "simd_best": _core.simd_best(),
        "num_threads": _core.get_num_threads(),
        "default_num_threads": _core.default_num_threads(),
        "cuda_compiled": cuda_compiled(),
        "cuda_devices": cuda.device_names(),
    }
