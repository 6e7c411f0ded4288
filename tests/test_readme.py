"""The README's Python examples run as written (in order, sharing one namespace)."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - the README is ours
    assert namespace["zeros"] == 256 and namespace["value"] > 0


def _pins(name: str) -> dict[str, str]:
    """The exact pins (name==version) of a .ci requirements file."""
    text = (README.parent / ".ci" / name).read_text()
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", text, flags=re.M))


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def test_supported_torch_range_is_the_tested_one():
    # .ci/run tests the torch suite on these two pins; the README must say the same (the [torch] extra's
    # bound: test_declared_floors_are_the_tested_ones).
    floor, newest = _pins("requirements-floor.txt")["torch"], _pins("requirements-newest.txt")["torch"]
    assert f"Supported torch: {_minor(floor)} (the `[torch]` extra's floor) to {_minor(newest)}" in README.read_text()


def test_declared_floors_are_the_tested_ones():
    # .ci/run builds the package with requirements-floor.txt's build tools and runs the whole suite on its
    # runtime pins: every lower bound pyproject.toml declares for the build, a runtime dependency, torch and
    # scikit-learn (which the demo and the tests use) is one of its pins at the same minor version, CMake's
    # is CMakeLists.txt's too, and the README names the runtime ones.
    pins = _pins("requirements-floor.txt")
    pyproject = (README.parent / "pyproject.toml").read_text()
    bounds = re.findall(r'"([A-Za-z0-9_.-]+)(?:\[[a-z]+\])?>=([0-9.]+)"', pyproject)  # every occurrence
    readme = " ".join(README.read_text().split())
    for name in ("numpy", "ml_dtypes", "scikit-learn", "torch", "scikit-build-core", "pybind11"):
        declared = {bound for n, bound in bounds if n == name}
        assert declared == {_minor(pins[name])}, (name, declared, pins[name])
    cmake = re.search(r'^cmake\.version = ">=(\S+)"$', pyproject, flags=re.M).group(1)
    assert cmake == _minor(pins["cmake"])
    cmakelists = (README.parent / "CMakeLists.txt").read_text()
    assert f"cmake_minimum_required(VERSION {cmake}..." in cmakelists
    assert f"Supported NumPy: {_minor(pins['numpy'])} and newer" in readme
    assert f"with ml_dtypes {_minor(pins['ml_dtypes'])} and scikit-learn {_minor(pins['scikit-learn'])}" in readme
