"""The CUDA list calls' plans (_lists.device_list): a list validated once is reused while the same arrays come
again, and any change of a field the validation depends on makes the next call validate in full.

The arrays are tests/fake_cupy.py's stand-in CuPy arrays, whose fields (pointer, shape, strides, dtype, device)
are changed under the same objects by replacing the host memory behind them (what torch's set_ / resize_ /
.data = and CuPy's shape assignment do to real arrays). The kernel module is a recorder: each test checks that
the columns the kernels receive are those of the arrays as they are now, so a plan reused after a change
(a key that missed the field) fails here. torch's own fields are checked on CPU tensors through the key
itself (test_torch_key_sees_every_change).
"""

from __future__ import annotations

import gc
import sys
import types
import weakref

import numpy as np
import pytest

from conftest import BFLOAT16, DTYPE_CODES, use_cuda_kernels
from fake_cupy import fake_cupy, ndarray

import regdrop_fast as rdf
from regdrop_fast import _lists

CHUNK = 1 << 14


class Recorder(types.ModuleType):
    """Stands in for the CUDA kernel module: records the per-array columns of every list call."""

    CHUNK_ELEMS = CHUNK
    MAX_NORM_SLOTS = 1024

    def __init__(self):
        super().__init__("regdrop_fast._cuda")
        self.calls = []

    def penalty_grad(self, codes, sizes, ptrs, gptrs, l1, l2, slots, capacity, out, device, stream):
        self.calls.append(("penalty_grad", list(codes), list(sizes), list(ptrs), list(gptrs), device))

    def prox_l1(self, codes, sizes, ptrs, threshold, slots, capacity, out, device, stream):
        self.calls.append(("prox_l1", list(codes), list(sizes), list(ptrs), [], device))

    def decay(self, codes, sizes, ptrs, factor, device, stream):
        self.calls.append(("decay", list(codes), list(sizes), list(ptrs), [], device))


@pytest.fixture
def kernels(monkeypatch):
    rec = Recorder()
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy())
    use_cuda_kernels(monkeypatch, rec)
    monkeypatch.setattr(_lists, "_PLANS", {})
    return rec


@pytest.fixture
def validations(monkeypatch):
    """How many times the full validation (device_lists) ran."""
    count = [0]
    full = _lists.device_lists

    def counted(*args, **kwargs):
        count[0] += 1
        return full(*args, **kwargs)

    monkeypatch.setattr(_lists, "device_lists", counted)
    return count


def dev(shape, dtype=np.float32, device_id=0, fill=1.0):
    return ndarray(np.full(shape, fill, dtype), device_id)


def columns(arrays):
    """What the kernels must receive for these arrays as they are now: codes, sizes, pointers."""
    return ([DTYPE_CODES[a.host.dtype] for a in arrays], [a.host.size for a in arrays],
            [a.host.__array_interface__["data"][0] if a.host.size else 0 for a in arrays])


def expect(kernels, name, params, grads=None):
    op, codes, sizes, ptrs, gptrs, _ = kernels.calls[-1]
    assert op == name
    assert (codes, sizes, ptrs) == columns(params)
    assert gptrs == ([] if grads is None else columns(grads)[2])


def lists(n=5):
    """params, grads: float32 arrays but for a float16 pair at index 1 (float16 and bfloat16 have one size)."""
    shapes = [(3, 4), (7,), (2, 3, 5), (CHUNK + 3,), (1,)][:n]
    dtypes = [np.float32, np.float16, np.float32, np.float32, np.float32]
    return ([dev(s, t) for s, t in zip(shapes, dtypes)], [dev(s, t, fill=0.0) for s, t in zip(shapes, dtypes)])


def test_a_list_is_validated_once_and_then_reused(kernels, validations):
    params, grads = lists()
    rdf.penalty_grad(params, grads, l2=0.5)
    assert validations[0] == 1 and len(_lists._PLANS) == 1
    expect(kernels, "penalty_grad", params, grads)
    for _ in range(3):
        rdf.penalty_grad(list(params), tuple(grads), l2=0.25)  # new list objects, the same arrays
        expect(kernels, "penalty_grad", params, grads)
    assert validations[0] == 1
    rdf.penalty(params, l2=0.5)  # without gradients: another plan
    rdf.prox_l1(params, 0.1)  # written params: another plan
    rdf.decay(params, 0.1)  # the same rules as prox_l1: its plan
    assert validations[0] == 3 and len(_lists._PLANS) == 3
    expect(kernels, "decay", params)


def _replace(a, host):
    """a now stands for other memory (another pointer, shape, strides or dtype), the object unchanged."""
    a.host = host


