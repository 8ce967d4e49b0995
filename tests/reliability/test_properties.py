"""Property tests (hypothesis) of the readers and the configuration parser.

Whatever the input, a reader returns data that are safe to compute on (finite, in range) or
raises its `XgammaError` naming the column; the configuration parser returns a configuration or
raises `ConfigError`: no other exception ever escapes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
import yaml
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xgamma.exceptions import ConfigError, DataStoreError, IRFError
from xgamma.io.events import read_events
from xgamma.irf.aeff import EffectiveArea2D
from xgamma.workflow.config import dump_config, parse_angle, read_yaml, validate_config

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

floats = st.floats(width=32, allow_nan=True, allow_infinity=True)
units = st.sampled_from(["deg", "rad", "TeV", "GeV", "m", "s", "", "m2", "cm2", "sr-1"])


def _write(hdu: fits.BinTableHDU) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="xgamma-hypothesis-"))
    path = folder / "table.fits"
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    return path


@st.composite
def event_columns(draw):
    n = draw(st.integers(0, 20))
    column = st.lists(floats, min_size=n, max_size=n)
    values = {name: draw(column) for name in ("RA", "DEC", "ENERGY", "TIME")}
    column_units = {"RA": draw(st.sampled_from(["deg", "rad", "TeV"])), "DEC": "deg",
                    "ENERGY": draw(st.sampled_from(["TeV", "GeV", "deg", ""])), "TIME": "s"}
    return values, column_units


@SETTINGS
@given(event_columns())
def test_events_are_finite_and_in_range_or_refused(columns):
    values, column_units = columns
    hdu = fits.BinTableHDU.from_columns([
        fits.Column(name=name, format="E" if name != "TIME" else "D", unit=column_units[name] or None,
                    array=np.asarray(data, dtype=np.float32 if name != "TIME" else np.float64))
        for name, data in values.items()], name="EVENTS")
    path = _write(hdu)
    try:
        events = read_events(path, "EVENTS")
    except DataStoreError as error:
        assert str(path) in str(error) and any(f"'{name}'" in str(error) for name in values), str(error)
        return
    assert all(np.all(np.isfinite(a)) for a in (events.ra, events.dec, events.energy, events.time))
    assert np.all(np.abs(events.dec) <= 90) and np.all(events.energy > 0)


@st.composite
def aeff_tables(draw):
    n_energy, n_offset = draw(st.integers(1, 5)), draw(st.integers(1, 4))

    def axis(n, low, high):
        if draw(st.booleans()):  # a plausible, increasing axis
            edges = np.sort(np.asarray(draw(st.lists(st.floats(low, high), min_size=n + 1, max_size=n + 1))))
            return edges[:-1], edges[1:]
        return (np.asarray(draw(st.lists(floats, min_size=n, max_size=n))),
                np.asarray(draw(st.lists(floats, min_size=n, max_size=n))))

    energy, offset = axis(n_energy, 0.01, 100.0), axis(n_offset, 0.0, 5.0)
    area = np.asarray(draw(st.lists(st.one_of(st.floats(0, 1e6), floats), min_size=n_energy * n_offset,
                                    max_size=n_energy * n_offset))).reshape(n_offset, n_energy)
    return energy, offset, area, draw(units), draw(units)


@SETTINGS
@given(aeff_tables())
def test_effective_area_reads_to_finite_values_or_is_refused(table):
    energy, offset, area, energy_unit, area_unit = table
    n_energy, n_offset = energy[0].size, offset[0].size
    columns = [
        fits.Column(name="ENERG_LO", format=f"{n_energy}E", unit=energy_unit, array=[energy[0]]),
        fits.Column(name="ENERG_HI", format=f"{n_energy}E", unit=energy_unit, array=[energy[1]]),
        fits.Column(name="THETA_LO", format=f"{n_offset}E", unit="deg", array=[offset[0]]),
        fits.Column(name="THETA_HI", format=f"{n_offset}E", unit="deg", array=[offset[1]]),
        fits.Column(name="EFFAREA", format=f"{n_energy * n_offset}E", unit=area_unit or None,
                    dim=f"({n_energy},{n_offset})", array=[area]),
    ]
    path = _write(fits.BinTableHDU.from_columns(columns, name="EFFECTIVE AREA"))
    try:
        aeff = EffectiveArea2D.read(path, "EFFECTIVE AREA")
    except IRFError as error:
        assert str(path) in str(error), str(error)
        return
    edges = aeff.axes[0].edges
    assert np.all(np.isfinite(edges)) and np.all(np.diff(edges) > 0) and edges[0] > 0
    values = aeff.evaluate(np.geomspace(0.005, 200, 7)[:, None] * u.TeV, np.linspace(0, 6, 5)[None, :] * u.deg)
    assert values.unit == u.m**2 and np.all(np.isfinite(values.value)) and np.all(values.value >= 0)


# -- configuration -----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)

VALID = {
    "data": {"datastore": ".", "obs_ids": [1]},
    "geometry": {"center": {"lon": "0 deg", "lat": "0 deg"}, "width": "2 deg", "binsz": "0.1 deg",
                 "energy": {"min": "1 TeV", "max": "10 TeV", "nbins": 2}},
    "maps": {"offset_max": "2 deg"},
    "psf": {"containment": 0.9},
    "ring": {"r_in": "0.5 deg"},
}
KEY_PATHS = [("data", "obs_ids"), ("geometry", "center", "lat"), ("geometry", "width"), ("geometry", "binsz"),
             ("geometry", "energy", "nbins"), ("geometry", "energy", "min"), ("maps", "offset_max"),
             ("maps", "chunks"), ("psf", "containment"), ("ring", "r_in"), ("geometry", "projection"),
             ("plots",), ("models",), ("exclusion", "regions"), ("geometry",), ("maps",)]


@SETTINGS
@given(st.sampled_from(KEY_PATHS), json_values)
def test_config_validation_returns_or_raises_config_error(path, value):
    import copy

    config = copy.deepcopy(VALID)
    node = config
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    try:
        validated = validate_config(config)
    except ConfigError as error:
        assert str(error)
        return
    # A configuration that validates dumps to YAML that validates to the same dump.
    text = dump_config(validated)
    assert dump_config(validate_config(yaml.safe_load(text))) == text


@SETTINGS
@given(st.binary(max_size=200) | st.text(max_size=200).map(lambda t: t.encode("utf-8")))
def test_yaml_reader_returns_data_or_raises_config_error(content):
    folder = Path(tempfile.mkdtemp(prefix="xgamma-hypothesis-"))
    path = folder / "config.yaml"
    path.write_bytes(content)
    try:
        read_yaml(path)
    except ConfigError as error:
        assert str(path) in str(error)


@SETTINGS
@given(st.one_of(st.text(max_size=20), st.floats(), st.integers(), st.booleans(), st.none()))
def test_angle_parser(value):
    try:
        angle = parse_angle(value, "some.key")
    except ConfigError as error:
        assert "some.key" in str(error)
        return
    assert angle.unit.physical_type == "angle" and np.isfinite(angle.value) and angle.isscalar


@pytest.mark.parametrize("text", ["0.02 deg", "3 arcmin", 0.5, "1e-3 rad"])
def test_angle_parser_accepts_angles(text):
    assert parse_angle(text, "k").unit.physical_type == "angle"
