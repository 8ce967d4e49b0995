"""The likelihood-ratio pull of `xgamma.testing.pulls` on fits whose answer is known by hand.

A Poisson counting experiment: n counts observed where the model predicts mu(theta). The Cash
statistic C = 2 (mu - n ln mu) is smallest at mu = n, and the profile at the true prediction
mu_0 lies 2 (n ln(n / mu_0) - (n - mu_0)) above it: the pull is sign(n - mu_0) times its square
root. The real fitter (MIGRAD + HESSE, the profile refitted by MIGRAD) must give that number.
"""

from __future__ import annotations

import numpy as np
import pytest

from xgamma.fit import MapDataset, fit
from xgamma.maps import make_map
from xgamma.models import BackgroundModel, Point, PowerLaw2, SkyModel
from xgamma.testing.pulls import likelihood_ratio_pull, likelihood_ratio_pulls


def _by_hand(n: float, mu_true: float) -> float:
    return float(np.sign(n - mu_true) * np.sqrt(2 * (n * np.log(n / mu_true) - (n - mu_true))))


def _with_counts(dataset: MapDataset, counts: np.ndarray, models: list) -> MapDataset:
    counts = dataset.counts.copy(data=counts)
    return MapDataset(counts, dataset.exposure, dataset.background, psf=dataset.psf, models=models)


@pytest.mark.parametrize("mean", [2.3, 1.8])  # 920 and 720 counts expected for 800 predicted
def test_counting_experiment_background_norm(flat_image, mean):
    geometry = flat_image["geometry"]
    counts = np.random.default_rng(7).poisson(mean, geometry.data_shape).astype(float)
    dataset = MapDataset(make_map(counts, geometry, name="counts"), flat_image["exposure"], flat_image["background"],
                         models=[BackgroundModel()])
    result = fit(dataset)
    assert result.success, result.message
    n, b = counts.sum(), float(flat_image["background"].sum())
    assert result.values["background.norm"] == pytest.approx(n / b, rel=1e-4)
    pulls = likelihood_ratio_pulls(dataset, result, {"background.norm": 1.0})
    # Exact up to MIGRAD's precision on C_min (EDM < 2e-4).
    assert pulls["background.norm"] == pytest.approx(_by_hand(n, b), abs=2e-3)
    # The Hesse pull (n / b - 1) / (sqrt(n) / b) differs: the likelihood is not a parabola.
    hesse = (result.values["background.norm"] - 1.0) / result.errors["background.norm"]
    assert hesse == pytest.approx((n - b) / np.sqrt(n), rel=1e-3)
    assert abs(pulls["background.norm"] - hesse) > 0.05


def test_counting_experiment_with_a_profiled_nuisance(flat_image):
    """A source amplitude with a free background norm refitted in the profile.

    The background is zero within 0.2 deg of the source, whose PSF stamp reaches 0.12 deg: the
    statistic splits into a source part and a background part, the norm's best value does not
    depend on the amplitude, and the amplitude's profile is the counting experiment of the
    counts within 0.2 deg against the source's predicted total.
    """
    geometry = flat_image["geometry"]
    near = geometry.separation(geometry.center) < 0.2
    background = flat_image["background"].copy(data=np.where(near, 0.0, flat_image["background"].values))
    truth = SkyModel(PowerLaw2(amplitude="5e-8 cm-2 s-1", index={"value": 2, "frozen": True}, emin="1 TeV",
                               emax="10 TeV"), Point(lon_0={"value": 0.0, "frozen": True},
                                                     lat_0={"value": 0.0, "frozen": True}, frame="galactic"),
                     name="src")
    base = MapDataset(flat_image["counts"], flat_image["exposure"], background, psf=flat_image["psf"],
                      models=[truth.copy(), BackgroundModel()])
    mu = base.npred().values
    assert mu[:, ~near].sum() == pytest.approx(2.0 * (~near).sum())  # nothing of the source leaks out
    counts = np.random.default_rng(3).poisson(mu).astype(float)
    dataset = _with_counts(base, counts, [truth.copy(), BackgroundModel(norm={"value": 1.1})])
    result = fit(dataset)
    assert result.success, result.message
    n_source, mu_source = counts[:, near].sum(), mu[:, near].sum()
    pulls = likelihood_ratio_pulls(dataset, result, {"src.amplitude": 5e-8, "background.norm": 1.0})
    assert pulls["src.amplitude"] == pytest.approx(_by_hand(n_source, mu_source), abs=2e-3)
    assert pulls["background.norm"] == pytest.approx(_by_hand(counts[:, ~near].sum(), mu[:, ~near].sum()), abs=2e-3)


def test_pull_sign_and_a_profile_below_the_minimum():
    assert likelihood_ratio_pull([1.0, 3.0], [2.0, 2.0], [4.0, 0.25]).tolist() == [-2.0, 0.5]
    assert likelihood_ratio_pull(1.0, 1.0, -1e-4) == 0.0  # the minimisations' precision
    assert np.isnan(likelihood_ratio_pull(1.2, 1.0, -0.5))  # the fit was not at the minimum


def test_pull_study_summary_counts_coverage_and_undefined_pulls():
    """Summary of hand-made fits: mean, width, 1-sigma coverage (|pull| <= 1) and NaN LR pulls."""
    from xgamma.testing.pulls import PullSetup, PullStudy

    setup = PullSetup(source="point", fits=("images",))
    truth = {p: setup.truth().parameter(p).value for p in setup.parameters("images")}
    hesse = [-1.5, -0.5, 0.0, 0.9, 1.0, 2.0]
    lr = [-1.4, -0.6, 0.0, 0.8, 1.1, float("nan")]
    results = [{"images": {"success": True, "message": "", "values": {p: t + h * 0.01 for p, t in truth.items()},
                           "errors": {p: 0.01 for p in truth}, "lr_pulls": {p: r for p in truth}}}
               for h, r in zip(hesse, lr)]
    results.append({"images": {"success": False, "message": "failed: at a bound", "values": {}, "errors": {}}})
    study = PullStudy(setup, results)
    s = study.summary("hesse")["images"]["lon_0"]
    assert s["n"] == 6 and s["mean"] == pytest.approx(np.mean(hesse)) and s["width"] == pytest.approx(np.std(hesse, ddof=1))
    assert s["coverage"] == pytest.approx(4 / 6) and s["coverage_error"] == pytest.approx(np.sqrt(4 / 6 * 2 / 6 / 6))
    s = study.summary("lr")["images"]["amplitude"]
    assert (s["n"], s["undefined"]) == (5, 1) and s["coverage"] == pytest.approx(3 / 5)
    assert study.failures("images") == ["failed: at a bound"]
