"""The in-place penalty ops on host arrays of any layout (transposed, Fortran order, sliced, negative
strides, permuted axes): modified where they are, bit for bit as the same op on a C-contiguous copy (values,
counts and penalty values included), nothing outside the view written, no copy of an array that is dense
in some memory order; only arrays whose elements overlap each other are refused. CUDA arrays modified in
place stay C-contiguous only (the last test).
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from conftest import ALL_DTYPES, assert_same_bits, random_values, rejects

import regdrop_fast as rdf
from regdrop_fast import reference

GUARD = 7.0  # every element of a base array outside the view: must stay

# name -> (base shape, view of the base); each view is not C-contiguous. "sliced-big" holds 133,200 elements
# (more than one task of 2^16), so strided walks start inside a row and cross task boundaries.
LAYOUTS = {
    "transposed": ((23, 17), lambda b: b.T),
    "fortran-3d": ((4, 5, 6), lambda b: b.T),
    "sliced": ((40, 70), lambda b: b[3:37:2, 1::3]),
    "negative": ((17, 23), lambda b: b[::-1, ::-1]),
    "negative-rows": ((17, 23), lambda b: b[::-1]),
    "sliced-negative": ((40, 70), lambda b: b[::-2, 60:2:-3]),
    "permuted-3d": ((5, 6, 7), lambda b: b.transpose(2, 0, 1)),
    "sliced-3d": ((6, 8, 10), lambda b: b[1:5, ::-2, 1::2].transpose(1, 2, 0)),
    "column": ((50, 9), lambda b: b[:, 4]),
    "sliced-big": ((800, 1000), lambda b: b[::2, 1::3].T),
}
IDS = list(LAYOUTS)


def make(layout, dtype, rng, values=None):
    """(view, base): a base full of GUARD and a view of the layout holding random values."""
    shape, view_of = LAYOUTS[layout]
    base = np.full(shape, GUARD).astype(dtype)
    view = view_of(base)
    assert not view.flags.c_contiguous and np.shares_memory(view, base)
    view[...] = random_values(rng, view.shape, dtype) if values is None else values
    return view, base


def expected_base(layout, base_before, result):
    """The base as it must be: unchanged but for the view, which holds `result`."""
    base = base_before.copy()
    LAYOUTS[layout][1](base)[...] = result
    return base


def test_the_layouts_cover_each_kind():
    rng = np.random.default_rng(0)
    kinds = set()
    for layout in LAYOUTS:
        view, _ = make(layout, np.float32, rng)
        if view.flags.f_contiguous:
            kinds.add("fortran")
        elif rdf._arrays.memory_order(view) is not None:
            kinds.add("dense")
        else:
            kinds.add("strided")
        if any(s < 0 for s in view.strides):
            kinds.add("negative")
        if view.size > 2 ** 16:
            kinds.add("big")
    assert kinds == {"fortran", "dense", "strided", "negative", "big"}


@ALL_DTYPES
@pytest.mark.parametrize("layout", IDS)
def test_prox_l1_and_decay(each_simd, rng, dtype, layout):
    view, base = make(layout, dtype, rng)
    view[0] = 0.1  # some elements thresholded to zero
    for op, coef in ((rdf.prox_l1, 0.5), (rdf.decay, 0.3)):
        before = base.copy()
        copy = np.ascontiguousarray(view)
        got, want = op(view, coef), op(copy, coef)
        assert got == want
        assert_same_bits(np.ascontiguousarray(view), copy, op.__name__)
        assert_same_bits(base, expected_base(layout, before, copy), f"{op.__name__}: base")
    # in a list with other arrays, one coefficient each; and the reference does the same
    other = random_values(rng, (33,), dtype)
    ref_view, _ = make(layout, dtype, np.random.default_rng(1))
    native_view, _ = make(layout, dtype, np.random.default_rng(1))
    ref_other = other.copy()
    assert rdf.prox_l1([other, native_view], [0.2, 1.0]) == reference.prox_l1([ref_other, ref_view], [0.2, 1.0])
    assert_same_bits(np.ascontiguousarray(native_view), np.ascontiguousarray(ref_view), "prox_l1 vs reference")
    assert_same_bits(other, ref_other, "prox_l1 vs reference")
    rdf.decay([native_view, other], [0.25, 0.5])
    reference.decay([ref_view, ref_other], [0.25, 0.5])
    assert_same_bits(np.ascontiguousarray(native_view), np.ascontiguousarray(ref_view), "decay vs reference")


@ALL_DTYPES
@pytest.mark.parametrize("layout", IDS)
@pytest.mark.parametrize("terms", [{"l1": 0.1}, {"l2": 0.2}, {"l1": 0.1, "l2": 0.2}], ids=["l1", "l2", "l1l2"])
def test_penalty_grad(each_simd, rng, dtype, layout, terms):
    g, base = make(layout, dtype, rng)
    w = random_values(rng, g.shape, dtype)
    before = base.copy()
    g_copy = np.ascontiguousarray(g)
    value = rdf.penalty_grad([w], [g], **terms)
    assert value == rdf.penalty_grad([w], [g_copy], **terms)  # the same bits: summed in the same order
    assert_same_bits(np.ascontiguousarray(g), g_copy, "grads")
    assert_same_bits(base, expected_base(layout, before, g_copy), "base")
    # parameters of the gradient's layout too (read through a C-contiguous copy), and the reference
    w_view, _ = make(layout, dtype, np.random.default_rng(2))
    g_ref = np.ascontiguousarray(g)
    assert rdf.penalty_grad([w_view], [g], **terms) == rdf.penalty_grad([np.ascontiguousarray(w_view)],
                                                                         [g_copy], **terms)
    reference.penalty_grad([w_view], [g_ref], **terms)
    assert_same_bits(np.ascontiguousarray(g), g_copy, "grads, strided params")
    assert_same_bits(g_copy, g_ref, "grads vs reference")


@pytest.mark.parametrize("layout", IDS)
def test_penalty_grad_on_its_own_parameter(rng, layout):
    """grads is params, not C-contiguous: the update reads the weights as they were (a C-contiguous copy is
    read, the array itself written)."""
    w, _ = make(layout, np.float32, rng)
    copy = np.ascontiguousarray(w)
    assert rdf.penalty_grad(w, w, l1=0.1, l2=0.5) == rdf.penalty_grad(copy, copy, l1=0.1, l2=0.5)
    assert_same_bits(np.ascontiguousarray(w), copy, "grads is params")


def test_penalty_grad_thread_counts_agree(rng):
    from conftest import run_each_thread_count

    def run():
        g, _ = make("sliced-big", np.float32, np.random.default_rng(3))
        w = random_values(np.random.default_rng(4), g.shape, np.float32)
        return rdf.penalty_grad([w, w[::-1]], [g, g[::-1].copy()], l1=0.1, l2=0.2), np.ascontiguousarray(g)

    results = run_each_thread_count(run)
    values = {v for v, _ in results.values()}
    assert len(values) == 1
    for _, g in results.values():
        assert_same_bits(g, results[1][1], "grads")


MAX_NORM_CASES = [  # (layout, axis)
    (layout, axis) for layout in IDS if len(LAYOUTS[layout][1](np.zeros(LAYOUTS[layout][0])).shape) == 2
    for axis in (0, 1, (0, 1))
] + [
    ("permuted-3d", axis) for axis in (0, 1, 2, (0, 1), (1, 2), (0, 2), (0, 1, 2))
] + [
    ("sliced-3d", axis) for axis in (0, 1, 2, (0, 1), (1, 2), (0, 2))
] + [("column", 0)]


@ALL_DTYPES
@pytest.mark.parametrize("layout,axis", MAX_NORM_CASES, ids=[f"{c[0]}-{c[1]}" for c in MAX_NORM_CASES])
def test_max_norm(each_simd, rng, dtype, layout, axis):
    view, base = make(layout, dtype, rng)
    before = base.copy()
    copy = np.ascontiguousarray(view)
    bound = 2.5 if isinstance(axis, int) else 10.0  # some slices rescaled, some within the bound
    got = rdf.max_norm(view, bound, axis=axis)
    assert got == rdf.max_norm(copy, bound, axis=axis)
    assert_same_bits(np.ascontiguousarray(view), copy, "w")
    assert_same_bits(base, expected_base(layout, before, copy), "base")
    ref_view, _ = make(layout, dtype, np.random.default_rng(9))
    native_view, _ = make(layout, dtype, np.random.default_rng(9))
    assert rdf.max_norm(native_view, bound, axis=axis) == reference.max_norm(ref_view, bound, axis=axis)
    assert_same_bits(np.ascontiguousarray(native_view), np.ascontiguousarray(ref_view), "w vs reference")


def test_max_norm_keras_transposed_kernel():
    """Keras's constraint test passes its kernel transposed (np.array(...).T): MaxNorm over axis 0 of it."""
    rng = np.random.default_rng(5)
    kernel = (rng.random((5, 10)) * 10 - 5).astype(np.float32).T  # (10, 5), not C-contiguous
    copy = np.ascontiguousarray(kernel)
    assert rdf.max_norm(kernel, 2.0, axis=0) == rdf.max_norm(copy, 2.0, axis=0) == 5
    assert_same_bits(np.ascontiguousarray(kernel), copy, "kernel")
    assert np.all(np.sqrt(np.sum(kernel.astype(np.float64) ** 2, axis=0)) <= 2.0 + 1e-6)


