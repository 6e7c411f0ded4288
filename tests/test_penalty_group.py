"""penalty / penalty_grad's group_l1 term (c * sum_g ||w_g||_2 over max_norm's slices, gradient c * w_g / ||w_g||,
0 at an all-zero group) with and without the l1 / l2 terms: every backend against the NumPy reference (gradients bit
for bit, values within 1e-12), against a plain NumPy formula, and against scikit-learn's MultiTaskLasso objective
(its L2,1 penalty); layouts, lists, threads, fork. Bad input: tests/test_errors.py.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import (
    ALL_DTYPES,
    assert_backend_bits,
    assert_close,
    assert_same_bits,
    per_backend,
    random_array,
    run_each_thread_count,
    same_bits,
    scalar,
)

import regdrop_fast as rdf
from regdrop_fast import reference

SHAPES = [  # (shape, axis): rows, columns, conv filters, reduced axes apart, 1-d, empty, odd sizes
    ((300, 70), 0),
    ((300, 70), 1),
    ((70, 3000), 1),
    ((8, 7, 3, 3), (1, 2, 3)),
    ((5, 6, 7, 8), (0, 1, 2)),
    ((5, 6, 7, 8), (0, 2)),
    ((40,), 0),
    ((0, 5), 0),
    ((5, 0), 0),
    ((4097, 19), 0),
    ((278011,), 0),
]
TERMS = [(0.0, 0.0), (0.1, 0.0), (0.0, 0.3), (0.1, 0.3)]


def groups(rng, shape, dtype):
    """Values whose groups have different norms; the first group along the kept axes is all zero."""
    w = random_array(rng, shape, dtype)
    if w.size and w.ndim > 1:
        w[(0,) * (w.ndim - 1)] = 0
    return w


def plain(w, c, axis):
    """The plain NumPy formula in float64: (c * sum_g ||w_g||, c * w_g / ||w_g|| with 0 at a zero group)."""
    x = w.astype(np.float64)
    norms = np.sqrt(np.sum(x * x, axis=axis, keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        grad = np.where(norms > 0, c * x / norms, 0.0)
    return c * float(np.sum(norms)), grad


@ALL_DTYPES
@pytest.mark.parametrize("shape,axis", SHAPES, ids=[f"{s}-{a}" for s, a in SHAPES])
@pytest.mark.parametrize("l1,l2", TERMS)
def test_matches_reference_and_plain_formula(each_simd, rng, dtype, shape, axis, l1, l2):
    c = 0.7
    w = groups(rng, shape, dtype)
    g = random_array(rng, shape, dtype)
    native, ref = g.copy(), g.copy()
    value = rdf.penalty_grad(w, native, l1=l1, l2=l2, group_l1=c, axis=axis)
    expected = reference.penalty_grad(w, ref, l1=l1, l2=l2, group_l1=c, axis=axis)
    assert type(value) is float
    assert_close(value, expected, 1e-12)
    assert_same_bits(native, ref, "grad")
    assert_close(rdf.penalty(w, l1=l1, l2=l2, group_l1=c, axis=axis), expected, 1e-12)
    # the plain formula (float64; the kernels round f and each operation to the compute type)
    x = w.astype(np.float64)
    group_value, group_grad = plain(w, c, axis)
    value_plain = l1 * np.sum(np.abs(x)) + 0.5 * l2 * np.sum(x * x) + group_value
    grad_plain = g.astype(np.float64) + l1 * np.sign(x) + l2 * x + group_grad
    tol = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}.get(np.dtype(dtype), 2e-2)
    np.testing.assert_allclose(value, value_plain, rtol=1e-9 if dtype == np.float64 else 1e-6)
    np.testing.assert_allclose(native.astype(np.float64), grad_plain, rtol=tol, atol=tol)


def test_zero_nan_and_inf_groups():
    w = np.array([[0.0, -0.0], [3.0, 4.0], [np.nan, 1.0], [np.inf, 1.0]], np.float32)
    g = np.zeros_like(w)
    g[0] = -0.0
    value = rdf.penalty_grad(w[:2], g[:2], group_l1=2.0, axis=1)
    assert value == 10.0
    assert same_bits(g[0], np.array([-0.0, -0.0], np.float32))  # a zero group gets no term: g as it was
    np.testing.assert_allclose(g[1], [1.2, 1.6], rtol=1e-6)
    g = np.zeros_like(w)
    assert np.isnan(rdf.penalty_grad(w, g, group_l1=2.0, axis=1))
    assert np.all(np.isnan(g[2]))  # a NaN norm: f = NaN for the whole group
    assert g[3, 1] == 0.0 and np.isnan(g[3, 0])  # an inf norm: f = 0, 0 * inf = NaN
    assert rdf.penalty(w[:2], group_l1=[0.0]) == 0.0  # no group term anywhere: axis not needed


def _same_as_contiguous(params, grads, **kwargs):
    """penalty_grad on params / grads as they are == on C-contiguous copies == the reference (gradients bit for
    bit; the value the same bits as on the copies)."""
    cps = [np.ascontiguousarray(p) for p in params]
    cgs, rgs = [np.array(g, order="C") for g in grads], [np.array(g, order="C") for g in grads]
    value = rdf.penalty_grad(params, grads, **kwargs)
    assert value == rdf.penalty_grad(cps, cgs, **kwargs)
    assert_close(value, reference.penalty_grad(cps, rgs, **kwargs))
    for a, b, r in zip(grads, cgs, rgs):
        assert_same_bits(np.ascontiguousarray(a), b, "layout")
        assert_same_bits(b, r, "reference")


def test_lists_coefficients_per_array_and_layouts(rng):
    """Per-array coefficients (0 for a bias, whose shape does not fit axis), transposed, Fortran, sliced and
    reversed gradients and parameters: the same bits as on C-contiguous copies; a gradient that is its own
    parameter reads the weights as they were."""
    conv = rng.standard_normal((16, 3, 3, 3)).astype(np.float32)
    dense = rng.standard_normal((40, 30)).astype(np.float32)
    bias = rng.standard_normal(16).astype(np.float32)
    base = rng.standard_normal((60, 50)).astype(np.float32)
    for axis in ((1, 2, 3), (0, 2)):
        grads = [np.asfortranarray(rng.standard_normal(conv.shape).astype(np.float32)), np.zeros(16, np.float32)]
        _same_as_contiguous([conv[:, ::-1], bias], grads, l1=0.1, l2=0.01, group_l1=[0.5, 0.0], axis=axis)
    for axis in (0, 1):
        grads = [base.copy()[:40, :30].T, base.copy()[::-1, 10:25][:40]]
        _same_as_contiguous([dense.T, dense[::-1, ::2]], grads, l1=[0.1, 0.2], l2=0.01, group_l1=[0.25, 1.0],
                            axis=axis)
    for axis in (0, (0, 2)):
        src = dense if axis == 0 else conv
        w, expected_g = src.copy(), src.copy()
        expected = reference.penalty_grad(src.copy(), expected_g, l2=0.5, group_l1=0.3, axis=axis)
        assert_close(rdf.penalty_grad(w, w, l2=0.5, group_l1=0.3, axis=axis), expected)
        assert_same_bits(w, expected_g, "grads is params")


def test_multi_task_lasso_objective_and_optimality():
    """scikit-learn's MultiTaskLasso minimizes 1/(2n) ||Y - X W^T||_F^2 + alpha * sum_j ||W[:, j]||_2 (W = coef_,
    (tasks, features): a group per feature, axis 0). Our penalty is its L2,1 term; at its solution our gradient of
    the group term cancels the data term's gradient on every kept feature (the optimality condition), and the
    dropped features' data gradients lie within alpha (the subgradient at a zero group); no perturbation lowers
    the objective."""
    sklearn = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(0)
    n, p, k = 60, 12, 3
    x = rng.standard_normal((n, p))
    true = np.zeros((p, k))
    true[:4] = 2 * rng.standard_normal((4, k))
    y = x @ true + 0.1 * rng.standard_normal((n, k))
    alpha = 0.1
    model = sklearn.MultiTaskLasso(alpha=alpha, fit_intercept=False, tol=1e-14, max_iter=100000).fit(x, y)
    coef = model.coef_

    def objective(wt):
        r = y - x @ wt.T
        return float(np.sum(r * r)) / (2 * n) + rdf.penalty(wt, group_l1=alpha, axis=0)

    assert_close(rdf.penalty(coef, group_l1=alpha, axis=0), alpha * np.sum(np.linalg.norm(coef, axis=0)), 1e-12)
    data_grad = -(y - x @ coef.T).T @ x / n  # (tasks, features)
    g = data_grad.copy()
    rdf.penalty_grad(coef, g, group_l1=alpha, axis=0)
    kept = np.any(coef != 0, axis=0)
    assert kept.any() and not kept.all()
    assert np.max(np.abs(g[:, kept])) < 1e-6  # grad of the data term + our group gradient = 0
    assert np.all(g[:, ~kept] == data_grad[:, ~kept])  # zero groups get no term
    assert np.all(np.linalg.norm(data_grad[:, ~kept], axis=0) <= alpha * (1 + 1e-6))
    best = objective(coef)
    for _ in range(20):
        assert objective(coef + 1e-4 * rng.standard_normal(coef.shape)) >= best


# ----------------------------------------------------------------------------------------------------------
# every backend against the CPU kernels and the reference

DEVICE_SHAPES = [((300, 70), 0), ((300, 70), 1), ((5, 6, 7, 8), (0, 2)), ((40,), 0), ((33, 65), 0),
                 ((8, 3, 3, 3), (1, 2, 3))]


@ALL_DTYPES
@pytest.mark.parametrize("backend,case", per_backend(DEVICE_SHAPES, ids=lambda c: f"{c[0]}-{c[1]}"),
                         indirect=["backend"])
def test_matches_cpu_and_reference(backend, dtype, case):
    backend.require(dtype)
    shape, axis = case
    rng = np.random.default_rng(sum(shape))
    w = groups(rng, shape, dtype)
    g = random_array(rng, shape, dtype)
    for l1, l2 in TERMS[::3]:
        gd = backend.asarray(g.copy())
        value = rdf.penalty_grad(backend.asarray(w), gd, l1=l1, l2=l2, group_l1=0.7, axis=axis)
        cpu, ref = g.copy(), g.copy()
        v_cpu = rdf.penalty_grad(w, cpu, l1=l1, l2=l2, group_l1=0.7, axis=axis)
        assert_close(v_cpu, reference.penalty_grad(w, ref, l1=l1, l2=l2, group_l1=0.7, axis=axis), 1e-12)
        assert_close(float(scalar(value)), v_cpu, 1e-12)
        assert same_bits(backend.to_numpy(gd), cpu) and same_bits(cpu, ref)
        v = rdf.penalty(backend.asarray(w), l1=l1, l2=l2, group_l1=0.7, axis=axis, as_float=True)
        assert type(v) is float
        assert_close(v, v_cpu, 1e-12)
    # a list mixing group and plain arrays, one launch for the plain ones, the values added on the device
    b = random_array(rng, (37,), dtype)
    ws, gs = [backend.asarray(w), backend.asarray(b)], [backend.asarray(g.copy()), backend.asarray(b.copy())]
    cpus = [g.copy(), b.copy()]
    v = rdf.penalty_grad(ws, gs, l2=0.25, group_l1=[0.5, 0.0], axis=axis, as_float=True)
    assert_close(v, rdf.penalty_grad([w, b], cpus, l2=0.25, group_l1=[0.5, 0.0], axis=axis), 1e-12)
    for a, c in zip(gs, cpus):
        assert_backend_bits(backend, a, c, "list")


# ----------------------------------------------------------------------------------------------------------
# threads and fork


def test_thread_counts_and_simd_paths_agree():
    def run():
        rng = np.random.default_rng(6)
        a, b = groups(rng, (4097, 19), np.float32), groups(rng, (70, 3000), np.float32)
        ga, gb = np.ones_like(a), np.ones_like(b)
        v = (rdf.penalty_grad(a, ga, l1=0.1, group_l1=0.3, axis=0),
             rdf.penalty_grad([b, a], [gb, ga], l2=0.2, group_l1=[2.0, 0.0], axis=1))
        return v, ga.tobytes() + gb.tobytes()

    results = list(run_each_thread_count(run).values())
    assert all(r == results[0] for r in results)


def test_concurrent_calls_from_python_threads():
    rng = np.random.default_rng(7)
    inputs = [groups(rng, (500, 300), np.float32) for _ in range(4)]
    expected = []
    for w in inputs:
        g = np.zeros_like(w)
        expected.append((rdf.penalty_grad(w, g, l1=0.01, group_l1=3.0, axis=1), g))
    results: list = [None] * 4

    def work(i):
        for _ in range(10):
            g = np.zeros_like(inputs[i])
            results[i] = (rdf.penalty_grad(inputs[i], g, l1=0.01, group_l1=3.0, axis=1), g)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r, e in zip(results, expected):
        assert r[0] == e[0] and same_bits(r[1], e[1])


def test_forked_child_runs_group_penalty():
    from test_reliability import run_child

    out = run_child("""
    rdf.set_num_threads(2)
    w = np.random.default_rng(8).standard_normal((3000, 300)).astype(np.float32)
    parent = np.zeros_like(w)
    expected = rdf.penalty_grad(w, parent, l2=0.1, group_l1=0.5, axis=1)
    pid = os.fork()
    if pid == 0:
        child = np.zeros_like(w)
        got = rdf.penalty_grad(w, child, l2=0.1, group_l1=0.5, axis=1)
        os._exit(0 if got == expected and child.tobytes() == parent.tobytes() else 3)
    _, status = os.waitpid(pid, 0)
    assert status == 0, status
    print("ok")
    """, timeout=60)
    assert out.startswith("ok")
