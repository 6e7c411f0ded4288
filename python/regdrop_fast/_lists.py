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


def host_arrays(params, grads, written_params: bool) -> list:
    """host_refusal, raising the refusal's error; else params as C-contiguous arrays."""
    refusal, ws = host_refusal(params, grads, written_params)
    if refusal:
        raise refusal_error(refusal, params, grads, host_call=True)
    return ws
