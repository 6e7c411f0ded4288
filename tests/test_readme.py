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


def _pinned_torch(name: str) -> str:
    text = (README.parent / ".ci" / name).read_text()
    (version,) = re.findall(r"^torch==(\S+)$", text, flags=re.M)
    return version


def test_supported_torch_range_is_the_tested_one():
    # .ci/run tests the torch suite on these two pins; the [torch] extra and the README must say the same.
    floor, newest = _pinned_torch("requirements-torch-floor.txt"), _pinned_torch("requirements-torch-newest.txt")
    pyproject = (README.parent / "pyproject.toml").read_text()
    assert re.search(r'^torch = \["torch>=(\S+)"\]$', pyproject, flags=re.M).group(1) == floor.rsplit(".0", 1)[0]
    minor = lambda v: ".".join(v.split(".")[:2])  # noqa: E731
    assert f"Supported torch: {minor(floor)} (the `[torch]` extra's floor) to {minor(newest)}" in README.read_text()
