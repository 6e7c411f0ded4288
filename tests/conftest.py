"""Shared fixtures and helpers for the regdrop_fast test suite.

Everything here is imported by the test modules as plain functions (``from conftest import ...`` works
because pytest puts this directory on sys.path in its default "prepend" import mode) or used as fixtures.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import os
import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig

import ml_dtypes
import numpy as np
import pytest

import regdrop_fast as rdf

BFLOAT16 = np.dtype(ml_dtypes.bfloat16)

# The four supported storage dtypes, in the order of csrc/common/dtypes.h.
DTYPES = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16), BFLOAT16)
DTYPE_IDS = tuple(d.name for d in DTYPES)

# Unsigned integer of the same width, to read a float array's bit patterns.
UINT_OF = {np.dtype(np.float32): np.uint32, np.dtype(np.float64): np.uint64,
           np.dtype(np.float16): np.uint16, BFLOAT16: np.uint16}

PROBS = (0.0, 0.1, 0.5, 0.9, 1.0)
U64_MAX = (1 << 64) - 1

ALL_SIMD_LEVELS = ("generic", "avx2", "avx512")

ROOT = pathlib.Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------------------
# data


def random_values(rng: np.random.Generator, shape, dtype) -> np.ndarray:
    """Standard-normal values (times 3, so some exceed 1 and half types see rounding) in `dtype`."""
    return (3.0 * rng.standard_normal(shape)).astype(dtype)


def special_values(dtype) -> np.ndarray:
    """Finite extremes, signed zeros, subnormals, infinities and a canonical NaN, in `dtype`."""
    info = ml_dtypes.finfo(dtype) if dtype == BFLOAT16 else np.finfo(dtype)
    vals = [0.0, -0.0, 1.0, -1.0, float(info.max), -float(info.max), float(info.tiny), -float(info.tiny),
            float(info.smallest_subnormal), -float(info.smallest_subnormal), float(info.eps),
            np.inf, -np.inf, np.nan]
    return np.array(vals, dtype=np.float64).astype(dtype)


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, fixed-seed generator per test, so every test sees the same data on every run."""
    return np.random.default_rng(20240607)


# ----------------------------------------------------------------------------------------------------------
# comparisons


