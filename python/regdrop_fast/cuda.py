"""Whether the CUDA backend is here: PyTorch CUDA tensors and CuPy arrays passed to any regdrop_fast function
run on the CUDA kernels (on the caller's current stream, outputs of the same library on the same device);
this module only answers questions about it. docs/cuda.md describes the kernels."""

from __future__ import annotations

del annotations  # the __future__ flag, not API

from . import _native
from ._arrays import is_device_array

__all__ = ["device_count", "device_names", "is_available", "is_device_array"]


def device_count() -> int:
    """The number of CUDA devices the CUDA extension sees.

    Returns
    -------
    int
        0 when the CUDA extension was not built (or could not be loaded) or no device is present;
        otherwise the number of devices the extension finds.

    Examples
    --------
    >>> n = rf.cuda.device_count()
    >>> isinstance(n, int) and n >= 0
    True
    >>> (n > 0) == rf.cuda.is_available()
    True
    """
    return 0 if _native.cuda is None else _native.cuda.device_count()


def is_available() -> bool:
    """True when the CUDA extension was built and a CUDA device is present.

    When it is False, CUDA arrays (PyTorch CUDA tensors, CuPy arrays) cannot be passed to regdrop_fast
    functions; NumPy arrays and CPU tensors work either way.

    Returns
    -------
    bool
        ``device_count() > 0``.

    Examples
    --------
    >>> rf.cuda.is_available() == (rf.cuda.device_count() > 0)
    True
    """
    return device_count() > 0


def device_names() -> list[str]:
    """The name of each CUDA device, in device-index order.

    Returns
    -------
    list of str
        One name per device, index ``d`` for device ``d`` (as the driver reports it, e.g.
        ``"NVIDIA H100 80GB HBM3"``); empty when ``device_count()`` is 0.

    Examples
    --------
    >>> names = rf.cuda.device_names()
    >>> len(names) == rf.cuda.device_count()
    True
    >>> all(isinstance(name, str) for name in names)
    True
    """
    return [_native.cuda.device_name(d) for d in range(device_count())]  # type: ignore[union-attr]
