"""Weight penalties (issue 3): penalty_grad, penalty, prox_l1, decay and max_norm against the NumPy reference.

Gradients, prox_l1, decay and max_norm must equal the reference bit for bit on every dtype and SIMD path;
penalty values within 1e-12 relative of the reference, and bit-identical for every thread count and SIMD
path. Every bad input raises the documented error and leaves every array of the call unchanged.
"""

from __future__ import annotations

import threading

import conftest
import numpy as np
import pytest
from conftest import (
    BFLOAT16,
    DTYPE_IDS,
    DTYPES,
    assert_same_bits,
    assert_unchanged,
    run_each_simd,
    run_each_thread_count,
    snapshot,
    special_values,
)

import regdrop_fast as rdf
from regdrop_fast import reference

IMPLS = pytest.mark.parametrize("impl", [rdf, reference], ids=["native", "reference"])
ALL_DTYPES = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)

# Odd sizes around the 16-element groups and the 2^16-element tasks, an empty and a 0-d array.
SHAPES = [(3, 5), (278011,), (0,), (), (1,), (17,), (65536 + 3,), (2, 33, 7)]
COEFFICIENTS = [  # (l1, l2): each term alone, both, and per-array lists with zeros (excluded arrays)
    (0.0, 0.1),
    (0.01, 0.0),
    (0.01, 0.1),
    ([0.0, 0.02, 0.0, 1.5, 0.01, 0.0, 0.3, 0.0], [0.1, 0.0, 0.0, 0.2, 0.4, 0.0, 1e-4, 3.0]),
]


def random_values(rng, shape, dtype) -> np.ndarray:
    """conftest.random_values as an ndarray also for shape () (NumPy gives a scalar there)."""
    return np.asarray(conftest.random_values(rng, shape, dtype))


def make_params(rng, dtype, shapes=SHAPES, specials=True):
    """Random arrays of the given shapes; the largest also holds every special value (inf, NaN, -0, ...)."""
    params = [random_values(rng, s, dtype) for s in shapes]
    if specials:
        big = max(params, key=lambda a: a.size).reshape(-1)
        sv = special_values(dtype)
        big[100:100 + sv.size] = sv
    return params


def copies(arrays):
    return [a.copy() for a in arrays]


def assert_all_same_bits(actual, expected, what):
    assert len(actual) == len(expected)
    for i, (a, b) in enumerate(zip(actual, expected)):
        assert_same_bits(a, b, f"{what}[{i}]")


def assert_value_close(actual, expected, rtol=1e-12):
    assert type(actual) is float
    if np.isnan(expected):
        assert np.isnan(actual)
    elif np.isinf(expected) or expected == 0.0:
        assert actual == expected
    else:
        assert abs(actual - expected) <= rtol * abs(expected), (actual, expected)


def finite_only(params):
    return [np.where(np.isfinite(p.astype(np.float64)), p, p.dtype.type(0)) for p in params]


# ----------------------------------------------------------------------------------------------------------
# penalty_grad and penalty against the reference


@ALL_DTYPES
@pytest.mark.parametrize("l1,l2", COEFFICIENTS, ids=["l2", "l1", "l1+l2", "per-array"])
def test_penalty_grad_matches_reference(each_simd, rng, dtype, l1, l2):
    params = make_params(rng, dtype)
    grads = [random_values(rng, p.shape, dtype) for p in params]
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
    grads = [random_values(rng, p.shape, dtype) for p in params]

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
    w = random_values(rng, 4099, dtype)
    g = random_values(rng, 4099, dtype)
    out = g.copy()
    rdf.penalty_grad(w, out, l1=0.01, l2=0.3)
    ct = np.float64 if dtype == np.float64 else np.float32
    wc = w.astype(ct)
    expected = (g.astype(ct) + (ct(0.01) * np.sign(wc) + ct(0.3) * wc)).astype(dtype)
    assert_same_bits(out, expected, "grad")


# ----------------------------------------------------------------------------------------------------------
# prox_l1 and decay


@ALL_DTYPES
@pytest.mark.parametrize("threshold", [0.0, 0.5, 1e-3, [0.0, 0.7, 2.0, 0.1, 0.0, 0.3, 5.0, 0.2]],
                         ids=["0", "0.5", "1e-3", "per-array"])
