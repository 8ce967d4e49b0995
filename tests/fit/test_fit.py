"""The fit: recovery of a simulated source, the result object, frozen parameters, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from xgamma.exceptions import FitError
from xgamma.fit import FitResult, MapDataset, fit, stat_profile
from xgamma.maps import make_map
from xgamma.models import BackgroundModel, Point, PowerLaw2, SkyModel


def _truth():
    return SkyModel(PowerLaw2(amplitude="5e-8 cm-2 s-1", index={"value": 2, "frozen": True}, emin="1 TeV",
                              emax="10 TeV"), Point(lon_0=0.013, lat_0=-0.007, frame="galactic"), name="src")


@pytest.fixture(scope="module")
def simulated(flat_image):
    ds = MapDataset(flat_image["counts"], flat_image["exposure"], flat_image["background"], psf=flat_image["psf"],
                    models=[_truth()])
    rng = np.random.default_rng(5)
    counts = rng.poisson(ds.npred().values).astype(float)
    return make_map(counts, flat_image["geometry"], name="counts")


def _dataset(flat_image, counts, models):
    return MapDataset(counts, flat_image["exposure"], flat_image["background"], psf=flat_image["psf"], models=models)


def test_fit_recovers_source_and_reports(flat_image, simulated):
    start = SkyModel(PowerLaw2(amplitude="2e-8 cm-2 s-1", index={"value": 2, "frozen": True}, emin="1 TeV",
                               emax="10 TeV"), Point(lon_0=0.03, lat_0=0.02, frame="galactic"), name="src")
    bkg = BackgroundModel(norm=1.0)  # free: fitted together with the source
    ds = _dataset(flat_image, simulated, [start, bkg])
    result = fit(ds, minos=["src.amplitude"])
    assert isinstance(result, FitResult) and result.success
    truth = _truth()
    for name in ("lon_0", "lat_0", "amplitude"):
        # Within 4 sigma of the truth (one realisation; the pull tests check the statistics).
        assert abs(result.values[f"src.{name}"] - truth.parameter(name).value) < 4 * result.errors[f"src.{name}"]
    assert abs(result.values["background.norm"] - 1.0) < 4 * result.errors["background.norm"]
    # The dataset's models are updated to the best fit, errors included.
    assert start.spatial.lon_0.value == result.values["src.lon_0"]
    assert start.spatial.lon_0.error == pytest.approx(result.errors["src.lon_0"])
    # Frozen parameters are reported, untouched, with zero error and zero covariance.
    assert result.values["src.index"] == 2.0 and result.errors["src.index"] == 0.0
    cov = result.covariance
    assert isinstance(cov, xr.DataArray) and cov.dims == ("param_i", "param_j")
    assert list(cov.param_i.values) == result.labels and "src.lon_0" in result.labels
    assert float(abs(cov.sel(param_i="src.index")).sum()) == 0.0
    assert float(cov.sel(param_i="src.lon_0", param_j="src.lon_0")) == pytest.approx(result.errors["src.lon_0"] ** 2)
    np.testing.assert_allclose(cov.values, cov.values.T, rtol=1e-8, atol=0)
    # The statistic is the dataset's Cash statistic at the best fit.
    assert result.statistic == pytest.approx(ds.stat_sum(), rel=1e-10)
    # MINOS errors bracket the value, close to the parabolic error for a ~20 sigma source.
    lo, hi = result.minos["src.amplitude"]
    assert lo < 0 < hi and abs(hi) == pytest.approx(result.errors["src.amplitude"], rel=0.2)
    # fit.json shape (issue 3)
    d = json.loads(json.dumps(result.to_dict()))
    assert set(d) == {"success", "message", "statistic", "nfev", "parameters", "covariance", "ts", "minos",
                      "bin_centre_exposure", "bias"}
    # The first-order bias of every free parameter: small for a ~20 sigma point source.
    assert set(d["bias"]) == set(result.covariance.param_i.values[np.diag(result.covariance.values) > 0])
    assert all(abs(entry["ratio"]) < 0.1 for entry in d["bias"].values())
    # An analytic PSF profile carries no exposure weights: the bin-centre bias is unknown, not 0.
    assert d["bin_centre_exposure"] == {"src": {"ratio": None, "corrected": False}}
    assert d["message"].startswith("converged") and d["minos"]["src.amplitude"] == list(result.minos["src.amplitude"])
    # TS = C(background only, norm refitted) - C(best fit): a ~20 sigma source.
    without = fit(_dataset(flat_image, simulated, [BackgroundModel(norm=1.0)]))
    assert d["ts"] == {"src": pytest.approx(without.statistic - result.statistic, abs=1e-3)} and d["ts"]["src"] > 300
    assert d["parameters"][0] == {"model": "src", "name": "lon_0", "value": result.values["src.lon_0"],
                                  "error": result.errors["src.lon_0"], "unit": "deg", "frozen": False}
    assert d["covariance"]["names"] == result.labels
    assert len(d["covariance"]["matrix"]) == len(result.labels) and d["nfev"] == result.nfev > 0
    text = str(result)
    assert "src.amplitude" in text and "frozen" in text and "success=True" in text


def test_all_parameters_frozen_is_a_fit_error(flat_image, simulated):
    m = _truth()
    for p in m.parameters:
        p.frozen = True
    with pytest.raises(FitError, match=r"all parameters are frozen \(\['src.lon_0', 'src.lat_0'"):
        fit(_dataset(flat_image, simulated, [m]))


def test_nan_exposure_in_fit_mask_is_a_fit_error(flat_image, simulated):
    exposure = flat_image["exposure"].copy(deep=True)
    exposure[0, 30, 31] = np.inf
    ds = MapDataset(simulated, exposure, flat_image["background"], models=[_truth()])
    with pytest.raises(FitError, match="exposure map has 1 NaN/inf pixels inside the fit mask"):
        fit(ds)


def test_unknown_minos_parameter(flat_image, simulated):
    with pytest.raises(FitError, match=r"minos: 'src.index' is not a free parameter"):
        fit(_dataset(flat_image, simulated, [_truth()]), minos=["src.index"])


def test_stat_profile_of_amplitude(flat_image, simulated):
    ds = _dataset(flat_image, simulated, [_truth()])
    result = fit(ds)
    best, err = result.values["src.amplitude"], result.errors["src.amplitude"]
    prof = stat_profile(ds, "src.amplitude", values=[best - err, best, best + err])
    assert prof.dims == ("parameter",) and prof.attrs["units"] == ""
    # Position refitted at each step; at +-1 sigma the statistic rises by ~1 (Delta C = 1 defines
    # the HESSE error; the Poisson likelihood is mildly asymmetric, hence 25 %).
    rise = prof.values - prof.values[1]
    assert prof.values[1] == pytest.approx(result.statistic, abs=1e-3)
    np.testing.assert_allclose(rise[[0, 2]], 1.0, rtol=0.25)
    with pytest.raises(FitError, match="'src.index' is not a free parameter"):
        stat_profile(ds, "src.index", values=[2.0])
