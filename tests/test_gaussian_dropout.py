"""gaussian_dropout / gaussian_dropout_backward (issue 13): every backend against the CPU kernels and the NumPy
reference bit for bit (dtypes, odd sizes, offsets of every alignment, wrap-around), every SIMD level and thread
count, the transform's accuracy and the coefficients both sides read, the noise's statistics (Keras's
GaussianDropout expectation among them), in-place use, strides, and concurrent and forked calls."""

from __future__ import annotations

import importlib
import math
import os
import pathlib
import re
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
    assert_backend_bits,
    assert_same_bits,
    per_backend,
    run_each_simd,
    run_each_thread_count,
    same_bits,
    values,
)
from scipy import stats

import regdrop_fast as rdf
from regdrop_fast import reference

# the module (its name in regdrop_fast.reference is the function)
gref = importlib.import_module("regdrop_fast.reference.gaussian_dropout")

ROOT = pathlib.Path(__file__).resolve().parents[1]
dtype_param = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)

# (n, offset): odd sizes around the 16-element groups, the 256-element tiles and the 2^16-element tasks, and
# offsets of each alignment mod 4 (a call may start on the odd element of a pair, or mid-block), one wrapping.
CASES = [(1, 0), (2, 1), (7, 3), (17, 2), (256, 1), (1000, 0), (65536 + 3, 5), (278011, 2), (0, 0),
         (3000, U64_MAX - 1000)]
EMULATED_CASES = [(1, 0), (2, 1), (7, 3), (17, 2), (256, 1), (1000, 0), (4097, 6), (0, 0), (300, U64_MAX - 100)]


def check(backend, x, p, seed, offset):
    """y and dx on `backend` equal the CPU's, which equal the reference's; the inputs stay as they were."""
    xd = backend.asarray(x)
    y, noise = rdf.gaussian_dropout(xd, p, seed=seed, offset=offset)
    yc, nc = rdf.gaussian_dropout(x, p, seed=seed, offset=offset)
    yr, nr = reference.gaussian_dropout(x, p, seed=seed, offset=offset)
    assert_same_bits(yc, yr, "cpu y vs reference")
    assert_backend_bits(backend, y, yc, f"{backend.name} y vs cpu")
    assert noise == nc == nr == rdf.GaussianNoise(x.shape, p, seed, offset)
    assert same_bits(backend.to_numpy(xd), x), "x was modified"
    g = values(np.random.default_rng(x.size), x.size, x.dtype).reshape(x.shape)
    dx = rdf.gaussian_dropout_backward(backend.asarray(g), noise)
    dxc = rdf.gaussian_dropout_backward(g, nc)
    assert_same_bits(dxc, reference.gaussian_dropout_backward(g, nr), "cpu dx vs reference")
    assert_backend_bits(backend, dx, dxc, f"{backend.name} dx vs cpu")


@dtype_param
@pytest.mark.parametrize("backend,case", per_backend(CASES, EMULATED_CASES), indirect=["backend"])
def test_matches_cpu_and_reference(backend, dtype, case):
    backend.require(dtype)
    n, offset = case
    x = values(np.random.default_rng(n), n, dtype, specials=True)
    check(backend, x, 0.3, 0xDEADBEEF12345678, offset)


@pytest.mark.parametrize("backend", ["cpu", "cuda-emulated", pytest.param("cuda", marks=pytest.mark.cuda)],
                         indirect=True)
@pytest.mark.parametrize("p", [0.0, 1e-9, 0.1, 0.5, 0.999])
def test_probabilities_and_shapes(backend, p):
    rng = np.random.default_rng(3)
    for shape in [(), (5, 3), (3, 1, 40)]:
        check(backend, values(rng, math.prod(shape), np.float32).reshape(shape), p, 11, 1)


