"""The rules of a list call (csrc/bindings/array_list.h, csrc/common/list_rules.h), at the binding level.

_core.penalty_grad / prox_l1 / decay either run, converting read-only parameters that are not in the
kernels' form, or return a refusal (rule, name, i, j) and touch nothing. _core.write_conflict is the same
overlap rule on bare address ranges.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_unchanged, snapshot

import regdrop_fast as rdf
from regdrop_fast import _core

NUMS = rdf._dtypes.TYPE_NUMS


def coef(n, v=0.1):
    return np.full(n, v)


def grad_call(params, grads, l1=0.01, l2=0.1):
    n = len(params)
    return _core.penalty_grad(params, grads, coef(n, l1), coef(n, l2), NUMS)


def f32(*shape, v=1.0):
    return np.full(shape, v, np.float32)


def misaligned(n, dtype=np.float32):
    base = np.zeros(n * np.dtype(dtype).itemsize + 1, np.uint8)
    a = base[1:].view(dtype)
    assert not a.flags.aligned
    return a


def readonly(a):
    a.flags.writeable = False
    return a


def self_overlapping(n, dtype=np.float32):
    """A writeable view whose elements share memory (stride 0)."""
    return np.lib.stride_tricks.as_strided(np.zeros(1, dtype), (n,), (0,), writeable=True)


def test_success_results():
    params, grads = [f32(5), f32(3)], [f32(5, v=0), f32(3, v=0)]
    value = grad_call(params, grads)
    assert isinstance(value, float) and value == pytest.approx(8 * (0.01 + 0.05))
    assert isinstance(_core.prox_l1([f32(4, v=0.05)], coef(1), NUMS), int)
    assert _core.decay([f32(4)], coef(1, 0.5), NUMS) is None
    assert grad_call(params, None) == pytest.approx(8 * 0.06)
    assert grad_call([], []) == 0.0


PENALTY_REFUSALS = [
    # (params, grads, expected refusal)
    ({"a": 1}, [f32(2)], ("sequence", "params", -1, -1)),
    ([f32(2)], f32(2), ("sequence", "grads", -1, -1)),
    ([f32(2), f32(2)], [f32(2)], ("length", "grads", 1, 2)),
    ([f32(2), np.arange(3)], [f32(2), f32(3)], ("dtype", "params", 1, -1)),
    ([f32(2), [1, 2, 3]], [f32(2), f32(3)], ("dtype", "params", 1, -1)),
    ([f32(2), f32(3).astype(">f4")], [f32(2), f32(3)], ("dtype", "params", 1, -1)),
    ([f32(2), [[1.0], [2.0, 3.0]]], [f32(2), f32(3)], ("convert", "params", 1, -1)),
    ([f32(2)], [[0.0, 0.0]], ("type", "grads", 0, -1)),
    ([f32(2)], [np.zeros(2, np.int32)], ("dtype", "grads", 0, -1)),
    ([f32(2)], [np.zeros(2, ">f4")], ("dtype", "grads", 0, -1)),
    ([f32(2)], [self_overlapping(2)], ("self_overlap", "grads", 0, -1)),
    ([f32(2, 2)], [np.lib.stride_tricks.as_strided(f32(3), (2, 2), (4, 4), writeable=True)],
     ("self_overlap", "grads", 0, -1)),
    ([f32(2)], [misaligned(2)], ("aligned", "grads", 0, -1)),
    ([f32(2)], [readonly(f32(2))], ("writeable", "grads", 0, -1)),
    ([f32(2)], [np.zeros(2, np.float64)], ("pair_dtype", "grads", 0, -1)),
    ([f32(2, 3)], [f32(3, 2)], ("pair_shape", "grads", 0, -1)),
    ([f32(2, 3)], [f32(6)], ("pair_shape", "grads", 0, -1)),
]


@pytest.mark.parametrize("params, grads, expected", PENALTY_REFUSALS,
                         ids=[e[2][0] + "-" + str(k) for k, e in enumerate(PENALTY_REFUSALS)])
def test_penalty_grad_refusals_touch_nothing(params, grads, expected):
    arrays = [a for a in list(params) + list(grads) if isinstance(a, np.ndarray)] if isinstance(params, list) else []
    if isinstance(grads, np.ndarray):
        arrays = [grads]
    before = snapshot(*arrays)
    assert grad_call(params, grads) == expected
    assert_unchanged(arrays, before)


def test_check_order_params_before_grads_index_ascending():
    # params[1] bad dtype and grads[0] not writeable: grads[0] comes first (index 0 before index 1)
    assert grad_call([f32(2), np.arange(2)], [readonly(f32(2)), f32(2)]) == ("writeable", "grads", 0, -1)
    # params[0] and grads[0] both bad: params[0] first
    assert grad_call([np.arange(2)], [readonly(f32(2))]) == ("dtype", "params", 0, -1)
    # a length mismatch is found before any array is looked at
    assert grad_call([np.arange(2)], []) == ("length", "grads", 0, 1)
    # overlap only after every array passed
    w = f32(8)
    assert grad_call([w[:2], np.arange(2)], [w[1:3], f32(2)]) == ("dtype", "params", 1, -1)


def test_penalty_grad_overlaps():
    w, g = f32(8), f32(8, v=0)
    before = snapshot(w, g)
    # grads[0] (index 2 in params + grads) overlaps params[1] (index 1)
    assert grad_call([w[:4], w[4:]], [w[2:6], g[4:]]) == ("overlap", "grads", 2, 1)
    # two gradients sharing memory
    assert grad_call([f32(4), f32(4)], [g[:4], g[2:6]]) == ("overlap", "grads", 2, 3)
    # a gradient that is its own parameter, exactly: allowed
    assert isinstance(grad_call([w], [w]), float)
    assert_unchanged([g], before[1:])
    # ... but not a shifted view of it
    assert grad_call([w[:4]], [w[1:5]]) == ("overlap", "grads", 1, 0)
    # ... nor a reversed one over the same memory (not the same element for element)
    assert grad_call([w], [w[::-1]]) == ("overlap", "grads", 1, 0)
    # strided gradients: their span from lowest to highest element counts (interleaved slices conflict)
    m = f32(4, 6, v=0)
    assert grad_call([f32(4, 3), f32(4, 3)], [m[:, ::2], m[:, 1::2]]) == ("overlap", "grads", 2, 3)
    assert isinstance(grad_call([f32(2, 6), f32(2, 6)], [m[:2], m[2:][::-1]]), float)
    assert isinstance(grad_call([m.T], [m.T]), float)  # its own parameter: read from a C-contiguous copy
    # read-only params may share memory with each other
    assert isinstance(grad_call([w, w[2:]], [f32(8, v=0), f32(6, v=0)]), float)


def test_update_refusals_touch_nothing():
    a, b = f32(6), f32(3)
    before = snapshot(a, b)
    cases = [
        ((a, [0.0]), ("type", "params", 1, -1)),
        ([a, np.arange(3)], ("dtype", "params", 1, -1)),
        ([a, self_overlapping(3)], ("self_overlap", "params", 1, -1)),
        ([a, misaligned(3)], ("aligned", "params", 1, -1)),
        ([a, readonly(f32(3))], ("writeable", "params", 1, -1)),
        ([b, a[:2], a[1:3]], ("overlap", "params", 1, 2)),
        ([a, a], ("overlap", "params", 0, 1)),
        (iter([a]), ("sequence", "params", -1, -1)),
    ]
    for params, expected in cases:
        for op in ("prox_l1", "decay"):
            n = len(params) if isinstance(params, (list, tuple)) else 1
            assert getattr(_core, op)(params, coef(n), NUMS) == expected, (op, expected)
    assert_unchanged([a, b], before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, rdf._dtypes.BFLOAT16])
def test_read_params_are_converted(dtype, rng):
    w = (3.0 * rng.standard_normal((7, 9))).astype(dtype)
    g0 = rng.standard_normal((7, 9)).astype(dtype)
    expected_g = g0.copy()
    expected = grad_call([w], [expected_g])
    strided = np.zeros((7, 18), dtype)
    strided[:, ::2] = w
    fortran = np.asfortranarray(w)
    base = np.zeros(w.nbytes + 1, np.uint8)
    unaligned = base[1:].view(dtype).reshape(7, 9)
    unaligned[...] = w
    ro = readonly(w.copy())
    for variant in (strided[:, ::2], fortran, unaligned, ro):
        before = snapshot(variant)
        g = g0.copy()
        assert grad_call([variant], [g]) == expected
        assert g.tobytes() == expected_g.tobytes()
        assert_unchanged([variant], before)
        assert grad_call([variant], None) == grad_call([w], None)


def test_list_of_floats_becomes_float64():
    values = [0.5, -1.5, 2.0]
    g = np.zeros(3)
    expected_g = np.zeros(3)
    assert grad_call([values], [g]) == grad_call([np.array(values)], [expected_g])
    assert g.tobytes() == expected_g.tobytes()
    assert grad_call([values], [np.zeros(3, np.float32)]) == ("pair_dtype", "grads", 0, -1)
    assert grad_call([(1.0, 2.0)], None) == grad_call([np.array([1.0, 2.0])], None)


def test_write_conflict():
    wc = _core.write_conflict
    assert wc([], [], [], []) is None
    assert wc([0, 100], [100, 200], [0, 1], [True, True]) is None
    assert wc([0, 50], [100, 150], [0, 1], [True, False]) == (0, 1)
    assert wc([0, 50], [100, 150], [0, 1], [False, False]) is None
    # a gradient that is exactly its parameter
    assert wc([0, 0], [100, 100], [0, 0], [False, True]) is None
    assert wc([0, 0], [100, 100], [0, 1], [False, True]) == (1, 0)
    # its own parameter and another array: the other pair is preferred
    assert wc([0, 0, 10], [100, 100, 20], [0, 0, 1], [False, True, False]) == (1, 2)
    # empty ranges hold no memory
    assert wc([0, 50], [100, 50], [0, 1], [True, True]) is None
    # chained overlaps: the first written range in address order is reported with one it overlaps
    assert wc([0, 90, 150], [100, 160, 200], [0, 1, 2], [False, False, True]) == (2, 1)
    with pytest.raises(ValueError):
        wc([0], [1, 2], [0], [True])


# The same rules in Python (regdrop_fast._lists.host_refusal, what the NumPy reference checks with) give the
# native reader's answers: the list rules are stated twice only because the reader needs C++ speed.

PYTHON_CASES = [(p, g, e) for p, g, e in PENALTY_REFUSALS if e[0] not in ("sequence", "length")]


@pytest.mark.parametrize("params, grads, expected", PYTHON_CASES,
                         ids=[e[2][0] + "-" + str(k) for k, e in enumerate(PYTHON_CASES)])
def test_python_rules_agree_with_the_reader(params, grads, expected):
    from regdrop_fast import _lists

    assert _lists.host_refusal(params, grads, written_params=False)[0] == expected == grad_call(params, grads)


def test_python_rules_agree_on_overlaps_and_updates():
    from regdrop_fast import _lists

    w, g = f32(8), f32(8, v=0)
    m = f32(4, 6, v=0)
    for params, grads in (([w[:4], w[4:]], [w[2:6], g[4:]]), ([f32(4), f32(4)], [g[:4], g[2:6]]),
                          ([w[:4]], [w[1:5]]), ([w], [w]), ([w, w[2:]], [f32(8, v=0), f32(6, v=0)]),
                          ([w], [w[::-1]]), ([f32(4, 3), f32(4, 3)], [m[:, ::2], m[:, 1::2]]),
                          ([f32(2, 6), f32(2, 6)], [m[:2], m[2:][::-1]]), ([m.T], [m.T]),
                          ([m.T.copy()], [m.T])):
        native = grad_call(params, grads)
        python = _lists.host_refusal(params, grads, written_params=False)[0]
        assert python == (native if isinstance(native, tuple) else None)
    a, b = f32(6), f32(3)
    c = f32(4, 6)
    for params in ([a, np.arange(3)], [a, self_overlapping(3)], [a, misaligned(3)], [a, readonly(f32(3))],
                   [b, a[:2], a[1:3]], [a, a], [a, b], (a, [0.0]), [a, f32(6)[::2], c.T, c[:, ::-2]],
                   [c[:, ::2], c[:, 1::2]], [c[::-1], c[:2].T], [a[::-1], a[::2]]):
        python = _lists.host_refusal(params, None, written_params=True)[0]
        native = _core.prox_l1(params, coef(len(params)), NUMS)
        assert python == (native if isinstance(native, tuple) else None), params


def test_a_cuda_array_among_host_params_is_refused_not_copied():
    """An object with __cuda_array_interface__ is never converted to a host copy (for CuPy that would raise
    or copy the device memory); the Python layer then names the device mix-up."""

    class DeviceLike:
        __cuda_array_interface__ = {"shape": (2,), "typestr": "<f4", "data": (0, False), "version": 3}

        def __array__(self, dtype=None, copy=None):  # what a host copy would use: must not be called
            raise AssertionError("converted to a host array")

    assert grad_call([f32(2), DeviceLike()], [f32(2), f32(2)]) == ("device", "params", 1, -1)