NO_COPY_OPS = {  # op(a, w): w a C-contiguous array of a's shape
    "prox_l1": lambda a, w: rdf.prox_l1(a, 0.1),
    "decay": lambda a, w: rdf.decay(a, 0.1),
    "penalty_grad": lambda a, w: rdf.penalty_grad(w, a, l1=0.1),
    "max_norm rows": lambda a, w: rdf.max_norm(a, 1.0, axis=1),
    "max_norm columns": lambda a, w: rdf.max_norm(a, 1.0, axis=0),
}


NO_COPY_CASES = [(op, layout) for op in NO_COPY_OPS for layout in ("fortran", "transposed", "negative")
                 if not op.startswith("max_norm") or layout != "negative"]
NO_COPY_CASES += [("max_norm rows", "negative rows"), ("max_norm columns", "negative columns")]


@pytest.mark.parametrize("op,layout", NO_COPY_CASES, ids=[f"{o}-{lay}" for o, lay in NO_COPY_CASES])
def test_no_copy_of_a_dense_array(op, layout):
    """A written array dense in some memory order is not copied: the call allocates far less than the array
    (NumPy reports its allocations to tracemalloc). penalty_grad's parameter here is C-contiguous, so
    nothing is copied at all. max_norm: a reversed kept axis costs nothing; a reversed reduced axis goes
    through a copy (test_max_norm_over_a_reversed_axis_copies)."""
    a = np.ones((1024, 1024), np.float32)
    a = {"fortran": np.asfortranarray(a), "transposed": a.T, "negative": a[::-1, ::-1],
         "negative rows": a[::-1], "negative columns": a[:, ::-1]}[layout]
    w = np.ones(a.shape, a.dtype)
    call = NO_COPY_OPS[op]
    call(a, w)  # anything done once (imports, caches) before measuring
    tracemalloc.start()
    try:
        call(a, w)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < a.nbytes // 16, f"{op} on a {layout} array allocated {peak} bytes"


