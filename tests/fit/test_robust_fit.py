"""Fits that are robust and honest (issue 10): a success is the global minimum, anything else says why.

The reproduction: the CTA Galactic Centre reference fit with the background norm free, started
where ``examples/cta-gc-full.yaml`` starts (0.01, 0.01) deg with 3e-12 cm-2 s-1. Before this
work MIGRAD's first step took lat_0 to -2.4 deg and the fit "succeeded" there (Cash 291053.6,
amplitude -2.3e-12); Gammapy 2.1 from the same start reaches (-0.054, -0.048) deg,
2.95e-11 cm-2 s-1, norm 1.112, Cash 289916.5.
"""

from __future__ import annotations

import json
import re

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from xgamma.exceptions import FitError
from xgamma.fit import MapDataset, fit
from xgamma.fit.limits import default_limits
from xgamma.geometry import SkyGeometry
from xgamma.maps import make_map
from xgamma.models import BackgroundModel, Point, PowerLaw2, SkyModel

GC_AMPLITUDE = 2.95e-11  # cm-2 s-1, the best fit (Gammapy 2.1 and xgamma agree to 1.3 %)


def _gc_models(lon: float = 0.01, lat: float = 0.01, amplitude: float = 3e-12) -> list:
    source = SkyModel(PowerLaw2(emin="0.1 TeV", emax="10 TeV", index={"value": 2, "frozen": True},
                                amplitude=f"{amplitude} cm-2 s-1"),
                      Point(lon_0=f"{lon} deg", lat_0=f"{lat} deg", frame="galactic"), name="source")
    return [source, BackgroundModel(norm=1.0)]  # norm free, as documented by default


@pytest.fixture(scope="module")
def gc_free_norm(gc_maps):
    """One dataset (maps loaded once) and the fit from the configuration's start."""
    dataset = MapDataset.from_maps(gc_maps["images"], psf=gc_maps["kernel"], models=_gc_models())
    return {"dataset": dataset, "result": fit(dataset)}


def test_free_norm_fit_from_the_config_start_finds_the_source(gc_maps, gc_free_norm):
    result = gc_free_norm["result"]
    assert result.success, result.message
    v, e = result.values, result.errors
    # Sgr A* (-0.056, -0.046): within 3 sigma of the fitted position, which has 2.7 mdeg errors.
    assert abs(v["source.lon_0"] + 0.052) < 0.005 and abs(v["source.lat_0"] + 0.050) < 0.005
    assert v["source.amplitude"] == pytest.approx(GC_AMPLITUDE, rel=0.03)
    assert v["background.norm"] == pytest.approx(1.112, abs=3 * e["background.norm"])
    # TS of a ~34 sigma source, and the statistic TS is made of: C(background only) - C(fit).
    null = MapDataset.from_maps(gc_maps["images"], models=[BackgroundModel(norm=1.0)])
    assert result.ts["source"] == pytest.approx(fit(null).statistic - result.statistic, abs=1e-3)
    assert result.ts["source"] > 1000
    assert json.loads(json.dumps(result.to_dict()))["ts"] == {"source": pytest.approx(result.ts["source"])}


def test_free_norm_fit_from_a_brighter_start_reaches_the_same_minimum(gc_free_norm):
    # The issue: a start of 1e-11 landed on another false minimum.
    dataset = gc_free_norm["dataset"]
    dataset.models = _gc_models(amplitude=1e-11)
    result = fit(dataset)
    assert result.success, result.message
    assert result.statistic == pytest.approx(gc_free_norm["result"].statistic, abs=0.1)


def _starts(rng: np.random.Generator, n: int, *, near: bool) -> list[tuple[float, float, float]]:
    """Random (lon, lat, amplitude): anywhere in the 10 x 8 deg map, or within 0.3 deg of Sgr A*;
    amplitudes 0.1x-10x the best fit."""
    out = []
    for _ in range(n):
        if near:
            r, phi = 0.3 * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
            lon, lat = -0.05 + r * np.cos(phi), -0.05 + r * np.sin(phi)
        else:
            lon, lat = rng.uniform(-4.99, 4.99), rng.uniform(-3.99, 3.99)
        out.append((lon, lat, GC_AMPLITUDE * 10 ** rng.uniform(-1, 1)))
    return out


