"""The CPU loops' bfloat16 lane conversions (csrc/cpu/vec.h: load_lanes, store_lanes) give the bits of the
scalar ones (csrc/common/dtypes.h) for every input, on each SIMD path this CPU runs: the AVX-512 path has
its own instructions for them. tests/native/bf16_lanes_main.cpp checks all 2^32 float32 patterns; it is
built here with each path's flags as CMakeLists.txt gives them to that path's kernels."""

import pathlib
import re
import shutil
import subprocess

import pytest
from conftest import available_simd_levels

ROOT = pathlib.Path(__file__).resolve().parents[1]
CXX = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")


def isa_flags() -> dict[str, tuple[str, list[str]]]:
    """CMakeLists.txt's rdf_add_isa(name vec_bytes flags...) calls: name -> (vec_bytes, flags)."""
    text = (ROOT / "CMakeLists.txt").read_text()
    calls = re.findall(r"^\s*rdf_add_isa\((\w+)\s+(\d+)([^)]*)\)", text, re.M)
    return {name: (vec_bytes, flags.split()) for name, vec_bytes, flags in calls}


@pytest.mark.skipif(CXX is None, reason="needs a host C++ compiler")
@pytest.mark.parametrize("isa", available_simd_levels())
def test_bfloat16_lanes_match_the_scalar_conversions(tmp_path, isa):
    vec_bytes, flags = isa_flags()[isa]
    exe = tmp_path / f"bf16_lanes_{isa}"
    subprocess.run(
        [CXX, "-std=c++17", "-O3", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror", f"-DRDF_ISA={isa}",
         f"-DRDF_VEC_BYTES={vec_bytes}", *flags, str(ROOT / "tests/native/bf16_lanes_main.cpp"), "-o", str(exe)],
        check=True, capture_output=True, text=True,
    )
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == f"ok {isa}", run.stdout
