"""Lists of arrays (penalty_grad, penalty, prox_l1, decay): what a call's arrays must satisfy, and the
messages when they do not.

The rules, in the order they are checked (array by array, index ascending; the first failure is reported):
  params[i]  read-only (penalty_grad, penalty): any host array-like of a supported dtype (converted to a
             C-contiguous array when it is not one: "device" for a CUDA array, "convert", "dtype");
             written (prox_l1, decay): an ndarray ("type") of a supported dtype ("dtype"), aligned and
             writeable, in any layout (transposed, Fortran, sliced, negative strides: modified in place
             where it is) whose elements do not overlap each other ("self_overlap": a broadcast view);
  grads[i]   written, as above, with params[i]'s dtype ("pair_dtype") and shape ("pair_shape");
  lengths    len(grads) == len(params) ("length"), checked before any array (by _records, first);
  overlap    a written array shares memory with no other array of the call, except its own parameter when
             both are exactly the same memory (grads is params) ("overlap"), checked last; an array's
             memory is the span from its lowest to its highest element (conservative for strided arrays:
             two interleaved slices of one array count as overlapping), and a gradient that is not
             C-contiguous is never exactly its parameter's memory (the parameter is read C-contiguous).

For host arrays the native reader (csrc/bindings/array_list.h) applies these rules while it reads the
list, in C++, because a list of 1,000 small arrays must cost well under a microsecond per array; it
answers a refused call with a refusal tuple (rule, list name, i, j) that ``refusal_error`` turns into the
exception. ``host_refusal`` is the same rules in Python for the NumPy reference, which the tests hold to
the native reader's answers. CUDA arrays are checked by ``device_lists``. The overlap rule itself has one
implementation, the native ``write_conflict``, which all three use.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from . import _arrays, _dtypes, _native

Refusal = tuple  # (rule: str, list name: str, i: int, j: int)


def sequence(x, name: str):
    """One array or a sequence of arrays, as a list or tuple (a single array becomes [x])."""
    if isinstance(x, (list, tuple)):
        return x
    if isinstance(x, np.ndarray) or _arrays.is_device_array(x):
        return [x]
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name}: expected an array or a sequence of arrays, got {type(x).__name__}")
    try:
        return list(x)
    except TypeError:
        pass
    raise TypeError(f"{name}: expected an array or a sequence of arrays, got {type(x).__name__}")


def _names(n_params: int, n_grads: int) -> list[str]:
    return [f"params[{i}]" for i in range(n_params)] + [f"grads[{i}]" for i in range(n_grads)]


def refusal_error(refusal: Refusal, params, grads, host_call: bool = False) -> Exception:
    """The exception for a refused list call. In a host call a CUDA array is named first: the reader
    refuses it as an array it cannot read or write, which says less."""
    for seq_name, seq in (("params", params), ("grads", grads or ())) if host_call else ():
        for k, a in enumerate(seq):
            if _arrays.is_device_array(a):
                return ValueError(
                    f"{seq_name}[{k}]: is a CUDA array but params[0] is a host array; all arrays of a call "
                    "must be on one device"
                )
    rule, name, i, j = refusal
    arrays = params if name == "params" else grads
    label = f"{name}[{i}]"
    if rule == "length":
        return ValueError(f"grads: {i} arrays for {j} params; they must pair up")
    if rule == "sequence":
        return TypeError(f"{name}: expected a list or tuple of arrays")
    if rule == "device":  # not reached: a CUDA array is named above
        return ValueError(f"{label}: is a CUDA array but params[0] is a host array")
    if rule == "convert":
        return ValueError(f"{label}: cannot be converted to an array")
    if rule == "type":
        return TypeError(
            f"{label}: expected a numpy.ndarray (it is modified in place), got {type(arrays[i]).__name__}"
        )
    if rule == "dtype":
        a = arrays[i]
        return _dtypes.unsupported(label, a.dtype if hasattr(a, "dtype") else np.asarray(a).dtype)
    if rule in ("contiguous", "aligned", "writeable"):
        what = "C-contiguous" if rule == "contiguous" else rule
        return ValueError(f"{label}: must be {what} (it is modified in place)")
    if rule in ("pair_dtype", "pair_shape"):
        w, g = np.asarray(params[i]) if not hasattr(params[i], "dtype") else params[i], grads[i]
        field = "dtype" if rule == "pair_dtype" else "shape"
        return ValueError(
            f"grads[{i}]: {field} {_field(g, field)} does not match params[{i}]'s {_field(w, field)}"
        )
    if rule == "self_overlap":
        return _arrays.self_overlap_error(label)
    if rule == "overlap":
        names = _names(len(params), len(grads) if grads is not None else 0)
        return ValueError(
            f"{names[i]} overlaps {names[j]} in memory: an array modified in place may not share memory "
            "with any other array of the call (a gradient may only be its own parameter)"
        )
    return RuntimeError(f"regdrop_fast: internal error: unknown refusal {refusal!r}")


def _field(a, field: str):
    return tuple(a.shape) if field == "shape" else a.dtype


def pair_refusal(i: int, w, g) -> Refusal | None:
    """grads[i] must have params[i]'s dtype and shape (w, g: anything with .dtype and .shape)."""
    if g.dtype != w.dtype:
        return ("pair_dtype", "grads", i, -1)
    if tuple(g.shape) != tuple(w.shape):
        return ("pair_shape", "grads", i, -1)
    return None


