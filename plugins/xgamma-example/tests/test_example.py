"""Tests of the example plugin. Run them with the package installed (``pip install -e .``):
the components are used by name, through xgamma's registry, as users do."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest

from xgamma.exceptions import EstimatorError
from xgamma.plugin import get_registry
from xgamma.testing import (
    check_background_estimator,
    check_spatial_model,
    check_spectral_model,
    raise_if_dask_computes,
)


@pytest.fixture(scope="module")
def registry():
    return get_registry()


def test_registered_by_the_entry_point(registry):
    plugins = {c.plugin.distribution for c in (registry.spectral_models["sbpl"],
                                              registry.spatial_models["elliptical_gaussian"],
                                              registry.background_estimators["fov"])}
    assert plugins == {"xgamma-example"}
    registry.raise_for_failures()  # strict: no plugin problem (e.g. a name clash) in this env


def test_conformance(registry):
    check_spectral_model(registry.get_spectral_model("sbpl"))
    check_spatial_model(registry.get_spatial_model("elliptical_gaussian"))
    check_spatial_model(registry.get_spatial_model("egauss")(
        lon_0="10 deg", lat_0="20 deg", sigma="0.3 deg", e=0.8, phi="30 deg", frame="galactic"))
    check_background_estimator(registry.get_background_estimator("fov"))


def test_sbpl_reduces_to_a_power_law(registry):
    # index1 = index2 = g: the break factor is (1 + (E/Eb)^0)^-beta = 2^-beta at all energies.
    sbpl = registry.get_spectral_model("sbpl")(index1=2.3, index2=2.3, beta=1.5)
    power_law = registry.get_spectral_model("powerlaw")(index=2.3)
    energy = np.geomspace(0.1, 100, 9) * u.TeV
    assert u.allclose(sbpl(energy), power_law(energy) * 2**-1.5, rtol=1e-12)


def test_elliptical_gaussian_with_zero_eccentricity_matches_gaussian(registry):
    from xgamma.geometry import SkyGeometry

    geometry = SkyGeometry.create((10, 20), width=3 * u.deg, binsz=0.02 * u.deg, frame="galactic")
    kwargs = dict(lon_0="10.1 deg", lat_0="19.9 deg", sigma="0.2 deg", frame="galactic")
    mine = registry.get_spatial_model("elliptical_gaussian")(e=0.0, **kwargs).integrate_geom(geometry)
    builtin = registry.get_spatial_model("gaussian")(**kwargs).integrate_geom(geometry)
    # Flat-sky vs spherical Gaussian: relative difference ~ sigma^2 = 1.2e-5 (sigma in rad).
    np.testing.assert_allclose(mine, builtin, rtol=0, atol=1e-4 * builtin.max())


def test_elliptical_gaussian_orientation(registry):
    # Major axis along north (phi = 0): the profile is wider in latitude than in longitude,
    # in the ratio 1 / sqrt(1 - e^2) of the axes.
    model = registry.get_spatial_model("elliptical_gaussian")(sigma="0.2 deg", e=0.6, frame="galactic")
    f = model.evaluate
    along_major = f(0.0, 0.2, 0.0, 0.0, 0.2, 0.6, 0.0)
    along_minor = f(0.2 * np.sqrt(1 - 0.36), 0.0, 0.0, 0.0, 0.2, 0.6, 0.0)
    np.testing.assert_allclose(along_major, along_minor, rtol=1e-4)  # both one sigma out
    rotated = f(0.2, 0.0, 0.0, 0.0, 0.2, 0.6, 90.0)  # phi = 90 deg: major axis towards east
    np.testing.assert_allclose(rotated, along_major, rtol=1e-4)


def flat_maps(source_in_exclusion: bool):
    import dask.array as da

    from xgamma.background.exclusion import make_exclusion_mask
    from xgamma.geometry import SkyGeometry
    from xgamma.maps import make_map
    from regions import CircleSkyRegion
    from astropy.coordinates import SkyCoord

    geometry = SkyGeometry.create((0, 0), width=2 * u.deg, binsz=0.05 * u.deg, frame="galactic",
                                  energy_edges=[1, 3, 10] * u.TeV)
    bkg = np.full(geometry.data_shape, 4.0)
    bkg[1] *= 0.5  # second energy bin: half the background
    counts = 2.0 * bkg
    centre = SkyCoord(0, 0, unit="deg", frame="galactic")
    region = CircleSkyRegion(centre, 0.3 * u.deg)
    exclusion = make_exclusion_mask(geometry.to_image(), [region])
    inside = ~np.asarray(exclusion).reshape(geometry.shape)
    counts[:, inside] += 50.0  # a bright source, only inside the excluded region
    ds = make_map(da.from_array(bkg, chunks=(1, 20, 20)), geometry, name="background").to_dataset()
    ds["counts"] = make_map(da.from_array(counts, chunks=(1, 20, 20)), geometry, name="counts")
    return ds, exclusion


def test_fov_norm_ignores_the_excluded_source(registry):
    dataset, exclusion = flat_maps(True)
    fov = registry.get_background_estimator("fov")
    with raise_if_dask_computes():
        out = fov(exclusion=exclusion).run(dataset)
    # Analytic: outside the exclusion counts = 2 x model in each energy bin -> norm = 2.
    np.testing.assert_allclose(out["background_norm"].values, [2.0, 2.0], rtol=1e-12)
    np.testing.assert_allclose(out["background"].values, 2.0 * dataset["background"].values, rtol=1e-12)
    assert out["background"].attrs["units"] == dataset["background"].attrs["units"]
    # Without the exclusion the source biases the norm upwards.
    biased = fov().run(dataset)["background_norm"].values
    assert np.all(biased > 2.0)
    single = fov(exclusion=exclusion, per_energy=False).run(dataset)["background_norm"].values
    np.testing.assert_allclose(single, 2.0, rtol=1e-12)


def test_fov_errors(registry):
    dataset, exclusion = flat_maps(False)
    fov = registry.get_background_estimator("fov")
    with pytest.raises(EstimatorError, match=r"fov background needs dataset variables \['counts'\]"):
        fov().run(dataset.drop_vars("counts"))
    with pytest.raises(EstimatorError, match=r"exclusion shape \(10, 10\) != map shape \(40, 40\)"):
        fov(exclusion=exclusion.isel(lat=slice(0, 10), lon=slice(0, 10))).run(dataset)


@pytest.mark.gammapy
def test_against_gammapy(registry):
    from gammapy.modeling.models import GaussianSpatialModel, SmoothBrokenPowerLawSpectralModel

    params = dict(index1=1.7, index2=3.1, ebreak=2.5 * u.TeV, beta=0.7)
    energy = np.geomspace(0.1, 100, 15) * u.TeV
    theirs = SmoothBrokenPowerLawSpectralModel(amplitude="3e-12 TeV-1 cm-2 s-1", **params)(energy)
    mine = registry.get_spectral_model("sbpl")(amplitude="3e-12 TeV-1 cm-2 s-1", **params)(energy)
    assert u.allclose(mine, theirs, rtol=1e-10)  # same closed form: float round-off only

    lon = np.linspace(9.4, 10.6, 41)
    lat = np.linspace(19.4, 20.6, 41)[:, None]
    gp = GaussianSpatialModel(lon_0="10 deg", lat_0="20 deg", sigma="0.2 deg", e=0.7, phi="35 deg",
                              frame="galactic")
    theirs = gp.evaluate(lon * u.deg, lat * u.deg, gp.lon_0.quantity, gp.lat_0.quantity,
                         gp.sigma.quantity, gp.e.quantity, gp.phi.quantity).to_value("sr-1")
    model = registry.get_spatial_model("elliptical_gaussian")
    mine = model.evaluate(lon, lat, 10.0, 20.0, 0.2, 0.7, 35.0) * np.ones_like(theirs)
    # Flat-sky (mine) vs Gammapy's spherical form: ~sigma^2 ~ 1e-5 relative near the peak.
    np.testing.assert_allclose(mine, theirs, rtol=0, atol=2e-3 * theirs.max())
