"""Software prefetch of the dropout and gaussian_dropout loops' input (csrc/cpu/input_prefetch.h): each tile
asks for the input prefetch_bytes() ahead of it. A prefetch has no visible effect (its speed is measured by
bench/prefetch_ab.py), so what can be tested is that the loops' machine code has it (the last test) and
that the code around it is sound: every distance gives the bits of no prefetch, for every dtype and SIMD
level, forward (values and mask) and backward, with and without a mask, p of 0 and 1 (no stream drawn), in
place, and gaussian_dropout, at every alignment of the input against the cache lines, over lengths that end
inside and past the prefetch distance and a length of two tasks (the prefetches stop short of a task's
end), and on every thread count."""

from __future__ import annotations

import platform
import shutil
import subprocess

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
from test_build_warnings import ROOT, isa_builds

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


@pytest.mark.skipif(shutil.which("g++") is None or platform.machine() not in ("x86_64", "AMD64"),
                    reason="needs g++ on x86-64")
@pytest.mark.parametrize("source", ["csrc/cpu/dropout_loop.cpp", "csrc/cpu/gaussian_dropout_loop.cpp"])
def test_the_loops_compile_to_prefetch_instructions(source, tmp_path):
    """The values cannot show a prefetch, the machine code can: each loop, compiled as CMakeLists.txt
    compiles its AVX2 copy (-O3), must contain prefetcht0. A helper that wrapped the prefetch once compiled
    to none at all in dropout_loop.cpp (GCC 12) while every test above still passed."""
    name, vec_bytes, flags = next(b for b in isa_builds() if b[0] == "avx2")
    cmd = ["g++", "-std=c++17", "-S", "-O3", "-ffp-contract=off", f"-DRDF_ISA={name}",
           f"-DRDF_VEC_BYTES={vec_bytes}", *flags, str(ROOT / source), "-o", str(tmp_path / "out.s")]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"{' '.join(cmd)}\n{run.stderr[-4000:]}"
    assert "prefetcht0" in (tmp_path / "out.s").read_text(), f"{source}: no prefetch instruction"