def _check_starts(gc_free_norm, starts) -> int:
    """Every reported success is the global minimum (Cash within 0.1), every other start says
    it failed and why. Returns the number of successes."""
    dataset, best = gc_free_norm["dataset"], gc_free_norm["result"].statistic
    successes = 0
    for lon, lat, amplitude in starts:
        dataset.models = _gc_models(lon, lat, amplitude)
        result = fit(dataset)
        start = f"start ({lon:.3f}, {lat:.3f}) deg, {amplitude:.3g}: {result.message}"
        if result.success:
            successes += 1
            assert result.statistic == pytest.approx(best, abs=0.1), start
        else:
            assert result.message.startswith("failed: ") and ";" in result.message, start
            assert result.statistic > best - 0.1, start  # the reference start found the global minimum
    return successes


def test_random_starts_report_only_the_global_minimum(gc_free_norm):
    rng = np.random.default_rng(10)
    _check_starts(gc_free_norm, _starts(rng, 10, near=False))
    # Not vacuous: starts near the source converge to it (each within 0.3 deg, ~4 PSF r68).
    assert _check_starts(gc_free_norm, _starts(rng, 5, near=True)) >= 4


@pytest.mark.slow
def test_fifty_random_starts_report_only_the_global_minimum(gc_free_norm):
    rng = np.random.default_rng(50)
    _check_starts(gc_free_norm, _starts(rng, 50, near=False))
    assert _check_starts(gc_free_norm, _starts(rng, 20, near=True)) >= 16


def test_position_limits_follow_the_data(gc_maps):
    dataset = MapDataset.from_maps(gc_maps["images"], psf=gc_maps["kernel"], models=_gc_models())
    arrays = dataset.arrays
    limits = default_limits(dataset.models, arrays)
    # The map's outer pixel edges (the exposure reaches every edge of this map).
    assert limits["source.lon_0"][:2] == pytest.approx((-5.0, 5.0), abs=1e-9)
    assert limits["source.lat_0"][:2] == pytest.approx((-4.0, 4.0), abs=1e-9)
    assert limits["source.lat_0"].origin == "data"
    # A fit mask narrows them; a position in ICRS gets its limits in ICRS.
    mask = np.zeros(dataset.counts.shape[1:], dtype=bool)
    mask[150:250, 200:300] = True  # lat -1..1, lon -1..1 (pixel edges)
    masked = MapDataset.from_maps(gc_maps["images"], psf=gc_maps["kernel"], mask_fit=mask,
                                  models=[SkyModel(PowerLaw2(), Point(lon_0=266.4, lat_0=-28.9, frame="icrs"),
                                                   name="icrs_source")])
    limits = default_limits(masked.models, masked.arrays)
    edge = np.linspace(-1, 1, 2001)
    outline = SkyCoord(np.concatenate([edge, np.ones_like(edge), edge, -np.ones_like(edge)]),
                       np.concatenate([-np.ones_like(edge), edge, np.ones_like(edge), edge]), unit="deg",
                       frame="galactic").icrs  # the mask's outline (a CAR square around (0, 0))
    assert limits["icrs_source.lon_0"][:2] == pytest.approx((outline.ra.deg.min(), outline.ra.deg.max()), abs=2e-3)
    assert limits["icrs_source.lat_0"][:2] == pytest.approx((outline.dec.deg.min(), outline.dec.deg.max()), abs=2e-3)
    # A galactic longitude of 359.9 deg starts at -0.1 deg, in the branch of the map.
    models = _gc_models(lon=359.9)
    default_limits(models, arrays)
    assert models[0].spatial.lon_0.value == pytest.approx(-0.1)


# ---------------------------------------------------------------- failure modes on synthetic data
def _simulated(flat_image, sources, seed=3):
    ds = MapDataset(flat_image["counts"], flat_image["exposure"], flat_image["background"], psf=flat_image["psf"],
                    models=sources)
    counts = np.random.default_rng(seed).poisson(ds.npred().values).astype(float)
    return make_map(counts, flat_image["geometry"], name="counts")


