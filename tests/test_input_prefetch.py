"""Software prefetch of the dropout and gaussian_dropout loops' input (csrc/cpu/input_prefetch.h): each tile
asks for the input prefetch_bytes() ahead of it. A prefetch has no visible effect (its speed is measured by
bench/prefetch_ab.py), so what can be tested is that the code around it is sound: every distance gives the
bits of no prefetch, for every dtype and SIMD level, forward (values and mask) and backward, with and
without a mask, p of 0 and 1 (no stream drawn), in place, and gaussian_dropout, at every alignment of the
input against the cache lines, over lengths that end inside and past the prefetch distance and a length of
two tasks (the prefetches stop short of a task's end), and on every thread count."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import (
    DTYPE_IDS,
    DTYPES,
    assert_same_bits,
    prefetched_inputs,
    run_each_simd,
    run_each_thread_count,
    values,
)

import regdrop_fast as rdf
from regdrop_fast import _native, reference

# Around the tile (256 elements), the default distance (2 KiB: 512 float32, 256 float64, 1024 bfloat16
# elements), and two tasks of 2^16 elements; DISTANCES: none, one line, the default, past the whole array.
LENGTHS = (1, 255, 256, 257, 700, 1_300, 2_900, 70_001)
DISTANCES = (0, 64, 2048, 1 << 20)


def test_default_distance_and_setting():
    core = _native.core
    assert core.prefetch_bytes() == 2048
    with prefetched_inputs(4096):
        assert core.prefetch_bytes() == 4096
        core.set_prefetch_bytes(-5)  # negative counts as 0
        assert core.prefetch_bytes() == 0
    assert core.prefetch_bytes() == 2048


def shifted(a: np.ndarray, shift: int) -> np.ndarray:
    """A copy of a that starts `shift` elements past a 64-byte boundary."""
    itemsize = a.dtype.itemsize
    raw = np.zeros(a.nbytes + 128, np.uint8)
    start = (-raw.__array_interface__["data"][0]) % 64 + shift * itemsize
    out = raw[start: start + a.nbytes].view(a.dtype)
    out[...] = a
    return out


def dropout_results(x: np.ndarray, g: np.ndarray):
    """Forward with bits and with a seed, backward from the bits and from the seed, p = 0 and 1, in place
    (on a copy of x), gaussian_dropout."""
    y_bits, mask = rdf.dropout(x, 0.3, seed=17, offset=5)
    y_seed, seed_mask = rdf.dropout(x, 0.3, seed=17, offset=5, store="seed")
    in_place = x.copy()
    rdf.dropout(in_place, 0.3, seed=17, offset=5, out=in_place)
    return (y_bits, mask.bits, y_seed, rdf.dropout_backward(g, mask), rdf.dropout_backward(g, seed_mask),
            rdf.dropout(x, 0.0, seed=17)[0], rdf.dropout(x, 1.0, seed=17)[0], in_place,
            rdf.gaussian_dropout(x, 0.3, seed=17, offset=5)[0])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_every_distance_gives_the_bits_of_none(dtype, each_simd):
    rng = np.random.default_rng(8)
    for n in LENGTHS:
        x0 = values(rng, n, dtype, specials=True)
        g0 = values(rng, n, dtype)
        with prefetched_inputs(0):
            expected = dropout_results(x0, g0)
        y_ref, mask_ref = reference.dropout(x0, 0.3, seed=17, offset=5)
        assert_same_bits(expected[0], y_ref, f"n={n} without prefetches against the reference")
        assert_same_bits(expected[1], mask_ref.bits, f"n={n} mask against the reference")
        for distance in DISTANCES[1:]:
            for shift in (0, 1, 3):
                x, g = shifted(x0, shift), shifted(g0, shift)
                with prefetched_inputs(distance):
                    got = dropout_results(x, g)
                for i, (a, b) in enumerate(zip(got, expected)):
                    assert_same_bits(a, b, f"n={n} distance={distance} shift={shift} result {i}")


def test_every_simd_level_and_thread_count_agree():
    rng = np.random.default_rng(9)
    x = values(rng, 70_001, np.dtype(np.float32))
    g = values(rng, 70_001, np.dtype(np.float32))
    with prefetched_inputs(0):
        expected = dropout_results(x, g)
    with prefetched_inputs(2048):
        for level, got in run_each_simd(lambda: dropout_results(x, g)).items():
            for i, (a, b) in enumerate(zip(got, expected)):
                assert_same_bits(a, b, f"simd={level} result {i}")
        for count, got in run_each_thread_count(lambda: dropout_results(x, g)).items():
            for i, (a, b) in enumerate(zip(got, expected)):
                assert_same_bits(a, b, f"threads={count} result {i}")
