"""Plugin manager: discovery, broken plugins, duplicates, blocking, typed entries."""

from __future__ import annotations

import pytest

from xgamma.exceptions import EstimatorError, ModelError, PluginError
from xgamma.plugin import (
    BackgroundEstimatorEntry,
    IRFReaderEntry,
    ModelPluginError,
    PluginWarning,
    Registry,
    SpatialModelEntry,
    SpectralModelEntry,
    create_plugin_manager,
    format_plugin_table,
    get_plugin_manager,
    get_registry,
    hookimpl,
)

GOOD = """
from xgamma.plugin import SpectralModelEntry, BackgroundEstimatorEntry, hookimpl

class Good:
    pass

@hookimpl
def xgamma_spectral_models():
    yield SpectralModelEntry("goodspec", Good, aliases=("GoodSpectralModel",))

@hookimpl
def xgamma_background_estimators():
    return [BackgroundEstimatorEntry("goodbkg", Good)]
"""


def _registry() -> Registry:
    return Registry(create_plugin_manager())


def test_entries_normalise_and_validate_names():
    entry = SpectralModelEntry("  PowerLaw3 ", "pkg.mod:Cls", aliases=("PL3", "powerlaw3", "pl3"))
    assert entry.name == "powerlaw3"
    assert entry.aliases == ("pl3",)  # lower-cased, the name itself and repeats dropped
    assert IRFReaderEntry("AEFF_2D", print).name == "aeff_2d"
    with pytest.raises(PluginError, match=r"SpatialModelEntry.name='2d gauss' is not a valid registry name"):
        SpatialModelEntry("2d gauss", object)
    with pytest.raises(PluginError, match=r"BackgroundEstimatorEntry.cls must be a class"):
        BackgroundEstimatorEntry("ring", 42)
    with pytest.raises(PluginError, match=r"is not an import reference"):
        SpectralModelEntry("x", "no_colon_here")
    with pytest.raises(PluginError, match=r"aliases must be a tuple of str"):
        SpectralModelEntry("x", object, aliases="single")
    with pytest.raises(PluginError, match=r"IRFReaderEntry.reader must be callable"):
        IRFReaderEntry("bkg_3d", 3)


def test_inline_plugin_and_aliases_resolve():
    class Model:
        pass

    class Inline:
        @hookimpl
        def xgamma_spectral_models(self):
            yield SpectralModelEntry("inline", Model, aliases=("InlineSpectralModel",))

    registry = Registry(create_plugin_manager(entrypoints=False, plugins=[("inline", Inline())]))
    assert registry.get_spectral_model("InlineSpectralModel") is Model
    assert registry.get_spectral_model("INLINE") is Model
    assert registry.spectral_models["inline"].plugin.name == "inline"
    with pytest.raises(ModelError, match=r"unknown spectral model 'nope'; known spectral models: .*inline"):
        registry.get_spectral_model("nope")
    with pytest.raises(EstimatorError, match=r"unknown background estimator 'nope'"):
        registry.get_background_estimator("nope")


def test_entry_point_plugin_is_discovered_with_distribution(fake_dist):
    fake_dist("good-ext", "good", GOOD, version="2.0")
    registry = _registry()
    component = registry.spectral_models["goodspec"]
    assert (component.plugin.name, component.plugin.distribution, component.plugin.version) == (
        "good", "good-ext", "2.0")
    assert registry.get_spectral_model("goodspectralmodel").__name__ == "Good"
    assert ("background_estimator", "goodbkg", "good", "good-ext", "2.0", "") in registry.rows()


def test_import_error_is_reported_and_others_still_load(fake_dist):
    fake_dist("good-ext", "good", GOOD)
    fake_dist("broken-ext", "broken", "import not_a_module_xyz\n", version="1.2")
    with pytest.warns(PluginWarning, match=r"plugin 'broken' \(dist broken-ext 1.2\) failed to load .*"
                                           r"ModuleNotFoundError: No module named 'not_a_module_xyz'"):
        registry = _registry()
    assert registry.get_spectral_model("goodspec").__name__ == "Good"
    assert registry.get_spectral_model("powerlaw").__name__ == "PowerLaw"
    # A name nobody provides may have come from the broken plugin: say so.
    with pytest.raises(PluginError, match=r"unknown spectral model 'brokenspec'.*plugin 'broken' "
                                          r"\(dist broken-ext 1.2\) failed to load") as info:
        registry.get_spectral_model("brokenspec")
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    assert isinstance(info.value, ModelError)  # callers catching the look-up error still work
    table = format_plugin_table(registry)
    assert "1 problem(s):\n  - plugin 'broken' (dist broken-ext 1.2) failed to load" in table
    assert any(line.split()[:5] == ["spectral_model", "goodspec", "good", "good-ext", "1.2"]
               for line in table.splitlines())


