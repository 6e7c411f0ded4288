"""max_norm (rescale the slices whose L2 norm exceeds max_value, in place) on every backend: against the NumPy
reference and the CPU kernels, bit for bit, with the count of rescaled slices exact; bad input raises and
modifies nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import (
    ALL_DTYPES,
    BFLOAT16,
    IMPLS,
    assert_backend_bits,
    assert_same_bits,
    is_result_scalar,
    per_backend,
    random_array,
    read_only,
    rejects,
    same_bits,
    scalar,
)

import regdrop_fast as rdf
from regdrop_fast import reference


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
    w = random_array(rng, shape, dtype)
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
    w = (random_array(rng, shape, dtype).astype(np.float64) * scale).astype(dtype)
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
    rejects(exc, match, lambda: impl.max_norm(w, **kwargs), w)


@IMPLS
def test_max_norm_rejects_bad_arrays(impl):
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    ints = np.ones((2, 2), np.int64)
    rejects(TypeError, r"w: dtype int64 is not supported", lambda: impl.max_norm(ints, 1.0, axis=0), ints)
    rejects(TypeError, r"w: expected a numpy.ndarray", lambda: impl.max_norm([[1.0, 2.0]], 1.0, axis=0))
    rejects(ValueError, r"w: must be writeable", lambda: impl.max_norm(read_only(w.copy()), 1.0, axis=0))
    overlapping = np.lib.stride_tricks.as_strided(w.copy(), (3, 4), (0, 4), writeable=True)
    rejects(ValueError, r"w: its elements overlap each other", lambda: impl.max_norm(overlapping, 1.0, axis=0),
            overlapping)
    rejects(TypeError, r"missing 1 required keyword-only argument: 'axis'",
            lambda: impl.max_norm(w, 1.0), w)


# ----------------------------------------------------------------------------------------------------------
# every backend against the CPU kernels and the reference

DEVICE_CASES = [
    ((300, 70), 0),              # strided columns (inner 70)
    ((300, 70), 1),              # contiguous rows
    ((70, 3000), 1),             # long rows
    ((5, 6, 7, 8), (0, 1, 2)),   # Keras Conv2D kernel: columns, inner 8
    ((8, 7, 3, 3), (1, 2, 3)),   # torch Conv2d weight: rows
    ((5, 6, 7, 8), (1, 2)),      # (outer, reduce, inner) in place
    ((5, 6, 7, 8), (0, 2)),      # axes apart: the transposed-copy path
    ((40,), 0),
    ((3, 4, 5), -1),
    ((0, 5), 0),
    ((5, 0), 0),
    ((4097, 19), 0),
    ((30000, 3, 2), 1),
    ((2, 300001), 1),            # a few very long rows
    ((1000, 1000), 0),           # more tiles than blocks: the grid-stride loop
]
EMULATED_CASES = [  # smaller, for a fiber per CUDA thread
    ((300, 70), 0), ((300, 70), 1), ((70, 3000), 1), ((5, 6, 7, 8), (0, 1, 2)), ((8, 7, 3, 3), (1, 2, 3)),
    ((5, 6, 7, 8), (1, 2)), ((5, 6, 7, 8), (0, 2)), ((40,), 0), ((0, 5), 0), ((5, 0), 0), ((4097, 19), 0),
    ((3000, 3, 2), 1), ((2, 30001), 1), ((33, 65), 0),
]


@ALL_DTYPES
@pytest.mark.parametrize("backend,case", per_backend(DEVICE_CASES, EMULATED_CASES, ids=lambda c: f"{c[0]}-{c[1]}"),
                         indirect=["backend"])
def test_max_norm_matches_cpu_and_reference(backend, dtype, case):
    backend.require(dtype)
    shape, axis = case
    rng = np.random.default_rng(sum(shape))
    w = (3.0 * rng.standard_normal(shape)).astype(dtype)
    max_value = 1.0 if not w.size else 4.0
    if w.size:  # slices of very different norms: some exceed the bound, some do not
        w = (w.astype(np.float64) * rng.uniform(0.05, 2.0, size=shape[-1])).astype(dtype)
        if not backend.emulated:  # the median norm: half the slices are rescaled
            axes = axis if isinstance(axis, tuple) else (axis,)
            norms = np.sqrt(np.sum(np.square(w.astype(np.float64)), axis=axes))
            max_value = float(np.median(norms)) if norms.size > 1 else float(norms.reshape(-1)[0]) / 2
    wd = backend.asarray(w.copy())
    count = rdf.max_norm(wd, max_value, axis=axis)
    assert is_result_scalar(backend, count, np.int64)
    cpu, ref = w.copy(), w.copy()
    c_cpu = rdf.max_norm(cpu, max_value, axis=axis)
    assert scalar(count) == c_cpu == reference.max_norm(ref, max_value, axis=axis)
    assert same_bits(backend.to_numpy(wd), cpu) and same_bits(cpu, ref)


def test_max_norm_special_values(backend):
    # A NaN norm and a zero row are left alone; an infinite norm gives the factor 0 (inf * 0 is NaN).
    host = np.array([[np.nan, 10.0], [0.0, -0.0], [3.0, 4.0], [np.inf, 1.0]], np.float32)
    w = backend.asarray(host.copy())
    count = rdf.max_norm(w, 1.0, axis=1, as_int=True)
    assert type(count) is int
    assert count == rdf.max_norm(host, 1.0, axis=1) == 2
    assert_backend_bits(backend, w, host, "w")
    assert same_bits(backend.to_numpy(w)[:2], np.array([[np.nan, 10.0], [0.0, -0.0]], np.float32))


@pytest.mark.cuda
def test_max_norm_torch_parameter_on_the_transposed_copy_path(torch_cuda):
    torch = torch_cuda
    p = torch.nn.Parameter(torch.randn(4, 5, 6, device="cuda") * 3)  # a parameter that requires grad
    host = p.detach().cpu().numpy()
    rescaled = rdf.max_norm(p, 2.0, axis=(0, 2), as_int=True)
    assert rescaled == rdf.max_norm(host, 2.0, axis=(0, 2))
    assert same_bits(p.detach().cpu().numpy(), host)
