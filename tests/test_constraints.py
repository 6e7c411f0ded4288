"""Keras's weight constraints: norm_constraint (MinMaxNorm, max_norm its case), unit_norm (UnitNorm) and
non_neg (NonNeg), in place, on every backend against the NumPy reference and the CPU kernels bit for bit;
what Keras's own constraint tests assert (keras/src/constraints/constraints_test.py, ConstraintsTest);
threads, fork, torch helpers. Bad input: tests/test_errors.py TABLE.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import (
    ALL_DTYPES,
    assert_backend_bits,
    assert_same_bits,
    is_result_scalar,
    per_backend,
    random_array,
    run_each_thread_count,
    same_bits,
    scalar,
    values,
)

import regdrop_fast as rdf
from regdrop_fast import reference

SHAPES = [  # (shape, axis): max_norm's paths (rows, column bands, transposed copy, one slice, empty)
    ((300, 70), 0),
    ((300, 70), 1),
    ((70, 3000), 1),
    ((5, 6, 7, 8), (0, 1, 2)),
    ((8, 7, 3, 3), (1, 2, 3)),
    ((5, 6, 7, 8), (0, 2)),
    ((40,), 0),
    ((0, 5), 0),
    ((4097, 19), 0),
]
BOUNDS = [  # (min_value, max_value, rate)
    (0.0, 4.0, 1.0),
    (3.0, 6.0, 1.0),
    (3.0, 6.0, 0.25),
    (5.0, np.inf, 1.0),
    (1.0, 1.0, 1.0),
    (2.0, 5.0, 0.0),
]


def spread(rng, shape, dtype):
    """Values whose slices have very different norms (some below, within and above any bound above), and a
    zero slice."""
    w = random_array(rng, shape, dtype)
    if w.size:
        w = (w.astype(np.float64) * rng.uniform(0.01, 2.0, size=shape[-1])).astype(dtype)
        w[..., 0] = 0
    return w


@ALL_DTYPES
@pytest.mark.parametrize("shape,axis", SHAPES, ids=[f"{s}-{a}" for s, a in SHAPES])
@pytest.mark.parametrize("bounds", BOUNDS, ids=[f"{b}" for b in BOUNDS])
def test_norm_constraint_matches_reference(each_simd, rng, dtype, shape, axis, bounds):
    lo, hi, rate = bounds
    w = spread(rng, shape, dtype)
    native, ref = w.copy(), w.copy()
    count = rdf.norm_constraint(native, min_value=lo, max_value=hi, rate=rate, axis=axis)
    assert type(count) is int
    assert count == reference.norm_constraint(ref, min_value=lo, max_value=hi, rate=rate, axis=axis)
    assert_same_bits(native, ref, "w")
    axes = axis if isinstance(axis, tuple) else (axis,)
    norms = np.sqrt(np.sum(np.square(w.astype(np.float64)), axis=axes))
    if rate == 0.0:
        assert count == 0 and same_bits(native, w)
    elif w.size:
        outside = (norms > 0) & ((norms < lo) | (norms > hi))
        assert count == int(np.count_nonzero(outside))


@ALL_DTYPES
@pytest.mark.parametrize("shape,axis", SHAPES, ids=[f"{s}-{a}" for s, a in SHAPES])
def test_max_norm_and_unit_norm_are_cases_of_norm_constraint(rng, dtype, shape, axis):
    w = spread(rng, shape, dtype)
    a, b, c, d = w.copy(), w.copy(), w.copy(), w.copy()
    assert rdf.max_norm(a, 2.0, axis=axis) == rdf.norm_constraint(b, max_value=2.0, axis=axis)
    assert_same_bits(a, b, "max_norm")
    assert rdf.unit_norm(c, axis=axis) == rdf.norm_constraint(d, min_value=1.0, max_value=1.0, axis=axis)
    assert_same_bits(c, d, "unit_norm")
    e = w.copy()
    assert reference.unit_norm(e, axis=axis) == rdf.unit_norm(w.copy(), axis=axis)
    assert_same_bits(e, c, "unit_norm vs reference")


def test_slices_within_the_bounds_zero_and_nan_are_left_alone():
    w = np.array([[0.0, 3.0, np.nan, 0.3, 30.0, np.inf],
                  [-0.0, 4.0, 1.0, 0.4, 40.0, 1.0]], np.float32)  # norms 0, 5, NaN, 0.5, 50, inf
    for rate, changed in ((1.0, [3, 4, 5]), (0.5, [3, 4])):
        v = w.copy()
        assert rdf.norm_constraint(v, min_value=1.0, max_value=10.0, rate=rate, axis=0) == len(changed)
        kept = [k for k in range(6) if k not in changed]
        assert same_bits(v[:, kept], w[:, kept])
        if rate == 1.0:
            assert np.allclose(np.linalg.norm(v[:, [3, 4]].astype(np.float64), axis=0), [1.0, 10.0], rtol=1e-6)
            assert np.isnan(v[0, 5]) and same_bits(v[1, 5], np.float32(0.0))  # the factor 0, as max_norm's
        else:  # halfway: 0.5 * 1 + 0.5 * 0.5 and 0.5 * 10 + 0.5 * 50
            assert np.allclose(np.linalg.norm(v[:, [3, 4]].astype(np.float64), axis=0), [0.75, 30.0], rtol=1e-6)
    ref = w.copy()
    assert reference.norm_constraint(ref, min_value=1.0, max_value=10.0, rate=0.5, axis=0) == 2


@ALL_DTYPES
def test_non_neg_matches_reference(each_simd, rng, dtype):
    sizes = (278011, 0, 1, 17, 65537)
    params = [values(rng, n, dtype, specials=True) for n in sizes]
    native, ref = [p.copy() for p in params], [p.copy() for p in params]
    count = rdf.non_neg(native)
    assert type(count) is int
    assert count == reference.non_neg(ref)
    with np.errstate(invalid="ignore"):
        assert count == sum(int(np.count_nonzero(p < 0)) for p in params)
    for i, (a, b) in enumerate(zip(native, ref)):
        assert_same_bits(a, b, f"params[{i}]")
        with np.errstate(invalid="ignore"):
            assert not np.any(a < 0)
            kept = ~(params[i] < 0)
        assert same_bits(a[kept], params[i][kept])  # -0.0, NaN, +inf and positives untouched
        assert not np.any(np.signbit(a[~kept].astype(np.float64)))  # negatives became +0


def test_non_neg_on_any_layout(rng):
    base = rng.standard_normal((40, 60)).astype(np.float32)
    for view in (base.T, base[::-2, 1::3], np.asfortranarray(base)):
        copy = np.ascontiguousarray(view)
        assert rdf.non_neg(view) == rdf.non_neg(copy)
        assert_same_bits(np.ascontiguousarray(view), copy, "view")


# ----------------------------------------------------------------------------------------------------------
# What Keras's constraint tests assert (keras/src/constraints/constraints_test.py, ConstraintsTest), on an
# array like their get_example_array (100 x 100 uniform in [-50, 50), element [0, 0] = 0), in float32 (Keras's
# floatx) and float64, with Keras's assertAllClose tolerances (1e-6) where they compare values.


def keras_example_array(dtype):
    a = np.random.default_rng(3537).random((100, 100)) * 100.0 - 50.0
    a[0, 0] = 0.0
    return a.astype(dtype)


def keras_formula(w, lo, hi, rate, axis):
    """Keras MinMaxNorm's formula in float64: w * desired / (epsilon + norm), epsilon 1e-7."""
    w = w.astype(np.float64)
    norms = np.sqrt(np.sum(np.square(w), axis=axis, keepdims=True))
    desired = rate * np.clip(norms, lo, hi) + (1 - rate) * norms
    return w * (desired / (1e-7 + norms))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_keras_max_norm(dtype):
    """ConstraintsTest.test_max_norm: MaxNorm(2.0) (axis 0) on four columns given transposed (np.array(...).T),
    against their target: columns of norm 0, 1 unchanged, (3, 0, 0) -> (2, 0, 0), (3, 3, 3) -> 2 / sqrt(3)."""
    x = np.array([[0, 0, 0], [1.0, 0, 0], [3, 0, 0], [3, 3, 3]], dtype).T  # not C-contiguous, as theirs
    target = np.array([[0, 0, 0], [1.0, 0, 0], [2.0, 0, 0], [2.0 / np.sqrt(3)] * 3]).T
    for op in (lambda w: rdf.max_norm(w, 2.0, axis=0), lambda w: rdf.norm_constraint(w, max_value=2.0, axis=0)):
        w = x.copy(order="K")
        assert op(w) == 2
        np.testing.assert_allclose(w, target, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_keras_non_neg(dtype):
    """ConstraintsTest.test_non_neg: NonNeg leaves no negative element (min over axis 1 >= 0); and it equals
    Keras's w * (w >= 0) (as values: Keras gives -0.0 where we give +0)."""
    w = keras_example_array(dtype)
    expected = w * (w >= 0)
    rdf.non_neg(w)
    assert (np.min(w, axis=1) >= 0.0).all()
    assert np.array_equal(w, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_keras_unit_norm(dtype):
    """ConstraintsTest.test_unit_norm: UnitNorm (axis 0) gives columns of L2 norm 1 (assertAllClose)."""
    w = keras_example_array(dtype)
    expected = keras_formula(w, 1.0, 1.0, 1.0, 0)
    rdf.unit_norm(w, axis=0)
    np.testing.assert_allclose(np.sqrt(np.sum(np.square(w.astype(np.float64)), axis=0)), 1.0, rtol=1e-6)
    np.testing.assert_allclose(w, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1.0, 1e-4], ids=["above", "below"])
def test_keras_min_max_norm(dtype, scale):
    """ConstraintsTest.test_min_max_norm: MinMaxNorm(min_value=0.2, max_value=0.5) (axis 0) gives column norms
    >= 0.2 and <= 0.5 + 1e-6. Their array's norms are all above 0.5; scaled by 1e-4 they are all below 0.2,
    which tests the lower bound too (>= 0.2 - 1e-6 there: the float32 result is rounded)."""
    w = (keras_example_array(np.float64) * scale).astype(dtype)
    expected = keras_formula(w, 0.2, 0.5, 1.0, 0)
    assert rdf.norm_constraint(w, min_value=0.2, max_value=0.5, axis=0) == 100
    l2 = np.sqrt(np.sum(np.square(w.astype(np.float64)), axis=0))
    assert (l2 >= 0.2 - 1e-6).all()
    assert (l2 <= 0.5 + 1e-6).all()
    np.testing.assert_allclose(w, expected, rtol=1e-6, atol=1e-6)


def test_keras_min_max_norm_rate():
    """Keras's rate: rate * clip(norm) + (1 - rate) * norm, against the formula (Keras's epsilon changes the
    result by about 1e-7 relative)."""
    w = keras_example_array(np.float64) * 0.01  # column norms around 2.9
    expected = keras_formula(w, 0.2, 1.0, 0.3, 0)
    rdf.norm_constraint(w, min_value=0.2, max_value=1.0, rate=0.3, axis=0)
    np.testing.assert_allclose(w, expected, rtol=1e-6, atol=1e-12)


# ----------------------------------------------------------------------------------------------------------
# every backend against the CPU kernels and the reference

DEVICE_SHAPES = [((300, 70), 0), ((300, 70), 1), ((5, 6, 7, 8), (0, 2)), ((40,), 0), ((33, 65), 0)]


@ALL_DTYPES
@pytest.mark.parametrize("backend,case", per_backend(DEVICE_SHAPES, ids=lambda c: f"{c[0]}-{c[1]}"),
                         indirect=["backend"])
def test_norm_constraint_matches_cpu_and_reference(backend, dtype, case):
    backend.require(dtype)
    shape, axis = case
    rng = np.random.default_rng(sum(shape))
    w = spread(rng, shape, dtype)
    for lo, hi, rate in ((3.0, 6.0, 0.25), (1.0, 1.0, 1.0)):
        wd = backend.asarray(w.copy())
        count = rdf.norm_constraint(wd, min_value=lo, max_value=hi, rate=rate, axis=axis)
        assert is_result_scalar(backend, count, np.int64)
        cpu, ref = w.copy(), w.copy()
        c_cpu = rdf.norm_constraint(cpu, min_value=lo, max_value=hi, rate=rate, axis=axis)
        assert scalar(count) == c_cpu == reference.norm_constraint(ref, min_value=lo, max_value=hi, rate=rate,
                                                                   axis=axis)
        assert same_bits(backend.to_numpy(wd), cpu) and same_bits(cpu, ref)
    wd = backend.asarray(w.copy())
    cpu = w.copy()
    assert rdf.unit_norm(wd, axis=axis, as_int=True) == rdf.unit_norm(cpu, axis=axis)
    assert_backend_bits(backend, wd, cpu, "unit_norm")


@ALL_DTYPES
@pytest.mark.parametrize("backend", ["cpu", "cuda-emulated", pytest.param("cuda", marks=pytest.mark.cuda)],
                         indirect=True)
def test_non_neg_matches_cpu_and_reference(backend, dtype):
    backend.require(dtype)
    rng = np.random.default_rng(4)
    sizes = backend.sizes((278011, 0, 1, 17, 65537), (5003, 0, 1, 17, 40))
    params = [values(rng, n, dtype, specials=True) for n in sizes]
    wd = [backend.asarray(p.copy()) for p in params]
    count = rdf.non_neg(wd)
    assert is_result_scalar(backend, count, np.int64)
    cpu, ref = [p.copy() for p in params], [p.copy() for p in params]
    assert scalar(count) == rdf.non_neg(cpu) == reference.non_neg(ref)
    for i in range(len(params)):
        assert_backend_bits(backend, wd[i], cpu[i], f"params[{i}]")
        assert_same_bits(cpu[i], ref[i], f"params[{i}]")


# ----------------------------------------------------------------------------------------------------------
# threads and fork


def test_thread_counts_and_simd_paths_agree():
    def run():
        rng = np.random.default_rng(6)
        a = spread(rng, (4097, 19), np.float32)
        b = spread(rng, (70, 3000), np.float32)
        c = values(rng, 300001, np.float32)
        counts = (rdf.norm_constraint(a, min_value=1.0, max_value=3.0, rate=0.5, axis=0),
                  rdf.unit_norm(b, axis=1), rdf.non_neg(c))
        return counts, a.tobytes() + b.tobytes() + c.tobytes()

    results = list(run_each_thread_count(run).values())
    assert all(r == results[0] for r in results)


def test_concurrent_calls_from_python_threads():
    rng = np.random.default_rng(7)
    inputs = [spread(rng, (500, 300), np.float32) for _ in range(4)]
    expected = []
    for w in inputs:
        e = w.copy()
        expected.append((rdf.norm_constraint(e, min_value=0.5, max_value=2.0, axis=1), rdf.non_neg(e), e))
    results: list = [None] * 4

    def work(i):
        for _ in range(10):
            w = inputs[i].copy()
            results[i] = (rdf.norm_constraint(w, min_value=0.5, max_value=2.0, axis=1), rdf.non_neg(w), w)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r, e in zip(results, expected):
        assert r[:2] == e[:2] and same_bits(r[2], e[2])


def test_forked_child_runs_the_constraints():
    """A child forked after the pool ran (threads started) runs the constraints on its own pool, with the
    parent's bits."""
    from test_reliability import run_child

    out = run_child("""
    rdf.set_num_threads(2)
    rng = np.random.default_rng(8)
    w = rng.standard_normal((3000, 300)).astype(np.float32)
    parent = w.copy()
    expected = (rdf.norm_constraint(parent, min_value=3.0, max_value=5.0, rate=0.5, axis=1), rdf.non_neg(parent))
    pid = os.fork()
    if pid == 0:
        child = w.copy()
        got = (rdf.norm_constraint(child, min_value=3.0, max_value=5.0, rate=0.5, axis=1), rdf.non_neg(child))
        os._exit(0 if got == expected and child.tobytes() == parent.tobytes() else 3)
    _, status = os.waitpid(pid, 0)
    assert status == 0, status
    print("ok")
    """, timeout=60)
    assert out.startswith("ok")


# ----------------------------------------------------------------------------------------------------------
# regdrop_fast.torch


def test_torch_helpers_equal_the_numpy_api():
    torch = pytest.importorskip("torch")
    import regdrop_fast.torch as rft

    gen = torch.Generator().manual_seed(1)
    linear = torch.randn(30, 20, generator=gen) * 2
    conv = torch.randn(8, 3, 5, 5, generator=gen) * 0.5  # torch Conv2d weight (out, in, h, w)
    bias = torch.randn(30, generator=gen)
    params = [linear, conv, bias]
    arrays = [t.numpy().copy() for t in params]
    # dim 0: one slice per output unit / filter (Keras axis = every other axis); a 1-d tensor's slices are
    # its elements
    expected = sum(rdf.norm_constraint(a.reshape(-1, 1) if a.ndim == 1 else a, min_value=0.5, max_value=1.5,
                                       rate=0.5, axis=tuple(range(1, max(a.ndim, 2)))) for a in arrays)
    count = rft.norm_constraint_(params, min_value=0.5, max_value=1.5, rate=0.5, dim=0)
    assert count.dtype == torch.int64 and int(count) == expected
    for t, a in zip(params, arrays):
        assert np.array_equal(t.numpy(), a)
    count = rft.unit_norm_([linear, conv], dim=0)
    assert int(count) == 38 - int(np.sum(np.isclose(np.linalg.norm(arrays[0], axis=1), 1.0, rtol=0, atol=0)))
    np.testing.assert_allclose(linear.norm(dim=1).numpy(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(conv.flatten(1).norm(dim=1).numpy(), 1.0, rtol=1e-6)
    signed = [torch.randn(10, generator=gen), torch.randn(3, 4, generator=gen).t()]
    expected_neg = sum(int((s < 0).sum()) for s in signed)
    assert int(rft.non_neg_(signed)) == expected_neg
    assert all(bool((s >= 0).all()) for s in signed)
    assert int(rft.non_neg_([])) == 0


def test_torch_parameters_stay_parameters():
    torch = pytest.importorskip("torch")
    import regdrop_fast.torch as rft

    layer = torch.nn.Linear(6, 4)
    with torch.no_grad():
        layer.weight.mul_(10)
    weight = layer.weight
    rft.unit_norm_(layer.weight, dim=0)
    assert layer.weight is weight and weight.requires_grad
    np.testing.assert_allclose(weight.detach().norm(dim=1).numpy(), 1.0, rtol=1e-6)