def overlap_refusal(spans, pairs, written, n_params: int) -> Refusal | None:
    """The overlap rule on memory spans (lo, hi) of the call's arrays (params, then grads), by the native
    write_conflict."""
    nonempty = [k for k, (lo, hi) in enumerate(spans) if hi > lo]
    if len(nonempty) < 2:
        return None
    conflict = _native.core.write_conflict(
        [spans[k][0] for k in nonempty], [spans[k][1] for k in nonempty],
        [pairs[k] for k in nonempty], [written[k] for k in nonempty],
    )
    if conflict is None:
        return None
    w, other = nonempty[conflict[0]], nonempty[conflict[1]]
    return ("overlap", "params" if w < n_params else "grads", w, other)


def strided_refusal(params, grads, written_params: bool) -> Refusal | None:
    """The overlap rules on strided arrays as they are, given as layouts (pointer, shape, strides in
    elements, itemsize, contiguous: see _arrays): for regdrop_fast.torch, which hands the kernels a
    contiguous copy of each non-contiguous tensor it modifies and copies it back, so that the native reader
    sees the copies and the rules must see the originals.

    A written array may not overlap itself ("self_overlap"); then the overlap rule above, through the one
    overlap test (overlap_refusal), on each array's span from its lowest to its highest element
    (conservative for strided arrays). A read-only parameter that is not contiguous takes no part: it is
    read from a copy, as host_refusal converts it. A gradient is exactly its own parameter only when both
    layouts are identical (same elements in the same order), as for C-contiguous arrays.
    """
    grads = grads if grads is not None else []
    n = len(params)
    arrays = list(params) + list(grads)
    written = [written_params] * n + [True] * len(grads)
    for k, (layout, w) in enumerate(zip(arrays, written)):
        if w and _arrays.self_overlapping(layout[1], layout[2]):
            return ("self_overlap", "params" if k < n else "grads", k if k < n else k - n, -1)
    spans, pairs = [], []
    for k, (layout, w) in enumerate(zip(arrays, written)):
        copied = not w and not layout[4]
        spans.append((0, 0) if copied else _arrays.strided_span(*layout[:4]))
        same_as_param = k < n or tuple(layout[:4]) == tuple(params[k - n][:4])
        pairs.append(k % n if same_as_param else k)  # k >= n: an id no parameter has
    return overlap_refusal(spans, pairs, written, n)


def _host_written_refusal(a, name: str, i: int) -> Refusal | None:
    if not isinstance(a, np.ndarray):
        return ("type", name, i, -1)
    if a.dtype not in _dtypes.CODES:
        return ("dtype", name, i, -1)
    for flag, rule in (("aligned", "aligned"), ("writeable", "writeable")):
        if not getattr(a.flags, flag):
            return (rule, name, i, -1)
    if not a.flags.c_contiguous and _arrays.host_self_overlapping(a):
        return ("self_overlap", name, i, -1)
    return None


