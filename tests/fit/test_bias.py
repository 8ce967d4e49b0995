"""First-order finite-sample bias (xgamma.fit.bias) against the closed forms of a Gaussian's width."""

from __future__ import annotations

import json
import logging

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from xgamma.fit import MapDataset, fit
from xgamma.fit.bias import BIAS_TOLERANCE, finite_sample_bias
from xgamma.geometry import SkyGeometry
from xgamma.maps import make_map
from xgamma.simulate import gaussian_source

SIGMA = 0.21  # deg: the Gaussian is integrated over each pixel at one sample (oversampling switches at 0.2)
EXPOSURE = 1e10  # cm2 s


def _dataset(counts: float, *, free_position: bool) -> MapDataset:
    """A Gaussian of ``counts`` expected counts on 0.02 deg pixels (10 per sigma), no background, no
    PSF: the binned likelihood is that of the events' positions to ~1e-3, whose MLE is closed-form."""
    geometry = SkyGeometry.create((0, 0), width=2.4 * u.deg, binsz=0.02 * u.deg, frame="galactic",
                                  energy_edges=[1, 10] * u.TeV)
    shape = geometry.data_shape
    source = gaussian_source(SkyCoord(0, 0, unit="deg", frame="galactic"), counts / EXPOSURE * u.Unit("cm-2 s-1"),
                             sigma=SIGMA * u.deg, flux_energy_min=1 * u.TeV, flux_energy_max=10 * u.TeV, name="src")
    for name in ("lon_0", "lat_0"):
        source.parameter(name).frozen = not free_position
    source.parameter("index").frozen = True
    exposure = make_map(np.full(shape, EXPOSURE), geometry, name="exposure", units="cm2 s")
    dataset = MapDataset(make_map(np.zeros(shape), geometry, name="counts"), exposure, models=[source])
    dataset.counts = make_map(dataset.npred().values, geometry, name="counts")  # noise-free (Asimov) data
    dataset._arrays = None
    return dataset


@pytest.mark.parametrize(("free_position", "coefficient"), [(False, -1 / 8), (True, -5 / 8)])
def test_gaussian_width_bias_matches_closed_form(free_position, coefficient):
    """N events of a 2-D Gaussian: sigma_hat^2 = sum |r - centre|^2 / (2 N) (centre known) or
    sum |r - mean|^2 / (2 N) (centre fitted), so E[sigma_hat] = sigma (1 - 1/(8N)) or
    sigma (1 - 5/(8N)) to first order; with a free amplitude N is Poisson of mean n and the bias
    is coefficient x sigma / n. The amplitude (sum of the counts) is unbiased."""
    n = 400.0
    dataset = _dataset(n, free_position=free_position)
    likelihood = dataset.likelihood()
    errors = {"src.sigma": SIGMA / (2 * np.sqrt(n)), "src.amplitude": 1 / EXPOSURE * np.sqrt(n),
              "src.lon_0": SIGMA / np.sqrt(n), "src.lat_0": SIGMA / np.sqrt(n)}
    biases = finite_sample_bias(likelihood, {k: errors[k] for k in likelihood.free_labels})
    assert biases["src.sigma"]["bias"] == pytest.approx(coefficient * SIGMA / n, rel=0.02)
    # error sigma / (2 sqrt(n)): the ratio is 2 coefficient / sqrt(n)
    assert biases["src.sigma"]["ratio"] == pytest.approx(2 * coefficient / np.sqrt(n), rel=0.02)
    assert abs(biases["src.amplitude"]["ratio"]) < 1e-3
    if free_position:  # symmetric: the centre is unbiased
        assert abs(biases["src.lon_0"]["ratio"]) < 1e-3 and abs(biases["src.lat_0"]["ratio"]) < 1e-3
    # the likelihood's models are back at their values
    assert likelihood.models[0].parameter("sigma").value == pytest.approx(SIGMA)


def test_fit_records_bias_and_warns_beyond_tolerance(caplog, monkeypatch):
    """fit() records the bias in fit.json; beyond BIAS_TOLERANCE of an error it logs a warning naming the parameter."""
    monkeypatch.setattr(logging.getLogger("xgamma"), "propagate", True)  # the CLI's set-up may have cut it
    caplog.set_level("WARNING", logger="xgamma")
    quiet = fit(_dataset(400.0, free_position=False))
    assert not [r for r in caplog.records if "biased" in r.getMessage()]
    record = json.loads(json.dumps(quiet.to_dict()))["bias"]
    assert record["src.sigma"]["ratio"] == pytest.approx(-2 / 8 / 20, rel=0.05)
    # sigma known to 1 / (2 sqrt(n)): the ratio -1 / (4 sqrt(n)) passes 0.1 below n = 6.25
    loud = fit(_dataset(4.0, free_position=False))
    messages = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "biased" in r.getMessage()]
    assert len(messages) == 1 and "src.sigma" in messages[0] and "of its error" in messages[0]
    assert abs(loud.bias["src.sigma"]["ratio"]) > BIAS_TOLERANCE
    assert loud.success