def test_prox_l1_matches_reference(each_simd, rng, dtype, threshold):
    params = make_params(rng, dtype)
    native, ref = copies(params), copies(params)
    zeros = rdf.prox_l1(native, threshold)
    assert type(zeros) is int
    assert zeros == reference.prox_l1(ref, threshold)
    assert_all_same_bits(native, ref, "params")
    assert zeros == sum(int(np.count_nonzero(p == 0)) for p in native)
    for p in native:  # thresholded values are +0, never -0
        assert not np.any(np.signbit(p.astype(np.float64)) & (p == 0))


def test_prox_l1_is_soft_thresholding():
    w = np.array([-3.0, -0.5, -0.0, 0.0, 0.25, 0.5, 2.0, np.inf, -np.inf, np.nan])
    zeros = rdf.prox_l1(w, 0.5)
    assert_same_bits(w, np.array([-2.5, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5, np.inf, -np.inf, np.nan]), "prox")
    assert zeros == 5


@ALL_DTYPES
@pytest.mark.parametrize("factor", [0.0, 0.1, 1e-4, 1.0, [0.0, 0.1, 0.5, 0.0, 1.0, 0.2, 0.3, 0.01]],
                         ids=["0", "0.1", "1e-4", "1", "per-array"])
def test_decay_matches_reference(each_simd, rng, dtype, factor):
    params = make_params(rng, dtype)
    native, ref = copies(params), copies(params)
    assert rdf.decay(native, factor) is None
    reference.decay(ref, factor)
    assert_all_same_bits(native, ref, "params")


def test_decay_factor_zero_leaves_bits_alone():
    w = np.array([1.0, np.nan, -0.0], np.float32)
    w.view(np.uint32)[1] = 0x7F800001  # a signalling NaN, which a multiply by 1 would quiet
    before = w.copy()
    rdf.decay([w], 0.0)
    assert_same_bits(w, before, "w")


# ----------------------------------------------------------------------------------------------------------
# max_norm

MAX_NORM_CASES = [
    ((300, 70), 0),          # Keras Dense kernel (in, out): each unit's incoming weights, strided columns
    ((300, 70), 1),          # torch Linear weight (out, in): contiguous rows
    ((70, 3000), 1),         # long rows (several lane groups per slice, tasks of one row)
    ((5, 6, 7, 8), (0, 1, 2)),  # Keras Conv2D kernel (h, w, in, out)
    ((8, 7, 3, 3), (1, 2, 3)),  # torch Conv2d weight (out, in, h, w)
    ((5, 6, 7, 8), (1, 2)),  # middle axes: (outer, reduce, inner)
    ((5, 6, 7, 8), (0, 2)),  # axes apart: the transposed-copy path
    ((40,), 0),              # one slice
    ((3, 4, 5), -1),
    ((0, 5), 0),
    ((5, 0), 0),
    ((4097, 19), 0),         # column bands narrower than the row
    ((30000, 3, 2), 1),      # many small outer blocks, several to a task
]


@ALL_DTYPES
@pytest.mark.parametrize("shape,axis", MAX_NORM_CASES, ids=[f"{s}-{a}" for s, a in MAX_NORM_CASES])
def test_max_norm_matches_reference(each_simd, rng, dtype, shape, axis):
    w = random_values(rng, shape, dtype)
    if w.size:  # slices of very different norms, so some exceed the bound and some do not
        w = (w.astype(np.float64) * rng.uniform(0.05, 2.0, size=shape[-1])).astype(dtype)
    native, ref = w.copy(), w.copy()
    count = rdf.max_norm(native, 4.0, axis=axis)
    assert type(count) is int
    assert count == reference.max_norm(ref, 4.0, axis=axis)
    assert_same_bits(native, ref, "w")


def slice_norms(w, axis):
    return np.sqrt(np.sum(np.square(w.astype(np.float64)), axis=axis, keepdims=True))


