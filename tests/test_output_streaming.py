"""Outputs written with non-temporal stores (csrc/cpu/output_streaming.h, vec.h's LineStream): a call whose
output is at least stream_output_bytes() bytes writes it in whole cache lines that bypass the caches. The
bytes written must be exactly those of plain stores, for every dtype, SIMD level and thread count, for an
output at any alignment (each task's first and last lines are shared with its neighbours: only the task's
own bytes of them may be written), and no byte outside the output may change. The threshold is forced to 0
here so that small arrays take the streaming path; the default is checked by value."""

from __future__ import annotations

import mmap
import sys

import numpy as np
import pytest
from conftest import (
    DTYPE_IDS,
    DTYPES,
    assert_same_bits,
    run_each_simd,
    run_each_thread_count,
    streamed_outputs,
    values,
)

import regdrop_fast as rdf
from regdrop_fast import _native, reference
from regdrop_fast.bench import limits

NEVER = (1 << 63) - 1
# Every test here compares streamed outputs with plain ones; a CPU without AVX2 has no non-temporal stores.
needs_streaming = pytest.mark.skipif(rdf.backend_info()["simd_best"] == "generic",
                                     reason="no SIMD level with non-temporal stores here")
# Lengths around the tile (256 elements), a task (kDropoutTaskElems = 2^16: 70,001 is two tasks and their
# shared lines), and odd ones; offsets put the output at every 64-byte alignment its element size allows.
LENGTHS = (1, 15, 16, 17, 255, 256, 257, 1000, 70_001)
dtype_param = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)


def guarded_out(n: int, dtype, shift: int):
    """An output of n elements starting `shift` elements into a buffer of sentinels, and the buffer."""
    itemsize = np.dtype(dtype).itemsize
    pad = 64 // itemsize
    buf = np.full((n + 2 * pad + shift) * itemsize, 0xA5, np.uint8).view(dtype)
    out = buf[pad + shift: pad + shift + n]
    if _native.core.stream_output_bytes() == 0:  # forced: the rule must stream this output (written once)
        assert _native.core.streams_output(out, False)
    return out, buf


def streamed_out(n: int, dtype, shift: int):
    """n elements, written once (new pages are not streamed), `shift` elements off the 64-byte lines."""
    out = np.full(n + shift, 0, dtype)[shift:]
    assert _native.core.streams_output(out, False)
    return out


def check_sentinels(buf, out, what):
    """Every byte of buf outside out still holds the sentinel 0xA5."""
    raw = buf.view(np.uint8)
    start = out.__array_interface__["data"][0] - buf.__array_interface__["data"][0]
    outside = np.concatenate([raw[:start], raw[start + out.nbytes:]])
    assert (outside == 0xA5).all(), f"{what}: a byte outside the output was written"


def forward_into(x, p, seed, shift, store):
    out, buf = guarded_out(x.size, x.dtype, shift)
    y, mask = rdf.dropout(x, p, seed=seed, out=out, store=store)
    assert y is out or np.shares_memory(y, out)
    check_sentinels(buf, out, "dropout forward")
    return out.copy(), mask


def backward_into(g, mask, shift):
    out, buf = guarded_out(g.size, g.dtype, shift)
    rdf.dropout_backward(g, mask, out=out)
    check_sentinels(buf, out, "dropout backward")
    return out.copy()


def test_default_threshold_is_32_mib():
    assert _native.core.stream_output_bytes() == 32 << 20


def test_which_outputs_stream_by_size_and_place():
    """At least the threshold's bytes (>=, in bytes written), never in place, never an empty output."""
    core = _native.core
    out = np.full(4096, 1.0, np.float32)
    assert not core.streams_output(out, False)  # 16 KiB, under the default 32 MiB
    for min_bytes, expected in ((out.nbytes, True), (out.nbytes + 1, False), (0, True), (NEVER, False)):
        with streamed_outputs(min_bytes):
            assert core.streams_output(out, False) == expected, min_bytes
            assert not core.streams_output(out, True)
    with streamed_outputs(0):
        assert not core.streams_output(out[:0], False)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="page residency is read with Linux's mincore")