def test_hook_raising_is_reported_and_others_still_load(fake_dist):
    fake_dist("good-ext", "good", GOOD)
    fake_dist("raising-ext", "raising", """
        from xgamma.plugin import SpatialModelEntry, hookimpl

        @hookimpl
        def xgamma_spatial_models():
            yield SpatialModelEntry("first", object)
            raise RuntimeError("boom in hook")
    """, version="0.3")
    with pytest.warns(PluginWarning, match=r"plugin 'raising' \(dist raising-ext 0.3\) raised in "
                                           r"xgamma_spatial_models\(\): RuntimeError: boom in hook"):
        registry = _registry()
    assert "first" not in registry.spatial_models  # a hook that raised contributes nothing
    assert registry.get_spatial_model("gaussian").__name__ == "Gaussian"
    assert registry.get_spectral_model("goodspec").__name__ == "Good"
    with pytest.raises(PluginError, match=r"raised in xgamma_spatial_models\(\): RuntimeError: boom"):
        registry.get_spatial_model("first")
    # The failure concerns spatial models only: unknown spectral names stay a plain ModelError.
    with pytest.raises(ModelError, match="unknown spectral model 'first'"):
        registry.get_spectral_model("first")


def test_bad_return_values_are_reported(fake_dist):
    fake_dist("bad-ext", "bad", """
        from xgamma.plugin import SpectralModelEntry, hookimpl

        @hookimpl
        def xgamma_spectral_models():
            return [SpectralModelEntry("okspec", object), ("tuple", "instead")]

        @hookimpl
        def xgamma_background_estimators():
            return 42
    """)
    with pytest.warns(PluginWarning) as record:
        registry = _registry()
    messages = [str(w.message) for w in record]
    assert any("xgamma_spectral_models() returned tuple ('tuple', 'instead'), expected SpectralModelEntry"
               in m for m in messages), messages
    assert any("xgamma_background_estimators() returned int 42, expected an iterable of "
               "BackgroundEstimatorEntry" in m for m in messages), messages
    assert registry.get_spectral_model("okspec") is object  # valid entries of that plugin are kept


def test_misspelled_hook_is_rejected(fake_dist):
    fake_dist("typo-ext", "typo", """
        from xgamma.plugin import hookimpl

        @hookimpl
        def xgamma_spectral_model():
            return []
    """)
    with pytest.warns(PluginWarning, match=r"plugin 'typo' \(dist typo-ext 1.2\) implements unknown "
                                           r"hook\(s\) xgamma_spectral_model"):
        pm = create_plugin_manager()
    assert pm.get_plugin("typo") is None


def test_duplicate_of_builtin_is_rejected_naming_both(fake_dist):
    fake_dist("dup-ext", "dup", """
        from xgamma.plugin import SpectralModelEntry, hookimpl

        class Mine:
            pass

        @hookimpl
        def xgamma_spectral_models():
            yield SpectralModelEntry("powerlaw", Mine)
            yield SpectralModelEntry("mine", Mine)
    """, version="0.9")
    with pytest.warns(PluginWarning, match=r"spectral model 'powerlaw' from plugin 'dup' \(dist dup-ext 0.9\) "
                                           r"is rejected: the name 'powerlaw' is already provided by "
                                           r"plugin 'builtins' \(dist xgamma 0.1.0\)"):
        registry = _registry()
    assert registry.get_spectral_model("powerlaw").__module__ == "xgamma.models.spectral"
    assert registry.get_spectral_model("mine").__name__ == "Mine"
    # Strict mode (a plugin's CI): the rejected duplicate becomes a PluginError.
    with pytest.raises(ExceptionGroup, match=r"1 xgamma plugin problem") as info:
        registry.raise_for_failures()
    (error,) = info.value.exceptions
    assert isinstance(error, PluginError) and "already provided by plugin 'builtins'" in str(error)
    Registry(create_plugin_manager(entrypoints=False)).raise_for_failures()  # clean: no raise


def test_duplicate_between_plugins_names_both_providers(fake_dist):
    source = """
        from xgamma.plugin import SpatialModelEntry, hookimpl

        class Ring{n}:
            pass

        @hookimpl
        def xgamma_spatial_models():
            yield SpatialModelEntry("ringshape", Ring{n})
            yield SpatialModelEntry("only{n}", Ring{n})
    """
    fake_dist("aaa-ext", "aaa", source.format(n=1), version="1.0")
    fake_dist("bbb-ext", "bbb", source.format(n=2), version="2.0")
    with pytest.warns(PluginWarning, match=r"spatial model name 'ringshape' is provided by both plugin 'aaa' "
                                           r"\(dist aaa-ext 1.0\) and plugin 'bbb' \(dist bbb-ext 2.0\)"):
        registry = _registry()
    with pytest.raises(ModelPluginError, match=r"'ringshape' is provided by both plugin 'aaa' \(dist aaa-ext 1.0\) "
                                          r"and plugin 'bbb' \(dist bbb-ext 2.0\).*XGAMMA_DISABLE_PLUGINS=bbb"):
        registry.get_spatial_model("ringshape")
    assert registry.get_spatial_model("only1").__name__ == "Ring1"  # the rest stays usable
    assert registry.get_spatial_model("only2").__name__ == "Ring2"