@ALL_DTYPES
@pytest.mark.parametrize("shape,axis", [((200, 50), 0), ((50, 200), 1), ((4, 5, 6, 7), (0, 2))])
def test_max_norm_rescales_exceeding_slices_and_leaves_the_rest_untouched(rng, dtype, shape, axis):
    scale = rng.uniform(0.02, 1.0, size=shape[-1])
    w = (random_values(rng, shape, dtype).astype(np.float64) * scale).astype(dtype)
    max_value = float(np.median(slice_norms(w, axis)))
    before = w.copy()
    count = rdf.max_norm(w, max_value, axis=axis)
    norms_before = np.broadcast_to(slice_norms(before, axis), w.shape)
    inside = norms_before <= max_value
    assert 0 < count < np.size(slice_norms(before, axis))
    assert count == int(np.count_nonzero(slice_norms(before, axis) > max_value))
    assert_same_bits(w[inside], before[inside], "slices within the bound")
    eps = float(np.finfo(np.float32).eps if dtype != np.float64 else np.finfo(np.float64).eps)
    rounding = {np.dtype(np.float16): 2e-3, BFLOAT16: 1.6e-2}.get(np.dtype(dtype), 10 * eps)
    after = np.broadcast_to(slice_norms(w, axis), w.shape)[~inside]
    np.testing.assert_allclose(after, max_value, rtol=rounding)


def test_max_norm_nan_and_zero_slices_are_left_alone():
    w = np.array([[np.nan, 10.0], [0.0, 0.0], [3.0, 4.0]], np.float32)
    before = w.copy()
    assert rdf.max_norm(w, 1.0, axis=1) == 1
    assert_same_bits(w[:2], before[:2], "NaN-norm and zero rows")
    np.testing.assert_allclose(w[2], [0.6, 0.8], rtol=1e-6)


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


def rejects(exc, match, call, arrays):
    before = snapshot(*arrays)
    with pytest.raises(exc, match=match):
        call()
    assert_unchanged(arrays, before)


@pytest.fixture
def pair():
    """Two valid (param, grad) pairs; bad entries are appended after them."""
    ws = [np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4), np.linspace(-2, 2, 7, dtype=np.float32)]
    gs = [np.full(w.shape, 0.5, np.float32) for w in ws]
    return ws, gs


def read_only(a):
    a.flags.writeable = False
    return a


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
    ("strided grad", lambda w, g: (w + [np.ones(3, np.float32)], g + [np.ones(6, np.float32)[::2]]), {},
     ValueError, r"grads\[2\]: must be C-contiguous"),
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
    rejects(exc, match, lambda: impl.penalty_grad(params, grads, **kwargs), arrays)


@IMPLS
def test_penalty_rejects(impl, pair):
    ws, _ = pair
    rejects(TypeError, r"params\[2\]: dtype bool", lambda: impl.penalty(ws + [np.ones(2, bool)], l2=1.0), ws)
    rejects(ValueError, r"l1: expected a finite", lambda: impl.penalty(ws, l1=-1.0), ws)
    rejects(ValueError, r"l2: 3 coefficients for 2 arrays", lambda: impl.penalty(ws, l2=[1.0, 1.0, 1.0]), ws)
    rejects(TypeError, r"params: expected an array or a sequence", lambda: impl.penalty("abc", l2=1.0), ws)


UPDATE_BAD = [  # {name} is the coefficient's name: threshold (prox_l1) or factor (decay)
    ("int array", lambda w: w + [np.ones(3, np.int16)], 0.1, TypeError, r"params\[2\]: dtype int16"),
    ("list entry", lambda w: w + [[1.0, 2.0]], 0.1, TypeError, r"params\[2\]: expected a numpy.ndarray"),
    ("read-only", lambda w: w + [read_only(np.ones(3, np.float32))], 0.1, ValueError,
     r"params\[2\]: must be writeable"),
    ("strided", lambda w: w + [np.ones((4, 4), np.float32)[:, 1]], 0.1, ValueError,
     r"params\[2\]: must be C-contiguous"),
    ("twice", lambda w: w + [w[0]], 0.1, ValueError, r"params\[\d\] overlaps params\[\d\] in memory"),
    ("negative", lambda w: w, -0.5, ValueError, r"{name}: expected .*, got -0.5"),
    ("nan", lambda w: w, float("nan"), ValueError, r"{name}: expected .*, got nan"),
    ("inf", lambda w: w, float("inf"), ValueError, r"{name}: expected .*, got inf"),
    ("entry", lambda w: w, [0.1, -1.0], ValueError, r"{name}\[1\]: expected .*, got -1.0"),
    ("wrong length", lambda w: w, [0.1, 0.1, 0.1], ValueError, r"{name}: 3 coefficients for 2 arrays"),
    ("str", lambda w: w, "x", TypeError, r"{name}: expected a number or a sequence"),
    ("none", lambda w: w, None, TypeError, r"{name}: expected real numbers, got object"),
]


