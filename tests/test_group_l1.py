"""prox_group_l1 (group soft-thresholding in place, groups = max_norm's slices) on every backend against the
NumPy reference bit for bit and a plain NumPy formula; a multi-task Lasso solved with it matches
scikit-learn's MultiTaskLasso (its L2,1 penalty); layouts, lists, threads, fork. Bad input: tests/test_errors.py.
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
)

import regdrop_fast as rdf
from regdrop_fast import reference

SHAPES = [  # (shape, axis): max_norm's paths
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


def groups(rng, shape, dtype):
    """Values whose groups have very different norms (some below any threshold used here), one group zero."""
    w = random_array(rng, shape, dtype)
    if w.size:
        w = (w.astype(np.float64) * rng.uniform(0.001, 1.0, size=shape[-1])).astype(dtype)
        w[..., 0] = 0
    return w


def group_norms(w, axis):
    axes = axis if isinstance(axis, tuple) else (axis,)
    return np.sqrt(np.sum(np.square(w.astype(np.float64)), axis=axes, keepdims=True))


@ALL_DTYPES
@pytest.mark.parametrize("shape,axis", SHAPES, ids=[f"{s}-{a}" for s, a in SHAPES])
@pytest.mark.parametrize("threshold", [0.0, 0.5, 3.0])
def test_prox_group_l1_matches_reference(each_simd, rng, dtype, shape, axis, threshold):
    w = groups(rng, shape, dtype)
    native, ref = w.copy(), w.copy()
    zeroed = rdf.prox_group_l1(native, threshold, axis=axis)
    assert type(zeroed) is int
    assert zeroed == reference.prox_group_l1(ref, threshold, axis=axis)
    assert_same_bits(native, ref, "w")
    norms = group_norms(w, axis)
    assert zeroed == (int(np.count_nonzero(norms <= threshold)) if w.size else 0)
    # the plain formula max(0, 1 - t / ||w_g||) * w_g, in float64 (the kernels round the factor and products
    # to the compute type once: float32 / half types within their precision)
    with np.errstate(divide="ignore", invalid="ignore"):
        plain = np.maximum(0.0, 1.0 - threshold / norms) * w.astype(np.float64)
    plain[np.broadcast_to(norms == 0, plain.shape)] = 0.0
    tol = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-6}.get(np.dtype(dtype), 1e-2)
    np.testing.assert_allclose(native.astype(np.float64), plain, rtol=tol, atol=tol * max(1.0, threshold))
    zero_groups = np.broadcast_to(norms <= threshold, w.shape)
    assert not np.any(np.signbit(native[zero_groups].astype(np.float64)))  # +0, never -0


def test_zero_nan_and_inf_groups():
    w = np.array([[-0.0, 0.0], [np.nan, 1.0], [3.0, 4.0], [np.inf, 1.0], [0.3, -0.4]], np.float32)
    v = w.copy()
    assert rdf.prox_group_l1(v, 1.0, axis=1) == 2  # the zero row and the row of norm 0.5
    assert same_bits(v[0], np.zeros(2, np.float32)) and same_bits(v[4], np.zeros(2, np.float32))
    assert same_bits(v[1], w[1])  # NaN norm: left alone
    assert same_bits(v[3], w[3])  # inf norm: factor 1 - 1/inf = 1
    np.testing.assert_allclose(v[2], [2.4, 3.2], rtol=1e-6)
    v = w.copy()
    assert rdf.prox_group_l1(v, 0.0, axis=1) == 1  # t = 0: only the zero row (-0 becomes +0)
    assert same_bits(v[1:], w[1:]) and same_bits(v[0], np.zeros(2, np.float32))


def test_lists_with_a_threshold_each_and_any_layout(rng):
    base = rng.standard_normal((60, 40)).astype(np.float32)
    conv = rng.standard_normal((8, 3, 3, 3)) * 0.2
    params = [base.T, base[:30].copy()[::-1], conv]
    for axis, thresholds in ((1, [0.5, 2.0, 0.6]), (0, 1.0)):
        if axis == 0:
            params = [base.T.copy(), np.asfortranarray(base[:30]), conv.copy()]
        copies = [np.array(p, order="C", copy=True) for p in params]
        refs = [np.array(p, order="C", copy=True) for p in params]
        got = rdf.prox_group_l1(params, thresholds, axis=axis)
        assert got == rdf.prox_group_l1(copies, thresholds, axis=axis) == reference.prox_group_l1(refs, thresholds,
                                                                                                   axis=axis)
        for p, c, r in zip(params, copies, refs):
            assert_same_bits(np.ascontiguousarray(p), c, "layout")
            assert_same_bits(c, r, "reference")
    assert rdf.prox_group_l1([], 1.0, axis=0) == 0


def test_multi_task_lasso_matches_scikit_learn():
    """FISTA on 1/(2n) ||Y - X B||_F^2 + alpha * sum_j ||B[j, :]||_2 (scikit-learn's MultiTaskLasso: its coef_ is
    B.T, the L2,1 norm over each feature's row of B) with prox_group_l1 as the proximal step: the same
    coefficients within 1e-6."""
    sklearn = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(0)
    n, p, k = 60, 12, 3
    x = rng.standard_normal((n, p))
    true = np.zeros((p, k))
    true[:4] = 2 * rng.standard_normal((4, k))
    y = x @ true + 0.1 * rng.standard_normal((n, k))
    alpha = 0.1
    model = sklearn.MultiTaskLasso(alpha=alpha, fit_intercept=False, tol=1e-14, max_iter=100000).fit(x, y)
    step = n / np.linalg.norm(x, 2) ** 2
    b, z, t = np.zeros((p, k)), np.zeros((p, k)), 1.0
    for _ in range(3000):
        nxt = z - step * (x.T @ (x @ z - y) / n)
        zeroed = rdf.prox_group_l1(nxt, step * alpha, axis=1)
        t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
        z = nxt + ((t - 1) / t_next) * (nxt - b)
        b, t = nxt, t_next
    assert np.max(np.abs(b - model.coef_.T)) < 1e-6
    assert zeroed == int(np.count_nonzero(np.all(model.coef_ == 0, axis=0))) > 0  # the same features dropped


# ----------------------------------------------------------------------------------------------------------
# every backend against the CPU kernels and the reference

DEVICE_SHAPES = [((300, 70), 0), ((300, 70), 1), ((5, 6, 7, 8), (0, 2)), ((40,), 0), ((33, 65), 0)]


@ALL_DTYPES
@pytest.mark.parametrize("backend,case", per_backend(DEVICE_SHAPES, ids=lambda c: f"{c[0]}-{c[1]}"),
                         indirect=["backend"])
def test_prox_group_l1_matches_cpu_and_reference(backend, dtype, case):
    backend.require(dtype)
    shape, axis = case
    rng = np.random.default_rng(sum(shape))
    w = groups(rng, shape, dtype)
    for threshold in (0.0, 0.7):
        wd = backend.asarray(w.copy())
        count = rdf.prox_group_l1(wd, threshold, axis=axis)
        assert is_result_scalar(backend, count, np.int64)
        cpu, ref = w.copy(), w.copy()
        c_cpu = rdf.prox_group_l1(cpu, threshold, axis=axis)
        assert scalar(count) == c_cpu == reference.prox_group_l1(ref, threshold, axis=axis)
        assert same_bits(backend.to_numpy(wd), cpu) and same_bits(cpu, ref)
    # a list: the counts of its arrays summed on the device
    ws = [backend.asarray(w.copy()), backend.asarray(w[::-1].copy())]
    cpus = [w.copy(), w[::-1].copy()]
    assert rdf.prox_group_l1(ws, [0.5, 1.5], axis=axis, as_int=True) == rdf.prox_group_l1(cpus, [0.5, 1.5], axis=axis)
    for a, b in zip(ws, cpus):
        assert_backend_bits(backend, a, b, "list")


# ----------------------------------------------------------------------------------------------------------
# threads and fork


def test_thread_counts_and_simd_paths_agree():
    def run():
        rng = np.random.default_rng(6)
        a, b = groups(rng, (4097, 19), np.float32), groups(rng, (70, 3000), np.float32)
        counts = (rdf.prox_group_l1(a, 0.3, axis=0), rdf.prox_group_l1(b, 2.0, axis=1))
        return counts, a.tobytes() + b.tobytes()

    results = list(run_each_thread_count(run).values())
    assert all(r == results[0] for r in results)


def test_concurrent_calls_from_python_threads():
    rng = np.random.default_rng(7)
    inputs = [groups(rng, (500, 300), np.float32) for _ in range(4)]
    expected = []
    for w in inputs:
        e = w.copy()
        expected.append((rdf.prox_group_l1(e, 3.0, axis=1), e))
    results: list = [None] * 4

    def work(i):
        for _ in range(10):
            w = inputs[i].copy()
            results[i] = (rdf.prox_group_l1(w, 3.0, axis=1), w)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r, e in zip(results, expected):
        assert r[0] == e[0] and same_bits(r[1], e[1])


def test_forked_child_runs_prox_group_l1():
    from test_reliability import run_child

    out = run_child("""
    rdf.set_num_threads(2)
    w = np.random.default_rng(8).standard_normal((3000, 300)).astype(np.float32)
    parent = w.copy()
    expected = rdf.prox_group_l1(parent, 17.0, axis=1)
    pid = os.fork()
    if pid == 0:
        child = w.copy()
        got = rdf.prox_group_l1(child, 17.0, axis=1)
        os._exit(0 if got == expected and child.tobytes() == parent.tobytes() else 3)
    _, status = os.waitpid(pid, 0)
    assert status == 0, status
    print("ok")
    """, timeout=60)
    assert out.startswith("ok")
