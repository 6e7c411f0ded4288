"""results.json records the commit the package was built from: CMakeLists.txt writes _build_info.py at
configure time (installed next to the extension), "unknown" when the source tree has no git metadata."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cmake_project_tools

ROOT = Path(__file__).resolve().parents[1]

CMAKE_MISSING = cmake_project_tools()
needs_tools = pytest.mark.skipif(CMAKE_MISSING is not None or shutil.which("git") is None
                                 or not (ROOT / ".git").exists(),
                                 reason=CMAKE_MISSING or "needs git and a git checkout")


def _configure(src: Path, build: Path) -> dict:
    pybind11 = pytest.importorskip("pybind11")
    subprocess.run(["cmake", "-S", str(src), "-B", str(build), "-DSKBUILD_PROJECT_NAME=regdrop_fast",
                    "-DSKBUILD_PROJECT_VERSION=0.1.0", f"-DPython_EXECUTABLE={sys.executable}",
                    f"-Dpybind11_DIR={pybind11.get_cmake_dir()}", "-DREGDROP_CUDA=OFF"],
                   check=True, capture_output=True, text=True, timeout=120)
    namespace: dict = {}
    exec((build / "_build_info.py").read_text(), namespace)  # noqa: S102 - written by our CMakeLists.txt
    return namespace


@needs_tools
def test_clean_clone_records_its_commit_and_a_tree_without_git_records_unknown(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    head = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()
    info = _configure(clone, tmp_path / "b1")
    assert info["git_commit"] == head and re.fullmatch(r"[0-9a-f]{40}", head)
    assert info["git_dirty"] is False and info["version"] == "0.1.0"

    shutil.rmtree(clone / ".git")  # an unpacked sdist / tarball
    info = _configure(clone, tmp_path / "b2")
    assert info["git_commit"] == "unknown" and info["git_dirty"] is None


def test_results_json_build_entry():
    from regdrop_fast.bench import environment

    build = environment.build_commit()
    assert set(build) == {"commit", "dirty", "source"}
    assert build["commit"] == "unknown" or re.fullmatch(r"[0-9a-f]{40}", build["commit"])