@IMPLS
@pytest.mark.parametrize("op,name", [("prox_l1", "threshold"), ("decay", "factor")])
@pytest.mark.parametrize("case", UPDATE_BAD, ids=[c[0] for c in UPDATE_BAD])
def test_in_place_list_operations_reject(impl, pair, op, name, case):
    ws, _ = pair
    _, build, coef, exc, match = case
    params = build(ws)
    arrays = [a for a in params if isinstance(a, np.ndarray)]
    rejects(exc, match.format(name=name), lambda: getattr(impl, op)(params, coef), arrays)


@IMPLS
def test_decay_factor_above_one_rejected(impl, pair):
    ws, _ = pair
    rejects(ValueError, r"factor: expected a number in \[0, 1\], got 1.5", lambda: impl.decay(ws, 1.5), ws)
    rejects(ValueError, r"factor\[1\]: expected a number in \[0, 1\]", lambda: impl.decay(ws, [0.1, 2.0]), ws)


POSITIVE = r"max_value: expected a finite number > 0"
MAX_NORM_BAD = [
    ("zero max", {"max_value": 0.0, "axis": 0}, ValueError, POSITIVE + ", got 0.0"),
    ("negative max", {"max_value": -1.0, "axis": 0}, ValueError, POSITIVE + ", got -1.0"),
    ("nan max", {"max_value": float("nan"), "axis": 0}, ValueError, POSITIVE + ", got nan"),
    ("inf max", {"max_value": float("inf"), "axis": 0}, ValueError, POSITIVE + ", got inf"),
    ("str max", {"max_value": "1", "axis": 0}, TypeError, POSITIVE + ", got str"),
    ("axis 2", {"max_value": 1.0, "axis": 2}, ValueError, r"axis: 2 is out of range for an array of 2 dim"),
    ("axis -3", {"max_value": 1.0, "axis": -3}, ValueError, r"axis: -3 is out of range"),
    ("axis float", {"max_value": 1.0, "axis": 0.0}, TypeError, r"axis: expected an int or a tuple of ints"),
    ("axis none", {"max_value": 1.0, "axis": None}, TypeError, r"axis: expected an int or a tuple of ints"),
    ("axis repeated", {"max_value": 1.0, "axis": (0, -2)}, ValueError, r"axis: repeated axis"),
    ("axis empty", {"max_value": 1.0, "axis": ()}, ValueError, r"axis: expected at least one axis"),
]


@IMPLS
@pytest.mark.parametrize("case", MAX_NORM_BAD, ids=[c[0] for c in MAX_NORM_BAD])
def test_max_norm_rejects(impl, case):
    _, kwargs, exc, match = case
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    rejects(exc, match, lambda: impl.max_norm(w, **kwargs), [w])


@IMPLS
def test_max_norm_rejects_bad_arrays(impl):
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    ints = np.ones((2, 2), np.int64)
    rejects(TypeError, r"w: dtype int64 is not supported", lambda: impl.max_norm(ints, 1.0, axis=0), [ints])
    rejects(TypeError, r"w: expected a numpy.ndarray", lambda: impl.max_norm([[1.0, 2.0]], 1.0, axis=0), [])
    rejects(ValueError, r"w: must be writeable", lambda: impl.max_norm(read_only(w.copy()), 1.0, axis=0), [])
    rejects(ValueError, r"w: must be C-contiguous", lambda: impl.max_norm(w.T, 1.0, axis=0), [w])
    rejects(TypeError, r"missing 1 required keyword-only argument: 'axis'",
            lambda: impl.max_norm(w, 1.0), [w])
