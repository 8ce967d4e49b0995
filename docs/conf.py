"""Sphinx configuration of the xgamma documentation (``sphinx-build -W -b html docs docs/_build``)."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))  # document the checkout, installed or not

project = "xgamma"
author = "xgamma developers"
copyright = "2026, xgamma developers"  # noqa: A001 - Sphinx's name

extensions = [
    "myst_parser",            # Markdown pages
    "sphinx.ext.autodoc",     # API reference from docstrings
    "sphinx.ext.napoleon",    # numpydoc-style docstrings
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints", "README.md"]

# Docstrings are numpydoc; single backticks name Python objects.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_ivar = True          # "Attributes" sections do not duplicate autodoc's attributes
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"        # signatures show the hints; docstrings give types with units
autodoc_default_options = {"members": True, "show-inheritance": False}
default_role = "py:obj"

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

html_theme = "alabaster"
html_title = "xgamma"
html_static_path: list[str] = []


# A trailing underscore ("lambda_ E") is reStructuredText link syntax; in docstrings it is
# always a Python name (keyword clash), so escape it in prose lines (not in ``literals``).
import re  # noqa: E402

_TRAILING_UNDERSCORE = re.compile(r"\b([A-Za-z][A-Za-z0-9]*)_(?=[\s,.;:)]|$)")


def _escape_trailing_underscores(app, what, name, obj, options, lines):
    for i, line in enumerate(lines):
        if "``" not in line and "`" not in line and "_" in line:
            lines[i] = _TRAILING_UNDERSCORE.sub(r"\1\\_", line)


def setup(app):
    app.connect("autodoc-process-docstring", _escape_trailing_underscores)
