"""Sphinx configuration: the API reference (autodoc over the numpydoc docstrings) and the Markdown guides.

Build: ``python -m pip install ".[docs]" && python -m sphinx -W --keep-going -b html docs build/docs``
(the package, with its compiled extension, must be importable: installed, or ``PYTHONPATH=python`` after an
in-place build).
"""

import regdrop_fast

project = "regdrop_fast"
author = "regdrop_fast contributors"
copyright = "regdrop_fast contributors"
release = version = regdrop_fast.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_parser",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# numpydoc-style docstrings, rendered by napoleon.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
# The Attributes section as a field list of the class (its properties are documented as members too).
napoleon_use_ivar = True

# undoc-members: a function without a docstring is still listed (with its signature).
autodoc_default_options = {"members": True, "undoc-members": True, "member-order": "bysource"}
autodoc_typehints = "description"
autodoc_typehints_format = "short"

myst_heading_anchors = 3

html_theme = "alabaster"
html_title = f"regdrop_fast {release}"
