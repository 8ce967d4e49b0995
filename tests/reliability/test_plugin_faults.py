"""A broken plugin component used in a run: one error line naming the plugin and its distribution.

The components come from a fake installed distribution (``broken-ext 1.2``): a background
estimator that raises, one that returns garbage, an IRF reader that raises, one that returns
garbage, and a spatial model class declaring no parameters.
"""

from __future__ import annotations

import pytest
import yaml
from corpus_runner import assert_no_products, base_config, run_cli
from corpus_stores import copy_store, edit_index

from xgamma.plugin import refresh_plugins

PLUGIN = """
import numpy as np
from xgamma.models.spatial import SpatialModel
from xgamma.plugin import BackgroundEstimatorEntry, IRFReaderEntry, SpatialModelEntry, hookimpl


class RaisingEstimator:
    def __init__(self, exclusion=None):
        self.exclusion = exclusion

    def run(self, dataset):
        return 1 / 0


class GarbageEstimator(RaisingEstimator):
    def run(self, dataset):
        return "not a dataset"


class NoParameters(SpatialModel):
    lon_0 = None  # removes the inherited centre parameters
    lat_0 = None


def raising_reader(path, hdu):
    raise KeyError("EFFAREA_V2")


def garbage_reader(path, hdu):
    return np.zeros(3)


@hookimpl
def xgamma_background_estimators():
    yield BackgroundEstimatorEntry(name="raising", cls=RaisingEstimator)
    yield BackgroundEstimatorEntry(name="garbage", cls=GarbageEstimator)


@hookimpl
def xgamma_irf_readers():
    yield IRFReaderEntry(hdu_class="aeff_raising", reader=raising_reader)
    yield IRFReaderEntry(hdu_class="aeff_garbage", reader=garbage_reader)


@hookimpl
def xgamma_spatial_models():
    yield SpatialModelEntry(name="noparams", cls=NoParameters)
"""


@pytest.fixture
def broken_plugin(fake_dist):
    refresh_plugins()
    fake_dist("broken-ext", "broken", PLUGIN)
    refresh_plugins()
    yield
    refresh_plugins()


def _run(tmp_path, config):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    output = tmp_path / "out"
    outcome = run_cli(["run", str(path), "--output", str(output), "--quiet"])
    assert "Traceback" not in outcome.stderr
    assert outcome.code == 1, outcome.stderr
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xgamma: error:"), outcome.stderr
    assert "'broken'" in lines[0] and "broken-ext 1.2" in lines[0], lines[0]
    assert_no_products(output)
    return lines[0]


@pytest.mark.parametrize("method, needle", [("raising", "ZeroDivisionError"), ("garbage", "str")])
def test_broken_background_estimator(broken_plugin, base_stores, tmp_path, method, needle):
    config = base_config(base_stores["hess"], "full")
    config["ring"] = {"method": method}
    line = _run(tmp_path, config)
    assert method in line and needle in line


@pytest.mark.parametrize("reader, needle", [("aeff_raising", "EFFAREA_V2"), ("aeff_garbage", "ndarray")])
def test_broken_irf_reader(broken_plugin, base_stores, tmp_path, reader, needle):
    store = copy_store(base_stores["hess"], tmp_path / "store")

    def use_reader(table):
        table["HDU_CLASS"] = [reader if str(t).strip() == "aeff" else c
                              for t, c in zip(table["HDU_TYPE"], table["HDU_CLASS"].astype(str))]
        return table

    edit_index(store.path / "hdu-index.fits", use_reader)
    line = _run(tmp_path, base_config(store, "maps"))
    assert reader in line and needle in line


def test_model_class_without_parameters(broken_plugin, base_stores, tmp_path):
    config = base_config(base_stores["hess"], "full")
    config["models"][0]["spatial"] = {"type": "noparams", "frame": "icrs"}
    line = _run(tmp_path, config)
    assert "NoParameters" in line and "no parameters" in line
