"""Native dropout against the NumPy reference, bit for bit, and the contract of issue 2 section 3.

Every comparison is exact (bytes, so -0.0 and NaN payloads count). Sizes straddle the kernels' internal
boundaries: SIMD blocks (4 words per Philox block, 4/8/16 lanes), mask bytes (8 elements), tiles (2048
elements) and parallel tasks (65536 elements), so odd sizes and unaligned offsets reach every tail path.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import (
    BFLOAT16,
    DTYPE_IDS,
    DTYPES,
    PROBS,
    U64_MAX,
    per_backend,
    same_bits,
    values,
    UINT_OF,
    assert_same_bits,
    assert_same_mask,
    assert_unchanged,
    available_simd_levels,
    num_threads,
    random_values,
    run_each_simd,
    run_each_thread_count,
    simd_level,
    snapshot,
    special_values,
)

import regdrop_fast as rdf
from regdrop_fast import reference

dtype_param = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
p_param = pytest.mark.parametrize("p", PROBS)

# 1..1025: every size up to 2 SIMD vectors of blocks, then the sides of each power of two, some odd ones.
SMALL_SIZES = sorted(set(range(1, 34)) | {63, 64, 65, 100, 127, 128, 129, 255, 256, 257, 383, 511, 512, 513,
                                          777, 1000, 1021, 1023, 1024, 1025})
TILE_SIZES = [2047, 2048, 2049, 4095, 4100, 6151]  # around the 2048-element tile of dropout_loop.cpp
TASK = 1 << 16  # elements per parallel task (csrc/cpu/isa.h)
LARGE_SIZES = [TASK - 1, TASK + 1, 2 * TASK + 3, 278011]  # 2 * TASK + 3 > 2^17

SEEDS = [0, 1, 2, 3, 0xFFFFFFFF, 1 << 32, (1 << 32) + 1, 1 << 63, U64_MAX - 1, U64_MAX, 0x0123456789ABCDEF]
OFFSETS = [0, 1, 2, 3, 5, 7, 8, 13, 1000003, (1 << 32) - 3, 1 << 32, (1 << 32) + 1, (1 << 34) - 2,
           (1 << 62) - 1, (1 << 63) + 5, U64_MAX - 2, U64_MAX]


def both(x, p, **kw):
    """(native y, native mask), (reference y, reference mask) for the same call."""
    return rdf.dropout(x, p, **kw), reference.dropout(x, p, **kw)


def check_against_reference(x, p, seed, offset, what=""):
    """Forward (bits and seed), dropout_mask and backward (from bits and from seed), native == reference."""
    what = f"{what} shape={x.shape} dtype={x.dtype} p={p} seed={seed} offset={offset}"
    (y, mask), (y_ref, mask_ref) = both(x, p, seed=seed, offset=offset)
    assert_same_bits(y, y_ref, f"forward {what}")
    assert_same_mask(mask, mask_ref, f"mask {what}")

    (y_s, mask_s), (y_s_ref, mask_s_ref) = both(x, p, seed=seed, offset=offset, store="seed")
    assert mask_s.bits is None and mask_s_ref.bits is None
    assert_same_bits(y_s, y_ref, f"forward store='seed' {what}")
    assert_same_mask(mask_s, mask_s_ref, f"mask store='seed' {what}")

    assert_same_mask(rdf.dropout_mask(x.shape, p, seed=seed, offset=offset), mask_ref, f"dropout_mask {what}")

    grad = x[::-1].copy() if x.ndim else x.copy()  # some other values of the same shape and dtype
    dx_ref = reference.dropout_backward(grad, mask_ref)
    assert_same_bits(rdf.dropout_backward(grad, mask), dx_ref, f"backward(bits) {what}")
    assert_same_bits(rdf.dropout_backward(grad, mask_s), dx_ref, f"backward(seed) {what}")
    assert_same_bits(reference.dropout_backward(grad, mask_s_ref), dx_ref, f"reference backward(seed) {what}")


# ----------------------------------------------------------------------------------------------------------
# native == reference


@dtype_param
@p_param
def test_matches_reference_small_and_tile_sizes(dtype, p, rng):
    for n in SMALL_SIZES + TILE_SIZES:
        seed = int(rng.integers(0, U64_MAX, endpoint=True, dtype=np.uint64))
        offset = int(rng.integers(0, 1 << 40))  # mostly unaligned (offset % 4, % 8 != 0)
        check_against_reference(random_values(rng, n, dtype), p, seed, offset)


@dtype_param
@pytest.mark.parametrize("n", LARGE_SIZES)
def test_matches_reference_large_sizes(dtype, n, rng):
    x = random_values(rng, n, dtype)
    for p, offset in [(0.1, 0), (0.5, (1 << 32) - 70001), (0.9, U64_MAX - 100000)]:
        check_against_reference(x, p, seed=int(rng.integers(0, 1 << 63)), offset=offset)


def test_matches_reference_every_simd_level(each_simd, rng):
    for n in [1, 7, 33, 129, 1025, 2049, TASK + 1]:
        for dtype in DTYPES:
            check_against_reference(random_values(rng, n, dtype), 0.3, seed=n, offset=n * 7 + 1,
                                    what=f"simd={each_simd}")


@pytest.mark.parametrize("seed", SEEDS)
def test_matches_reference_seeds(seed, rng):
    x = random_values(rng, 3001, np.float32)
    for offset in [0, 3, (1 << 32) - 1]:
        check_against_reference(x, 0.4, seed, offset)


def test_matches_reference_many_random_seeds(rng):
    seeds = rng.integers(0, U64_MAX, size=64, endpoint=True, dtype=np.uint64)
    for seed in seeds.tolist():
        for p in (0.25, 0.5):
            ref = reference.dropout_mask((257,), p, seed=seed, offset=seed % 1000)
            assert_same_mask(rdf.dropout_mask((257,), p, seed=seed, offset=seed % 1000), ref, f"seed={seed}")


@pytest.mark.parametrize("offset", OFFSETS)
@dtype_param
def test_matches_reference_offsets(offset, dtype, rng):
    check_against_reference(random_values(rng, 4099, dtype), 0.5, seed=0x5EED, offset=offset)


@pytest.mark.parametrize("p", [2.0**-40, 2.0**-33, 2.0**-32, 3 * 2.0**-33, 1e-9, 1 / 3, 0.5 - 2.0**-33,
                               0.5 + 2.0**-34, 1 - 2.0**-32, 1 - 3 * 2.0**-34, 1 - 2.0**-33, 1 - 2.0**-40,
                               np.float32(0.7), np.float16(0.2), 1])
def test_matches_reference_threshold_edges(p, rng):
    """p near the integer threshold's rounding points and near 0 and 1 (docs/rng.md: round(p * 2^32))."""
    for dtype in (np.float32, BFLOAT16):
        check_against_reference(random_values(rng, 1029, dtype), p, seed=77, offset=5)


