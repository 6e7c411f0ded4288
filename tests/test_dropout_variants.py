"""The mask-based dropout variants (issue 13): dropout(..., broadcast_dims=), drop_path, alpha_dropout and their
backward. Every backend against the NumPy reference bit for bit (values and the reduced mask), over dtypes, odd
sizes, layouts, thread counts and SIMD levels; the decisions are dropout_mask's of the reduced shape; the
statistics (fraction of slices zeroed, alpha dropout's mean and variance) and Keras's expectations."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import (
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

dtype_param = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)

# (shape, broadcast_dims): channel dropout of NCHW, time-shared (T, N, H), a broadcast axis of size 1, two apart,
# every axis, none (alpha's fused path), odd sizes, rows longer than a unit (4096), empty arrays with and
# without decisions, a 0-d array.
CASES = [
    ((4, 5, 7, 9), (2, 3)),
    ((9, 6, 33), (0,)),
    ((5, 1, 37), (1,)),
    ((2, 3, 4, 5), (0, 2)),
    ((6,), (0,)),
    ((278011,), ()),
    ((3, 278011 // 3), (1,)),
    ((7, 3, 13, 11), (-1, -2)),
    ((300, 3, 17), (1,)),
    ((2, 9000), (0,)),
    ((64, 4100), (1,)),
    ((5000, 3, 21), (2,)),
    ((0, 5), (1,)),
    ((5, 0), (1,)),
    ((), ()),
    ((3, 4, 5, 6, 7), (1, 3)),
]
EMULATED = [((4, 5, 7, 9), (2, 3)), ((9, 6, 33), (0,)), ((5, 1, 37), (1,)), ((2, 3, 4, 5), (0, 2)), ((6,), (0,)),
            ((1037,), ()), ((300, 3, 17), (1,)), ((5, 0), (1,)), ((), ())]
KINDS = ("dropout", "alpha", "drop_path")


def case_id(case):
    shape, dims = case
    return "x".join(map(str, shape)) + "-" + ",".join(map(str, dims))


def forward(lib, kind, x, p, dims, **kw):
    if kind == "alpha":
        return lib.alpha_dropout(x, p, broadcast_dims=dims, **kw)
    if kind == "drop_path":
        return lib.drop_path(x, p, **kw)
    return lib.dropout(x, p, broadcast_dims=dims, **kw)


def backward(lib, kind, g, mask, **kw):
    return (lib.alpha_dropout_backward if kind == "alpha" else lib.dropout_backward)(g, mask, **kw)


def check_case(backend, kind, x, p, dims, seed, offset, store="bits"):
    """The call on `backend` equals the reference: y, the mask (bits at the reduced shape), dx."""
    if kind == "drop_path" and x.ndim == 0:
        return
    xd = backend.asarray(x)
    y, mask = forward(rdf, kind, xd, p, dims, seed=seed, offset=offset, store=store)
    yr, mr = forward(reference, kind, x, p, dims, seed=seed, offset=offset, store=store)
    assert_same_bits(backend.to_numpy(y), yr, f"{backend.name} {kind} y")
    assert same_bits(backend.to_numpy(xd), x), "x was modified"
    assert mask.reduced_shape == mr.reduced_shape and mask.broadcast_dims == mr.broadcast_dims
    assert (mask.bits is None) == (store == "seed")
    if store == "bits":
        assert_same_bits(backend.to_numpy(mask.bits), mr.bits, f"{backend.name} {kind} mask")
    # the decisions are dropout_mask's of the reduced shape, whatever the variant
    dm = reference.dropout_mask(x.shape, p, seed=seed, offset=offset, broadcast_dims=mask.broadcast_dims)
    assert_same_bits(mr.to_bool(), dm.to_bool(), "reference decisions vs dropout_mask")
    g = values(np.random.default_rng(x.size), x.size, x.dtype).reshape(x.shape)
    dx = backward(rdf, kind, backend.asarray(g), mask)
    assert_same_bits(backend.to_numpy(dx), backward(reference, kind, g, mr), f"{backend.name} {kind} dx")


@dtype_param
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("backend,case", per_backend(CASES, EMULATED, ids=case_id), indirect=["backend"])
def test_matches_reference(backend, dtype, kind, case):
    backend.require(dtype)
    shape, dims = case
    rng = np.random.default_rng(len(shape) * 1000 + sum(shape))
    x = values(rng, math.prod(shape), dtype, specials=True).reshape(shape)
    check_case(backend, kind, x, 0.37, dims, seed=0x1234_5678_9ABC, offset=3)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("p", (0.0, 1e-9, 0.5, 1 - 2.0**-34, 1.0))
@pytest.mark.parametrize("store", ("bits", "seed"))
@pytest.mark.parametrize("backend", ["cpu", "cuda-emulated"], indirect=True)
def test_special_p_store_offset(backend, kind, p, store):
    """Drop-none, drop-all and near-limit p; both stores; an offset that wraps past 2^64."""
    x = values(np.random.default_rng(1), 6 * 5 * 11, np.float32, specials=True).reshape(6, 5, 11)
    check_case(backend, kind, x, p, (2,), seed=U64_MAX, offset=U64_MAX - 7, store=store)


def layouts(x):
    """Views of a 4-d array in other memory orders: channels_last, a full permutation, reversed axes, a
    view with gaps and one with a negative stride (read through a copy)."""
    return {
        "channels_last": np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2),
        "permuted": np.ascontiguousarray(x.transpose(2, 0, 3, 1)).transpose(1, 3, 0, 2),
        "fortran": np.asfortranarray(x),
        "gaps": np.repeat(x, 2, axis=3)[..., ::2],
        "negative": x[:, ::-1],
    }


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dims", [(2, 3), (0,), (1,), (0, 3), ()])
@pytest.mark.parametrize("backend", ["cpu", "cuda-emulated"], indirect=True)
def test_layouts(backend, kind, dims):
    """An array in another axis order decides as its C-contiguous twin, and y keeps a dense x's strides."""
    x = values(np.random.default_rng(2), 3 * 5 * 7 * 6, np.float32).reshape(3, 5, 7, 6)
    if kind == "dropout" and dims == ():
        pytest.skip("plain dropout: test_dropout_layout.py")
    for name, v in layouts(x).items():
        y, mask = forward(rdf, kind, backend.asarray(v), 0.4, dims, seed=11, offset=2)
        yr, mr = forward(reference, kind, np.ascontiguousarray(v), 0.4, dims, seed=11, offset=2)
        assert_same_bits(backend.to_numpy(y), yr, name)
        assert_same_bits(backend.to_numpy(mask.bits), mr.bits, name)
        if backend.name == "cpu" and name in ("channels_last", "permuted", "fortran"):
            assert y.strides == v.strides, name
        g = backend.asarray(v * 2)
        assert_same_bits(backend.to_numpy(backward(rdf, kind, g, mask)), backward(reference, kind, np.ascontiguousarray(v * 2), mr), name)


