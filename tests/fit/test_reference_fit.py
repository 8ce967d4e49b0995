"""The reference fit (DESIGN.md steps 5-7) on the three CTA 1DC Galactic Centre runs.

xgamma: stacked cube -> squashed images (index-2 weighted exposure) -> mean PSF at (0, 0)
weighted by exposure and an index-2 spectrum over 0.1-10 TeV -> point source x PowerLaw2
(index frozen) + frozen background -> MIGRAD + HESSE.

Gammapy 2.1 (same run): stacked MapDataset with exposure and PSF per true-energy bin, squashed
in reconstructed energy only (``to_image``); the model is evaluated per true-energy bin with the
index-2 spectrum and summed; a point source spreads its flux bilinearly over the 4 nearest pixels
before the PSF convolution.

With the same point-source convention (``point_method="bilinear"``) the two differ only by where
the spectral weighting happens (squash-then-fit vs per-true-energy evaluation); measured:
positions agree to < 0.05 sigma, amplitude to 0.5 %, errors to 1 %, within the acceptance of
issue 3 (positions 0.2 sigma, amplitude 3 %, errors 10 %), which is asserted.

xgamma's default ``point_method="exact"`` integrates the PSF over the pixels around the true
sub-pixel position (a smooth likelihood; the bilinear prediction has kinks at pixel centres that
trap MIGRAD, see tests/fit/test_pulls.py). On these data the two conventions differ by more than
the statistics would suggest: measured +0.0025 deg in lon and lat (1.1-1.25 sigma), amplitude
-1.5 %, errors +13-16 %. The mean PSF itself agrees with Gammapy's IRF evaluation to 1e-4 in r68;
the data prefer the smoother bilinear model by Delta C = 5 (the Galactic Centre is not a lone
point source on a flat background: diffuse emission and a softer Sgr A* spectrum than the index-2
weighting broaden the observed profile). Under such a mismatch the observed curvature differs
from the Fisher information and details of the point-source shape move the best fit; with a
correct model (the pull tests) the exact method's values and errors are unbiased. The difference
is kept and bounded here (< 1.5 sigma, amplitude 3 %, errors 20 %).
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from xgamma.fit import MapDataset, fit, psf_kernel_for_geometry
from xgamma.models import BackgroundModel, Point, PowerLaw2, SkyModel

POSITION = SkyCoord(0, 0, unit="deg", frame="galactic")


def _models():
    source = SkyModel(PowerLaw2(emin="0.1 TeV", emax="10 TeV", index={"value": 2, "frozen": True},
                                amplitude="3e-12 cm-2 s-1"),
                      Point(lon_0="0.01 deg", lat_0="0.01 deg", frame="galactic"), name="source")
    return [source, BackgroundModel(norm={"value": 1, "frozen": True}, tilt={"value": 0, "frozen": True})]


@pytest.fixture(scope="module")
def reference(gc_maps):
    images, kernel = gc_maps["images"], gc_maps["kernel"]
    dataset = MapDataset.from_maps(images, psf=kernel, models=_models())
    bilinear = MapDataset.from_maps(images, psf=kernel, models=_models(), point_method="bilinear")
    return {**gc_maps, "dataset": dataset, "result": fit(dataset), "result_bilinear": fit(bilinear)}


def test_reference_fit_converges_and_is_consistent(reference):
    result, ds = reference["result"], reference["dataset"]
    assert result.success, result.message
    # The source is found near the Galactic Centre (Sgr A*, ~0.06 deg from (0, 0)) with a
    # precise position (errors ~0.002 deg, a 20-sigma source).
    v, e = result.values, result.errors
    assert np.hypot(v["source.lon_0"], v["source.lat_0"]) < 0.1
    assert 0.001 < e["source.lon_0"] < 0.005 and v["source.amplitude"] / e["source.amplitude"] > 15
    # npred of a point source = amplitude x (squashed) exposure at its position (PowerLaw2
    # between the map's band edges; the kernel is normalised and the source far from edges).
    npred = ds.npred_source("source").values.sum()
    x, y = ds.arrays.grid.to_pixel(v["source.lon_0"], v["source.lat_0"])
    exposure = ds.arrays.exposure[0, int(round(y)), int(round(x))]
    # Exposure varies by < 0.5 % over a pixel near the centre of the runs.
    assert npred == pytest.approx(v["source.amplitude"] * exposure, rel=5e-3)
    maps = ds.residual_maps()
    assert set(maps) == {"npred", "residual", "residual_significance"}
    # At the best fit the residual counts around the source are small compared with its counts.
    box = (0, slice(int(y) - 5, int(y) + 6), slice(int(x) - 5, int(x) + 6))
    assert abs(float(maps["residual"].values[box].sum())) < 0.1 * npred


def test_cube_fit_agrees_with_image_fit(reference):
    # The energy-dependent fit (10 bins, one PSF kernel per bin) measures the same source:
    # different binning of the same events, so the values agree within ~1 sigma.
    cube_kernel = psf_kernel_for_geometry(reference["observations"], reference["geometry"], POSITION)
    cube = MapDataset.from_maps(reference["cube"], psf=cube_kernel, models=_models())
    result = fit(cube)
    image = reference["result"]
    assert result.success
    for name in ("source.lon_0", "source.lat_0", "source.amplitude"):
        assert abs(result.values[name] - image.values[name]) < 1.5 * image.errors[name], name


@pytest.mark.slow
@pytest.mark.gammapy
def test_reference_fit_matches_gammapy(reference, gammapy_gc_image, gammapy_point_models):
    from gammapy.modeling import Fit

    image = gammapy_gc_image
    image.models = gammapy_point_models(image, norm_frozen=True)
    gp = Fit().run(image)
    assert gp.success
    ref = image.models["source"].parameters
    checks = {"result_bilinear": (0.2, 0.03, 0.10), "result": (1.5, 0.03, 0.20)}  # (sigma, rel, rel)
    for key, (max_sigma, amp_rel, err_rel) in checks.items():
        ours = reference[key]
        assert ours.success
        for name in ("lon_0", "lat_0", "amplitude"):
            p = ref[name]
            value, error = ours.values[f"source.{name}"], ours.errors[f"source.{name}"]
            if name == "amplitude":
                assert value == pytest.approx(p.value, rel=amp_rel), (key, name)
            else:
                assert abs(value - p.value) < max_sigma * p.error, (key, name, value, p.value, p.error)
            assert error == pytest.approx(p.error, rel=err_rel), (key, name, error, p.error)