@pytest.mark.parametrize("g", [0, 3, 1005, 2**32 + 7, 2**63 + 2, U64_MAX])
def test_threshold_is_inclusive(g):
    """An element whose 32-bit word w equals the threshold is kept: p = w / 2^32 keeps it (threshold w),
    p = (w + 1) / 2^32 drops it. Checked in the middle of a long call so the SIMD path decides it."""
    seed, inside = 0xABCDEF0123, 1000
    block = (g >> 2) & ((1 << 62) - 1)
    w = int(rdf.random.philox4x32([block & 0xFFFFFFFF, block >> 32, 0, 0],
                                  [seed & 0xFFFFFFFF, seed >> 32])[g & 3])
    offset = (g - inside) % (1 << 64)
    for level in available_simd_levels():
        with simd_level(level):
            for impl in (rdf, reference):
                keep_at = impl.dropout_mask((4096,), w / 2**32, seed=seed, offset=offset).to_bool()
                keep_above = impl.dropout_mask((4096,), (w + 1) / 2**32, seed=seed, offset=offset).to_bool()
                assert keep_at[inside], f"{impl.__name__} {level}: word == threshold must be kept"
                assert not keep_above[inside], f"{impl.__name__} {level}: word < threshold must be dropped"


# ----------------------------------------------------------------------------------------------------------
# shapes, strides, layouts


SHAPES = [(), (0,), (0, 5), (3, 0, 2), (1,), (1, 1, 1), (37, 41), (5, 7, 9), (2, 3, 4, 5), (3, 1025)]


