"""Every bad input of issue 2: the right exception, a message naming the problem, and nothing modified.

Wrong types raise TypeError, wrong values/shapes/ranges raise ValueError. Each rejected call is made with
real input and out arrays that are compared byte for byte before and after, for the native functions and
the NumPy reference alike (same signatures, same checks).
"""

from __future__ import annotations

import re
from fractions import Fraction

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
@pytest.mark.parametrize("store", ["bit", "BITS", "Seed", "", "none"], ids=repr)
def test_store_not_bits_or_seed(impl, store, x, out):
    rejects(ValueError, "store: expected 'bits' or 'seed'",
            lambda: impl.dropout(x, 0.5, seed=1, out=out, store=store), x, out)


@IMPLS
@pytest.mark.parametrize("store", [None, 1, True, b"bits", ("bits",), ["seed"]], ids=repr)
def test_store_not_a_str(impl, store, x, out):
    """A wrong type is a TypeError; ValueError is for a str that is not one of the choices."""
    rejects(TypeError, "store: expected 'bits' or 'seed', got " + type(store).__name__,
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
        ("strided", wide[:, ::2], "C-contiguous"),
        ("fortran_gaps", np.asfortranarray(np.zeros((4, 10), x.dtype))[:, ::2], "dense"),
        ("readonly", readonly, "writeable"),
        ("broadcast", np.broadcast_to(np.zeros(5, x.dtype), x.shape), "C-contiguous|writeable"),
    ]


@IMPLS
@pytest.mark.parametrize("case", range(10))
def test_out_rejected(impl, case, x):
    name, bad, match = bad_outs(x)[case]
    rejects(ValueError, f"out: .*({match})", lambda: impl.dropout(x, 0.5, seed=1, out=bad), x, bad)
    _, mask = impl.dropout(x, 0.5, seed=1)
    grad = x + 1
    rejects(ValueError, f"out: .*({match})", lambda: impl.dropout_backward(grad, mask, out=bad), grad, bad,
            mask.bits)


@IMPLS
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_, np.complex64, object], ids=str)
def test_out_of_an_unsupported_dtype(impl, dtype, x):
    """out's dtype is checked as x's: one the kernels do not take is a TypeError with x's message; a
    supported dtype other than x's stays a ValueError (bad_outs)."""
    bad = np.zeros(x.shape, dtype)
    match = re.escape(f"out: dtype {bad.dtype} is not supported")
    rejects(TypeError, match, lambda: impl.dropout(x, 0.5, seed=1, out=bad), x, bad)
    _, mask = impl.dropout(x, 0.5, seed=1)
    rejects(TypeError, match, lambda: impl.dropout_backward(x, mask, out=bad), x, bad, mask.bits)


@IMPLS
@pytest.mark.parametrize("bad", [[0.0] * 20, (0.0,), 3.0, "out", memoryview(bytearray(80))],
                         ids=["list", "tuple", "float", "str", "memoryview"])  # stable ids: pytest-xdist
def test_out_not_an_ndarray(impl, bad, x):
    rejects(TypeError, "out: expected a numpy.ndarray", lambda: impl.dropout(x, 0.5, seed=1, out=bad), x)
    _, mask = impl.dropout(x, 0.5, seed=1)
    rejects(TypeError, "out: expected a numpy.ndarray", lambda: impl.dropout_backward(x, mask, out=bad), x)


@IMPLS
def test_in_place_on_a_non_contiguous_input(impl):
    base = np.arange(40, dtype=np.float32).reshape(4, 10)
    view = base[:, ::2]
    rejects(ValueError, "out: must be dense", lambda: impl.dropout(view, 0.5, seed=1, out=view), base)


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


