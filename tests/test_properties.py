"""Hypothesis property tests: random shapes, layouts, dtypes, p, seeds and offsets.

Kept to a modest number of examples each so the file runs in seconds; the exhaustive grids live in
test_dropout.py.
"""

from __future__ import annotations

import numpy as np
from conftest import DTYPES, U64_MAX, assert_same_bits, assert_same_mask, special_values
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import regdrop_fast as rdf
from regdrop_fast import reference

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)

dtypes = st.sampled_from(DTYPES)
probs = st.one_of(st.sampled_from([0.0, 0.5, 1.0, 2.0**-33, 1 - 2.0**-33]),
                  st.floats(0.0, 1.0, allow_nan=False))
seeds = st.integers(0, U64_MAX)
# anywhere, near 0 (unaligned), and near the 2^64 wrap-around
offsets = st.one_of(st.integers(0, U64_MAX), st.integers(0, 64), st.integers(U64_MAX - 3000, U64_MAX),
                    st.integers((1 << 32) - 3000, (1 << 32) + 64))
layouts = st.sampled_from(["c", "transpose", "step", "reverse", "fortran"])


def compute_type(dtype):
    return np.float64 if dtype == np.float64 else np.float32


@st.composite
def float_arrays(draw, max_side=24):
    """An array of a supported dtype and random shape/layout, with NaN, inf and extremes sprinkled in."""
    dtype = draw(dtypes)
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=max_side))
    layout = draw(layouts)
    data_seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(data_seed)
    n = int(np.prod(shape))
    values = (3.0 * rng.standard_normal(n)).astype(dtype)
    specials = special_values(dtype)
    if n:
        hits = rng.random(n) < 0.1
        values[hits] = rng.choice(specials, size=int(hits.sum()))
    x = values.reshape(shape)
    if layout == "transpose":
        x = np.ascontiguousarray(x.T).T  # same logical values, transposed strides
    elif layout == "step" and x.ndim:
        wide = np.empty(shape[:-1] + (2 * shape[-1],), dtype)
        wide[..., ::2] = x
        x = wide[..., ::2]
    elif layout == "reverse" and x.ndim:
        x = np.ascontiguousarray(x[..., ::-1])[..., ::-1]
    elif layout == "fortran":
        x = np.asfortranarray(x)
    return x


@PROPERTY_SETTINGS
@given(x=float_arrays(), p=probs, seed=seeds, offset=offsets)
def test_native_matches_reference(x, p, seed, offset):
    (y, mask), (y_ref, mask_ref) = rdf.dropout(x, p, seed=seed, offset=offset), reference.dropout(
        x, p, seed=seed, offset=offset)
    assert_same_bits(y, y_ref, "forward")
    assert_same_mask(mask, mask_ref, "mask")
    assert_same_mask(rdf.dropout_mask(x.shape, p, seed=seed, offset=offset), mask_ref, "dropout_mask")
    _, mask_s = rdf.dropout(x, p, seed=seed, offset=offset, store="seed")
    grad = x[..., ::-1] if x.ndim else x
    dx_ref = reference.dropout_backward(grad, mask_ref)
    assert_same_bits(rdf.dropout_backward(grad, mask), dx_ref, "backward from bits")
    assert_same_bits(rdf.dropout_backward(grad, mask_s), dx_ref, "backward from seed")


@PROPERTY_SETTINGS
@given(data=st.data(), dtype=dtypes, p=probs, seed=seeds, offset=offsets)
def test_slicing_invariance(data, dtype, p, seed, offset):
    n = data.draw(st.integers(0, 5000), label="n")
    a = data.draw(st.integers(0, n), label="a")
    b = data.draw(st.integers(a, n), label="b")
    x = np.random.default_rng(n).standard_normal(n).astype(dtype)
    y_full, mask_full = rdf.dropout(x, p, seed=seed, offset=offset)
    part_offset = (offset + a) % (1 << 64)
    y, mask = rdf.dropout(x[a:b], p, seed=seed, offset=part_offset)
    assert_same_bits(y, y_full[a:b], "forward slice")
    assert_same_bits(mask.to_bool(), mask_full.to_bool()[a:b], "mask slice")
    keep = reference.dropout_mask((b - a,), p, seed=seed, offset=part_offset).to_bool()
    assert_same_bits(keep, mask_full.to_bool()[a:b], "reference mask slice")


@PROPERTY_SETTINGS
@given(dtype=dtypes, shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=30), p=probs,
       seed=seeds, offset=offsets, store=st.sampled_from(["bits", "seed"]))
def test_backward_of_ones_is_mask_times_scale(dtype, shape, p, seed, offset, store):
    ones = np.ones(shape, dtype)
    _, mask = rdf.dropout(ones, p, seed=seed, offset=offset, store=store)
    ct = compute_type(dtype)
    expected = np.where(mask.to_bool(), ct(mask.scale), ct(0)).astype(dtype)
    assert_same_bits(rdf.dropout_backward(ones, mask), expected, "native")
    assert_same_bits(reference.dropout_backward(ones, mask), expected, "reference")
    assert mask.scale == (0.0 if round(p * 2**32) == 2**32 else 1 / (1 - p))


@PROPERTY_SETTINGS
@given(n=st.integers(0, 3000), p=probs, seed=seeds, offset=offsets)
def test_mask_bits_are_little_endian_packbits(n, p, seed, offset):
    mask = rdf.dropout_mask(n, p, seed=seed, offset=offset)
    keep = mask.to_bool()
    assert_same_bits(mask.bits, np.packbits(keep, bitorder="little"))
    assert_same_bits(keep, np.unpackbits(mask.bits, count=n, bitorder="little").astype(bool))
    threshold = round(p * 2**32)
    if threshold == 0:
        assert keep.all()
    if threshold == 2**32:
        assert not keep.any()
