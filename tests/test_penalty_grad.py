"""penalty_grad and penalty on every backend: against the NumPy reference and the CPU kernels.

Gradients must equal the reference bit for bit on every dtype, SIMD path and backend; penalty values within
1e-12 relative of the reference (a GPU groups the float64 sum differently), and bit-identical for every thread
count and SIMD path on the CPU. Every bad input raises the documented error and leaves every array unchanged.
The CUDA backends ("cuda-emulated": the CUDA kernels on the CPU, "cuda": a GPU) also have launch-specific
checks: arrays spanning two launches, lists longer than one launch takes, streams, devices.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import (
    ALL_DTYPES,
    BFLOAT16,
    CHUNK,
    DTYPES,
    IMPLS,
    assert_all_same_bits,
    assert_backend_bits,
    assert_close,
    assert_same_bits,
    assert_unchanged,
    assert_value_close,
    copies,
    finite_only,
    is_result_scalar,
    make_params,
    per_backend,
    random_array,
    read_only,
    rejects,
    run_each_simd,
    run_each_thread_count,
    same_bits,
    scalar,
    snapshot,
    values,
)

import regdrop_fast as rdf
from regdrop_fast import reference


COEFFICIENTS = [  # (l1, l2): each term alone, both, and per-array lists with zeros (excluded arrays)
    (0.0, 0.1),
    (0.01, 0.0),
    (0.01, 0.1),
    ([0.0, 0.02, 0.0, 1.5, 0.01, 0.0, 0.3, 0.0], [0.1, 0.0, 0.0, 0.2, 0.4, 0.0, 1e-4, 3.0]),
]


# ----------------------------------------------------------------------------------------------------------
# penalty_grad and penalty against the reference


@ALL_DTYPES
@pytest.mark.parametrize("l1,l2", COEFFICIENTS, ids=["l2", "l1", "l1+l2", "per-array"])
def test_penalty_grad_matches_reference(each_simd, rng, dtype, l1, l2):
    params = make_params(rng, dtype)
    grads = [random_array(rng, p.shape, dtype) for p in params]
    g_native, g_ref = copies(grads), copies(grads)
    p_before = snapshot(*params)
    value = rdf.penalty_grad(params, g_native, l1=l1, l2=l2)
    expected = reference.penalty_grad(params, g_ref, l1=l1, l2=l2)
    assert_all_same_bits(g_native, g_ref, "grads")
    assert_unchanged(params, p_before)
    assert_value_close(value, expected)
    # Finite weights give a finite value, compared tightly as well.
    finite = finite_only(params)
    assert_value_close(rdf.penalty_grad(finite, copies(grads), l1=l1, l2=l2),
                       reference.penalty_grad(finite, copies(grads), l1=l1, l2=l2))


@ALL_DTYPES
@pytest.mark.parametrize("l1,l2", COEFFICIENTS, ids=["l2", "l1", "l1+l2", "per-array"])
def test_penalty_value_matches_reference_and_penalty_grad(rng, dtype, l1, l2):
    params = finite_only(make_params(rng, dtype))
    value = rdf.penalty(params, l1=l1, l2=l2)
    assert_value_close(value, reference.penalty(params, l1=l1, l2=l2))
    grads = [np.zeros_like(p) for p in params]
    # Same kernel, same summation order: the value of penalty_grad is the very same float.
    assert rdf.penalty_grad(params, grads, l1=l1, l2=l2) == value


def test_penalty_value_is_the_documented_formula(rng):
    params = [rng.standard_normal(s) for s in [(10, 3), (1000,), (5,)]]
    l1, l2 = [0.1, 0.0, 2.0], [0.5, 3.0, 0.0]
    expected = sum(a * np.abs(p).sum() + b / 2 * (p * p).sum() for p, a, b in zip(params, l1, l2))
    assert_value_close(rdf.penalty(params, l1=l1, l2=l2), expected, rtol=1e-13)
    g = [np.zeros_like(p) for p in params]
    rdf.penalty_grad(params, g, l1=l1, l2=l2)
    for p, gi, a, b in zip(params, g, l1, l2):
        np.testing.assert_array_equal(gi, a * np.sign(p) + b * p)


@ALL_DTYPES
def test_values_and_grads_identical_for_every_thread_count_and_simd_path(rng, dtype):
    # One huge array among many tiny ones: the cut into tasks must not depend on threads or SIMD width.
    shapes = [(300001,)] + [(7,), (64,), (0,), (16,)] * 30 + [(1000, 70)]
    params = finite_only(make_params(rng, dtype, shapes))
    grads = [random_array(rng, p.shape, dtype) for p in params]

    def run():
        g = copies(grads)
        return rdf.penalty_grad(params, g, l1=0.003, l2=0.07), g

    results = list(run_each_thread_count(run, counts=(1, 2, 3, 4)).values())
    results += list(run_each_simd(run).values())
    value0, grads0 = results[0]
    for value, g in results[1:]:
        assert value.hex() == value0.hex()
        assert_all_same_bits(g, grads0, "grads")
    assert_value_close(value0, reference.penalty(params, l1=0.003, l2=0.07))


def test_thread_invariance_through_the_public_setter(rng):
    params = [rng.standard_normal(n).astype(np.float32) for n in (5_000_000 // 7, 999, 3, 250_000)]
    values = []
    for n in (1, 2):
        rdf.set_num_threads(n)
        values.append(rdf.penalty(params, l1=1e-3, l2=0.5))
    assert values[0].hex() == values[1].hex()


def test_grads_may_be_the_params_themselves(rng):
    params = make_params(rng, np.float32)
    expected = copies(params)
    v_ref = reference.penalty_grad(copies(params), expected, l1=0.2, l2=0.3)  # grads: copies of params
    v = rdf.penalty_grad(params, params, l1=0.2, l2=0.3)  # w += l1*sign(w) + l2*w in place
    assert_all_same_bits(params, expected, "params")
    assert_value_close(v, v_ref)  # the value of the weights on entry


def test_zero_coefficients_exclude_an_array(rng):
    w = np.array([np.inf, -np.inf, np.nan, 1.0, -2.0], np.float32)
    other = rng.standard_normal(40).astype(np.float32)
    g, g_other = np.full(5, 7.0, np.float32), np.zeros(40, np.float32)
    value = rdf.penalty_grad([w, other], [g, g_other], l1=[0.0, 0.1], l2=[0.0, 0.2])
    assert_same_bits(g, np.full(5, 7.0, np.float32), "excluded grad")
    assert np.isfinite(value)
    assert_value_close(value, rdf.penalty([other], l1=0.1, l2=0.2))
    # l1 = 0 omits only the L1 term: an inf weight gives an inf gradient, not NaN from 0 * sign.
    g2 = np.zeros(5, np.float32)
    rdf.penalty_grad(w, g2, l1=0.0, l2=1.0)
    assert_same_bits(g2, w, "l2 only")


@ALL_DTYPES
def test_half_types_compute_in_float32_and_round_once(rng, dtype):
    w = random_array(rng, 4099, dtype)
    g = random_array(rng, 4099, dtype)
    out = g.copy()
    rdf.penalty_grad(w, out, l1=0.01, l2=0.3)
    ct = np.float64 if dtype == np.float64 else np.float32
    wc = w.astype(ct)
    expected = (g.astype(ct) + (ct(0.01) * np.sign(wc) + ct(0.3) * wc)).astype(dtype)
    assert_same_bits(out, expected, "grad")


# ----------------------------------------------------------------------------------------------------------
# input forms, empty input, return types


@IMPLS
def test_empty_lists_and_arrays(impl):
    assert impl.penalty_grad([], [], l1=0.1, l2=0.1) == 0.0
    assert type(impl.penalty_grad([], [], l2=0.1)) is float
    assert impl.penalty([], l2=1.0) == 0.0
    assert impl.prox_l1([], 0.1) == 0
    assert impl.decay([], 0.1) is None
    e = np.zeros((0, 3), np.float32)
    assert impl.penalty_grad(e, np.zeros((0, 3), np.float32), l1=1.0, l2=1.0) == 0.0
    assert impl.prox_l1([e, np.zeros(0)], 1.0) == 0
    assert impl.max_norm(e, 1.0, axis=1) == 0
    assert impl.penalty_grad((), (), l1=[], l2=[]) == 0.0


@IMPLS
def test_zero_dimensional_arrays(impl):
    w, g = np.array(-2.0), np.array(1.0)
    assert impl.penalty_grad(w, g, l1=0.5, l2=0.25) == 0.5 * 2.0 + 0.125 * 4.0
    assert g == 1.0 - 0.5 - 0.5
    p = np.array(0.3, np.float32)
    assert impl.prox_l1(p, 0.5) == 1 and p == 0


@IMPLS
def test_one_array_list_tuple_and_generator_agree(impl, rng):
    ws = [rng.standard_normal(s) for s in [(5, 4), (9,)]]
    gs = [np.ones(w.shape) for w in ws]
    v_list = impl.penalty_grad(ws, [g.copy() for g in gs], l1=0.1, l2=0.2)
    v_tuple = impl.penalty_grad(tuple(ws), tuple(g.copy() for g in gs), l1=0.1, l2=0.2)
    v_gen = impl.penalty_grad((w for w in ws), [g.copy() for g in gs], l1=0.1, l2=0.2)
    v_single = sum(impl.penalty_grad(w, g.copy(), l1=0.1, l2=0.2) for w, g in zip(ws, gs))
    assert v_list == v_tuple == v_gen
    assert_value_close(v_single, v_list)


def test_read_only_parameters_in_any_layout(rng):
    base = read_only(rng.standard_normal((40, 30)).astype(np.float32))
    views = [base[::2, ::3], base.T, base[:, 5]]
    grads_a = [np.zeros(v.shape, np.float32) for v in views]
    grads_b = [np.zeros(v.shape, np.float32) for v in views]
    value_a = rdf.penalty_grad(views, grads_a, l1=0.1, l2=0.2)
    value_b = rdf.penalty_grad([np.ascontiguousarray(v) for v in views], grads_b, l1=0.1, l2=0.2)
    assert value_a == value_b
    assert_all_same_bits(grads_a, grads_b, "grads")
    assert rdf.penalty(base, l2=1.0) == rdf.penalty(base.copy(), l2=1.0)
    # Array-likes are read as arrays of their NumPy dtype (Python floats: float64).
    assert rdf.penalty([[1.0, -2.0, 3.0]], l1=1.0) == 6.0


def test_concurrent_calls_from_python_threads(rng):
    shapes = [(100_000,), (7,), (300, 300)]
    lists = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(4)]
    expected = [reference.penalty(ws, l1=0.01, l2=0.1) for ws in lists]
    results = [None] * 4

    def work(i):
        grads = [np.zeros_like(w) for w in lists[i]]
        for _ in range(20):
            results[i] = rdf.penalty_grad(lists[i], grads, l1=0.01, l2=0.1)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r, e in zip(results, expected):
        assert_value_close(r, e)


# ----------------------------------------------------------------------------------------------------------
# bad input: the right error, and nothing modified


PENALTY_GRAD_BAD = [
    ("int params", lambda w, g: (w + [np.ones(3, np.int32)], g + [np.ones(3, np.float32)]), {},
     TypeError, r"params\[2\]: dtype int32 is not supported"),
    ("complex params", lambda w, g: (w + [np.ones(3, np.complex64)], g + [np.ones(3, np.float32)]), {},
     TypeError, r"params\[2\]: dtype complex64"),
    ("int grads", lambda w, g: (w + [np.ones(3, np.float32)], g + [np.ones(3, np.int64)]), {},
     TypeError, r"grads\[2\]: dtype int64 is not supported"),
    ("list grad", lambda w, g: (w + [np.ones(3, np.float32)], g + [[0.0, 0.0, 0.0]]), {},
     TypeError, r"grads\[2\]: expected a numpy.ndarray"),
    ("big-endian", lambda w, g: (w + [np.ones(3, ">f4")], g + [np.ones(3, ">f4")]), {},
     TypeError, r"params\[2\]: dtype >f4 is not supported"),
    ("lengths", lambda w, g: (w, g[:1]), {}, ValueError, r"grads: 1 arrays for 2 params"),
    ("shape", lambda w, g: (w + [np.ones(3, np.float32)], g + [np.ones(4, np.float32)]), {},
     ValueError, r"grads\[2\]: shape \(4,\) does not match params\[2\]'s \(3,\)"),
    ("dtype pair", lambda w, g: (w + [np.ones(3, np.float32)], g + [np.ones(3, np.float64)]), {},
     ValueError, r"grads\[2\]: dtype float64 does not match params\[2\]'s float32"),
    ("read-only grad", lambda w, g: (w + [np.ones(3, np.float32)], g + [read_only(np.ones(3, np.float32))]),
     {}, ValueError, r"grads\[2\]: must be writeable"),
    ("self-overlapping grad", lambda w, g: (w + [np.ones(3, np.float32)],
                                            g + [np.lib.stride_tricks.as_strided(np.ones(1, np.float32), (3,), (0,),
                                                                                 writeable=True)]), {},
     ValueError, r"grads\[2\]: its elements overlap each other in memory"),
    ("negative l1", lambda w, g: (w, g), {"l1": -0.1}, ValueError,
     r"l1: expected a finite number >= 0, got -0.1"),
    ("nan l2", lambda w, g: (w, g), {"l2": float("nan")}, ValueError, r"l2: expected a finite number >= 0"),
    ("inf l1", lambda w, g: (w, g), {"l1": np.inf}, ValueError,
     r"l1: expected a finite number >= 0, got inf"),
    ("bool l2", lambda w, g: (w, g), {"l2": True}, TypeError, r"l2: expected a finite number >= 0, got bool"),
    ("str l1", lambda w, g: (w, g), {"l1": "0.1"}, TypeError, r"l1: expected a number or a sequence"),
    ("short list", lambda w, g: (w, g), {"l2": [0.1]}, ValueError, r"l2: 1 coefficients for 2 arrays"),
    ("bad entry", lambda w, g: (w, g), {"l1": [0.1, -1.0]}, ValueError,
     r"l1\[1\]: expected a finite number >= 0"),
    ("nan entry", lambda w, g: (w, g), {"l2": [np.nan, 0.1]}, ValueError,
     r"l2\[0\]: expected a finite number"),
    ("2-d list", lambda w, g: (w, g), {"l2": [[0.1, 0.1]]}, ValueError, r"l2: expected a number or a flat"),
    ("bool list", lambda w, g: (w, g), {"l2": [True, False]}, TypeError, r"l2: expected real numbers"),
    ("grad twice", lambda w, g: (w + [np.ones(4, np.float32)], g + [g[1][:4]]), {},
     ValueError, r"grads\[2\] overlaps grads\[1\] in memory|grads\[1\] overlaps grads\[2\] in memory"),
    ("grad is another param", lambda w, g: (w + [np.ones(7, np.float32)], g + [w[1]]), {},
     ValueError, r"overlaps"),
    ("scalar params", lambda w, g: (1.5, g), {}, TypeError, r"params: expected an array or a sequence"),
]


@IMPLS
@pytest.mark.parametrize("case", PENALTY_GRAD_BAD, ids=[c[0] for c in PENALTY_GRAD_BAD])
def test_penalty_grad_rejects(impl, pair, case):
    _, build, kwargs, exc, match = case
    params, grads = build(*pair)
    arrays = [a for a in list(pair[0]) + list(pair[1]) + list(grads if isinstance(grads, list) else [])
              if isinstance(a, np.ndarray)]
    rejects(exc, match, lambda: impl.penalty_grad(params, grads, **kwargs), *arrays)


@IMPLS
def test_penalty_rejects(impl, pair):
    ws, _ = pair
    rejects(TypeError, r"params\[2\]: dtype bool", lambda: impl.penalty(ws + [np.ones(2, bool)], l2=1.0), *ws)
    rejects(ValueError, r"l1: expected a finite", lambda: impl.penalty(ws, l1=-1.0), *ws)
    rejects(ValueError, r"l2: 3 coefficients for 2 arrays", lambda: impl.penalty(ws, l2=[1.0, 1.0, 1.0]), *ws)
    rejects(TypeError, r"params: expected an array or a sequence", lambda: impl.penalty("abc", l2=1.0), *ws)


# ----------------------------------------------------------------------------------------------------------
# every backend against the CPU kernels and the reference
#
# On a CUDA backend, gradients must equal the CPU kernels and the reference bit for bit (same element bodies,
# one rounding, no FMA); values within 1e-12 relative of the reference (the GPU groups the float64 sum
# differently); counts exactly. Where NaNs are involved on a real GPU they are compared as NaN (its arithmetic
# returns the canonical NaN where x86 keeps the operand's payload), every other bit exactly.

PENALTY_SIZES = [0, 1, 7, 1025, 65536, 65537, 278011]
EMULATED_PENALTY_SIZES = [0, 7, 1025]  # a fiber per CUDA thread: the emulation takes small sizes
TERMS = [(0.0, 0.1), (0.01, 0.0), (0.01, 0.1)]


@ALL_DTYPES
@pytest.mark.parametrize("backend,n", per_backend(PENALTY_SIZES, EMULATED_PENALTY_SIZES), indirect=["backend"])
@pytest.mark.parametrize("l1,l2", TERMS, ids=["l2", "l1", "l1+l2"])
def test_penalty_grad_matches_cpu_and_reference(backend, dtype, n, l1, l2):
    backend.require(dtype)
    rng = np.random.default_rng(n + 17)
    w, g = values(rng, n, dtype), values(rng, n, dtype)
    wd, gd = backend.asarray(w.copy()), backend.asarray(g.copy())
    value = rdf.penalty_grad([wd], [gd], l1=l1, l2=l2)
    assert is_result_scalar(backend, value, np.float64)
    g_cpu, g_ref = g.copy(), g.copy()
    v_cpu = rdf.penalty_grad([w], [g_cpu], l1=l1, l2=l2)
    v_ref = reference.penalty_grad([w], [g_ref], l1=l1, l2=l2)
    assert same_bits(backend.to_numpy(gd), g_cpu) and same_bits(g_cpu, g_ref)
    assert same_bits(backend.to_numpy(wd), w), "the parameter was modified"
    assert_close(scalar(value), v_ref)
    assert_close(scalar(value), v_cpu, rtol=2e-12)  # both within 1e-12 of the reference
    assert_close(scalar(rdf.penalty([wd], l1=l1, l2=l2)), v_ref)


@ALL_DTYPES
def test_penalty_grad_special_values(backend, dtype):
    backend.require(dtype)
    rng = np.random.default_rng(3)
    w, g = values(rng, 4099, dtype, specials=True), values(rng, 4099, dtype)
    gd = backend.asarray(g.copy())
    value = rdf.penalty_grad(backend.asarray(w.copy()), gd, l1=0.02, l2=0.3, as_float=True)
    g_cpu = g.copy()
    v_cpu = rdf.penalty_grad(w, g_cpu, l1=0.02, l2=0.3)
    assert type(value) is float and np.isnan(value) and np.isnan(v_cpu)
    assert_backend_bits(backend, gd, g_cpu, "grad")
    w[np.isnan(w.astype(np.float64))] = 0  # finite and infinite values: the value matches
    finite = rdf.penalty(backend.asarray(w), l1=0.02, l2=0.3, as_float=True)
    assert_close(finite, reference.penalty(w, l1=0.02, l2=0.3))


FULL_LIST_SIZES = [0, 1, 3, 64, 1000, CHUNK - 1, CHUNK, CHUNK + 1, 278011, 9408]
EMULATED_LIST_SIZES = [0, 1, 3, 64, 1000, CHUNK - 1, CHUNK, CHUNK + 1, 100003, 9408]


@pytest.mark.parametrize("backend,count", per_backend([1, 5, 48, 49, 200], [60]), indirect=["backend"])
def test_penalty_list_mixing_dtypes_sizes_and_terms(backend, count):
    """Many arrays (the per-launch limit is tested below), of every dtype and size, some terms zero (excluded arrays).
    Special values (inf, NaN, subnormals) are in every third array except on a GPU (whose NaNs are canonical)."""
    rng = np.random.default_rng(count)
    sizes = backend.sizes(FULL_LIST_SIZES, EMULATED_LIST_SIZES)
    dtypes = backend.dtypes()
    specials = backend.name != "cuda"
    params = [values(rng, sizes[i % len(sizes)], dtypes[i % len(dtypes)], specials=specials and i % 3 == 0)
              for i in range(count)]
    grads = [values(rng, p.size, p.dtype) for p in params]
    l1 = [0.0 if i % 7 == 3 else 0.01 * (1 + i % 3) for i in range(count)]
    l2 = [0.0 if i % 5 == 2 or i % 7 == 3 else 0.1 / (1 + i % 4) for i in range(count)]
    wd, gd = [backend.asarray(p.copy()) for p in params], [backend.asarray(g.copy()) for g in grads]
    value = rdf.penalty_grad(wd, gd, l1=l1, l2=l2)
    assert is_result_scalar(backend, value, np.float64)
    g_cpu, g_ref = copies(grads), copies(grads)
    v_cpu = rdf.penalty_grad(params, g_cpu, l1=l1, l2=l2)
    v_ref = reference.penalty_grad(params, g_ref, l1=l1, l2=l2)
    for i in range(count):
        assert same_bits(backend.to_numpy(gd[i]), g_cpu[i]), f"grads[{i}] ({params[i].dtype}, {params[i].size})"
        assert same_bits(g_cpu[i], g_ref[i])
        assert same_bits(backend.to_numpy(wd[i]), params[i]), f"params[{i}] was modified"
    assert_close(scalar(value), v_ref)
    assert_close(scalar(value), v_cpu, rtol=2e-12)  # both within 1e-12 of the reference
    assert_close(scalar(rdf.penalty(wd, l1=l1, l2=l2)), v_ref)
    assert np.isnan(scalar(value)) == np.isnan(v_ref)
    if backend.emulated:  # its 60 arrays include specials with nonzero terms
        assert np.isnan(scalar(value)) and np.isnan(v_cpu) and np.isnan(v_ref)
    finite = finite_only(params)
    v_finite = rdf.penalty([backend.asarray(p) for p in finite], l1=l1, l2=l2, as_float=True)
    assert_close(v_finite, reference.penalty(finite, l1=l1, l2=l2))


@pytest.mark.parametrize("backend,dtype", per_backend([np.dtype(np.float32), BFLOAT16], [np.dtype(np.float32)],
                                                      backends=("cuda-emulated", "cuda")), indirect=["backend"])
def test_penalty_array_spanning_launches(backend, dtype):
    backend.require(dtype)
    kernels = backend.kernels
    # continues in a second launch
    n = kernels.MAX_BLOCKS_PER_LAUNCH * kernels.CHUNK_ELEMS + (4097 if backend.emulated else 12345)
    rng = np.random.default_rng(5)
    params = [values(rng, 3, dtype), values(rng, n, dtype), values(rng, 100, dtype)]
    grads = [values(rng, p.size, dtype) for p in params]
    gd = [backend.asarray(g.copy()) for g in grads]
    value = rdf.penalty_grad([backend.asarray(p) for p in params], gd, l1=1e-3, l2=1e-2, as_float=True)
    v_ref = reference.penalty_grad(params, copies(grads), l1=1e-3, l2=1e-2)
    v_cpu = rdf.penalty_grad(params, grads, l1=1e-3, l2=1e-2)
    for i in range(3):
        assert same_bits(backend.to_numpy(gd[i]), grads[i]), f"grads[{i}]"
    assert_close(value, v_ref)
    assert_close(value, v_cpu, rtol=2e-12)  # both within 1e-12 of the reference


@pytest.mark.parametrize("backend", ["cuda-emulated", "cuda"], indirect=True)
def test_penalty_list_longer_than_one_launch_takes(backend):
    """More arrays than one launch has slots for (MAX_TENSORS_PER_LAUNCH, 640): the list is cut by array
    count, not by blocks, into three launches; every array's result equals the CPU kernels' bit for bit and
    the value matches the reference. Small arrays of every dtype, some with zero terms (left out)."""
    kernels = backend.kernels
    count = 2 * kernels.MAX_TENSORS_PER_LAUNCH + 7
    rng = np.random.default_rng(640)
    dtypes = backend.dtypes()
    params = [values(rng, 1 + i % 37, dtypes[i % len(dtypes)]) for i in range(count)]
    grads = [values(rng, p.size, p.dtype) for p in params]
    l2 = [0.0 if i % 11 == 5 else 0.1 / (1 + i % 4) for i in range(count)]
    gd = [backend.asarray(g.copy()) for g in grads]
    value = rdf.penalty_grad([backend.asarray(p) for p in params], gd, l1=1e-3, l2=l2, as_float=True)
    g_cpu = copies(grads)
    v_cpu = rdf.penalty_grad(params, g_cpu, l1=1e-3, l2=l2)
    v_ref = reference.penalty_grad(params, copies(grads), l1=1e-3, l2=l2)
    for i in range(count):
        assert same_bits(backend.to_numpy(gd[i]), g_cpu[i]), f"grads[{i}] ({params[i].dtype}, {params[i].size})"
    assert_close(value, v_ref)
    assert_close(value, v_cpu, rtol=2e-12)
    threshold = [0.0 if i % 13 == 1 else 0.05 for i in range(count)]
    wd = [backend.asarray(p.copy()) for p in params]
    w_cpu = copies(params)
    zeros = rdf.prox_l1(wd, threshold, as_int=True)
    assert zeros == rdf.prox_l1(w_cpu, threshold)
    for i in range(count):
        assert same_bits(backend.to_numpy(wd[i]), w_cpu[i]), f"prox_l1 params[{i}]"


@pytest.mark.parametrize("dtype", [np.dtype(np.float32), BFLOAT16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("shift", [1, 2, 3])
@pytest.mark.parametrize("which", ["params", "grads", "both"])
def test_penalty_misaligned_views_write_nothing_outside(backend, dtype, shift, which):
    backend.require(dtype)
    n = 70001 if backend.emulated else 278011
    rng = np.random.default_rng(shift)
    w, g = values(rng, n, dtype), values(rng, n, dtype)
    ws = shift if which in ("params", "both") else 0
    gs = shift if which in ("grads", "both") else 0
    wb, gb = np.full(n + 4, 7.0).astype(dtype), np.full(n + 4, 7.0).astype(dtype)
    wb[ws:ws + n], gb[gs:gs + n] = w, g
    wbd, gbd = backend.asarray(wb), backend.asarray(gb)
    value = rdf.penalty_grad(wbd[ws:ws + n], gbd[gs:gs + n], l1=0.01, l2=0.1, as_float=True)
    g_cpu = g.copy()
    v_cpu = rdf.penalty_grad(w, g_cpu, l1=0.01, l2=0.1)
    gh = backend.to_numpy(gbd)
    assert same_bits(gh[gs:gs + n], g_cpu)
    assert np.all(gh[:gs] == 7.0) and np.all(gh[gs + n:] == 7.0), "written outside the gradient view"
    assert same_bits(backend.to_numpy(wbd), wb), "the parameters were modified"
    assert_close(value, v_cpu, rtol=2e-12)  # both within 1e-12 of the reference


def test_penalty_non_contiguous_params_and_grads_that_are_params(backend):
    rng = np.random.default_rng(9)
    w = values(rng, 300 * 70, np.float32).reshape(300, 70)
    g = values(rng, 70 * 300, np.float32).reshape(70, 300)
    wd = backend.transpose(backend.asarray(w.copy()))  # read-only parameter in any layout: copied
    gd = backend.asarray(g.copy())
    value = rdf.penalty_grad(wd, gd, l2=0.3, l1=0.01)
    g_cpu = g.copy()
    v_cpu = rdf.penalty_grad(np.ascontiguousarray(w.T), g_cpu, l2=0.3, l1=0.01)
    assert same_bits(backend.to_numpy(gd), g_cpu)
    assert_close(scalar(value), v_cpu, rtol=2e-12)  # both within 1e-12 of the reference
    # grads is params: the value is of the weights on entry, the update reads them too.
    p = values(rng, 5000, np.float32)
    pd = backend.asarray(p.copy())
    value = rdf.penalty_grad(pd, pd, l1=0.5, l2=2.0)
    p_cpu = p.copy()
    v_cpu = rdf.penalty_grad(p_cpu, p_cpu, l1=0.5, l2=2.0)
    assert same_bits(backend.to_numpy(pd), p_cpu)
    assert_close(scalar(value), v_cpu, rtol=2e-12)  # both within 1e-12 of the reference


def test_penalty_empty_and_excluded(backend):
    assert rdf.penalty_grad([], []) == 0.0  # an empty list is a host call
    z = backend.asarray(np.empty(0, np.float32))
    v = rdf.penalty_grad([z], [backend.asarray(np.empty(0, np.float32))], l2=1.0)
    assert is_result_scalar(backend, v, np.float64) and scalar(v) == 0.0
    rng = np.random.default_rng(4)
    w, g = backend.asarray(values(rng, 100, np.float32)), backend.asarray(values(rng, 100, np.float32))
    before = backend.to_numpy(g)
    assert scalar(rdf.penalty_grad(w, g, l1=0.0, l2=0.0)) == 0.0
    assert same_bits(backend.to_numpy(g), before)


# ----------------------------------------------------------------------------------------------------------
# a real GPU only: streams, host synchronization, devices, array libraries (torch's own API)


@pytest.mark.cuda
def test_penalties_on_a_non_default_stream(torch_cuda):
    torch = torch_cuda
    from conftest import Backend

    gpu = Backend("cuda", "full")
    gpu.library = "torch"
    rng = np.random.default_rng(21)
    sizes = [1, 1000, 65537, 278011]
    params = [values(rng, sizes[i % 4], DTYPES[i % 4]) for i in range(60)]
    grads = [values(rng, p.size, p.dtype) for p in params]
    wd, gd = [gpu.asarray(p) for p in params], [gpu.asarray(g) for g in grads]
    m = values(rng, 500 * 300, np.float32).reshape(500, 300)
    md = gpu.asarray(m)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        value = rdf.penalty_grad(wd, gd, l1=1e-3, l2=1e-2)
        zeros = rdf.prox_l1(wd, 0.5)
        rdf.decay(wd, 0.1)
        rescaled = rdf.max_norm(md, 5.0, axis=0)
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    g_cpu = copies(grads)
    v_cpu = rdf.penalty_grad(params, g_cpu, l1=1e-3, l2=1e-2)
    z_cpu = rdf.prox_l1(params, 0.5)
    rdf.decay(params, 0.1)
    assert int(rescaled) == rdf.max_norm(m, 5.0, axis=0)
    assert_close(value, v_cpu, rtol=2e-12)  # both within 1e-12 of the reference
    assert int(zeros) == z_cpu
    for i in range(len(params)):
        assert same_bits(gpu.to_numpy(gd[i]), g_cpu[i]) and same_bits(gpu.to_numpy(wd[i]), params[i])
    assert same_bits(gpu.to_numpy(md), m)


@pytest.mark.cuda
def test_penalty_value_is_deterministic(gpu):
    from regdrop_fast.bench.shapes import RESNET50_PARAMETERS

    rng = np.random.default_rng(0)
    host = [rng.standard_normal(s, dtype=np.float32) for _, s in RESNET50_PARAMETERS]
    if gpu.supports(BFLOAT16):
        host += [rng.standard_normal(1000).astype(BFLOAT16) for _ in range(60)]
    params = [gpu.asarray(h) for h in host]
    results = [rdf.penalty(params, l1=1e-5, l2=1e-4) for _ in range(5)]
    bits = {gpu.to_numpy(v).tobytes() for v in results}
    assert len(bits) == 1, "the penalty value changed from run to run"
    assert_close(scalar(results[0]), reference.penalty(host, l1=1e-5, l2=1e-4))
    counts = {scalar(rdf.prox_l1([gpu.asarray(h) for h in host], 0.7)) for _ in range(3)}
    assert len(counts) == 1


@pytest.mark.cuda
def test_no_host_synchronization(torch_cuda):
    torch = torch_cuda
    w = [torch.randn(1000, device="cuda") for _ in range(3)]
    g = [torch.randn(1000, device="cuda") for _ in range(3)]
    m = torch.randn(4, 5, 6, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        rdf.penalty_grad(w, g, l1=0.1, l2=0.1)
        rdf.penalty(w, l2=0.1)
        rdf.prox_l1(w, 0.1)
        rdf.decay(w, 0.1)
        rdf.max_norm(m, 1.0, axis=1)
        rdf.max_norm(m, 1.0, axis=(0, 2))
        y, mask = rdf.dropout(w[0], 0.5, seed=1)
        rdf.dropout_backward(y, mask)
    finally:
        torch.cuda.set_sync_debug_mode(0)


@pytest.mark.cuda
def test_penalty_bad_inputs_modify_nothing_on_a_gpu(torch_cuda):
    torch = torch_cuda
    w = [torch.randn(50, device="cuda"), torch.randn(60, device="cuda")]
    g = [torch.randn(50, device="cuda"), torch.randn(60, device="cuda")]
    snap = [t.clone() for t in w + g]

    def unchanged():
        return all(torch.equal(a, b) for a, b in zip(w + g, snap))

    cases = [
        (ValueError, "host array", lambda: rdf.penalty_grad(w, [g[0], g[1].cpu().numpy()], l2=0.1)),
        (ValueError, "host array", lambda: rdf.penalty_grad([w[0], np.ones(60, np.float32)], g, l2=0.1)),
        (ValueError, "CUDA array", lambda: rdf.penalty_grad([np.ones(50, np.float32), w[1]], g, l2=0.1)),
        (ValueError, "CUDA array", lambda: rdf.prox_l1([np.ones(50, np.float32), w[1]], 0.1)),
        (ValueError, "host array", lambda: rdf.prox_l1([w[0], np.ones(5, np.float32)], 0.1)),
        (ValueError, "host array", lambda: rdf.decay([w[0], np.ones(5, np.float32)], 0.1)),
        (TypeError, "int32", lambda: rdf.penalty_grad([w[0], torch.ones(60, device="cuda", dtype=torch.int32)], g)),
        (TypeError, "int64", lambda: rdf.prox_l1([w[0], torch.ones(60, device="cuda", dtype=torch.int64)], 0.1)),
        (ValueError, "shape", lambda: rdf.penalty_grad(w, [g[0], torch.randn(61, device="cuda")], l2=0.1)),
        (ValueError, "dtype", lambda: rdf.penalty_grad(w, [g[0], g[1].double()], l2=0.1)),
        (ValueError, "C-contiguous", lambda: rdf.penalty_grad(
            [w[0], torch.randn(6, 10, device="cuda")], [g[0], torch.randn(10, 6, device="cuda").t()], l2=0.1)),
        (ValueError, "C-contiguous", lambda: rdf.prox_l1([w[0], torch.randn(10, 6, device="cuda").t()], 0.1)),
        (ValueError, "overlaps", lambda: rdf.penalty_grad(w, [w[1][:50], g[1]], l2=0.1)),
        (ValueError, "overlaps", lambda: rdf.prox_l1([w[0], w[0][10:20]], 0.1)),
        (ValueError, "pair up", lambda: rdf.penalty_grad(w, g[:1], l2=0.1)),
        (ValueError, "l2", lambda: rdf.penalty_grad(w, g, l2=-1.0)),
        (TypeError, "as_float", lambda: rdf.penalty_grad(w, g, l2=0.1, as_float=1)),
        (ValueError, "C-contiguous", lambda: rdf.max_norm(torch.randn(10, 6, device="cuda").t(), 1.0, axis=0)),
        (ValueError, "max_value", lambda: rdf.max_norm(w[0], 0.0, axis=0)),
        (ValueError, "axis", lambda: rdf.max_norm(w[0], 1.0, axis=1)),
        (TypeError, "int32", lambda: rdf.max_norm(torch.ones(3, 3, device="cuda", dtype=torch.int32), 1.0, axis=0)),
    ]
    for exc, match, call in cases:
        with pytest.raises(exc, match=match):
            call()
        assert unchanged(), f"a rejected call ({match}) modified an array"


@pytest.mark.cuda
def test_penalty_arrays_on_two_devices_rejected(torch_cuda):
    torch = torch_cuda
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA devices")
    from conftest import to_numpy

    w = [torch.randn(5, device="cuda:0"), torch.randn(5, device="cuda:1")]
    g = [torch.randn(5, device="cuda:0"), torch.randn(5, device="cuda:0")]
    with pytest.raises(ValueError, match="device"):
        rdf.penalty_grad(w, g, l2=0.1)
    w1 = [torch.randn(5, device="cuda:1")]
    g1 = [torch.randn(5, device="cuda:1")]
    g1_cpu = [to_numpy(g1[0])]
    value = rdf.penalty_grad(w1, g1, l2=0.5)  # launched on device 1 whatever device is current
    assert value.device == torch.device("cuda:1")
    v_cpu = rdf.penalty_grad([to_numpy(w1[0])], g1_cpu, l2=0.5)
    assert_close(float(value), v_cpu, rtol=2e-12)  # both within 1e-12 of the reference
    assert same_bits(to_numpy(g1[0]), g1_cpu[0])


@pytest.mark.cuda
def test_penalty_mixed_libraries_rejected_and_cupy_supported(torch_cuda):
    torch = torch_cuda
    cupy = pytest.importorskip("cupy")
    wc = cupy.asarray(np.linspace(-2, 2, 1001, dtype=np.float32))
    gc = cupy.zeros(1001, np.float32)
    with pytest.raises(ValueError, match="library"):
        rdf.penalty_grad([wc, torch.randn(3, device="cuda")], [gc, torch.zeros(3, device="cuda")], l2=0.1)
    with pytest.raises(ValueError, match="library"):
        rdf.penalty_grad([wc], [torch.zeros(1001, device="cuda")], l2=0.1)
    assert not bool(gc.any())
    value = rdf.penalty_grad(wc, gc, l1=0.1, l2=0.2)
    assert isinstance(value, cupy.ndarray) and value.shape == () and value.dtype == np.float64
    w, g = cupy.asnumpy(wc), np.zeros(1001, np.float32)
    assert_close(float(value), rdf.penalty_grad(w, g, l1=0.1, l2=0.2))
    assert same_bits(cupy.asnumpy(gc), g)
    count = rdf.prox_l1(wc, 0.5)
    assert isinstance(count, cupy.ndarray) and int(count) == rdf.prox_l1(w, 0.5)
    m = cupy.asarray(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    mh = cupy.asnumpy(m)
    assert int(rdf.max_norm(m, 5.0, axis=(0, 2))) == rdf.max_norm(mh, 5.0, axis=(0, 2))
    assert same_bits(cupy.asnumpy(m), mh)