def test_new_pages_are_not_streamed():
    """A new mapping of 64 MiB, untouched, is not streamed until it has been written.

    The pages come from an anonymous mmap of their own: np.empty may hand back memory the allocator kept
    from an earlier array (its pages resident), as it did once in a full-suite run.
    """
    core = _native.core
    mapping = mmap.mmap(-1, 64 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    fresh = np.frombuffer(mapping, np.float32)
    try:
        assert not core.streams_output(fresh, False)
        fresh[...] = 1.0
        assert core.streams_output(fresh, False)
    finally:
        del fresh
        mapping.close()


@needs_streaming
@dtype_param
@pytest.mark.parametrize("store", ["bits", "seed"])
def test_dropout_streamed_equals_plain_at_every_alignment(dtype, store):
    rng = np.random.default_rng(3)
    for n in LENGTHS:
        x = values(rng, n, dtype, specials=True)
        g = values(rng, n, dtype)
        plain_y, plain_mask = forward_into(x, 0.3, 11, 0, store)
        plain_dx = backward_into(g, plain_mask, 0)
        yr, _ = reference.dropout(x, 0.3, seed=11, store=store)
        assert_same_bits(plain_y, yr, f"plain forward n={n}")
        with streamed_outputs(0):
            for shift in range(64 // np.dtype(dtype).itemsize):
                y, mask = forward_into(x, 0.3, 11, shift, store)
                assert_same_bits(y, plain_y, f"streamed forward n={n} shift={shift}")
                if store == "bits":
                    assert_same_bits(mask.bits, plain_mask.bits, f"streamed mask n={n} shift={shift}")
                assert_same_bits(backward_into(g, mask, shift), plain_dx, f"streamed backward n={n} shift={shift}")


@dtype_param
def test_dropout_in_place_with_streaming_forced(dtype):
    """An output over its own input is never streamed (output_streaming.h: the line is already in the
    cache; test_which_outputs_stream_by_size_and_place checks the rule); in place, at any alignment, with
    the threshold at 0, the bits are those of a separate output."""
    rng = np.random.default_rng(4)
    for n in (17, 257, 70_001):
        x = values(rng, n, dtype, specials=True)
        expected, mask = rdf.dropout(x, 0.5, seed=5)
        with streamed_outputs(0):
            for shift in (0, 1, 3):
                buf = np.concatenate([np.zeros(shift, dtype), x, np.zeros(1, dtype)])
                view = buf[shift: shift + n]
                y, m = rdf.dropout(view, 0.5, seed=5, out=view)
                assert_same_bits(view, expected, f"in place n={n} shift={shift}")
                assert_same_bits(m.bits, mask.bits)
                g = x.copy()
                rdf.dropout_backward(g, m, out=g)
                assert_same_bits(g, rdf.dropout_backward(x, mask), f"backward in place n={n}")


@needs_streaming
@dtype_param
def test_dropout_streamed_on_every_simd_level_and_thread_count(dtype):
    """Tasks of 2^16 elements (two here) on 1, 2 and 3 threads, on every SIMD level (the generic build has no
    non-temporal stores and writes directly): the same bits as plain stores."""
    rng = np.random.default_rng(5)
    n = 3 * (1 << 15) + 77
    x = values(rng, n, dtype, specials=True)
    expected, mask = rdf.dropout(x, 0.4, seed=9)
    expected_dx = rdf.dropout_backward(x, mask)

    def call():
        out = streamed_out(n, dtype, 3)
        y, m = rdf.dropout(x, 0.4, seed=9, out=out)
        return y.copy(), m.bits.copy(), rdf.dropout_backward(x, m, out=streamed_out(n, dtype, 1)).copy()

    with streamed_outputs(0):
        for results in (run_each_simd(call), run_each_thread_count(call)):
            for key, (y, bits, dx) in results.items():
                assert_same_bits(y, expected, f"forward {key}")
                assert_same_bits(bits, mask.bits, f"mask {key}")
                assert_same_bits(dx, expected_dx, f"backward {key}")


@needs_streaming
def test_limit_copy_streamed_copies_exactly_and_nothing_else():
    """The benchmark's ruler streams by the same rule: its copy stays exact at every alignment."""
    rng = np.random.default_rng(6)
    for n in (1, 63, 64, 65, 1000, 200_003):
        src = rng.integers(0, 256, n, dtype=np.uint8)
        for shift in (0, 1, 17, 63):
            buf = np.full(n + 128 + shift, 0xA5, np.uint8)
            dst = buf[64 + shift: 64 + shift + n]

            def copy():
                dst[:] = 0
                limits.copy(src, dst, 4)
                check_sentinels(buf, dst, "limit copy")
                return dst.copy()

            with streamed_outputs(0):
                for results in (run_each_simd(copy), run_each_thread_count(copy)):
                    for key, got in results.items():
                        assert_same_bits(got, src, f"limit copy n={n} shift={shift} {key}")


def written(call, shape, dtype, shift, what):
    """call(out) with out a guarded C-contiguous array of `shape` at element shift `shift`: (a copy of out,
    what call returned), after checking that nothing outside out was written."""
    flat, buf = guarded_out(int(np.prod(shape)), dtype, shift)
    out = flat.reshape(shape)
    extra = call(out)
    check_sentinels(buf, flat, what)
    return out.copy(), extra


def shifts(dtype):
    return range(64 // np.dtype(dtype).itemsize)


@needs_streaming
@dtype_param
@pytest.mark.parametrize("store", ["bits", "seed"])
def test_bias_dropout_add_streamed_equals_plain(dtype, store):
    """The epilogue's forward (tiles of 256) and backward (each row in pieces of 256, streamed row by row,
    dbias summed from the values stored) write the bits of plain stores; dbias is unchanged."""
    rng = np.random.default_rng(8)
    # (70, 1000): two forward tasks, two backward row blocks; (300, 3): rows shorter than a line, each row
    # its own streamed range; (130, 300): rows not a whole number of tiles or lines.
    for shape in ((1, 1), (3, 17), (5, 256), (7, 300), (70, 1000), (130, 300), (300, 3)):
        x, r, g = (values(rng, int(np.prod(shape)), dtype, specials=True).reshape(shape) for _ in range(3))
        b = values(rng, shape[-1], dtype)
        fwd = lambda out: rdf.bias_dropout_add(x, b, r, 0.3, seed=2, out=out, store=store)[1]  # noqa: E731
        y0, mask0 = written(fwd, shape, dtype, 0, "epilogue forward")
        dx0, (_, db0, _) = written(lambda out: rdf.bias_dropout_add_backward(g, mask0, out=out), shape, dtype, 0,
                                   "epilogue backward")
        yr, _ = reference.bias_dropout_add(x, b, r, 0.3, seed=2, store=store)
        assert_same_bits(y0, yr, f"plain forward {shape}")
        with streamed_outputs(0):
            for shift in shifts(dtype):
                y, mask = written(fwd, shape, dtype, shift, "streamed epilogue forward")
                assert_same_bits(y, y0, f"streamed forward {shape} shift={shift}")
                if store == "bits":
                    assert_same_bits(mask.bits, mask0.bits)
                dx, (_, db, _) = written(lambda out: rdf.bias_dropout_add_backward(g, mask, out=out), shape, dtype,
                                         shift, "streamed epilogue backward")
                assert_same_bits(dx, dx0, f"streamed backward {shape} shift={shift}")
                assert_same_bits(db, db0, f"streamed dbias {shape} shift={shift}")


@needs_streaming
@dtype_param
def test_gaussian_dropout_streamed_equals_plain(dtype):
    rng = np.random.default_rng(9)
    for n in LENGTHS:
        x = values(rng, n, dtype, specials=True)
        call = lambda out: rdf.gaussian_dropout(x, 0.3, seed=4, out=out)  # noqa: E731
        y0, _ = written(call, (n,), dtype, 0, "gaussian")
        assert_same_bits(y0, reference.gaussian_dropout(x, 0.3, seed=4)[0], f"plain gaussian n={n}")
        with streamed_outputs(0):
            for shift in shifts(dtype):
                y, _ = written(call, (n,), dtype, shift, "streamed gaussian")
                assert_same_bits(y, y0, f"streamed gaussian n={n} shift={shift}")


@needs_streaming
@dtype_param
def test_epilogue_and_gaussian_streamed_on_every_simd_level_and_thread_count(dtype):
    rng = np.random.default_rng(10)
    shape = (70, 1000)  # two tasks both ways (forward: 2^16 elements each; backward: row blocks of 64)
    x, r, g = (values(rng, int(np.prod(shape)), dtype).reshape(shape) for _ in range(3))
    b = values(rng, shape[-1], dtype)
    y0, mask0 = rdf.bias_dropout_add(x, b, r, 0.4, seed=6)
    dx0, db0, _ = rdf.bias_dropout_add_backward(g, mask0)
    z0, _ = rdf.gaussian_dropout(x, 0.4, seed=6)

    def call():
        y, m = rdf.bias_dropout_add(x, b, r, 0.4, seed=6, out=streamed_out(y0.size, dtype, 1).reshape(shape))
        dx, db, _ = rdf.bias_dropout_add_backward(g, m, out=streamed_out(y0.size, dtype, 3).reshape(shape))
        z, _ = rdf.gaussian_dropout(x, 0.4, seed=6, out=streamed_out(y0.size, dtype, 1).reshape(shape))
        return y.copy(), dx.copy(), db.copy(), z.copy()

    with streamed_outputs(0):
        for results in (run_each_simd(call), run_each_thread_count(call)):
            for key, (y, dx, db, z) in results.items():
                assert_same_bits(y, y0, f"epilogue forward {key}")
                assert_same_bits(dx, dx0, f"epilogue backward {key}")
                assert_same_bits(db, db0, f"epilogue dbias {key}")
                assert_same_bits(z, z0, f"gaussian {key}")
