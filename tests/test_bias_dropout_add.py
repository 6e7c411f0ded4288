"""bias_dropout_add / dropout_add / bias_dropout_add_backward (issue 14): every backend against the CPU kernels
and the NumPy reference bit for bit, the unfused composition of our own ops, dropout's mask, the fixed-order
bias gradient on every thread count and SIMD level, in-place use, and concurrent and forked calls."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import (
    BFLOAT16,
    DTYPE_IDS,
    DTYPES,
    U64_MAX,
    assert_same_bits,
    per_backend,
    run_each_simd,
    run_each_thread_count,
    same_bits,
    values,
)

import regdrop_fast as rdf
from regdrop_fast import reference
from regdrop_fast.reference.bias_dropout_add import ROW_BLOCK

dtype_param = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)


def inputs(rng, shape, dtype, bias=True, specials=False):
    n = int(np.prod(shape))
    x = values(rng, n, dtype, specials=specials).reshape(shape)
    r = values(rng, n, dtype, specials=specials).reshape(shape)
    b = values(rng, shape[-1], dtype).reshape(shape[-1:]) if bias and shape else None
    return x, b, r


def check_against_cpu_and_reference(backend, x, b, r, p, seed, offset, store="bits"):
    """The call on `backend` equals the CPU kernels and the reference: y, mask, dx, dbias, dresidual."""
    dev = [None if a is None else backend.asarray(a) for a in (x, b, r)]
    y, mask = rdf.bias_dropout_add(*dev, p, seed=seed, offset=offset, store=store)
    yc, mc = rdf.bias_dropout_add(x, b, r, p, seed=seed, offset=offset, store=store)
    yr, mr = reference.bias_dropout_add(x, b, r, p, seed=seed, offset=offset, store=store)
    assert_same_bits(yc, yr, "cpu y vs reference")
    assert_same_bits(backend.to_numpy(y), yc, f"{backend.name} y vs cpu")
    assert (mask.bits is None) == (mc.bits is None) == (store == "seed")
    if store == "bits":
        assert_same_bits(mc.bits, mr.bits, "cpu mask vs reference")
        assert_same_bits(backend.to_numpy(mask.bits), mc.bits, f"{backend.name} mask vs cpu")
    for a, d in zip((x, b, r), dev):
        if a is not None:
            assert same_bits(backend.to_numpy(d), a), "an input was modified"
    if x.ndim == 0:
        return
    g = values(np.random.default_rng(x.size), x.size, x.dtype).reshape(x.shape)
    gd = backend.asarray(g)
    got = rdf.bias_dropout_add_backward(gd, mask)
    cpu = rdf.bias_dropout_add_backward(g, mc)
    ref = reference.bias_dropout_add_backward(g, mr)
    for k, name in enumerate(("dx", "dbias", "dresidual")):
        assert_same_bits(cpu[k], ref[k], f"cpu {name} vs reference")
        assert_same_bits(backend.to_numpy(got[k]), cpu[k], f"{backend.name} {name} vs cpu")
    assert got[2] is gd and cpu[2] is g, "dresidual is grad itself"
    assert_same_bits(cpu[0], rdf.dropout_backward(g, mc), "dx is dropout_backward")


SHAPES = [(1,), (7,), (5, 3), (33, 17), (64, 16), (65, 31), (3, 129, 40), (130, 1), (2, 5000), (0, 5), (5, 0),
          (300, 257)]
EMULATED_SHAPES = [(1,), (7,), (33, 17), (65, 31), (130, 1), (0, 5), (5, 0), (2, 700)]


@dtype_param
@pytest.mark.parametrize("backend,shape", per_backend(SHAPES, EMULATED_SHAPES), indirect=["backend"])
def test_matches_cpu_and_reference(backend, dtype, shape):
    backend.require(dtype)
    rng = np.random.default_rng(sum(shape) + 1)
    x, b, r = inputs(rng, shape, dtype, specials=backend.name != "cuda")  # a GPU's NaNs are canonical
    for p, offset in [(0.3, 0), (0.5, 3), (0.1, (1 << 64) - 7)] if backend.emulated else \
            [(0.0, 0), (0.1, 1), (0.5, 3), (0.9, (1 << 64) - 7), (1.0, 6)]:
        for store in ("bits", "seed"):
            check_against_cpu_and_reference(backend, x, b, r, p, 1234, offset, store)
        check_against_cpu_and_reference(backend, x, None, r, p, 99, offset)  # dropout_add's kernel


@dtype_param
def test_zero_d_and_no_bias(dtype, backend):
    backend.require(dtype)
    x, r = np.array(1.5, dtype), np.array(-2.0, dtype)
    check_against_cpu_and_reference(backend, x, None, r, 0.5, 3, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 1.0])
def test_equals_the_unfused_composition_of_our_ops(dtype, p, rng):
    """float32/float64: y is residual + dropout(x + bias) of NumPy and rdf.dropout bit for bit, with the same
    mask; specials included (a dropped NaN or inf contributes exactly 0)."""
    for shape in [(9,), (31, 77), (4, 8, 1000)]:
        x, b, r = inputs(rng, shape, dtype, specials=True)
        for seed, offset in [(5, 0), (U64_MAX, 11)]:
            y, mask = rdf.bias_dropout_add(x, b, r, p, seed=seed, offset=offset)
            with np.errstate(all="ignore"):
                z, dmask = rdf.dropout(x + b, p, seed=seed, offset=offset)
                assert_same_bits(y, r + z)
            assert_same_bits(mask.bits, dmask.bits, "the mask is dropout's")
            y2, mask2 = rdf.dropout_add(x, r, p, seed=seed, offset=offset)
            z2, dmask2 = rdf.dropout(x, p, seed=seed, offset=offset)
            with np.errstate(all="ignore"):
                assert_same_bits(y2, r + z2)
            assert_same_bits(mask2.bits, dmask2.bits)


def test_dropout_add_keeps_negative_zero():
    """No bias means no `+ 0`: x = -0.0 kept plus residual -0.0 stays -0.0, as residual + dropout(x)."""
    x = np.full(64, -0.0, np.float32)
    y, _ = rdf.dropout_add(x, x.copy(), 0.0, seed=1)
    assert np.all(np.signbit(y))


@pytest.mark.parametrize("dtype", [np.float16, BFLOAT16], ids=["float16", "bfloat16"])
def test_half_types_round_once(dtype, rng):
    """float16/bfloat16: x + bias, the dropout and the residual add in float32, only y rounded; the three-op
    composition (three roundings) differs on some elements, so the test tells them apart."""
    x, b, r = inputs(rng, (64, 96), dtype)
    y, mask = rdf.bias_dropout_add(x, b, r, 0.25, seed=8)
    f32 = np.float32
    z, _ = rdf.dropout(x.astype(f32) + b.astype(f32), 0.25, seed=8)
    assert_same_bits(y, (r.astype(f32) + z).astype(dtype))
    three, _ = rdf.dropout((x + b).astype(dtype), 0.25, seed=8)
    assert not same_bits(y, (r + three).astype(dtype)), "no element rounded differently: the test proves nothing"


@pytest.mark.parametrize("shape", [(1000, 300), (3, 70001), (5000, 3), (70, 8300)])
def test_dbias_same_bits_on_every_thread_count_and_simd_level(shape, rng):
    """The bias gradient's order is fixed by the shape (64-row blocks, then blocks in order): 1, 2 and 3
    threads and every SIMD path give the reference's bits; (3, 70001) and (70, 8300) split the columns over tasks."""
    g = values(rng, int(np.prod(shape)), np.float32).reshape(shape)
    _, mask = rdf.bias_dropout_add(g, np.zeros(shape[-1], np.float32), g, 0.3, seed=4, offset=9)
    expected = reference.bias_dropout_add_backward(g, mask)
    for _, got in run_each_thread_count(lambda: rdf.bias_dropout_add_backward(g, mask), counts=(1, 2, 3)).items():
        for k in range(2):
            assert_same_bits(got[k], expected[k])
    for _, got in run_each_simd(lambda: rdf.bias_dropout_add_backward(g, mask)).items():
        for k in range(2):
            assert_same_bits(got[k], expected[k])


