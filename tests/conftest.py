"""Shared fixtures and helpers for the regdrop_fast test suite.

Everything here is imported by the test modules as plain functions (``from conftest import ...`` works
because pytest puts this directory on sys.path in its default "prepend" import mode) or used as fixtures.
"""

from __future__ import annotations

import contextlib
import pathlib
import re
import shutil
import subprocess

import ml_dtypes
import numpy as np
import pytest

import regdrop_fast as rdf
from regdrop_fast import _native, reference

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


def pytest_collection_modifyitems(items):
    """Tests marked `long(cpu_s=...)` (a minute or more: builds) first, the longest first, the rest in their
    order. pytest-xdist hands out the first tests one to each worker in turn, so these start at once and
    overlap the rest of the suite instead of trailing it on one worker while the others idle (every worker
    sorts its collection the same way)."""
    def key(item):
        mark = item.get_closest_marker("long")
        return (0, -mark.kwargs.get("cpu_s", 0)) if mark else (1, 0)

    items.sort(key=key)


# ----------------------------------------------------------------------------------------------------------
# data


def random_values(rng: np.random.Generator, shape, dtype) -> np.ndarray:
    """Standard-normal values (times 3, so some exceed 1 and half types see rounding) in `dtype`."""
    return (3.0 * rng.standard_normal(shape)).astype(dtype)


def random_array(rng: np.random.Generator, shape, dtype) -> np.ndarray:
    """random_values as an ndarray also for shape () (NumPy gives a scalar there)."""
    return np.asarray(random_values(rng, shape, dtype))


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
def _global_setting(get, put, value):
    """Run the block with put(value), restoring get()'s previous value afterwards."""
    previous = get()
    try:
        put(value)
        yield value
    finally:
        put(previous)


def num_threads(n: int):
    """Run the block with set_num_threads(n), restoring the previous count afterwards."""
    return _global_setting(rdf.get_num_threads, rdf.set_num_threads, n)


def pool_polling(ns: int):
    """Run the block with the thread pool's polling window set to ns nanoseconds (csrc/cpu/parallel.cpp),
    restoring the previous window afterwards."""
    return _global_setting(_native.core.pool_spin_ns, _native.core.set_pool_spin_ns, ns)


def streamed_outputs(min_bytes: int):
    """Run the block with every output of at least min_bytes bytes written by non-temporal stores (0: every
    output; csrc/cpu/output_streaming.h), restoring the previous threshold afterwards."""
    return _global_setting(_native.core.stream_output_bytes, _native.core.set_stream_output_bytes, min_bytes)


def prefetched_inputs(bytes_ahead: int):
    """Run the block with the dropout and gaussian loops prefetching their input bytes_ahead bytes ahead of
    each tile (0: no prefetches; csrc/cpu/input_prefetch.h), restoring the previous distance afterwards."""
    return _global_setting(_native.core.prefetch_bytes, _native.core.set_prefetch_bytes, bytes_ahead)


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
    """No test may leak a changed thread count, SIMD level, output-streaming threshold, input-prefetch
    distance or thread-pool polling window into the next one."""
    core = _native.core
    settings = (rdf.get_num_threads(), rdf.backend_info()["simd"], core.stream_output_bytes(),
                core.prefetch_bytes(), core.pool_spin_ns())
    yield
    leaked = (rdf.get_num_threads(), rdf.backend_info()["simd"], core.stream_output_bytes(),
              core.prefetch_bytes(), core.pool_spin_ns())
    rdf.set_num_threads(settings[0])
    rdf.set_simd(settings[1])
    core.set_stream_output_bytes(settings[2])
    core.set_prefetch_bytes(settings[3])
    core.set_pool_spin_ns(settings[4])
    assert leaked == settings, f"test leaked settings {leaked}, expected {settings}"


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
    root = pathlib.Path(__file__).resolve().parents[1]
    exe = directory / pathlib.Path(main).stem
    subprocess.run(
        [AARCH64_CXX, "-std=c++17", "-O2", "-ffp-contract=off", "-static", "-DRDF_ISA=generic",
         "-DRDF_VEC_BYTES=16", str(root / "tests/native" / main), str(root / "csrc/cpu" / kernel),
         "-o", str(exe)],
        check=True, capture_output=True, text=True,
    )
    return exe



# ----------------------------------------------------------------------------------------------------------
# more shared helpers (one copy each)

