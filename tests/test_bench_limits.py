"""The benchmark's limit instruments (regdrop_fast.bench.limits, csrc/cpu/limit_*): a copy and an in-place
read-modify-write over bytes on the kernels' thread pool, and the mask-only ceiling. They must do exactly
what they claim on odd sizes, misaligned views, every SIMD path and thread count, or every "x limit" in
the benchmark would be against the wrong figure.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import num_threads

import regdrop_fast as rdf
from regdrop_fast.bench import limits

ROOT = Path(__file__).resolve().parents[1]
# Odd sizes around the vector widths (16/32/64 bytes, 4 vectors per step) and a few tasks' worth.
SIZES = (0, 1, 15, 63, 64, 65, 255, 256, 257, 4099, 278011)


def _bytes(n: int, seed: int, offset: int = 0) -> np.ndarray:
    """n random bytes starting `offset` bytes into a fresh buffer (a misaligned view when offset > 0)."""
    buf = np.random.default_rng(seed).integers(0, 256, n + offset + 8, dtype=np.uint8)
    return buf[offset:offset + n]


def test_task_sizes_match_the_drivers():
    isa = (ROOT / "csrc/cpu/isa.h").read_text()
    penalty = (ROOT / "csrc/cpu/penalty_driver.h").read_text()
    assert re.search(r"kDropoutTaskElems = int64_t\{1\} << (\d+);", isa).group(1) == "16"
    assert re.search(r"kPenaltyTaskElems = int64_t\{1\} << (\d+);", penalty).group(1) == "16"
    assert limits.DROPOUT_TASK_ELEMS == limits.PENALTY_TASK_ELEMS == 1 << 16
    assert limits.tasks_for(0, 1 << 16) == 1 and limits.tasks_for((1 << 16) + 1, 1 << 16) == 2


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("offsets", [(0, 0), (1, 3), (7, 60)], ids=["aligned", "1-3", "7-60"])
def test_copy_and_rmw_on_every_path(n, offsets, each_simd):
    src, dst0 = _bytes(n, 1, offsets[0]), _bytes(n, 2, offsets[1])
    guard = dst0.base[offsets[1] + n:].copy()  # the bytes after dst must stay untouched
    for threads in (1, 2, 3):
        for tasks in (1, 2, 7):
            with num_threads(threads):
                dst = dst0.copy()
                limits.copy(src, dst, tasks)
                assert np.array_equal(dst, src), (threads, tasks)
                dst = dst0.base.copy()[offsets[1]:offsets[1] + n]
                limits.rmw(src, dst, tasks)
                assert np.array_equal(dst, dst0 ^ src), (threads, tasks)
                assert np.array_equal(dst.base[offsets[1] + n:], guard)


def test_copy_leaves_the_bytes_around_dst_alone():
    buf = np.full(1000, 0xEE, np.uint8)
    src = _bytes(777, 3)
    with num_threads(2):
        limits.copy(src, buf[5:782], tasks=5)
    assert np.array_equal(buf[5:782], src)
    assert (buf[:5] == 0xEE).all() and (buf[782:] == 0xEE).all()


def test_limits_refuse_bad_buffers():
    a, b = np.zeros(100, np.uint8), np.zeros(100, np.uint8)
    with pytest.raises(TypeError):
        limits.copy(a.astype(np.int8), b)
    with pytest.raises(TypeError):
        limits.copy(a, np.zeros(200, np.uint8)[::2])
    with pytest.raises(ValueError):
        limits.copy(a, b[:50])
    with pytest.raises(ValueError):
        limits.rmw(a[:60], a[40:])  # overlapping
    b.flags.writeable = False
    with pytest.raises(ValueError):
        limits.copy(a, b)
    with pytest.raises(ValueError):
        limits.copy(a, np.zeros(100, np.uint8), tasks=0)


@pytest.mark.parametrize("n", [1, 17, 4099, (1 << 16) * 3 + 5])
def test_mask_only_is_the_dropout_mask(n):
    bits = np.empty((n + 7) // 8, np.uint8)
    with num_threads(2):
        limits.mask_only(bits, n, 0.5, seed=11)
    assert np.array_equal(bits, rdf.dropout_mask(n, 0.5, seed=11).bits)
    with pytest.raises(ValueError):
        limits.mask_only(bits[1:], n, 0.5, seed=11)


def test_limit_kernels_are_private():
    assert not any("limit" in name for name in rdf.__all__)
    assert "bench" not in rdf.__all__
