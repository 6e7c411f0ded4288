"""Dropout on dense arrays in any axis order (channels_last, permuted axes): the result keeps the input's
layout and every decision belongs to the element's logical (C-order) index, so an array gets exactly the
values and mask of its C-contiguous twin (docs/rng.md). Compared bit for bit with the NumPy reference on
the twin.

The CPU iteration (csrc/cpu/dropout_strided.cpp) tiles the plane of the layout's logical innermost axis
("inner") and its memory-contiguous axis ("minor"); the shapes below straddle its boundaries: minor
lengths around the lane counts (4, 8, 16) and the 128-element tile limit, inner lengths around the
32..512-element rows, inner == minor runs around 4096 elements, and calls of several 2^16-element tasks.
"""

from __future__ import annotations

import itertools
import tracemalloc

import numpy as np
import pytest
from conftest import (
    BFLOAT16,
    DTYPE_IDS,
    DTYPES,
    U64_MAX,
    assert_same_bits,
    assert_same_mask,
    num_threads,
    random_values,
    run_each_simd,
    run_each_thread_count,
    snapshot,
    assert_unchanged,
)

import regdrop_fast as rdf
from regdrop_fast import reference

dtype_param = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)


def permuted(rng, storage_shape, perm, dtype):
    """A dense array whose memory holds axes in the order of storage_shape and whose logical axis k is
    storage axis perm[k] (so its logical shape is storage_shape permuted by perm)."""
    base = random_values(rng, storage_shape, dtype)
    return base.transpose(perm)


def same_layout(a, b) -> bool:
    """Whether a and b put every element at the same offset from their first (size-1 axes' strides aside)."""
    return a.shape == b.shape and all(d == 1 or s == t for d, s, t in zip(a.shape, a.strides, b.strides))


def like_layout(a, values):
    """A new array with a's strides holding `values` (a's logical shape)."""
    out = np.lib.stride_tricks.as_strided(np.empty(a.size, a.dtype), a.shape, a.strides)
    out[...] = values
    return out


# (storage shape, axis order): channels_last NCHW and NCDHW, every permutation of a small 4-d and 3-d
# shape, odd sizes around the tile boundaries, size-1 axes (merged away) and axes that merge.
CASES = (
    [((2, 5, 7, 3), (0, 3, 1, 2)),  # channels_last, 3 channels: minor shorter than a lane vector
     ((2, 4, 5, 6, 9), (0, 4, 1, 2, 3)),  # channels_last_3d
     ((1, 9, 11, 64), (0, 3, 1, 2)),  # 64 channels: the tile is one contiguous stretch
     ((2, 3, 5, 129), (0, 3, 1, 2)),  # 129 channels: two minor tiles, the second of 1
     ((33, 100), (1, 0)),  # a transpose: minor 100, inner 33
     ((700, 17), (1, 0)),  # inner 700: rows past the 512 limit
     ((5, 4099), (1, 0)),
     ((3, 4, 4097), (1, 0, 2)),  # inner == minor: runs of 4096 and 1
     ((2, 1, 3, 1, 5), (4, 3, 2, 1, 0)),
     ((6, 10, 7), (2, 0, 1)),
     # The forward writes its own mask bits (rows of whole mask bytes: inner length and tile rows multiples
     # of 8, 16 channels or more): rows of 40 (a 32-bit word and one byte), 64 with 128 channels (two tiles
     # an image), a transpose; and 48 channels, tile rows of 85: the mask pass first.
     ((2, 5, 8, 16), (0, 3, 1, 2)),
     ((3, 8, 8, 128), (0, 3, 1, 2)),
     ((64, 24), (1, 0)),
     ((1, 4, 24, 48), (0, 3, 1, 2))]
    + [((2, 3, 4, 5), perm) for perm in itertools.permutations(range(4))]
    + [((3, 17, 9), perm) for perm in itertools.permutations(range(3))]
)
CASE_IDS = [f"{'x'.join(map(str, s))}-{''.join(map(str, p))}" for s, p in CASES]

OFFSETS = [0, 3, 1000003, U64_MAX - 5]