def test_max_norm_over_a_reversed_axis_copies():
    """A reduced axis of negative stride would sum each norm in reverse C order, so max_norm reads it through
    a permuted copy (documented): the same bits as on a C-contiguous copy, at the cost of the copy."""
    a = np.ones((1024, 1024), np.float32)[::-1, ::-1]
    tracemalloc.start()
    try:
        rdf.max_norm(a, 1.0, axis=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak >= a.nbytes


def test_a_sliced_max_norm_is_copied_back_whole():
    """A max_norm on an array that is not dense goes through a permuted copy written back (documented): the
    same bits, and the elements between the view's are left alone (test_max_norm checks the base)."""
    base = np.full((8, 12), GUARD, np.float32)
    view = base[::2, ::3]
    view[...] = np.arange(16, dtype=np.float32).reshape(4, 4)
    copy = np.ascontiguousarray(view)
    assert rdf.max_norm(view, 3.0, axis=1) == rdf.max_norm(copy, 3.0, axis=1) == 4
    assert_same_bits(np.ascontiguousarray(view), copy, "view")
    mask = np.ones(base.shape, bool)
    mask[::2, ::3] = False
    assert np.all(base[mask] == GUARD)


def overlapping(shape, strides):
    return np.lib.stride_tricks.as_strided(np.zeros(64, np.float32), shape, strides, writeable=True)


SELF_OVERLAPPING = [
    ("stride 0", lambda: overlapping((4, 3), (0, 4))),
    ("interleaved", lambda: overlapping((3, 3), (8, 4))),
    ("negative interleaved", lambda: overlapping((3, 3), (8, 4))[::-1]),
]


@pytest.mark.parametrize("case", SELF_OVERLAPPING, ids=[c[0] for c in SELF_OVERLAPPING])
def test_self_overlapping_arrays_are_refused(case):
    a = case[1]()
    message = "its elements overlap each other in memory"
    rejects(ValueError, r"params\[0\]: " + message, lambda: rdf.prox_l1([a], 0.1), a)
    rejects(ValueError, r"params\[0\]: " + message, lambda: rdf.decay([a], 0.1), a)
    rejects(ValueError, r"grads\[0\]: " + message, lambda: rdf.penalty_grad([np.ones(a.shape, np.float32)], [a],
                                                                          l1=0.1), a)
    rejects(ValueError, "w: " + message, lambda: rdf.max_norm(a, 0.1, axis=0), a)
    for op in (reference.prox_l1, reference.decay):
        rejects(ValueError, r"params\[0\]: " + message, lambda: op([a], 0.1), a)
    rejects(ValueError, "w: " + message, lambda: reference.max_norm(a, 0.1, axis=0), a)


def test_broadcast_views_are_read_only():
    a = np.broadcast_to(np.zeros(3, np.float32), (4, 3))
    rejects(ValueError, r"params\[0\]: must be writeable", lambda: rdf.prox_l1([a], 0.1), a)
    rejects(ValueError, "w: must be writeable", lambda: rdf.max_norm(a, 0.1, axis=0), a)


def test_torch_cpu_tensors_of_any_layout_are_written_where_they_are():
    """regdrop_fast.torch hands a non-contiguous CPU tensor (a Linear.weight.T, a column slice) to the host
    kernels as the NumPy view of its memory: the same bits as on a contiguous copy."""
    torch = pytest.importorskip("torch")
    import regdrop_fast.torch as rft

    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(30, 20, generator=gen) * 3
    for view_of in (lambda t: t.T, lambda t: t[:, ::3], lambda t: t[2:28:2]):
        base = weight.clone()
        view = view_of(base)
        assert not view.is_contiguous()
        copy = view.contiguous()
        assert int(rft.prox_l1_([view], 0.5)) == int(rft.prox_l1_([copy], 0.5))
        rft.decay_([view], 0.1)
        rft.decay_([copy], 0.1)
        assert int(rft.max_norm_(view, 2.0, dim=0)) == int(rft.max_norm_(copy, 2.0, dim=0))
        assert torch.equal(view, copy)
        expected = weight.clone()
        view_of(expected).copy_(copy)
        assert torch.equal(base, expected)  # the elements outside the view are untouched
