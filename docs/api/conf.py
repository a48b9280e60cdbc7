"""Sphinx configuration of the API reference (built from the docstrings, numpydoc style).

Build: ``python -m sphinx -W --keep-going -b html docs/api docs/api/_build`` (warnings are errors;
tests/test_api_docs.py does this)."""

from particledyn import __version__

project = "particledyn"
release = version = __version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon"]
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
exclude_patterns = ["_build"]
html_theme = "alabaster"
# the reference documents this project's objects; links to numpy, h5py ... would need the network
nitpicky = False
# attribute names shared by several classes (positions, masses, step) are ambiguous as bare
# references in numpydoc type fields; they stay plain text
suppress_warnings = ["ref.python"]
