"""The CUDA backend: PyTorch CUDA tensors and CuPy arrays in, outputs of the same library on the same device.

Kernels launch on the caller's current stream (``torch.cuda.current_stream()``, CuPy's current stream) of the
arrays' device and nothing here synchronizes the host. NumPy arrays never come here: they use the CPU
kernels. This module has dropout; the weight penalties are in _penalty_cuda (docs/cuda.md describes both).
"""

from __future__ import annotations

from . import _checks

try:
    from . import _cuda
except ImportError:  # built without CUDA
    _cuda = None

__all__ = ["device_count", "device_names", "is_available", "is_device_array"]


def is_available() -> bool:
    """True when the CUDA extension was built and a CUDA device is present."""
    return _cuda is not None and _cuda.device_count() > 0


def device_count() -> int:
    return 0 if _cuda is None else _cuda.device_count()


def device_names() -> list[str]:
    return [_cuda.device_name(d) for d in range(device_count())]


class DeviceArray:
    """What the kernels need of a device array, and how to make outputs with the same library."""

    __slots__ = ("obj", "lib", "ptr", "shape", "dtype", "device", "contiguous", "size")

    def __init__(self, obj, lib, ptr, shape, dtype, device, contiguous):
        self.obj, self.lib, self.ptr = obj, lib, ptr
        self.shape, self.dtype, self.device, self.contiguous = tuple(shape), dtype, device, contiguous
        size = 1
        for d in self.shape:
            size *= d
        self.size = size

    def empty(self, shape, dtype=None):
        """A new C-contiguous array of this library on this device (dtype: a NumPy dtype; default ours)."""
        dtype = self.dtype if dtype is None else dtype
        if self.lib == "torch":
            import torch

            return torch.empty(shape, dtype=_torch_dtype(dtype), device=self.obj.device)
        import cupy

        with cupy.cuda.Device(self.device):
            return cupy.empty(shape, dtype=dtype)

    def contiguous_copy(self):
        if self.lib == "torch":
            return wrap(self.obj.contiguous())
        import cupy

        with cupy.cuda.Device(self.device):
            return wrap(cupy.ascontiguousarray(self.obj))

    def fresh_copy(self):
        """A new C-contiguous copy (never this array's own memory, unlike contiguous_copy)."""
        if self.lib == "torch":
            import torch

            return wrap(self.obj.clone(memory_format=torch.contiguous_format))
        import cupy

        with cupy.cuda.Device(self.device):
            return wrap(cupy.array(self.obj, order="C", copy=True))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def overlaps(self, other: "DeviceArray") -> bool:
        """Whether the memory spans of two arrays (from their first element, size * itemsize) intersect."""
        if not (self.nbytes and other.nbytes):
            return False
        return self.ptr < other.ptr + other.nbytes and other.ptr < self.ptr + self.nbytes

    def stream(self) -> int:
        if self.lib == "torch":
            import torch

            return torch.cuda.current_stream(self.obj.device).cuda_stream
        import cupy

        with cupy.cuda.Device(self.device):
            return cupy.cuda.get_current_stream().ptr


def _torch_dtype(np_dtype):
    import torch

    return {
        "float32": torch.float32,
        "float64": torch.float64,
        "float16": torch.float16,
        "bfloat16": torch.bfloat16,
        "uint8": torch.uint8,
        "int64": torch.int64,
    }[str(np_dtype)]


_TORCH_TO_NUMPY: dict = {}  # torch dtype -> NumPy dtype (None: none), filled as dtypes are met


def _numpy_dtype_of_torch(t):
    try:
        return _TORCH_TO_NUMPY[t.dtype]
    except KeyError:
        pass
    import numpy as np

    name = str(t.dtype).removeprefix("torch.")
    if name == "bfloat16":
        dtype = _checks.BFLOAT16
    else:
        try:
            dtype = np.dtype(name)
        except TypeError:
            dtype = None
    _TORCH_TO_NUMPY[t.dtype] = dtype
    return dtype


def is_device_array(a) -> bool:
    """A PyTorch CUDA tensor or a CuPy array (anything else is handled as a NumPy array)."""
    mod = type(a).__module__
    if mod.startswith("torch"):
        return getattr(a, "is_cuda", False)
    return mod.startswith("cupy") and hasattr(a, "__cuda_array_interface__")


