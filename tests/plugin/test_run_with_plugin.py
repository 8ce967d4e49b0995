"""`xgamma run` uses the example plugin's components by name (config `type:` keys, `ring.method`)."""

from __future__ import annotations

import json

import astropy.units as u
import pytest
import yaml
from astropy.coordinates import SkyCoord

from xgamma.workflow.config import load_config
from xgamma.workflow import run_analysis
from xgamma.simulate import gaussian_source, simulate_datastore, wobble_pointings


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    target = SkyCoord(83.63, 22.01, unit="deg")
    source = gaussian_source(position=target, sigma=0.15 * u.deg, flux=4e-11 * u.Unit("cm-2 s-1"), index=2.0)
    return simulate_datastore(tmp_path_factory.mktemp("store") / "dl3", observations=wobble_pointings(target, n=2),
                              sources=[source], seed=3)


def test_run_config_with_plugin_models_and_estimator(installed, small_store, tmp_path):
    config = {
        "data": {"datastore": str(small_store)},
        "geometry": {"center": {"lon": "83.63 deg", "lat": "22.01 deg", "frame": "icrs"}, "width": "3 deg",
                     "binsz": "0.04 deg", "projection": "TAN", "energy": {"min": "0.1 TeV", "max": "10 TeV", "nbins": 5}},
        "maps": {"offset_max": "2 deg"},
        "psf": {"position": {"lon": "83.63 deg", "lat": "22.01 deg", "frame": "icrs"}},
        "models": [{
            "name": "src",
            "spatial": {"type": "egauss", "lon_0": "83.6 deg", "lat_0": "22.0 deg", "sigma": "0.1 deg",
                        "e": {"value": 0, "frozen": True}, "phi": {"value": 0, "frozen": True}, "frame": "icrs"},
            "spectral": {"type": "sbpl", "amplitude": "1e-12 TeV-1 cm-2 s-1", "index1": {"value": 2, "frozen": True},
                         "index2": {"value": 2, "frozen": True}, "ebreak": {"value": 1, "unit": "TeV", "frozen": True}},
        }],
        "background_model": {"norm": {"value": 1, "frozen": False}},
        "fit": {"on": "images"},
        "exclusion": {"regions": ["icrs; circle(83.63, 22.01, 0.6)"]},
        "ring": {"method": "fov"},
        "significance": {"correlation_radius": "0.1 deg"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    state = run_analysis(load_config(path), output=tmp_path / "out")
    fit = json.loads((tmp_path / "out" / "fit.json").read_text())
    assert fit["success"]
    values = {p["name"]: p for p in fit["parameters"] if p["model"] == "src"}
    # The injected Gaussian (sigma 0.15 deg at the target) is found by the plugin's elliptical Gaussian.
    assert abs(values["sigma"]["value"] - 0.15) < 4 * values["sigma"]["error"]
    assert abs(values["lon_0"]["value"] - 83.63) < 4 * values["lon_0"]["error"] / 0.93  # error in deg of lon
    significance = json.loads((tmp_path / "out" / "significance.json").read_text())
    assert significance["max_significance"] > 5
    assert "significance" in state.products