def check_twin(x, p, seed, offset, store):
    """dropout and dropout_backward of x against the reference on x's C-contiguous twin, bit for bit; y and
    dx in x's layout."""
    twin = np.ascontiguousarray(x)
    y, mask = rdf.dropout(x, p, seed=seed, offset=offset, store=store)
    y_ref, mask_ref = reference.dropout(twin, p, seed=seed, offset=offset, store=store)
    assert same_layout(y, x)
    assert_same_bits(y, y_ref, "forward")
    assert_same_mask(mask, mask_ref)
    grad = like_layout(x, np.flip(twin))  # other values, the same layout
    dx = rdf.dropout_backward(grad, mask)
    assert same_layout(dx, x)
    assert_same_bits(dx, reference.dropout_backward(np.ascontiguousarray(grad), mask_ref), "backward")


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@dtype_param
def test_layouts_match_the_contiguous_twin(case, dtype, rng):
    storage, perm = case
    x = permuted(rng, storage, perm, dtype)
    for store in ("bits", "seed"):
        for offset in OFFSETS:
            check_twin(x, 0.3, 17, offset, store)


@pytest.mark.parametrize("p", [0.0, 1.0, 0.9999999999])
def test_layouts_with_every_element_kept_or_dropped(p, rng):
    """p = 0 keeps everything, p = 1 drops everything (the kernels take other paths there)."""
    x = permuted(rng, (2, 5, 7, 3), (0, 3, 1, 2), np.float32)
    for store in ("bits", "seed"):
        check_twin(x, p, 5, 7, store)


# Several parallel tasks (2^16 elements each) and every SIMD level.
LARGE = [((4, 64, 33, 32), (0, 3, 1, 2)), ((300, 700), (1, 0)), ((3, 40, 2000), (1, 0, 2)),
         ((4, 16, 40, 32), (0, 3, 1, 2))]  # a task ends inside an image: its mask written by two tasks


@pytest.mark.parametrize("case", LARGE, ids=[f"{'x'.join(map(str, s))}" for s, _ in LARGE])
def test_large_layouts_on_every_thread_count_and_simd_level(case, rng):
    storage, perm = case
    x = permuted(rng, storage, perm, np.float32)
    twin = np.ascontiguousarray(x)
    y_ref, mask_ref = reference.dropout(twin, 0.4, seed=9, offset=5)
    dx_ref = reference.dropout_backward(twin, mask_ref)

    def run():
        y, mask = rdf.dropout(x, 0.4, seed=9, offset=5)
        _, seed_mask = rdf.dropout(x, 0.4, seed=9, offset=5, store="seed")
        return y, mask, rdf.dropout_backward(x, mask), rdf.dropout_backward(x, seed_mask)

    results = list(run_each_thread_count(run, counts=(1, 2)).values())
    results += list(run_each_simd(run).values())
    for y, mask, dx, dx_seed in results:
        assert same_layout(y, x) and same_layout(dx, x)
        assert_same_bits(y, y_ref)
        assert_same_mask(mask, mask_ref)
        assert_same_bits(dx, dx_ref)
        assert_same_bits(dx_seed, dx_ref)


@pytest.mark.parametrize("case", CASES[:8], ids=CASE_IDS[:8])
def test_in_place_on_a_permuted_array(case, rng):
    storage, perm = case
    x = permuted(rng, storage, perm, np.float32)
    y_ref, mask_ref = reference.dropout(np.ascontiguousarray(x), 0.5, seed=3, offset=2)
    strides = x.strides
    y, mask = rdf.dropout(x, 0.5, seed=3, offset=2, out=x)
    assert y is x and x.strides == strides
    assert_same_bits(x, y_ref)
    assert_same_mask(mask, mask_ref)
    dx = rdf.dropout_backward(x, mask, out=x)
    assert dx is x
    assert_same_bits(x, reference.dropout_backward(y_ref, mask_ref))


