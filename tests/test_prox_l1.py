"""prox_l1 (soft thresholding in place) on every backend: against the NumPy reference and the CPU kernels,
bit for bit, with the count of zeros exact; bad input raises and modifies nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import (
    ALL_DTYPES,
    CHUNK,
    IMPLS,
    UPDATE_BAD,
    assert_all_same_bits,
    assert_backend_bits,
    assert_same_bits,
    check_update_on_misaligned_view,
    check_update_rejects,
    copies,
    is_result_scalar,
    make_params,
    per_backend,
    scalar,
    values,
)

import regdrop_fast as rdf
from regdrop_fast import reference


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


@IMPLS
@pytest.mark.parametrize("case", UPDATE_BAD, ids=[c[0] for c in UPDATE_BAD])
def test_prox_l1_rejects(impl, pair, case):
    check_update_rejects(impl.prox_l1, "threshold", pair, case)


# ----------------------------------------------------------------------------------------------------------
# every backend against the CPU kernels and the reference (a GPU's NaNs are compared as NaN: it returns the
# canonical NaN where x86 keeps the operand's payload)


@ALL_DTYPES
@pytest.mark.parametrize("backend,threshold", per_backend([0.0, 0.5, 3.0], [0.5]), indirect=["backend"])
def test_prox_l1_matches_cpu_and_reference(backend, dtype, threshold):
    backend.require(dtype)
    rng = np.random.default_rng(11)
    sizes = backend.sizes((278011, 0, 1, 17, CHUNK + 1), (100003, 0, 1, 17, CHUNK + 1))
    params = [values(rng, n, dtype, specials=True) for n in sizes]
    params[0][:8] = np.array([0.5, -0.5, 0.0, -0.0, 3.0, -3.0, 0.49999, 2.9999]).astype(dtype)
    wd = [backend.asarray(p.copy()) for p in params]
    count = rdf.prox_l1(wd, threshold)
    assert is_result_scalar(backend, count, np.int64)
    cpu, ref = copies(params), copies(params)
    c_cpu = rdf.prox_l1(cpu, threshold)
    assert scalar(count) == c_cpu == reference.prox_l1(ref, threshold)
    for i in range(len(params)):
        assert_backend_bits(backend, wd[i], cpu[i], f"params[{i}]")
    again = rdf.prox_l1([backend.asarray(p.copy()) for p in params], threshold, as_int=True)
    assert type(again) is int and again == c_cpu


@ALL_DTYPES
@pytest.mark.parametrize("shift", [1, 2, 3])
def test_prox_l1_misaligned_views_write_nothing_outside(backend, dtype, shift):
    count, expected = check_update_on_misaligned_view(backend, dtype, shift,
                                                      lambda w: rdf.prox_l1(w, 0.7, as_int=True))
    assert type(count) is int and count == expected