def wrap(a) -> DeviceArray:
    if type(a).__module__.startswith("torch"):
        dtype = _numpy_dtype_of_torch(a)
        return DeviceArray(a, "torch", a.data_ptr(), a.shape, dtype, a.get_device(), a.is_contiguous())
    return DeviceArray(a, "cupy", a.data.ptr, a.shape, a.dtype, a.device.id, a.flags.c_contiguous)


def float_device_array(a, name: str) -> DeviceArray:
    if _cuda is None:
        raise ValueError(f"{name}: is a CUDA array but regdrop_fast was built without CUDA support")
    arr = wrap(a)
    if arr.dtype not in _checks.DTYPE_CODES:
        raise TypeError(f"{name}: dtype {arr.dtype} is not supported; expected {_checks.SUPPORTED}")
    return arr


def out_device_array(out, like: DeviceArray) -> DeviceArray:
    if not is_device_array(out):
        raise ValueError("out: must be on the same CUDA device as the input")
    o = wrap(out)
    if o.lib != like.lib:
        raise ValueError(f"out: a {o.lib} array cannot receive the result for a {like.lib} input")
    if o.device != like.device:
        raise ValueError(f"out: on device {o.device}, the input is on device {like.device}")
    if o.dtype != like.dtype:
        raise ValueError(f"out: dtype {o.dtype} does not match the input's {like.dtype}")
    if o.shape != like.shape:
        raise ValueError(f"out: shape {o.shape} does not match the input's {like.shape}")
    if not o.contiguous:
        raise ValueError("out: must be C-contiguous")
    return o


def _source(a: DeviceArray, out: DeviceArray | None) -> DeviceArray:
    """a as a C-contiguous array the kernel may read while writing out: copied when it is not contiguous or
    when it overlaps out other than exactly (out=x in place is fine: each element is read, then written, by
    one thread)."""
    src = a if a.contiguous else a.contiguous_copy()
    if out is not None and src.ptr != out.ptr and src.overlaps(out):
        src = src.fresh_copy()
    return src


def dropout(x, p: float, seed: int, offset: int, out, store: str):
    """Validated arguments from regdrop_fast.dropout; x is a device array."""
    from ._mask import Mask

    xa = float_device_array(x, "x")
    oa = out_device_array(out, xa) if out is not None else None
    src = _source(xa, oa)
    y = out if out is not None else xa.empty(xa.shape)
    bits = xa.empty(((xa.size + 7) // 8,), "uint8") if store == "bits" else None
    threshold, drop_all, scale = _checks.kernel_params(p)
    _cuda.dropout_forward(
        _checks.DTYPE_CODES[xa.dtype], src.ptr, (oa or wrap(y)).ptr, 0 if bits is None else wrap(bits).ptr,
        xa.size, seed, offset, threshold, drop_all, scale, xa.device, xa.stream(),
    )
    return y, Mask._trusted(xa.shape, p, seed, offset, bits)


def dropout_backward(grad, mask, out):
    ga = float_device_array(grad, "grad")
    if ga.shape != mask.shape:
        raise ValueError(f"grad: shape {ga.shape} does not match the mask's {mask.shape}")
    bits_ptr = 0
    if mask.bits is not None:
        if not is_device_array(mask.bits) or wrap(mask.bits).device != ga.device:
            raise ValueError("mask: its bits live on another device than grad")
        bits_ptr = wrap(mask.bits).ptr
    oa = out_device_array(out, ga) if out is not None else None
    src = _source(ga, oa)
    dx = out if out is not None else ga.empty(ga.shape)
    threshold, drop_all, scale = _checks.kernel_params(mask.p)
    _cuda.dropout_backward(
        _checks.DTYPE_CODES[ga.dtype], src.ptr, (oa or wrap(dx)).ptr, bits_ptr, ga.size, mask.seed,
        mask.offset, threshold, drop_all, scale, ga.device, ga.stream(),
    )
    return dx


def bits_to_bool(bits, n: int, shape):
    """Unpack device mask bits (little bit order) to a bool array of `shape` with the bits' library."""
    b = wrap(bits)
    if b.lib == "torch":
        import torch

        shifts = torch.arange(8, device=bits.device, dtype=torch.uint8)
        return ((bits.unsqueeze(1) >> shifts) & 1).reshape(-1)[:n].bool().reshape(shape)
    import cupy

    with cupy.cuda.Device(b.device):
        return cupy.unpackbits(bits, bitorder="little")[:n].astype(bool).reshape(shape)
