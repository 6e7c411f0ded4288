"""decay (w *= 1 - factor in place) on every backend: against the NumPy reference and the CPU kernels, bit
for bit; bad input raises and modifies nothing.
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
    make_params,
    per_backend,
    rejects,
    same_bits,
    values,
)

import regdrop_fast as rdf
from regdrop_fast import reference


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


@IMPLS
@pytest.mark.parametrize("case", UPDATE_BAD, ids=[c[0] for c in UPDATE_BAD])
def test_decay_rejects(impl, pair, case):
    check_update_rejects(impl.decay, "factor", pair, case)


@IMPLS
def test_decay_factor_above_one_rejected(impl, pair):
    ws, _ = pair
    rejects(ValueError, r"factor: expected a number in \[0, 1\], got 1.5", lambda: impl.decay(ws, 1.5), *ws)
    rejects(ValueError, r"factor\[1\]: expected a number in \[0, 1\]", lambda: impl.decay(ws, [0.1, 2.0]), *ws)


# ----------------------------------------------------------------------------------------------------------
# every backend against the CPU kernels and the reference (a GPU's NaNs are compared as NaN: it returns the
# canonical NaN where x86 keeps the operand's payload)

PER_ARRAY = [0.25, 0.0, 1.0, 1e-3, 0.5]


@ALL_DTYPES
@pytest.mark.parametrize("backend,factor", per_backend([0.0, 1e-3, 0.5, 1.0, PER_ARRAY], [PER_ARRAY]),
                         indirect=["backend"])
def test_decay_matches_cpu_and_reference(backend, dtype, factor):
    backend.require(dtype)
    rng = np.random.default_rng(13)
    sizes = backend.sizes((278011, 3, 0, CHUNK, 17), (100003, 0, 1, 17, CHUNK + 1))
    params = [values(rng, n, dtype, specials=True) for n in sizes]
    wd = [backend.asarray(p.copy()) for p in params]
    assert rdf.decay(wd, factor) is None
    cpu, ref = copies(params), copies(params)
    rdf.decay(cpu, factor)
    reference.decay(ref, factor)
    assert_all_same_bits(cpu, ref, "params")
    for i in range(len(params)):
        assert_backend_bits(backend, wd[i], cpu[i], f"params[{i}]")
        if factor == 0.0:
            assert same_bits(backend.to_numpy(wd[i]), params[i])


@ALL_DTYPES
@pytest.mark.parametrize("shift", [1, 2, 3])
def test_decay_misaligned_views_write_nothing_outside(backend, dtype, shift):
    check_update_on_misaligned_view(backend, dtype, shift, lambda w: rdf.decay(w, 0.25))
