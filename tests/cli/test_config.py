"""Configuration validation: every bad key or value is reported with its key path."""

from __future__ import annotations

import copy

import astropy.units as u
import pytest
import yaml

from xgamma.workflow.config import load_config, validate_config
from xgamma.exceptions import ConfigError

BASE = {
    "data": {"datastore": "${XGAMMA_DATA}/cta-1dc/index/gps", "obs_ids": [110380]},
    "geometry": {"center": {"lon": "0 deg", "lat": "0 deg", "frame": "galactic"}, "width": ["10 deg", "8 deg"],
                 "binsz": "0.02 deg", "projection": "CAR", "energy": {"min": "0.1 TeV", "max": "10 TeV", "nbins": 10}},
    "maps": {"offset_max": "4 deg", "squash": {"spectrum": {"type": "powerlaw", "index": 2}}},
}


def _with(path: str, value):
    config = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return config


def test_valid_config_converts_values(data_dir):
    config = validate_config(BASE)
    assert config["maps"]["offset_max"] == 4 * u.deg
    assert config["geometry"]["energy"]["min"] == 0.1 * u.TeV
    assert config["data"]["datastore"].resolve() == data_dir / "cta-1dc" / "index" / "gps"


@pytest.mark.parametrize(
    "path,value,match",
    [
        ("maps.ofset_max", "4 deg", r"unknown key 'maps.ofset_max'"),
        ("maps.offset_max", "4 TeV", r"maps.offset_max: expected units of angle"),
        ("maps.offset_max", "-1 deg", r"maps.offset_max: must be positive"),
        ("geometry.energy.nbins", 0, r"geometry.energy.nbins: expected a positive integer"),
        ("geometry.binsz", "fast", r"geometry.binsz: cannot read 'fast'"),
        ("geometry.center.frame", "fk5", r"geometry.center.frame: expected 'galactic' or 'icrs'"),
        ("data.datastore", "/nonexistent/store", r"data.datastore: data store directory not found"),
        ("data.obs_ids", ["a"], r"data.obs_ids\[0\]: expected an integer"),
        ("maps.safe_energy", "edisp-biass", r"maps.safe_energy.methods: unknown method 'edisp-biass'"),
        ("maps.safe_energy", {"methods": ["aeff-max"], "aeff_percent": 0}, r"maps.safe_energy.aeff_percent"),
        ("maps.safe_energy", {"methods": "bkg-peak", "offset": "2 deg"}, r"unknown key 'maps.safe_energy.offset'"),
        ("maps.safe_energy", {"aeff_percent": 10}, r"missing key 'maps.safe_energy.methods'"),
        ("geometry.energy_true", {"min": "1 TeV", "max": "0.1 TeV", "nbins": 3}, r"geometry.energy_true: min"),
        ("fit.edisp", "yes", r"fit.edisp: expected true or false"),
    ],
)
def test_bad_values_name_their_key(data_dir, path, value, match):
    with pytest.raises(ConfigError, match=match):
        validate_config(_with(path, value))


def test_missing_sections_and_env(monkeypatch):
    config = copy.deepcopy(BASE)
    del config["maps"]
    with pytest.raises(ConfigError, match="missing key 'maps'"):
        validate_config(config)
    monkeypatch.delenv("XGAMMA_DATA", raising=False)
    with pytest.raises(ConfigError, match=r"data.datastore: environment variable \$\{XGAMMA_DATA\} is not set"):
        validate_config(BASE)


def test_load_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(BASE))
    assert "maps" in load_config(good)