def _point(name, lon, lat, amplitude, frame="galactic", **spatial):
    return SkyModel(PowerLaw2(amplitude=f"{amplitude} cm-2 s-1", index={"value": 2, "frozen": True}, emin="1 TeV",
                              emax="10 TeV"), Point(lon_0=lon, lat_0=lat, frame=frame, **spatial), name=name)


def test_a_start_near_a_weaker_source_is_a_failure_naming_the_brighter_one(flat_image):
    # Bright (~20 sigma) and faint (~6 sigma) sources 0.3 deg apart; one point-source model.
    counts = _simulated(flat_image, [_point("bright", 0.15, 0.1, 5e-8), _point("faint", -0.15, -0.1, 1e-8)])

    def run(lon, lat):
        return fit(MapDataset(counts, flat_image["exposure"], flat_image["background"], psf=flat_image["psf"],
                              models=[_point("src", lon, lat, 1e-8), BackgroundModel(norm=1.0)]))

    local = run(-0.14, -0.09)
    assert not local.success
    where = re.search(r"a lower minimum exists at \((\S+), (\S+)\) deg galactic", local.message)
    assert where and np.hypot(float(where[1]) - 0.15, float(where[2]) - 0.1) < 0.01, local.message
    best = run(0.14, 0.09)
    assert best.success, best.message
    assert best.statistic < local.statistic - 10


def test_a_parameter_at_its_bound_is_a_failure(flat_image):
    counts = _simulated(flat_image, [_point("src", 0.013, -0.007, 5e-8)])
    model = _point("src", {"value": 0.06, "min": 0.05, "max": 0.2}, -0.007, 1e-8)
    result = fit(MapDataset(counts, flat_image["exposure"], flat_image["background"], psf=flat_image["psf"],
                            models=[model]))
    assert not result.success
    assert "src.lon_0 = 0.05 deg is at its lower bound 0.05 (its min)" in result.message, result.message


def test_a_source_without_data_fails_and_minos_does_not_raise(flat_image):
    # A hole without exposure inside the map: a source started there cannot be constrained.
    exposure = flat_image["exposure"].copy(deep=True)
    exposure[0, 5:25, 5:25] = 0.0
    counts = _simulated(flat_image, [_point("src", 0.013, -0.007, 5e-8)])
    geometry = flat_image["geometry"]
    lon, lat = geometry.wcs.wcs_pix2world([[15, 15]], 0)[0]
    result = fit(MapDataset(counts, exposure, flat_image["background"], psf=flat_image["psf"],
                            models=[_point("src", lon, lat, 1e-8)]), minos=["src.amplitude"])
    assert not result.success
    assert "is outside the data (no exposure inside the fit mask there)" in result.message, result.message


def test_a_start_outside_the_data_is_a_fit_error(flat_image):
    counts = _simulated(flat_image, [_point("src", 0.013, -0.007, 5e-8)])
    dataset = MapDataset(counts, flat_image["exposure"], flat_image["background"], psf=flat_image["psf"],
                         models=[_point("src", 2.0, 0.0, 1e-8)])
    with pytest.raises(FitError, match=r"src.lon_0 starts at 2 deg, outside its bounds \[-0.6, 0.6\] from the data"):
        fit(dataset)


def test_icrs_longitudes_are_reported_in_0_360(gaussian_profile):
    from xgamma.fit import make_psf_kernel

    geometry = SkyGeometry.create((0, 0), width=1.2 * u.deg, binsz=0.02 * u.deg, frame="icrs",
                                  energy_edges=[1, 10] * u.TeV)
    shape = geometry.data_shape
    exposure = make_map(np.full(shape, 1e6), geometry, name="exposure", units="m2 s")
    background = make_map(np.full(shape, 2.0), geometry, name="background")
    psf = make_psf_kernel(gaussian_profile(0.04, geometry.energy_edges), pixel_scale=0.02, max_radius=0.12 * u.deg)
    truth = _point("src", 359.97, 0.01, 5e-8, frame="icrs")
    ds = MapDataset(make_map(np.zeros(shape), geometry, name="counts"), exposure, background, psf=psf, models=[truth])
    counts = make_map(np.random.default_rng(1).poisson(ds.npred().values).astype(float), geometry, name="counts")
    start = _point("src", 0.02, 0.0, 2e-8, frame="icrs")  # on the other side of RA 0
    result = fit(MapDataset(counts, exposure, background, psf=psf, models=[start]))
    assert result.success, result.message
    ra = result.values["src.lon_0"]
    assert 0 <= ra < 360 and abs(ra - 359.97) < 4 * result.errors["src.lon_0"]
    assert start.spatial.lon_0.value == ra  # written back in range too