def test_p_zero_returns_the_values(rng):
    """std = 0: every factor is exactly 1 (x * 1 keeps every value, -0.0 and infinities included)."""
    x = values(rng, 1001, np.float32, specials=True)
    y, _ = rdf.gaussian_dropout(x, 0.0, seed=1)
    finite = ~np.isnan(x)
    assert_same_bits(y[finite], x[finite])
    assert np.isnan(y[~finite]).all()


@dtype_param
def test_same_bits_on_every_simd_level_and_thread_count(dtype, rng):
    x = values(rng, 3 * 65536 + 77, dtype, specials=True)
    results = run_each_simd(lambda: run_each_thread_count(lambda: rdf.gaussian_dropout(x, 0.4, seed=5, offset=3)[0]))
    expected = reference.gaussian_dropout(x, 0.4, seed=5, offset=3)[0]
    for level, per_threads in results.items():
        for threads, y in per_threads.items():
            assert_same_bits(y, expected, f"simd {level}, {threads} threads")


@pytest.mark.parametrize("start", [0, 1, 2, 3, 5, 250, 257, 65535])
def test_a_slice_takes_the_noise_of_its_stream_positions(start, rng):
    """gaussian_dropout(x[a:], offset=o + a) == gaussian_dropout(x, offset=o)[a:], for starts of each parity
    and alignment: the pair an element belongs to is fixed by its global index, not by where the call
    starts."""
    x = values(rng, 70000, np.float32)
    whole = rdf.gaussian_dropout(x, 0.2, seed=9, offset=1)[0]
    part = rdf.gaussian_dropout(x[start:start + 3000], 0.2, seed=9, offset=1 + start)[0]
    assert_same_bits(part, whole[start:start + 3000])


def test_offset_wraps(rng):
    x = values(rng, 40, np.float32)
    whole = rdf.gaussian_dropout(x, 0.2, seed=4, offset=U64_MAX - 9)[0]
    tail = rdf.gaussian_dropout(x[10:], 0.2, seed=4, offset=0)[0]
    assert_same_bits(whole[10:], tail)


def test_backward_is_the_forward_pass_over_grad(rng):
    """dx = grad * factor with the forward's factors: gaussian_dropout_backward(g, noise) equals
    gaussian_dropout(g) at the same seed and offset; a hand-made GaussianNoise works too."""
    x = values(rng, 5000, np.float32).reshape(50, 100)
    g = values(rng, 5000, np.float32).reshape(50, 100)
    _, noise = rdf.gaussian_dropout(x, 0.25, seed=77, offset=13)
    dx = rdf.gaussian_dropout_backward(g, noise)
    assert_same_bits(dx, rdf.gaussian_dropout(g, 0.25, seed=77, offset=13)[0])
    assert_same_bits(rdf.gaussian_dropout_backward(g, rdf.GaussianNoise((50, 100), 0.25, 77, 13)), dx)
    ones = rdf.gaussian_dropout(np.ones_like(x), 0.25, seed=77, offset=13)[0]
    np.testing.assert_array_equal(dx, g * ones)  # float32 products, one rounding each


def test_seed_none_is_recorded(rng):
    x = values(rng, 100, np.float32)
    y, noise = rdf.gaussian_dropout(x, 0.5)
    assert_same_bits(y, rdf.gaussian_dropout(x, 0.5, seed=noise.seed)[0])
    assert rdf.gaussian_dropout(x, 0.5)[1].seed != noise.seed


def test_in_place_and_out(backend):
    x = values(np.random.default_rng(2), 70 * 33, np.float32).reshape(70, 33)
    expected = rdf.gaussian_dropout(x, 0.3, seed=5, offset=1)[0]
    xd = backend.asarray(x.copy())
    y, _ = rdf.gaussian_dropout(xd, 0.3, seed=5, offset=1, out=xd)
    assert y is xd or backend.to_numpy(y).tobytes() == backend.to_numpy(xd).tobytes()
    assert_backend_bits(backend, xd, expected, "in place")
    out = backend.asarray(np.zeros_like(x))
    y, _ = rdf.gaussian_dropout(backend.asarray(x), 0.3, seed=5, offset=1, out=out)
    assert_backend_bits(backend, out, expected, "out=")
    gd = backend.asarray(x.copy())
    _, noise = rdf.gaussian_dropout(x, 0.3, seed=5, offset=1)
    rdf.gaussian_dropout_backward(gd, noise, out=gd)
    assert_backend_bits(backend, gd, expected, "backward in place")


