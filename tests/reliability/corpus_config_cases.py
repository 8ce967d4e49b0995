"""Broken configurations of the corpus (on the intact H.E.S.S. base store) and what ``xgamma run`` must say.

A case edits the base configuration (a dict, written as YAML) or replaces the file by raw bytes.
Needles are the words the one error line must contain: the key path at fault, or the file.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from corpus_runner import Error, Same, Succeeds


@dataclass(frozen=True)
class ConfigCase:
    name: str
    edit: Callable[[dict], Any]  # returns the new dict, or bytes for the whole file
    expect: Error | Same | Succeeds
    stages: str = "maps"


def setting(path: str, value: Any) -> Callable[[dict], dict]:
    """Set ``a.b.c`` (creating sections) to ``value``; the value ``DELETE`` removes the key."""

    def edit(config: dict) -> dict:
        config = copy.deepcopy(config)
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node.setdefault(key, {}) if not key.isdigit() else node[int(key)]
        if value is DELETE:
            del node[last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value
        return config

    return edit


DELETE = object()


def appended(text: str) -> Callable[[dict], bytes]:
    """The base configuration with ``text`` appended (duplicate keys, tags, alias bombs...)."""

    def edit(config: dict) -> bytes:
        import yaml

        return (yaml.safe_dump(config, sort_keys=False) + text).encode()

    return edit


def _bomb(levels: int = 9) -> str:
    lines = ['lol0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"lol{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines)


def _cases() -> list[ConfigCase]:
    cases: list[ConfigCase] = []
    add = cases.append

    # The YAML file itself.
    add(ConfigCase("yaml-duplicate-top-level-key", appended("maps: {offset_max: 1 deg}\n"),
                   Error("duplicate", "maps")))
    add(ConfigCase("yaml-duplicate-nested-key",
                   lambda c: _text(c).replace("  offset_max: 2 deg\n", "  offset_max: 2 deg\n  offset_max: 1 deg\n").encode(),
                   Error("duplicate", "offset_max")))
    add(ConfigCase("yaml-python-object-apply", appended('evil: !!python/object/apply:os.system ["true"]\n'),
                   Error("tag", "python/object/apply")))
    add(ConfigCase("yaml-python-name", appended("evil: !!python/name:os.system\n"), Error("tag", "python/name")))
    add(ConfigCase("yaml-custom-tag", appended("evil: !include other.yaml\n"), Error("tag", "include")))
    add(ConfigCase("yaml-alias-bomb-unknown-key", appended(_bomb() + "\n"), Error("alias")))
    add(ConfigCase("yaml-alias-bomb-in-models", lambda c: _text({k: v for k, v in c.items()}) + _bomb_models(),
                   Error("alias")))
    add(ConfigCase("yaml-recursive-alias", appended("loop: &a [1, *a]\n"), Error("alias")))
    add(ConfigCase("yaml-deeply-nested", appended("deep: " + "[" * 3000 + "]" * 3000 + "\n"), Error("nested")))
    add(ConfigCase("yaml-deeply-nested-maps", appended("deep: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n"),
                   Error("nested")))
    add(ConfigCase("yaml-latin-1", lambda c: (_text(c) + "# caf\u00e9\n").encode("latin-1"), Error("UTF-8")))
    add(ConfigCase("yaml-utf-16-bom", lambda c: _text(c).encode("utf-16"), Same()))
    add(ConfigCase("yaml-utf-8-bom", lambda c: b"\xef\xbb\xbf" + _text(c).encode(), Same()))
    add(ConfigCase("yaml-crlf", lambda c: _text(c).replace("\n", "\r\n").encode(), Same()))
    add(ConfigCase("yaml-utf-16-no-bom", lambda c: _text(c).encode("utf-16-le"), Error("config.yaml")))
    add(ConfigCase("yaml-nul-bytes", lambda c: _text(c).encode() + b"\x00\x00", Error("config.yaml")))
    add(ConfigCase("yaml-tab-indent", lambda c: _text(c).replace("  offset_max", "\toffset_max").encode(), Error("YAML")))
    add(ConfigCase("yaml-syntax-error", appended("broken: [1, 2\n"), Error("YAML", "line")))
    add(ConfigCase("yaml-empty", lambda c: b"", Error("mapping")))
    add(ConfigCase("yaml-only-comment", lambda c: b"# nothing\n", Error("mapping")))
    add(ConfigCase("yaml-top-level-list", lambda c: b"- data\n- maps\n", Error("mapping")))
    add(ConfigCase("yaml-top-level-scalar", lambda c: b"42\n", Error("mapping")))
    add(ConfigCase("yaml-two-documents", appended("---\nmaps: {}\n"), Error("YAML")))
    add(ConfigCase("yaml-unhashable-key", appended("? [a, b]\n: 1\n"), Error("config.yaml")))

    # Sections and keys.
    add(ConfigCase("unknown-top-level-key", setting("mpas", {}), Error("mpas")))
    add(ConfigCase("unknown-nested-key", setting("maps.offset_mx", "1 deg"), Error("maps.offset_mx")))
    for section in ("data", "geometry", "maps"):
        add(ConfigCase(f"missing-section-{section}", setting(section, DELETE), Error(section)))
        add(ConfigCase(f"section-{section}-null", setting(section, None), Error(section)))
    add(ConfigCase("section-is-a-list", setting("maps", ["offset_max", "2 deg"]), Error("maps")))
    add(ConfigCase("env-variable-unset", setting("data.datastore", "${XGAMMA_CORPUS_NOT_SET}/x"),
                   Error("data.datastore", "XGAMMA_CORPUS_NOT_SET")))

    # data
    add(ConfigCase("datastore-missing", setting("data.datastore", "/nonexistent/store"), Error("data.datastore")))
    add(ConfigCase("datastore-is-a-file", lambda c: setting("data.datastore", c["data"]["datastore"] +
                                                            "/obs-index.fits")(c), Error("data.datastore")))
    add(ConfigCase("datastore-number", setting("data.datastore", 42), Error("data.datastore")))
    add(ConfigCase("obs-ids-empty", setting("data.obs_ids", []), Error("data.obs_ids")))
    add(ConfigCase("obs-ids-string", setting("data.obs_ids", ["abc"]), Error("data.obs_ids[0]")))
    add(ConfigCase("obs-ids-not-a-list", setting("data.obs_ids", 23523), Error("data.obs_ids")))
    add(ConfigCase("obs-ids-bool", setting("data.obs_ids", [True]), Error("data.obs_ids[0]")))
    add(ConfigCase("obs-ids-unknown", setting("data.obs_ids", [1, 23523]), Error("unknown obs id", "[1]")))
    add(ConfigCase("object-no-match", setting("data.object", "Vela"), Error("Vela")))
    add(ConfigCase("cone-radius-zero", setting("data.cone", {"center": {"lon": "83.6 deg", "lat": "22 deg",
                                                                        "frame": "icrs"}, "radius": "0 deg"}),
                   Error("data.cone.radius")))
    add(ConfigCase("cone-center-lat-100", setting("data.cone", {"center": {"lon": "83.6 deg", "lat": "100 deg",
                                                                           "frame": "icrs"}, "radius": "1 deg"}),
                   Error("data.cone.center", "lat")))

    # geometry
    for value, label in ((True, "true"), (float("inf"), "inf"), (float("nan"), "nan"), (0, "zero"), (-0.1, "negative"),
                         ("1 TeV", "energy-unit"), ("abc", "text"), ([1, 2], "list"), (None, "null"),
                         ("inf deg", "inf-deg")):
        add(ConfigCase(f"binsz-{label}", setting("geometry.binsz", value), Error("geometry.binsz")))
    for value, label in ((float("nan"), "nan"), (float("inf"), "inf"), (0, "zero"), (["3 deg"], "one-item"),
                         (["3 deg", "3 deg", "3 deg"], "three-items"), ("-3 deg", "negative"), ("3 TeV", "energy-unit"),
                         (True, "true")):
        add(ConfigCase(f"width-{label}", setting("geometry.width", value), Error("geometry.width")))
    add(ConfigCase("width-below-one-pixel", setting("geometry.width", "0.01 deg"), Error("geometry", "pixel")))
    for key, value, label in (("lat", "100 deg", "lat-100"), ("lat", "-91 deg", "lat--91"), ("lon", "abc", "lon-text"),
                              ("lat", float("nan"), "lat-nan"), ("frame", "fk5", "frame-fk5"), ("lon", DELETE, "no-lon")):
        add(ConfigCase(f"center-{label}", setting(f"geometry.center.{key}", value), Error("geometry.center")))
    add(ConfigCase("projection-unknown", setting("geometry.projection", "XYZ"), Error("geometry", "XYZ")))
    add(ConfigCase("projection-number", setting("geometry.projection", 123), Error("geometry.projection")))
    for key, value, label in (("min", "0 TeV", "min-zero"), ("min", "-1 TeV", "min-negative"), ("max", "inf TeV", "max-inf"),
                              ("min", float("nan"), "min-nan"), ("min", "20 TeV", "min-above-max"), ("nbins", 0, "nbins-0"),
                              ("nbins", 1.5, "nbins-fraction"), ("nbins", "3", "nbins-text"),
                              ("min", "1 deg", "min-angle"), ("nbins", True, "nbins-true")):
        add(ConfigCase(f"energy-{label}", setting(f"geometry.energy.{key}", value), Error("geometry.energy")))
    # Maps that cannot fit in memory are refused with their size before anything is allocated.
    add(ConfigCase("energy-nbins-1e8", setting("geometry.energy.nbins", 100_000_000), Error("geometry", "voxels",
                                                                                               "memory")))
    add(ConfigCase("huge-geometry", _chain(setting("geometry.binsz", "0.0001 deg"), setting("geometry.width", "180 deg"),
                                           setting("geometry.projection", "CAR")),
                   Error("geometry", "1800000 x 1800000", "memory")))
    add(ConfigCase("cube-10k-x-10k-x-4", _chain(setting("geometry.binsz", "0.001 deg"), setting("geometry.width", "10 deg"),
                                                setting("geometry.energy.nbins", 4)),
                   Error("geometry", "10000 x 10000", "memory")))
    add(ConfigCase("car-beyond-the-poles", _chain(setting("geometry.width", ["10 deg", "200 deg"]),
                                                  setting("geometry.binsz", "0.5 deg"),
                                                  setting("geometry.projection", "CAR")),
                   Succeeds(warns=("outside the sky",), check=_finite_products)))
    add(ConfigCase("ait-all-sky", _chain(setting("geometry.width", ["360 deg", "180 deg"]),
                                         setting("geometry.binsz", "1 deg"), setting("geometry.projection", "AIT")),
                   Succeeds(warns=("outside the sky",), check=_finite_products)))

    # maps
    for value, label in ((0, "zero"), (-1, "negative"), ("1 TeV", "energy-unit"), (float("inf"), "inf"),
                         (float("nan"), "nan"), (True, "true")):
        add(ConfigCase(f"offset-max-{label}", setting("maps.offset_max", value), Error("maps.offset_max")))
    for value in (0, -1, "a", 2.5):
        add(ConfigCase(f"chunks-{value}", setting("maps.chunks", value), Error("maps.chunks")))
    add(ConfigCase("safe-energy-unknown", setting("maps.safe_energy", "foo"), Error("maps.safe_energy")))
    add(ConfigCase("squash-type-unknown", setting("maps.squash", {"spectrum": {"type": "foo"}}),
                   Error("maps.squash.spectrum.type")))
    add(ConfigCase("squash-index-text", setting("maps.squash", {"spectrum": {"index": "abc"}}),
                   Error("maps.squash.spectrum.index")))
    add(ConfigCase("squash-index-nan", setting("maps.squash", {"spectrum": {"index": float("nan")}}),
                   Error("maps.squash.spectrum.index")))

    # psf / models / fit (full stages)
    for value, label in ((1.5, "1.5"), (0, "zero"), (-0.5, "negative"), ("abc", "text"), (float("nan"), "nan"), (1, "one")):
        add(ConfigCase(f"psf-containment-{label}", setting("psf.containment", value), Error("psf.containment"),
                       stages="full"))
    add(ConfigCase("psf-max-radius-zero", setting("psf.max_radius", "0 deg"), Error("psf.max_radius"), stages="full"))
    add(ConfigCase("psf-position-lat-100", setting("psf.position.lat", "100 deg"), Error("psf.position"),
                   stages="full"))
    add(ConfigCase("models-same-name", lambda c: setting("models", c["models"] * 2)(c), Error("models", "source"),
                   stages="full"))
    add(ConfigCase("models-empty-with-fit", _chain(setting("models", []), setting("background_model", DELETE),
                                                   setting("fit", {"on": "images"})),
                   Error("fit", "models"), stages="full"))
    add(ConfigCase("models-all-frozen", _chain(setting("models", []), setting("background_model.norm",
                                                                              {"value": 1, "frozen": True})),
                   Error("fit", "frozen"), stages="full"))
    add(ConfigCase("models-not-a-list", setting("models", {"name": "x"}), Error("models"), stages="full"))
    add(ConfigCase("models-item-string", setting("models", ["source"]), Error("models[0]"), stages="full"))
    add(ConfigCase("model-no-name", setting("models.0.name", DELETE), Error("models[0]"), stages="full"))
    add(ConfigCase("model-spatial-unknown", setting("models.0.spatial.type", "nosuch"), Error("models[0]", "nosuch"),
                   stages="full"))
    add(ConfigCase("model-spectral-unknown", setting("models.0.spectral.type", "nosuch"),
                   Error("models[0]", "nosuch"), stages="full"))
    add(ConfigCase("model-lon-in-TeV", setting("models.0.spatial.lon_0", "1 TeV"), Error("models[0]", "lon_0"),
                   stages="full"))
    add(ConfigCase("model-amplitude-text", setting("models.0.spectral.amplitude", "abc"),
                   Error("models[0]", "amplitude"), stages="full"))
    add(ConfigCase("model-bounds-reversed", setting("models.0.spectral.amplitude",
                                                    {"value": 1e-11, "unit": "cm-2 s-1", "min": 1, "max": 0}),
                   Error("models[0]", "amplitude"), stages="full"))
    add(ConfigCase("model-value-outside-bounds", setting("models.0.spectral.amplitude",
                                                         {"value": 1e-11, "unit": "cm-2 s-1", "min": 1e-9}),
                   Error("models", "source.amplitude", "bounds"), stages="full"))
    add(ConfigCase("model-index-nan", setting("models.0.spectral.index", {"value": float("nan"), "frozen": True}),
                   Error("models[0]", "index"), stages="full"))
    add(ConfigCase("background-norm-text", setting("background_model.norm", "abc"), Error("background_model", "norm"),
                   stages="full"))
    add(ConfigCase("background-unknown-key", setting("background_model.foo", 1), Error("background_model.foo"),
                   stages="full"))
    add(ConfigCase("fit-on-unknown", setting("fit.on", "foo"), Error("fit.on"), stages="full"))
    add(ConfigCase("fit-minos-unknown", setting("fit.minos", ["nosuch.param"]), Error("fit.minos", "nosuch.param"),
                   stages="full"))
    add(ConfigCase("fit-index-free-on-images", setting("models.0.spectral.index", {"value": 2.5, "frozen": False}),
                   Succeeds(check=_fit_outcome_told), stages="full"))
    add(ConfigCase("fit-point-method-unknown", setting("fit.point_method", "foo"), Error("fit.point_method"),
                   stages="full"))
    add(ConfigCase("fit-spectral-exposure-text", setting("fit.spectral_exposure", "yes"),
                   Error("fit.spectral_exposure"), stages="full"))

    # exclusion / ring / significance
    add(ConfigCase("exclusion-region-garbage", setting("exclusion.regions", ["not a region"]),
                   Error("exclusion.regions"), stages="full"))
    add(ConfigCase("exclusion-regions-string", setting("exclusion.regions", "icrs; circle(83, 22, 1)"),
                   Error("exclusion.regions"), stages="full"))
    add(ConfigCase("exclusion-whole-map", setting("exclusion.regions", ["icrs; circle(83.633, 22.014, 10)"]),
                   Error("exclusion", "every pixel"), stages="full"))
    add(ConfigCase("exclusion-threshold-text", setting("exclusion.threshold", "abc"), Error("exclusion.threshold"),
                   stages="full"))
    add(ConfigCase("exclusion-dilation-zero", setting("exclusion.dilation", "0 deg"), Error("exclusion.dilation"),
                   stages="full"))
    add(ConfigCase("exclusion-iterations-zero", setting("exclusion.max_iterations", 0),
                   Error("exclusion.max_iterations"), stages="full"))
    add(ConfigCase("ring-method-unknown", setting("ring.method", "nosuch"), Error("nosuch"), stages="full"))
    add(ConfigCase("ring-r-in-negative", setting("ring.r_in", "-1 deg"), Error("ring.r_in"), stages="full"))
    add(ConfigCase("ring-width-text", setting("ring.width", "abc"), Error("ring.width"), stages="full"))
    add(ConfigCase("ring-unknown-parameter", setting("ring.foo", 1), Error("ring.foo"), stages="full"))
    add(ConfigCase("significance-radius-zero", setting("significance.correlation_radius", "0 deg"),
                   Error("significance.correlation_radius"), stages="full"))
    add(ConfigCase("significance-radius-energy", setting("significance.correlation_radius", "1 TeV"),
                   Error("significance.correlation_radius"), stages="full"))
    add(ConfigCase("plots-yes", setting("plots", "yes"), Error("plots")))
    add(ConfigCase("plots-one", setting("plots", 1), Error("plots")))
    return cases


def _text(config: dict) -> str:
    import yaml

    return yaml.safe_dump(config, sort_keys=False)


def _bomb_models() -> str:
    """An alias bomb whose expansion lands inside ``models``."""
    return _bomb() + "\nmodels: [" + ", ".join(["*l8"] * 9) + "]\n"


def _chain(*edits: Callable[[dict], dict]) -> Callable[[dict], dict]:
    def edit(config: dict) -> dict:
        for e in edits:
            config = e(config)
        return config

    return edit


def _fit_outcome_told(output, base, outcome) -> None:
    """A fit that did not converge says so: fit.json, summary, a warning line and the FITS header."""
    import json

    from astropy.io import fits

    success = json.loads((output / "fit.json").read_text())["success"]
    assert json.loads((output / "summary.json").read_text())["fit"]["success"] == success
    assert fits.getheader(output / "residuals.fits")["FIT_OK"] == success
    warned = any(line.startswith("xgamma: warning: fit ") for line in outcome.warning_lines)
    assert warned != success, outcome.stderr


def _finite_products(output, base, outcome) -> None:
    import numpy as np
    from astropy.io import fits

    for name in ("maps.fits", "images.fits"):
        with fits.open(output / name) as hdulist:
            for hdu in hdulist:
                if isinstance(hdu, fits.ImageHDU):
                    assert np.all(np.isfinite(hdu.data)), f"{name} {hdu.name} has non-finite pixels"


CONFIG_CASES = _cases()
assert len({c.name for c in CONFIG_CASES}) == len(CONFIG_CASES), "case names must be unique"