# The dtype codes of the kernels' interface (csrc/common/dtypes.h).
DTYPE_CODES = {np.dtype(np.float32): 0, np.dtype(np.float64): 1, np.dtype(np.float16): 2, BFLOAT16: 3}
CODE_DTYPES = tuple(sorted(DTYPE_CODES, key=DTYPE_CODES.get))


def keep_threshold(p: float) -> int:
    """docs/rng.md: an element is kept iff its 32-bit word >= round(p * 2^32) (exact in float64, ties to even)."""
    return int(round(p * 2.0**32))


def keep_scale(p: float) -> float:
    """1 / (1 - p), the scale of kept values; 0.0 when every element is dropped (threshold 2^32)."""
    return 0.0 if keep_threshold(p) == 1 << 32 else 1.0 / (1.0 - p)


def same_bits(a, b) -> bool:
    """Same dtype, shape and bytes of two arrays of any backend (so -0.0 and NaN payloads count)."""
    a, b = to_numpy(a), to_numpy(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.ascontiguousarray(a).tobytes() == \
        np.ascontiguousarray(b).tobytes()


def values(rng, n, dtype, specials=False) -> np.ndarray:
    """n standard-normal values times 3 in `dtype`; with specials (and n >= 40) signed zeros, infinities, a NaN,
    subnormals and values that overflow float16 at indices 10 and up."""
    a = (3.0 * rng.standard_normal(n)).astype(dtype)
    if specials and n >= 40:
        sv = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 1e-40, -1e-45, 1e-30, 0.01, -0.01, 65504.0, 7e4]
        with np.errstate(over="ignore", under="ignore"):  # 7e4 is inf in float16
            a[10:10 + len(sv)] = np.array(sv).astype(dtype)
    return a


def assert_value_close(actual, expected, rtol=1e-12):
    """A Python-float penalty value against the reference: NaN, inf and 0 exactly, anything else within rtol."""
    assert type(actual) is float
    assert_close(actual, expected, rtol)


def rejects(exc, match, call, *arrays):
    """call() raises exc with a message matching `match`, and leaves every array in `arrays` unchanged
    (NumPy arrays, and fake_cupy arrays through their host memory)."""
    hosts = [getattr(a, "host", a) for a in arrays]
    before = snapshot(*hosts)
    with pytest.raises(exc, match=match):
        call()
    assert_unchanged(hosts, before)


# ----------------------------------------------------------------------------------------------------------
# backends: the same public calls on NumPy arrays (CPU kernels), on fake_cupy arrays with the CUDA kernels
# built against the CPU emulation of the CUDA runtime, and on real GPU arrays


ROOT = pathlib.Path(__file__).resolve().parents[1]
EMULATION = ROOT / "tests/native/cuda_emulation"

# kernel<...><<<grid, block, 0, s>>>(args);  ->  rdf_emulate_launch(grid, block, [&] { kernel<...>(args); });
LAUNCH = re.compile(r"(\w+(?:<[^<>;]*>)?)<<<([^,;]+),\s*([^,;]+),\s*0,\s*s>>>\((.*?)\);", re.S)


def emulated_source(src: pathlib.Path, out_dir: pathlib.Path) -> pathlib.Path:
    """src with every kernel launch rewritten into an emulated one, as a .cpp file in out_dir."""
    text = LAUNCH.sub(lambda m: f"rdf_emulate_launch({m[2]}, {m[3]}, [&] {{ {m[1]}({m[4]}); }});",
                      src.read_text())
    assert "<<<" not in text, f"{src.name}: a launch the rewrite does not understand"
    dest = out_dir / f"{src.stem}_emulated.cpp"
    dest.write_text(text)
    return dest


def cuda_bindings_source() -> pathlib.Path:
    """The pybind11 module of the CUDA build."""
    return ROOT / "csrc/bindings/cuda.cpp"


@contextlib.contextmanager
def built_once(tmp_path_factory, name: str):
    """A folder for a session-wide build, yielded as (folder, done): `done` is True when this folder already
    holds the finished build, else the caller builds into it and the folder is marked finished afterwards.

    Under pytest-xdist every worker process runs session fixtures for itself; without this each of them
    would compile the same thing (the CUDA emulation takes ~40 s of CPU). The workers' temporary folders
    share a parent, so the folder is placed there and an exclusive lock makes one worker build while the
    others wait and then reuse it; a failed build is reported to them rather than tried again. Run without
    xdist (also in a pytest started by a worker, which inherits its environment) it is a fresh folder of
    this session."""
    import fcntl
    import os

    base = tmp_path_factory.getbasetemp()
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker or base.name != f"popen-{worker}":
        yield tmp_path_factory.mktemp(name), False
        return
    folder = base.parent / name
    folder.mkdir(exist_ok=True)
    finished, failed = folder / ".finished", folder / ".failed"
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if the build fails
        if failed.exists():
            raise RuntimeError(f"{name}: the build failed in another pytest-xdist worker:\n{failed.read_text()}")
        done = finished.exists()
        try:
            yield folder, done
        except BaseException as exc:
            failed.write_text(f"{type(exc).__name__}: {exc}"[-4000:])
            raise
        if not done:
            finished.touch()