def test_disable_env_var_blocks_plugins(fake_dist, monkeypatch):
    fake_dist("good-ext", "good", GOOD)
    module = fake_dist("broken-ext", "broken", "raise SystemExit('plugin exits at import')\n")
    monkeypatch.setenv("XGAMMA_DISABLE_PLUGINS", " broken , good ")
    registry = _registry()  # no warning: the broken plugin is never imported
    assert not registry.failures
    assert "goodspec" not in registry.spectral_models
    import sys

    assert module not in sys.modules
    monkeypatch.setenv("XGAMMA_DISABLE_PLUGINS", "good")
    with pytest.warns(PluginWarning, match=r"SystemExit: plugin exits at import"):
        registry = _registry()


def test_session_manager_is_cached_and_refreshable(fake_dist):
    from xgamma.plugin import refresh_plugins

    pm = get_plugin_manager()
    assert get_plugin_manager() is pm and get_registry().manager is pm
    fake_dist("late-ext", "late", GOOD)
    assert "goodspec" not in get_registry().spectral_models  # cached until refreshed
    refresh_plugins()
    assert get_plugin_manager() is not pm
    assert "goodspec" in get_registry().spectral_models


def test_lazy_reference_errors_name_the_plugin():
    class Lazy:
        @hookimpl
        def xgamma_spectral_models(self):
            yield SpectralModelEntry("ghost", "xgamma.models.spectral:NoSuchModel")

    registry = Registry(create_plugin_manager(entrypoints=False, plugins=[("lazy", Lazy())]))
    assert "ghost" in registry.spectral_models  # listing does not import
    with pytest.raises(PluginError, match=r"spectral model 'ghost' from plugin 'lazy' \(registered at runtime\) "
                                          r"cannot be imported from 'xgamma.models.spectral:NoSuchModel': "
                                          r"AttributeError"):
        registry.get_spectral_model("ghost")


def test_trylast_plugin_cannot_take_a_builtin_name():
    class Sneaky:
        @hookimpl(trylast=True)  # pluggy would order this impl before the built-ins
        def xgamma_spatial_models(self):
            yield SpatialModelEntry("point", object)

    with pytest.warns(PluginWarning, match=r"spatial model 'point' from plugin 'sneaky' .* is rejected"):
        registry = Registry(create_plugin_manager(entrypoints=False, plugins=[("sneaky", Sneaky())]))
    assert registry.get_spatial_model("point").__module__ == "xgamma.models.spatial"


def test_hooks_are_called_through_pluggy_so_wrappers_and_tracing_apply():
    """A hook wrapper sees (and may edit) every plugin's entries; pluggy's tracing logs each call."""
    class Model:
        pass

    calls = []

    class Provider:
        @hookimpl
        def xgamma_spectral_models(self):
            return [SpectralModelEntry("wrapped", Model), SpectralModelEntry("dropped", Model)]

    class Observer:
        @hookimpl(wrapper=True)
        def xgamma_spectral_models(self):
            entries = yield
            calls.append([entry.name for result in entries for entry in result])
            return [[entry for entry in result if entry.name != "dropped"] for result in entries]

    pm = create_plugin_manager(entrypoints=False, plugins=[("provider", Provider()), ("observer", Observer())])
    traced = []
    pm.trace.root.setwriter(traced.append)
    undo = pm.enable_tracing()
    try:
        registry = Registry(pm)
    finally:
        undo()
    assert ["wrapped", "dropped"] in calls and any("powerlaw" in names for names in calls)  # once per provider
    assert registry.get_spectral_model("wrapped") is Model
    assert "dropped" not in registry.spectral_models
    assert "observer" not in {row.plugin for row in registry.rows()}  # a wrapper provides nothing
    assert any("xgamma_spectral_models" in line for line in traced)


def test_hook_under_another_function_name_is_refused():
    class Renamed:
        @hookimpl(specname="xgamma_spectral_models")
        def models(self):
            return []

    with pytest.warns(PluginWarning, match=r"implements xgamma_spectral_models under another function name"):
        pm = create_plugin_manager(entrypoints=False, plugins=[("renamed", Renamed())])
    assert pm.get_plugin("renamed") is None
