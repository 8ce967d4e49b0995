"""docs/plugins.md documents every hook with its exact signature (datasette style)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from xgamma.plugin import spec
from xgamma.plugin.manager import HOOKS

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
HOOK_NAMES = sorted(name for name in dir(spec) if name.startswith("xgamma_"))


def _signature(fn) -> str:
    sig = inspect.signature(fn)
    params = ", ".join(str(p) for p in sig.parameters.values())
    # Annotations are strings (`from __future__ import annotations`): the text as written.
    return f"{fn.__name__}({params}) -> {fn.__annotations__['return']}"


def _documented() -> dict[str, str]:
    found = re.findall(r"^### `((xgamma_\w+)\(.*\).*)`$", DOC.read_text(), flags=re.MULTILINE)
    return {name: text for text, name in found}


def test_hook_list_is_complete():
    assert set(HOOK_NAMES) == {hook for hook, _ in HOOKS.values()}


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_hook_is_documented_with_its_signature(hook):
    documented = _documented()
    assert hook in documented, f"{hook} is missing from {DOC.name}"
    assert documented[hook] == _signature(getattr(spec, hook))


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_hookspec_docstring_is_complete(hook):
    doc = getattr(spec, hook).__doc__
    for section in ("Returns", "versionadded", "Examples", "@hookimpl", "All results are collected"):
        assert section in doc, f"{hook} docstring lacks {section!r}"


def test_no_undocumented_extra_hooks_in_page():
    assert set(_documented()) <= set(HOOK_NAMES)


def test_spec_example_plugin_runs_and_passes_conformance():
    """The complete example in the spectral hookspec works as written (registered at runtime)."""
    import textwrap
    import types

    from xgamma.exceptions import PluginError
    from xgamma.plugin import get_registry, register_plugin
    from xgamma.testing import check_spectral_model

    doc = spec.xgamma_spectral_models.__doc__
    model_code = doc.split("the model (``mymodels/spectral.py``)::")[1].split("and the hook implementation")[0]
    hook_code = doc.split("which imports nothing heavy::")[1].split("After ``pip install")[0]
    module = types.ModuleType("_xgamma_doc_example")
    exec(textwrap.dedent(model_code), module.__dict__)
    plugin = types.ModuleType("_xgamma_doc_example_plugin")
    plugin.SuperExpCutoff = module.SuperExpCutoff  # the class itself instead of its import path
    exec(textwrap.dedent(hook_code).replace('"mymodels.spectral:SuperExpCutoff"', "SuperExpCutoff"),
         plugin.__dict__)
    info = register_plugin(plugin, name="doc-example")
    assert info.describe() == "plugin 'doc-example' (registered at runtime)"
    assert get_registry().get_spectral_model("SuperExpCutoffSpectralModel") is module.SuperExpCutoff
    check_spectral_model(module.SuperExpCutoff)
    with pytest.raises(PluginError, match="doc-example"):
        register_plugin(plugin, name="doc-example")  # name taken