@pytest.fixture(scope="session")
def emulated_cuda_module(tmp_path_factory):
    """The CUDA kernels (every csrc/cuda/*.cu and the CUDA bindings) built with the host compiler against the
    emulation of the CUDA runtime (tests/native/cuda_emulation/cuda_runtime.h: a fiber per CUDA thread,
    __syncthreads() a barrier of a block's fibers, __shared__ memory shared by them, blocks one after
    another), loaded as a Python module that stands in for the package's CUDA kernel module."""
    import importlib.machinery
    import importlib.util
    import sys
    import sysconfig

    cxx = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None or not sys.platform.startswith("linux"):
        pytest.skip("needs a host C++ compiler and Linux (the emulation uses ucontext fibers)")
    pybind11 = pytest.importorskip("pybind11")
    with built_once(tmp_path_factory, "cuda_emulated") as (out, done):
        lib = out / f"_cuda{sysconfig.get_config_var('EXT_SUFFIX')}"
        if not done:
            _build_emulated_cuda_module(cxx, pybind11.get_include(), out, lib)
    loader = importlib.machinery.ExtensionFileLoader("_cuda", str(lib))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("_cuda", loader))
    loader.exec_module(module)
    return module


def _build_emulated_cuda_module(cxx: str, pybind11_include: str, out: pathlib.Path, lib: pathlib.Path) -> None:
    import os
    import sysconfig

    sources = [emulated_source(src, out) for src in sorted((ROOT / "csrc/cuda").glob("*.cu"))]
    sources.append(cuda_bindings_source())
    # RDF_EMULATION_CXXFLAGS adds flags, e.g. "-fsanitize=address" (then run pytest with libasan preloaded:
    # LD_PRELOAD=$(c++ -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0), so that a kernel's
    # out-of-bounds access stops the test like compute-sanitizer would on a GPU.
    extra = os.environ.get("RDF_EMULATION_CXXFLAGS", "").split()
    # RDF_LIST_MAX_BLOCKS: launches of at most 512 list blocks (2^23 elements), so a list that spans
    # launches stays small under the emulation; the GPU build keeps its 2^16.
    flags = ["-std=c++17", "-O2", "-ffp-contract=off", "-fPIC", "-DRDF_LIST_MAX_BLOCKS=512", f"-I{EMULATION}",
             f"-I{ROOT / 'csrc'}",
             f"-I{ROOT / 'csrc/cuda'}", f"-I{pybind11_include}", f"-I{sysconfig.get_paths()['include']}",
             *extra]
    jobs = [(subprocess.Popen([cxx, *flags, "-c", str(s), "-o", str(out / f"{s.stem}.o")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True), s) for s in sources]
    for proc, src in jobs:
        log = proc.communicate(timeout=600)[0]
        assert proc.returncode == 0, f"{src.name} does not build against the emulation:\n{log[-4000:]}"
    subprocess.run([cxx, "-shared", *extra, *[str(out / f"{s.stem}.o") for s in sources], "-o", str(lib)],
                   check=True, capture_output=True, text=True)


def use_cuda_kernels(monkeypatch, module) -> None:
    """Make `module` the package's CUDA kernel module for this test (None: a build without CUDA)."""
    monkeypatch.setattr(rdf._native, "cuda", module)


def cuda_kernels():
    """The package's CUDA kernel module now in use (None without CUDA)."""
    return rdf._native.cuda


def _gpu_library():
    """'cupy' or 'torch' (CuPy preferred; torch only imported when CuPy is missing), or None."""
    try:
        import cupy  # noqa: F401

        return "cupy"
    except ImportError:
        pass
    try:
        import torch
    except ImportError:
        return None
    return "torch" if torch.cuda.is_available() else None


class Backend:
    """Arrays of one backend: asarray(host array) -> its array, to_numpy(its array) -> host copy."""

    def __init__(self, name: str, sizes_scale: str):
        self.name = name
        self.size_class = sizes_scale  # "full" or "emulated": which size lists a test uses
        self.library = "numpy"
        self.kernels = None

    @property
    def emulated(self) -> bool:
        return self.size_class == "emulated"

    @property
    def is_device(self) -> bool:
        return self.name != "cpu"

    def sizes(self, full, emulated):
        """The size list for this backend: `emulated` for the CPU emulation of the GPU (slow), else `full`."""
        return emulated if self.emulated else full

    def supports(self, dtype) -> bool:
        return not (self.library == "cupy" and np.dtype(dtype) == BFLOAT16)

    def require(self, dtype) -> None:
        if not self.supports(dtype):
            pytest.skip("CuPy has no bfloat16 arrays")

    def dtypes(self):
        return tuple(d for d in DTYPES if self.supports(d))

    def asarray(self, a):
        a = np.asarray(a)
        if self.name == "cpu":
            return a
        if self.name == "cuda-emulated":
            import fake_cupy

            return fake_cupy.ndarray(np.array(a, copy=True))
        self.require(a.dtype)
        if self.library == "cupy":
            import cupy

            return cupy.asarray(np.ascontiguousarray(a))
        import torch

        a = np.ascontiguousarray(a)
        if a.dtype == BFLOAT16:
            return torch.from_numpy(a.view(np.int16).copy()).cuda().view(torch.bfloat16)
        return torch.from_numpy(a.copy()).cuda()

    def to_numpy(self, a) -> np.ndarray:
        return to_numpy(a)

    def transpose(self, a):
        """The transposed view of a 2-D array of this backend (not C-contiguous)."""
        if self.name == "cuda-emulated":
            import fake_cupy

            return fake_cupy.ndarray(a.host.T, a.device.id)
        return a.t() if self.library == "torch" else a.T

    def full(self, n, value, dtype):
        """An array of n copies of value (a guard band around views)."""
        return self.asarray(np.full(n, value, dtype=np.float64).astype(dtype))

    def __repr__(self):
        return f"Backend({self.name})"


def to_numpy(a) -> np.ndarray:
    """A host copy of a NumPy, fake_cupy, CuPy or torch array, bfloat16 kept bit-exact as ml_dtypes.bfloat16."""
    if isinstance(a, np.ndarray) or not hasattr(a, "__cuda_array_interface__") and not hasattr(a, "detach"):
        return np.array(a, copy=True)
    if type(a).__module__ == "cupy" and hasattr(a, "host"):  # tests/fake_cupy.py
        return np.array(a.host, copy=True)
    if type(a).__module__.startswith("cupy"):
        import cupy

        return cupy.asnumpy(a)
    import torch

    t = a.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(BFLOAT16).copy()
    return t.numpy().copy()


BACKENDS = ("cpu", "cuda-emulated", pytest.param("cuda", marks=pytest.mark.cuda))
BACKEND_NAMES = ("cpu", "cuda-emulated", "cuda")


def per_backend(full, emulated=None, backends=BACKEND_NAMES, ids=str):
    """(backend, case) parameters for ``@pytest.mark.parametrize("backend,case", ..., indirect=["backend"])``:
    each case of `full` on each backend, except that "cuda-emulated" (a fiber per CUDA thread: slow) takes the
    cases of `emulated` when given."""
    params = []
    for name in backends:
        cases = emulated if name == "cuda-emulated" and emulated is not None else full
        marks = [pytest.mark.cuda] if name == "cuda" else []
        params += [pytest.param(name, c, marks=marks, id=f"{name}-{ids(c)}") for c in cases]
    return params


def backend_params(*names):
    """The backend fixture's parameters restricted to `names` (for indirect parametrization)."""
    return [pytest.param(n, marks=[pytest.mark.cuda] if n == "cuda" else [], id=n) for n in names]


def _make_backend(name, request, monkeypatch):
    name = getattr(request, "param", name) if name is None else name
    if name == "cpu":
        return Backend("cpu", "full")
    if name == "cuda-emulated":
        import sys

        import fake_cupy

        module = request.getfixturevalue("emulated_cuda_module")
        monkeypatch.setitem(sys.modules, "cupy", fake_cupy.fake_cupy())
        use_cuda_kernels(monkeypatch, module)
        b = Backend("cuda-emulated", "emulated")
        b.library, b.kernels = "fake_cupy", module
        return b
    library = _gpu_library()
    if not (rdf.cuda.is_available() and library):
        pytest.skip("needs a CUDA GPU, the CUDA build and CuPy (or torch with CUDA)")
    b = Backend("cuda", "full")
    b.library, b.kernels = library, cuda_kernels()
    return b


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    """Each backend in turn: "cpu" (NumPy arrays), "cuda-emulated" (the CUDA kernels on the CPU, fake CuPy
    arrays) and "cuda" (a real GPU: CuPy arrays, or torch tensors without CuPy; skipped without one)."""
    return _make_backend(None, request, monkeypatch)


@pytest.fixture(params=BACKENDS[1:])
def device_backend(request, monkeypatch):
    """The two CUDA backends: the kernels emulated on the CPU and a real GPU."""
    return _make_backend(None, request, monkeypatch)


@pytest.fixture
def cuda_emulated(request, monkeypatch):
    """The "cuda-emulated" backend alone."""
    return _make_backend("cuda-emulated", request, monkeypatch)


@pytest.fixture
def gpu(request, monkeypatch):
    """The "cuda" backend alone (a real GPU; skipped without one)."""
    return _make_backend("cuda", request, monkeypatch)


@pytest.fixture
def torch_cuda():
    """torch, for the GPU tests that need torch itself (streams, sync debug mode, parameters); skipped unless
    the CUDA build, a GPU and torch with CUDA are all there."""
    torch = pytest.importorskip("torch")
    if not (rdf.cuda.is_available() and torch.cuda.is_available()):
        pytest.skip("needs a CUDA GPU, the CUDA build and torch with CUDA")
    return torch


# ----------------------------------------------------------------------------------------------------------
# weight penalties: data and checks shared by the penalty_grad, prox_l1, decay and max_norm modules

# Odd sizes around the 16-element groups and the 2^16-element tasks, an empty and a 0-d array.
PENALTY_SHAPES = [(3, 5), (278011,), (0,), (), (1,), (17,), (65536 + 3,), (2, 33, 7)]
CHUNK = 1 << 16  # elements per CUDA block chunk and per CPU task


def make_params(rng, dtype, shapes=PENALTY_SHAPES, specials=True):
    """Random arrays of the given shapes; the largest also holds every special value (inf, NaN, -0, ...)."""
    params = [random_array(rng, s, dtype) for s in shapes]
    if specials:
        big = max(params, key=lambda a: a.size).reshape(-1)
        sv = special_values(dtype)
        big[100:100 + sv.size] = sv
    return params


def copies(arrays):
    return [a.copy() for a in arrays]


def assert_all_same_bits(actual, expected, what):
    assert len(actual) == len(expected)
    for i, (a, b) in enumerate(zip(actual, expected)):
        assert_same_bits(a, b, f"{what}[{i}]")


def assert_same_or_nan(actual, expected, what=""):
    """Bit-identical except that a NaN only has to be a NaN (a GPU's canonical one)."""
    a, e = np.asarray(actual), np.asarray(expected)
    assert a.dtype == e.dtype and a.shape == e.shape, what
    nan = np.isnan(e.astype(np.float64))
    assert np.array_equal(np.isnan(a.astype(np.float64)), nan), f"{what}: NaN positions differ"
    differ = np.count_nonzero(a[~nan].view(np.uint8) != e[~nan].view(np.uint8))
    assert differ == 0, f"{what}: {differ} bytes differ"


def assert_backend_bits(backend, actual, expected, what=""):
    """A backend's result against the CPU's: bit for bit, except that on a real GPU a NaN only has to be a NaN
    (its arithmetic returns the canonical NaN where x86 keeps the operand's payload)."""
    if backend.name == "cuda":
        assert_same_or_nan(backend.to_numpy(actual), expected, what)
    else:
        assert_same_bits(backend.to_numpy(actual), expected, what)


IMPLS = pytest.mark.parametrize("impl", [rdf, reference], ids=["native", "reference"])
ALL_DTYPES = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)