@pytest.mark.parametrize("kind", KINDS)
def test_out_and_in_place(kind):
    x = values(np.random.default_rng(3), 4 * 6 * 10, np.float64).reshape(4, 6, 10)
    yr, mr = forward(reference, kind, x, 0.3, (2,), seed=5)
    out = np.empty_like(x)
    y, _ = forward(rdf, kind, x, 0.3, (2,), seed=5, out=out)
    assert y is out
    assert_same_bits(out, yr)
    xi = x.copy()
    y, _ = forward(rdf, kind, xi, 0.3, (2,), seed=5, out=xi)
    assert y is xi
    assert_same_bits(xi, yr)
    gi = x.copy()
    dx = backward(rdf, kind, gi, mr, out=gi)
    assert dx is gi
    assert_same_bits(gi, backward(reference, kind, x, mr))
    outf = np.empty(x.shape, order="F")  # out in another layout
    forward(rdf, kind, x, 0.3, (2,), seed=5, out=outf)
    assert_same_bits(np.ascontiguousarray(outf), yr)


def test_many_axes():
    """Arrays of more axes than the kernel's layout limit (NumPy allows 64), also transposed (read through a
    C-order copy) and with out=."""
    if int(np.__version__.split(".")[0]) < 2:
        pytest.skip("NumPy 1.x allows at most 32 axes, the kernels' own limit: no array can exceed it")
    shape = (1, 2) * 18  # 36 axes
    x = values(np.random.default_rng(4), 2**18, np.float32).reshape(shape)
    dims = tuple(range(1, 36, 4))
    for kind in ("dropout", "alpha"):
        y, m = forward(rdf, kind, x, 0.5, dims, seed=3)
        yr, mr = forward(reference, kind, x, 0.5, dims, seed=3)
        assert_same_bits(y, yr)
        assert_same_bits(m.bits, mr.bits)
        xt, dt = x.transpose(), tuple(35 - d for d in dims)
        out = np.empty(xt.shape, np.float32)
        assert forward(rdf, kind, xt, 0.5, dt, seed=3, out=out)[0] is out
        assert_same_bits(out, forward(reference, kind, np.ascontiguousarray(xt), 0.5, dt, seed=3)[0])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("channels", [3, 16, 1023, 1100])
