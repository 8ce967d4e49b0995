"""A small pull study in CI: the simulate -> make_maps -> fit chain of `xgamma.testing.pulls` on
a Gaussian source (the issue-10 demo case), fitted as ``xgamma run`` does with ``fit.on: images``
(`MapDataset.to_image`: the source predicted per energy bin with its own spectrum and PSF).

The full studies (>= 200 realisations per configuration, point, Gaussian and disk, image fits
with the weighting spectrum equal to and different from the source's, cube fits with energy
dispersion) run in benchmarks/pull_studies.py; docs/validation.md has their table. Here N = 24,
so the bounds are looser and stated in standard errors: the standard error of a mean pull is
1 / sqrt(24) = 0.20 and of a width ~0.15; a mean beyond 0.65 (3.2 standard errors) or a width
outside [0.6, 1.5] fails. That still catches the bias issue 10 reported (sigma pull +1.1,
amplitude -0.9 over 14 seeds) and errors off by a factor 2. Every fit must succeed.

The last ``N_LR`` realisations also get the likelihood-ratio pull of every parameter (one
profile fit each, `xgamma.testing.pulls.likelihood_ratio_pulls`; about +1 s per realisation):
each must be defined and within ``LR_HESSE`` of the Hesse pull. At this brightness the
likelihood is close to parabolic: over the 200 realisations of the independent `gaussian` study
(docs/validation.md) |LR - Hesse| was at most 0.011 for positions and 0.083 for amplitude and
sigma; a profile that is not refitted, a wrong factor in sqrt(delta C) (C = -2 ln L) or HESSE
errors that do not describe the likelihood are off by far more.
"""

from __future__ import annotations

import numpy as np
import pytest

from xgamma.testing.pulls import PullSetup, PullStudy, run_pull_study, simulate_and_fit

N = 24
N_LR = 6
MAX_MEAN = 0.65
WIDTH = (0.6, 1.5)
LR_HESSE = 0.15


@pytest.mark.slow
def test_gaussian_image_fit_pulls():
    setup = PullSetup(source="gaussian", fits=("images",))
    hesse_only = run_pull_study(setup, N - N_LR, seed=1000)
    with_lr = run_pull_study(setup, N_LR, seed=1000 + N - N_LR, likelihood_ratio=True)
    study = PullStudy(setup, hesse_only.results + with_lr.results)
    fit = setup.fits[0]
    assert not study.failures(fit), study.failures(fit)
    for name, s in study.summary()[fit].items():
        assert s["n"] == N
        assert abs(s["mean"]) < MAX_MEAN, (name, s)
        assert WIDTH[0] < s["width"] < WIDTH[1], (name, s)
    hesse, lr = with_lr.pulls(fit, "hesse"), with_lr.pulls(fit, "lr")
    assert set(lr) == set(hesse) == set(setup.parameters(fit))
    for name in lr:
        assert np.all(np.isfinite(lr[name])), (name, lr[name])
        assert np.all(np.abs(lr[name] - hesse[name]) < LR_HESSE), (name, lr[name], hesse[name])


def test_the_fitted_flux_range_changes_the_parametrisation_not_the_source():
    import astropy.units as u
    import numpy as np

    wide, band = PullSetup(source="point").truth(), PullSetup(source="point", flux_energy=(0.3, 10.0)).truth()
    energies = np.geomspace(0.1, 30, 7) * u.TeV
    np.testing.assert_allclose(band.spectral(energies).value, wide.spectral(energies).value, rtol=1e-12)
    assert band.spectral.emin.value == 0.3
    assert band.spectral.amplitude.value == pytest.approx(2e-10 * (0.3**-1.3 - 10**-1.3) / (0.1**-1.3 - 10**-1.3))


def test_fits_are_mirror_symmetric_in_latitude():
    """The studies' set-up is mirror-symmetric in latitude (source at the map centre, pointings at
    +-0.5 deg in latitude): a fit of the counts mirrored in latitude must give the mirrored
    latitude and the same other values, on images and on the cube with energy dispersion (true-
    energy exposure, a PSF kernel per true bin, the migration kernel). An asymmetry anywhere in the
    prediction (a kernel or exposure off by a fraction of a pixel, one pointing weighted
    differently) or in the fit's path would show here; a latitude offset of 0.4 mdeg seen at 30x
    the livetime (docs/validation.md) was this symmetric fit of its realisations (mirrored:
    +0.378 for -0.378), i.e. in the data. Measured: |lat + lat mirrored| and the differences of
    the other values below 1e-4 of an error; the bound 1e-2 leaves room for MIGRAD's tolerance."""
    setup = PullSetup(source="gaussian", fits=("images", "cube-edisp"), edisp_sigma=0.15, edisp_bias=0.05,
                      energy_true=(0.1, 30.0, 24))
    fits = simulate_and_fit(setup, 4242, mirror=True)
    for name in setup.fits:
        fit, mirrored = fits[name], fits[f"{name} mirrored"]
        assert fit["success"] and mirrored["success"], (fit["message"], mirrored["message"])
        for parameter in setup.parameters(name):
            value, error = fit["values"][parameter], fit["errors"][parameter]
            other = mirrored["values"][parameter]
            asymmetry = other + value if parameter == "lat_0" else other - value
            if parameter == "lon_0":
                asymmetry = (asymmetry + 180.0) % 360.0 - 180.0
            assert abs(asymmetry) < 1e-2 * error, (name, parameter, value, other, error)
        assert abs(fit["values"]["lat_0"]) > 0.05 * fit["errors"]["lat_0"], "a realisation on the axis proves nothing"
