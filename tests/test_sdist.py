"""The source distribution holds exactly the project's files: every file git tracks (or would track: not
ignored), so that `pip install regdrop_fast-*.tar.gz` builds what `pip install .` builds, and nothing a local
build leaves behind (build/, the extension modules, _build_info.py). A file the build needs but the sdist
leaves out would only fail for the user who installs from it; this test finds it first.

Needs scikit-build-core (the build backend; CI's floor venv has it) and a git checkout."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys
import tarfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _project_files() -> set[str]:
    """What the sdist should hold: the tracked files and the untracked ones git does not ignore, as they are
    on disk now (a file deleted but not yet committed is not expected)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True, timeout=60).stdout
    return {name for name in listed.split("\0") if name and (ROOT / name).is_file()}


def test_sdist_holds_the_project_files_and_nothing_built(tmp_path):
    pytest.importorskip("scikit_build_core")
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout (the expected file list is git's)")
    built = subprocess.run(
        [sys.executable, "-c",
         "import sys; from scikit_build_core.build import build_sdist; print(build_sdist(sys.argv[1]))",
         str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    archive = tmp_path / built.stdout.strip().splitlines()[-1]
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert archive.name == f"regdrop_fast-{version}.tar.gz"
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
    top = f"regdrop_fast-{version}/"
    assert all(m.name.startswith(top) for m in members), [m.name for m in members if not m.name.startswith(top)]
    in_sdist = {m.name[len(top):] for m in members}

    expected = _project_files()
    missing = sorted(expected - in_sdist)
    extra = sorted(in_sdist - expected - {"PKG-INFO"})
    assert not missing, f"project files left out of the sdist: {missing}"
    assert not extra, f"files in the sdist that are not the project's: {extra}"
    # What the build needs is among them (a check of the comparison itself: an empty listing would pass it).
    for needed in ("pyproject.toml", "CMakeLists.txt", "README.md", "LICENSE", "python/regdrop_fast/__init__.py",
                   "csrc/common/philox.h", "csrc/bindings/cpu.cpp"):
        assert needed in in_sdist, needed
    assert not any(name.endswith((".so", ".pyd", ".o")) or name.startswith("build/") for name in in_sdist)