@dtype_param
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_shapes(dtype, shape, rng):
    x = random_values(rng, shape, dtype)
    check_against_reference(x, 0.3, seed=11, offset=6)
    y, mask = rdf.dropout(x, 0.3, seed=11, offset=6)
    assert y.shape == shape and y.dtype == dtype
    assert mask.shape == shape and mask.to_bool().shape == shape
    assert mask.bits.shape == ((x.size + 7) // 8,)
    assert_same_bits(y.reshape(-1), rdf.dropout(x.reshape(-1), 0.3, seed=11, offset=6)[0],
                     "element order is the C-order flattening")


def strided_views(base):
    """Non-contiguous views of a 2-D array: (name, view)."""
    return [
        ("every_other_row", base[::2]),
        ("every_third_col", base[:, ::3]),
        ("transpose", base.T),
        ("reversed", base[::-1, ::-1]),
        ("inner_slice", base[1:-1, 2:-3]),
        ("fortran", np.asfortranarray(base)),
        ("broadcast", np.broadcast_to(base[0], (5,) + base[0].shape)),
        ("flat_step", base.reshape(-1)[3::5]),
    ]


@dtype_param
def test_non_contiguous_inputs(dtype, rng):
    base = random_values(rng, (64, 67), dtype)
    for name, view in strided_views(base):
        if name != "fortran" and view.ndim > 1:
            assert not view.flags.c_contiguous, name
        contiguous = np.ascontiguousarray(view)
        for p in (0.2, 0.5):
            (y, mask), (y_ref, mask_ref) = both(view, p, seed=3, offset=9)
            assert_same_bits(y, y_ref, f"{name} p={p}")
            assert_same_bits(y, rdf.dropout(contiguous, p, seed=3, offset=9)[0], f"{name} vs copy")
            assert y.strides == np.empty_like(view).strides, name  # the input's layout (order="K")
            assert_same_mask(mask, mask_ref, name)
            dx = rdf.dropout_backward(view, mask)
            assert_same_bits(dx, reference.dropout_backward(view, mask_ref), f"backward {name}")
            assert_same_bits(dx, y, f"backward of x equals forward {name}")


@pytest.mark.parametrize("shift", [1, 2, 3, 5])
@dtype_param
def test_unaligned_buffers(dtype, shift, rng):
    """Arrays whose data pointer is not aligned to the element size (views into a byte buffer)."""
    n, item = 1031, np.dtype(dtype).itemsize
    values = random_values(rng, n, dtype)
    raw_x = np.zeros(n * item + 8, np.uint8)
    x = raw_x[shift:shift + n * item].view(dtype)
    x[...] = values
    raw_out = np.zeros(n * item + 8, np.uint8)
    out = raw_out[8 - shift:8 - shift + n * item].view(dtype)
    y_ref, mask_ref = reference.dropout(values, 0.5, seed=1, offset=2)
    y, mask = rdf.dropout(x, 0.5, seed=1, offset=2, out=out)
    assert y is out
    assert_same_bits(out, y_ref)
    assert_same_bits(x, values, "input untouched")
    dx = rdf.dropout_backward(x, mask, out=out)
    assert_same_bits(dx, reference.dropout_backward(values, mask_ref))


# ----------------------------------------------------------------------------------------------------------
# masks


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 63, 64, 65, 1000, 4101])
@pytest.mark.parametrize("p", PROBS)
def test_mask_layout(n, p, rng):
    x = random_values(rng, n, np.float64) + 100.0  # never 0, so y != 0 exactly where kept (for p < 1)
    y, mask = rdf.dropout(x, p, seed=n + 1, offset=n)
    keep = mask.to_bool()
    assert keep.dtype == np.bool_ and keep.shape == (n,)
    assert mask.bits.dtype == np.uint8 and mask.bits.shape == ((n + 7) // 8,)
    assert_same_bits(np.packbits(keep, bitorder="little"), mask.bits, "bit k of byte j is element 8j+k")
    assert_same_bits(np.unpackbits(mask.bits, count=n, bitorder="little").astype(bool), keep)
    if n % 8:  # bits past the last element are zero
        assert mask.bits[-1] >> (n % 8) == 0
    assert_same_bits(y != 0, keep, "kept elements are exactly the nonzero outputs")
    assert_same_bits(y[keep], (x[keep] * mask.scale).astype(x.dtype))
    if p == 0:
        assert keep.all()
    if p == 1:
        assert not keep.any()


def test_mask_attributes():
    x = np.ones((6, 7), np.float32)
    y, mask = rdf.dropout(x, 0.25, seed=99, offset=17)
    assert isinstance(mask, rdf.Mask) and isinstance(mask, reference.Mask)
    assert mask.shape == (6, 7) and isinstance(mask.shape, tuple)
    assert mask.p == 0.25 and isinstance(mask.p, float)
    assert mask.scale == 1 / 0.75 and isinstance(mask.scale, float)
    assert mask.seed == 99 and isinstance(mask.seed, int)
    assert mask.offset == 17 and isinstance(mask.offset, int)
    assert mask.size == 42
    assert "seed=99" in repr(mask) and "'bits'" in repr(mask)
    _, mask_s = rdf.dropout(x, 0.25, seed=99, offset=17, store="seed")
    assert mask_s.bits is None and "'seed'" in repr(mask_s)
    assert_same_bits(mask_s.to_bool(), mask.to_bool(), "to_bool regenerates a seed-only mask")
    assert rdf.dropout_mask((6, 7), 0.25, seed=99).offset == 0


@pytest.mark.parametrize("shape", [(), (0,), (5,), (4, 6), (3, 5, 7)], ids=str)
def test_dropout_mask_matches_dropout(shape):
    x = np.ones(shape, np.float16)
    for p in PROBS:
        _, mask = rdf.dropout(x, p, seed=5, offset=1 << 33)
        for impl in (rdf.dropout_mask, reference.dropout_mask):
            assert_same_mask(impl(shape, p, seed=5, offset=1 << 33), mask, f"{impl.__module__} p={p}")
    assert rdf.dropout_mask(7, 0.5, seed=1).shape == (7,)
    assert rdf.dropout_mask([2, 3], 0.5, seed=1).shape == (2, 3)
    assert rdf.dropout_mask(np.array([2, 3]), 0.5, seed=1).shape == (2, 3)


def test_user_built_mask_drives_backward(rng):
    """A Mask constructed from bits (e.g. stored and reloaded) works like the one dropout returned."""
    x = random_values(rng, (9, 13), np.float32)
    y, mask = rdf.dropout(x, 0.4, seed=8)
    rebuilt = rdf.Mask(mask.shape, mask.p, mask.seed, mask.offset, mask.bits.copy())
    assert_same_bits(rdf.dropout_backward(x, rebuilt), y)
    assert_same_bits(reference.dropout_backward(x, rebuilt), y)
    seed_only = rdf.Mask(list(mask.shape), np.float64(0.4), np.uint64(8))
    assert seed_only.bits is None and seed_only.offset == 0
    assert_same_bits(rdf.dropout_backward(x, seed_only), y)
    # backward trusts the stored bits, not the seed: flipping bits flips the decisions
    flipped = rdf.Mask(mask.shape, mask.p, mask.seed, mask.offset, ~mask.bits)
    keep = flipped.to_bool()
    assert_same_bits(keep, ~mask.to_bool())
    assert_same_bits(rdf.dropout_backward(x, flipped), reference.dropout_backward(x, flipped))


# ----------------------------------------------------------------------------------------------------------
# slicing invariance: element i of a call at offset o decides like element o + i of one long call


@pytest.mark.parametrize("offset", [0, 5, (1 << 32) - 1000, U64_MAX - 3000])
@dtype_param
def test_slicing_invariance(dtype, offset, rng):
    n = 6000
    x = random_values(rng, n, dtype)
    y_full, mask_full = rdf.dropout(x, 0.5, seed=42, offset=offset)
    keep_full = mask_full.to_bool()
    grad = random_values(rng, n, dtype)
    dx_full = rdf.dropout_backward(grad, mask_full)
    cuts = [(0, 1), (1, 2), (3, 4), (1, 9), (3, 11), (5, 2053), (7, 4096), (2047, 2050), (2049, 6000),
            (4093, 5999), (6000, 6000), (0, 6000)]
    for a, b in cuts:
        o = (offset + a) % (1 << 64)
        y, mask = rdf.dropout(x[a:b], 0.5, seed=42, offset=o)
        assert_same_bits(y, y_full[a:b], f"forward x[{a}:{b}]")
        assert_same_bits(mask.to_bool(), keep_full[a:b], f"mask x[{a}:{b}]")
        assert_same_bits(rdf.dropout_mask((b - a,), 0.5, seed=42, offset=o).to_bool(), keep_full[a:b])
        _, mask_s = rdf.dropout(x[a:b], 0.5, seed=42, offset=o, store="seed")
        assert_same_bits(rdf.dropout_backward(grad[a:b], mask_s), dx_full[a:b], f"backward x[{a}:{b}]")


def test_slicing_invariance_across_tasks(rng):
    """Cuts that start inside one parallel task and end inside another, at odd positions."""
    n = 3 * TASK + 11
    x = random_values(rng, n, np.float32)
    y_full, mask_full = rdf.dropout(x, 0.3, seed=7, offset=3)
    keep_full = mask_full.to_bool()
    for a, b in [(TASK - 3, TASK + 5), (TASK - 1, 2 * TASK + 1), (13, n), (2 * TASK + 7, n - 1)]:
        y, mask = rdf.dropout(x[a:b], 0.3, seed=7, offset=3 + a)
        assert_same_bits(y, y_full[a:b], f"x[{a}:{b}]")
        assert_same_bits(mask.to_bool(), keep_full[a:b], f"mask x[{a}:{b}]")


def test_slicing_invariance_of_flattened_2d(rng):
    x = random_values(rng, (33, 31), np.float64)
    y_full, mask_full = rdf.dropout(x, 0.6, seed=2, offset=10)
    flat = x.reshape(-1)
    for a, b in [(0, 31), (31, 62), (5, 700), (17, 1023)]:
        y, _ = rdf.dropout(flat[a:b], 0.6, seed=2, offset=10 + a)
        assert_same_bits(y, y_full.reshape(-1)[a:b])


def test_offset_wraps_modulo_2_64():
    """Global index (offset + i) mod 2^64: a call straddling 2^64 continues at global index 0."""
    tail = 13
    straddle = rdf.dropout_mask((tail + 50,), 0.5, seed=9, offset=(1 << 64) - tail).to_bool()
    start = rdf.dropout_mask((50,), 0.5, seed=9, offset=0).to_bool()
    end = rdf.dropout_mask((tail,), 0.5, seed=9, offset=(1 << 64) - tail).to_bool()
    assert_same_bits(straddle[tail:], start)
    assert_same_bits(straddle[:tail], end)
    ref = reference.dropout_mask((tail + 50,), 0.5, seed=9, offset=(1 << 64) - tail).to_bool()
    assert_same_bits(straddle, ref)


def test_offset_wrap_inside_a_parallel_call(rng):
    n = 2 * TASK + 5
    x = random_values(rng, n, np.float32)
    offset = (1 << 64) - (TASK + 3)  # wraps 3 elements into the second task
    check_against_reference(x, 0.5, seed=U64_MAX, offset=offset)
    y, _ = rdf.dropout(x, 0.5, seed=U64_MAX, offset=offset)
    y0, _ = rdf.dropout(x[TASK + 3:], 0.5, seed=U64_MAX, offset=0)
    assert_same_bits(y[TASK + 3:], y0)


# ----------------------------------------------------------------------------------------------------------
# thread counts and SIMD paths


def everything(x, p, seed, offset):
    """Every output of the dropout API for one input, as a tuple of arrays."""
    y, mask = rdf.dropout(x, p, seed=seed, offset=offset)
    _, mask_s = rdf.dropout(x, p, seed=seed, offset=offset, store="seed")
    return (y, mask.bits, rdf.dropout_backward(x, mask), rdf.dropout_backward(x, mask_s),
            rdf.dropout_mask(x.shape, p, seed=seed, offset=offset).bits)


def assert_all_equal(results: dict, what: str):
    items = list(results.items())
    key0, first = items[0]
    for key, other in items[1:]:
        for i, (a, b) in enumerate(zip(first, other)):
            assert_same_bits(b, a, f"{what} {key} vs {key0}, output {i}")


@pytest.mark.parametrize("n", [TASK + 1, 278011, (1 << 20) + 3])
@dtype_param
def test_thread_count_invariance(dtype, n, rng):
    x = random_values(rng, n, dtype)
    results = run_each_thread_count(lambda: everything(x, 0.3, seed=123, offset=7), counts=(1, 2, 3, 8))
    assert_all_equal(results, "threads")


@pytest.mark.parametrize("n", [1, 5, 16, 17, 63, 65, 1025, 2049, 278011])
def test_simd_invariance(n, rng):
    for dtype in DTYPES:
        x = random_values(rng, n, dtype)
        for offset in (0, 3, U64_MAX - 5):
            assert_all_equal(run_each_simd(lambda: everything(x, 0.5, seed=n, offset=offset)),
                             f"simd n={n} dtype={dtype} offset={offset}")


def test_simd_levels_reported():
    levels = available_simd_levels()
    assert levels[0] == "generic"
    info = rdf.backend_info()
    assert info["simd"] in levels
    for level in levels:
        with simd_level(level):
            assert rdf.backend_info()["simd"] == level
    # a level above what the CPU has is capped, never an error
    with simd_level(levels[-1]):
        assert rdf.set_simd("avx512") == levels[-1]


def test_threads_and_simd_together(rng):
    x = random_values(rng, 3 * TASK + 17, BFLOAT16)
    results = {}
    for level in available_simd_levels():
        with simd_level(level):
            for n in (1, 2):
                with num_threads(n):
                    results[(level, n)] = everything(x, 0.9, seed=5, offset=1 << 40)
    assert_all_equal(results, "simd x threads")


# ----------------------------------------------------------------------------------------------------------
# out=, in place, overlap


@dtype_param
def test_out_argument(dtype, rng):
    x = random_values(rng, (17, 19), dtype)
    before = snapshot(x)
    y_ref, mask_ref = reference.dropout(x, 0.5, seed=4, offset=1)
    out = np.full_like(x, 7)
    y, mask = rdf.dropout(x, 0.5, seed=4, offset=1, out=out)
    assert y is out
    assert_same_bits(out, y_ref)
    assert_unchanged([x], before)
    out_ref = np.full_like(x, 7)
    assert reference.dropout(x, 0.5, seed=4, offset=1, out=out_ref)[0] is out_ref
    assert_same_bits(out_ref, y_ref)

    grad = random_values(rng, x.shape, dtype)
    dx_out = np.full_like(x, 7)
    assert rdf.dropout_backward(grad, mask, out=dx_out) is dx_out
    assert_same_bits(dx_out, reference.dropout_backward(grad, mask_ref))


@dtype_param
@pytest.mark.parametrize("n", [1, 9, 1025, 278011])
def test_in_place(dtype, n, rng):
    x = random_values(rng, n, dtype)
    y_ref, mask_ref = reference.dropout(x, 0.3, seed=6, offset=2)
    grad = random_values(rng, n, dtype)
    dx_ref = reference.dropout_backward(grad, mask_ref)

    buf = x.copy()
    y, mask = rdf.dropout(buf, 0.3, seed=6, offset=2, out=buf)
    assert y is buf
    assert_same_bits(buf, y_ref)
    gbuf = grad.copy()
    assert rdf.dropout_backward(gbuf, mask, out=gbuf) is gbuf
    assert_same_bits(gbuf, dx_ref)
    _, mask_s = rdf.dropout(x, 0.3, seed=6, offset=2, store="seed")
    gbuf = grad.copy()
    rdf.dropout_backward(gbuf, mask_s, out=gbuf)
    assert_same_bits(gbuf, dx_ref, "in-place backward from seed")

    ref_buf = x.copy()
    assert reference.dropout(ref_buf, 0.3, seed=6, offset=2, out=ref_buf)[0] is ref_buf
    assert_same_bits(ref_buf, y_ref)


@pytest.mark.parametrize("shift", [1, 3, 8, 1000, -1, -5, -1000])
@dtype_param
def test_overlapping_out(dtype, shift, rng):
    """out and x are different views of one buffer, overlapping with x ahead of or behind out."""
    n = 5003
    data = random_values(rng, n + abs(shift), dtype)
    x_idx = slice(shift, shift + n) if shift > 0 else slice(0, n)
    o_idx = slice(0, n) if shift > 0 else slice(-shift, -shift + n)
    y_ref, mask_ref = reference.dropout(data[x_idx].copy(), 0.5, seed=3, offset=5)
    buf = data.copy()
    rdf.dropout(buf[x_idx], 0.5, seed=3, offset=5, out=buf[o_idx])
    assert_same_bits(buf[o_idx], y_ref, "forward")
    buf = data.copy()
    rdf.dropout_backward(buf[x_idx], mask_ref, out=buf[o_idx])
    assert_same_bits(buf[o_idx], y_ref, "backward")
    buf = data.copy()
    reference.dropout(buf[x_idx], 0.5, seed=3, offset=5, out=buf[o_idx])
    assert_same_bits(buf[o_idx], y_ref, "reference forward")


def test_out_aliasing_a_strided_input(rng):
    data = random_values(rng, 2000, np.float32)
    expected, _ = reference.dropout(data[::2].copy(), 0.5, seed=1)
    buf = data.copy()
    rdf.dropout(buf[::2], 0.5, seed=1, out=buf[:1000])
    assert_same_bits(buf[:1000], expected)
    assert_same_bits(buf[1000:], data[1000:], "the rest of the buffer is untouched")


# ----------------------------------------------------------------------------------------------------------
# edge cases (PyTorch/Keras dropout tests): NaN/inf, p=0, p=1, empty, 0-d, dtype


@dtype_param
@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 0.9, 1.0])
def test_special_values(dtype, p):
    x = np.tile(special_values(dtype), 300)
    (y, mask), (y_ref, _) = both(x, p, seed=31, offset=3)
    assert_same_bits(y, y_ref)
    keep = mask.to_bool()
    zero = np.zeros((), dtype)
    assert_same_bits(y[~keep], np.full((~keep).sum(), zero), "dropped values are +0.0, even NaN and inf")
    assert np.isnan(y[keep & np.isnan(x)]).all(), "kept NaN propagates"
    kept_inf = keep & np.isinf(x)
    assert_same_bits(y[kept_inf], x[kept_inf], "kept inf stays inf of the same sign")
    assert not np.isnan(y[~np.isnan(x)]).any(), "no NaN from a non-NaN input"
    if 0 < p < 1:
        assert keep.any() and (~keep).any()
        assert (keep & np.isnan(x)).any() and (~keep & np.isnan(x)).any()