def test_out_in_another_dense_layout(rng):
    """out may be any dense array: y is written in out's layout, x is read in its own."""
    x = permuted(rng, (2, 5, 7, 3), (0, 3, 1, 2), np.float32)
    y_ref, mask_ref = reference.dropout(np.ascontiguousarray(x), 0.5, seed=4)
    for out in (np.empty(x.shape, np.float32), np.empty(x.shape, np.float32, order="F"),
                np.empty((3, 7, 2, 5), np.float32).transpose(2, 0, 3, 1)):
        strides = out.strides
        y, _ = rdf.dropout(x, 0.5, seed=4, out=out)
        assert y is out and out.strides == strides
        assert_same_bits(out, y_ref)
        dx = rdf.dropout_backward(x, mask_ref, out=np.empty_like(out))
        assert_same_bits(dx, reference.dropout_backward(np.ascontiguousarray(x), mask_ref))


def test_non_dense_input_gets_a_dense_result_in_its_axis_order(rng):
    """A view with gaps: y is dense in the view's axis order (np.empty_like, as torch's empty_like)."""
    x = permuted(rng, (2, 5, 8, 3), (0, 3, 1, 2), np.float32)[..., ::2]
    y, mask = rdf.dropout(x, 0.5, seed=4)
    assert y.strides == np.empty_like(x).strides and not y.flags.c_contiguous
    y_ref, mask_ref = reference.dropout(np.ascontiguousarray(x), 0.5, seed=4)
    assert_same_bits(y, y_ref)
    assert_same_mask(mask, mask_ref)