def _span(a: np.ndarray) -> tuple[int, int]:
    """From a's lowest to past its highest element (any strides)."""
    ptr = a.__array_interface__["data"][0]
    if a.size == 0:
        return ptr, ptr
    if a.flags.c_contiguous:  # the common case, without the sums below (a call lists every array)
        return ptr, ptr + a.nbytes
    low = sum((d - 1) * s for d, s in zip(a.shape, a.strides) if s < 0)
    high = sum((d - 1) * s for d, s in zip(a.shape, a.strides) if s > 0)
    return ptr + low, ptr + high + a.itemsize


def host_refusal(params, grads, written_params: bool) -> tuple[Refusal | None, list]:
    """The rules above on host arrays, in Python (the NumPy reference's check; the native reader applies
    the same ones). Returns (refusal or None, params as C-contiguous arrays)."""
    ws = []
    for i, p in enumerate(params):
        if written_params:
            r = _host_written_refusal(p, "params", i)
            if r:
                return r, []
            w = p
        else:
            if _arrays.is_device_array(p) or hasattr(p, "__cuda_array_interface__"):
                return ("device", "params", i, -1), []
            try:
                w = p if isinstance(p, np.ndarray) else np.asarray(p)
            except Exception:
                return ("convert", "params", i, -1), []
            if w.dtype not in _dtypes.CODES:
                return ("dtype", "params", i, -1), []
            if not (w.flags.c_contiguous and w.flags.aligned):
                w = np.array(w, order="C", copy=True)
        if grads is not None:
            r = _host_written_refusal(grads[i], "grads", i) or pair_refusal(i, w, grads[i])
            if r:
                return r, []
        ws.append(w)
    arrays = ws + (list(grads) if grads is not None else [])
    n = len(ws)
    written = [written_params] * n + [True] * (len(arrays) - n)
    # A gradient pairs with its parameter (the same memory allowed) only when C-contiguous, as the reader.
    pairs = list(range(n)) + [i if g.flags.c_contiguous else n + i for i, g in enumerate(arrays[n:])]
    r = overlap_refusal([_span(a) for a in arrays], pairs, written, n)
    if r:
        return r, []
    return None, ws


def device_lists(params, grads, written_params: bool):
    """The rules above on CUDA arrays (all of one library on one device). Returns (params, grads) as
    DeviceArrays; read-only parameters that are not C-contiguous become contiguous copies on the device.

    The common case (every array of params[0]'s type, on its device, of a supported dtype, contiguous) takes
    a short path per array (_arrays.wrap_like); anything else goes through the checks that name the error."""
    ref = _arrays.device_array(params[0], "params[0]")
    ref_type, device, codes = type(params[0]), ref.device, _dtypes.CODES
    wrap = _arrays.wrapper(params[0])
    ws, gs = [], []
    pairs = grads is not None
    for i, p in enumerate(params):
        w = wrap(p) if i and type(p) is ref_type else None
        if w is None or w.device != device or w.dtype not in codes:
            w = ref if i == 0 else _arrays.same_device(p, f"params[{i}]", ref, "params[0]")
        if not w.contiguous:
            if written_params:
                _arrays.written_device(w, f"params[{i}]")
            else:
                w = w.contiguous_copy()
        ws.append(w)
        if pairs:
            g0 = grads[i]
            g = wrap(g0) if type(g0) is ref_type else None
            if g is None or g.device != device or g.dtype not in codes or not g.contiguous:
                g = _arrays.written_device(_arrays.same_device(g0, f"grads[{i}]", ref, "params[0]"), f"grads[{i}]")
            r = pair_refusal(i, w, g)
            if r:
                raise refusal_error(r, params, grads)
            gs.append(g)
    arrays = ws + gs
    n = len(ws)
    spans = sorted([a.span() for a in arrays])
    if not all(b[0] >= a[1] for a, b in zip(spans, spans[1:])):  # the common case: disjoint
        spans = [a.span() for a in arrays]
        written = [written_params] * n + [True] * len(gs)
        # A gradient that is not C-contiguous is never exactly its parameter's memory (as for host arrays).
        pair_ids = list(range(n)) + ([i if g.contiguous else n + i for i, g in enumerate(gs)] if pairs else [])
        r = overlap_refusal(spans, pair_ids, written, n)
        if r:
            raise refusal_error(r, params, grads)
    return ws, (gs if pairs else None)


