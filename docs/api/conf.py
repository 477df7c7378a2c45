"""Sphinx configuration of the API reference, built offline from the numpydoc docstrings by
`make docs` (and `make test`) with warnings as errors: a docstring that stops rendering
fails CI."""

import inspect
import re

project = "deepae"
author = "the deepae developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.autosummary", "numpydoc"]

autosummary_generate = False          # one hand-written page; tables only
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"            # the Parameters and Returns sections carry the types
# an override without a docstring (get_config, on_epoch_end, ...) would show Keras's or
# scikit-learn's text, which is not numpydoc
autodoc_inherit_docstrings = False
# structural checks: an unknown section (dropped silently otherwise), a paragraph read as
# parameters, a section out of order
numpydoc_validation_checks = {"GL06", "GL07", "PR02", "PR10"}

html_theme = "alabaster"
exclude_patterns = ["_build"]

# scikit-learn's generated set_*_request methods use its own glossary's labels
_ROUTING = re.compile(r"set_\w+_request$")


def _skip(app, what, name, obj, skip, options):
    return True if _ROUTING.match(name) else None


def _signature(app, what, name, obj, options, signature, return_annotation):
    # Keras's Layer and Model define __new__(cls, *args, **kwargs), which autodoc prefers to
    # __init__: show the real parameters
    if what == "class" and signature == "(*args, **kwargs)" and "__init__" in vars(obj):
        sig = inspect.signature(obj.__init__)
        params = [p.replace(annotation=p.empty) for p in list(sig.parameters.values())[1:]]
        return str(sig.replace(parameters=params, return_annotation=sig.empty)), None
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip)
    app.connect("autodoc-process-signature", _signature)