def finite_only(params):
    return [np.where(np.isfinite(p.astype(np.float64)), p, p.dtype.type(0)) for p in params]


def read_only(a):
    a.flags.writeable = False
    return a


@pytest.fixture
def pair():
    """Two valid (param, grad) pairs; bad entries are appended after them."""
    ws = [np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4), np.linspace(-2, 2, 7, dtype=np.float32)]
    gs = [np.full(w.shape, 0.5, np.float32) for w in ws]
    return ws, gs


UPDATE_BAD = [  # prox_l1 and decay; {name} is the coefficient's name: threshold (prox_l1) or factor (decay)
    ("int array", lambda w: w + [np.ones(3, np.int16)], 0.1, TypeError, r"params\[2\]: dtype int16"),
    ("list entry", lambda w: w + [[1.0, 2.0]], 0.1, TypeError, r"params\[2\]: expected a numpy.ndarray"),
    ("read-only", lambda w: w + [read_only(np.ones(3, np.float32))], 0.1, ValueError,
     r"params\[2\]: must be writeable"),
    ("self-overlapping", lambda w: w + [np.lib.stride_tricks.as_strided(np.ones(1, np.float32), (3,), (0,),
                                                                        writeable=True)], 0.1, ValueError,
     r"params\[2\]: its elements overlap each other in memory"),
    ("twice", lambda w: w + [w[0]], 0.1, ValueError, r"params\[\d\] overlaps params\[\d\] in memory"),
    ("negative", lambda w: w, -0.5, ValueError, r"{name}: expected .*, got -0.5"),
    ("nan", lambda w: w, float("nan"), ValueError, r"{name}: expected .*, got nan"),
    ("inf", lambda w: w, float("inf"), ValueError, r"{name}: expected .*, got inf"),
    ("entry", lambda w: w, [0.1, -1.0], ValueError, r"{name}\[1\]: expected .*, got -1.0"),
    ("wrong length", lambda w: w, [0.1, 0.1, 0.1], ValueError, r"{name}: 3 coefficients for 2 arrays"),
    ("str", lambda w: w, "x", TypeError, r"{name}: expected a number or a sequence"),
    ("none", lambda w: w, None, TypeError, r"{name}: expected real numbers, got object"),
]