# ---------------------------------------------------------------------------------------------------------
# CUDA lists: validated once, then reused while the same arrays come again
#
# A list call over ResNet-50's 161 parameters and their gradients must cost the host well under 100 us, and
# device_lists costs ~2 us per array. So the kernel arguments of a list that passed device_lists are kept
# as a plan under the key of every field device_lists read, and a later call whose arrays have exactly those
# fields reuses them. The key is read on every call, in full: per array its type, data pointer, device,
# dtype, shape and strides (torch: also is_cuda), i.e. everything _arrays.wrap reads except the size and
# the C-contiguity flag, which both libraries compute from the shape and strides (equal shapes and strides,
# equal flags). So the plan is a memo of a pure function of the key: a pointer, shape, strides, dtype,
# device, library or type that changes (torch's set_, resize_, .data =, module.half() / .cuda() on the same
# Parameter objects; CuPy's shape assignment), a different aliasing between the arrays (which follows from
# pointers and sizes), another list length, or read-only params becoming written ones gives another key,
# validated in full. Refused calls are never planned: they take device_lists, which raises the error as
# before. Plans hold no array (a freed array's memory may come back at the same address in another array:
# its plan is then right for it too, the fields being equal). Lists the key cannot describe (another kind
# of object, a read that raises) and calls that copy a read-only parameter (not C-contiguous: the copy is
# per call) are validated in full every time. Reading the key costs ~0.15-0.3 us per CuPy-like array and
# ~0.85 us per torch tensor (2 loaded vCPUs, 2026-12-02; BENCHMARKS.md): in Python, because CPython 3.11's specialized
# attribute reads are as fast as the C API's generic ones (a C++ reader measured 1.6x slower on stand-in
# arrays with plain attributes, equal on torch tensors).

_PLANS: dict = {}  # (written, len(params), len(grads) or -1, key[0], key[-1]) -> DeviceListPlan
MAX_PLANS = 32  # plans kept (the oldest goes first): a training step has a few lists, each one plan


