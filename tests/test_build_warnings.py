"""The per-ISA kernel sources compile without warnings under every ISA's flags, GCC's -Wpsabi included.

The flags are read from CMakeLists.txt's ``rdf_add_isa(...)`` calls, so a new ISA or flag is checked without
editing this file. -Wpsabi is the case that matters: a vector type wider than the flags allow, passed or
returned by value, gets no register ABI and is lowered lane by lane (the wheel build printed these notes
until float64 dropout lanes became two ISA-width halves, csrc/cpu/vec.h). -O0 keeps the compiles short;
GCC reports the ABI of vector signatures at any optimization level.
"""
import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CMAKE = (ROOT / "CMakeLists.txt").read_text()

pytestmark = pytest.mark.skipif(
    shutil.which("g++") is None or platform.machine() not in ("x86_64", "AMD64"),
    reason="needs g++ on x86-64 (the ISA flags in CMakeLists.txt are x86's)")


def isa_builds():
    """(name, vector bytes, extra flags) for every rdf_add_isa call in CMakeLists.txt."""
    calls = re.findall(r"^\s*rdf_add_isa\(([^)]*)\)", CMAKE, flags=re.M)
    builds = []
    for call in calls:
        name, vec_bytes, *flags = call.split()
        builds.append((name, int(vec_bytes), flags))
    return builds


def per_isa_sources():
    sources = re.search(r"set\(RDF_PER_ISA_SOURCES([^)]*)\)", CMAKE)
    assert sources, "CMakeLists.txt no longer sets RDF_PER_ISA_SOURCES"
    return sources.group(1).split()


def test_cmake_lists_every_isa():
    names = [name for name, _, _ in isa_builds()]
    assert names == ["generic", "avx2", "avx512"], names
    assert len(per_isa_sources()) >= 3


@pytest.mark.parametrize("name,vec_bytes,flags", isa_builds(), ids=[b[0] for b in isa_builds()])
@pytest.mark.parametrize("source", per_isa_sources())
def test_per_isa_source_compiles_without_warnings(name, vec_bytes, flags, source, tmp_path):
    cmd = ["g++", "-std=c++17", "-c", "-O0", "-Wall", "-Wextra", "-Wpsabi", "-Werror",
           f"-DRDF_ISA={name}", f"-DRDF_VEC_BYTES={vec_bytes}", *flags,
           str(ROOT / source), "-o", str(tmp_path / "out.o")]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"{' '.join(cmd)}\n{run.stderr[-4000:]}"