def test_strided_inputs_take_their_logical_order(backend):
    """A transposed or sliced x gets the noise of its C-contiguous twin (the flat C-order index)."""
    xh = values(np.random.default_rng(8), 40 * 25, np.float32).reshape(40, 25)
    x = backend.transpose(backend.asarray(xh))
    y, _ = rdf.gaussian_dropout(x, 0.5, seed=3)
    assert_backend_bits(backend, y, rdf.gaussian_dropout(np.ascontiguousarray(xh.T), 0.5, seed=3)[0])
    if backend.name == "cpu":
        view = xh[::2, 3:]
        assert_same_bits(rdf.gaussian_dropout(view, 0.5, seed=3)[0],
                         reference.gaussian_dropout(np.ascontiguousarray(view), 0.5, seed=3)[0])


def test_reference_coefficients_are_the_kernels():
    """The reference's polynomial coefficients are the bits csrc/common/gaussian_dropout_element.h compiles."""
    text = (ROOT / "csrc/common/gaussian_dropout_element.h").read_text()
    found = dict(re.findall(r"constexpr float kGauss(\w+) = (-?0x[0-9a-f.]+p-?\d+)f;", text))
    expected = {**{f"Log{k}": v for k, v in zip((3, 5, 7, 9, 11), gref.LOG)},
                **{f"Sin{k}": v for k, v in zip((1, 3, 5, 7, 9), gref.SIN)},
                **{f"Cos{k}": v for k, v in zip((2, 4, 6, 8, 10), gref.COS)}, "Ln2": gref.LN2}
    assert sorted(found) == sorted(expected)
    for name, literal in found.items():
        assert np.float32(float.fromhex(literal)) == expected[name], name


def test_the_transform_is_accurate():
    """radius and angle within a few float32 ulps of sqrt(-2 ln u) and cos/sin of 2 pi v in float64, over
    every 256th 24-bit value and the extremes: the polynomials are good approximations, not just
    reproducible ones."""
    a = np.concatenate([np.arange(0, 1 << 24, 255, dtype=np.uint32) << np.uint32(8),
                        np.array([0, 255, 0xFFFFFFFF, 0xFFFFFF00, 1 << 31], dtype=np.uint32)])
    u = ((a >> np.uint32(8)) | np.uint32(1)).astype(np.float64) * 2.0**-24
    exact_r = np.sqrt(-2 * np.log(u))
    assert np.max(np.abs(gref.radius(a) - exact_r) / exact_r) < 4 * 2.0**-24
    c, s = gref.angle(a)
    theta = 2 * np.pi * (a >> np.uint32(8)).astype(np.float64) / 2**24
    assert np.max(np.abs(c - np.cos(theta))) < 4 * 2.0**-24
    assert np.max(np.abs(s - np.sin(theta))) < 4 * 2.0**-24
    assert c.dtype == s.dtype == np.float32


def test_normals_are_standard_normal():
    """2^21 normals (fixed seed): moments within 5 standard errors of N(0, 1)'s, a KS test at 1e-3, and the
    two normals of a pair, and neighbouring pairs, uncorrelated."""
    n = 1 << 21
    z = reference.standard_normals(n, 2024, 0).astype(np.float64)
    se = 1 / math.sqrt(n)
    assert abs(z.mean()) < 5 * se
    assert abs(z.var() - 1) < 5 * math.sqrt(2) * se
    assert abs(stats.skew(z)) < 5 * math.sqrt(6) * se
    assert abs(stats.kurtosis(z)) < 5 * math.sqrt(24) * se
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(np.corrcoef(z[0::2], z[1::2])[0, 1]) < 5 * math.sqrt(2) * se
    assert abs(np.corrcoef(z[:-2], z[2:])[0, 1]) < 5 * se
    assert np.abs(z).max() < math.sqrt(-2 * math.log(2.0**-24)) + 1e-3  # u >= 2^-24 bounds the radius