@dtype_param
def test_nan_payloads_match_reference(dtype, rng):
    """Arbitrary bit patterns, NaNs with payloads and signs included: native == reference bit for bit."""
    uint = UINT_OF[dtype]
    raw = rng.integers(0, np.iinfo(uint).max, size=20000, dtype=uint, endpoint=True)
    exp_all_ones = {np.uint16: 0x7C00, np.uint32: 0x7F800000, np.uint64: 0x7FF0000000000000}[uint]
    if dtype == BFLOAT16:
        exp_all_ones = 0x7F80
    raw[::3] |= uint(exp_all_ones)  # a third of them inf or NaN
    x = raw.view(dtype)
    for p in (0.0, 0.5):
        (y, mask), (y_ref, _) = both(x, p, seed=13, offset=0)
        assert_same_bits(y, y_ref, f"p={p}")
        dx = rdf.dropout_backward(x, mask)
        assert_same_bits(dx, reference.dropout_backward(x, mask), f"backward p={p}")


@dtype_param
def test_p_zero_returns_x(dtype, rng):
    x = np.concatenate([random_values(rng, 1000, dtype), special_values(dtype)])
    y, mask = rdf.dropout(x, 0.0, seed=1)
    assert_same_bits(y, x)
    assert mask.scale == 1.0 and mask.to_bool().all()
    assert_same_bits(rdf.dropout_backward(x, mask), x)
    assert_same_bits(reference.dropout(x, 0.0, seed=1)[0], x)


