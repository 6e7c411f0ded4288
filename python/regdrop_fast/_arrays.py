"""What an array is and where it lives: the one place that tells host arrays (NumPy, and torch CPU tensors
as NumPy views of their memory) from CUDA arrays (PyTorch CUDA tensors, CuPy arrays), checks a single
array's dtype and layout, and wraps CUDA arrays into the pointer/shape/dtype record the CUDA backend
uses (DeviceArray), with the means to allocate outputs through the same library on the same device.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _dtypes, _native

# ---------------------------------------------------------------------------------------------------------
# kinds


def is_device_array(a) -> bool:
    """Whether regdrop_fast routes ``a`` to the CUDA backend: a PyTorch CUDA tensor or a CuPy array.

    Anything else (NumPy arrays, array-likes, CPU tensors) is handled as a host array. Only the type is
    looked at: nothing is copied, no device is touched, and no CUDA build is needed.

    Parameters
    ----------
    a : object
        Any object.

    Returns
    -------
    bool
        True for a PyTorch tensor whose ``is_cuda`` is true and for a CuPy array (an object of a ``cupy``
        type with ``__cuda_array_interface__``); False for everything else.

    Examples
    --------
    >>> rf.cuda.is_device_array(np.zeros(3, np.float32))
    False
    >>> rf.cuda.is_device_array([1.0, 2.0])
    False
    """
    mod = type(a).__module__
    if mod.startswith("torch"):
        return getattr(a, "is_cuda", False)
    return mod.startswith("cupy") and hasattr(a, "__cuda_array_interface__")


def _is_torch_tensor(a) -> bool:
    return type(a).__module__.startswith("torch") and hasattr(a, "numpy")


def host_view(t) -> np.ndarray:
    """A NumPy view of a CPU tensor's memory (same strides, no copy); bfloat16 as ml_dtypes.bfloat16."""
    t = t.detach()
    if str(t.dtype) == "torch.bfloat16":  # NumPy has no bfloat16: reinterpret the same 16-bit words
        import torch

        return t.view(torch.int16).numpy().view(_dtypes.BFLOAT16)
    return t.numpy()


# ---------------------------------------------------------------------------------------------------------
# host arrays


def host_array(x, name: str) -> np.ndarray:
    """x as an ndarray of a supported dtype (no copy when it already is one or is a CPU tensor)."""
    if isinstance(x, np.ndarray):
        arr = x
    elif _is_torch_tensor(x) and getattr(x, "device", None) is not None and x.device.type == "cpu":
        try:
            arr = host_view(x)
        except (TypeError, RuntimeError) as exc:  # dtypes NumPy lacks, sparse layouts
            raise TypeError(f"{name}: cannot be viewed as a NumPy array ({exc})") from None
    else:
        try:
            arr = np.asarray(x)
        except Exception as exc:  # ragged lists and the like
            raise ValueError(f"{name}: cannot be converted to an array ({exc})") from None
    if arr.dtype not in _dtypes.CODES:
        raise _dtypes.unsupported(name, arr.dtype)
    return arr


def _out_dtype(dtype, like_dtype) -> None:
    """out's dtype, as x's is checked: one the kernels do not take is a TypeError (the same message as for
    x); a supported one other than the input's is a ValueError."""
    if dtype != like_dtype:
        if dtype not in _dtypes.CODES:
            raise _dtypes.unsupported("out", dtype)
        raise ValueError(f"out: dtype {dtype} does not match the input's {like_dtype}")


# Axes of a strided layout the kernels iterate over (csrc/common/strided_layout.h kMaxLayoutDims); arrays
# with more go through C order.
MAX_LAYOUT_DIMS = 32


def layout_strides(shape, strides) -> tuple[int, ...] | None:
    """strides (in elements) when an array of this shape is dense with them (its elements fill its memory
    span once, in some axis order, strides non-negative) and has at most MAX_LAYOUT_DIMS axes: the layout the
    kernels read and write in memory order. None otherwise."""
    strides = tuple(strides)
    if len(shape) > MAX_LAYOUT_DIMS or min(strides, default=0) < 0:
        return None
    if 0 in shape:
        return strides
    # Dense means: the axes of length > 1, in order of stride, each step over exactly the elements of the
    # smaller ones (stride 1, then the product of the lengths before). One sort and one pass: this runs on
    # every call with a non-C-contiguous array (a 1,024-element channels_last call spent ~40% of its time in
    # the general test, a non-overlap check and a span sum).
    expect = 1
    for s, d in sorted((s, d) for d, s in zip(shape, strides) if d > 1):
        if s != expect:
            return None
        expect *= d
    return strides