CHANGES = {
    # name: (change(params, grads), error or None)
    "pointer": (lambda p, g: _replace(p[2], np.full(p[2].host.shape, 2.0, np.float32)), None),
    "grad pointer": (lambda p, g: _replace(g[0], np.zeros(g[0].host.shape, np.float32)), None),
    "shape, same pointer": (lambda p, g: (_replace(p[3], p[3].host[:CHUNK]), _replace(g[3], g[3].host[:CHUNK])),
                            None),
    "shape, same size": (lambda p, g: (_replace(p[0], p[0].host.reshape(4, 3)), _replace(g[0], g[0].host.reshape(4, 3))),
                         None),
    "dtype alone": (lambda p, g: (_replace(p[1], p[1].host.view(BFLOAT16)), _replace(g[1], g[1].host.view(BFLOAT16))),
                    None),
    "dtype unsupported": (lambda p, g: _replace(g[1], g[1].host.view(np.int16)), TypeError),
    "dtype of one of a pair": (lambda p, g: _replace(g[1], g[1].host.view(BFLOAT16)), ValueError),
    # the same pointer and shape, other strides: the memory read as (2, 5, 3) transposed
    # (a gradient in any layout is updated where it is: only lists of C-contiguous arrays are planned)
    "strides of a gradient (never planned)": (
        lambda p, g: _replace(g[2], g[2].host.reshape(2, 5, 3).transpose(0, 2, 1)), None),
    "strides of a parameter (read: copied)": (
        lambda p, g: _replace(p[2], p[2].host.reshape(2, 5, 3).transpose(0, 2, 1)), None),
    "device": (lambda p, g: setattr(g[4], "device", types.SimpleNamespace(id=1)), ValueError),
    # the pointer alone, into another array of the call
    "aliasing": (lambda p, g: _replace(g[2], g[3].host[5:35].reshape(2, 3, 5)), ValueError),
    "aliasing of a gradient and another parameter": (lambda p, g: _replace(g[2], p[3].host[5:35].reshape(2, 3, 5)),
                                                      ValueError),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_any_change_of_a_field_is_validated_again(kernels, validations, change):
    params, grads = lists()
    rdf.penalty_grad(params, grads, l2=0.5)
    rdf.penalty_grad(params, grads, l2=0.5)
    assert validations[0] == 1
    mutate, error = CHANGES[change]
    mutate(params, grads)
    calls = len(kernels.calls)
    if error is not None:
        before = [a.host.copy() for a in params + grads]
        with pytest.raises(error):
            rdf.penalty_grad(params, grads, l2=0.5)
        assert len(kernels.calls) == calls, "a refused call reached the kernels"
        assert all(np.array_equal(a.host, b) for a, b in zip(params + grads, before))
        assert validations[0] == 2
        with pytest.raises(error):  # refused again: a refused call leaves no plan behind
            rdf.penalty_grad(params, grads, l2=0.5)
        assert validations[0] == 3
        return
    rdf.penalty_grad(params, grads, l2=0.5)
    assert validations[0] == 2
    if "copied" in change or "never planned" in change:
        if "copied" in change:  # the kernels read a contiguous copy of params[2]: never planned
            op, codes, sizes, ptrs, gptrs, _ = kernels.calls[-1]
            assert sizes == columns(params)[1] and ptrs[2] != columns(params)[2][2]
        rdf.penalty_grad(params, grads, l2=0.5)
        assert validations[0] == 3
        return
    expect(kernels, "penalty_grad", params, grads)
    rdf.penalty_grad(params, grads, l2=0.5)  # the new fields are planned in turn
    assert validations[0] == 2
    expect(kernels, "penalty_grad", params, grads)


def test_written_params_are_planned_apart_from_read_ones(kernels, validations):
    """The same list, read (penalty: an array may appear twice) then written (prox_l1: it may not)."""
    a, b = dev((5,)), dev((6,))
    rdf.penalty([a, b, a], l2=1.0)
    rdf.penalty([a, b, a], l2=1.0)
    assert validations[0] == 1
    before = a.host.copy()
    with pytest.raises(ValueError, match=r"params\[0\] overlaps params\[2\]"):
        rdf.prox_l1([a, b, a], 0.5)
    assert np.array_equal(a.host, before) and kernels.calls[-1][0] == "penalty_grad"


def test_a_plan_is_per_list_length_and_pairing(kernels, validations):
    params, grads = lists()
    rdf.penalty_grad(params, grads, l2=0.5)
    rdf.penalty_grad(params[:4], grads[:4], l2=0.5)
    expect(kernels, "penalty_grad", params[:4], grads[:4])
    rdf.penalty(params, l2=0.5)
    expect(kernels, "penalty_grad", params)
    assert validations[0] == 3
    with pytest.raises(ValueError, match="grads: 4 arrays for 5 params"):
        rdf.penalty_grad(params, grads[:4], l2=0.5)


def test_another_type_in_the_list_is_never_planned(kernels, validations):
    """A CuPy-like array of another type than params[0]'s: device_lists asks is_device_array about it, which
    the key does not cover, so such a list is validated every time."""

    class Other(ndarray):
        __module__ = "cupy"

    params, grads = lists()
    params[1] = Other(params[1].host)
    for _ in range(2):
        rdf.penalty_grad(params, grads, l2=0.5)
        expect(kernels, "penalty_grad", params, grads)
    assert validations[0] == 2 and not _lists._PLANS


def test_a_list_the_key_cannot_read_is_validated_in_full(kernels, validations):
    params, grads = lists()
    grads[2] = np.zeros((2, 3, 5), np.float32)  # a host array among CUDA arrays
    for _ in range(2):
        with pytest.raises(ValueError, match=r"grads\[2\]: is a host array but params\[0\] is a CUDA array"):
            rdf.penalty_grad(params, grads, l2=0.5)
    assert validations[0] == 2 and not kernels.calls and not _lists._PLANS


def test_plans_hold_no_array_and_are_bounded(kernels, monkeypatch):
    params, grads = lists()
    rdf.penalty_grad(params, grads, l2=0.5)
    refs = [weakref.ref(a) for a in params + grads]
    del params, grads
    gc.collect()
    assert all(r() is None for r in refs), "a plan keeps an array alive"
    monkeypatch.setattr(_lists, "MAX_PLANS", 4)
    for n in range(1, 10):
        rdf.prox_l1([dev((n,))], 0.1)
        assert len(_lists._PLANS) <= 4


def test_the_kernels_missing_is_the_same_error_after_a_plan(kernels, monkeypatch):
    params, grads = lists()
    rdf.penalty_grad(params, grads, l2=0.5)
    use_cuda_kernels(monkeypatch, None)
    with pytest.raises(ValueError, match=r"params\[0\]: is a CUDA array but regdrop_fast was built without CUDA"):
        rdf.penalty_grad(params, grads, l2=0.5)


def test_torch_key_sees_every_change():
    """Every in-place change torch allows to a tensor's fields changes its key entry (CPU tensors: the same
    Python attributes as CUDA ones; a device change shows in get_device and is_cuda, also read)."""
    torch = pytest.importorskip("torch")
    key = _lists._torch_key

    def changed(t, step):
        before = key([t])
        with torch.no_grad():
            step()
        return key([t]) != before

    t = torch.zeros(4, 6)
    assert not changed(t, lambda: t.add_(1.0))  # values are not fields
    assert changed(t, lambda: t.set_(torch.zeros(4, 6)))  # another storage: the pointer alone
    assert changed(t, lambda: t.resize_(3, 6))  # the shape alone (the same strides, a smaller size)
    assert changed(t, lambda: t.unsqueeze_(0))
    t = torch.zeros(4, 6)
    assert changed(t, lambda: t.as_strided_((4, 6), (1, 4)))  # the strides alone
    assert changed(t, lambda: t.transpose_(0, 1))  # shape and strides
    p = torch.nn.Parameter(torch.zeros(4, 6, dtype=torch.float16))
    assert changed(p, lambda: setattr(p, "data", p.data.view(torch.bfloat16)))  # the dtype alone
    assert changed(p, lambda: setattr(p, "data", torch.zeros(4, 6, dtype=torch.bfloat16)))  # the pointer
    assert key([p])[0][0] is not key([t])[0][0]  # Parameter and Tensor: the type is part of the key


def test_host_glue_bench_rows_and_its_stand_ins_restored(monkeypatch):
    """regdrop_fast.bench.host_glue: its stand-in run times both list calls against the target and puts back
    the CUDA module and cupy it replaced (a stub that took other arguments than the bindings would fail)."""
    from regdrop_fast.bench import host_glue

    kernels_before, cupy_before = rdf._native.cuda, sys.modules.get("cupy")
    with host_glue.stand_in() as (params, grads):
        assert len(params) == len(grads) == 161
        found = host_glue.rows(params, grads, calls=3)
        plan = _lists.device_list(params, grads, False).plan
        assert list(plan.ptrs) == [a.data.ptr for a in params] and plan.count == 161
    assert rdf._native.cuda is kernels_before and sys.modules.get("cupy") is cupy_before
    assert [r["call"] for r in found] == ["penalty_grad(params, grads, l2)", "prox_l1(params, threshold)"]
    assert all(r["target_us"] == host_glue.HOST_TARGET_US == 100.0 and r["us_per_call"] > 0 for r in found)
    assert all(r["met"] == (r["us_per_call"] < 100.0) for r in found)
    assert "161 arrays" in host_glue.format_rows(found, "stand-in")