@dtype_param
def test_p_one_gives_zeros_without_nan(dtype, rng):
    x = np.concatenate([random_values(rng, 1000, dtype), special_values(dtype)])
    for store in ("bits", "seed"):
        y, mask = rdf.dropout(x, 1.0, seed=1, store=store)
        assert_same_bits(y, np.zeros_like(x), "all +0.0")
        assert mask.scale == 0.0 and not mask.to_bool().any()
        assert_same_bits(rdf.dropout_backward(x, mask), np.zeros_like(x))
        assert_same_bits(reference.dropout(x, 1.0, seed=1, store=store)[0], np.zeros_like(x))


@dtype_param
@pytest.mark.parametrize("shape", [(0,), (0, 3), (4, 0), (2, 0, 5)], ids=str)
def test_empty_arrays(dtype, shape):
    x = np.empty(shape, dtype)
    for impl in (rdf, reference):
        y, mask = impl.dropout(x, 0.5, seed=1)
        assert y.shape == shape and y.dtype == dtype
        assert mask.shape == shape and mask.bits.shape == (0,)
        assert mask.to_bool().shape == shape
        dx = impl.dropout_backward(x, mask)
        assert dx.shape == shape and dx.dtype == dtype
        out = np.empty(shape, dtype)
        assert impl.dropout(x, 0.5, seed=1, out=out)[0] is out
        assert impl.dropout_mask(shape, 0.5, seed=1).bits.shape == (0,)


@dtype_param
@pytest.mark.parametrize("p", PROBS)
def test_zero_dim(dtype, p):
    x = np.array(2.5, dtype)
    (y, mask), (y_ref, mask_ref) = both(x, p, seed=4, offset=1)
    assert y.shape == () and y.dtype == dtype
    assert_same_bits(y, y_ref)
    assert_same_mask(mask, mask_ref)
    assert mask.bits.shape == (1,) and mask.to_bool().shape == ()
    assert_same_bits(rdf.dropout_backward(x, mask), reference.dropout_backward(x, mask))
    out = np.zeros((), dtype)
    assert rdf.dropout(x, p, seed=4, offset=1, out=out)[0] is out
    assert_same_bits(out, y_ref)
    # numpy scalars are 0-d inputs too
    assert_same_bits(rdf.dropout(x[()], p, seed=4, offset=1)[0], y_ref)


@dtype_param
def test_dtype_preserved(dtype, rng):
    x = random_values(rng, 100, dtype)
    y, mask = rdf.dropout(x, 0.5, seed=1)
    assert y.dtype == dtype
    assert rdf.dropout_backward(x, mask).dtype == dtype
    assert rdf.dropout_backward(x.astype(np.float32), mask).dtype == np.float32, "grad dtype, not x's"


