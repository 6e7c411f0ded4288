"""The CUDA list ops' launch packing (csrc/cuda/list_plan.h), checked on the host: no GPU or CUDA needed.

tests/native/list_plan_main.cpp plans fixed edge cases (chunk and launch boundaries, the per-launch array
limit, empty arrays, left-out arrays, 2^34 elements) and 400 random lists, and checks every plan against
what the kernels rely on; it is built here with the host C++ compiler.
"""

import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CXX = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")


@pytest.mark.skipif(CXX is None, reason="needs a host C++ compiler")
def test_list_plan_packs_every_chunk_once_within_the_limits(tmp_path):
    exe = tmp_path / "list_plan"
    subprocess.run(
        [CXX, "-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", str(ROOT / "tests/native/list_plan_main.cpp"),
         "-o", str(exe)],
        check=True, capture_output=True, text=True,
    )
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("ok "), run.stdout
    assert int(run.stdout.split()[1]) >= 400


@pytest.mark.skipif(CXX is None, reason="needs a host C++ compiler")
def test_emulated_launch_outside_the_limits_raises_and_runs_nothing(tmp_path):
    """tests/native/emulated_launch_limits_main.cpp: the CUDA emulation refuses launches outside the device's
    grid and block limits as a GPU does (reported by the next cudaGetLastError, nothing run), and
    csrc/cuda/check_cuda.h's check_launch turns that into an exception naming the launch."""
    exe = tmp_path / "launch_limits"
    subprocess.run(
        [CXX, "-std=c++17", "-O1", "-Wall", "-Werror", f"-I{ROOT / 'tests/native/cuda_emulation'}",
         str(ROOT / "tests/native/emulated_launch_limits_main.cpp"), "-o", str(exe)],
        check=True, capture_output=True, text=True,
    )
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("ok "), run.stdout
    assert int(run.stdout.split()[1]) == 26