@pytest.mark.gammapy
@pytest.mark.slow  # 16 s at load 7 (Gammapy image + fit); the free-norm fits above stay fast
def test_free_norm_fit_matches_gammapy(gc_maps, gc_free_norm, gammapy_gc_image, gammapy_point_models):
    """The same fit in Gammapy 2.1 (from the same start, norm free).

    Background only (norm refitted): the statistics agree to 0.1 of 291061 and the norms to 1e-6,
    so both codes compute the same Cash statistic on the same maps. With a source:

    * ``point_method="bilinear"`` (Gammapy's convention): amplitude, norm, errors and TS agree to
      < 1 %. The bilinear prediction has kinks at pixel centres; lat_0 = -0.05 deg is one, with a
      local minimum on each side. Gammapy stops at lat -0.0479 deg, xgamma finds -0.0524 deg
      (2 sigma away) which is lower in Gammapy's own statistic too: asserted below, with lat_0
      fixed at our value and the rest refitted by Gammapy.
    * ``point_method="exact"`` (xgamma's default, smooth in position): the documented
      point-method difference (see tests/fit/test_reference_fit.py): positions within 1.5 sigma,
      amplitude 3 %, errors 20 %, TS 2 %.
    """
    from gammapy.modeling import Fit
    from gammapy.modeling.models import FoVBackgroundModel, Models

    image = gammapy_gc_image
    image.models = Models([FoVBackgroundModel(dataset_name=image.name)])
    gp_null = Fit().run(image)
    null = fit(MapDataset.from_maps(gc_maps["images"], models=[BackgroundModel(norm=1.0)]))
    assert gp_null.success and null.success
    assert null.statistic == pytest.approx(gp_null.total_stat, abs=0.5)
    assert null.values["background.norm"] == pytest.approx(image.models.parameters["norm"].value, rel=1e-5)

    image.models = gammapy_point_models(image)
    gp = Fit().run(image)
    assert gp.success
    ref = {p.name: p for p in image.models.parameters}
    gp_ts = gp_null.total_stat - gp.total_stat
    bilinear = fit(MapDataset.from_maps(gc_maps["images"], psf=gc_maps["kernel"], models=_gc_models(),
                                        point_method="bilinear"))
    for result, (max_sigma, err_rel) in ((bilinear, (0.2, 0.10)), (gc_free_norm["result"], (1.5, 0.20))):
        assert result.success, result.message
        v, e = result.values, result.errors
        assert v["source.amplitude"] == pytest.approx(ref["amplitude"].value, rel=0.03)
        assert abs(v["background.norm"] - ref["norm"].value) < 0.2 * ref["norm"].error
        for name in ("lon_0", "lat_0", "amplitude", "norm"):
            label = f"background.{name}" if name == "norm" else f"source.{name}"
            assert e[label] == pytest.approx(ref[name].error, rel=err_rel), label
        assert result.ts["source"] == pytest.approx(gp_ts, rel=0.02)
        assert abs(v["source.lon_0"] - ref["lon_0"].value) < max_sigma * ref["lon_0"].error
        if result is not bilinear:
            assert abs(v["source.lat_0"] - ref["lat_0"].value) < max_sigma * ref["lat_0"].error
    # Bilinear lat_0: Gammapy's statistic at our value (the rest refitted) is below its own minimum.
    lat = bilinear.values["source.lat_0"]
    assert abs(lat - ref["lat_0"].value) > 0.2 * ref["lat_0"].error  # the two kink-side minima
    image.models = gammapy_point_models(image, lon=bilinear.values["source.lon_0"], lat=lat, frozen=("lat_0",))
    at_ours = Fit().run(image)
    assert at_ours.success and at_ours.total_stat < gp.total_stat - 0.1