def test_half_types_compute_in_float32(rng):
    """Half inputs: one rounding of (float32(x) * float32(scale)) to the half type, not two."""
    for dtype in (np.float16, BFLOAT16):
        x = random_values(rng, 4000, dtype)
        y, mask = rdf.dropout(x, 0.3, seed=2)
        keep = mask.to_bool()
        expected = np.where(keep, x.astype(np.float32) * np.float32(1 / 0.7), np.float32(0)).astype(dtype)
        assert_same_bits(y, expected)


def test_python_sequences_and_scalars():
    y, mask = rdf.dropout([1.0, 2.0, 3.0], 0.5, seed=3)
    assert y.dtype == np.float64 and y.shape == (3,)
    assert_same_bits(y, rdf.dropout(np.array([1.0, 2.0, 3.0]), 0.5, seed=3)[0])
    y0, _ = rdf.dropout(1.5, 0.0, seed=3)
    assert y0.shape == () and y0 == 1.5
    dx = rdf.dropout_backward([1.0, 2.0, 3.0], mask)
    assert_same_bits(dx, y)


def test_inputs_never_modified(rng):
    for dtype in DTYPES:
        x = random_values(rng, 3000, dtype)
        before = snapshot(x)
        y, mask = rdf.dropout(x, 0.5, seed=1)
        bits_before = snapshot(mask.bits)
        rdf.dropout_backward(x, mask)
        assert_unchanged([x, mask.bits], before + bits_before)
        reference.dropout(x, 0.5, seed=1)
        assert_unchanged([x], before)


# ----------------------------------------------------------------------------------------------------------
# seeds


@pytest.mark.parametrize("impl", [rdf, reference], ids=["native", "reference"])
def test_seed_none_draws_a_fresh_seed_that_reproduces(impl, rng):
    x = random_values(rng, 500, np.float32)
    (y1, m1), (y2, m2) = impl.dropout(x, 0.5), impl.dropout(x, 0.5)
    for m in (m1, m2):
        assert isinstance(m.seed, int) and 0 <= m.seed <= U64_MAX
    assert m1.seed != m2.seed, "two fresh seeds collide (probability 2^-64)"
    assert (y1 != y2).any()
    y1_again, m1_again = impl.dropout(x, 0.5, seed=m1.seed)
    assert_same_bits(y1_again, y1)
    assert_same_mask(m1_again, m1)
    _, m3 = impl.dropout(x, 0.5, store="seed", offset=9)
    assert m3.bits is None and m3.offset == 9
    assert_same_bits(impl.dropout(x, 0.5, seed=m3.seed, offset=9)[0], impl.dropout_backward(x, m3))


def test_seeds_accept_numpy_integers():
    a = rdf.dropout_mask(100, 0.5, seed=np.uint64(U64_MAX), offset=np.int64(5))
    b = rdf.dropout_mask(100, 0.5, seed=U64_MAX, offset=5)
    assert_same_mask(a, b)
    assert type(a.seed) is int and type(a.offset) is int


def test_different_seeds_and_offsets_give_different_masks():
    masks = {rdf.dropout_mask(256, 0.5, seed=s).bits.tobytes() for s in range(50)}
    masks |= {rdf.dropout_mask(256, 0.5, seed=0, offset=o).bits.tobytes() for o in range(1, 50)}
    assert len(masks) == 99


# ----------------------------------------------------------------------------------------------------------
# concurrency: Python threads calling at once (the GIL is released in the kernels)


def test_concurrent_calls_match_serial(rng):
    jobs = []
    for i in range(24):
        dtype = DTYPES[i % 4]
        n = [1025, 3 * TASK + 5, 278011, 17][i % 4]
        jobs.append((random_values(rng, n, dtype), [0.1, 0.5, 0.9][i % 3], 1000 + i, 3 * i))

    def run(job):
        x, p, seed, offset = job
        y, mask = rdf.dropout(x, p, seed=seed, offset=offset)
        _, mask_s = rdf.dropout(x, p, seed=seed, offset=offset, store="seed")
        return y, mask.bits, rdf.dropout_backward(x, mask_s)

    serial = [run(job) for job in jobs]
    barrier = threading.Barrier(4)

    def run_together(job):
        try:
            barrier.wait(timeout=10)
        except threading.BrokenBarrierError:
            pass
        return run(job)

    for _ in range(2):
        with ThreadPoolExecutor(max_workers=4) as pool:
            concurrent = list(pool.map(run_together, jobs))
        for i, (a, b) in enumerate(zip(serial, concurrent)):
            for k in range(3):
                assert_same_bits(b[k], a[k], f"job {i} output {k}")


def test_concurrent_calls_while_thread_count_changes(rng):
    x = random_values(rng, 4 * TASK + 1, np.float32)
    expected, _ = rdf.dropout(x, 0.5, seed=1)
    stop = threading.Event()
    previous = rdf.get_num_threads()

    def flip():
        k = 0
        while not stop.is_set():
            rdf.set_num_threads(1 + k % 3)
            k += 1

    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            results = list(pool.map(lambda _: rdf.dropout(x, 0.5, seed=1)[0], range(12)))
    finally:
        stop.set()
        flipper.join()
        rdf.set_num_threads(previous)
    for y in results:
        assert_same_bits(y, expected)


# ----------------------------------------------------------------------------------------------------------
# backend info and thread settings


def test_backend_info():
    info = rdf.backend_info()
    for key, kind in [("version", str), ("simd", str), ("num_threads", int), ("cuda_compiled", bool)]:
        assert key in info and isinstance(info[key], kind), key
    assert info["version"] == rdf.__version__
    assert info["simd"] in ("generic", "avx2", "avx512")
    assert info["num_threads"] == rdf.get_num_threads() >= 1
    if "default_num_threads" in info:
        assert isinstance(info["default_num_threads"], int) and info["default_num_threads"] >= 1


def test_num_threads_round_trip():
    previous = rdf.get_num_threads()
    try:
        for n in (1, 2, 3, 17, 1):
            assert rdf.set_num_threads(n) is None
            assert rdf.get_num_threads() == n
            assert rdf.backend_info()["num_threads"] == n
        rdf.set_num_threads(np.int32(2))
        assert rdf.get_num_threads() == 2 and type(rdf.get_num_threads()) is int
    finally:
        rdf.set_num_threads(previous)


