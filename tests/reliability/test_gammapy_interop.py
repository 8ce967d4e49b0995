"""Round trips with Gammapy 2.1: it reads ``models.yaml`` and every FITS product of ``xgamma run``,
and xgamma reads the model files Gammapy writes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits

from xgamma.io.fits_maps import read_maps
from xgamma.models.io import read_models

pytestmark = pytest.mark.gammapy

PRODUCTS = ("maps.fits", "images.fits", "residuals.fits", "significance.fits")


@pytest.fixture(scope="module")
def run_output(base_results):
    return base_results["hess", "full"]


def test_gammapy_reads_models_yaml_with_the_fitted_values(run_output):
    from gammapy.modeling.models import FoVBackgroundModel, Models

    models = Models.read(run_output / "models.yaml")
    fit = json.loads((run_output / "fit.json").read_text())
    # Gammapy names a background model after its dataset: xgamma's "background" is "stacked-bkg".
    names = {"source": "source", "background": "stacked-bkg"}
    assert {m.name for m in models} == set(names.values())
    background = models["stacked-bkg"]
    assert isinstance(background, FoVBackgroundModel) and background.datasets_names == ["stacked"]
    for row in fit["parameters"]:
        parameter = models[names[row["model"]]].parameters[row["name"]]
        np.testing.assert_allclose(parameter.value, row["value"], rtol=1e-12, err_msg=row["name"])
        assert parameter.frozen == row["frozen"]
        if not row["frozen"]:
            np.testing.assert_allclose(parameter.error, row["error"], rtol=1e-12)


def test_models_written_by_gammapy_read_back_in_xgamma(run_output, tmp_path):
    from gammapy.modeling.models import Models

    Models.read(run_output / "models.yaml").write(tmp_path / "gammapy.yaml")
    ours = read_models(run_output / "models.yaml")
    theirs = read_models(tmp_path / "gammapy.yaml")
    assert [type(m) for m in theirs] == [type(m) for m in ours]
    for model, again in zip(ours, theirs):
        np.testing.assert_allclose([p.value for p in again.parameters], [p.value for p in model.parameters],
                                   rtol=1e-12)
        assert [p.frozen for p in again.parameters] == [p.frozen for p in model.parameters]
    assert theirs[-1].datasets_names == ["stacked"]


@pytest.mark.parametrize("product", PRODUCTS)
def test_gammapy_reads_every_fits_product(run_output, product):
    from gammapy.maps import Map

    path = run_output / product
    ours = read_maps(path)
    with fits.open(path) as hdulist:
        images = [h for h in hdulist if isinstance(h, fits.ImageHDU)]
        primary = hdulist[0].header
    assert images
    for hdu in images:
        theirs = Map.read(path, hdu=hdu.name)
        variable = str(hdu.header.get("XGVAR", hdu.name.lower()))
        expected = np.asarray(ours[variable].values)
        assert theirs.data.shape == expected.shape
        assert theirs.data.dtype.kind == expected.dtype.kind, hdu.name  # masks are bool on both sides
        np.testing.assert_array_equal(theirs.data, expected)
        assert theirs.unit.is_equivalent(ours[variable].attrs["units"] or "")
    # Provenance: who wrote it when, from which runs.
    assert primary["CREATOR"].startswith("xgamma ") and primary["DATE"]
    assert primary["OBS_IDS"] == "23523,23526" and primary["N_OBS"] == 2 and primary["OFFMAX"] == 2.0


def test_significance_products_say_what_is_correlated(run_output):
    from gammapy.maps import Map

    path = run_output / "significance.fits"
    with fits.open(path) as hdulist:
        primary = hdulist[0].header
        comments = {h.name: " ".join(str(c) for c in h.header.get("COMMENT", [])) for h in hdulist[1:]}
    assert primary["CORRRAD"] == 0.1 and primary["RING_RIN"] == 0.5 and primary["RING_WID"] == 0.3
    assert primary["BKGMETH"] == "ring" and "circle" in primary["EXCLREG"]
    assert "correlated" in comments["EXCESS"] and "not correlated" in comments["COUNTS"]
    assert "not correlated" in comments["BACKGROUND"]
    exclusion = Map.read(path, hdu="EXCLUSION_MASK")
    assert exclusion.is_mask and 0 < exclusion.data.sum() < exclusion.data.size
    assert read_maps(path)["exclusion"].dtype == bool


def test_npred_is_never_negative(run_output):
    npred = read_maps(run_output / "residuals.fits")["npred"].values
    assert npred.min() >= 0 and npred.max() > 0


def test_gammapy_reads_the_detection_products(base_stores, tmp_path):
    """The ``detect`` stage's ``ts_map.fits`` and ``models.yaml`` open in Gammapy; ``sources.fits`` in astropy."""
    from astropy.table import Table
    from gammapy.maps import Map
    from gammapy.modeling.models import Models

    from corpus_runner import base_config, run_cli

    config = base_config(base_stores["hess"], "maps")
    config["detect"] = {"threshold": 8, "max_sources": 1, "morphologies": ["point"]}
    path = tmp_path / "detect.yaml"
    path.write_text(json.dumps(config))
    outcome = run_cli(["run", str(path), "--output", str(tmp_path / "out"), "--quiet"])
    assert outcome.code == 0, outcome.stderr
    out = tmp_path / "out"
    sources = Table.read(out / "sources.fits")
    assert len(sources) == 1  # the Crab
    ours = read_maps(out / "ts_map.fits")
    with fits.open(out / "ts_map.fits") as hdulist:
        names = [h.name for h in hdulist if isinstance(h, fits.ImageHDU)]
        assert hdulist[0].header["N_SRC"] == 1 and hdulist[0].header["CREATOR"].startswith("xgamma ")
    assert {"TS", "SQRT_TS", "FLUX"} <= set(names)
    for name in names:
        theirs = Map.read(out / "ts_map.fits", hdu=name)
        np.testing.assert_array_equal(theirs.data, ours[name.lower()].values)
    models = Models.read(out / "models.yaml")
    assert sources["name"][0] in models.names
