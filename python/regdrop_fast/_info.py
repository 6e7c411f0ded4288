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
    """Threads the kernels may use (default: the CPUs this process may run on).

    Returns
    -------
    int
        The thread count last set by ``set_num_threads`` (after its cap), or the number of CPUs this
        process may run on (its CPU affinity) when it was never called.

    Examples
    --------
    >>> rf.get_num_threads() >= 1
    True
    >>> rf.set_num_threads(2)
    >>> rf.get_num_threads()
    2
    """
    return _native.core.get_num_threads()


def set_num_threads(n: int) -> None:
    """Use at most n >= 1 threads; results are bit-identical for every n.

    n is capped at max(4 x the CPUs this process may run on, 256) (get_num_threads() reports the capped
    value). The pool follows n down as well as up: lowering it joins the surplus worker threads (at once,
    or when the call running in another thread ends). If the system refuses to start a thread (process or
    memory limits), calls run on the threads that could be started until set_num_threads is called again.

    Parameters
    ----------
    n : int
        Maximum number of threads, at least 1.

    Raises
    ------
    TypeError
        n is not an int (a bool is refused too).
    ValueError
        n is below 1.

    Examples
    --------
    >>> x = np.ones(100_000, np.float32)
    >>> rf.set_num_threads(1)
    >>> y1, _ = rf.dropout(x, 0.3, seed=5)
    >>> rf.set_num_threads(4)
    >>> y4, _ = rf.dropout(x, 0.3, seed=5)
    >>> np.array_equal(y1, y4)
    True
    >>> rf.set_num_threads(10**9) is None and rf.get_num_threads() >= 256  # capped
    True
    >>> rf.set_num_threads(0)
    Traceback (most recent call last):
        ...
    ValueError: n: expected at least 1 thread, got 0
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n: expected an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n: expected at least 1 thread, got {n}")
    _native.core.set_num_threads(int(min(n, 1 << 16)))


def set_simd(level: str) -> str:
    """Select the SIMD path ('generic', 'avx2', 'avx512'; capped at what the CPU has); returns the one in use.

    For tests and benchmarks: every path produces the same bits. REGDROP_SIMD sets it at import.

    Parameters
    ----------
    level : {"generic", "avx2", "avx512"}
        The path wanted. A level the CPU (or this build) lacks gives the best one it has, so
        ``set_simd("avx512")`` returns to the best available path.

    Returns
    -------
    str
        The path now in use (``backend_info()["simd"]``).

    Raises
    ------
    TypeError
        level is not a str.
    ValueError
        level is not one of the three names.

    Examples
    --------
    >>> before = rf.backend_info()["simd"]
    >>> x = np.ones(1000, np.float32)
    >>> rf.set_simd("generic")
    'generic'
    >>> y_generic, _ = rf.dropout(x, 0.5, seed=1)
    >>> rf.set_simd(before) == before
    True
    >>> np.array_equal(rf.dropout(x, 0.5, seed=1)[0], y_generic)
    True
    >>> rf.set_simd("sse")
    Traceback (most recent call last):
        ...
    ValueError: level: expected one of ('generic', 'avx2', 'avx512'), got 'sse'
    """
    _args.choice(level, SIMD_LEVELS, "level")
    _native.core.set_simd(SIMD_LEVELS.index(level))
    return _native.core.simd()


def cuda_compiled() -> bool:
    return _native.cuda is not None


def backend_info() -> dict:
    """Version, SIMD path in use (and the best available), thread counts, and whether CUDA was compiled.

    Returns
    -------
    dict
        ``version`` (str), ``simd`` (the path in use) and ``simd_best`` (the best this CPU and build have),
        each one of 'generic', 'avx2', 'avx512'; ``num_threads`` (``get_num_threads()``) and
        ``default_num_threads`` (the CPUs this process may run on); ``cuda_compiled`` (bool: the CUDA
        extension was built) and ``cuda_devices`` (list of device names, empty without CUDA).

    Examples
    --------
    >>> info = rf.backend_info()
    >>> sorted(info)
    ['cuda_compiled', 'cuda_devices', 'default_num_threads', 'num_threads', 'simd', 'simd_best', 'version']
    >>> info["simd"] in ("generic", "avx2", "avx512"), info["num_threads"] == rf.get_num_threads()
    (True, True)
    """
    return {
        "version": _version(),
        "simd": _native.core.simd(),
        "simd_best": _native.core.simd_best(),
        "num_threads": _native.core.get_num_threads(),
        "default_num_threads": _native.core.default_num_threads(),
        "cuda_compiled": cuda_compiled(),
        "cuda_devices": cuda.device_names(),
    }
