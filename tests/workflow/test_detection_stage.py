"""The ``detect`` stage of ``xgamma run``: config section, products, and the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from astropy.table import Table

from xgamma.exceptions import ConfigError, DataWarning
from xgamma.models import read_models
from xgamma.workflow import run_analysis, validate_config

OBS_IDS = [110380, 111140, 111159]


def detect_config(datastore) -> dict:
    """A 2 x 2 deg GC image (3 CTA runs, 1-10 TeV) and a detection of up to two point sources."""
    return {
        "data": {"datastore": str(datastore), "obs_ids": OBS_IDS},
        "geometry": {"center": {"lon": "0 deg", "lat": "0 deg", "frame": "galactic"}, "width": "2 deg",
                     "binsz": "0.02 deg", "energy": {"min": "1 TeV", "max": "10 TeV", "nbins": 2}},
        "maps": {"offset_max": "4 deg"},
        "psf": {"max_radius": "0.25 deg"},
        "detect": {"threshold": 6, "max_sources": 2, "morphologies": ["point"], "min_distance": "0.2 deg"},
        "plots": True,
    }


def test_detect_stage_writes_the_catalogue(cta_datastore_dir, tmp_path):
    # 2 bins over 1-10 TeV: the bin-centre exposure is 7 % off at the sources, and the fits say so.
    with pytest.warns(DataWarning, match=r"geometry.energy: at source '\w+' the exposure taken at the centres"):
        analysis = run_analysis(detect_config(cta_datastore_dir), output=tmp_path / "out")
    out = tmp_path / "out"
    result = analysis.detection
    assert "detect" in analysis.stages and 1 <= len(result.sources) <= 2
    table = Table.read(out / "sources.ecsv")
    assert list(table["name"]) == list(result.sources["name"]) and np.all(table["ts"] > 36)
    assert len(Table.read(out / "sources.fits")) == len(table)
    # Sgr A* (0.06 deg from the centre) is the first source found.
    first = table[table["iteration"] == 1][0]
    assert np.hypot((first["lon"] + 180) % 360 - 180, first["lat"]) < 0.1
    models = read_models(out / "models.yaml")
    assert {m.name for m in models} == {m.name for m in result.models}
    history = json.loads((out / "detection.json").read_text())
    assert history["settings"]["threshold"] == 6 and len(history["history"]) >= len(table)
    assert (out / "ts_map.fits").is_file() and (out / "plots" / "detection.png").is_file()
    products = json.loads((out / "products.json").read_text())
    assert {"sources.ecsv", "sources.fits", "models.yaml", "ts_map.fits", "detection.json"} <= set(products["files"])
    assert analysis.summary["detection"]["n_sources"] == len(table)


def test_detect_section_is_validated(cta_datastore_dir):
    config = detect_config(cta_datastore_dir)
    for bad, match in [({"threshold": -1}, "detect.threshold"), ({"morphologies": ["disk"]}, r"morphologies\[0\]"),
                       ({"max_sources": 0}, "detect.max_sources"), ({"sigmaa": "1 deg"}, "detect.sigmaa")]:
        with pytest.raises(ConfigError, match=match):
            validate_config({**config, "detect": bad})
    with pytest.raises(ConfigError, match="max_sigma"):
        run_analysis({**config, "detect": {"sigma": "0.5 deg", "max_sigma": "0.2 deg"}}, dry_run=True)


def test_command_line_runs_the_detection(cta_datastore_dir, tmp_path):
    config = detect_config(cta_datastore_dir)
    config["detect"] = {"threshold": 8, "max_sources": 1, "morphologies": ["point"]}
    config["plots"] = False
    path = tmp_path / "detect.yaml"
    path.write_text(yaml.safe_dump(config))
    run = subprocess.run([sys.executable, "-m", "xgamma.cli.main", "run", str(path), "--output", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert len(Table.read(tmp_path / "o" / "sources.ecsv")) == 1