class DeviceListPlan:
    """What the list kernels take for a validated list of CUDA arrays (params, and grads when paired):
    per-array dtype codes, sizes and data pointers as the arrays the bindings read. Holds no array."""

    __slots__ = ("key", "codes", "sizes", "ptrs", "grad_ptrs", "count", "_slots")

    def __init__(self, key: list | None, ws: list, gs: list | None) -> None:
        self.key = key  # None: not reusable (made for one call)
        self.count = len(ws)
        self.codes = np.array([_dtypes.CODES[w.dtype] for w in ws], np.int32)
        self.sizes = np.array([w.size for w in ws], np.int64)
        self.ptrs = np.array([w.ptr for w in ws], np.uint64)
        self.grad_ptrs = None if gs is None else np.array([g.ptr for g in gs], np.uint64)
        self._slots: tuple[int, int] = (0, 0)  # (chunk, slots) of the last slots() asked

    def slots(self, chunk: int) -> int:
        """Scratch slots of a list call: one per chunk of `chunk` elements of every array
        (csrc/cuda/list_plan.h)."""
        if self._slots[0] != chunk:
            self._slots = (chunk, int((-(-self.sizes // chunk)).sum()))
        return self._slots[1]


class DeviceList(NamedTuple):
    """A list call's CUDA arrays as the backend takes them."""

    ref: _arrays.DeviceArray  # params[0] (or its copy): the library, device and stream of the call
    plan: DeviceListPlan
    held: tuple  # copies made for this call (read-only params that are not C-contiguous), kept to the launch
    # The validated arrays (DeviceArrays) when the call has one that is not C-contiguous (the backend walks it
    # or reorders it: _backend_cuda) or when the caller asked for them; () when every array is C-contiguous
    # and the plan alone serves.
    ws: tuple = ()
    gs: tuple = ()

    @property
    def contiguous(self) -> bool:
        """Whether the plan alone describes the call (every array C-contiguous)."""
        return not self.ws


def _cupy_key(arrays) -> list:
    return [(type(a), a.data.ptr, a.device.id, a.dtype, a.shape, a.strides) for a in arrays]


def _torch_key(arrays) -> list:
    return [(type(a), a.data_ptr(), a.is_cuda, a.get_device(), a.dtype, a.shape, a.stride()) for a in arrays]


def _agrees(k, d: _arrays.DeviceArray, torch: bool, ref_type) -> bool:
    """Whether key entry k describes the validated array d exactly, so that d's validation holds for every
    array with key entry k (the key is read before device_lists reads the arrays again; another thread could
    change them in between). A CuPy-like array of another type than params[0]'s is not planned: device_lists
    asks is_device_array about it, which the key does not cover."""
    if k[0] is not type(d.obj) or k[1] != d.ptr:
        return False
    if torch:
        return (k[2] is True and k[3] == d.device and _arrays.numpy_dtype_of_torch_dtype(k[4]) == d.dtype
                and tuple(k[5]) == d.shape and tuple(k[6]) == d.strides)
    item = d.dtype.itemsize
    return (k[0] is ref_type and k[2] == d.device and k[3] == d.dtype and tuple(k[4]) == d.shape
            and tuple(k[5]) == tuple(s * item for s in d.strides))


def device_list(params, grads, written_params: bool, arrays_wanted: bool = False) -> DeviceList:
    """device_lists, planned: the kernel arguments of params (and grads) from the plan of a list with the
    same key when there is one, else validated by device_lists (which raises the error of a refused call)
    and planned for the next call. Only lists of C-contiguous arrays are planned: the others carry their
    arrays (DeviceList.ws, .gs), as do all with arrays_wanted (group_l1's shapes)."""
    if arrays_wanted:
        ws, gs = device_lists(params, grads, written_params)
        return DeviceList(ws[0], DeviceListPlan(None, ws, gs), (), tuple(ws), tuple(gs or ()))
    torch = _arrays.is_torch_type(type(params[0]))
    key: list | None
    try:
        key = (_torch_key if torch else _cupy_key)(params)
        if grads is not None:
            key += (_torch_key if torch else _cupy_key)(grads)
        slot: Any = (written_params, len(params), -1 if grads is None else len(grads), key[0], key[-1])
        plan = _PLANS.get(slot)
    except Exception:  # an object the key cannot describe (or an unhashable field): validated in full
        key = slot = plan = None
    if plan is not None and plan.key == key:
        _native.cuda_kernels("params[0]")  # device_lists' first check: the package may have lost its kernels
        return DeviceList(_arrays.wrapper(params[0])(params[0]), plan, ())
    ws, gs = device_lists(params, grads, written_params)
    arrays = ws if gs is None else ws + gs
    held = tuple(w for w, p in zip(ws, params) if w.obj is not p)
    ref_type = type(params[0])
    contiguous = all(a.contiguous for a in arrays)
    reusable = (key is not None and not held and contiguous and len(key) == len(arrays)
                and all(_agrees(k, d, torch, ref_type) for k, d in zip(key, arrays)))
    plan = DeviceListPlan(key if reusable else None, ws, gs)
    if reusable:
        if len(_PLANS) >= MAX_PLANS:
            try:
                del _PLANS[next(iter(_PLANS))]
            except (KeyError, RuntimeError, StopIteration):  # another thread changed the plans meanwhile
                pass
        _PLANS[slot] = plan
    if contiguous:
        return DeviceList(ws[0], plan, held)
    return DeviceList(ws[0], plan, held, tuple(ws), tuple(gs or ()))


def host_arrays(params, grads, written_params: bool) -> list:
    """host_refusal, raising the refusal's error; else params as C-contiguous arrays."""
    refusal, ws = host_refusal(params, grads, written_params)
    if refusal:
        raise refusal_error(refusal, params, grads, host_call=True)
    return ws