# ----------------------------------------------------------------------------------------------------------
# 64-bit sizes


@pytest.mark.slow
def test_mask_beyond_2_32_elements():
    """A mask of 2^32 + 13 elements (512 MiB of bits, ~2 s): 64-bit element indices all the way through.

    The tail must equal a short call at the matching offset, as slicing invariance demands; an index
    truncated to 32 bits anywhere would repeat the head instead.
    """
    n = (1 << 32) + 13  # > 2^24 elements: marked slow, and always run in full (no skip on measured time)
    seed, offset = 2024, 3
    bits = rdf.dropout_mask((n,), 0.5, seed=seed, offset=offset).bits
    assert bits.shape == ((n + 7) // 8,)
    for start in [0, (1 << 31) - 64, (1 << 32) - 64, n - 77]:
        start -= start % 8
        stop = min(start + 200, n)
        part = rdf.dropout_mask((stop - start,), 0.5, seed=seed, offset=offset + start)
        expected = np.packbits(part.to_bool(), bitorder="little")
        assert_same_bits(bits[start // 8:(stop + 7) // 8], expected, f"elements {start}:{stop}")
    assert bits[-1] >> (n % 8) == 0
    del bits


@pytest.mark.slow
def test_large_array_threads_and_reference_sample(rng):
    """2^24 + 5 float32 elements: thread counts agree, and sampled windows match the reference."""
    n = (1 << 24) + 5
    x = rng.standard_normal(n, dtype=np.float32)
    results = run_each_thread_count(lambda: rdf.dropout(x, 0.5, seed=77, offset=1), counts=(1, 2))
    (y1, m1), (y2, m2) = results[1], results[2]
    assert_same_bits(y1, y2)
    assert_same_bits(m1.bits, m2.bits)
    for a in [0, 1 << 23, n - 1000]:
        b = min(a + 1000, n)
        y_ref, _ = reference.dropout(x[a:b], 0.5, seed=77, offset=1 + a)
        assert_same_bits(y1[a:b], y_ref, f"window {a}:{b}")


# ----------------------------------------------------------------------------------------------------------
# every backend against the CPU kernels and the reference: masks and values bit-identical for every dtype,
# size, alignment and offset (same element body, same single rounding, no FMA contraction)

DEVICE_SIZES = [0, 1, 7, 8, 9, 31, 1025, 278011, (1 << 20) + 3]
DEVICE_OFFSETS = [0, 1, 3, (1 << 32) - 5, (1 << 64) - 7]
EMULATED_SIZES = [0, 1, 7, 8, 9, 1025, 20011]  # a fiber per CUDA thread: small sizes
EMULATED_OFFSETS = [0, 3, (1 << 64) - 7]
FORWARD_CASES = [(n, o) for n in DEVICE_SIZES for o in DEVICE_OFFSETS]
EMULATED_FORWARD_CASES = [(n, o) for n in EMULATED_SIZES for o in EMULATED_OFFSETS]


@dtype_param
@pytest.mark.parametrize("backend,case", per_backend(FORWARD_CASES, EMULATED_FORWARD_CASES,
                                                     ids=lambda c: f"{c[0]}-{c[1]}"), indirect=["backend"])
def test_forward_and_backward_match_cpu_and_reference(backend, dtype, case):
    backend.require(dtype)
    n, offset = case
    rng = np.random.default_rng(n)
    x = values(rng, n, dtype, specials=backend.name != "cuda")  # a GPU's NaNs are canonical
    xd = backend.asarray(x.copy())
    for p in (0.3,) if backend.emulated else (0.0, 0.1, 0.5, 1.0):
        y, mask = rdf.dropout(xd, p, seed=1234, offset=offset)
        yc, mc = rdf.dropout(x, p, seed=1234, offset=offset)
        yr, mr = reference.dropout(x, p, seed=1234, offset=offset)
        assert backend.to_numpy(y).dtype == dtype
        assert same_bits(backend.to_numpy(mask.bits), mc.bits) and same_bits(mc.bits, mr.bits)
        assert same_bits(backend.to_numpy(y), yc) and same_bits(yc, yr)
        assert same_bits(backend.to_numpy(xd), x), "x was modified"
        g = values(rng, n, dtype)
        _, seed_mask = rdf.dropout(xd, p, seed=1234, offset=offset, store="seed")
        expected = rdf.dropout_backward(g, mc)
        assert same_bits(backend.to_numpy(rdf.dropout_backward(backend.asarray(g), mask)), expected)
        assert same_bits(backend.to_numpy(rdf.dropout_backward(backend.asarray(g), seed_mask)), expected)


@dtype_param
@pytest.mark.parametrize("store", ["bits", "seed"])
def test_backward_matches_cpu(backend, dtype, store):
    backend.require(dtype)
    n = 20011 if backend.emulated else 278011
    g = values(np.random.default_rng(n), n, dtype)
    _, mask = rdf.dropout(backend.asarray(np.zeros(n, dtype)), 0.3, seed=7, offset=5, store=store)
    dx = rdf.dropout_backward(backend.asarray(g), mask)
    cpu_mask = rdf.dropout_mask(n, 0.3, seed=7, offset=5)
    assert same_bits(backend.to_numpy(dx), rdf.dropout_backward(g, cpu_mask))


@pytest.mark.parametrize("shift", [1, 2, 3, 5])
def test_misaligned_and_overlapping_views(backend, shift):
    n = 10007 if backend.emulated else 100003
    base = values(np.random.default_rng(shift), n + 6, np.float32)
    x = base[shift:shift + n].copy()
    expected, mc = rdf.dropout(x, 0.25, seed=5, offset=11)
    bd = backend.asarray(base.copy())
    outd = backend.asarray(np.zeros(n + 6, np.float32))
    y, mask = rdf.dropout(bd[shift:shift + n], 0.25, seed=5, offset=11, out=outd[1:n + 1])
    out = backend.to_numpy(outd)
    assert same_bits(out[1:n + 1], expected) and same_bits(backend.to_numpy(mask.bits), mc.bits)
    assert same_bits(backend.to_numpy(y), expected)
    assert out[0] == 0 and np.all(out[n + 1:] == 0), "written outside the out view"
    # out one element before x in the same memory: x must be read before it is overwritten
    rdf.dropout(bd[shift:shift + n], 0.25, seed=5, offset=11, out=bd[shift - 1:shift - 1 + n])
    assert same_bits(backend.to_numpy(bd)[shift - 1:shift - 1 + n], expected)


def test_non_contiguous_input(backend):
    host = values(np.random.default_rng(3), 64 * 33, np.float32).reshape(64, 33)
    x = backend.transpose(backend.asarray(host))
    y, _ = rdf.dropout(x, 0.5, seed=3)
    yc, _ = rdf.dropout(host.T, 0.5, seed=3)
    assert same_bits(backend.to_numpy(y), yc)


def test_in_place_on_every_backend(backend):
    host = values(np.random.default_rng(4), 4097, np.float32)
    expected, _ = rdf.dropout(host, 0.5, seed=3)
    x = backend.asarray(host.copy())
    y, _ = rdf.dropout(x, 0.5, seed=3, out=x)
    assert same_bits(backend.to_numpy(x), expected) and same_bits(backend.to_numpy(y), expected)


@dtype_param
@pytest.mark.parametrize("n", [15, 16, 4097, 70001])
def test_in_place_every_dtype(backend, dtype, n):
    """out=x (the CUDA kernel's in and out are the same memory: no __restrict__ on them); 70001 elements take
    several grid-stride iterations on the emulation's capped grid; offset 6 runs a misaligned-stream kernel."""
    backend.require(dtype)
    host = values(np.random.default_rng(n), n, dtype, specials=backend.name != "cuda")
    for offset in (0, 6):
        expected, mc = rdf.dropout(host, 0.4, seed=21, offset=offset)
        x = backend.asarray(host.copy())
        y, mask = rdf.dropout(x, 0.4, seed=21, offset=offset, out=x)
        assert same_bits(backend.to_numpy(x), expected) and same_bits(backend.to_numpy(y), expected)
        assert same_bits(backend.to_numpy(mask.bits), mc.bits)
        g = backend.asarray(host.copy())
        dx = rdf.dropout_backward(g, mask, out=g)
        assert same_bits(backend.to_numpy(dx), rdf.dropout_backward(host, mc))


def test_overlapping_out_view_reads_the_original_values(backend):
    host = values(np.random.default_rng(5), 10001, np.float32)
    base = backend.asarray(host.copy())
    x, out = base[1:], base[:-1]  # out starts one element before x: the kernel must not read what it wrote
    expected, _ = rdf.dropout(host[1:], 0.5, seed=12)
    rdf.dropout(x, 0.5, seed=12, out=out)
    assert same_bits(backend.to_numpy(base)[:-1], expected)


def test_to_bool(backend):
    x = backend.asarray(values(np.random.default_rng(6), 1001, np.float32))
    _, mask = rdf.dropout(x, 0.5, seed=8)
    assert np.array_equal(backend.to_numpy(mask.to_bool()), rdf.dropout_mask(1001, 0.5, seed=8).to_bool())


def test_mixed_devices_rejected(device_backend):
    x = device_backend.asarray(values(np.random.default_rng(7), 16, np.float32))
    with pytest.raises(ValueError, match="same CUDA device"):
        rdf.dropout(x, 0.5, seed=1, out=np.empty(16, np.float32))
    with pytest.raises(ValueError, match="CUDA device"):
        rdf.dropout(np.ones(16, np.float32), 0.5, seed=1, out=x)
    _, mask = rdf.dropout(x, 0.5, seed=1)
    with pytest.raises(ValueError, match="host array"):
        rdf.dropout_backward(np.ones(16, np.float32), mask)


def test_bad_dtype_on_device(device_backend):
    with pytest.raises(TypeError, match="int32"):
        rdf.dropout(device_backend.asarray(np.ones(8, np.int32)), 0.5, seed=1)


@pytest.mark.cuda
@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.dtype(np.float32), BFLOAT16], ids=["float32", "bfloat16"])
def test_large_mask_bit_identical(gpu, dtype):
    gpu.require(dtype)
    n = 1 << 28
    mask = rdf.dropout(gpu.asarray(np.zeros(n, dtype)), 0.1, seed=2024, store="bits")[1]
    cpu = rdf.dropout_mask(n, 0.1, seed=2024)
    assert same_bits(gpu.to_numpy(mask.bits), cpu.bits)


@pytest.mark.cuda
@pytest.mark.slow
def test_mask_beyond_2_31_elements_on_the_gpu(gpu):
    """A dropout mask of 2^31 + 9 elements on the GPU (float16: 4 GiB in, 4 GiB out): 64-bit group indices
    in the kernel and the last partial group; every bit equal to the CPU's."""
    n = (1 << 31) + 9
    x = gpu.asarray(np.zeros(n, np.float16))
    _, mask = rdf.dropout(x, 0.1, seed=99, offset=3)
    del x
    got = gpu.to_numpy(mask.bits)
    assert got.size == (n + 7) // 8
    assert same_bits(got, rdf.dropout_mask(n, 0.1, seed=99, offset=3).bits)


@pytest.mark.cuda
def test_non_default_stream(torch_cuda):
    torch = torch_cuda
    x = torch.randn(1 << 20, device="cuda")
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        y, mask = rdf.dropout(x, 0.5, seed=5)
    torch.cuda.current_stream().wait_stream(stream)
    yc, _ = rdf.dropout(x.cpu().numpy(), 0.5, seed=5)
    assert same_bits(y.cpu().numpy(), yc)


@pytest.mark.cuda
def test_out_is_the_given_tensor(torch_cuda):
    torch = torch_cuda
    base = torch.randn(100003 + 3, device="cuda")
    x, out = base[3:], torch.empty(100003 + 3, device="cuda")[3:]
    y, _ = rdf.dropout(x, 0.25, seed=99, offset=11, out=out)
    assert y.data_ptr() == out.data_ptr()
    y, _ = rdf.dropout(x, 0.5, seed=3, out=x)
    assert y.data_ptr() == x.data_ptr()


@pytest.mark.cuda
def test_backend_info_lists_devices(torch_cuda):
    info = rdf.backend_info()
    assert info["cuda_compiled"] is True
    assert len(info["cuda_devices"]) == torch_cuda.cuda.device_count()
