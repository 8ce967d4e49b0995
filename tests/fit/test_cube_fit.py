"""Cube analysis the MapDataset way on the H.E.S.S. Crab runs: exposure in true energy, energy
dispersion, a PSF kernel per true-energy bin, the safe energy range; checked against Gammapy 2.1.

xgamma runs through `xgamma.workflow.run_analysis` (``fit: {on: cube, edisp: true}``,
``safe_energy: aeff-default``, ``plots: true``: the configuration of issue 10 point 3); Gammapy
stacks `MapDatasetMaker` + `SafeMaskMaker(aeff-default, offset-max)` datasets with the same axes.
Model: point source x PowerLaw2 over 1-10 TeV (index free) + background norm.

Acceptance (issue 10): index within 0.2 sigma, flux within 3 %. Measured on this geometry
(2.5 x 2.5 deg): with energy dispersion, index -0.002 (0.02 sigma) and flux -0.5 %; without it
(both tools, true axis = reco axis), index +0.000 and flux -0.6 %. Positions agree to 0.4 sigma
(xgamma integrates the PSF at the exact sub-pixel position, Gammapy splits the flux over the 4
nearest pixels: see tests/fit/test_reference_fit.py). Energy dispersion itself moves the index by
~+0.035 (0.4 sigma) and the flux by ~-0.3 % here: the Crab's safe range starts at 1 TeV, where
migration from below the threshold matters little.
"""

from __future__ import annotations

import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from xgamma.fit import MapDataset, fit
from xgamma.fit.source_irfs import source_kernels
from xgamma.models import BackgroundModel, Point, PowerLaw2, SkyModel
from xgamma.workflow import run_analysis

OBS_IDS = [23523, 23526, 23559, 23592]
CRAB = SkyCoord(83.633, 22.014, unit="deg")
TRUE = dict(min="0.05 TeV", max="20 TeV", nbins=20)


def _config(hess_datastore_dir, **fit) -> dict:
    return {
        "data": {"datastore": str(hess_datastore_dir), "obs_ids": OBS_IDS},
        "geometry": {"center": {"lon": "83.633 deg", "lat": "22.014 deg", "frame": "icrs"}, "width": "2.5 deg",
                     "binsz": "0.02 deg", "projection": "TAN", "energy": {"min": "0.1 TeV", "max": "10 TeV", "nbins": 10},
                     "energy_true": TRUE},
        "maps": {"offset_max": "2 deg", "safe_energy": "aeff-default"},
        "models": [{"name": "crab", "spatial": {"type": "point", "lon_0": "83.63 deg", "lat_0": "22.01 deg",
                                                 "frame": "icrs"},
                    "spectral": {"type": "powerlaw2", "emin": "1 TeV", "emax": "10 TeV", "index": 2.5,
                                 "amplitude": "1e-11 cm-2 s-1"}}],
        "background_model": {"norm": {"value": 1, "frozen": False}, "tilt": {"value": 0, "frozen": True}},
        "fit": fit,
    }


@pytest.fixture(scope="module")
def crab(hess_datastore_dir, tmp_path_factory):
    """The xgamma cube fit with energy dispersion (through the workflow, writing plots) and without."""
    output = tmp_path_factory.mktemp("crab-cube")
    with_edisp = run_analysis({**_config(hess_datastore_dir, on="cube", edisp=True), "plots": True}, output=output)
    maps = with_edisp.maps
    models = [SkyModel(PowerLaw2(emin="1 TeV", emax="10 TeV", index=2.5, amplitude="1e-11 cm-2 s-1"),
                       Point(lon_0="83.63 deg", lat_0="22.01 deg", frame="icrs"), name="crab"),
              BackgroundModel(norm={"value": 1, "frozen": False})]
    psf, _ = source_kernels(with_edisp.observations, with_edisp.geometry, models, offset_max=2 * u.deg,
                            safe_energy="aeff-default")
    no_edisp = fit(MapDataset.from_maps(maps, psf=psf, models=models))
    return {"edisp": with_edisp, "no_edisp": no_edisp, "output": output}


