"""Statistical validation: pull distributions of simulated Poisson data, fitted by the real fitter.

200 realisations of a 60 x 60 image (0.02 deg pixels, flat exposure and background of 2 counts
per pixel, Gaussian PSF of sigma 0.04 deg). Each is fitted by MIGRAD + HESSE; the pulls
(fit - true) / error must have mean within 0.1 and width within 10 % of 1 (issue 3). With 200
samples the standard error of the mean is 0.07 and of the width ~5 %, so these bounds are ~1.5-2
standard errors: the seed is fixed (so the test is deterministic); a biased estimator or wrong
errors (e.g. a factor 2 in the statistic: widths 0.71 or 1.41) fail by many sigma.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from xgamma.fit import Likelihood, MapDataset, minimize
from xgamma.models import BackgroundModel, Gaussian, Point, PowerLaw2, SkyModel

N_REAL = 200


def _pulls(flat_image, truth: SkyModel, names: list[str], seed: int, n: int = N_REAL) -> np.ndarray:
    bkg = BackgroundModel(norm={"value": 1, "frozen": True})
    ds = MapDataset(flat_image["counts"], flat_image["exposure"], flat_image["background"], psf=flat_image["psf"],
                    models=[truth, bkg])
    mu = ds.npred().values
    base = ds.arrays
    rng = np.random.default_rng(seed)
    pulls = []
    for _ in range(n):
        arrays = dataclasses.replace(base, counts=rng.poisson(mu).astype(float))
        lik = Likelihood(arrays, [truth.copy(), bkg.copy()])  # start at the truth, as in the issue
        result = minimize(lik)
        assert result.success, result.message
        pulls.append([(result.values[f"{truth.name}.{n}"] - truth.parameter(n).value)
                      / result.errors[f"{truth.name}.{n}"] for n in names])
    return np.array(pulls)


def _check(pulls: np.ndarray, names: list[str]) -> None:
    for name, p in zip(names, pulls.T):
        assert abs(p.mean()) < 0.1, (name, p.mean(), p.std())
        assert abs(p.std(ddof=1) - 1.0) < 0.1, (name, p.mean(), p.std())


def test_point_source_pulls(flat_image):
    # 500 source counts on 2 counts/pixel: a ~20 sigma source, positions to ~0.1 pixel.
    truth = SkyModel(PowerLaw2(amplitude="5e-8 cm-2 s-1", index={"value": 2, "frozen": True}, emin="1 TeV",
                               emax="10 TeV"), Point(lon_0=0.013, lat_0=-0.007, frame="galactic"), name="src")
    names = ["lon_0", "lat_0", "amplitude"]
    _check(_pulls(flat_image, truth, names, seed=1), names)


@pytest.mark.slow
def test_gaussian_sigma_pulls(flat_image):
    # sigma = 0.03 deg (1.5 pixels, below the 0.04 deg PSF) with 2000 counts: sigma is measured
    # to ~10 %, far from its lower bound 0.
    truth = SkyModel(PowerLaw2(amplitude="2e-7 cm-2 s-1", index={"value": 2, "frozen": True}, emin="1 TeV",
                               emax="10 TeV"),
                     Gaussian(lon_0=0.005, lat_0=0.011, sigma=0.03, frame="galactic"), name="g")
    names = ["sigma", "lon_0", "amplitude"]
    # 400 realisations (standard error 0.05 on a mean): with 200 the bound of 0.1 is 1.4 standard
    # errors, and a change of the prediction (the extended-source PSF kernel) moved this seed's
    # sigma mean from +0.02 to -0.16 by chance (seeds 13-15: -0.02 to +0.03).
    _check(_pulls(flat_image, truth, names, seed=12, n=2 * N_REAL), names)
