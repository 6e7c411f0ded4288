"""The package's layering (docs/architecture.md): no import cycle, no import hidden in a function body to
get around one, and every module importable on its own in a fresh interpreter."""

from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys

import pytest

import regdrop_fast

PACKAGE = pathlib.Path(regdrop_fast.__file__).resolve().parent
# Entry points that import their subcommands' machinery when the subcommand runs (so `regdrop-fast info`
# starts without matplotlib or torch): function-level imports are allowed there and nowhere else.
LAZY_ALLOWED = ("regdrop_fast.cli", "regdrop_fast.bench", "regdrop_fast.demo")
OPTIONAL = ("regdrop_fast.torch", "regdrop_fast.bench.torch_layer")  # need torch
OPTIONAL_DASK = ("regdrop_fast.dask",)  # needs dask


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for f in sorted(PACKAGE.rglob("*.py")):
        parts = f.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


def _package_imports(name: str, path: pathlib.Path, top_level: bool):
    """(line, imported module) for each import of a package module, at module level or inside functions."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        in_function = False
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        for parent in ast.walk(tree):
            if isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
                    n is node for n in ast.walk(parent)):
                in_function = True
        if in_function == top_level:
            continue
        targets = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            for alias in node.names:
                targets.append(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
        else:
            targets = [a.name for a in node.names]
        found += [(node.lineno, t) for t in targets if t.startswith("regdrop_fast")]
    return found


MODULES = _modules()


def test_module_level_imports_form_no_cycle():
    graph = {m: {t for _, t in _package_imports(m, p, top_level=True) if t in MODULES and t != m}
             for m, p in MODULES.items()}
    # A package's __init__ importing its own submodules is the package assembling itself, not a dependency
    # of those submodules on it; drop parent -> child edges, keep everything else.
    for m in graph:
        graph[m] = {t for t in graph[m] if not t.startswith(m + ".")}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the directed graph as a path [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m, trail):
        if state.get(m) == 2:
            return None
        if state.get(m) == 1:
            return trail[trail.index(m):] + [m]
        state[m] = 1
        for t in sorted(graph.get(m, ())):
            found = visit(t, trail + [m])
            if found:
                return found
        state[m] = 2
        return None

    for m in sorted(graph):
        found = visit(m, [])
        if found:
            return found
    return None


def test_no_function_level_imports_of_the_package_outside_the_entry_points():
    hidden = [f"{m}:{line} imports {t}" for m, p in MODULES.items() if not m.startswith(LAZY_ALLOWED)
              for line, t in _package_imports(m, p, top_level=False)]
    assert not hidden, "imports inside functions (a cycle held together at call time?):\n" + "\n".join(hidden)


def test_the_cycle_search_finds_cycles():
    """find_cycle fails on a cycle (so the test above passing means something)."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a"}}) == ["a", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.long(cpu_s=45)  # 30-odd interpreters, many importing torch
def test_each_module_imports_alone_in_a_fresh_interpreter():
    """Every module of the library (the bench and demo machinery of the command line aside), first in its
    own interpreter, four at a time: a cycle that only bites when a module is imported first shows here."""
    try:
        import torch  # noqa: F401
    except ImportError:
        skip = OPTIONAL
    else:
        skip = ()
    try:
        import dask.array  # noqa: F401
    except ImportError:
        skip += OPTIONAL_DASK
    todo = [m for m in sorted(MODULES) if m != "regdrop_fast.__main__" and not m.startswith(skip)
            and not m.startswith(("regdrop_fast.bench", "regdrop_fast.demo"))]
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    failed = []
    for start in range(0, len(todo), 4):
        batch = todo[start:start + 4]
        procs = [(m, subprocess.Popen([sys.executable, "-c", f"import importlib; importlib.import_module({m!r})"],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
                 for m in batch]
        for m, proc in procs:
            _, err = proc.communicate(timeout=300)
            if proc.returncode:
                failed.append(f"{m}:\n{err[-2000:]}")
    assert not failed, "modules that fail to import alone:\n" + "\n".join(failed)
