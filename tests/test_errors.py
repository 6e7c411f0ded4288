"""Every bad input of issue 2: the right exception, a message naming the problem, and nothing modified.

Wrong types raise TypeError, wrong values/shapes/ranges raise ValueError. Each rejected call is made with
real input and out arrays that are compared byte for byte before and after, for the native functions and
the NumPy reference alike (same signatures, same checks).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import BFLOAT16, U64_MAX, assert_same_bits, assert_unchanged, rejects, snapshot

import regdrop_fast as rdf
from regdrop_fast import reference

IMPLS = pytest.mark.parametrize("impl", [rdf, reference], ids=["native", "reference"])


@pytest.fixture
def x():
    return np.linspace(-2, 2, 20, dtype=np.float32).reshape(4, 5)


@pytest.fixture
def out(x):
    return np.full_like(x, 123.0)


# ----------------------------------------------------------------------------------------------------------
# dtypes


BAD_DTYPES = [np.int8, np.int32, np.int64, np.uint8, np.uint32, np.uint64, np.bool_, np.complex64,
              np.complex128, object, "U5", "S3", "datetime64[s]", "m8[ms]"]
if np.dtype(np.longdouble) != np.dtype(np.float64):
    BAD_DTYPES.append(np.longdouble)


def bad_array(dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype == object:
        return np.array([[1.0, 2.0], [3.0, 4.0]], dtype=object)  # floats, but an object array
    return np.ones((2, 2), dtype)


@IMPLS
@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=str)
def test_dropout_rejects_dtype(impl, dtype):
    bad = bad_array(dtype)
    out = np.zeros((2, 2), np.float32)
    rejects(TypeError, re.escape(f"dtype {bad.dtype}"), lambda: impl.dropout(bad, 0.5, seed=1), bad)
    rejects(TypeError, re.escape(f"dtype {bad.dtype}"), lambda: impl.dropout(bad, 0.5, seed=1, out=out),
            bad, out)


@IMPLS
@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=str)
def test_backward_rejects_dtype(impl, dtype):
    bad = bad_array(dtype)
    mask = rdf.dropout_mask((2, 2), 0.5, seed=1)
    rejects(TypeError, re.escape(f"dtype {bad.dtype}"), lambda: impl.dropout_backward(bad, mask), bad,
            mask.bits)


@IMPLS
def test_rejects_python_ints_and_bools(impl):
    with pytest.raises(TypeError, match="dtype int64"):
        impl.dropout([1, 2, 3], 0.5, seed=1)
    with pytest.raises(TypeError, match="dtype bool"):
        impl.dropout([True, False], 0.5, seed=1)
    with pytest.raises(TypeError, match="dtype complex128"):
        impl.dropout(1j, 0.5, seed=1)


@IMPLS
def test_ragged_input(impl):
    with pytest.raises(ValueError, match="cannot be converted"):
        impl.dropout([[1.0, 2.0], [3.0]], 0.5, seed=1)


@IMPLS
def test_non_native_byte_order_is_never_misread(impl):
    """Byte-swapped floats are either rejected as a dtype or read by value, never as raw native bytes."""
    x = np.linspace(-1, 1, 33).astype(">f4")
    try:
        y, _ = impl.dropout(x, 0.5, seed=1)
    except TypeError as exc:
        assert ">f4" in str(exc)
    else:
        assert_same_bits(y.astype(np.float32), impl.dropout(x.astype(np.float32), 0.5, seed=1)[0])


# ----------------------------------------------------------------------------------------------------------
# p


@IMPLS
@pytest.mark.parametrize("p", [-0.1, -1e-300, 1.0000001, 2, -1, np.inf, -np.inf, np.nan, np.float32(np.nan),
                               np.float64(1.5)], ids=repr)
def test_p_out_of_range(impl, p, x, out):
    match = "p: dropout probability has to be between 0 and 1"
    rejects(ValueError, match, lambda: impl.dropout(x, p, seed=1), x)
    rejects(ValueError, match, lambda: impl.dropout(x, p, seed=1, out=out), x, out)
    rejects(ValueError, match, lambda: impl.dropout(x, p, seed=1, out=x), x)  # in place: x untouched
    rejects(ValueError, match, lambda: impl.dropout_mask(x.shape, p, seed=1))
    rejects(ValueError, match, lambda: rdf.Mask(x.shape, p, 1))


@IMPLS
@pytest.mark.parametrize("p", ["0.5", None, True, False, np.bool_(True), 0.5j, [0.5], b"0.5"], ids=repr)
def test_p_not_a_real_number(impl, p, x, out):
    match = "p: expected a real number"
    rejects(TypeError, match, lambda: impl.dropout(x, p, seed=1, out=out), x, out)
    rejects(TypeError, match, lambda: impl.dropout_mask(x.shape, p, seed=1))
    rejects(TypeError, match, lambda: rdf.Mask(x.shape, p, 1))


@IMPLS
def test_p_accepts_real_numbers(impl, x):
    from fractions import Fraction

    y, mask = impl.dropout(x, 0.5, seed=1)
    for p in (Fraction(1, 2), np.float32(0.5), np.float16(0.5), 1 / 2):
        y2, m2 = impl.dropout(x, p, seed=1)
        assert m2.p == 0.5 and type(m2.p) is float
        assert y2.tobytes() == y.tobytes()
    assert impl.dropout(x, 0, seed=1)[1].p == 0.0  # ints 0 and 1 are real numbers
    assert impl.dropout(x, 1, seed=1)[1].p == 1.0


# ----------------------------------------------------------------------------------------------------------
# seed and offset


@IMPLS
@pytest.mark.parametrize("name", ["seed", "offset"])
@pytest.mark.parametrize("value", [-1, 1 << 64, (1 << 64) + 5, -(1 << 70), np.int64(-3)], ids=repr)
def test_seed_offset_out_of_range(impl, name, value, x, out):
    match = rf"{name}: -?\d+ is outside \[0, 2\*\*64\)"
    kw = {"seed": 1, name: value}
    rejects(ValueError, match, lambda: impl.dropout(x, 0.5, **kw, out=out), x, out)
    rejects(ValueError, match, lambda: impl.dropout_mask(x.shape, 0.5, **kw))
    rejects(ValueError, match, lambda: rdf.Mask(x.shape, 0.5, kw["seed"], kw.get("offset", 0)))


@IMPLS
@pytest.mark.parametrize("name", ["seed", "offset"])
@pytest.mark.parametrize("value", [1.0, 1.5, np.float64(3.0), "1", b"1", True, np.bool_(False), [1], 1j],
                         ids=repr)
def test_seed_offset_not_an_int(impl, name, value, x, out):
    match = rf"{name}: expected an int in \[0, 2\*\*64\)"
    kw = {"seed": 1, name: value}
    rejects(TypeError, match, lambda: impl.dropout(x, 0.5, **kw, out=out), x, out)
    rejects(TypeError, match, lambda: impl.dropout_mask(x.shape, 0.5, **kw))
    rejects(TypeError, match, lambda: rdf.Mask(x.shape, 0.5, kw["seed"], kw.get("offset", 0)))


@IMPLS
def test_dropout_mask_requires_a_seed(impl):
    with pytest.raises(TypeError):
        impl.dropout_mask((3,), 0.5)
    with pytest.raises(TypeError, match="seed: expected an int"):
        impl.dropout_mask((3,), 0.5, seed=None)


@IMPLS
def test_extreme_seeds_and_offsets_accepted(impl, x):
    for seed, offset in [(0, 0), (U64_MAX, U64_MAX), (np.uint64(U64_MAX), np.uint64(U64_MAX))]:
        _, mask = impl.dropout(x, 0.5, seed=seed, offset=offset)
        assert (mask.seed, mask.offset) == (int(seed), int(offset))
        assert type(mask.seed) is int and type(mask.offset) is int


# ----------------------------------------------------------------------------------------------------------
# store


@IMPLS
@pytest.mark.parametrize("store", ["bit", "BITS", "Seed", "", "none", None, 1, b"bits", ("bits",)], ids=repr)
def test_store_not_bits_or_seed(impl, store, x, out):
    rejects(ValueError, "store: expected 'bits' or 'seed'",
            lambda: impl.dropout(x, 0.5, seed=1, out=out, store=store), x, out)


# ----------------------------------------------------------------------------------------------------------
# out=


def bad_outs(x):
    """(name, out, message) for out arrays that must be rejected with ValueError for input x (4, 5)."""
    readonly = np.zeros_like(x)
    readonly.flags.writeable = False
    wide = np.zeros((4, 10), x.dtype)
    return [
        ("transposed_shape", np.zeros((5, 4), x.dtype), "shape"),
        ("flat", np.zeros(20, x.dtype), "shape"),
        ("extra_axis", np.zeros((1, 4, 5), x.dtype), "shape"),
        ("float64", np.zeros(x.shape, np.float64), "dtype"),
        ("float16", np.zeros(x.shape, np.float16), "dtype"),
        ("bfloat16", np.zeros(x.shape, BFLOAT16), "dtype"),
        ("int32", np.zeros(x.shape, np.int32), "dtype"),
        ("strided", wide[:, ::2], "C-contiguous"),
        ("fortran", np.asfortranarray(np.zeros(x.shape, x.dtype)), "C-contiguous"),
        ("readonly", readonly, "writeable"),
        ("broadcast", np.broadcast_to(np.zeros(5, x.dtype), x.shape), "C-contiguous|writeable"),
    ]


@IMPLS
@pytest.mark.parametrize("case", range(11))
def test_out_rejected(impl, case, x):
    name, bad, match = bad_outs(x)[case]
    rejects(ValueError, f"out: .*({match})", lambda: impl.dropout(x, 0.5, seed=1, out=bad), x, bad)
    _, mask = impl.dropout(x, 0.5, seed=1)
    grad = x + 1
    rejects(ValueError, f"out: .*({match})", lambda: impl.dropout_backward(grad, mask, out=bad), grad, bad,
            mask.bits)


@IMPLS
@pytest.mark.parametrize("bad", [[0.0] * 20, (0.0,), 3.0, "out", memoryview(bytearray(80))], ids=repr)
def test_out_not_an_ndarray(impl, bad, x):
    rejects(TypeError, "out: expected a numpy.ndarray", lambda: impl.dropout(x, 0.5, seed=1, out=bad), x)
    _, mask = impl.dropout(x, 0.5, seed=1)
    rejects(TypeError, "out: expected a numpy.ndarray", lambda: impl.dropout_backward(x, mask, out=bad), x)


@IMPLS
def test_in_place_on_a_non_contiguous_input(impl):
    base = np.arange(40, dtype=np.float32).reshape(4, 10)
    view = base[:, ::2]
    rejects(ValueError, "out: must be C-contiguous", lambda: impl.dropout(view, 0.5, seed=1, out=view), base)


# ----------------------------------------------------------------------------------------------------------
# dropout_backward


@IMPLS
@pytest.mark.parametrize("mask", [None, "mask", np.zeros(3, np.uint8), (np.zeros(3), None), 0.5,
                                  {"bits": None}], ids=lambda m: type(m).__name__)
def test_backward_needs_a_mask(impl, mask, x, out):
    rejects(TypeError, "mask: expected a regdrop_fast.Mask", lambda: impl.dropout_backward(x, mask, out=out),
            x, out)


@IMPLS
@pytest.mark.parametrize("store", ["bits", "seed"])
@pytest.mark.parametrize("grad_shape", [(5, 4), (20,), (4, 5, 1), (), (0,), (4, 6)], ids=str)
def test_backward_shape_mismatch(impl, store, grad_shape, x):
    _, mask = impl.dropout(x, 0.5, seed=1, store=store)
    grad = np.ones(grad_shape, np.float32)
    out = np.full(grad_shape, 9.0, np.float32)
    rejects(ValueError, re.escape(f"grad: shape {grad_shape} does not match the mask's (4, 5)"),
            lambda: impl.dropout_backward(grad, mask, out=out), grad, out)


@IMPLS
def test_backward_with_tampered_mask_bits(impl, x, out):
    """Mask attributes can be reassigned; bits that no longer fit are rejected, never read past."""
    grad = np.ones((1000, 1000), np.float32)
    mask = rdf.dropout_mask(grad.shape, 0.5, seed=1)
    for bits in [np.zeros(1, np.uint8), np.zeros(mask.bits.size - 1, np.uint8),
                 np.zeros(mask.bits.size + 1, np.uint8), np.zeros((2, mask.bits.size // 2), np.uint8),
                 np.zeros(2 * mask.bits.size, np.uint8)[::2], np.zeros(mask.bits.size, np.int8)]:
        mask.bits = bits
        rejects(ValueError, "mask: bits must be a contiguous 1-d uint8 array",
                lambda: impl.dropout_backward(grad, mask), grad, bits)
    small = rdf.dropout_mask((4, 5), 0.5, seed=1)
    small.shape = grad.shape  # shape grown after construction: the 3 bytes of bits cover 20 elements
    rejects(ValueError, "mask: bits must be", lambda: impl.dropout_backward(grad, small), grad, small.bits)


# ----------------------------------------------------------------------------------------------------------
# dropout_mask and Mask


@IMPLS
@pytest.mark.parametrize("shape, exc, match", [
    (-1, ValueError, "negative dimension"),
    ((3, -2), ValueError, "negative dimension"),
    (2.5, TypeError, "shape: expected an int or a sequence"),
    (None, TypeError, "shape: expected an int or a sequence"),
    ((2.0, 3), TypeError, "shape: expected ints, got float"),
    ("ab", TypeError, "shape: expected ints, got str"),
    ((True, 2), TypeError, "shape: expected ints, got bool"),
], ids=repr)
def test_dropout_mask_bad_shape(impl, shape, exc, match):
    with pytest.raises(exc, match=match):
        impl.dropout_mask(shape, 0.5, seed=1)
    with pytest.raises(exc, match=match):
        rdf.Mask(shape, 0.5, 1)


@pytest.mark.parametrize("bits, exc, match", [
    ([0, 1, 2], TypeError, "bits: expected a numpy.ndarray or None"),
    (b"\x00\x01\x02", TypeError, "bits: expected a numpy.ndarray or None"),
    (np.zeros(3, np.int8), TypeError, "bits: expected dtype uint8, got int8"),
    (np.zeros(3, np.float32), TypeError, "bits: expected dtype uint8, got float32"),
    (np.zeros(3, bool), TypeError, "bits: expected dtype uint8, got bool"),
    (np.zeros(2, np.uint8), ValueError, "bits: expected a contiguous 1-d array of 3 bytes"),
    (np.zeros(4, np.uint8), ValueError, "bits: expected a contiguous 1-d array of 3 bytes"),
    (np.zeros(20, np.uint8), ValueError, "bits: expected a contiguous 1-d array of 3 bytes"),
    (np.zeros((1, 3), np.uint8), ValueError, "bits: expected a contiguous 1-d array of 3 bytes"),
    (np.zeros(6, np.uint8)[::2], ValueError, "bits: expected a contiguous 1-d array of 3 bytes"),
    (np.zeros((), np.uint8), ValueError, "bits: expected a contiguous 1-d array"),
], ids=lambda v: repr(v) if not isinstance(v, np.ndarray) else f"{v.dtype}{v.shape}")
def test_mask_bad_bits(bits, exc, match):
    with pytest.raises(exc, match=match):
        rdf.Mask((4, 5), 0.5, 1, 0, bits)


def test_mask_accepts_good_bits():
    bits = np.zeros(3, np.uint8)
    mask = rdf.Mask((4, 5), 0.5, 1, 0, bits)
    assert mask.bits is bits and mask.shape == (4, 5)
    assert rdf.Mask((), 0.5, 1, 0, np.zeros(1, np.uint8)).size == 1
    assert rdf.Mask((0, 7), 0.5, 1, 0, np.zeros(0, np.uint8)).size == 0


# ----------------------------------------------------------------------------------------------------------
# threads and SIMD settings


@pytest.mark.parametrize("n, exc, match", [
    (0, ValueError, "n: expected at least 1 thread, got 0"),
    (-1, ValueError, "n: expected at least 1 thread, got -1"),
    (np.int64(-4), ValueError, "at least 1 thread"),
    (1.5, TypeError, "n: expected an int, got float"),
    (2.0, TypeError, "n: expected an int, got float"),
    ("2", TypeError, "n: expected an int, got str"),
    (None, TypeError, "n: expected an int, got NoneType"),
    (True, TypeError, "n: expected an int, got bool"),
], ids=repr)
def test_set_num_threads_rejects(n, exc, match):
    before = rdf.get_num_threads()
    with pytest.raises(exc, match=match):
        rdf.set_num_threads(n)
    assert rdf.get_num_threads() == before


def test_set_num_threads_huge_is_capped_not_an_error():
    before = rdf.get_num_threads()
    try:
        rdf.set_num_threads(1 << 40)
        assert 1 <= rdf.get_num_threads() <= 1 << 16
        x = np.ones(300000, np.float32)
        assert rdf.dropout(x, 0.5, seed=1)[0].tobytes() == reference.dropout(x, 0.5, seed=1)[0].tobytes()
    finally:
        rdf.set_num_threads(before)


@pytest.mark.parametrize("level", ["sse", "AVX2", "", "avx-512", "native"])
def test_set_simd_rejects(level):
    before = rdf.backend_info()["simd"]
    with pytest.raises(ValueError, match=r"level: expected one of \('generic', 'avx2', 'avx512'\)"):
        rdf.set_simd(level)
    assert rdf.backend_info()["simd"] == before


# ----------------------------------------------------------------------------------------------------------
# philox argument errors leave the inputs alone too


@pytest.mark.parametrize("philox", [rdf.random.philox4x32, reference.philox4x32], ids=["native", "reference"])
def test_philox_rejections_modify_nothing(philox):
    ctr = np.arange(12, dtype=np.uint32).reshape(3, 4)
    key = np.zeros((2, 2), np.uint32)
    rejects(ValueError, "do not broadcast", lambda: philox(ctr, key), ctr, key)
    big = np.array([0, 0, 0, 1 << 40], np.int64)
    rejects(ValueError, "values must lie", lambda: philox(big, [0, 0]), big)