def test_channels_last_rows(kind, channels):
    """channels_last NCHW with H, W broadcast: rows of C elements sharing their sample's decisions (folded
    into periodic rows up to 1024 channels, units of whole periods, several units per sample; not folded
    above), on every thread count and SIMD level."""
    shape = (6, channels, 9, 70) if channels < 1000 else (3, channels, 5, 7)
    x = values(np.random.default_rng(channels), math.prod(shape), np.float32).reshape(shape)
    cl = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    yr, mr = forward(reference, kind, x, 0.4, (2, 3), seed=3, offset=1)
    gr = backward(reference, kind, x, mr)

    def run():
        y, m = forward(rdf, kind, cl, 0.4, (2, 3), seed=3, offset=1)
        return y, m.bits, backward(rdf, kind, cl, m)

    for y, bits, dx in list(run_each_thread_count(run).values()) + list(run_each_simd(run).values()):
        assert y.strides == cl.strides
        assert_same_bits(np.ascontiguousarray(y), yr)
        assert_same_bits(bits, mr.bits)
        assert_same_bits(np.ascontiguousarray(dx), gr)


@pytest.mark.parametrize("kind", KINDS)
def test_thread_counts_and_simd(kind):
    """One result on every thread count and SIMD level (several tasks: rows across tasks, fused units)."""
    cases = [((70, 3, 1111), (2,)), ((3, 70, 1111), (0,)), ((300001,), ()), ((33, 9, 517), (1,))]
    for shape, dims in cases:
        x = values(np.random.default_rng(5), math.prod(shape), np.float32).reshape(shape)
        expected = forward(reference, kind, x, 0.3, dims, seed=9, offset=1)

        def run():
            y, m = forward(rdf, kind, x, 0.3, dims, seed=9, offset=1)
            return y, m.bits, backward(rdf, kind, x, m)

        results = list(run_each_thread_count(run).values()) + list(run_each_simd(run).values())
        for y, bits, dx in results:
            assert_same_bits(y, expected[0], str(shape))
            assert_same_bits(bits, expected[1].bits, str(shape))
            assert_same_bits(dx, backward(reference, kind, x, expected[1]), str(shape))


def test_broadcast_dims_empty_is_dropout():
    """broadcast_dims=() (and a list []) is today's dropout bit for bit, its Mask and repr too."""
    x = values(np.random.default_rng(6), 10003, np.float32).reshape(7, 1429)
    y0, m0 = rdf.dropout(x, 0.25, seed=8, offset=5)
    for dims in ((), []):
        y, m = rdf.dropout(x, 0.25, broadcast_dims=dims, seed=8, offset=5)
        assert_same_bits(y, y0)
        assert_same_bits(m.bits, m0.bits)
    assert repr(m0) == "Mask(shape=(7, 1429), p=0.25, seed=8, offset=5, store='bits')"
    assert m0.reduced_shape == m0.shape and m0.broadcast_dims == ()


