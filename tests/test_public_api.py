"""The public namespaces hold only the public API, and the docstrings' examples run (doctest)."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import inspect
import sys

import pytest

import regdrop_fast

HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_DASK = importlib.util.find_spec("dask") is not None

# The documented public names of each public module (README's API lists, docs/torch.md).
PUBLIC = {
    "regdrop_fast": ["DataParallelGenerator", "Generator", "Mask", "backend_info", "bias_dropout_add", "bias_dropout_add_backward", "cuda",
                     "decay", "dropout", "dropout_add", "dropout_backward", "dropout_mask", "get_num_threads",
                     "max_norm", "non_neg", "norm_constraint", "penalty", "penalty_grad", "prox_group_l1",
                     "prox_l1", "random", "reference", "set_num_threads", "set_simd", "unit_norm"]
    + ["alpha_dropout", "alpha_dropout_backward", "drop_path"]
    + ["GaussianNoise", "gaussian_dropout", "gaussian_dropout_backward"],
    "regdrop_fast.random": ["philox4x32"],
    "regdrop_fast.dask": ["Mask", "dropout", "dropout_backward", "penalty"],
    "regdrop_fast.cuda": ["device_count", "device_names", "is_available", "is_device_array"],
    "regdrop_fast.reference": ["Mask", "bias_dropout_add", "bias_dropout_add_backward", "decay", "dropout",
                               "dropout_add", "dropout_backward", "dropout_mask", "max_norm", "non_neg",
                               "norm_constraint", "penalty", "penalty_grad", "philox4x32", "prox_group_l1",
                               "prox_l1", "unit_norm"]
    + ["alpha_dropout", "alpha_dropout_backward", "drop_path"]
    + ["gaussian_dropout", "gaussian_dropout_backward", "standard_normals"],
    "regdrop_fast.torch": ["BiasDropoutAdd", "DataParallelGenerator", "Dropout", "Generator", "add_penalty_grad_", "bias_dropout_add",
                           "decay_", "dropout", "empty_cache", "max_norm_", "non_neg_", "norm_constraint_",
                           "penalty", "prox_l1_", "unit_norm_"]
    + ["alpha_dropout", "drop_path", "dropout1d", "dropout2d", "dropout3d", "dropout_shared", "feature_alpha_dropout"]
    + ["AlphaDropout", "DropPath", "Dropout1d", "Dropout2d", "Dropout3d", "FeatureAlphaDropout", "GaussianDropout",
       "gaussian_dropout"],
}


# The library a public module wraps, which it keeps under its own name (regdrop_fast.torch.torch is torch).
WRAPPED = {"regdrop_fast.torch": ["torch"]}


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_namespace_holds_only_the_public_api(name):
    if name == "regdrop_fast.torch" and not HAVE_TORCH:
        pytest.skip("needs torch")
    if name == "regdrop_fast.dask" and not HAVE_DASK:
        pytest.skip("needs dask")
    mod = importlib.import_module(name)
    expected = list(PUBLIC[name]) + WRAPPED.get(name, [])
    # A submodule imported anywhere (regdrop_fast.torch, .bench, .demo, .cli by other tests) becomes an
    # attribute of its package: Python's import system does that, not the package.
    expected += [n for n in vars(mod) if not n.startswith("_") and n not in expected
                 and isinstance(getattr(mod, n), type(sys)) and f"{name}.{n}" in sys.modules]
    # vars(), not dir(): a module-level __dir__ could hide names that are still there.
    assert sorted(n for n in vars(mod) if not n.startswith("_")) == sorted(expected)
    assert "__dir__" not in vars(mod), "the namespace itself holds only the API"
    assert sorted(mod.__all__) == sorted(PUBLIC[name])


DOCTEST_MODULES = ["regdrop_fast._dropout", "regdrop_fast._mask", "regdrop_fast._penalty",
                   "regdrop_fast._generator", "regdrop_fast._info", "regdrop_fast.random", "regdrop_fast.cuda",
                   "regdrop_fast._arrays", "regdrop_fast.reference.dropout", "regdrop_fast.reference.penalty",
                   "regdrop_fast.reference.philox", "regdrop_fast._gaussian_dropout", "regdrop_fast._gaussian_noise",
                   "regdrop_fast.reference.gaussian_dropout",
                   pytest.param("regdrop_fast.torch", marks=pytest.mark.skipif(not HAVE_TORCH, reason="needs torch")),
                   pytest.param("regdrop_fast.dask", marks=pytest.mark.skipif(not HAVE_DASK, reason="needs dask"))]


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


# Documented so far, each with the numpydoc sections it needs (no Returns for a class or a function returning
# None, no Parameters for one without any, no Raises for one that raises nothing); looked up where they live.
# Names under "torch." are checked only where torch is installed (regdrop_fast.torch is imported for them).
# Still to do: nothing among the public functions (regdrop_fast.torch.Generator is regdrop_fast.Generator).
ALL = ("Parameters", "Returns", "Raises", "Examples")
NUMPYDOC_DONE = {
    **{name: ALL for name in ("dropout", "dropout_backward", "dropout_mask", "penalty_grad", "penalty",
                              "prox_l1", "decay", "max_norm", "set_simd", "random.philox4x32",
                              "Generator.manual_seed", "Generator.next", "bias_dropout_add",
                              "bias_dropout_add_backward", "dropout_add")},
    "Mask": ("Parameters", "Attributes", "Raises", "Examples"),
    "Mask.to_bool": ("Returns", "Raises", "Examples"),
    "Generator": ("Parameters", "Attributes", "Raises", "Examples"),
    "Generator.initial_seed": ("Returns", "Examples"),
    "Generator.get_offset": ("Returns", "Examples"),
    "Generator.set_offset": ("Parameters", "Raises", "Examples"),
    "Generator.get_state": ("Returns", "Examples"),
    "Generator.set_state": ("Parameters", "Raises", "Examples"),
    "Generator.state_dict": ("Returns", "Examples"),
    "Generator.load_state_dict": ("Parameters", "Raises", "Examples"),
    "DataParallelGenerator": ("Parameters", "Attributes", "Raises", "Examples"),
    "DataParallelGenerator.next": ALL,
    **{f"dask.{name}": ALL for name in ("dropout", "dropout_backward", "penalty")},
    "dask.Mask": ("Parameters", "Raises", "Examples"),
    "dask.Mask.to_bool": ("Returns", "Examples"),
    "set_num_threads": ("Parameters", "Raises", "Examples"),
    "get_num_threads": ("Returns", "Examples"),
    "backend_info": ("Returns", "Examples"),
    "cuda.device_count": ("Returns", "Examples"),
    "cuda.is_available": ("Returns", "Examples"),
    "cuda.device_names": ("Returns", "Examples"),
    "cuda.is_device_array": ("Parameters", "Returns", "Examples"),
    **{f"reference.{name}": ALL for name in ("dropout", "dropout_backward", "dropout_mask", "penalty_grad",
                                             "penalty", "prox_l1", "decay", "max_norm", "philox4x32",
                                             "bias_dropout_add", "bias_dropout_add_backward", "dropout_add")},
    **{f"torch.{name}": ALL for name in ("dropout", "add_penalty_grad_", "penalty", "prox_l1_", "decay_",
                                            "max_norm_")},
    **{name: ALL for name in ("prox_group_l1", "reference.prox_group_l1")},
    **{name: ALL for name in ("norm_constraint", "unit_norm", "non_neg", "reference.norm_constraint",
                              "reference.unit_norm", "reference.non_neg", "torch.norm_constraint_",
                              "torch.unit_norm_", "torch.non_neg_")},
    "torch.Dropout": ("Parameters", "Attributes", "Raises", "Examples"),
    "torch.bias_dropout_add": ALL,
    "torch.BiasDropoutAdd": ("Parameters", "Attributes", "Raises", "Examples"),
    "torch.empty_cache": ("Examples",),
    **{name: ALL for name in ("gaussian_dropout", "gaussian_dropout_backward", "reference.gaussian_dropout",
                              "reference.gaussian_dropout_backward", "reference.standard_normals",
                              "torch.gaussian_dropout")},
    "GaussianNoise": ("Parameters", "Attributes", "Raises", "Examples"),
    "torch.GaussianDropout": ("Parameters", "Attributes", "Raises", "Examples"),
    **{f"torch.{name}": ("Parameters", "Attributes", "Raises", "Examples")
       for name in ("Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout", "DropPath")},
}


def test_public_functions_have_numpydoc_docstrings():
    missing = []
    if HAVE_TORCH:
        importlib.import_module("regdrop_fast.torch")
    if HAVE_DASK:
        importlib.import_module("regdrop_fast.dask")
    for name, sections in NUMPYDOC_DONE.items():
        if (name.startswith("torch.") and not HAVE_TORCH) or (name.startswith("dask.") and not HAVE_DASK):
            continue
        obj = regdrop_fast
        for part in name.split("."):
            obj = getattr(obj, part)
        doc = inspect.cleandoc(obj.__doc__ or "")
        for section in sections:
            if f"\n{section}\n{'-' * len(section)}\n" not in doc:
                missing.append(f"{name}: {section}")
    assert not missing, missing
