"""A stand-in for CuPy over host memory, for tests of the CUDA path's Python side on machines without a GPU
(tests/test_routing.py, and the cuda-emulated backend of tests/conftest.py): regdrop_fast.cuda takes an object for a CuPy array
when its type's module is "cupy" and it has __cuda_array_interface__, and uses only the attributes and the
module functions provided here.
"""

from __future__ import annotations

import contextlib
import types

import numpy as np


class _Flags:
    def __init__(self, a):
        self.c_contiguous = a.flags.c_contiguous


class ndarray:  # noqa: N801 - named like the array type it stands in for
    """A 'CuPy array' on fake device `device_id`, its memory an ndarray in host memory."""

    __module__ = "cupy"

    def __init__(self, host: np.ndarray, device_id: int = 0):
        self.host = host
        self.device = types.SimpleNamespace(id=device_id)

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.host.shape, "data": (self.data.ptr, False), "version": 3}

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self.host.__array_interface__["data"][0] if self.host.size else 0)

    shape = property(lambda self: self.host.shape)
    strides = property(lambda self: self.host.strides)
    dtype = property(lambda self: self.host.dtype)
    size = property(lambda self: self.host.size)
    flags = property(lambda self: _Flags(self.host))

    def item(self):
        return self.host.item()

    def __setitem__(self, key, value):
        self.host[key] = value.host if isinstance(value, ndarray) else value

    def astype(self, dtype):
        return ndarray(self.host.astype(dtype), self.device.id)

    def reshape(self, *shape):
        return ndarray(self.host.reshape(*shape), self.device.id)

    def __getitem__(self, key):
        return ndarray(self.host[key], self.device.id)

    def sum(self):
        return ndarray(np.asarray(self.host.sum()), self.device.id)


def fake_cupy():
    """A module that stands in for cupy (what regdrop_fast.cuda uses of it), over host memory."""
    current = {"device": 0}

    @contextlib.contextmanager
    def device(i):
        before, current["device"] = current["device"], i
        try:
            yield
        finally:
            current["device"] = before

    mod = types.ModuleType("cupy")
    mod.ndarray = ndarray
    mod.empty = lambda shape, dtype: ndarray(np.empty(shape, dtype), current["device"])
    mod.empty_like = lambda a: ndarray(np.empty_like(a.host), a.device.id)
    mod.ascontiguousarray = lambda a: ndarray(np.ascontiguousarray(a.host), a.device.id)
    mod.transpose = lambda a, axes: ndarray(np.transpose(a.host, axes), a.device.id)
    mod.array = lambda a, order, copy: ndarray(np.array(a.host, order=order, copy=copy), a.device.id)
    mod.unpackbits = lambda a, bitorder: ndarray(np.unpackbits(a.host, bitorder=bitorder), a.device.id)
    mod.cuda = types.SimpleNamespace(Device=device, get_current_stream=lambda: types.SimpleNamespace(ptr=4242))
    return mod