def test_decision_index_and_offsets():
    """Decision i (flat C-order index of the reduced shape) uses stream position offset + i: it equals
    dropout_mask of the reduced shape, and of a 1-d call over the decisions; the size-1 axes of the
    reduced shape change nothing."""
    x = np.ones((4, 3, 5, 2), np.float32)
    y, m = rdf.dropout(x, 0.5, broadcast_dims=(0, 2), seed=21, offset=1000)
    flat = rdf.dropout_mask(6, 0.5, seed=21, offset=1000).to_bool()
    assert m.reduced_shape == (1, 3, 1, 2)
    assert np.array_equal(m.to_bool().ravel(), flat)
    assert np.array_equal(y != 0, np.broadcast_to(flat.reshape(1, 3, 1, 2), x.shape))
    assert np.array_equal(rdf.dropout_mask(x.shape, 0.5, seed=21, offset=1000, broadcast_dims=(0, 2)).bits, m.bits)
    # drop_path is dropout with every axis but 0 broadcast; alpha keeps dropout's decisions
    _, mp = rdf.drop_path(x, 0.5, seed=21, offset=1000)
    assert np.array_equal(mp.to_bool().ravel(), rdf.dropout_mask(4, 0.5, seed=21, offset=1000).to_bool())
    ya, ma = rdf.alpha_dropout(x, 0.5, broadcast_dims=(0, 2), seed=21, offset=1000)
    assert np.array_equal(ma.bits, m.bits)
    # a time-shared split: the decisions of (T, N, H) with T broadcast are those of (N, H)
    seq = values(np.random.default_rng(7), 6 * 4 * 8, np.float32).reshape(6, 4, 8)
    yt, mt = rdf.dropout(seq, 0.3, broadcast_dims=0, seed=2)
    step, ms = rdf.dropout(seq[0], 0.3, seed=2)
    assert np.array_equal(mt.bits, ms.bits)
    for t in range(6):
        assert_same_bits(yt[t], rdf.dropout_backward(seq[t], ms))


def test_drop_path_scale_by_keep():
    x = values(np.random.default_rng(8), 10 * 7, np.float32).reshape(10, 7)
    y, m = rdf.drop_path(x, 0.4, seed=3, scale_by_keep=False)
    keep = m.to_bool()
    assert m.scale == 1.0 and not m.scale_by_keep
    assert np.array_equal(y, np.where(keep, x, np.float32(0)))
    ys, ms = rdf.drop_path(x, 0.4, seed=3)
    assert np.array_equal(ms.bits, m.bits) and ms.scale == 1 / 0.6
    assert_same_bits(rdf.dropout_backward(x, m), np.where(keep, x, np.float32(0)))


def test_alpha_values_and_constants():
    """The formula of PyTorch's and Keras's AlphaDropout: kept a*x + b, dropped a*sat + b, with the SELU
    constants; p = 1 gives zeros."""
    p = 0.3
    alpha, scale = 1.6732632423543772, 1.0507009873554805
    sat = -scale * alpha
    a = ((1 - p) * (1 + p * sat**2)) ** -0.5
    b = -a * sat * p
    x = values(np.random.default_rng(9), 1000, np.float64)
    y, m = rdf.alpha_dropout(x, p, seed=4)
    keep = m.to_bool()
    assert np.array_equal(y[keep], x[keep] * a + b)
    assert np.all(y[~keep] == sat * a + b)
    assert np.array_equal(rdf.alpha_dropout_backward(np.ones_like(x), m), np.where(keep, a, 0.0))
    y1, _ = rdf.alpha_dropout(x, 1.0, seed=4)
    assert np.all(y1 == 0) and not np.signbit(y1).any()