def check_update_rejects(op, name, pair, case):
    """An UPDATE_BAD case against op (prox_l1 or decay of rdf or the reference), its coefficient called name."""
    _, build, coef, exc, match = case
    params = build(pair[0])
    arrays = [a for a in params if isinstance(a, np.ndarray)]
    rejects(exc, match.format(name=name), lambda: op(params, coef), *arrays)


def check_update_on_misaligned_view(backend, dtype, shift, update):
    """update(view) on a view `shift` elements into a guard band of 5.0 (n around a chunk on the emulation,
    100003 elsewhere) does to the view what it does on the CPU and writes nothing outside; returns
    (update's result on the view, on the CPU)."""
    backend.require(dtype)
    n = CHUNK + 5 if backend.emulated else 100003
    w = values(np.random.default_rng(shift), n, dtype)
    base = np.full(n + 4, 5.0).astype(dtype)
    base[shift:shift + n] = w
    bd = backend.asarray(base)
    result = update(bd[shift:shift + n])
    cpu = w.copy()
    expected = update(cpu)
    bh = backend.to_numpy(bd)
    assert same_bits(bh[shift:shift + n], cpu)
    assert np.all(bh[:shift] == 5.0) and np.all(bh[shift + n:] == 5.0), "written outside the view"
    return result, expected


