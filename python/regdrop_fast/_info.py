"""Threads, SIMD level and build facts."""

from __future__ import annotations

import importlib
import numbers
from importlib.metadata import PackageNotFoundError, version

from . import _args, _native, cuda

SIMD_LEVELS = ("generic", "avx2", "avx512")


def _build_info() -> dict:
    """What CMakeLists.txt recorded when this copy was built (regdrop_fast/_build_info.py): version, git commit
    ("unknown" when built without git metadata) and whether tracked files had changes; {} when the file is
    absent (an extension built by hand and copied into the source tree)."""
    try:
        mod = importlib.import_module("regdrop_fast._build_info")
    except ImportError:
        return {}
    return {"version": mod.version, "git_commit": mod.git_commit, "git_dirty": mod.git_dirty}


def _version() -> str:
    try:
        return version("regdrop_fast")
    except PackageNotFoundError:  # running from a source tree without installed metadata
        return str(_build_info().get("version", "0+unknown"))


def get_num_threads() -> int:
    """Threads the kernels may use (default: the CPUs this process may run on)."""
    return _native.core.get_num_threads()


def set_num_threads(n: int) -> None:
    """Use at most n >= 1 threads; results are bit-identical for every n.

    n is capped at max(4 x the CPUs this process may run on, 256) (get_num_threads() reports the capped
    value). The pool follows n down as well as up: lowering it joins the surplus worker threads (at once,
    or when the call running in another thread ends). If the system refuses to start a thread (process or
    memory limits), calls run on the threads that could be started until set_num_threads is called again.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n: expected an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n: expected at least 1 thread, got {n}")
    _native.core.set_num_threads(int(min(n, 1 << 16)))


def set_simd(level: str) -> str:
    """Lower the SIMD path ('generic', 'avx2', 'avx512'; capped at what the CPU has); returns the one in use.

    For tests and benchmarks: every path produces the same bits. REGDROP_SIMD sets it at import.
    """
    _args.choice(level, SIMD_LEVELS, "level")
    _native.core.set_simd(SIMD_LEVELS.index(level))
    return _native.core.simd()


def cuda_compiled() -> bool:
    return _native.cuda is not None


def backend_info() -> dict:
    """Version, SIMD path in use (and the best available), thread counts, and whether CUDA was compiled."""
    return {
        "version": _version(),
        "simd": _native.core.simd(),
        "simd_best": _native.core.simd_best(),
        "num_threads": _native.core.get_num_threads(),
        "default_num_threads": _native.core.default_num_threads(),
        "cuda_compiled": cuda_compiled(),
        "cuda_devices": cuda.device_names(),
    }