@pytest.fixture(scope="module")
def gammapy_crab(hess_datastore_dir):
    """Gammapy 2.1 fits of the same data: with energy dispersion, and without (true axis = reco axis)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from gammapy.data import DataStore
        from gammapy.datasets import MapDataset as GammapyMapDataset
        from gammapy.makers import MapDatasetMaker, SafeMaskMaker
        from gammapy.maps import MapAxis, WcsGeom
        from gammapy.modeling import Fit
        from gammapy.modeling.models import FoVBackgroundModel, Models, PointSpatialModel, PowerLaw2SpectralModel
        from gammapy.modeling.models import SkyModel as GammapySkyModel

    observations = DataStore.from_dir(hess_datastore_dir).get_observations(OBS_IDS)
    reco = MapAxis.from_energy_bounds(0.1, 10, 10, unit="TeV", name="energy")
    results = {}
    for label, true in (("edisp", MapAxis.from_energy_bounds(0.05, 20, TRUE["nbins"], unit="TeV", name="energy_true")),
                        ("no_edisp", reco.copy(name="energy_true"))):
        geom = WcsGeom.create(skydir=CRAB, binsz=0.02, width=2.5, frame="icrs", proj="TAN", axes=[reco])
        stacked = GammapyMapDataset.create(geom, energy_axis_true=true, name=label)
        safe = SafeMaskMaker(methods=["aeff-default", "offset-max"], offset_max=2 * u.deg)
        for observation in observations:
            stacked.stack(safe.run(MapDatasetMaker().run(stacked.copy(name="run"), observation), observation))
        if label == "no_edisp":
            stacked.edisp = None
        spectral = PowerLaw2SpectralModel(emin=1 * u.TeV, emax=10 * u.TeV, index=2.5, amplitude="1e-11 cm-2 s-1")
        point = PointSpatialModel(lon_0="83.63 deg", lat_0="22.01 deg", frame="icrs")
        stacked.models = Models([GammapySkyModel(spectral_model=spectral, spatial_model=point, name="crab"),
                                 FoVBackgroundModel(dataset_name=label)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = Fit().run(stacked)
        assert result.success
        results[label] = stacked.models["crab"].parameters
    return results


def _compare(ours, reference):
    index, amplitude = reference["index"], reference["amplitude"]
    assert abs(ours.values["crab.index"] - index.value) < 0.2 * index.error
    assert ours.values["crab.amplitude"] == pytest.approx(amplitude.value, rel=0.03)
    assert ours.errors["crab.index"] == pytest.approx(index.error, rel=0.1)
    assert ours.errors["crab.amplitude"] == pytest.approx(amplitude.error, rel=0.1)
    for name in ("lon_0", "lat_0"):
        assert abs(ours.values[f"crab.{name}"] - reference[name].value) < 0.5 * reference[name].error, name


@pytest.mark.gammapy
@pytest.mark.slow  # Gammapy's two cube fits (fixture gammapy_crab; with the crab fixture, 39 s of setup at load 7)
def test_cube_fit_with_edisp_matches_gammapy(crab, gammapy_crab):
    result = crab["edisp"].fit_result
    assert result.success, result.message
    _compare(result, gammapy_crab["edisp"])


@pytest.mark.gammapy
@pytest.mark.slow  # Gammapy's two cube fits (fixture gammapy_crab; with the crab fixture, 39 s of setup at load 7)
def test_cube_fit_without_edisp_matches_gammapy(crab, gammapy_crab):
    assert crab["no_edisp"].success
    _compare(crab["no_edisp"], gammapy_crab["no_edisp"])
    # What energy dispersion changes here (stated in the module docstring): less than 1 sigma.
    with_edisp = crab["edisp"].fit_result
    shift = with_edisp.values["crab.index"] - crab["no_edisp"].values["crab.index"]
    assert 0 < shift < with_edisp.errors["crab.index"]


def test_cube_workflow_with_safe_energy_writes_every_product(crab):
    # Issue 10 point 3: fit.on cube with safe_energy (the PSF of bins without exposure) and plots.
    analysis, output = crab["edisp"], crab["output"]
    assert analysis.maps.exposure_true.dims == ("energy_true", "lat", "lon")
    assert analysis.residuals.residual.sizes["energy"] == 10
    for name in ("maps.fits", "images.fits", "fit.json", "residuals.fits", "plots/residuals.png",
                 "plots/counts.png", "plots/source_position.png"):
        assert (output / name).is_file(), name
    # Below 1 TeV every run is outside its safe range: no counts and no predicted counts there.
    npred = analysis.dataset.npred().values
    assert analysis.maps.counts.values[:5].sum() == 0 and npred[:5].sum() == 0 and npred[5:].sum() > 1000