@pytest.mark.parametrize("field, value, exc, match", [
    ("p", 2.0, ValueError, "p: dropout probability has to be between 0 and 1"),
    ("p", "0.5", TypeError, "p: expected a real number"),
    ("p", 10**400, ValueError, "p: dropout probability"),
    ("seed", -1, ValueError, r"seed: -1 is outside \[0, 2\*\*64\)"),
    ("seed", 1.0, TypeError, "seed: expected an int"),
    ("offset", 2**70, ValueError, "offset: .* is outside"),
    ("offset", None, TypeError, "offset: expected an int"),
    ("shape", (5, 4, 1000), ValueError, "do not fit"),
    ("shape", (-1,), ValueError, "negative dimension"),
    ("shape", (3, 2**62), ValueError, r"fewer than 2\*\*63"),
    ("shape", 2.5, TypeError, "shape: expected an int or a sequence"),
    ("bits", [0, 1, 2], TypeError, "bits: expected a numpy.ndarray or None"),
    ("bits", b"\x00\x01\x02", TypeError, "bits: expected a numpy.ndarray or None"),
    ("bits", np.zeros(3, np.int8), TypeError, "bits: expected dtype uint8"),
    ("bits", np.zeros(2, np.uint8), ValueError, "bits: expected a contiguous 1-d array of 3 bytes"),
    ("bits", np.zeros(4, np.uint8), ValueError, "bits: expected a contiguous 1-d array of 3 bytes"),
    ("bits", np.zeros(6, np.uint8)[::2], ValueError, "bits: expected a contiguous 1-d array of 3 bytes"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 30 else None)
def test_mask_field_assignment_is_checked(field, value, exc, match):
    """A field assigned after construction is checked as the constructor checks it; the mask keeps its
    old value (before: p = 2.0 reached the kernel as pybind11's "incompatible function arguments" and the
    reference returned -grad; bits as a list were taken for CUDA bits; short bits were zero-padded)."""
    mask = rdf.dropout_mask((4, 5), 0.5, seed=1)
    before = (mask.shape, mask.p, mask.seed, mask.offset, mask.bits.tobytes())
    with pytest.raises(exc, match=match):
        setattr(mask, field, value)
    assert (mask.shape, mask.p, mask.seed, mask.offset, mask.bits.tobytes()) == before


def test_mask_field_assignment_accepts_good_values():
    mask = rdf.dropout_mask((4, 5), 0.5, seed=1)
    mask.p, mask.seed, mask.offset = np.float32(0.25), np.uint64(7), 3
    assert (mask.p, mask.seed, mask.offset) == (0.25, 7, 3) and type(mask.p) is float
    mask.shape = (20,)  # as many elements: the bits still fit
    mask.bits = None
    mask.shape = (2, 3)
    mask.bits = np.zeros(1, np.uint8)
    assert mask.to_bool().shape == (2, 3) and not mask.to_bool().any()
    assert rdf.Mask((4, 5), 0.5, 1).to_bool().tobytes() == rdf.dropout_mask((4, 5), 0.5, seed=1).to_bool().tobytes()


@IMPLS
def test_backward_rechecks_bits_read_by_a_kernel(impl):
    """Bits are checked again where they are read: a mask whose stored fields were changed behind the
    setters (or made by Mask._trusted) never has its bits read past their end."""
    grad = np.ones((1000, 1000), np.float32)
    small = rdf.dropout_mask((4, 5), 0.5, seed=1)
    small._shape = grad.shape  # shape grown behind the setter: the 3 bytes of bits cover 20 elements
    rejects(ValueError, "mask: bits: expected a contiguous 1-d array of 125000 bytes",
            lambda: impl.dropout_backward(grad, small), grad, small.bits)
    with pytest.raises(ValueError, match="mask: bits: expected a contiguous 1-d array"):
        small.to_bool()


@IMPLS
@pytest.mark.parametrize("n", [64, 1000, 100003])
def test_backward_out_overlapping_the_bits(impl, n):
    """out may share memory with the mask's bits: they are read before out is written (before: 23 of 64
    values differed)."""
    grad = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    mask = rdf.dropout_mask(n, 0.5, seed=3)
    expected = impl.dropout_backward(grad, mask)
    buf = np.zeros(n, np.float32)
    bits = buf.view(np.uint8)[: mask.bits.size]
    bits[:] = mask.bits
    result = impl.dropout_backward(grad, rdf.Mask(n, 0.5, 3, 0, bits), out=buf)
    assert result is buf
    assert_same_bits(result, expected)


@pytest.mark.parametrize("n", [64, 100003])
def test_backward_out_overlapping_the_bits_on_cuda(cuda_emulated, n):
    """The same on the CUDA backend (emulated: fake CuPy arrays over host memory, so the bits can be a view
    of out's memory): the bits are copied before out is written."""
    import fake_cupy

    grad = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    mask = rdf.dropout_mask(n, 0.5, seed=3)
    expected = rdf.dropout_backward(grad, mask)
    buf = np.zeros(n, np.float32)
    bits = buf.view(np.uint8)[: mask.bits.size]
    bits[:] = mask.bits
    out = fake_cupy.ndarray(buf)
    result = rdf.dropout_backward(fake_cupy.ndarray(grad), rdf.Mask._trusted((n,), 0.5, 3, 0,
                                                                             fake_cupy.ndarray(bits)), out=out)
    assert result is out
    assert_same_bits(buf, expected)


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
    ((2**32, 2**32), ValueError, "has 18446744073709551616 elements; a shape must have fewer than 2\\*\\*63"),
    ((3, 2**62), ValueError, "a shape must have fewer than 2\\*\\*63"),
    ((2**64,), ValueError, "dimension 18446744073709551616 is too large"),
    (2**63, ValueError, "dimension .* is too large; each must be below 2\\*\\*63"),
    ((0, 2**64), ValueError, "too large"),
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


@pytest.mark.parametrize("level", [None, 1, b"avx2", ("avx2",)], ids=repr)
def test_set_simd_rejects_a_non_str(level):
    before = rdf.backend_info()["simd"]
    with pytest.raises(TypeError, match=r"level: expected one of \('generic', 'avx2', 'avx512'\), got"):
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


# ----------------------------------------------------------------------------------------------------------
# numbers too large for a float are values out of range (before: OverflowError from float())


@IMPLS
@pytest.mark.parametrize("huge", [10**400, -(10**400), Fraction(10**400, 3)], ids=["1e400", "-1e400", "Fraction"])
def test_huge_numbers_are_value_errors(impl, huge):
    w = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    g = np.ones_like(w)
    rejects(ValueError, "p: dropout probability", lambda: impl.dropout(w, huge, seed=1), w)
    rejects(ValueError, "p: dropout probability", lambda: impl.dropout_mask(3, huge, seed=1))
    rejects(ValueError, "l1: ", lambda: impl.penalty_grad([w], [g], l1=huge), w, g)
    rejects(ValueError, r"l2\[0\]: ", lambda: impl.penalty_grad([w], [g], l2=[huge]), w, g)
    rejects(ValueError, "l1: ", lambda: impl.penalty([w], l1=huge), w)
    rejects(ValueError, "threshold: ", lambda: impl.prox_l1([w], huge), w)
    rejects(ValueError, r"threshold\[0\]: ", lambda: impl.prox_l1([w], [huge]), w)
    rejects(ValueError, "factor: ", lambda: impl.decay([w], huge), w)
    rejects(ValueError, "max_value: ", lambda: impl.max_norm(w, huge, axis=1), w)


# ----------------------------------------------------------------------------------------------------------
# The adversarial table: every public function, bad inputs, the exception type, a message fragment, and
# nothing changed. A row is (function, exception, message regex, make); make() builds fresh inputs and
# returns (call, watched): call() must raise, and every watched object (arrays, tensors with their .grad,
# Masks, Generators, lists of them, or a zero-argument function reading a global setting) must be the same
# afterwards. A new public function adds its name to PUBLIC and its rows to TABLE.

try:
    import torch

    import regdrop_fast.torch as rt
except ImportError:  # the torch rows are left out without torch
    torch = rt = None

PUBLIC = ["dropout", "dropout_backward", "dropout_mask", "Mask", "Mask.<field> =", "penalty_grad", "penalty",
          "prox_l1", "decay", "max_norm", "random.philox4x32", "Generator", "Generator.<method>", "DataParallelGenerator",
          "set_num_threads", "set_simd", "norm_constraint", "unit_norm", "non_neg", "prox_group_l1"]
PUBLIC += ["bias_dropout_add", "dropout_add", "bias_dropout_add_backward"]
PUBLIC += ["gaussian_dropout", "gaussian_dropout_backward", "GaussianNoise"]
TORCH_PUBLIC = ["rt.dropout", "rt.Dropout", "rt.add_penalty_grad_", "rt.penalty", "rt.prox_l1_", "rt.decay_",
                "rt.max_norm_", "rt.norm_constraint_", "rt.unit_norm_", "rt.non_neg_"]
TORCH_PUBLIC += ["rt.bias_dropout_add", "rt.BiasDropoutAdd"]
PUBLIC += ["drop_path", "alpha_dropout", "alpha_dropout_backward"]
TORCH_PUBLIC += ["rt.dropout_shared", "rt.dropout1d", "rt.dropout2d", "rt.dropout3d", "rt.alpha_dropout",
                 "rt.feature_alpha_dropout", "rt.drop_path"]
TORCH_PUBLIC += ["rt.gaussian_dropout", "rt.GaussianDropout"]
TORCH_PUBLIC += ["rt.Dropout1d", "rt.Dropout2d", "rt.Dropout3d", "rt.AlphaDropout", "rt.FeatureAlphaDropout", "rt.DropPath"]


def state(obj):
    """A comparable picture of everything about obj a call could change."""
    if obj is None:
        return None
    if callable(obj) and not isinstance(obj, (rdf.Generator, rdf.Mask)):
        return ("setting", obj())
    if isinstance(obj, (list, tuple)):
        return tuple(state(o) for o in obj)
    if isinstance(obj, np.ndarray):
        return snapshot(obj)[0]
    if isinstance(obj, rdf.Mask):
        return ("mask", obj.shape, obj.p, obj.seed, obj.offset, obj.broadcast_dims, obj.scale_by_keep, state(obj.bits),
                obj.global_shape, obj.local_start)
    if isinstance(obj, rdf.Generator):
        return ("generator", obj.get_state())
    if torch is not None and isinstance(obj, torch.Tensor):
        flat = obj.detach().clone().reshape(-1).view(torch.uint8)
        return ("tensor", obj.dtype, tuple(obj.shape), obj.stride(), bytes(flat.numpy().tobytes()),
                state(obj.grad))
    raise AssertionError(f"state: cannot picture a {type(obj).__name__}")


def _w(n=12, dtype=np.float32):
    return np.linspace(-1, 1, n, dtype=dtype).reshape(3, -1)


def _dropout_rows():
    def mask_of(shape=(3, 4)):
        return rdf.dropout_mask(shape, 0.5, seed=1)

    def field(name, value):
        def make():
            m = mask_of()
            return lambda: setattr(m, name, value), [m]
        return make

    return [
        ("dropout", ValueError, "p: dropout probability", lambda: (lambda x=_w(): (lambda: rdf.dropout(x, 2.0, seed=1), [x]))()),
        ("dropout", ValueError, "p: dropout probability", lambda: (lambda x=_w(): (lambda: rdf.dropout(x, 10**400, seed=1), [x]))()),
        ("dropout", TypeError, "store: expected 'bits' or 'seed', got NoneType",
         lambda: (lambda x=_w(), o=_w() * 0: (lambda: rdf.dropout(x, 0.5, seed=1, out=o, store=None), [x, o]))()),
        ("dropout", ValueError, "store: expected 'bits' or 'seed', got 'bytes'",
         lambda: (lambda x=_w(): (lambda: rdf.dropout(x, 0.5, seed=1, store="bytes"), [x]))()),
        ("dropout", TypeError, "out: dtype int32 is not supported",
         lambda: (lambda x=_w(), o=np.zeros((3, 4), np.int32): (lambda: rdf.dropout(x, 0.5, seed=1, out=o), [x, o]))()),
        ("dropout", ValueError, "out: dtype float64 does not match",
         lambda: (lambda x=_w(), o=np.zeros((3, 4)): (lambda: rdf.dropout(x, 0.5, seed=1, out=o), [x, o]))()),
        ("dropout", TypeError, "seed: expected an int", lambda: (lambda x=_w(): (lambda: rdf.dropout(x, 0.5, seed=1.5), [x]))()),
        ("dropout_backward", TypeError, "mask: expected a regdrop_fast.Mask",
         lambda: (lambda g=_w(): (lambda: rdf.dropout_backward(g, None), [g]))()),
        ("dropout_backward", ValueError, r"grad: shape \(4, 3\) does not match",
         lambda: (lambda g=_w().reshape(4, 3), m=mask_of(): (lambda: rdf.dropout_backward(g, m), [g, m]))()),
        ("dropout_backward", TypeError, "out: dtype int64 is not supported",
         lambda: (lambda g=_w(), m=mask_of(), o=np.zeros((3, 4), np.int64):
                  (lambda: rdf.dropout_backward(g, m, out=o), [g, m, o]))()),
        ("dropout_mask", ValueError, r"fewer than 2\*\*63", lambda: (lambda: rdf.dropout_mask((2**32, 2**32), 0.5, seed=1), [])),
        ("dropout_mask", ValueError, r"dimension .* too large", lambda: (lambda: rdf.dropout_mask((2**64,), 0.5, seed=1), [])),
        ("dropout_mask", TypeError, "shape: expected ints", lambda: (lambda: rdf.dropout_mask((2.0,), 0.5, seed=1), [])),
        ("Mask", ValueError, r"fewer than 2\*\*63", lambda: (lambda: rdf.Mask((3, 2**62), 0.5, 1), [])),
        ("Mask", TypeError, "bits: expected a numpy.ndarray or None",
         lambda: (lambda: rdf.Mask((3, 4), 0.5, 1, 0, [0, 0]), [])),
        ("Mask", ValueError, "bits: expected a contiguous 1-d array of 2 bytes",
         lambda: (lambda b=np.zeros(1, np.uint8): (lambda: rdf.Mask((3, 4), 0.5, 1, 0, b), [b]))()),
        ("Mask.<field> =", ValueError, "p: dropout probability", field("p", 2.0)),
        ("Mask.<field> =", ValueError, r"seed: -1 is outside", field("seed", -1)),
        ("Mask.<field> =", ValueError, "offset: .* is outside", field("offset", 2**70)),
        ("Mask.<field> =", TypeError, "bits: expected a numpy.ndarray or None", field("bits", [0, 0])),
        ("Mask.<field> =", TypeError, "bits: expected a numpy.ndarray or None", field("bits", b"\x00\x00")),
        ("Mask.<field> =", ValueError, "bits: expected a contiguous 1-d array", field("bits", np.zeros(1, np.uint8))),
        ("Mask.<field> =", ValueError, "do not fit", field("shape", (100,))),
    ]


def _fused_rows():
    def fused(*, x=None, bias=None, residual=None, out=None, **kw):
        """A bias_dropout_add call on fresh (3, 4) float32 arrays, any of them replaced by a maker."""
        def make():
            base = np.linspace(-1, 1, 40, dtype=np.float32)
            xa = _w() if x is None else x(base)
            ba = np.ones(4, np.float32) if bias is None else bias(base)
            ra = _w() * 2 if residual is None else residual(base)
            oa = None if out is None else out(base, xa, ra)
            return (lambda: rdf.bias_dropout_add(xa, ba, ra, 0.5, seed=1, out=oa, **kw)), [base, xa, ba, ra, oa]
        return make

    def backward(grad, mask):
        def make():
            g, m = grad(), mask()
            return (lambda: rdf.bias_dropout_add_backward(g, m)), [g, m]
        return make

    return [
        ("bias_dropout_add", ValueError, r"bias: shape \(3,\) is not \(4,\)", fused(bias=lambda b: np.ones(3, np.float32))),
        ("bias_dropout_add", ValueError, r"bias: shape \(3, 4\) is not \(4,\)", fused(bias=lambda b: _w())),
        ("bias_dropout_add", ValueError, r"bias: shape \(\) is not \(H,\)",
         fused(x=lambda b: np.array(1.0, np.float32), residual=lambda b: np.array(2.0, np.float32),
               bias=lambda b: np.array(1.0, np.float32))),
        ("bias_dropout_add", ValueError, "bias: dtype float64 does not match x's float32", fused(bias=lambda b: np.ones(4))),
        ("bias_dropout_add", TypeError, "bias: dtype int32 is not supported", fused(bias=lambda b: np.ones(4, np.int32))),
        ("bias_dropout_add", ValueError, r"residual: shape \(4, 3\) does not match x's \(3, 4\)",
         fused(residual=lambda b: _w().reshape(4, 3))),
        ("bias_dropout_add", ValueError, "residual: dtype float16 does not match x's float32",
         fused(residual=lambda b: _w(dtype=np.float16))),
        ("bias_dropout_add", TypeError, "residual: dtype int64 is not supported",
         fused(residual=lambda b: np.zeros((3, 4), np.int64))),
        ("bias_dropout_add", ValueError, "out: overlaps x partially",
         fused(x=lambda b: b[:12].reshape(3, 4), out=lambda b, x, r: b[1:13].reshape(3, 4))),
        ("bias_dropout_add", ValueError, "out: overlaps residual partially",
         fused(residual=lambda b: b[4:16].reshape(3, 4), out=lambda b, x, r: b[:12].reshape(3, 4))),
        ("bias_dropout_add", ValueError, "out: overlaps bias",
         fused(bias=lambda b: b[8:12], out=lambda b, x, r: b[:12].reshape(3, 4))),
        ("bias_dropout_add", ValueError, r"out: shape \(4, 3\) does not match", fused(out=lambda b, x, r: _w().reshape(4, 3))),
        ("bias_dropout_add", ValueError, "out: must be C-contiguous",
         fused(out=lambda b, x, r: np.zeros((4, 3), np.float32).T)),
        ("bias_dropout_add", ValueError, "out: must be C-contiguous",
         fused(out=lambda b, x, r: np.asfortranarray(np.zeros((3, 4), np.float32)), global_shape=(6, 8))),
        ("dropout_add", ValueError, "out: must be C-contiguous",
         lambda: (lambda x=_w(), r=_w() * 2, o=np.zeros((4, 3), np.float32).T:
                  (lambda: rdf.dropout_add(x, r, 0.5, seed=1, out=o), [x, r, o]))()),
        ("bias_dropout_add", ValueError, "p: dropout probability", lambda: (lambda x=_w(): (lambda: rdf.bias_dropout_add(x, None, x, -0.5, seed=1), [x]))()),
        ("bias_dropout_add", ValueError, "store: expected 'bits' or 'seed'", fused(store="both")),
        # global addressing: x (residual, out) a block of a global tensor
        ("bias_dropout_add", ValueError, r"global_shape: \(6, 8, 1\) has 3 axes but the array has 2",
         fused(out=lambda b, x, r: np.zeros((3, 4), np.float32), global_shape=(6, 8, 1))),
        ("bias_dropout_add", ValueError, r"local_start: \(0,\) has 1 axes but the array has 2",
         fused(global_shape=(6, 8), local_start=(0,))),
        ("bias_dropout_add", ValueError, r"does not fit in global_shape \(6, 8\) \(axis 1: 5 \+ 4 > 8\)",
         fused(out=lambda b, x, r: r, global_shape=(6, 8), local_start=(0, 5))),
        ("bias_dropout_add", ValueError, "local_start: negative index -1", fused(global_shape=(6, 8), local_start=(-1, 0))),
        ("bias_dropout_add", ValueError, "local_start: given without global_shape", fused(local_start=(0, 0))),
        ("bias_dropout_add", TypeError, "global_shape: .* got an element of type float", fused(global_shape=(6.0, 8))),
        ("bias_dropout_add", TypeError, "global_shape: expected a tuple of ints", fused(global_shape=8)),
        ("bias_dropout_add", TypeError, "local_start: .* got an element of type str",
         fused(global_shape=(6, 8), local_start=("0", 0))),
        ("dropout_add", ValueError, r"does not fit in global_shape \(2, 8\)",
         lambda: (lambda x=_w(), r=_w() * 2: (lambda: rdf.dropout_add(x, r, 0.5, seed=1, out=r, global_shape=(2, 8)),
                                             [x, r]))()),
        ("dropout_add", TypeError, "local_start: expected a tuple of ints",
         lambda: (lambda x=_w(), r=_w() * 2: (lambda: rdf.dropout_add(x, r, 0.5, seed=1, global_shape=(6, 8),
                                                                      local_start=3), [x, r]))()),
        ("dropout_add", ValueError, r"residual: shape \(12,\) does not match",
         lambda: (lambda x=_w(), r=np.zeros(12, np.float32): (lambda: rdf.dropout_add(x, r, 0.5, seed=1), [x, r]))()),
        ("dropout_add", TypeError, "seed: expected an int",
         lambda: (lambda x=_w(): (lambda: rdf.dropout_add(x, x, 0.5, seed="1"), [x]))()),
        ("dropout_add", ValueError, "out: overlaps x partially",
         lambda: (lambda b=np.zeros(13, np.float32): (lambda: rdf.dropout_add(b[1:], b[1:] * 0, 0.5, seed=1, out=b[:12]), [b]))()),
        ("bias_dropout_add_backward", TypeError, "mask: expected a regdrop_fast.Mask",
         backward(_w, lambda: np.ones(12, np.uint8))),
        ("bias_dropout_add_backward", ValueError, "grad: is 0-d",
         backward(lambda: np.array(1.0, np.float32), lambda: rdf.dropout_mask((), 0.5, seed=1))),
        ("bias_dropout_add_backward", ValueError, r"grad: shape \(3, 4\) does not match the mask's \(4, 3\)",
         backward(_w, lambda: rdf.dropout_mask((4, 3), 0.5, seed=1))),
        ("bias_dropout_add_backward", ValueError, "out: overlaps grad",
         lambda: (lambda b=np.zeros(13, np.float32), m=rdf.dropout_mask((12,), 0.5, seed=1):
                  (lambda: rdf.bias_dropout_add_backward(b[1:], m, out=b[:12]), [b, m]))()),
        ("bias_dropout_add_backward", ValueError, r"out: shape \(4, 3\) does not match",
         lambda: (lambda g=_w(), m=rdf.dropout_mask((3, 4), 0.5, seed=1), o=np.zeros((4, 3), np.float32):
                  (lambda: rdf.bias_dropout_add_backward(g, m, out=o), [g, m, o]))()),
        ("bias_dropout_add_backward", ValueError, "out: must be C-contiguous",
         lambda: (lambda g=_w(), m=rdf.dropout_mask((3, 4), 0.5, seed=1), o=np.zeros((4, 3), np.float32).T:
                  (lambda: rdf.bias_dropout_add_backward(g, m, out=o), [g, m, o]))()),
        ("bias_dropout_add_backward", TypeError, "grad: dtype int64 is not supported",
         backward(lambda: np.zeros((3, 4), np.int64), lambda: rdf.dropout_mask((3, 4), 0.5, seed=1))),
    ]


def _penalty_rows():
    def lists(fn):
        def make():
            w, g = _w(), _w() * 0
            return fn(w, g), [w, g]
        return make

    def overlapping():
        base = np.zeros(16, np.float32)
        a, b = base[:10], base[6:]
        return (lambda: rdf.prox_l1([a, b], 0.1)), [base]

    return [
        ("penalty_grad", ValueError, "l1: int value too large", lists(lambda w, g: lambda: rdf.penalty_grad(w, g, l1=10**400))),
        ("penalty_grad", ValueError, r"grads: 2 arrays for 1 params", lists(lambda w, g: lambda: rdf.penalty_grad([w], [g, g], l2=1.0))),
        ("penalty_grad", TypeError, r"grads\[0\]: expected a numpy.ndarray", lists(lambda w, g: lambda: rdf.penalty_grad([w], [g.tolist()], l2=1.0))),
        ("penalty_grad", ValueError, r"grads\[0\] overlaps grads\[1\]", lists(lambda w, g: lambda: rdf.penalty_grad([w, w + 1], [g, g], l2=1.0))),
        ("penalty", TypeError, "l2: expected a number or a sequence", lists(lambda w, g: lambda: rdf.penalty([w], l2="0.1"))),
        ("penalty", ValueError, r"l1\[1\]: expected a finite number", lists(lambda w, g: lambda: rdf.penalty([w, g], l1=[0.1, -1]))),
        ("prox_l1", ValueError, "threshold: int value too large", lists(lambda w, g: lambda: rdf.prox_l1([w], 10**400))),
        ("prox_l1", ValueError, r"params\[0\] overlaps params\[1\]", overlapping),
        ("decay", ValueError, r"factor: expected a number in \[0, 1\]", lists(lambda w, g: lambda: rdf.decay([w, g], 1.5))),
        ("decay", TypeError, r"params\[1\]: dtype int64 is not supported",
         lambda: (lambda w=_w(), i=np.zeros(3, np.int64): (lambda: rdf.decay([w, i], 0.5), [w, i]))()),
        ("max_norm", ValueError, "max_value: int value too large", lists(lambda w, g: lambda: rdf.max_norm(w, 10**400, axis=1))),
        ("max_norm", TypeError, "axis: expected an int", lists(lambda w, g: lambda: rdf.max_norm(w, 1.0, axis=1.0))),
        ("max_norm", ValueError, "w: its elements overlap each other",
         lambda: (lambda w=np.lib.stride_tricks.as_strided(_w(), (3, 4), (0, 4), writeable=True):
                  (lambda: rdf.max_norm(w, 1.0, axis=0), [w]))()),
    ]


def _other_rows():
    def gen(method, *args):
        def make():
            g = rdf.Generator(5, 7)
            return (lambda: getattr(g, method)(*args)), [g]
        return make

    simd = lambda: rdf.backend_info()["simd"]  # noqa: E731
    ctr = np.zeros((2, 4), np.uint32)
    return [
        ("random.philox4x32", ValueError, r"rounds: expected 1..16", lambda: (lambda: rdf.random.philox4x32(ctr, [0, 0], 0), [ctr])),
        ("random.philox4x32", TypeError, "counter: expected an unsigned 32-bit", lambda: (lambda: rdf.random.philox4x32(ctr * 0.5, [0, 0]), [ctr])),
        ("Generator", ValueError, "seed: -1 is outside", lambda: (lambda: rdf.Generator(-1), [])),
        ("Generator", TypeError, "offset: expected an int", lambda: (lambda: rdf.Generator(1, 0.5), [])),
        ("Generator.<method>", ValueError, "n: -1 is outside", gen("next", -1)),
        ("Generator.<method>", TypeError, "seed: expected an int", gen("manual_seed", 1.5)),
        ("Generator.<method>", ValueError, "offset: .* is outside", gen("set_offset", 2**64)),
        ("Generator.<method>", TypeError, r"state: expected a \(seed, offset\) pair", gen("set_state", 5)),
        ("Generator.<method>", ValueError, "offset: -1 is outside", gen("set_state", (1, -1))),
        ("Generator.<method>", TypeError, "state_dict: expected a mapping", gen("load_state_dict", (5, 7))),
        ("Generator.<method>", ValueError, r"state_dict: expected exactly the keys 'seed' and 'offset'; missing \['offset'\]",
         gen("load_state_dict", {"seed": 1})),
        ("Generator.<method>", ValueError, r"unknown 'rank'", gen("load_state_dict", {"seed": 1, "offset": 2, "rank": 0})),
        ("Generator.<method>", TypeError, "offset: expected an int", gen("load_state_dict", {"seed": 1, "offset": 2.0})),
        ("Generator.<method>", ValueError, "seed: -1 is outside", gen("load_state_dict", {"seed": -1, "offset": 2})),
        ("DataParallelGenerator", TypeError, "rank: expected an int, got float",
         lambda: (lambda: rdf.DataParallelGenerator(1, rank=0.0, world_size=2), [])),
        ("DataParallelGenerator", TypeError, "world_size: expected an int, got bool",
         lambda: (lambda: rdf.DataParallelGenerator(1, rank=0, world_size=True), [])),
        ("DataParallelGenerator", ValueError, r"world_size: expected an int >= 1, got 0",
         lambda: (lambda: rdf.DataParallelGenerator(1, rank=0, world_size=0), [])),
        ("DataParallelGenerator", ValueError, r"rank: expected an int in \[0, world_size=2\), got 2",
         lambda: (lambda: rdf.DataParallelGenerator(1, rank=2, world_size=2), [])),
        ("DataParallelGenerator", ValueError, "seed: -1 is outside",
         lambda: (lambda: rdf.DataParallelGenerator(-1, rank=0, world_size=2), [])),
        ("DataParallelGenerator", ValueError, "n: -1 is outside",
         lambda: (lambda g=rdf.DataParallelGenerator(3, 5, rank=1, world_size=2): (lambda: g.next(-1), [g]))()),
        ("DataParallelGenerator", ValueError, "state_dict: expected exactly the keys",
         lambda: (lambda g=rdf.DataParallelGenerator(3, 5, rank=1, world_size=2): (lambda: g.load_state_dict({}), [g]))()),
        ("set_num_threads", ValueError, "at least 1 thread", lambda: (lambda: rdf.set_num_threads(0), [rdf.get_num_threads])),
        ("set_num_threads", TypeError, "n: expected an int", lambda: (lambda: rdf.set_num_threads("2"), [rdf.get_num_threads])),
        ("set_simd", TypeError, "level: expected one of .*got NoneType", lambda: (lambda: rdf.set_simd(None), [simd])),
        ("set_simd", TypeError, "level: expected one of .*got int", lambda: (lambda: rdf.set_simd(1), [simd])),
        ("set_simd", ValueError, "level: expected one of .*got 'sse'", lambda: (lambda: rdf.set_simd("sse"), [simd])),
    ]


def _torch_rows():
    if torch is None:
        return []

    def params_with_grads(*grads):
        ps = [torch.nn.Parameter(torch.randn(3, 3)) for _ in grads]
        for p, g in zip(ps, grads):
            p.grad = g
        return ps

    def shared_transposed_grad():
        g = torch.randn(3, 3).t()
        ps = params_with_grads(g, g)
        return (lambda: rt.add_penalty_grad_(ps, l2=1.0)), [ps, g]

    def expanded_grad():
        w, b = torch.nn.Parameter(torch.randn(3)), torch.nn.Parameter(torch.randn(3))
        w.grad, b.grad = torch.ones(3), torch.zeros(1).expand(3)
        return (lambda: rt.add_penalty_grad_([w, b], l2=1.0)), [w, b]

    def one(fn):
        def make():
            t = torch.randn(3, 4)
            return fn(t), [t]
        return make

    return [
        ("rt.dropout", ValueError, "dropout probability has to be between 0 and 1", one(lambda t: lambda: rt.dropout(t, 2.0))),
        ("rt.dropout", TypeError, "store: expected 'bits' or 'seed', got NoneType", one(lambda t: lambda: rt.dropout(t, 0.5, store=None))),
        ("rt.dropout", TypeError, "dtype torch.int64 is not supported",
         lambda: (lambda t=torch.ones(3, dtype=torch.int64): (lambda: rt.dropout(t, 0.5), [t]))()),
        ("rt.dropout", TypeError, "regdrop_fast.Generator", one(lambda t: lambda: rt.dropout(t, 0.5, generator=torch.Generator()))),
        ("rt.Dropout", TypeError, "store: expected 'bits' or 'seed', got int", lambda: (lambda: rt.Dropout(0.5, store=1), [])),
        ("rt.Dropout", ValueError, "store: expected 'bits' or 'seed', got 'none'", lambda: (lambda: rt.Dropout(0.5, store="none"), [])),
        ("rt.Dropout", ValueError, "dropout probability", lambda: (lambda: rt.Dropout(1.5), [])),
        ("rt.add_penalty_grad_", ValueError, r"grads\[0\] overlaps grads\[1\] in memory", shared_transposed_grad),
        ("rt.add_penalty_grad_", ValueError, r"grads\[1\]: its elements overlap each other", expanded_grad),
        ("rt.add_penalty_grad_", ValueError, "l2: int value too large",
         lambda: (lambda ps=params_with_grads(torch.zeros(3, 3)): (lambda: rt.add_penalty_grad_(ps, l2=10**400), [ps]))()),
        ("rt.penalty", ValueError, "l1: int value too large", one(lambda t: lambda: rt.penalty([t], l1=10**400))),
        ("rt.penalty", TypeError, "l1: expected a number or a sequence", one(lambda t: lambda: rt.penalty([t], l1=torch.ones(1)))),
        ("rt.prox_l1_", ValueError, r"params\[0\] overlaps params\[1\] in memory",
         lambda: (lambda b=torch.randn(4, 4): (lambda: rt.prox_l1_([b[:, :3], b[:, 1:]], 0.1), [b]))()),
        ("rt.prox_l1_", ValueError, "threshold: ", one(lambda t: lambda: rt.prox_l1_([t], float("nan")))),
        ("rt.decay_", ValueError, r"params\[0\] overlaps params\[1\] in memory", one(lambda t: lambda: rt.decay_([t.t(), t.t()], 0.5))),
        ("rt.decay_", ValueError, "factor: ", one(lambda t: lambda: rt.decay_([t], 10**400))),
        ("rt.max_norm_", ValueError, "w: its elements overlap each other",
         lambda: (lambda b=torch.ones(1, 3): (lambda: rt.max_norm_(b.expand(4, 3), 1.0, 0), [b]))()),
        ("rt.max_norm_", ValueError, "max_value: int value too large", one(lambda t: lambda: rt.max_norm_(t, 10**400, 0))),
        ("rt.max_norm_", TypeError, "dim: expected an int", one(lambda t: lambda: rt.max_norm_(t, 1.0, 0.5))),
    ]


def _constraint_rows():
    def one(fn, w=None):
        def make():
            a = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4) if w is None else w()
            return fn(a), [a]
        return make

    def overlapping():
        return np.lib.stride_tricks.as_strided(np.ones(4, np.float32), (3, 4), (0, 4), writeable=True)

    def read_only_array():
        a = np.ones((3, 4), np.float32)
        a.flags.writeable = False
        return a

    rows = [
        ("norm_constraint", TypeError, "w: expected a numpy.ndarray", lambda: (lambda: rdf.norm_constraint([[1.0]], axis=0), [])),
        ("norm_constraint", TypeError, "w: dtype int32 is not supported",
         one(lambda a: lambda: rdf.norm_constraint(a, axis=0), lambda: np.ones((2, 2), np.int32))),
        ("norm_constraint", ValueError, "w: must be writeable", one(lambda a: lambda: rdf.norm_constraint(a, axis=0), read_only_array)),
        ("norm_constraint", ValueError, "w: its elements overlap each other", one(lambda a: lambda: rdf.norm_constraint(a, axis=0), overlapping)),
        ("norm_constraint", ValueError, "min_value: expected a finite number >= 0, got -1.0",
         one(lambda a: lambda: rdf.norm_constraint(a, min_value=-1.0, axis=0))),
        ("norm_constraint", ValueError, "min_value: expected a finite number >= 0, got inf",
         one(lambda a: lambda: rdf.norm_constraint(a, min_value=float("inf"), axis=0))),
        ("norm_constraint", TypeError, "min_value: expected a finite number >= 0, got str",
         one(lambda a: lambda: rdf.norm_constraint(a, min_value="0", axis=0))),
        ("norm_constraint", ValueError, r"max_value: expected a number > 0 and >= min_value \(2.0\), got 1.0",
         one(lambda a: lambda: rdf.norm_constraint(a, min_value=2.0, max_value=1.0, axis=0))),
        ("norm_constraint", ValueError, r"max_value: expected a number > 0 .*got 0.0",
         one(lambda a: lambda: rdf.norm_constraint(a, max_value=0.0, axis=0))),
        ("norm_constraint", ValueError, r"max_value: expected a number > 0 .*got nan",
         one(lambda a: lambda: rdf.norm_constraint(a, max_value=float("nan"), axis=0))),
        ("norm_constraint", TypeError, "max_value: expected a number > 0 and >= min_value, got NoneType",
         one(lambda a: lambda: rdf.norm_constraint(a, max_value=None, axis=0))),
        ("norm_constraint", ValueError, r"rate: expected a number in \[0, 1\], got 1.5",
         one(lambda a: lambda: rdf.norm_constraint(a, max_value=1.0, rate=1.5, axis=0))),
        ("norm_constraint", TypeError, "axis: expected an int", one(lambda a: lambda: rdf.norm_constraint(a, axis=0.5))),
        ("norm_constraint", ValueError, "axis: 2 is out of range", one(lambda a: lambda: rdf.norm_constraint(a, axis=2))),
        ("norm_constraint", TypeError, "as_int: expected True or False", one(lambda a: lambda: rdf.norm_constraint(a, axis=0, as_int=1))),
        ("unit_norm", ValueError, r"axis: repeated axis", one(lambda a: lambda: rdf.unit_norm(a, axis=(0, 0)))),
        ("unit_norm", TypeError, "axis: expected an int", one(lambda a: lambda: rdf.unit_norm(a, axis="0"))),
        ("unit_norm", ValueError, "w: must be writeable", one(lambda a: lambda: rdf.unit_norm(a, axis=0), read_only_array)),
        ("non_neg", TypeError, r"params\[1\]: dtype int64 is not supported",
         lambda: (lambda w=_w(), i=np.zeros(3, np.int64): (lambda: rdf.non_neg([w, i]), [w, i]))()),
        ("non_neg", TypeError, r"params\[0\]: expected a numpy.ndarray", lambda: (lambda: rdf.non_neg([[-1.0, 2.0]]), [])),
        ("non_neg", ValueError, r"params\[0\]: must be writeable", one(lambda a: lambda: rdf.non_neg(a), read_only_array)),
        ("non_neg", ValueError, r"params\[0\]: its elements overlap each other", one(lambda a: lambda: rdf.non_neg(a), overlapping)),
        ("non_neg", ValueError, r"params\[0\] overlaps params\[1\] in memory",
         lambda: (lambda b=-np.ones(16, np.float32): (lambda: rdf.non_neg([b[:10], b[6:]]), [b]))()),
        ("non_neg", TypeError, "params: expected an array or a sequence of arrays, got str", lambda: (lambda: rdf.non_neg("w"), [])),
        ("prox_group_l1", ValueError, r"threshold: expected a finite number >= 0, got -0.5",
         one(lambda a: lambda: rdf.prox_group_l1(a, -0.5, axis=1))),
        ("prox_group_l1", ValueError, r"threshold\[1\]: expected a finite number >= 0, got nan",
         lambda: (lambda a=_w(), b=_w(): (lambda: rdf.prox_group_l1([a, b], [0.1, float("nan")], axis=0), [a, b]))()),
        ("prox_group_l1", ValueError, r"threshold: 3 coefficients for 1 arrays",
         one(lambda a: lambda: rdf.prox_group_l1([a], [0.1, 0.2, 0.3], axis=1))),
        ("prox_group_l1", TypeError, "threshold: expected a number or a sequence", one(lambda a: lambda: rdf.prox_group_l1(a, "1", axis=1))),
        ("prox_group_l1", ValueError, r"axis: 1 is out of range for an array of 1 dimension",
         lambda: (lambda a=np.ones((3, 4), np.float32), b=np.ones(5, np.float32): (lambda: rdf.prox_group_l1([a, b], 0.1, axis=1), [a, b]))()),
        ("prox_group_l1", TypeError, "axis: expected an int", one(lambda a: lambda: rdf.prox_group_l1(a, 0.1, axis=None))),
        ("prox_group_l1", TypeError, r"params\[0\]: dtype int32 is not supported",
         one(lambda a: lambda: rdf.prox_group_l1(a, 0.1, axis=0), lambda: np.ones((2, 2), np.int32))),
        ("prox_group_l1", ValueError, r"params\[0\]: must be writeable", one(lambda a: lambda: rdf.prox_group_l1(a, 0.1, axis=0), read_only_array)),
        ("prox_group_l1", ValueError, r"params\[0\]: its elements overlap each other",
         one(lambda a: lambda: rdf.prox_group_l1(a, 0.1, axis=0), overlapping)),
        ("prox_group_l1", ValueError, r"params\[0\] overlaps params\[1\] in memory",
         lambda: (lambda b=np.ones((4, 4), np.float32): (lambda: rdf.prox_group_l1([b[:3], b[2:]], 0.1, axis=1), [b]))()),
        ("prox_group_l1", TypeError, "missing 1 required keyword-only argument: 'axis'",
         one(lambda a: lambda: rdf.prox_group_l1(a, 0.1))),
    ]
    if torch is None:
        return rows

    def t_one(fn):
        def make():
            t = torch.randn(3, 4)
            return fn(t), [t]
        return make

    return rows + [
        ("rt.norm_constraint_", ValueError, r"rate: expected a number in \[0, 1\]",
         t_one(lambda t: lambda: rt.norm_constraint_([t], max_value=1.0, rate=-0.5, dim=0))),
        ("rt.norm_constraint_", ValueError, r"max_value: expected a number > 0 and >= min_value",
         t_one(lambda t: lambda: rt.norm_constraint_([t], min_value=2.0, max_value=1.0, dim=0))),
        ("rt.norm_constraint_", ValueError, r"dim: 2 is out of range for params\[0\]",
         t_one(lambda t: lambda: rt.norm_constraint_([t], max_value=1.0, dim=2))),
        ("rt.norm_constraint_", TypeError, "dim: expected an int", t_one(lambda t: lambda: rt.norm_constraint_([t], dim=0.5))),
        ("rt.norm_constraint_", ValueError, r"params\[1\]: expected at least one dimension",
         t_one(lambda t: lambda: rt.norm_constraint_([t, torch.ones(())], max_value=1.0, dim=0))),
        ("rt.unit_norm_", TypeError, r"params\[1\]: expected a torch.Tensor", t_one(lambda t: lambda: rt.unit_norm_([t, 1.0], dim=0))),
        ("rt.unit_norm_", ValueError, "its elements overlap each other",
         lambda: (lambda b=torch.ones(1, 3): (lambda: rt.unit_norm_([b.expand(4, 3)], dim=0), [b]))()),
        ("rt.non_neg_", ValueError, r"params\[0\] overlaps params\[1\] in memory",
         lambda: (lambda b=-torch.ones(4, 4): (lambda: rt.non_neg_([b[:, :3], b[:, 1:]]), [b]))()),
        ("rt.non_neg_", TypeError, "dtype torch.int64 is not supported",
         lambda: (lambda t=-torch.ones(3, dtype=torch.int64): (lambda: rt.non_neg_([t]), [t]))()),
    ]




def _torch_fused_rows():
    if torch is None:
        return []

    def fused(x=(3, 4), bias=(4,), residual=(3, 4), dtype=None, **kw):
        """rt.bias_dropout_add on fresh tensors of these shapes (bias None: no bias), with a Generator watched."""
        def make():
            g = rdf.Generator(3)
            xt, rt_ = torch.randn(x), torch.randn(residual, dtype=torch.float64).to(dtype or torch.float32)
            bt = None if bias is None else torch.randn(bias)
            return (lambda: rt.bias_dropout_add(xt, bt, rt_, generator=g, **kw)), [xt, bt, rt_, g]
        return make

    return [
        ("rt.bias_dropout_add", ValueError, r"bias: shape \(3,\) is not \(4,\)", fused(bias=(3,))),
        ("rt.bias_dropout_add", ValueError, r"residual: shape \(4, 3\) does not match", fused(residual=(4, 3))),
        ("rt.bias_dropout_add", ValueError, "residual: dtype float64 does not match x's float32", fused(dtype=torch.float64)),
        ("rt.bias_dropout_add", ValueError, "dropout probability has to be between 0 and 1", fused(p=1.5)),
        ("rt.bias_dropout_add", TypeError, "store: expected 'bits' or 'seed', got NoneType", fused(store=None)),
        ("rt.bias_dropout_add", TypeError, "residual: dtype torch.int64 is not supported", fused(dtype=torch.int64)),
        ("rt.bias_dropout_add", ValueError, r"global_shape: \(12,\) has 1 axes but the array has 2",
         fused(global_shape=(12,))),
        ("rt.bias_dropout_add", ValueError, "does not fit", fused(global_shape=(6, 8), local_start=(4, 0))),
        ("rt.bias_dropout_add", ValueError, "local_start: given without global_shape", fused(local_start=(0, 0))),
        ("rt.bias_dropout_add", TypeError, "global_shape: expected a tuple of ints", fused(global_shape=12)),
        ("rt.bias_dropout_add", TypeError, "local_start: .* got an element of type float",
         fused(global_shape=(6, 8), local_start=(0.0, 0))),
        ("rt.bias_dropout_add", ValueError, "does not fit", fused(global_shape=(3, 3), training=False)),
        ("rt.bias_dropout_add", TypeError, "input: expected a torch.Tensor, got ndarray",
         lambda: (lambda x=np.ones((3, 4), np.float32): (lambda: rt.bias_dropout_add(x, None, torch.ones(3, 4)), [x]))()),
        ("rt.BiasDropoutAdd", ValueError, "dropout probability", lambda: (lambda: rt.BiasDropoutAdd(-0.1), [])),
        ("rt.BiasDropoutAdd", TypeError, "store: expected 'bits' or 'seed', got int", lambda: (lambda: rt.BiasDropoutAdd(0.1, store=2), [])),
        ("rt.BiasDropoutAdd", TypeError, "regdrop_fast.Generator", lambda: (lambda: rt.BiasDropoutAdd(0.1, generator=torch.Generator()), [])),
    ]




def _variant_rows():
    """dropout's broadcast_dims, drop_path, alpha_dropout and their backward (issue 13)."""
    def call(fn, x=None, out=None, **kw):
        def make():
            xa = _w() if x is None else x()
            oa = None if out is None else out()
            return (lambda: fn(xa, 0.5 if "p" not in kw else kw.pop("p"), out=oa, **kw)), [xa, oa]
        return make

    def shared_mask():
        return rdf.dropout_mask((3, 4), 0.5, seed=1, broadcast_dims=1)

    def field(name, value, mask=shared_mask):
        def make():
            m = mask()
            return lambda: setattr(m, name, value), [m]
        return make

    def backward(fn, grad, mask, out=None):
        def make():
            g, m, o = grad(), mask(), None if out is None else out()
            return (lambda: fn(g, m, out=o)), [g, m, o]
        return make

    alpha_mask = lambda: rdf.alpha_dropout(_w(), 0.5, seed=1, broadcast_dims=0)[1]  # noqa: E731
    return [
        ("dropout", ValueError, "broadcast_dims: axis 2 is out of range", call(rdf.dropout, seed=1, broadcast_dims=(0, 2))),
        ("dropout", ValueError, "broadcast_dims: axis -3 is out of range", call(rdf.dropout, seed=1, broadcast_dims=-3)),
        ("dropout", ValueError, r"broadcast_dims: repeated axis in \(1, -1\)", call(rdf.dropout, seed=1, broadcast_dims=(1, -1))),
        ("dropout", TypeError, "broadcast_dims: expected ints, got float", call(rdf.dropout, seed=1, broadcast_dims=(1.0,))),
        ("dropout", TypeError, "broadcast_dims: expected an int or a tuple of ints, got str",
         call(rdf.dropout, seed=1, broadcast_dims="0")),
        ("dropout", TypeError, "broadcast_dims: expected an int or a tuple of ints, got ndarray",
         call(rdf.dropout, seed=1, broadcast_dims=np.array([0]))),
        ("dropout", ValueError, r"out: shape \(4, 3\) does not match",
         call(rdf.dropout, out=lambda: np.zeros((4, 3), np.float32), seed=1, broadcast_dims=1)),
        ("dropout_mask", ValueError, "broadcast_dims: axis 2 is out of range",
         lambda: (lambda: rdf.dropout_mask((3, 4), 0.5, seed=1, broadcast_dims=2), [])),
        ("dropout_mask", TypeError, "broadcast_dims: expected ints, got NoneType",
         lambda: (lambda: rdf.dropout_mask((3, 4), 0.5, seed=1, broadcast_dims=[None]), [])),
        ("dropout_backward", ValueError, r"grad: shape \(4, 3\) does not match the mask's \(3, 4\)",
         backward(rdf.dropout_backward, lambda: _w().reshape(4, 3), shared_mask)),
        ("dropout_backward", TypeError, "grad: dtype int32 is not supported",
         backward(rdf.dropout_backward, lambda: np.zeros((3, 4), np.int32), shared_mask)),
        ("Mask", ValueError, "broadcast_dims: axis 2 is out of range", lambda: (lambda: rdf.Mask((3, 4), 0.5, 1, broadcast_dims=2), [])),
        ("Mask", TypeError, "scale_by_keep: expected True or False, got int",
         lambda: (lambda: rdf.Mask((3, 4), 0.5, 1, scale_by_keep=1), [])),
        ("Mask", ValueError, "bits: expected a contiguous 1-d array of 1 bytes for 3 elements",
         lambda: (lambda b=np.zeros(2, np.uint8): (lambda: rdf.Mask((3, 4), 0.5, 1, 0, b, broadcast_dims=1), [b]))()),
        ("Mask.<field> =", ValueError, "broadcast_dims: axis 5 is out of range", field("broadcast_dims", 5)),
        ("Mask.<field> =", TypeError, "broadcast_dims: expected ints, got str", field("broadcast_dims", ("a",))),
        ("Mask.<field> =", ValueError, "broadcast_dims: the reduced shape .* do not fit", field("broadcast_dims", ())),
        ("Mask.<field> =", TypeError, "scale_by_keep: expected True or False, got NoneType", field("scale_by_keep", None)),
        ("Mask.<field> =", ValueError, r"shape: \(3,\) has no axis 1", field("shape", (3,))),
        ("drop_path", ValueError, "x: is 0-d", call(rdf.drop_path, x=lambda: np.array(1.0, np.float32), seed=1)),
        ("drop_path", TypeError, "scale_by_keep: expected True or False, got int", call(rdf.drop_path, seed=1, scale_by_keep=1)),
        ("drop_path", ValueError, "p: dropout probability", call(rdf.drop_path, seed=1, p=1.5)),
        ("drop_path", TypeError, "x: dtype int64 is not supported", call(rdf.drop_path, x=lambda: np.ones((3, 4), np.int64), seed=1)),
        ("drop_path", ValueError, "out: dtype float64 does not match",
         call(rdf.drop_path, out=lambda: np.zeros((3, 4)), seed=1)),
        ("alpha_dropout", ValueError, "broadcast_dims: axis 7 is out of range", call(rdf.alpha_dropout, seed=1, broadcast_dims=7)),
        ("alpha_dropout", TypeError, "broadcast_dims: expected ints, got float", call(rdf.alpha_dropout, seed=1, broadcast_dims=[0.5])),
        ("alpha_dropout", ValueError, "store: expected 'bits' or 'seed', got 'all'", call(rdf.alpha_dropout, seed=1, store="all")),
        ("alpha_dropout", TypeError, "seed: expected an int", call(rdf.alpha_dropout, seed=2.0)),
        ("alpha_dropout", ValueError, "p: dropout probability", call(rdf.alpha_dropout, seed=1, p=-0.5)),
        ("bias_dropout_add_backward", ValueError, "mask: is a dropout variant's",
         backward(rdf.bias_dropout_add_backward, _w, shared_mask)),
        ("bias_dropout_add_backward", ValueError, "mask: is a dropout variant's",
         backward(rdf.bias_dropout_add_backward, _w, lambda: rdf.Mask((3, 4), 0.5, 1, scale_by_keep=False))),
        ("alpha_dropout_backward", TypeError, "mask: expected a regdrop_fast.Mask",
         backward(rdf.alpha_dropout_backward, _w, lambda: None)),
        ("alpha_dropout_backward", ValueError, r"grad: shape \(12,\) does not match the mask's \(3, 4\)",
         backward(rdf.alpha_dropout_backward, lambda: _w().reshape(12), alpha_mask)),
        ("alpha_dropout_backward", TypeError, "out: dtype int16 is not supported",
         backward(rdf.alpha_dropout_backward, _w, alpha_mask, out=lambda: np.zeros((3, 4), np.int16))),
    ]


def _torch_variant_rows():
    if torch is None:
        return []

    def one(fn, shape=(3, 4, 5)):
        def make():
            g = rdf.Generator(3)
            t = torch.randn(shape)
            return (lambda: fn(t, g)), [t, g]
        return make

    return [
        ("rt.dropout_shared", ValueError, "broadcast_dims: axis 3 is out of range",
         one(lambda t, g: rt.dropout_shared(t, 0.5, broadcast_dims=3, generator=g))),
        ("rt.dropout_shared", ValueError, "broadcast_dims: repeated axis",
         one(lambda t, g: rt.dropout_shared(t, 0.5, broadcast_dims=(0, 0), generator=g))),
        ("rt.dropout_shared", TypeError, "broadcast_dims: expected ints, got float",
         one(lambda t, g: rt.dropout_shared(t, 0.5, broadcast_dims=(1.0,), generator=g))),
        ("rt.dropout_shared", ValueError, "dropout probability has to be between 0 and 1, but got 1.5",
         one(lambda t, g: rt.dropout_shared(t, 1.5, broadcast_dims=1, generator=g))),
        ("rt.dropout1d", RuntimeError, "dropout1d: Expected 2D or 3D input, but received a 4D input",
         one(lambda t, g: rt.dropout1d(t, 0.5, generator=g), shape=(2, 3, 4, 5))),
        ("rt.dropout1d", ValueError, "dropout probability has to be between 0 and 1, but got -0.5",
         one(lambda t, g: rt.dropout1d(t, -0.5, generator=g))),
        ("rt.dropout1d", TypeError, "store: expected 'bits' or 'seed', got NoneType",
         one(lambda t, g: rt.dropout1d(t, 0.5, store=None, generator=g))),
        ("rt.dropout2d", ValueError, "dropout probability has to be between 0 and 1",
         one(lambda t, g: rt.dropout2d(t, 2.0, generator=g), shape=(2, 3, 4, 5))),
        ("rt.dropout2d", TypeError, "regdrop_fast.Generator",
         one(lambda t, g: rt.dropout2d(t, 0.5, generator=torch.Generator()), shape=(2, 3, 4, 5))),
        ("rt.dropout2d", TypeError, "input: dtype torch.int64 is not supported",
         lambda: (lambda t=torch.ones(2, 3, 4, 5, dtype=torch.int64): (lambda: rt.dropout2d(t, 0.5), [t]))()),
        ("rt.dropout3d", ValueError, "dropout probability has to be between 0 and 1",
         one(lambda t, g: rt.dropout3d(t, float("nan"), generator=g), shape=(2, 3, 4, 5, 6))),
        ("rt.dropout3d", TypeError, "input: expected a torch.Tensor, got ndarray",
         lambda: (lambda x=np.ones((2, 3, 4, 5), np.float32): (lambda: rt.dropout3d(x, 0.5), [x]))()),
        ("rt.alpha_dropout", ValueError, "dropout probability has to be between 0 and 1",
         one(lambda t, g: rt.alpha_dropout(t, 1.01, True, generator=g))),
        ("rt.alpha_dropout", ValueError, "store: expected 'bits' or 'seed', got 'mask'",
         one(lambda t, g: rt.alpha_dropout(t, 0.5, True, store="mask", generator=g))),
        ("rt.feature_alpha_dropout", RuntimeError, "Feature dropout requires at least 2 dimensions in the input",
         one(lambda t, g: rt.feature_alpha_dropout(t, 0.5, True, generator=g), shape=(5,))),
        ("rt.feature_alpha_dropout", TypeError, "p: expected a real number|expected a real number",
         one(lambda t, g: rt.feature_alpha_dropout(t, "0.5", True, generator=g))),
        ("rt.drop_path", ValueError, "input: is 0-d", one(lambda t, g: rt.drop_path(t, 0.5, True, generator=g), shape=())),
        ("rt.drop_path", TypeError, "scale_by_keep: expected True or False, got int",
         one(lambda t, g: rt.drop_path(t, 0.5, True, 1, generator=g))),
    ]


def _gaussian_rows():
    """gaussian_dropout, its backward and GaussianNoise, native and reference (the same checks)."""
    def call(fn, *, x=None, out=None, **kw):
        def make():
            base = np.linspace(-1, 1, 40, dtype=np.float32)
            xa = _w() if x is None else x(base)
            oa = None if out is None else out(base, xa)
            args = {"seed": 1, **kw}
            p = args.pop("p", 0.5)
            watched = [base, xa] + ([oa] if isinstance(oa, np.ndarray) else [])
            return (lambda: fn(xa, p, out=oa, **args)), watched
        return make

    def backward(fn, grad, noise, out=None):
        def make():
            g = grad()
            o = None if out is None else out(g)
            return (lambda: fn(g, noise(), out=o)), [g, o]
        return make

    def noise(*args, **kw):
        return lambda: (lambda: rdf.GaussianNoise(*args, **kw), [])

    rows = []
    for impl in (rdf, reference):
        f, b = impl.gaussian_dropout, impl.gaussian_dropout_backward
        good = lambda: rdf.GaussianNoise((3, 4), 0.5, 1)  # noqa: E731
        rows += [
            ("gaussian_dropout", ValueError, "p: gaussian dropout needs p < 1", call(f, p=1.0)),
            ("gaussian_dropout", ValueError, "p: dropout probability has to be between 0 and 1", call(f, p=-0.5)),
            ("gaussian_dropout", ValueError, "p: dropout probability has to be between 0 and 1", call(f, p=float("nan"))),
            ("gaussian_dropout", TypeError, "p: expected a real number", call(f, p="0.5")),
            ("gaussian_dropout", ValueError, r"seed: -1 is outside \[0, 2\*\*64\)", call(f, seed=-1)),
            ("gaussian_dropout", TypeError, "seed: expected an int", call(f, seed=1.5)),
            ("gaussian_dropout", ValueError, r"offset: 18446744073709551616 is outside", call(f, offset=1 << 64)),
            ("gaussian_dropout", TypeError, "x: dtype int32 is not supported",
             call(f, x=lambda b: np.ones((3, 4), np.int32))),
            ("gaussian_dropout", ValueError, r"out: shape \(4, 3\) does not match", call(f, out=lambda b, x: _w().reshape(4, 3))),
            ("gaussian_dropout", ValueError, "out: dtype float64 does not match", call(f, out=lambda b, x: _w(dtype=np.float64))),
            ("gaussian_dropout", ValueError, "out: must be C-contiguous",
             call(f, out=lambda b, x: np.zeros((4, 3), np.float32).T)),
            ("gaussian_dropout", ValueError, "out: overlaps x partially",
             call(f, x=lambda b: b[:12].reshape(3, 4), out=lambda b, x: b[1:13].reshape(3, 4))),
            ("gaussian_dropout", ValueError, "out: must be writeable",
             call(f, out=lambda b, x: read_only_copy(x))),
            ("gaussian_dropout", TypeError, "out: expected a numpy.ndarray", call(f, out=lambda b, x: [[0.0] * 4] * 3)),
            ("gaussian_dropout", TypeError, r"global_shape: expected a tuple of ints \(the shape of the whole tensor\)",
             call(f, global_shape=6)),
            ("gaussian_dropout", TypeError, "global_shape: .* got an element of type float", call(f, global_shape=(6.0, 8))),
            ("gaussian_dropout", TypeError, "local_start: .* got an element of type bool",
             call(f, global_shape=(6, 8), local_start=(0, False))),
            ("gaussian_dropout", TypeError, "local_start: expected a tuple of ints", call(f, local_start=np.array([0, 0]))),
            ("gaussian_dropout", ValueError, r"global_shape: \(6, 8, 1\) has 3 axes but the array has 2",
             call(f, global_shape=(6, 8, 1))),
            ("gaussian_dropout", ValueError, r"local_start: \(0,\) has 1 axes but the array has 2",
             call(f, global_shape=(6, 8), local_start=(0,))),
            ("gaussian_dropout", ValueError, "local_start: negative index -1", call(f, global_shape=(6, 8), local_start=(-1, 0))),
            ("gaussian_dropout", ValueError, "global_shape: negative dimension -8", call(f, global_shape=(6, -8))),
            ("gaussian_dropout", ValueError, r"does not fit in global_shape \(6, 8\) \(axis 0: 4 \+ 3 > 6\)",
             call(f, global_shape=(6, 8), local_start=(4, 0))),
            ("gaussian_dropout", ValueError, "local_start: given without global_shape", call(f, local_start=(0, 0))),
            ("gaussian_dropout", ValueError, "global_shape: .* elements; it must have fewer than 2\\*\\*63",
             call(f, global_shape=(2**40, 2**40))),
            ("gaussian_dropout", ValueError, "out: must be C-contiguous",
             call(f, out=lambda b, x: np.zeros((4, 3), np.float32).T, global_shape=(6, 8), local_start=(3, 4))),
            ("gaussian_dropout_backward", TypeError, "noise: expected a regdrop_fast.GaussianNoise, got Mask",
             backward(b, _w, lambda: rdf.dropout_mask((3, 4), 0.5, seed=1))),
            ("gaussian_dropout_backward", ValueError, r"grad: shape \(4, 3\) does not match the noise's \(3, 4\)",
             backward(b, lambda: _w().reshape(4, 3), good)),
            ("gaussian_dropout_backward", TypeError, "grad: dtype int64 is not supported",
             backward(b, lambda: np.ones((3, 4), np.int64), good)),
            ("gaussian_dropout_backward", ValueError, "out: overlaps grad partially",
             backward(b, lambda: np.zeros(13, np.float32)[:12].reshape(3, 4),
                      good, out=lambda g: g.base[1:13].reshape(3, 4))),
        ]
    rows += [
        ("GaussianNoise", ValueError, "p: gaussian dropout needs p < 1", noise((3, 4), 1.0, 1)),
        ("GaussianNoise", TypeError, "p: expected a real number", noise((3, 4), None, 1)),
        ("GaussianNoise", ValueError, "shape: ", noise((3, -4), 0.5, 1)),
        ("GaussianNoise", TypeError, "seed: expected an int", noise((3, 4), 0.5, "1")),
        ("GaussianNoise", ValueError, "offset: -2 is outside", noise((3, 4), 0.5, 1, -2)),
        ("GaussianNoise", TypeError, "global_shape: expected a tuple of ints", noise((3, 4), 0.5, 1, global_shape="68")),
        ("GaussianNoise", ValueError, "does not fit", noise((3, 4), 0.5, 1, global_shape=(6, 8), local_start=(0, 5))),
        ("GaussianNoise", ValueError, "local_start: given without global_shape", noise((3, 4), 0.5, 1, local_start=(0, 0))),
        ("GaussianNoise", TypeError, "local_start: expected a tuple of ints",
         noise((3, 4), 0.5, 1, global_shape=(6, 8), local_start=0)),
    ]
    return rows


def read_only_copy(a):
    c = np.zeros_like(a)
    c.flags.writeable = False
    return c


def _torch_gaussian_rows():
    if torch is None:
        return []

    def call(x=(3, 4), dtype=torch.float32, **kw):
        def make():
            g = rdf.Generator(3)
            xt = torch.randn(x).to(dtype)
            return (lambda: rt.gaussian_dropout(xt, generator=g, **kw)), [xt, g]
        return make

    return [
        ("rt.gaussian_dropout", ValueError, "has to be below 1", call(p=1.0)),
        ("rt.gaussian_dropout", ValueError, "dropout probability has to be between 0 and 1", call(p=1.5)),
        ("rt.gaussian_dropout", TypeError, "expected a real number", call(p="x")),
        ("rt.gaussian_dropout", TypeError, "input: dtype torch.int64 is not supported", call(dtype=torch.int64)),
        ("rt.gaussian_dropout", TypeError, "input: expected a torch.Tensor, got ndarray",
         lambda: (lambda x=np.ones((3, 4), np.float32): (lambda: rt.gaussian_dropout(x), [x]))()),
        ("rt.gaussian_dropout", TypeError, "regdrop_fast.Generator",
         lambda: (lambda x=torch.ones(3): (lambda: rt.gaussian_dropout(x, generator=torch.Generator()), [x]))()),
        ("rt.gaussian_dropout", TypeError, "global_shape: expected a tuple of ints", call(global_shape=12)),
        ("rt.gaussian_dropout", TypeError, "local_start: .* got an element of type float",
         call(global_shape=(6, 4), local_start=(0.0, 0))),
        ("rt.gaussian_dropout", ValueError, r"global_shape: \(12,\) has 1 axes but the array has 2", call(global_shape=(12,))),
        ("rt.gaussian_dropout", ValueError, "does not fit", call(global_shape=(6, 4), local_start=(4, 0))),
        ("rt.gaussian_dropout", ValueError, "does not fit", call(global_shape=(6, 4), local_start=(4, 0), training=False)),
        ("rt.gaussian_dropout", ValueError, "local_start: given without global_shape", call(local_start=(0, 0))),
        ("rt.GaussianDropout", ValueError, "has to be below 1", lambda: (lambda: rt.GaussianDropout(1.0), [])),
        ("rt.GaussianDropout", ValueError, "between 0 and 1", lambda: (lambda: rt.GaussianDropout(-0.1), [])),
        ("rt.GaussianDropout", TypeError, "regdrop_fast.Generator",
         lambda: (lambda: rt.GaussianDropout(0.1, generator=torch.Generator()), [])),
    ]


def _torch_variant_module_rows():
    if torch is None:
        return []
    rows = []
    for name in ("Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"):
        cls = getattr(rt, name)
        rows += [
            (f"rt.{name}", ValueError, "dropout probability has to be between 0 and 1, but got 1.5",
             lambda cls=cls: (lambda: cls(1.5), [])),
            (f"rt.{name}", ValueError, "store: expected 'bits' or 'seed'", lambda cls=cls: (lambda: cls(0.1, store="x"), [])),
            (f"rt.{name}", TypeError, "regdrop_fast.Generator",
             lambda cls=cls: (lambda: cls(0.1, generator=torch.Generator()), [])),
        ]
    rows += [
        ("rt.Dropout1d", RuntimeError, "Expected 2D or 3D input, but received a 4D input",
         lambda: (lambda x=torch.ones(1, 2, 2, 2), g=rdf.Generator(1): (lambda: rt.Dropout1d(0.5, generator=g)(x), [x, g]))()),
        ("rt.DropPath", ValueError, "dropout probability has to be between 0 and 1", lambda: (lambda: rt.DropPath(-0.2), [])),
        ("rt.DropPath", TypeError, "scale_by_keep", lambda: (lambda: rt.DropPath(0.2, scale_by_keep="yes"), [])),
        ("rt.DropPath", TypeError, "regdrop_fast.Generator", lambda: (lambda: rt.DropPath(0.2, generator=torch.Generator()), [])),
        ("rt.DropPath", ValueError, "input: is 0-d",
         lambda: (lambda x=torch.ones(()), g=rdf.Generator(1): (lambda: rt.DropPath(0.5, generator=g)(x), [x, g]))()),
    ]
    return rows


TABLE = _dropout_rows() + _penalty_rows() + _other_rows() + _torch_rows() + _constraint_rows()
TABLE += _fused_rows() + _torch_fused_rows()
TABLE += _variant_rows() + _torch_variant_rows()
TABLE += _gaussian_rows() + _torch_gaussian_rows()
TABLE += _torch_variant_module_rows()


def _global_rows():
    """global_shape and local_start (issue 16): dropout of a block of a global tensor."""
    def call(fn=rdf.dropout, x=_w, **kw):
        def make():
            xa = x()
            return (lambda: fn(xa, 0.5, seed=1, **kw)), [xa]
        return make

    def mask_call(**kw):
        return lambda: (lambda: rdf.dropout_mask((3, 4), 0.5, seed=1, **kw), [])

    def field(name, value):
        def make():
            m = rdf.dropout_mask((3, 4), 0.5, seed=1, global_shape=(6, 8), local_start=(3, 4))
            return (lambda: setattr(m, name, value)), [m]
        return make

    def backward(mask):
        def make():
            g, m = _w(), mask()
            return (lambda: rdf.dropout_backward(g, m)), [g, m]
        return make

    return [
        ("dropout", TypeError, r"global_shape: expected a tuple of ints \(the shape of the whole tensor\), got int",
         call(global_shape=6)),
        ("dropout", TypeError, "global_shape: .* got an element of type float", call(global_shape=(6.0, 8))),
        ("dropout", TypeError, "global_shape: .* got an element of type bool", call(global_shape=(True, 8))),
        ("dropout", TypeError, "local_start: expected a tuple of ints", call(global_shape=(6, 8), local_start="03")),
        ("dropout", TypeError, "local_start: expected a tuple of ints", call(local_start=np.array([0, 0]))),
        ("dropout", ValueError, r"global_shape: \(6, 8, 1\) has 3 axes but the array has 2", call(global_shape=(6, 8, 1))),
        ("dropout", ValueError, r"local_start: \(0,\) has 1 axes but the array has 2",
         call(global_shape=(6, 8), local_start=(0,))),
        ("dropout", ValueError, "local_start: negative index -1", call(global_shape=(6, 8), local_start=(0, -1))),
        ("dropout", ValueError, "global_shape: negative dimension -6", call(global_shape=(-6, 8))),
        ("dropout", ValueError, r"does not fit in global_shape \(6, 8\) \(axis 1: 5 \+ 4 > 8\)",
         call(global_shape=(6, 8), local_start=(0, 5))),
        ("dropout", ValueError, r"does not fit in global_shape \(2, 8\)", call(global_shape=(2, 8))),
        ("dropout", ValueError, "local_start: given without global_shape", call(local_start=(0, 0))),
        ("dropout", ValueError, "global_shape: .* elements; it must have fewer than 2\\*\\*63",
         call(global_shape=(2**40, 2**40))),
        ("dropout", ValueError, r"does not fit in global_shape \(6, 3\)", call(global_shape=(6, 3), broadcast_dims=1)),
        ("dropout", TypeError, "local_start: expected a tuple of ints",
         call(global_shape=(6, 8), local_start=5, broadcast_dims=(0,))),
        ("drop_path", ValueError, "local_start: negative index -1",
         call(rdf.drop_path, global_shape=(6, 8), local_start=(-1, 0))),
        ("drop_path", TypeError, "global_shape: expected a tuple of ints", call(rdf.drop_path, global_shape="6x8")),
        ("alpha_dropout", ValueError, r"global_shape: \(12,\) has 1 axes", call(rdf.alpha_dropout, global_shape=(12,))),
        ("alpha_dropout", ValueError, "local_start: given without global_shape",
         call(rdf.alpha_dropout, local_start=(0, 0), broadcast_dims=1)),
        ("dropout", ValueError, r"out: shape \(4, 3\) does not match",
         lambda: (lambda x=_w(), o=np.zeros((4, 3), np.float32):
                  (lambda: rdf.dropout(x, 0.5, seed=1, out=o, global_shape=(6, 8)), [x, o]))()),
        ("dropout_mask", TypeError, "global_shape: expected a tuple of ints", mask_call(global_shape="68")),
        ("dropout_mask", ValueError, "does not fit", mask_call(global_shape=(6, 8), local_start=(4, 0))),
        ("dropout_mask", ValueError, "local_start: negative index -2",
         mask_call(global_shape=(6, 8), local_start=(0, -2), broadcast_dims=0)),
        ("Mask", TypeError, "local_start: expected a tuple of ints",
         lambda: (lambda: rdf.Mask((3, 4), 0.5, 1, global_shape=(6, 8), local_start=0), [])),
        ("Mask", ValueError, "does not fit",
         lambda: (lambda: rdf.Mask((3, 4), 0.5, 1, global_shape=(3, 3)), [])),
        ("Mask", ValueError, "does not fit",
         lambda: (lambda: rdf.Mask((3, 4), 0.5, 1, broadcast_dims=1, global_shape=(3, 3)), [])),
        ("Mask.<field> =", ValueError, "does not fit", field("global_shape", (3, 4))),
        ("Mask.<field> =", TypeError, "global_shape: expected a tuple of ints", field("global_shape", {6: 8})),
        ("Mask.<field> =", ValueError, "does not fit", field("local_start", (4, 4))),
        ("Mask.<field> =", TypeError, "local_start: .* got an element of type str", field("local_start", ("0", 0))),
        ("Mask.<field> =", ValueError, "set global_shape first", field("shape", (4, 4))),
        ("Mask.<field> =", ValueError, "broadcast_dims: axis 2 is out of range", field("broadcast_dims", 2)),
        ("dropout_backward", ValueError, r"grad: shape \(4, 3\) does not match the mask's \(3, 4\)",
         lambda: (lambda g=_w().reshape(4, 3), m=rdf.Mask((3, 4), 0.5, 1, scale_by_keep=False, global_shape=(6, 4)):
                  (lambda: rdf.dropout_backward(g, m), [g, m]))()),
        ("bias_dropout_add_backward", ValueError, r"grad: shape \(4, 3\) does not match the mask's \(3, 4\)",
         lambda: (lambda g=_w().reshape(4, 3), m=rdf.Mask((3, 4), 0.5, 1, global_shape=(6, 4)):
                  (lambda: rdf.bias_dropout_add_backward(g, m), [g, m]))()),
    ] + _torch_global_rows()


def _torch_global_rows():
    if torch is None:
        return []

    def one(**kw):
        return variant(rt.dropout, **kw)

    def variant(fn, **kw):
        def make():
            t, g = torch.randn(3, 4), rdf.Generator(3)
            return (lambda: fn(t, 0.5, generator=g, **kw)), [t, g]
        return make

    return [
        ("rt.dropout", TypeError, "global_shape: expected a tuple of ints", one(global_shape=12)),
        ("rt.dropout", TypeError, "local_start: .* got an element of type float",
         one(global_shape=(6, 4), local_start=(0.0, 0))),
        ("rt.dropout", ValueError, r"global_shape: \(12,\) has 1 axes but the array has 2", one(global_shape=(12,))),
        ("rt.dropout", ValueError, "does not fit", one(global_shape=(6, 4), local_start=(4, 0))),
        ("rt.dropout", ValueError, "local_start: given without global_shape", one(local_start=(0, 0))),
        ("rt.dropout", ValueError, "does not fit", one(global_shape=(6, 4), local_start=(4, 0), inplace=True)),
        ("rt.dropout_shared", ValueError, "does not fit",
         variant(rt.dropout_shared, broadcast_dims=1, global_shape=(3, 3))),
        ("rt.drop_path", TypeError, "global_shape: expected a tuple of ints", variant(rt.drop_path, global_shape=12)),
        ("rt.alpha_dropout", ValueError, "local_start: given without global_shape",
         variant(rt.alpha_dropout, training=True, local_start=(0, 0))),
        ("rt.alpha_dropout", ValueError, "local_start: negative index -3",
         variant(rt.alpha_dropout, global_shape=(3, 9), local_start=(0, -3))),
    ]


TABLE += _global_rows()


def _group_penalty_rows():
    """penalty / penalty_grad's group_l1 term (issue #15)."""
    def pair(fn, w_shape=(3, 4)):
        def make():
            w, g = np.ones(w_shape, np.float32), np.zeros(w_shape, np.float32)
            return fn(w, g), [w, g]
        return make

    return [
        ("penalty_grad", ValueError, "axis: required with a nonzero group_l1",
         pair(lambda w, g: lambda: rdf.penalty_grad(w, g, group_l1=0.1))),
        ("penalty_grad", ValueError, r"group_l1: expected a finite number >= 0, got -0.5",
         pair(lambda w, g: lambda: rdf.penalty_grad(w, g, group_l1=-0.5, axis=1))),
        ("penalty_grad", ValueError, r"group_l1\[1\]: expected a finite number >= 0, got nan",
         pair(lambda w, g: lambda: rdf.penalty_grad([w, w], [g, g + 1], group_l1=[0.1, float("nan")], axis=1))),
        ("penalty_grad", ValueError, r"group_l1: 3 coefficients for 1 arrays",
         pair(lambda w, g: lambda: rdf.penalty_grad([w], [g], group_l1=[0.1, 0.2, 0.3], axis=1))),
        ("penalty_grad", TypeError, "group_l1: expected a number or a sequence",
         pair(lambda w, g: lambda: rdf.penalty_grad(w, g, group_l1="1", axis=1))),
        ("penalty_grad", ValueError, r"axis: 2 is out of range for an array of 2 dimension\(s\) \(params\[0\] has shape \(3, 4\)\)",
         pair(lambda w, g: lambda: rdf.penalty_grad(w, g, group_l1=0.1, axis=2))),
        ("penalty_grad", ValueError, r"axis: repeated axis", pair(lambda w, g: lambda: rdf.penalty_grad(w, g, group_l1=0.1, axis=(1, -1)))),
        ("penalty_grad", TypeError, "axis: expected an int", pair(lambda w, g: lambda: rdf.penalty_grad(w, g, group_l1=0.1, axis=1.0))),
        ("penalty_grad", TypeError, "axis: expected an int", pair(lambda w, g: lambda: rdf.penalty_grad(w, g, l2=0.1, axis="1"))),
        ("penalty_grad", ValueError, r"grads\[0\]: shape \(4, 3\) does not match params\[0\]'s \(3, 4\)",
         pair(lambda w, g: lambda: rdf.penalty_grad(w, g.T, group_l1=0.1, axis=1))),
        ("penalty_grad", ValueError, r"grads\[0\]: must be writeable",
         pair(lambda w, g: lambda: rdf.penalty_grad(w, np.broadcast_to(g, g.shape), group_l1=0.1, axis=1))),
        ("penalty_grad", ValueError, r"grads\[0\] overlaps grads\[1\]",
         pair(lambda w, g: lambda: rdf.penalty_grad([w, w + 1], [g, g], group_l1=0.1, axis=(0, 1)))),
        ("penalty", ValueError, "axis: required with a nonzero group_l1", pair(lambda w, g: lambda: rdf.penalty(w, group_l1=[0.5]))),
        ("penalty", ValueError, r"axis: 1 is out of range for an array of 1 dimension\(s\) \(params\[1\] has shape \(5,\)\)",
         pair(lambda w, g: lambda: rdf.penalty([w, np.ones(5)], group_l1=0.1, axis=1))),
        ("penalty", TypeError, r"params\[0\]: dtype int64 is not supported",
         pair(lambda w, g: lambda: rdf.penalty(np.ones((2, 2), np.int64), group_l1=0.1, axis=1))),
    ]


TABLE += _group_penalty_rows()


def _torch_group_penalty_rows():
    """regdrop_fast.torch's penalty / add_penalty_grad_ with the group_l1 term."""
    if torch is None:
        return []

    def with_grad():
        p = torch.nn.Parameter(torch.randn(3, 4))
        p.grad = torch.zeros(3, 4)
        return p

    def grad_call(fn):
        def make():
            p = with_grad()
            return (lambda: fn(p)), [p, p.grad]
        return make

    def value_call(fn):
        def make():
            w = torch.randn(3, 4)
            return (lambda: fn(w)), [w]
        return make

    return [
        ("rt.add_penalty_grad_", ValueError, "axis: required with a nonzero group_l1",
         grad_call(lambda p: rt.add_penalty_grad_([p], group_l1=0.1))),
        ("rt.add_penalty_grad_", ValueError, r"group_l1: expected a finite number >= 0, got -1.0",
         grad_call(lambda p: rt.add_penalty_grad_([p], group_l1=-1.0, axis=1))),
        ("rt.add_penalty_grad_", ValueError, r"axis: 3 is out of range for an array of 2 dimension",
         grad_call(lambda p: rt.add_penalty_grad_([p], group_l1=0.1, axis=3))),
        ("rt.add_penalty_grad_", TypeError, "axis: expected an int", grad_call(lambda p: rt.add_penalty_grad_([p], group_l1=0.1, axis=[1.5]))),
        ("rt.penalty", ValueError, "axis: required with a nonzero group_l1", value_call(lambda w: rt.penalty(w, group_l1=[0.2]))),
        ("rt.penalty", TypeError, "group_l1: expected a number or a sequence", value_call(lambda w: rt.penalty(w, group_l1="x", axis=1))),
        ("rt.penalty", ValueError, r"axis: repeated axis", value_call(lambda w: rt.penalty(w, group_l1=0.2, axis=(0, -2)))),
        ("rt.penalty", TypeError, "axis: expected an int", value_call(lambda w: rt.penalty(w, axis="0"))),
    ]


TABLE += _torch_group_penalty_rows()


try:
    import dask.array as da

    import regdrop_fast.dask as rfd
except ImportError:  # the dask rows are left out without dask
    da = rfd = None

DASK_PUBLIC = ["rfd.dropout", "rfd.dropout_backward", "rfd.penalty", "rfd.Mask"]


def _dask_rows():
    """regdrop_fast.dask (issue #16). Dask arrays are watched through the NumPy arrays they wrap."""
    if rfd is None:
        return []

    def call(fn, dtype=np.float32):
        def make():
            base = _w(dtype=dtype)
            x = da.from_array(base, chunks=(2, 3))
            return (lambda: fn(x, base)), [base]
        return make

    def with_mask(fn, **kw):
        def make():
            base = _w()
            x = da.from_array(base, chunks=(2, 3))
            _, mask = rfd.dropout(x, 0.5, seed=1, **kw)
            return (lambda: fn(x, mask, base)), [base]
        return make

    return [
        ("rfd.dropout", TypeError, "x: expected a dask.array.Array, got ndarray", call(lambda x, b: rfd.dropout(b, 0.5, seed=1))),
        ("rfd.dropout", TypeError, "dtype int32 is not supported", call(lambda x, b: rfd.dropout(x.astype(np.int32), 0.5, seed=1))),
        ("rfd.dropout", ValueError, "p: dropout probability", call(lambda x, b: rfd.dropout(x, 1.5, seed=1))),
        ("rfd.dropout", TypeError, "p: expected a real number", call(lambda x, b: rfd.dropout(x, "0.5", seed=1))),
        ("rfd.dropout", ValueError, r"offset: -1 is outside", call(lambda x, b: rfd.dropout(x, 0.5, seed=1, offset=-1))),
        ("rfd.dropout", TypeError, "seed: expected an int", call(lambda x, b: rfd.dropout(x, 0.5, seed=1.0))),
        ("rfd.dropout", ValueError, "store: expected 'bits' or 'seed'", call(lambda x, b: rfd.dropout(x, 0.5, seed=1, store="all"))),
        ("rfd.dropout", ValueError, r"x: chunk sizes are unknown",
         call(lambda x, b: rfd.dropout(x[x[:, 0] > -5], 0.5, seed=1))),
        ("rfd.dropout_backward", TypeError, "grad: expected a dask.array.Array", with_mask(lambda x, m, b: rfd.dropout_backward(b, m))),
        ("rfd.dropout_backward", TypeError, "mask: expected a regdrop_fast.dask.Mask, got Mask",
         with_mask(lambda x, m, b: rfd.dropout_backward(x, rdf.Mask(b.shape, 0.5, 1)))),
        ("rfd.dropout_backward", ValueError, r"grad: shape \(4, 3\) does not match the mask's \(3, 4\)",
         with_mask(lambda x, m, b: rfd.dropout_backward(x.T, m))),
        ("rfd.dropout_backward", TypeError, "dtype int64 is not supported",
         with_mask(lambda x, m, b: rfd.dropout_backward(x.astype(np.int64), m), store="seed")),
        ("rfd.penalty", TypeError, "params: expected a dask.array.Array or a sequence", call(lambda x, b: rfd.penalty(b, l1=0.1))),
        ("rfd.penalty", TypeError, r"params\[1\]: expected a dask.array.Array", call(lambda x, b: rfd.penalty([x, b], l1=0.1))),
        ("rfd.penalty", ValueError, r"l1: expected a finite number >= 0", call(lambda x, b: rfd.penalty(x, l1=-1.0))),
        ("rfd.penalty", ValueError, r"l2: 2 coefficients for 1 arrays", call(lambda x, b: rfd.penalty([x], l2=[0.1, 0.2]))),
        ("rfd.penalty", TypeError, r"params\[0\]: dtype int32 is not supported", call(lambda x, b: rfd.penalty([x.astype(np.int32)], l2=0.1))),
        ("rfd.Mask", ValueError, r"chunks: .* do not fit the shape \(3, 4\)",
         lambda: (lambda: rfd.Mask((3, 4), 0.5, 1, chunks=((2, 2), (4,))), [])),
        ("rfd.Mask", ValueError, "p: dropout probability", lambda: (lambda: rfd.Mask((3, 4), 2.0, 1, chunks=2), [])),
        ("rfd.Mask", TypeError, "seed: expected an int", lambda: (lambda: rfd.Mask((3, 4), 0.5, "1", chunks=2), [])),
        ("rfd.Mask", TypeError, "bits: expected a uint8 dask.array.Array or None",
         lambda: (lambda: rfd.Mask((3, 4), 0.5, 1, chunks=2, bits=np.zeros((3, 1), np.uint8)), [])),
        ("rfd.Mask", ValueError, r"bits: expected chunks \(\(2, 1\), \(1, 1\)\)",
         lambda: (lambda: rfd.Mask((3, 4), 0.5, 1, chunks=2, bits=da.zeros((3, 1), chunks=2, dtype=np.uint8)), [])),
    ]


TABLE += _dask_rows()


@pytest.mark.parametrize("fn, exc, match, make", TABLE,
                         ids=[f"{row[0]}-{k}" for k, row in enumerate(TABLE)])
def test_bad_input_table(fn, exc, match, make):
    call, watched = make()
    before = state(watched)
    with pytest.raises(exc, match=match) as info:
        call()
    assert type(info.value) is exc, f"{fn}: {type(info.value).__name__}, expected exactly {exc.__name__}"
    assert state(watched) == before, f"{fn}: a rejected call modified its input"


def test_bad_input_table_covers_every_public_function():
    covered = {row[0] for row in TABLE}
    expected = set(PUBLIC) | (set(TORCH_PUBLIC) if torch is not None else set())
    expected |= set(DASK_PUBLIC) if rfd is not None else set()
    assert expected <= covered, f"no rows for {sorted(expected - covered)}"
    assert covered <= expected, f"rows for unknown functions {sorted(covered - expected)}"
    exported = {n for n in rdf.__all__ if callable(getattr(rdf, n)) and n not in ("backend_info", "get_num_threads")}
    assert exported <= covered, f"public functions without rows: {sorted(exported - covered)}"