@pytest.mark.parametrize("dtype", [np.float32, np.float16, BFLOAT16], ids=["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("store", ["bits", "seed"])
def test_forward_same_bits_on_every_thread_count_and_simd_level(rng, dtype, store):
    """float32 decides from dropout's mask bits, float16/bfloat16 from the tile's Philox words in the
    epilogue's own loop: both on every SIMD path and thread count, an offset inside a Philox block and rows
    that end mid-group, against the reference."""
    x, b, r = inputs(rng, (300, 1001), dtype)
    y0, m0 = reference.bias_dropout_add(x, b, r, 0.4, seed=2, offset=3, store=store)
    call = lambda: rdf.bias_dropout_add(x, b, r, 0.4, seed=2, offset=3, store=store)  # noqa: E731
    for results in (run_each_thread_count(call), run_each_simd(call)):
        for y, m in results.values():
            assert_same_bits(y, y0)
            if store == "bits":
                assert_same_bits(m.bits, m0.bits)
            else:
                assert m.bits is None


def test_dbias_with_cuda_kernels_equals_cpu_on_many_blocks(cuda_emulated):
    """More rows than one block and columns that are not a multiple of 16, on the emulated CUDA kernels."""
    import fake_cupy

    g = values(np.random.default_rng(3), 200 * 37, np.float32).reshape(200, 37)
    _, mask = rdf.bias_dropout_add(g, None, g, 0.5, seed=6)
    _, dmask = rdf.bias_dropout_add(fake_cupy.ndarray(g.copy()), None, fake_cupy.ndarray(g.copy()), 0.5, seed=6)
    for store_mask in (dmask, rdf.Mask._trusted(dmask.shape, 0.5, 6, 0, None)):
        got = rdf.bias_dropout_add_backward(fake_cupy.ndarray(g.copy()), store_mask)
        expected = rdf.bias_dropout_add_backward(g, mask)
        assert_same_bits(got[1].host, expected[1])
        assert_same_bits(got[0].host, expected[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16], ids=["float32", "float64", "float16"])
def test_dbias_is_the_column_sum(dtype, rng):
    """Statistics of the order: dbias is within a few ulps-per-row of the exact (float64) column sum of dx."""
    g = values(rng, 4096 * 64, dtype).reshape(4096, 64) / 8
    _, mask = rdf.dropout_add(g, g, 0.5, seed=1)
    dx, dbias, _ = rdf.bias_dropout_add_backward(g, mask)
    exact = dx.astype(np.float64).sum(axis=0)
    eps = np.finfo(np.float64 if dtype == np.float64 else np.float32).eps
    bound = 4096 * eps * np.abs(dx.astype(np.float64)).sum(axis=0) + np.abs(exact) * np.finfo(dtype).eps
    assert np.all(np.abs(dbias.astype(np.float64) - exact) <= bound)


def test_row_block_is_the_references():
    assert rdf._native.core.BIAS_ROW_BLOCK == ROW_BLOCK


def test_row_block_of_the_cuda_kernels(cuda_emulated):
    assert cuda_emulated.kernels.BIAS_ROW_BLOCK == ROW_BLOCK


def test_in_place_on_the_residual_and_on_x(backend):
    """out=residual (the residual stream updated in place) and out=x give the out-of-place result."""
    for dtype in backend.dtypes():
        x, b, r = inputs(np.random.default_rng(2), (70, 33), dtype)
        expected, mc = rdf.bias_dropout_add(x, b, r, 0.3, seed=5, offset=1)
        for target in ("residual", "x"):
            xd, bd, rd = (backend.asarray(a.copy()) for a in (x, b, r))  # the CPU backend's asarray is a itself
            out = rd if target == "residual" else xd
            y, mask = rdf.bias_dropout_add(xd, bd, rd, 0.3, seed=5, offset=1, out=out)
            assert y is out
            assert same_bits(backend.to_numpy(out), expected), target
            assert same_bits(backend.to_numpy(mask.bits), mc.bits)


def test_in_place_through_another_view_of_the_same_memory():
    """out= a different array object over exactly x's or residual's memory (a view, a reshape) is in place,
    as out=x itself; a view shifted by one element is a partial overlap (validation compares addresses only
    when the two share memory)."""
    x, b, r = inputs(np.random.default_rng(4), (9, 16), np.float32)
    expected, _ = rdf.bias_dropout_add(x, b, r, 0.4, seed=6)
    for target in ("residual", "x"):
        xs, rs = x.copy(), r.copy()
        base = rs if target == "residual" else xs
        for out in (base.view(), base.reshape(-1).reshape(base.shape)):
            base[...] = r if target == "residual" else x
            y, _ = rdf.bias_dropout_add(xs, b, rs, 0.4, seed=6, out=out)
            assert y is out and out is not base
            assert same_bits(base, expected), target
    buf = np.zeros(9 * 16 + 1, np.float32)
    buf[1:] = r.reshape(-1)
    with pytest.raises(ValueError, match="out: overlaps residual partially"):
        rdf.bias_dropout_add(x, b, buf[1:].reshape(9, 16), 0.4, seed=6, out=buf[:-1].reshape(9, 16))
    assert same_bits(buf[1:].reshape(9, 16), r)


def test_backward_out(backend):
    """out= receives dx (also when it overlaps the mask's bits, which are read first); dbias unchanged."""
    g = values(np.random.default_rng(5), 80 * 24, np.float32).reshape(80, 24)
    _, mc = rdf.bias_dropout_add(g, None, g, 0.5, seed=2)
    expected = rdf.bias_dropout_add_backward(g, mc)
    _, mask = rdf.bias_dropout_add(backend.asarray(g.copy()), None, backend.asarray(g.copy()), 0.5, seed=2)
    out = backend.asarray(np.zeros_like(g))
    gd = backend.asarray(g.copy())
    dx, dbias, dres = rdf.bias_dropout_add_backward(gd, mask, out=out)
    assert dx is out and dres is gd
    assert same_bits(backend.to_numpy(out), expected[0]) and same_bits(backend.to_numpy(dbias), expected[1])
    if backend.name == "cpu":  # out sharing memory with the bits (a buffer the caller reuses)
        buf = np.zeros(g.size + 64, np.float32)
        bits = buf.view(np.uint8)[: mc.bits.size]
        bits[:] = mc.bits
        got = rdf.bias_dropout_add_backward(g, rdf.Mask(g.shape, 0.5, 2, 0, bits), out=buf[:g.size].reshape(g.shape))
        assert same_bits(got[0], expected[0]) and same_bits(got[1], expected[1])


def test_out_in_another_dense_layout_is_rejected(backend):
    """The kernels write y and dx in C order: an out= that is dense but not C-contiguous (here the transpose
    of a C array; Fortran order and channels_last alike) is refused with nothing written, where it used to
    receive the values in the wrong places. In place on a transposed residual too."""
    rng = np.random.default_rng(9)
    xh, bh, rh = inputs(rng, (6, 5), np.float32)
    g = backend.asarray(values(rng, 30, np.float32).reshape(6, 5))
    _, mask = rdf.bias_dropout_add(backend.asarray(xh), backend.asarray(bh), backend.asarray(rh), 0.5, seed=3)
    calls = {
        "bias_dropout_add": lambda x, r, out: rdf.bias_dropout_add(x, backend.asarray(bh), r, 0.5, seed=3, out=out),
        "dropout_add": lambda x, r, out: rdf.dropout_add(x, r, 0.5, seed=3, out=out),
        "bias_dropout_add_backward": lambda x, r, out: rdf.bias_dropout_add_backward(g, mask, out=out),
    }
    for name, call in calls.items():
        x, r = backend.asarray(xh), backend.asarray(rh)
        out = backend.transpose(backend.asarray(np.full((5, 6), 7.0, np.float32)))
        with pytest.raises(ValueError, match="out: must be C-contiguous"):
            call(x, r, out)
        assert np.all(backend.to_numpy(out) == 7.0), name
        assert same_bits(backend.to_numpy(x), xh) and same_bits(backend.to_numpy(r), rh), name
    r_t = backend.transpose(backend.asarray(np.ascontiguousarray(rh.T)))  # rh's values, not C-contiguous
    with pytest.raises(ValueError, match="out: must be C-contiguous"):
        rdf.bias_dropout_add(backend.asarray(xh), backend.asarray(bh), r_t, 0.5, seed=3, out=r_t)
    assert same_bits(backend.to_numpy(r_t), rh)


def test_non_contiguous_inputs(backend):
    rng = np.random.default_rng(8)
    xh = values(rng, 40 * 25, np.float32).reshape(40, 25)
    rh = values(rng, 40 * 25, np.float32).reshape(40, 25)
    bh = values(rng, 80, np.float32)
    x, r = backend.transpose(backend.asarray(xh)), backend.transpose(backend.asarray(rh))
    b = backend.asarray(bh)[::2]
    y, m = rdf.bias_dropout_add(x, b, r, 0.5, seed=3)
    yc, mc = rdf.bias_dropout_add(xh.T, bh[::2], rh.T, 0.5, seed=3)
    assert same_bits(backend.to_numpy(y), yc)
    assert same_bits(backend.to_numpy(m.bits), mc.bits)
    g = backend.transpose(backend.asarray(rh))
    got = rdf.bias_dropout_add_backward(g, m)
    expected = rdf.bias_dropout_add_backward(np.ascontiguousarray(rh.T), mc)
    assert same_bits(backend.to_numpy(got[0]), expected[0]) and same_bits(backend.to_numpy(got[1]), expected[1])


def test_concurrent_calls_agree(rng):
    x, b, r = inputs(rng, (512, 300), np.float32)
    expected = rdf.bias_dropout_add(x, b, r, 0.5, seed=1)[0]
    g = values(rng, x.size, np.float32).reshape(x.shape)
    mask = rdf.dropout_mask(x.shape, 0.5, seed=1)
    expected_grad = rdf.bias_dropout_add_backward(g, mask)
    stop = threading.Event()

    def flip():
        k = 0
        while not stop.is_set():
            rdf.set_num_threads(1 + k % 3)
            k += 1

    previous = rdf.get_num_threads()
    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            ys = list(pool.map(lambda _: rdf.bias_dropout_add(x, b, r, 0.5, seed=1)[0], range(8)))
            grads = list(pool.map(lambda _: rdf.bias_dropout_add_backward(g, mask), range(8)))
    finally:
        stop.set()
        flipper.join()
        rdf.set_num_threads(previous)
    for y in ys:
        assert_same_bits(y, expected)
    for got in grads:
        assert_same_bits(got[0], expected_grad[0])
        assert_same_bits(got[1], expected_grad[1])


def test_fork_while_kernels_run():
    """Children forked while another thread runs fused calls (GIL released) finish their own, right bits."""
    package_root = os.path.dirname(os.path.dirname(rdf.__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in [package_root, os.environ.get("PYTHONPATH", "")] if p))
    body = textwrap.dedent("""
    import os, threading, time
    import numpy as np
    import regdrop_fast as rdf
    rdf.set_num_threads(2)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((256, 1024), dtype=np.float32)
    b = rng.standard_normal(1024, dtype=np.float32)
    y0, m0 = rdf.bias_dropout_add(x, b, x, 0.25, seed=9)
    d0 = rdf.bias_dropout_add_backward(x, m0)[1]
    stop = False
    def busy():
        while not stop:
            rdf.bias_dropout_add_backward(x, rdf.bias_dropout_add(x, b, x, 0.5, seed=3)[1])
    t = threading.Thread(target=busy)
    t.start()
    failure = None
    try:
        for k in range(150):
            pid = os.fork()
            if pid == 0:
                ok = False
                try:
                    y, m = rdf.bias_dropout_add(x, b, x, 0.25, seed=9)
                    ok = np.array_equal(y.view(np.uint32), y0.view(np.uint32))
                    ok = ok and np.array_equal(rdf.bias_dropout_add_backward(x, m)[1].view(np.uint32), d0.view(np.uint32))
                finally:
                    os._exit(0 if ok else 3)
            deadline = time.monotonic() + 10
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
                    status = "hung"
                    break
                time.sleep(0.0005)
            if status != 0:
                failure = (k, status)
                break
    finally:
        stop = True
        t.join()
    assert failure is None, failure
    print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", body], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0 and proc.stdout.startswith("ok"), proc.stdout + proc.stderr