def assert_same_bits(actual: np.ndarray, expected: np.ndarray, what: str = "") -> None:
    """Exact agreement: same dtype, same shape, same bytes in C order (so NaN payloads and -0.0 count)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    prefix = f"{what}: " if what else ""
    assert actual.dtype == expected.dtype, f"{prefix}dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"{prefix}shape {actual.shape} != {expected.shape}"
    a = np.ascontiguousarray(actual).reshape(-1).view(np.uint8)
    b = np.ascontiguousarray(expected).reshape(-1).view(np.uint8)
    if a.tobytes() != b.tobytes():
        width = actual.dtype.itemsize
        diff = np.nonzero((a != b).reshape(-1, width).any(axis=1))[0] if width else np.array([0])
        first = int(diff[0])
        flat_a = np.ascontiguousarray(actual).reshape(-1)
        flat_b = np.ascontiguousarray(expected).reshape(-1)
        raise AssertionError(
            f"{prefix}{diff.size} of {flat_a.size} elements differ; first at flat index {first}: "
            f"{flat_a[first]!r} (bytes {a.reshape(-1, width)[first].tobytes().hex()}) != "
            f"{flat_b[first]!r} (bytes {b.reshape(-1, width)[first].tobytes().hex()})"
        )


def assert_same_mask(actual, expected, what: str = "") -> None:
    """Two Masks agree on shape, p, seed, offset, scale and (when both store them) their bits."""
    prefix = f"{what}: " if what else ""
    assert actual.shape == expected.shape, f"{prefix}shape {actual.shape} != {expected.shape}"
    assert actual.p == expected.p, f"{prefix}p {actual.p} != {expected.p}"
    assert actual.seed == expected.seed, f"{prefix}seed {actual.seed} != {expected.seed}"
    assert actual.offset == expected.offset, f"{prefix}offset {actual.offset} != {expected.offset}"
    assert actual.scale == expected.scale, f"{prefix}scale {actual.scale} != {expected.scale}"
    assert (actual.bits is None) == (expected.bits is None), f"{prefix}one mask stores bits, one does not"
    if actual.bits is not None:
        assert_same_bits(actual.bits, expected.bits, f"{prefix}bits")


def snapshot(*arrays):
    """Byte copies of arrays (None passes through), to prove later that a rejected call changed nothing."""
    return [None if a is None else (a.dtype, a.shape, np.ascontiguousarray(a).tobytes()) for a in arrays]


def assert_unchanged(arrays, before) -> None:
    for i, (a, snap) in enumerate(zip(arrays, before)):
        if a is None:
            continue
        assert (a.dtype, a.shape, np.ascontiguousarray(a).tobytes()) == snap, f"argument {i} was modified"


# ----------------------------------------------------------------------------------------------------------
# global settings, always restored


def available_simd_levels() -> tuple[str, ...]:
    """The SIMD paths this build and CPU can run: every level up to backend_info()['simd_best']."""
    best = rdf.backend_info()["simd_best"]
    return ALL_SIMD_LEVELS[: ALL_SIMD_LEVELS.index(best) + 1]


@contextlib.contextmanager
def simd_level(level: str):
    """Run the block on SIMD path `level` (must be available), restoring the previous path afterwards."""
    previous = rdf.backend_info()["simd"]
    try:
        in_use = rdf.set_simd(level)
        assert in_use == level, f"asked for SIMD level {level!r}, got {in_use!r}"
        yield level
    finally:
        rdf.set_simd(previous)


@contextlib.contextmanager
def num_threads(n: int):
    """Run the block with set_num_threads(n), restoring the previous count afterwards."""
    previous = rdf.get_num_threads()
    try:
        rdf.set_num_threads(n)
        yield n
    finally:
        rdf.set_num_threads(previous)


def run_each_simd(fn):
    """{level: fn()} over every available SIMD level."""
    results = {}
    for level in available_simd_levels():
        with simd_level(level):
            results[level] = fn()
    return results


def run_each_thread_count(fn, counts=(1, 2, 3)):
    """{n: fn()} with n threads for each n (counts above the CPU count are allowed and must agree too)."""
    results = {}
    for n in counts:
        with num_threads(n):
            results[n] = fn()
    return results


@pytest.fixture(params=ALL_SIMD_LEVELS)
def each_simd(request):
    """Parametrizes a test over every SIMD level, skipping the ones this CPU/build lacks."""
    level = request.param
    if level not in available_simd_levels():
        pytest.skip(f"SIMD level {level} not available here")
    with simd_level(level):
        yield level


@pytest.fixture(autouse=True)
def _restore_global_settings():
    """No test may leak a changed thread count or SIMD level into the next one."""
    threads, simd = rdf.get_num_threads(), rdf.backend_info()["simd"]
    yield
    leaked = (rdf.get_num_threads(), rdf.backend_info()["simd"])
    rdf.set_num_threads(threads)
    rdf.set_simd(simd)
    assert leaked == (threads, simd), f"test leaked settings {leaked}, expected {(threads, simd)}"


def assert_close(value, expected, rtol=1e-12):
    """A float64 penalty value against the reference: NaN, inf and 0 exactly, anything else within rtol."""
    value = float(value)
    if np.isnan(expected):
        assert np.isnan(value)
    elif np.isinf(expected) or expected == 0.0:
        assert value == expected
    else:
        assert abs(value - expected) <= rtol * abs(expected), (value, expected)


AARCH64_CXX = shutil.which("aarch64-linux-gnu-g++")
QEMU_AARCH64 = shutil.which("qemu-aarch64")


def build_generic_aarch64(directory, main: str, kernel: str):
    """tests/native/<main> with the portable (generic) build of csrc/cpu/<kernel>, for aarch64 (static)."""
    exe = directory / pathlib.Path(main).stem
    subprocess.run(
        [AARCH64_CXX, "-std=c++17", "-O2", "-ffp-contract=off", "-static", "-DRDF_ISA=generic",
         "-DRDF_VEC_BYTES=16", str(ROOT / "tests/native" / main), str(ROOT / "csrc/cpu" / kernel),
         "-o", str(exe)],
        check=True, capture_output=True, text=True,
    )
    return exe



# ----------------------------------------------------------------------------------------------------------
# the CUDA sources built against the CPU emulation of CUDA (tests/native/cuda_emulation/cuda_runtime.h)

HOST_CXX = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
CUDA_SHIM = ROOT / "tests/native/cuda_emulation"

# kernel<...><<<grid, block, 0, s>>>(args);  ->  rdf_emulate_launch(grid, block, [&] { kernel<...>(args); });
LAUNCH = re.compile(r"(\w+(?:<[^<>;]*>)?)<<<([^,;]+),\s*([^,;]+),\s*0,\s*s>>>\((.*?)\);", re.S)


def emulated_source(src: pathlib.Path, out_dir: pathlib.Path) -> pathlib.Path:
    text = LAUNCH.sub(
        lambda m: f"rdf_emulate_launch({m[2]}, {m[3]}, [&] {{ {m[1]}({m[4]}); }});", src.read_text()
    )
    assert "<<<" not in text, f"{src.name}: a launch the rewrite does not understand"
    dest = out_dir / f"{src.stem}_emulated.cpp"
    dest.write_text(text)
    return dest


@pytest.fixture(scope="session")
def emulated_cuda_module(tmp_path_factory):
    """csrc/cuda/*.cu and csrc/bindings/cuda.cpp built with the host compiler against the CUDA emulation,
    loaded as a module standing in for regdrop_fast._cuda (device pointers are host addresses)."""
    if HOST_CXX is None or not sys.platform.startswith("linux"):
        pytest.skip("needs a host C++ compiler and Linux (the emulation uses ucontext fibers)")
    pybind11 = pytest.importorskip("pybind11")
    out = tmp_path_factory.mktemp("cuda_emulated")
    # Every .cu of the build, so a new op's kernels are emulated as soon as they exist.
    sources = [emulated_source(src, out) for src in sorted((ROOT / "csrc/cuda").glob("*.cu"))]
    sources += [ROOT / "csrc/bindings/cuda.cpp"]
    # RDF_EMULATION_CXXFLAGS adds flags, e.g. "-fsanitize=address" (then run pytest with libasan preloaded:
    # LD_PRELOAD=$(c++ -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0), so that a kernel's
    # out-of-bounds access stops the test like compute-sanitizer would on a GPU.
    extra = os.environ.get("RDF_EMULATION_CXXFLAGS", "").split()
    flags = ["-std=c++17", "-O2", "-ffp-contract=off", "-fPIC", f"-I{CUDA_SHIM}", f"-I{ROOT / 'csrc/cuda'}",
             f"-I{pybind11.get_include()}", f"-I{sysconfig.get_paths()['include']}", *extra]
    jobs = [(subprocess.Popen([HOST_CXX, *flags, "-c", str(s), "-o", str(out / f"{s.stem}.o")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True), s) for s in sources]
    for proc, src in jobs:
        log = proc.communicate(timeout=600)[0]
        assert proc.returncode == 0, f"{src.name} does not build against the emulation:\n{log[-4000:]}"
    lib = out / f"_cuda{sysconfig.get_config_var('EXT_SUFFIX')}"
    subprocess.run([HOST_CXX, "-shared", *extra, *[str(out / f"{s.stem}.o") for s in sources], "-o", str(lib)],
                   check=True, capture_output=True, text=True)
    loader = importlib.machinery.ExtensionFileLoader("_cuda", str(lib))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("_cuda", loader))
    loader.exec_module(module)
    return module
