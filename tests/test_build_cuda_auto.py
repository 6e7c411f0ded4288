"""REGDROP_CUDA=AUTO never fails a build that the CPU extension alone can finish.

An nvcc whose toolkit (headers, cudart) CMake cannot locate -- CMake 3.18 behind this machine's nvcc wrapper
script did exactly that -- is simulated with CMAKE_DISABLE_FIND_PACKAGE_CUDAToolkit: AUTO then configures the
CPU extension with a warning, ON stops with an error. Configure only (no compile), with the cmake on the PATH
(in CI's floor venv, the oldest CMake pyproject.toml declares).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cmake_project_tools

ROOT = Path(__file__).resolve().parents[1]

CMAKE_MISSING = cmake_project_tools()
pytestmark = [pytest.mark.skipif(CMAKE_MISSING is not None, reason=str(CMAKE_MISSING)),
              pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc")]

NO_TOOLKIT = "-DCMAKE_DISABLE_FIND_PACKAGE_CUDAToolkit=TRUE"


def _configure(build: Path, *definitions: str) -> subprocess.CompletedProcess:
    pybind11 = pytest.importorskip("pybind11")
    return subprocess.run(
        ["cmake", "-S", str(ROOT), "-B", str(build), "-G", "Unix Makefiles", "-DSKBUILD_PROJECT_NAME=regdrop_fast",
         "-DSKBUILD_PROJECT_VERSION=0.1.0", f"-DPython_EXECUTABLE={sys.executable}",
         f"-Dpybind11_DIR={pybind11.get_cmake_dir()}", *definitions],
        capture_output=True, text=True, timeout=300)


def _targets(build: Path) -> set[str]:
    """The targets the configuration planned (each has its CMakeFiles/<target>.dir)."""
    return {d.name.removesuffix(".dir") for d in (build / "CMakeFiles").glob("*.dir")}


def test_auto_without_a_toolkit_builds_the_cpu_extension_with_a_warning(tmp_path):
    run = _configure(tmp_path / "b", "-DREGDROP_CUDA=AUTO", NO_TOOLKIT)
    assert run.returncode == 0, run.stderr
    assert "was found but not its CUDA toolkit" in run.stderr and "building the CPU extension only" in run.stderr
    targets = _targets(tmp_path / "b")
    assert "_core" in targets and "rdf_cuda_kernels" not in targets and "_cuda" not in targets, targets


def test_auto_with_the_toolkit_builds_the_cuda_extension(tmp_path):
    # the control: the same configuration finds this machine's toolkit and plans the CUDA targets
    run = _configure(tmp_path / "b", "-DREGDROP_CUDA=AUTO")
    assert run.returncode == 0, run.stderr
    assert "CUDA toolkit" not in run.stderr
    targets = _targets(tmp_path / "b")
    assert {"_core", "rdf_cuda_kernels", "_cuda"} <= targets, targets


def test_on_without_a_toolkit_is_an_error(tmp_path):
    run = _configure(tmp_path / "b", "-DREGDROP_CUDA=ON", NO_TOOLKIT)
    assert run.returncode != 0
    assert "CUDAToolkit" in run.stderr