def test_a_dense_input_is_not_copied(rng):
    """A channels_last array is read where it is: the call allocates y and the mask bits, nothing more."""
    x = permuted(rng, (4, 32, 32, 64), (0, 3, 1, 2), np.float32)
    before = snapshot(x)
    rdf.dropout(x, 0.5, seed=1)  # warm-up (first-call allocations)
    tracemalloc.start()
    try:
        y, mask = rdf.dropout(x, 0.5, seed=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < y.nbytes + mask.bits.nbytes + (1 << 16), (peak, y.nbytes)
    assert_unchanged([x], before)


@pytest.mark.parametrize("threads", [1, 2])
def test_thread_counts_on_small_layouts(threads, rng):
    with num_threads(threads):
        for storage, perm in CASES[:10]:
            check_twin(permuted(rng, storage, perm, np.float64), 0.6, 123, 1, "bits")


# ----------------------------------------------------------------------------------------------------------
# CUDA kernels (csrc/cuda/dropout_kernels.cu, dropout_strided_kernel): the same contract on the device
# backends; the emulation runs a fiber per CUDA thread, so it takes the small cases.


def device_permuted(backend, host_storage, perm):
    """The device array of host_storage with its axes permuted (a dense, permuted view)."""
    a = backend.asarray(host_storage)
    if backend.name == "cuda-emulated":
        import fake_cupy

        return fake_cupy.ndarray(a.host.transpose(perm), a.device.id)
    return a.permute(perm) if backend.library == "torch" else a.transpose(perm)


def element_strides(a):
    if hasattr(a, "host"):  # fake CuPy
        return tuple(s // a.host.itemsize for s in a.host.strides)
    if hasattr(a, "stride"):
        return tuple(a.stride())
    return tuple(s // a.dtype.itemsize for s in a.strides)


DEVICE_CASES = CASES[:4] + [((33, 100), (1, 0)), ((3, 4, 37), (1, 0, 2)), ((2, 3, 4, 5), (3, 1, 0, 2))]


@pytest.mark.parametrize("case", DEVICE_CASES, ids=[f"{'x'.join(map(str, s))}-{''.join(map(str, p))}"
                                                    for s, p in DEVICE_CASES])
def test_device_layouts_match_the_contiguous_twin(device_backend, case, rng):
    backend = device_backend
    storage, perm = case
    dtype = np.dtype(np.float32)
    host_storage = random_values(rng, storage, dtype)
    twin = np.ascontiguousarray(host_storage.transpose(perm))
    x = device_permuted(backend, host_storage, perm)
    for store in ("bits", "seed"):
        for offset in (0, 3):
            y, mask = rdf.dropout(x, 0.3, seed=17, offset=offset, store=store)
            y_ref, mask_ref = reference.dropout(twin, 0.3, seed=17, offset=offset, store=store)
            assert element_strides(y) == element_strides(x)
            assert_same_bits(np.ascontiguousarray(backend.to_numpy(y)), y_ref, "forward")
            if store == "bits":
                assert_same_bits(backend.to_numpy(mask.bits), mask_ref.bits, "bits")
            dx = rdf.dropout_backward(x, mask)
            assert element_strides(dx) == element_strides(x)
            assert_same_bits(np.ascontiguousarray(backend.to_numpy(dx)),
                             reference.dropout_backward(twin, mask_ref), "backward")
    # in place keeps the array and its layout
    y_ref, _ = reference.dropout(twin, 0.5, seed=2)
    y, _ = rdf.dropout(x, 0.5, seed=2, out=x)
    assert y is x
    assert_same_bits(np.ascontiguousarray(backend.to_numpy(x)), y_ref, "in place")


# More than 128 channels: two minor tiles, the last one narrower. The forward writes its own mask bits only
# when that last tile is 16 channels or more (144); with 130 or 136 a last tile of 2 or 8 takes the path of
# one mask per element (on AVX-512 also 136's), so the bits come from the mask pass first. A review found
# the bits of such a tile never written (the mask left as allocated, the gradient wrong).
MINOR_TILES = [((16, 130), (1, 0)), ((2, 8, 8, 130), (0, 3, 1, 2)), ((2, 8, 8, 136), (0, 3, 1, 2)),
               ((2, 8, 8, 144), (0, 3, 1, 2))]


@pytest.mark.parametrize("case", MINOR_TILES, ids=[f"{'x'.join(map(str, s))}" for s, _ in MINOR_TILES])
def test_a_last_minor_tile_narrower_than_the_others_on_every_simd_level(case, rng):
    x = permuted(rng, *case, np.float32)

    def run():
        for p in (0.3, 0.0, 1.0):
            for store in ("bits", "seed"):
                check_twin(x, p, 17, 5, store)
        return True

    assert all(run_each_simd(run).values())


@pytest.mark.parametrize("dtype", [np.dtype(np.float32), np.dtype(np.float64), BFLOAT16], ids=str)
def test_small_layouts_on_every_simd_level(dtype, rng):
    """The lane-vector paths of every ISA (vector rows, the shifted decision words, the scalar tails)."""
    arrays = [permuted(rng, storage, perm, dtype) for storage, perm in CASES[:14]]

    def run():
        for x in arrays:
            for store in ("bits", "seed"):
                check_twin(x, 0.45, 77, 6, store)
        return True

    assert all(run_each_simd(run).values())


def test_layout_strides_is_the_dense_layout_test():
    """_arrays.layout_strides (one sort, one pass) against the definition it stands for, by enumeration:
    non-negative strides whose element offsets are exactly 0 .. size - 1 (each once), on random small
    shapes and strides, dense and not (permuted, gapped, overlapping, size-0 and size-1 axes)."""
    from regdrop_fast import _arrays

    def dense(shape, strides):
        if any(s < 0 for s in strides):
            return False
        offsets = sorted(sum(i * s for i, s in zip(index, strides)) for index in itertools.product(*map(range, shape)))
        return offsets == list(range(len(offsets)))

    rng = np.random.default_rng(11)
    found = 0
    for _ in range(4000):
        ndim = int(rng.integers(0, 5))
        shape = tuple(int(d) for d in rng.integers(0 if rng.random() < 0.2 else 1, 5, ndim))
        if rng.random() < 0.6:  # a permuted dense layout, sometimes spoiled by one stride
            strides, step = [0] * ndim, 1
            for axis in rng.permutation(ndim):
                strides[axis] = step
                step *= max(shape[axis], 1)
            if ndim and rng.random() < 0.3:
                strides[int(rng.integers(ndim))] += int(rng.choice([-1, 1, 2, -3]))
        else:
            strides = [int(s) for s in rng.integers(-2, 20, ndim)]
        expected = tuple(strides) if dense(shape, strides) else None
        assert _arrays.layout_strides(shape, strides) == expected, (shape, strides)
        found += expected is not None
    assert found > 1000  # the dense side is exercised, not only the refusals
