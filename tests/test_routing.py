"""Routing and kernel arguments of the CUDA path's Python side (checks, pointers, sizes, scratch, results), on
any machine.

A stand-in for CuPy keeps its arrays in host memory and a stand-in for the compiled module runs the CPU
kernels on the memory behind the pointers it is given, checking on the way what the real kernels rely on
(list lengths, dtype codes, a scratch buffer of enough slots, the device and stream of the arrays). So the
whole path from regdrop_fast.penalty_grad & co. through the validation and the CUDA backend (_backend_cuda) down to the kernel arguments is
exercised here; the kernels themselves are tested per op (tests/test_<op>.py) on the "cuda-emulated" and
"cuda" backends.
"""

from __future__ import annotations

import ctypes
import math
import sys
import types

import numpy as np
import pytest

from conftest import CHUNK, CODE_DTYPES, rejects, same_bits, use_cuda_kernels, values
from fake_cupy import fake_cupy, ndarray

import regdrop_fast as rdf


# ----------------------------------------------------------------------------------------------------------
# the stand-ins


def _view(ptr, n, code):
    """The n elements of dtype code `code` at host address ptr."""
    ptr, n, dtype = int(ptr), int(n), CODE_DTYPES[code]  # the backend passes NumPy columns
    if n == 0:
        return np.empty(0, dtype)
    return np.frombuffer((ctypes.c_char * (n * dtype.itemsize)).from_address(ptr), dtype=dtype)


