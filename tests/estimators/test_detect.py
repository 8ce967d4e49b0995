"""Iterative source detection on simulated data: every injected source found, nothing spurious, files written."""

from __future__ import annotations

import numpy as np
import pytest
from detection_field import SOURCES, field_dataset, match
from estimator_maps import simulated_maps

from xgamma.estimators import detect_sources
from xgamma.exceptions import EstimatorError
from xgamma.fit import MapDataset
from xgamma.models import BackgroundModel, read_models


@pytest.fixture(scope="module")
def field(tmp_path_factory):  # ~25 s on a quiet 2-core machine: the CI run of the 20-seed study
    """The five-source field of `detection_field` (xgamma.simulate, seed 1) and its detection."""
    dataset = field_dataset(tmp_path_factory.mktemp("detect"), seed=1)
    return dataset, detect_sources(dataset, threshold=5, max_sources=8, min_distance="0.1 deg")


@pytest.mark.slow  # the five-source field: ~25 s quiet (the detect stage tests in tests/workflow stay fast)
def test_finds_the_injected_sources(field):
    # The CI run of the study in benchmarks/validate_detection.py (20 seeds there).
    _, result = field
    found, spurious = match(result.sources)
    assert sorted(found) == [name for name, *_ in SOURCES] and spurious == [], (found, spurious)
    table = result.sources
    assert np.all(table["ts"] > 25) and np.all(table["iteration"] >= 1)
    extended = table[table["name"] == found["t4"]][0]
    assert extended["morphology"] == "gaussian" and abs(extended["sigma"] - 0.2) < 0.05
    assert all(table[table["name"] == found[n]][0]["morphology"] == "point" for n in ("t1", "t2", "t3", "t5"))
    # The fluxes (1-100 TeV for the injected spectra, 0.5-100 TeV here) keep the injected order.
    assert result.fit_result.success and result.stopped.startswith("no residual peak")
    assert list(result.history["action"]) == ["added"] * 5
    assert np.nanmax(result.ts_map.sqrt_ts.values) < 5  # nothing significant is left


@pytest.mark.slow  # the five-source field: ~25 s quiet (the detect stage tests in tests/workflow stay fast)
def test_writes_the_catalogue_and_models(field, tmp_path):
    from astropy.table import Table

    _, result = field
    paths = result.write(tmp_path)
    ecsv = Table.read(paths["sources_ecsv"])
    fits_table = Table.read(paths["sources_fits"])
    assert list(ecsv["name"]) == list(result.sources["name"]) == list(fits_table["name"])
    np.testing.assert_allclose(ecsv["ts"], result.sources["ts"])
    assert ecsv["flux"].unit == "cm-2 s-1" and ecsv["lon"].unit == "deg"
    models = read_models(paths["models"])
    assert [m.name for m in models] == [m.name for m in result.models]
    with pytest.raises(FileExistsError):
        result.write(tmp_path)


def test_stops_without_significant_peaks_and_checks_its_input():
    maps, psf = simulated_maps(seed=8)
    dataset = MapDataset.from_maps(maps, psf=psf, models=[BackgroundModel()])
    result = detect_sources(dataset, threshold=6)
    assert len(result.sources) == 0 and len(result.history) == 0 and "no residual peak" in result.stopped
    with pytest.raises(EstimatorError, match="morphologies"):
        detect_sources(dataset, morphologies=("disk",))
    with pytest.raises(EstimatorError, match="BackgroundModel"):
        detect_sources(MapDataset.from_maps(maps, psf=psf, models=[]))
    with pytest.raises(EstimatorError, match="threshold"):
        detect_sources(dataset, threshold=-1)
