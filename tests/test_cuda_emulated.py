"""The CUDA kernels run on the CPU: csrc/cuda/*.cu built with the host compiler against an emulation of the
CUDA runtime (tests/native/cuda_emulation/cuda_runtime.h: a fiber per CUDA thread, __syncthreads() a
barrier of a block's fibers, __shared__ memory shared by them, blocks one after another), by the fixture
emulated_cuda_module of tests/conftest.py.

Each launch `kernel<<<grid, block, 0, s>>>(args)` of the sources is rewritten into an emulated launch; the
rest (the launch planning of csrc/cuda/list_plan.h, the entry points, csrc/bindings/cuda.cpp) is the
code the GPU build compiles. The module stands in for regdrop_fast._cuda, and CuPy is stood in for by host
arrays (tests/fake_cupy.py), so every public call goes through the real Python path down to the kernels'
indexing, vector/scalar choice, chunking, block reductions and slot sums, and must give the CPU kernels'
bits. What only a GPU can show (timing, memory model, the device's own arithmetic) is tests/test_cuda.py's.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import assert_close
from fake_cupy import fake_cupy, ndarray

import regdrop_fast as rdf
from regdrop_fast import cuda, reference

BF16 = rdf._checks.BFLOAT16
DTYPES = [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16), BF16]
DTYPE_IDS = ["float32", "float64", "float16", "bfloat16"]
CHUNK = 1 << 16


@pytest.fixture
def emulated(emulated_cuda_module, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy())
    monkeypatch.setattr(cuda, "_cuda", emulated_cuda_module)
    return emulated_cuda_module


def dev(a):
    return ndarray(np.array(a, copy=True))


def values(rng, n, dtype, specials=False):
    a = (3.0 * rng.standard_normal(n)).astype(dtype)
    if specials and n >= 40:
        sv = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 1e-40, -1e-45, 1e-30, 0.01, -0.01, 65504.0, 7e4]
        with np.errstate(over="ignore"):  # 7e4 is inf in float16
            a[10:10 + len(sv)] = np.array(sv).astype(dtype)
    return a


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# ----------------------------------------------------------------------------------------------------------
# penalties


def test_penalty_list_mixing_dtypes_sizes_and_terms(emulated):
    rng = np.random.default_rng(1)
    sizes = [0, 1, 3, 64, 1000, CHUNK - 1, CHUNK, CHUNK + 1, 100003, 9408]
    count = 60  # more arrays than one launch takes
    params = [values(rng, sizes[i % len(sizes)], DTYPES[i % 4], specials=i % 3 == 0) for i in range(count)]
    grads = [values(rng, p.size, p.dtype) for p in params]
    l1 = [0.0 if i % 7 == 3 else 0.01 * (1 + i % 3) for i in range(count)]
    l2 = [0.0 if i % 5 == 2 or i % 7 == 3 else 0.1 / (1 + i % 4) for i in range(count)]
    wd, gd = [dev(p) for p in params], [dev(g) for g in grads]
    value = rdf.penalty_grad(wd, gd, l1=l1, l2=l2)
    assert isinstance(value, ndarray) and value.shape == () and value.dtype == np.float64
    g_cpu, g_ref = [g.copy() for g in grads], [g.copy() for g in grads]
    v_cpu = rdf.penalty_grad(params, g_cpu, l1=l1, l2=l2)
    v_ref = reference.penalty_grad(params, g_ref, l1=l1, l2=l2)
    for i in range(count):
        assert same_bits(gd[i].host, g_cpu[i]), f"grads[{i}] ({params[i].dtype}, {params[i].size})"
        assert same_bits(wd[i].host, params[i])
    finite = [np.where(np.isfinite(p.astype(np.float64)), p, p.dtype.type(0)) for p in params]
    v_finite = rdf.penalty([dev(p) for p in finite], l1=l1, l2=l2, as_float=True)
    assert_close(v_finite, reference.penalty(finite, l1=l1, l2=l2))
    assert np.isnan(value.item()) and np.isnan(v_cpu) and np.isnan(v_ref)


def test_penalty_array_spanning_two_launches(emulated):
    n = emulated.MAX_BLOCKS_PER_LAUNCH * CHUNK + 4097
    rng = np.random.default_rng(2)
    params = [values(rng, 5, np.float32), values(rng, n, np.float32), values(rng, 77, np.float32)]
    grads = [values(rng, p.size, np.float32) for p in params]
    gd = [dev(g) for g in grads]
    value = rdf.penalty_grad([dev(p) for p in params], gd, l1=1e-3, l2=1e-2, as_float=True)
    v_ref = reference.penalty_grad(params, grads, l1=1e-3, l2=1e-2)
    assert all(same_bits(a.host, b) for a, b in zip(gd, grads))
    assert_close(value, v_ref)


@pytest.mark.parametrize("shift", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.dtype(np.float32), BF16], ids=["float32", "bfloat16"])
def test_penalty_misaligned_views_write_nothing_outside(emulated, shift, dtype):
    n = 70001
    rng = np.random.default_rng(shift)
    w, g = values(rng, n, dtype), values(rng, n, dtype)
    wb, gb = np.full(n + 4, 7.0).astype(dtype), np.full(n + 4, 7.0).astype(dtype)
    wb[shift:shift + n], gb[:n] = w, g  # params misaligned, grads aligned
    gb2 = np.full(n + 4, 7.0).astype(dtype)
    gb2[shift:shift + n] = g
    for grads_base, offset in ((gb, 0), (gb2, shift)):
        view = ndarray(grads_base[offset:offset + n])
        value = rdf.penalty_grad(ndarray(wb[shift:shift + n]), view, l1=0.01, l2=0.1, as_float=True)
        g_cpu = g.copy()
        assert_close(value, rdf.penalty_grad(w, g_cpu, l1=0.01, l2=0.1))
        assert same_bits(grads_base[offset:offset + n], g_cpu)
        assert np.all(grads_base[:offset] == 7.0) and np.all(grads_base[offset + n:] == 7.0)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_prox_l1_and_decay(emulated, dtype):
    rng = np.random.default_rng(3)
    params = [values(rng, n, dtype, specials=True) for n in (100003, 0, 1, 17, CHUNK + 1)]
    params[0][:6] = np.array([0.5, -0.5, 0.0, -0.0, 0.49999, -0.50001]).astype(dtype)
    wd = [dev(p) for p in params]
    count = rdf.prox_l1(wd, 0.5)
    assert isinstance(count, ndarray) and count.dtype == np.int64
    cpu, ref = [p.copy() for p in params], [p.copy() for p in params]
    assert count.item() == rdf.prox_l1(cpu, 0.5) == reference.prox_l1(ref, 0.5)
    assert all(same_bits(a.host, b) for a, b in zip(wd, cpu))
    rdf.decay(wd, [0.25, 0.0, 1.0, 1e-3, 0.5])
    rdf.decay(cpu, [0.25, 0.0, 1.0, 1e-3, 0.5])
    assert all(same_bits(a.host, b) for a, b in zip(wd, cpu))
    base = np.full(CHUNK + 9, 5.0).astype(dtype)  # misaligned by one element
    view = ndarray(base[1:CHUNK + 6])
    expected = base[1:CHUNK + 6].copy()
    assert rdf.prox_l1(view, 2.0, as_int=True) == rdf.prox_l1(expected, 2.0)
    rdf.decay(view, 0.5)
    rdf.decay(expected, 0.5)
    assert same_bits(base[1:CHUNK + 6], expected) and base[0] == 5.0 and np.all(base[CHUNK + 6:] == 5.0)


MAX_NORM_CASES = [
    ((300, 70), 0), ((300, 70), 1), ((70, 3000), 1), ((5, 6, 7, 8), (0, 1, 2)), ((8, 7, 3, 3), (1, 2, 3)),
    ((5, 6, 7, 8), (1, 2)), ((5, 6, 7, 8), (0, 2)), ((40,), 0), ((0, 5), 0), ((5, 0), 0), ((4097, 19), 0),
    ((3000, 3, 2), 1), ((2, 30001), 1), ((33, 65), 0),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape,axis", MAX_NORM_CASES, ids=[f"{s}-{a}" for s, a in MAX_NORM_CASES])
def test_max_norm(emulated, dtype, shape, axis):
    rng = np.random.default_rng(sum(shape))
    w = (3.0 * rng.standard_normal(shape)).astype(dtype)
    if w.size:
        w = (w.astype(np.float64) * rng.uniform(0.05, 2.0, size=shape[-1])).astype(dtype)
    wd = dev(w)
    count = rdf.max_norm(wd, 4.0, axis=axis)
    cpu, ref = w.copy(), w.copy()
    assert count.item() == rdf.max_norm(cpu, 4.0, axis=axis) == reference.max_norm(ref, 4.0, axis=axis)
    assert same_bits(wd.host, cpu)


def test_max_norm_special_values(emulated):
    w = np.array([[np.nan, 10.0], [0.0, -0.0], [3.0, 4.0], [np.inf, 1.0]], np.float32)
    wd = dev(w)
    assert rdf.max_norm(wd, 1.0, axis=1, as_int=True) == rdf.max_norm(w, 1.0, axis=1) == 2
    assert same_bits(wd.host, w)


# ----------------------------------------------------------------------------------------------------------
# dropout


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 1025, 20011])
def test_dropout_forward_and_backward(emulated, dtype, n):
    rng = np.random.default_rng(n)
    x = values(rng, n, dtype, specials=True)
    for offset in (0, 3, (1 << 64) - 7):
        y, mask = rdf.dropout(dev(x), 0.3, seed=99, offset=offset)
        yc, mc = rdf.dropout(x, 0.3, seed=99, offset=offset)
        assert same_bits(y.host, yc) and same_bits(mask.bits.host, mc.bits)
        g = values(rng, n, dtype)
        _, seed_mask = rdf.dropout(dev(x), 0.3, seed=99, offset=offset, store="seed")
        expected = rdf.dropout_backward(g, mc)
        assert same_bits(rdf.dropout_backward(dev(g), mask).host, expected)
        assert same_bits(rdf.dropout_backward(dev(g), seed_mask).host, expected)


@pytest.mark.parametrize("shift", [1, 2, 3])
def test_dropout_misaligned_and_overlapping_views(emulated, shift):
    n = 10007
    base = values(np.random.default_rng(shift), n + 4, np.float32)
    x = base[shift:shift + n].copy()
    expected, mc = rdf.dropout(x, 0.25, seed=5, offset=11)
    out = np.zeros(n + 4, np.float32)
    y, mask = rdf.dropout(ndarray(base[shift:shift + n]), 0.25, seed=5, offset=11, out=ndarray(out[1:n + 1]))
    assert same_bits(out[1:n + 1], expected) and same_bits(mask.bits.host, mc.bits)
    # out one element before x in the same memory: x must be read before it is overwritten
    shared = base.copy()
    rdf.dropout(ndarray(shared[shift:shift + n]), 0.25, seed=5, offset=11, out=ndarray(shared[shift - 1:shift - 1 + n]))
    assert same_bits(shared[shift - 1:shift - 1 + n], expected)