def test_native_noise_is_the_reference_normals():
    """On ones at std 1 (p = 1/2) the factors are 1 + z: the kernels' normals are the reference's."""
    n = 100003
    y = rdf.gaussian_dropout(np.ones(n, np.float64), 0.5, seed=8, offset=3)[0]
    z = reference.standard_normals(n, 8, 3)
    assert np.array_equal(y, 1.0 + z.astype(np.float64))


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_keras_gaussian_dropout_expectation(seed):
    """Keras's GaussianDropout test: on ones of shape (20, 500) at rate 0.3 the output's std is
    sqrt(rate / (1 - rate)) within 0.02, and its mean 1 (within 0.02: 3 standard errors at 10^4 samples)."""
    p = 0.3
    y, _ = rdf.gaussian_dropout(np.ones((20, 500), np.float32), p, seed=seed)
    assert abs(float(np.std(y)) - math.sqrt(p / (1 - p))) < 0.02
    assert abs(float(np.mean(y)) - 1.0) < 0.02


def test_noise_record():
    n = rdf.GaussianNoise([4, 5], 0.2, 7, offset=3)
    assert (n.shape, n.p, n.seed, n.offset, n.size) == ((4, 5), 0.2, 7, 3, 20)
    assert n.std == math.sqrt(0.2 / 0.8)
    assert repr(n) == "GaussianNoise(shape=(4, 5), p=0.2, seed=7, offset=3)"
    assert n == rdf.GaussianNoise((4, 5), 0.2, 7, 3) and hash(n) == hash(rdf.GaussianNoise((4, 5), 0.2, 7, 3))
    assert n != rdf.GaussianNoise((4, 5), 0.2, 7, 4)
    with pytest.raises(AttributeError):
        n.p = 0.5  # type: ignore[misc]


def test_concurrent_calls_agree(rng):
    x = values(rng, 512 * 300, np.float32).reshape(512, 300)
    expected = rdf.gaussian_dropout(x, 0.5, seed=1)[0]
    noise = rdf.GaussianNoise(x.shape, 0.5, 1)
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
            ys = list(pool.map(lambda _: rdf.gaussian_dropout(x, 0.5, seed=1)[0], range(8)))
            grads = list(pool.map(lambda _: rdf.gaussian_dropout_backward(x, noise), range(8)))
    finally:
        stop.set()
        flipper.join()
        rdf.set_num_threads(previous)
    for y in ys + grads:
        assert_same_bits(y, expected)


def test_fork_while_kernels_run():
    """Children forked while another thread runs Gaussian dropout (GIL released) finish their own call with the
    right bits within 10 s."""
    package_root = os.path.dirname(os.path.dirname(rdf.__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in [package_root, os.environ.get("PYTHONPATH", "")] if p))
    body = textwrap.dedent("""
    import os, threading, time
    import numpy as np
    import regdrop_fast as rdf
    rdf.set_num_threads(2)
    x = np.random.default_rng(1).standard_normal(1 << 18, dtype=np.float32)
    y0 = rdf.gaussian_dropout(x, 0.25, seed=9)[0].view(np.uint32).copy()
    stop = False
    def busy():
        while not stop:
            rdf.gaussian_dropout(x, 0.5, seed=3)
    t = threading.Thread(target=busy)
    t.start()
    failure = None
    try:
        for k in range(150):
            pid = os.fork()
            if pid == 0:
                ok = False
                try:
                    ok = np.array_equal(rdf.gaussian_dropout(x, 0.25, seed=9)[0].view(np.uint32), y0)
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
