"""The public namespaces hold only the public API, and the docstrings' examples run (doctest)."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import sys

import pytest

import regdrop_fast

HAVE_TORCH = importlib.util.find_spec("torch") is not None

# The documented public names of each public module (README's API lists, docs/torch.md).
PUBLIC = {
    "regdrop_fast": ["Generator", "Mask", "backend_info", "cuda", "decay", "dropout", "dropout_backward",
                     "dropout_mask", "get_num_threads", "max_norm", "penalty", "penalty_grad", "prox_l1",
                     "random", "reference", "set_num_threads", "set_simd"],
    "regdrop_fast.random": ["philox4x32"],
    "regdrop_fast.cuda": ["device_count", "device_names", "is_available", "is_device_array"],
    "regdrop_fast.reference": ["Mask", "decay", "dropout", "dropout_backward", "dropout_mask", "max_norm",
                               "penalty", "penalty_grad", "philox4x32", "prox_l1"],
    "regdrop_fast.torch": ["Dropout", "Generator", "add_penalty_grad_", "decay_", "dropout", "empty_cache",
                           "max_norm_", "penalty", "prox_l1_"],
}


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_namespace_holds_only_the_public_api(name):
    if name == "regdrop_fast.torch" and not HAVE_TORCH:
        pytest.skip("needs torch")
    mod = importlib.import_module(name)
    expected = list(PUBLIC[name])
    # A submodule imported anywhere (regdrop_fast.torch, .bench, .demo, .cli by other tests) becomes an
    # attribute of its package: Python's import system does that, not the package.
    expected += [n for n in dir(mod) if not n.startswith("_") and n not in expected
                 and isinstance(getattr(mod, n), type(sys)) and f"{name}.{n}" in sys.modules]
    assert [n for n in dir(mod) if not n.startswith("_")] == sorted(expected)
    assert sorted(mod.__all__) == sorted(PUBLIC[name])


DOCTEST_MODULES = ["regdrop_fast._dropout", "regdrop_fast._mask", "regdrop_fast._penalty",
                   "regdrop_fast._generator", "regdrop_fast._info", "regdrop_fast.random", "regdrop_fast.cuda"]


@pytest.mark.parametrize("name", DOCTEST_MODULES)
def test_docstring_examples_run(name):
    mod = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(mod, name, globs={"np": __import__("numpy"), "rf": regdrop_fast})
    threads = regdrop_fast.get_num_threads()
    try:
        for test in tests:
            runner.run(test)
    finally:
        regdrop_fast.set_num_threads(threads)
    result = runner.summarize(verbose=False)
    assert result.failed == 0


# Documented so far; still to do: Mask, Generator, set_num_threads, get_num_threads, set_simd, backend_info,
# random.philox4x32, the cuda and reference modules and regdrop_fast.torch.
NUMPYDOC_DONE = ["dropout", "dropout_backward", "dropout_mask", "penalty_grad", "penalty", "prox_l1", "decay",
                 "max_norm"]


def test_public_functions_have_numpydoc_docstrings():
    missing = []
    for attr in NUMPYDOC_DONE:
        doc = getattr(regdrop_fast, attr).__doc__ or ""
        for section in ("Parameters", "Returns", "Raises", "Examples"):
            if f"{section}\n    {'-' * len(section)}" not in doc:
                missing.append(f"{attr}: {section}")
    assert not missing, missing