def test_dropped_specials():
    """A selection: a dropped NaN or inf gives the dropped value, a kept one propagates."""
    x = np.array([[np.nan, np.inf, -np.inf, 1.0]] * 64, np.float32)
    for kind in KINDS:
        y, m = forward(rdf, kind, x, 0.5, (1,), seed=1)
        kept = np.broadcast_to(m.to_bool(), x.shape)
        assert np.isnan(y[:, 0][kept[:, 0]]).all() and not np.isnan(y[~kept]).any()


def test_mask_fields():
    m = rdf.Mask((4, 3, 5), 0.5, seed=7, broadcast_dims=(-1, 1))
    assert m.broadcast_dims == (1, 2) and m.reduced_shape == (4, 1, 1) and m.reduced_size == 4
    assert m.to_bool().shape == (4, 1, 1)
    assert repr(m) == "Mask(shape=(4, 3, 5), p=0.5, seed=7, offset=0, broadcast_dims=(1, 2), store='seed')"
    m.bits = np.packbits(m.to_bool().ravel(), bitorder="little")
    with pytest.raises(ValueError, match="do not fit"):
        m.broadcast_dims = ()  # 60 decisions for 1 byte
    with pytest.raises(ValueError, match="do not fit"):
        m.shape = (9, 3, 5)
    m.shape = (4, 8, 2)
    assert m.reduced_shape == (4, 1, 1)
    with pytest.raises(ValueError, match="out of range"):
        rdf.Mask((2, 2), 0.5, seed=1, broadcast_dims=2)
    with pytest.raises(TypeError, match="scale_by_keep"):
        rdf.Mask((2, 2), 0.5, seed=1, scale_by_keep=1)


# ----------------------------------------------------------------------------------------------------------
# statistics


@pytest.mark.parametrize("p", (0.1, 0.5, 0.8))
def test_fraction_of_slices_dropped(p):
    """Each slice is dropped with probability p, independently: over 40,000 (n, c) maps the fraction is p
    within 5 standard deviations (sqrt(p (1 - p) / 40000) <= 0.0025), and whole maps go together."""
    x = np.ones((400, 100, 3, 3), np.float32)
    y, m = rdf.dropout(x, p, broadcast_dims=(2, 3), seed=99)
    maps = y.reshape(400, 100, 9)
    assert np.all((maps == 0).all(axis=2) | (maps != 0).all(axis=2))
    dropped = (maps[:, :, 0] == 0).mean()
    assert abs(dropped - p) < 5 * math.sqrt(p * (1 - p) / 40000)
    # neighbouring decisions are uncorrelated (|r| below 5 / sqrt(n))
    d = (maps[:, :, 0] == 0).ravel().astype(float)
    r = np.corrcoef(d[:-1], d[1:])[0, 1]
    assert abs(r) < 5 / math.sqrt(d.size)


@pytest.mark.parametrize("p", (0.2, 0.5, 0.8))
@pytest.mark.parametrize("dims", [(), (2, 3)], ids=["alpha", "feature_alpha"])
def test_alpha_keeps_mean_and_std(p, dims):
    """Keras's AlphaDropout test: on standard-normal input the output's mean and std stay within 0.1 of the
    input's, for p in {0.2, 0.5, 0.8}; feature alpha dropout (whole maps) too, over 20,000 maps."""
    x = np.random.default_rng(10).standard_normal((200, 100, 4, 4)).astype(np.float32)
    y, _ = rdf.alpha_dropout(x, p, broadcast_dims=dims, seed=123)
    assert abs(float(y.mean()) - float(x.mean())) < 0.1
    assert abs(float(y.std()) - float(x.std())) < 0.1