class FakeKernels(types.ModuleType):
    """Stands in for the package's CUDA kernel module: the CPU kernels on the memory behind the pointers."""

    CHUNK_ELEMS = CHUNK
    MAX_NORM_SLOTS = 1024
    MAX_TENSORS_PER_LAUNCH = 48
    MAX_BLOCKS_PER_LAUNCH = 320

    def __init__(self):
        super().__init__("regdrop_fast._cuda")
        self.calls = []

    @staticmethod
    def device_count():
        return 2

    @staticmethod
    def device_name(d):
        return f"fake{d}"

    def _record(self, name, device, stream, **extra):
        assert device in (0, 1) and stream == 4242, "launched with the wrong device or stream"
        self.calls.append((name, device, extra))

    @staticmethod
    def _lists(codes, sizes, ptrs, *more):
        assert len(codes) == len(sizes) == len(ptrs) and all(len(m) in (0, len(codes)) for m in more)
        assert all(c in (0, 1, 2, 3) for c in codes) and all(n >= 0 for n in sizes)
        assert all(p != 0 for p, n in zip(ptrs, sizes) if n)

    @staticmethod
    def _needs(sizes, takes):
        return sum(-(-n // CHUNK) for n, t in zip(sizes, takes) if n and t)

    def penalty_grad(self, codes, sizes, ptrs, gptrs, l1, l2, slots, capacity, out, device, stream):
        self._lists(codes, sizes, ptrs, gptrs, l1, l2)
        assert capacity >= self._needs(sizes, [a or b for a, b in zip(l1, l2)])
        self._record("penalty_grad", device, stream, with_grad=len(gptrs) > 0, count=len(codes))
        ws = [_view(p, n, c) for p, n, c in zip(ptrs, sizes, codes)]
        if len(gptrs):
            gs = [_view(p, n, c) for p, n, c in zip(gptrs, sizes, codes)]
            value = rdf.penalty_grad(ws, gs, l1=np.array(l1), l2=np.array(l2))
        else:
            value = rdf.penalty(ws, l1=np.array(l1), l2=np.array(l2))
        _view(out, 1, 1)[0] = value

    def prox_l1(self, codes, sizes, ptrs, threshold, slots, capacity, out, device, stream):
        self._lists(codes, sizes, ptrs, threshold)
        assert capacity >= self._needs(sizes, [True] * len(sizes))
        self._record("prox_l1", device, stream)
        count = rdf.prox_l1([_view(p, n, c) for p, n, c in zip(ptrs, sizes, codes)], np.array(threshold))
        _view(out, 1, 1).view(np.int64)[0] = count

    def decay(self, codes, sizes, ptrs, factor, device, stream):
        self._lists(codes, sizes, ptrs, factor)
        self._record("decay", device, stream)
        rdf.decay([_view(p, n, c) for p, n, c in zip(ptrs, sizes, codes)], np.array(factor))

    def max_norm(self, code, w, outer, reduce, inner, max_value, slots, capacity, out, device, stream):
        assert capacity == self.MAX_NORM_SLOTS
        self._record("max_norm", device, stream, view=(outer, reduce, inner))
        count = 0
        if outer * reduce * inner:
            count = rdf.max_norm(_view(w, outer * reduce * inner, code).reshape(outer, reduce, inner), max_value,
                                 axis=1)
        _view(out, 1, 1).view(np.int64)[0] = count


@pytest.fixture
def fake(monkeypatch):
    kernels = FakeKernels()
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy())
    use_cuda_kernels(monkeypatch, kernels)
    return kernels


def dev(a, device_id=0):
    return ndarray(np.array(a, copy=True), device_id)


# ----------------------------------------------------------------------------------------------------------
# results and what reaches the kernels


def test_penalty_grad_on_device_arrays(fake):
    rng = np.random.default_rng(1)
    sizes = [0, 1, 1000, CHUNK + 3, 17, 2 * CHUNK]
    params = [values(rng, n, CODE_DTYPES[i % 4]) for i, n in enumerate(sizes)]
    grads = [values(rng, n, CODE_DTYPES[i % 4]) for i, n in enumerate(sizes)]
    l1, l2 = [0.1, 0.0, 0.0, 0.2, 0.3, 0.0], [0.5, 0.0, 1.0, 0.0, 0.3, 0.0]
    wd, gd = [dev(p) for p in params], [dev(g) for g in grads]
    value = rdf.penalty_grad(wd, gd, l1=l1, l2=l2)
    assert isinstance(value, ndarray) and value.shape == () and value.dtype == np.float64
    expected = rdf.penalty_grad(params, grads, l1=l1, l2=l2)
    assert value.item() == expected
    assert all(same_bits(a.host, b) for a, b in zip(gd, grads))
    assert all(same_bits(a.host, b) for a, b in zip(wd, params))
    assert fake.calls == [("penalty_grad", 0, {"with_grad": True, "count": 6})]
    as_float = rdf.penalty(wd, l1=l1, l2=l2, as_float=True)
    assert type(as_float) is float and as_float == rdf.penalty(params, l1=l1, l2=l2)
    assert fake.calls[-1] == ("penalty_grad", 0, {"with_grad": False, "count": 6})


def test_single_device_array_is_one_array_not_its_rows(fake):
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    g = np.zeros_like(w)
    gd = dev(g)
    value = rdf.penalty_grad(dev(w), gd, l2=2.0, as_float=True)
    assert value == rdf.penalty_grad(w, g, l2=2.0)
    assert same_bits(gd.host, g) and fake.calls[0][2]["count"] == 1


def test_non_contiguous_parameters_are_copied_grads_written_where_they_are(fake):
    rng = np.random.default_rng(2)
    w = values(rng, 30 * 7, np.float64).reshape(30, 7)
    g = values(rng, 7 * 30, np.float64).reshape(7, 30)
    wd, gd = ndarray(w.T), dev(g)  # a transposed view: not C-contiguous
    assert not wd.flags.c_contiguous
    value = rdf.penalty_grad(wd, gd, l1=0.5, as_float=True)
    assert value == rdf.penalty_grad(np.ascontiguousarray(w.T), g, l1=0.5)
    assert same_bits(gd.host, g)
    # a transposed gradient: its own memory in memory order, the parameter copied into that order
    gt_host = np.array(w, copy=True)
    gt = ndarray(gt_host.T)
    value = rdf.penalty_grad(dev(g), gt, l2=1.0, as_float=True)
    expected = np.ascontiguousarray(w.T)
    assert value == rdf.penalty_grad(g, expected, l2=1.0)
    assert same_bits(np.ascontiguousarray(gt_host.T), expected)


def test_grads_that_are_their_params(fake):
    w = np.linspace(-1, 1, 777, dtype=np.float32)
    wd = dev(w)
    value = rdf.penalty_grad(wd, wd, l1=0.1, l2=3.0, as_float=True)
    assert value == rdf.penalty_grad(w, w, l1=0.1, l2=3.0)
    assert same_bits(wd.host, w)


@pytest.mark.parametrize("threshold", [0.0, 0.5])
def test_prox_l1_and_decay_on_device_arrays(fake, threshold):
    rng = np.random.default_rng(3)
    params = [values(rng, n, CODE_DTYPES[i % 4]) for i, n in enumerate([5, 0, CHUNK * 3 + 1, 64])]
    wd = [dev(p) for p in params]
    count = rdf.prox_l1(wd, threshold)
    assert isinstance(count, ndarray) and count.shape == () and count.dtype == np.int64
    assert count.item() == rdf.prox_l1(params, threshold)
    assert rdf.decay(wd, [0.5, 0.0, 0.25, 1.0]) is None
    rdf.decay(params, [0.5, 0.0, 0.25, 1.0])
    assert all(same_bits(a.host, b) for a, b in zip(wd, params))
    again = rdf.prox_l1(wd, threshold, as_int=True)
    assert type(again) is int and again == rdf.prox_l1(params, threshold)


MAX_NORM = [((30, 7), 0, (1, 30, 7)), ((30, 7), 1, (30, 7, 1)), ((4, 5, 6, 7), (1, 2), (4, 30, 7)),
            ((4, 5, 6, 7), (0, 2), (35, 24, 1)), ((4, 5, 6), -1, (20, 6, 1)), ((0, 5), 0, (1, 0, 5))]


@pytest.mark.parametrize("shape,axis,view", MAX_NORM, ids=[f"{s}-{a}" for s, a, _ in MAX_NORM])
def test_max_norm_on_device_arrays(fake, shape, axis, view):
    rng = np.random.default_rng(4)
    w = values(rng, math.prod(shape), np.float32).reshape(shape)
    wd = dev(w)
    count = rdf.max_norm(wd, 3.0, axis=axis)
    assert isinstance(count, ndarray) and count.dtype == np.int64
    assert count.item() == rdf.max_norm(w, 3.0, axis=axis)
    assert same_bits(wd.host, w)
    assert fake.calls[-1][2]["view"] == view
    assert type(rdf.max_norm(wd, 3.0, axis=axis, as_int=True)) is int


def test_device_of_the_arrays_is_used(fake):
    w, g = dev(np.ones(5, np.float32), 1), dev(np.zeros(5, np.float32), 1)
    rdf.penalty_grad(w, g, l2=1.0)
    assert fake.calls[-1][1] == 1


# ----------------------------------------------------------------------------------------------------------
# bad calls: the error, and nothing modified


def test_bad_calls_modify_nothing(fake):
    w = [dev(np.linspace(-1, 1, 50, dtype=np.float32)), dev(np.linspace(-2, 2, 60, dtype=np.float32))]
    g = [dev(np.ones(50, np.float32)), dev(np.ones(60, np.float32))]
    host = np.ones(60, np.float32)
    other_device = dev(np.ones(60, np.float32), 1)
    arrays = (*w, *g, host, other_device)
    rejects(ValueError, r"grads\[1\]: is a host array", lambda: rdf.penalty_grad(w, [g[0], host], l2=0.1), *arrays)
    rejects(ValueError, r"params\[1\]: is a host array", lambda: rdf.penalty_grad([w[0], host], g, l2=0.1), *arrays)
    rejects(ValueError, r"params\[1\]: is a CUDA array but params\[0\] is a host array",
            lambda: rdf.penalty_grad([host[:50], w[1]], [np.zeros(50, np.float32), g[1]], l2=0.1), *arrays)
    rejects(ValueError, r"grads\[1\]: is a CUDA array", lambda: rdf.penalty_grad(
        [host[:50].copy(), host.copy()], [np.zeros(50, np.float32), g[1]], l2=0.1), *arrays)
    rejects(ValueError, "on CUDA device 1", lambda: rdf.penalty_grad(w, [g[0], other_device], l2=0.1), *arrays)
    rejects(ValueError, "on CUDA device 1", lambda: rdf.prox_l1([w[0], other_device], 0.1), *arrays)
    rejects(ValueError, "host array", lambda: rdf.decay([w[0], host], 0.1), *arrays)
    rejects(TypeError, r"params\[1\]: dtype int32", lambda: rdf.penalty_grad(
        [w[0], dev(np.ones(60, np.int32))], g, l2=0.1), *arrays)
    rejects(TypeError, r"params\[0\]: dtype int64", lambda: rdf.prox_l1(dev(np.ones(3, np.int64)), 0.1), *arrays)
    rejects(ValueError, "shape", lambda: rdf.penalty_grad(w, [g[0], dev(np.ones(61, np.float32))], l2=0.1), *arrays)
    rejects(ValueError, "dtype float64 does not match", lambda: rdf.penalty_grad(
        w, [g[0], dev(np.ones(60, np.float64))], l2=0.1), *arrays)
    rejects(ValueError, "overlaps", lambda: rdf.penalty_grad(w, [w[1][:50], g[1]], l2=0.1), *arrays)
    rejects(ValueError, "overlaps", lambda: rdf.prox_l1([w[0], w[0][10:20]], 0.1), *arrays)
    rejects(ValueError, "overlaps", lambda: rdf.decay([w[1], w[1]], 0.1), *arrays)
    rejects(ValueError, "pair up", lambda: rdf.penalty_grad(w, g[:1], l2=0.1), *arrays)
    rejects(ValueError, "factor", lambda: rdf.decay(w, 1.5), *arrays)
    rejects(TypeError, "as_float", lambda: rdf.penalty_grad(w, g, l2=0.1, as_float="yes"), *arrays)
    rejects(TypeError, "as_int", lambda: rdf.prox_l1(w, 0.1, as_int=None), *arrays)
    rejects(ValueError, "w: its elements overlap each other", lambda: rdf.max_norm(
        ndarray(np.lib.stride_tricks.as_strided(np.ones(4, np.float32), (3, 4), (0, 4))), 1.0, axis=0), *arrays)
    rejects(ValueError, "axis", lambda: rdf.max_norm(w[0], 1.0, axis=2), *arrays)
    rejects(ValueError, "max_value", lambda: rdf.max_norm(w[0], -1.0, axis=0), *arrays)
    assert fake.calls == []


def test_without_the_cuda_build_device_arrays_are_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy())
    use_cuda_kernels(monkeypatch, None)
    w = dev(np.ones(4, np.float32))
    with pytest.raises(ValueError, match="without CUDA support"):
        rdf.penalty_grad(w, dev(np.ones(4, np.float32)), l2=1.0)
    with pytest.raises(ValueError, match="without CUDA support"):
        rdf.max_norm(w, 1.0, axis=0)
    assert same_bits(w.host, np.ones(4, np.float32))