def dense_strides(a: np.ndarray) -> tuple[int, ...] | None:
    """A host array's strides in elements when it is dense (layout_strides) and aligned but not
    C-contiguous; None otherwise (C-contiguous, or not dense)."""
    flags = a.flags
    if flags.c_contiguous or not flags.aligned:
        return None
    size = a.itemsize
    strides = []
    for s in a.strides:
        if s % size:
            return None
        strides.append(s // size)
    return layout_strides(a.shape, strides)


def is_dense(a: np.ndarray) -> bool:
    """Whether a host array can be read or written by the kernels as it is (C-contiguous or dense_strides)."""
    return a.flags.c_contiguous or dense_strides(a) is not None


# Fresh outputs of at least this many bytes get huge-page advice before their first write (NumPy's own
# threshold for the advice it gives its allocations).
HUGE_PAGE_ADVICE_BYTES = 1 << 22


def advise_fresh_output(a: np.ndarray) -> None:
    """Before the first write into a: huge pages for its memory when it is a large new output (one page
    fault per 2 MiB instead of per 4 KiB; csrc/cpu/fresh_memory.h). For memory the library allocated with
    an allocator that does not advise it (torch's CPU allocator); never for a caller's `out`. a: a
    writeable C-contiguous host array."""
    if a.nbytes >= HUGE_PAGE_ADVICE_BYTES:
        _native.core.advise_huge_pages(a)


def new_like(a: np.ndarray) -> np.ndarray:
    """A new array for the result of an element-wise op on a: in a's layout, as torch's preserve_format
    and NumPy's order="K" (np.empty_like: a's strides when a is dense, its axis order otherwise), C order
    beyond MAX_LAYOUT_DIMS axes."""
    if a.flags.c_contiguous or a.ndim > MAX_LAYOUT_DIMS:
        return np.empty(a.shape, a.dtype)
    return np.empty_like(a)


_NOT_DENSE = ("out: must be dense: C-contiguous, or with its axes in another order (as channels_last), with no "
              "gaps or overlap")


def host_out(out, like: np.ndarray) -> np.ndarray:
    """An `out=` argument: a writeable dense ndarray (C-contiguous, or another axis order: is_dense) of
    like's shape and dtype."""
    if not isinstance(out, np.ndarray):
        if is_device_array(out):
            raise ValueError("out: is on a CUDA device but the input is a host array")
        raise TypeError(f"out: expected a numpy.ndarray, got {type(out).__name__}")
    _out_dtype(out.dtype, like.dtype)
    if out.shape != like.shape:
        raise ValueError(f"out: shape {out.shape} does not match the input's {like.shape}")
    if not is_dense(out):
        raise ValueError(_NOT_DENSE)
    if not out.flags.writeable:
        raise ValueError("out: must be writeable")
    return out


def host_self_overlapping(a: np.ndarray) -> bool:
    """Whether two elements of host array a may share memory (self_overlapping on its element strides,
    whose sign does not matter); for an aligned array every stride is a whole number of elements."""
    return self_overlapping(a.shape, [abs(s) // a.itemsize for s in a.strides])


def written_host(a, name: str) -> np.ndarray:
    """An array modified in place: an ndarray of a supported dtype, aligned, writeable, in any layout whose
    elements do not overlap each other (a broadcast view is refused)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray (it is modified in place), got {type(a).__name__}")
    if a.dtype not in _dtypes.CODES:
        raise _dtypes.unsupported(name, a.dtype)
    for flag, what in (("aligned", "aligned"), ("writeable", "writeable")):
        if not getattr(a.flags, flag):
            raise ValueError(f"{name}: must be {what} (it is modified in place)")
    if not a.flags.c_contiguous and host_self_overlapping(a):
        raise self_overlap_error(name)
    return a


def memory_order(a: np.ndarray) -> tuple[np.ndarray, tuple[int, ...], tuple[bool, ...]] | None:
    """A view of `a` that is C-contiguous when `a` is dense in some memory order (transposed, Fortran,
    negative strides), with no copy: (view, perm, flipped), view = a flipped on the axes marked in
    `flipped` (those of negative stride) and then transposed to `perm` (axes by decreasing |stride|, ties
    and size-1 axes in axis order). None when `a` is not dense."""
    if a.flags.c_contiguous:
        return a, tuple(range(a.ndim)), (False,) * a.ndim
    flipped = tuple(s < 0 and d > 1 for d, s in zip(a.shape, a.strides))
    v = a[tuple(slice(None, None, -1) if f else slice(None) for f in flipped)]
    perm = tuple(sorted(range(a.ndim), key=lambda k: (-abs(a.strides[k]) if a.shape[k] > 1 else 0, k)))
    v = np.transpose(v, perm)
    return (v, perm, flipped) if v.flags.c_contiguous else None


def mask_bits(bits, n: int, name: str = "bits"):
    """A Mask's bits for n elements: None, or ceil(n / 8) bytes as a C-contiguous 1-d uint8 array (a NumPy
    array, or a CUDA array for a CUDA call's mask). Checked when a Mask is made or a field of it assigned,
    and again where a kernel or to_bool reads them (bits too short for n elements would be read past their
    end)."""
    if bits is None:
        return None
    if isinstance(bits, np.ndarray):
        dtype, shape, contiguous = bits.dtype, bits.shape, bits.flags.c_contiguous
    elif is_device_array(bits):
        d = wrap(bits)
        dtype, shape, contiguous = d.dtype, d.shape, d.contiguous
    else:
        raise TypeError(
            f"{name}: expected a numpy.ndarray or None (or a CUDA array of a CUDA call's mask), "
            f"got {type(bits).__name__}"
        )
    if dtype != np.uint8:
        raise TypeError(f"{name}: expected dtype uint8, got {dtype}")
    nbytes = (n + 7) // 8
    if len(shape) != 1 or shape[0] != nbytes or not contiguous:
        raise ValueError(
            f"{name}: expected a contiguous 1-d array of {nbytes} bytes for {n} elements, got shape {shape}"
            + ("" if contiguous else " (not contiguous)")
        )
    return bits


def variant_layout(shape_in: tuple, strides_in: tuple, dims: tuple, limit: int) -> tuple[list[int], list[int], list[int]]:
    """(shape, memory strides, reduced strides) in elements, of the dense output the kernel writes (and
    reads its source in; strides_in in elements): the reduced strides are the C-order strides of the
    reduced shape, 0 on a broadcast axis. Beyond the kernel's axis limit the output is C-contiguous
    (new_like; the caller sees to out=), and neighbouring axes of one kind (broadcast or not) are merged
    first, as the kernel would. Used by both backends."""
    shape = list(shape_in)
    rstrides = [0] * len(shape)
    step = 1
    for d in range(len(shape) - 1, -1, -1):
        if d not in dims:
            rstrides[d] = step
            step *= shape[d]
    strides = list(strides_in)
    if len(shape) > limit:
        merged: list[list[int]] = []
        for n, r in zip(shape, rstrides):
            if n == 1:
                continue
            if merged and (merged[-1][1] == 0) == (r == 0):
                merged[-1][0] *= n
                merged[-1][1] = r
            else:
                merged.append([n, r])
        shape = [n for n, _ in merged]
        rstrides = [r for _, r in merged]
        strides = [0] * len(shape)
        step = 1
        for d in range(len(shape) - 1, -1, -1):
            strides[d] = step
            step *= shape[d]
    return shape, strides, rstrides


# ---------------------------------------------------------------------------------------------------------
# strided arrays as they are (regdrop_fast.torch's tensors before any contiguous copy)
#
# A layout is (data pointer, shape, strides in elements, itemsize); strides are >= 0 (torch has no
# negative strides).


def strided_span(ptr: int, shape, strides, itemsize: int) -> tuple[int, int]:
    """The bytes [lo, hi) from an array's lowest to its highest element (empty for no elements)."""
    if any(d == 0 for d in shape):
        return ptr, ptr
    last = sum((d - 1) * s for d, s in zip(shape, strides))
    return ptr, ptr + (last + 1) * itemsize


def self_overlapping(shape, strides) -> bool:
    """Whether two elements may share memory (stride 0 of an expanded tensor, or strides that interleave):
    conservative, as torch's own check is: the dimensions sorted by stride must each step past all the
    elements of the smaller ones."""
    if any(d == 0 for d in shape):
        return False
    reach = 0  # the largest element offset reachable through the dimensions seen so far
    for s, d in sorted((s, d) for d, s in zip(shape, strides) if d > 1):
        if s <= reach:
            return True
        reach += (d - 1) * s
    return False


def self_overlap_error(name: str) -> ValueError:
    """The one message for a written array whose elements overlap each other."""
    return ValueError(
        f"{name}: its elements overlap each other in memory (an expanded or stride-0 tensor); an array "
        "modified in place may not overlap itself"
    )


def written_strided(layout, name: str) -> None:
    """A single strided array modified in place (through a contiguous copy that is copied back): its
    elements must not overlap each other."""
    if self_overlapping(layout[1], layout[2]):
        raise self_overlap_error(name)


# ---------------------------------------------------------------------------------------------------------
# CUDA arrays


class DeviceArray:
    """What the kernels need of a CUDA array, and how to make outputs with the same library."""

    __slots__ = ("obj", "lib", "ptr", "shape", "dtype", "device", "contiguous", "size", "strides")

    def __init__(self, obj, lib, ptr, shape, dtype, device, contiguous, strides):
        self.obj, self.lib, self.ptr = obj, lib, ptr
        self.shape, self.dtype, self.device, self.contiguous = tuple(shape), dtype, device, contiguous
        self.strides = tuple(strides)  # in elements
        size = 1
        for d in self.shape:
            size *= d
        self.size = size

    def layout(self) -> tuple[int, ...] | None:
        """The element strides a kernel iterates over: None when C-contiguous, else the strides of a dense
        layout (layout_strides; None also when not dense)."""
        return None if self.contiguous else layout_strides(self.shape, self.strides)

    def same_layout(self, other: DeviceArray) -> bool:
        """Whether both (one shape) place every element at the same offset (size-1 axes aside)."""
        return all(d == 1 or s == t for d, s, t in zip(self.shape, self.strides, other.strides))

    def new_like(self) -> DeviceArray:
        """A new array for an element-wise result on this one, in its layout (as new_like for host arrays:
        torch's preserve_format, CuPy's order="K"), C order beyond MAX_LAYOUT_DIMS axes."""
        if self.contiguous or len(self.shape) > MAX_LAYOUT_DIMS:
            return wrap(self.empty(self.shape))
        if self.lib == "torch":
            import torch

            return wrap(torch.empty_like(self.obj, memory_format=torch.preserve_format))
        import cupy

        with cupy.cuda.Device(self.device):
            return wrap(cupy.empty_like(self.obj))

    def copy_in_layout_of(self, like: DeviceArray) -> DeviceArray:
        """A new array with like's layout (dense) holding this array's values."""
        if self.lib == "torch":
            import torch

            return wrap(torch.empty_like(like.obj, memory_format=torch.preserve_format).copy_(self.obj))
        import cupy

        with cupy.cuda.Device(self.device):
            c = cupy.empty_like(like.obj)
            c[...] = self.obj
            return wrap(c)

    def span(self) -> tuple[int, int]:
        """The bytes [lo, hi) from this array's lowest to past its highest element (strides of either sign)."""
        if self.size == 0:
            return self.ptr, self.ptr
        low = sum((d - 1) * s for d, s in zip(self.shape, self.strides) if s < 0)
        high = sum((d - 1) * s for d, s in zip(self.shape, self.strides) if s > 0)
        return self.ptr + low * self.dtype.itemsize, self.ptr + (high + 1) * self.dtype.itemsize

    def reordered_copy(self, perm, flipped):
        """A C-contiguous copy of this array flipped on the axes marked in `flipped`, then transposed to perm
        (device_memory_order's view of another array of this shape), in this array's library."""
        if self.lib == "torch":
            dims = [k for k, f in enumerate(flipped) if f]
            t = self.obj.detach()
            return (t.flip(dims) if dims else t).permute(perm).contiguous()
        import cupy

        with cupy.cuda.Device(self.device):
            v = self.obj[tuple(slice(None, None, -1) if f else slice(None) for f in flipped)]
            return cupy.ascontiguousarray(cupy.transpose(v, perm))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def overlaps(self, other: DeviceArray) -> bool:
        """Whether the memory spans of two arrays (from their first element, size * itemsize) intersect."""
        if not (self.nbytes and other.nbytes):
            return False
        return self.ptr < other.ptr + other.nbytes and other.ptr < self.ptr + self.nbytes

    def empty(self, shape, dtype=None):
        """A new C-contiguous array of this library on this device (dtype: a NumPy dtype; default ours)."""
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        if self.lib == "torch":
            import torch

            return torch.empty(shape, dtype=_torch_dtype(dtype), device=self.obj.device)
        import cupy

        with cupy.cuda.Device(self.device):
            return cupy.empty(shape, dtype=dtype)

    def list_scratch(self, slots: int, dtype) -> tuple[Any, int, Any, int, int]:
        """What a list call allocates, in one device context: (slots: a 1-d array of `slots` elements, its
        pointer, out: a 0-d array, its pointer, the current stream), both of NumPy dtype `dtype`."""
        if self.lib == "torch":
            import torch

            td, dev = _torch_dtype(dtype), self.obj.device
            buf, out = torch.empty((slots,), dtype=td, device=dev), torch.empty((), dtype=td, device=dev)
            return buf, buf.data_ptr(), out, out.data_ptr(), torch.cuda.current_stream(dev).cuda_stream
        import cupy

        with cupy.cuda.Device(self.device):
            buf, out = cupy.empty((slots,), dtype=dtype), cupy.empty((), dtype=dtype)
            return buf, buf.data.ptr, out, out.data.ptr, cupy.cuda.get_current_stream().ptr

    def contiguous_copy(self) -> DeviceArray:
        """This array when C-contiguous, else a C-contiguous copy."""
        if self.contiguous:
            return self
        if self.lib == "torch":
            return wrap(self.obj.contiguous())
        import cupy

        with cupy.cuda.Device(self.device):
            return wrap(cupy.ascontiguousarray(self.obj))

    def fresh_copy(self) -> DeviceArray:
        """A new C-contiguous copy (never this array's own memory, unlike contiguous_copy)."""
        if self.lib == "torch":
            import torch

            return wrap(self.obj.clone(memory_format=torch.contiguous_format))
        import cupy

        with cupy.cuda.Device(self.device):
            return wrap(cupy.array(self.obj, order="C", copy=True))

    def permuted_copy(self, order):
        """A C-contiguous copy with the axes in `order`, in this array's library."""
        if self.lib == "torch":
            return self.obj.detach().permute(order).contiguous()
        import cupy

        with cupy.cuda.Device(self.device):
            return cupy.ascontiguousarray(cupy.transpose(self.obj, order))

    def assign_permuted(self, t, order) -> None:
        """self[...] = t, where t holds this array's axes in `order`."""
        inverse = tuple(int(k) for k in np.argsort(order))
        if self.lib == "torch":
            import torch

            with torch.no_grad():  # a parameter that requires grad is written like any other array
                self.obj.copy_(t.permute(inverse))
            return
        import cupy

        with cupy.cuda.Device(self.device):
            self.obj[...] = cupy.transpose(t, inverse)

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
    return numpy_dtype_of_torch_dtype(t.dtype)


def numpy_dtype_of_torch_dtype(torch_dtype):
    """The NumPy dtype of a torch dtype (None when NumPy has none)."""
    try:
        return _TORCH_TO_NUMPY[torch_dtype]
    except KeyError:
        pass
    name = str(torch_dtype).removeprefix("torch.")
    if name == "bfloat16":
        dtype = _dtypes.BFLOAT16
    else:
        try:
            dtype = np.dtype(name)
        except TypeError:
            dtype = None
    _TORCH_TO_NUMPY[torch_dtype] = dtype
    return dtype


def _wrap_cupy(a) -> DeviceArray:
    d = DeviceArray.__new__(DeviceArray)
    d.obj, d.lib, d.ptr, d.shape, d.dtype = a, "cupy", a.data.ptr, a.shape, a.dtype
    d.device, d.contiguous, d.size = a.device.id, a.flags.c_contiguous, a.size
    d.strides = tuple(s // a.dtype.itemsize for s in a.strides)
    return d


def _wrap_torch(a) -> DeviceArray:
    d = DeviceArray.__new__(DeviceArray)
    d.obj, d.lib, d.ptr, d.shape, d.dtype = a, "torch", a.data_ptr(), tuple(a.shape), _numpy_dtype_of_torch(a)
    d.device, d.contiguous, d.size = a.get_device(), a.is_contiguous(), a.numel()
    d.strides = tuple(a.stride())
    return d


def is_torch_type(t: type) -> bool:
    """Whether objects of type t are handled as torch tensors (rather than CuPy arrays) by the CUDA path."""
    return t.__module__.startswith("torch")


def wrapper(a):
    """The wrap function for arrays of a's library (wrap without the test of the library, for lists)."""
    return _wrap_torch if is_torch_type(type(a)) else _wrap_cupy


def wrap(a) -> DeviceArray:
    if type(a).__module__.startswith("torch"):
        dtype = _numpy_dtype_of_torch(a)
        return DeviceArray(a, "torch", a.data_ptr(), a.shape, dtype, a.get_device(), a.is_contiguous(), a.stride())
    return DeviceArray(a, "cupy", a.data.ptr, a.shape, a.dtype, a.device.id, a.flags.c_contiguous,
                       (s // a.dtype.itemsize for s in a.strides))


def device_array(a, name: str) -> DeviceArray:
    """A CUDA array of a supported dtype (ValueError when the package has no CUDA kernels)."""
    _native.cuda_kernels(name)
    arr = wrap(a)
    if arr.dtype not in _dtypes.CODES:
        raise _dtypes.unsupported(name, arr.dtype)
    return arr


def same_device(a, name: str, ref: DeviceArray, ref_name: str) -> DeviceArray:
    """a as a DeviceArray of ref's library on ref's device (ValueError) with a supported dtype (TypeError)."""
    if not is_device_array(a):
        raise ValueError(
            f"{name}: is a host array but {ref_name} is a CUDA array; all arrays of a call must be on one device"
        )
    d = wrap(a)
    if d.lib != ref.lib:
        raise ValueError(
            f"{name}: is a {d.lib} array but {ref_name} is a {ref.lib} array; all arrays of a call must come "
            "from one library"
        )
    if d.device != ref.device:
        raise ValueError(
            f"{name}: is on CUDA device {d.device} but {ref_name} is on device {ref.device}; all arrays of a "
            "call must be on one device"
        )
    if d.dtype not in _dtypes.CODES:
        raise _dtypes.unsupported(name, d.dtype)
    return d


def device_out(out, like: DeviceArray) -> DeviceArray:
    if not is_device_array(out):
        raise ValueError("out: must be on the same CUDA device as the input")
    o = wrap(out)
    if o.lib != like.lib:
        raise ValueError(f"out: a {o.lib} array cannot receive the result for a {like.lib} input")
    if o.device != like.device:
        raise ValueError(f"out: on device {o.device}, the input is on device {like.device}")
    _out_dtype(o.dtype, like.dtype)
    if o.shape != like.shape:
        raise ValueError(f"out: shape {o.shape} does not match the input's {like.shape}")
    if not o.contiguous and o.layout() is None:
        raise ValueError(_NOT_DENSE)
    return o


def written_device(d: DeviceArray, name: str) -> DeviceArray:
    """A CUDA array modified in place: any layout whose elements do not overlap each other (as host arrays)."""
    if not d.contiguous and self_overlapping(d.shape, [abs(s) for s in d.strides]):
        raise self_overlap_error(name)
    return d


# ---------------------------------------------------------------------------------------------------------
# CUDA arrays modified in place in any layout: one dense block in memory order, or a walk of the kernels


def device_memory_order(d: DeviceArray) -> tuple[tuple[int, ...], tuple[bool, ...], int] | None:
    """(perm, flipped, low) when d is dense in some memory order (memory_order's convention: flipped on the
    axes of negative stride, then transposed to perm, it is C-contiguous), low the element offset of its
    lowest element from d.ptr; None when it is not dense."""
    shape, strides = d.shape, d.strides
    flipped = tuple(s < 0 and n > 1 for n, s in zip(shape, strides))
    perm = tuple(sorted(range(len(shape)), key=lambda k: (-abs(strides[k]) if shape[k] > 1 else 0, k)))
    expected = 1
    for k in reversed(perm):
        if shape[k] > 1 and abs(strides[k]) != expected:
            return None
        expected *= shape[k]
    low = sum((n - 1) * s for n, s in zip(shape, strides) if s < 0 and n > 1)
    return perm, flipped, low


def walk_layout(d: DeviceArray) -> tuple[list[int], list[int]]:
    """d's layout for the kernels' walk (csrc/cuda/entry_points.h WalkLayout): C order kept, size-1 axes dropped,
    an axis merged into the one before it when that one steps exactly over it (ValueError beyond
    MAX_WALK_DIMS axes)."""
    shape: list[int] = []
    strides: list[int] = []
    for n, s in zip(d.shape, d.strides):
        if n == 1:
            continue
        if shape and strides[-1] == s * n:
            shape[-1] *= n
            strides[-1] = s
            continue
        shape.append(n)
        strides.append(s)
    most = _native.cuda_kernels("w").MAX_WALK_DIMS
    if len(shape) > most:
        raise ValueError(f"a CUDA array modified in place with more than {most} axes that do not merge: copy it "
                         "to a contiguous array")
    return shape, strides