def test_keras_spatial_dropout_zeroes_whole_maps():
    """Keras's SpatialDropout2D (channels_last: noise_shape (N, 1, 1, C)) test: each feature map is zero
    everywhere or nowhere; SpatialDropout1D (N, T, C) with noise_shape (N, 1, C) likewise."""
    x = np.ones((8, 6, 6, 16), np.float32)
    y, _ = rdf.dropout(x, 0.5, broadcast_dims=(1, 2), seed=5)
    per_map = (y == 0).reshape(8, 36, 16)
    assert np.all(per_map.all(axis=1) | ~per_map.any(axis=1))
    assert per_map.any() and not per_map.all()
    x1 = np.ones((8, 20, 16), np.float32)
    y1, _ = rdf.dropout(x1, 0.5, broadcast_dims=1, seed=5)
    z = y1 == 0
    assert np.all(z.all(axis=1) | ~z.any(axis=1))


# ----------------------------------------------------------------------------------------------------------
# threads and fork


def test_concurrent_calls_agree():
    """Calls from several Python threads at once, while another thread keeps changing the thread count,
    give the single-threaded bits (forward, mask, backward; each variant)."""
    x = values(np.random.default_rng(11), 64 * 32 * 200, np.float32).reshape(64, 32, 200)
    expected = {k: forward(rdf, k, x, 0.5, (2,), seed=1) for k in KINDS}
    grads = {k: backward(rdf, k, x, m) for k, (_, m) in expected.items()}
    stop = threading.Event()

    def flip():
        k = 0
        while not stop.is_set():
            rdf.set_num_threads(1 + k % 3)
            k += 1

    def work(i):
        kind = KINDS[i % 3]
        y, m = forward(rdf, kind, x, 0.5, (2,), seed=1)
        return kind, y, m.bits, backward(rdf, kind, x, m)

    previous = rdf.get_num_threads()
    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            results = list(pool.map(work, range(12)))
    finally:
        stop.set()
        flipper.join()
        rdf.set_num_threads(previous)
    for kind, y, bits, dx in results:
        assert_same_bits(y, expected[kind][0], kind)
        assert_same_bits(bits, expected[kind][1].bits, kind)
        assert_same_bits(dx, grads[kind], kind)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses fork")
def test_fork_while_kernels_run():
    """Children forked while another thread runs variant calls (GIL released) finish their own, right bits."""
    package_root = os.path.dirname(os.path.dirname(rdf.__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in [package_root, os.environ.get("PYTHONPATH", "")] if p))
    body = textwrap.dedent("""
    import os, threading, time
    import numpy as np
    import regdrop_fast as rdf
    rdf.set_num_threads(2)
    x = np.random.default_rng(1).standard_normal((64, 16, 256), dtype=np.float32)
    y0, m0 = rdf.dropout(x, 0.25, broadcast_dims=2, seed=9)
    a0, ma = rdf.alpha_dropout(x, 0.25, seed=9, store="seed")
    d0 = rdf.alpha_dropout_backward(x, ma)
    stop = False
    def busy():
        while not stop:
            rdf.dropout_backward(x, rdf.drop_path(x, 0.5, seed=3)[1])
            rdf.alpha_dropout(x, 0.5, broadcast_dims=(0, 2), seed=3)
    t = threading.Thread(target=busy)
    t.start()
    failure = None
    try:
        for k in range(150):
            pid = os.fork()
            if pid == 0:
                ok = False
                try:
                    y, m = rdf.dropout(x, 0.25, broadcast_dims=2, seed=9)
                    ok = np.array_equal(y.view(np.uint32), y0.view(np.uint32)) and np.array_equal(m.bits, m0.bits)
                    ok = ok and np.array_equal(rdf.alpha_dropout(x, 0.25, seed=9)[0].view(np.uint32), a0.view(np.uint32))
                    ok = ok and np.array_equal(rdf.alpha_dropout_backward(x, ma).view(np.uint32), d0.view(np.uint32))
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
    proc = subprocess.run([sys.executable, "-c", body], capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0 and proc.stdout.startswith("ok"), (proc.stdout, proc.stderr)
