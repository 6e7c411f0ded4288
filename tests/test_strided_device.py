"""CUDA arrays modified in place in any layout, as host arrays are (tests/test_strided.py): transposed, Fortran
order, sliced and reversed (negative strides: CuPy) arrays for every in-place op (penalty_grad's grads, prox_l1,
decay, max_norm, norm_constraint, unit_norm, non_neg, prox_group_l1, and penalty_grad's group_l1 term) give
the same results as the op on a C-contiguous copy, bit for bit, and leave the memory around a view alone. A
dense layout runs in memory order with no copy of the written array; any other is walked by the kernels
(list ops) or, for the slice ops, through the permuted copy the host path also takes.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import BACKENDS, assert_close, random_array, same_bits, scalar

import regdrop_fast as rdf

DEVICE = [b for b in BACKENDS if b != "cpu"]


def layouts(backend, rng, dtype):
    """(name, base (a device array), view of it (not C-contiguous), host copy of the base) for each layout."""
    out = []
    torch_like = backend.library == "torch"
    specs = [
        ("transposed", (30, 41), lambda b: _t(backend, b)),
        ("fortran", (5, 6, 7), lambda b: _fortran(backend, b)),
        ("sliced", (40, 50), lambda b: b[3:37:2, 5:45]),
        ("column", (40, 50), lambda b: b[:, 7]),
        ("sliced-transposed", (50, 40), lambda b: _t(backend, b[::3, 2:38])),
    ]
    if not torch_like:
        specs += [("reversed", (30, 41), lambda b: b[::-1]),
                  ("reversed-sliced", (40, 50), lambda b: b[::-2, ::-3])]
    for name, shape, view_of in specs:
        host = random_array(rng, shape, dtype)
        base = backend.asarray(host)
        out.append((name, base, view_of(base), host))
    return out


def _t(backend, a):
    if backend.name == "cuda-emulated":
        import fake_cupy

        return fake_cupy.ndarray(a.host.T, a.device.id)
    return a.t() if backend.library == "torch" else a.T


def _fortran(backend, a):
    """A 3-d array in Fortran order: the reversed axes of a C-contiguous one."""
    if backend.name == "cuda-emulated":
        import fake_cupy

        return fake_cupy.ndarray(a.host.T, a.device.id)
    return a.permute(2, 1, 0) if backend.library == "torch" else a.T


def host_of(backend, a) -> np.ndarray:
    return backend.to_numpy(a)


def check_in_place(backend, base, view, op, *, compare=None):
    """op(view) on the device and op(copy) on a host C-contiguous copy of the view: same results, same bits in
    the view, the rest of the base untouched."""
    before = host_of(backend, base)
    expected_view = np.ascontiguousarray(host_of(backend, view))
    r_host = op(expected_view)
    r_dev = op(view)
    assert (compare or (lambda a, b: scalar(a) == b))(r_dev, r_host)
    assert same_bits(np.ascontiguousarray(host_of(backend, view)), expected_view)
    # every element of the base outside the view: as it was
    probe = backend.asarray(np.zeros(before.shape, np.float32))
    _view_like(backend, probe, base, view)
    marker = host_of(backend, probe) != 0
    after = host_of(backend, base)
    assert same_bits(after[~marker], before[~marker])


def _view_like(backend, probe, base, view):
    """Marks in probe (same shape as base, float32 zeros) the elements `view` covers, by writing 1 through the view
    taken at the same offsets and strides."""
    if backend.name == "cuda-emulated":
        b, v, p = base.host, view.host, probe.host
        offset = (v.__array_interface__["data"][0] - b.__array_interface__["data"][0]) // b.itemsize
        pv = np.lib.stride_tricks.as_strided(p.reshape(-1)[offset:] if offset >= 0 else p.reshape(-1), v.shape,
                                             tuple(s // b.itemsize * p.itemsize for s in v.strides))
        pv[...] = 1
        return
    if backend.library == "torch":
        offset = view.storage_offset() - base.storage_offset()
        probe.as_strided(view.shape, view.stride(), probe.storage_offset() + offset).fill_(1)
        return
    import cupy

    offset = (view.data.ptr - base.data.ptr) // base.itemsize
    flat = probe.reshape(-1)
    strides = tuple(s // base.itemsize * 4 for s in view.strides)
    cupy.lib.stride_tricks.as_strided(flat[offset:], view.shape, strides)[...] = 1


@pytest.mark.parametrize("backend", DEVICE, indirect=True)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_list_ops_in_any_layout(backend, dtype):
    backend.require(dtype)
    rng = np.random.default_rng(1)
    for name, base, view, _ in layouts(backend, rng, dtype):
        check_in_place(backend, base, view, lambda a: rdf.prox_l1(a, 0.5, as_int=True))
        check_in_place(backend, base, view, lambda a: rdf.decay(a, 0.25), compare=lambda a, b: a is b is None)
        check_in_place(backend, base, view, lambda a: rdf.non_neg(a, as_int=True))
    # several layouts in one call, with a C-contiguous array among them
    items = layouts(backend, rng, dtype)
    views = [v for _, _, v, _ in items] + [backend.asarray(random_array(rng, (77,), dtype))]
    copies = [np.ascontiguousarray(host_of(backend, v)) for v in views]
    assert rdf.prox_l1(views, 0.3, as_int=True) == rdf.prox_l1(copies, 0.3)
    rdf.decay(views, [0.1 * (k % 3) for k in range(len(views))])
    rdf.decay(copies, [0.1 * (k % 3) for k in range(len(views))])
    assert rdf.non_neg(views, as_int=True) == rdf.non_neg(copies)
    for v, c in zip(views, copies):
        assert same_bits(np.ascontiguousarray(host_of(backend, v)), c)


@pytest.mark.parametrize("backend", DEVICE, indirect=True)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_penalty_grad_grads_in_any_layout(backend, dtype):
    backend.require(dtype)
    rng = np.random.default_rng(2)
    for name, base, view, _ in layouts(backend, rng, dtype):
        w_host = random_array(rng, tuple(view.shape), dtype)
        w = backend.asarray(w_host)
        for l1, l2 in ((0.1, 0.0), (0.1, 0.3)):
            check_in_place(backend, base, view,
                           lambda g: rdf.penalty_grad(w if not isinstance(g, np.ndarray) else w_host, g, l1=l1, l2=l2,
                                                      as_float=True),
                           compare=lambda a, b: assert_close(a, b, 1e-12) is None)
        if len(view.shape) >= 2:  # the group term on a gradient in this layout (updated in a copy written back)
            check_in_place(backend, base, view,
                           lambda g: rdf.penalty_grad(w if not isinstance(g, np.ndarray) else w_host, g, l2=0.1,
                                                      group_l1=0.5, axis=0, as_float=True),
                           compare=lambda a, b: assert_close(a, b, 1e-12) is None)


@pytest.mark.parametrize("backend", DEVICE, indirect=True)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_slice_ops_in_any_layout(backend, dtype):
    rng = np.random.default_rng(3)
    for name, base, view, _ in layouts(backend, rng, dtype):
        for axis in (0, -1) if len(view.shape) > 1 else (0,):
            check_in_place(backend, base, view, lambda a: rdf.max_norm(a, 1.5, axis=axis, as_int=True))
            check_in_place(backend, base, view, lambda a: rdf.norm_constraint(a, min_value=2.0, max_value=3.0,
                                                                              rate=0.5, axis=axis, as_int=True))
            check_in_place(backend, base, view, lambda a: rdf.unit_norm(a, axis=axis, as_int=True))
            check_in_place(backend, base, view, lambda a: rdf.prox_group_l1(a, 1.0, axis=axis, as_int=True))
        if len(view.shape) == 3:
            check_in_place(backend, base, view, lambda a: rdf.max_norm(a, 1.5, axis=(0, 2), as_int=True))
            check_in_place(backend, base, view, lambda a: rdf.prox_group_l1(a, 1.0, axis=(1, 2), as_int=True))


@pytest.mark.parametrize("backend", ["cuda-emulated"], indirect=True)
def test_dense_layouts_run_without_a_copy(backend, monkeypatch):
    """A transposed or reversed array is handed to the list kernels as its own memory (no copy, no walk), and
    max_norm on a transposed array with its reduced axis innermost in memory runs on the array itself."""
    import regdrop_fast._arrays as arrays

    copies = []
    for name in ("contiguous_copy", "fresh_copy", "permuted_copy", "copy_in_layout_of"):
        original = getattr(arrays.DeviceArray, name)
        monkeypatch.setattr(arrays.DeviceArray, name,
                            lambda self, *a, _o=original, _n=name: copies.append(_n) or _o(self, *a))
    walks: list = []
    monkeypatch.setattr(rdf._native, "cuda", _Spy(backend.kernels, walks))
    rng = np.random.default_rng(4)
    host = random_array(rng, (30, 41), np.float32)
    t = _t(backend, backend.asarray(host))
    r = backend.asarray(host)[::-1]
    assert rdf.prox_l1([t, r], 0.5, as_int=True) == rdf.prox_l1([np.ascontiguousarray(host.T), host[::-1].copy()],
                                                                   0.5)
    assert rdf.max_norm(t, 1.0, axis=0, as_int=True) >= 0  # rows of the memory: (41, 30) C-contiguous, axis 1
    assert copies == [] and walks == []


class _Spy:
    """The kernel module, recording calls of the walk entry points."""

    def __init__(self, module, calls):
        self._module, self._calls = module, calls

    def __getattr__(self, name):
        attr = getattr(self._module, name)
        if name.startswith("walk_"):
            return lambda *a: self._calls.append(name) or attr(*a)
        return attr


@pytest.mark.parametrize("backend", DEVICE, indirect=True)
def test_self_overlapping_device_arrays_are_refused(backend):
    if backend.name != "cuda-emulated":
        pytest.skip("a broadcast CUDA view: built through the fake's host memory only")
    import fake_cupy

    host = np.zeros(4, np.float32)
    a = fake_cupy.ndarray(np.lib.stride_tricks.as_strided(host, (3, 4), (0, 4), writeable=True))
    for call in (lambda: rdf.prox_l1([a], 0.1), lambda: rdf.decay(a, 0.1), lambda: rdf.non_neg(a),
                 lambda: rdf.max_norm(a, 1.0, axis=0), lambda: rdf.prox_group_l1(a, 0.1, axis=0),
                 lambda: rdf.penalty_grad(fake_cupy.ndarray(np.ones((3, 4), np.float32)), a, l1=0.1)):
        with pytest.raises(ValueError, match="its elements overlap each other"):
            call()
    assert not host.any()
