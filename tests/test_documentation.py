"""The documentation: a warning-free Sphinx build and a configuration reference that covers every key."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from xgamma.workflow.config import SCHEMA

DOCS = Path(__file__).resolve().parent.parent / "docs"
CONFIG_PAGE = DOCS / "config.md"


def _schema_keys(schema: dict, prefix: str = "") -> list[str]:
    keys = []
    for name, value in schema.items():
        path = f"{prefix}{name}"
        keys.append(path)
        if isinstance(value, dict):
            keys.extend(_schema_keys(value, f"{path}."))
    return keys


def _documented_rows() -> dict[str, list[str]]:
    """``{key: [type, default, api]}`` from the tables of the configuration page."""
    rows = {}
    for line in CONFIG_PAGE.read_text().splitlines():
        match = re.match(r"^\| `([a-z_.]+)` \|(.*)\|$", line)
        if match:
            rows[match.group(1)] = [cell.strip() for cell in match.group(2).split("|")]
    return rows


@pytest.mark.slow
def test_sphinx_build_is_warning_free(tmp_path):
    # sphinx and myst-parser are test dependencies: a missing one fails here, it does not skip.
    import myst_parser  # noqa: F401
    import sphinx  # noqa: F401

    out = tmp_path / "html"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, f"sphinx-build failed or warned:\n{proc.stderr[-5000:]}"
    for page in ("index", "install", "quickstart", "concepts", "tutorial", "config", "api", "architecture",
                 "plugins"):
        assert (out / f"{page}.html").is_file(), page
    api = (out / "api.html").read_text()
    # The API reference really holds the documented objects, not only headings.
    for name in ("xgamma.plotting.plot_map", "xgamma.fit.fit", "xgamma.makers.make_maps",
                 "xgamma.background.RingBackground", "xgamma.estimators.significance_maps"):
        assert f'id="{name}"' in api, name


def test_every_schema_key_is_in_the_config_reference():
    rows = _documented_rows()
    text = CONFIG_PAGE.read_text()
    # Top-level sections get a heading; every key below them (and top-level scalars) a table row.
    sections = [key for key, value in SCHEMA.items() if isinstance(value, dict)]
    no_heading = [key for key in sections if not re.search(rf"^## `{key}`", text, flags=re.M)]
    assert not no_heading, f"config sections without a heading in docs/config.md: {no_heading}"
    missing = [key for key in _schema_keys(SCHEMA) if key not in rows and key not in sections]
    assert not missing, f"config keys missing from docs/config.md: {missing}"
    for key, cells in rows.items():
        assert len(cells) == 3 and cells[0] and cells[2], f"row {key!r} needs type, default and API columns"


def test_config_reference_documents_no_unknown_key():
    known = set(_schema_keys(SCHEMA))
    # Sub-keys read by a section parser (not nested dicts of SCHEMA) are documented too.
    known |= {"geometry.energy.min", "geometry.energy.max", "geometry.energy.nbins"}
    from xgamma.makers.safe_energy import SafeEnergy

    known |= {f"maps.safe_energy.{name}" for name in SafeEnergy.__dataclass_fields__}
    stale = [key for key in _documented_rows() if key not in known]
    assert not stale, f"docs/config.md documents keys the configuration rejects: {stale}"


def _default_of(func, name):
    return inspect.signature(func).parameters[name].default


def test_documented_defaults_match_the_api():
    from xgamma.background import RingBackground
    from xgamma.workflow.exclusion import iterate_exclusion_mask
    from xgamma.estimators import significance_maps
    from xgamma.fit import MapDataset, psf_kernel_for_geometry, source_kernels
    from xgamma.makers.maps import DEFAULT_CHUNK

    rows = _documented_rows()
    expected = {
        "maps.chunks": str(DEFAULT_CHUNK),
        "psf.containment": str(_default_of(psf_kernel_for_geometry, "containment")),
        "ring.r_in": str(RingBackground().r_in),
        "ring.width": str(RingBackground().width),
        "significance.correlation_radius": str(_default_of(significance_maps, "correlation_radius")),
        "exclusion.dilation": str(_default_of(iterate_exclusion_mask, "dilation")),
        "exclusion.max_iterations": str(_default_of(iterate_exclusion_mask, "max_iterations")),
        "exclusion.threshold": f"{_default_of(iterate_exclusion_mask, 'threshold'):g}",
        "fit.point_method": f"`{_default_of(MapDataset.from_maps, 'point_method')}`",
        "fit.spectral_exposure": str(_default_of(source_kernels, "spectral_exposure")).lower(),
    }
    for key, value in expected.items():
        assert rows[key][1] == value, f"docs/config.md default of {key}: {rows[key][1]!r}, API: {value!r}"


def test_every_page_is_in_a_toctree():
    index = (DOCS / "index.md").read_text()
    pages = sorted(p.stem for p in DOCS.glob("*.md") if p.stem != "index") + ["api"]
    missing = [page for page in pages if not re.search(rf"^{page}$", index, flags=re.M)]
    assert not missing, f"pages not in the index toctree: {missing}"