def is_result_scalar(backend, v, dtype) -> bool:
    """A penalty value / count as the backend returns it: a Python float or int on the CPU, a 0-d array of
    `dtype` (float64 / int64) of the arrays' library on a device."""
    if not backend.is_device:
        return type(v) is (float if np.dtype(dtype) == np.float64 else int)
    if backend.library == "torch":
        import torch

        return isinstance(v, torch.Tensor) and v.is_cuda and v.dim() == 0 and to_numpy(v).dtype == dtype
    return type(v).__module__.startswith("cupy") and v.shape == () and v.dtype == dtype


def scalar(v):
    """A result scalar of any backend as a Python number."""
    return v if isinstance(v, (int, float)) else to_numpy(v).item()


def cmake_project_tools() -> str | None:
    """Why this project cannot be configured with the cmake on the PATH (None: it can): none found, or one
    older than CMakeLists.txt's minimum (3.20), or no make for the "Unix Makefiles" generator the tests use."""
    cmake = shutil.which("cmake")
    if cmake is None:
        return "needs cmake"
    version = subprocess.run([cmake, "--version"], capture_output=True, text=True, timeout=60).stdout
    found = re.search(r"cmake version (\d+)\.(\d+)", version)
    if found is None or (int(found.group(1)), int(found.group(2))) < (3, 20):
        return f"needs cmake >= 3.20 (CMakeLists.txt's minimum), found {version.splitlines()[0] if version else cmake}"
    if shutil.which("make") is None:
        return "needs make"
    return None
