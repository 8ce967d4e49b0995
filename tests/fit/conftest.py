"""Synthetic, analytically known inputs for dataset and fit tests."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest

from xgamma.fit import PSFProfile, make_psf_kernel
from xgamma.geometry import SkyGeometry
from xgamma.maps import make_map

PSF_SIGMA = 0.04  # deg: 2 pixels of 0.02 deg, a compact CTA-like PSF core


def gaussian_profile(sigma: float, energy_edges: u.Quantity, *, rad_max: float = 0.5) -> PSFProfile:
    """2-D Gaussian PSF (small angle), the same for every energy bin."""
    rad = np.linspace(0.0, rad_max, 2001)
    dens = np.exp(-0.5 * rad**2 / sigma**2) / (2 * np.pi * np.radians(sigma) ** 2)
    n = len(energy_edges) - 1
    return PSFProfile(rad=rad, density=np.repeat(dens[None], n, axis=0), energy_edges=energy_edges)


@pytest.fixture(name="gaussian_profile", scope="session")
def _gaussian_profile_fixture():
    """The :func:`gaussian_profile` factory (conftest modules are not importable by tests)."""
    return gaussian_profile


@pytest.fixture(scope="session")
def flat_image():
    """60 x 60 image (0.02 deg), 1-10 TeV, flat exposure 1e10 cm2 s and background 2 counts/pixel."""
    geom = SkyGeometry.create((0, 0), width=1.2 * u.deg, binsz=0.02 * u.deg, frame="galactic",
                              energy_edges=[1, 10] * u.TeV)
    shape = geom.data_shape
    return {
        "geometry": geom,
        "exposure": make_map(np.full(shape, 1e6), geom, name="exposure", units="m2 s"),
        "background": make_map(np.full(shape, 2.0), geom, name="background"),
        "counts": make_map(np.zeros(shape), geom, name="counts"),
        "psf": make_psf_kernel(gaussian_profile(PSF_SIGMA, geom.energy_edges), pixel_scale=0.02,
                               max_radius=0.12 * u.deg),
    }


@pytest.fixture(scope="session")
def flat_cube():
    """40 x 40 cube (0.02 deg), 4 bins 0.1-10 TeV, flat exposure and background."""
    geom = SkyGeometry.create((0, 0), width=0.8 * u.deg, binsz=0.02 * u.deg, frame="galactic",
                              energy_edges=np.geomspace(0.1, 10, 5) * u.TeV)
    shape = geom.data_shape
    return {
        "geometry": geom,
        "exposure": make_map(np.full(shape, 5e9), geom, name="exposure", units="cm2 s"),
        "background": make_map(np.full(shape, 1.0), geom, name="background"),
        "counts": make_map(np.zeros(shape), geom, name="counts"),
    }


# ---------------------------------------------------------------- the CTA Galactic Centre reference
GC_OBS_IDS = [110380, 111140, 111159]


@pytest.fixture(scope="session")
def gc_maps(cta_datastore_dir):
    """The reference maps (DESIGN.md steps 1-5) of the three CTA 1DC Galactic Centre runs.

    ``cube`` (10 energy bins), ``images`` (squashed with an index-2 power law), ``kernel`` (the
    image PSF kernel at (0, 0)), ``observations`` and ``geometry``; computed once per session.
    """
    from astropy.coordinates import SkyCoord

    from xgamma.fit import psf_kernel_for_geometry
    from xgamma.io.datastore import DataStore
    from xgamma.makers import make_maps, squash_energy

    observations = DataStore(cta_datastore_dir).observations(GC_OBS_IDS)
    geometry = SkyGeometry.create((0, 0), width=(10 * u.deg, 8 * u.deg), binsz=0.02 * u.deg, frame="galactic",
                                  energy_edges=np.geomspace(0.1, 10, 11) * u.TeV)
    cube = make_maps(observations, geometry, offset_max=4 * u.deg).compute()
    images = squash_energy(cube, spectrum={"type": "powerlaw", "index": 2}).compute()
    kernel = psf_kernel_for_geometry(observations, geometry, SkyCoord(0, 0, unit="deg", frame="galactic"),
                                     image=True)
    return {"observations": observations, "geometry": geometry, "cube": cube, "images": images, "kernel": kernel}


@pytest.fixture(scope="session")
def gammapy_gc_image(cta_datastore_dir):
    """Gammapy 2.1's stacked image dataset of the same runs (true-energy exposure and PSF, squashed
    in reconstructed energy with ``to_image``), without models."""
    from gammapy.data import DataStore as GammapyDataStore
    from gammapy.datasets import MapDataset as GammapyMapDataset
    from gammapy.makers import MapDatasetMaker, SafeMaskMaker
    from gammapy.maps import MapAxis, WcsGeom

    observations = GammapyDataStore.from_dir(cta_datastore_dir).get_observations(GC_OBS_IDS)
    e_reco = MapAxis.from_energy_bounds(0.1, 10, 10, unit="TeV", name="energy")
    e_true = MapAxis.from_energy_bounds(0.1, 10, 10, unit="TeV", name="energy_true")
    geom = WcsGeom.create(skydir=(0, 0), binsz=0.02, width=(10, 8), frame="galactic", proj="CAR", axes=[e_reco])
    stacked = GammapyMapDataset.create(geom, energy_axis_true=e_true, name="stacked")
    maker = MapDatasetMaker(selection=["counts", "exposure", "background", "psf"])
    safe = SafeMaskMaker(methods=["offset-max"], offset_max=4 * u.deg)
    for obs in observations:
        stacked.stack(safe.run(maker.run(stacked.copy(name="obs"), obs), obs))
    return stacked.to_image()


def gammapy_point_models(image, *, lon: float = 0.01, lat: float = 0.01, amplitude: str = "3e-12 cm-2 s-1",
                         norm_frozen: bool = False, frozen: tuple[str, ...] = ()):
    """Gammapy models of the reference fit: point source x PowerLaw2 (index 2 frozen) + FoV background."""
    from gammapy.modeling.models import FoVBackgroundModel, Models, PointSpatialModel, PowerLaw2SpectralModel
    from gammapy.modeling.models import SkyModel as GammapySkyModel

    spectral = PowerLaw2SpectralModel(emin=0.1 * u.TeV, emax=10 * u.TeV, index=2.0, amplitude=amplitude)
    spectral.index.frozen = True
    spatial = PointSpatialModel(lon_0=f"{lon} deg", lat_0=f"{lat} deg", frame="galactic")
    for name in frozen:
        getattr(spatial, name).frozen = True
    bkg = FoVBackgroundModel(dataset_name=image.name)
    bkg.spectral_model.norm.frozen = norm_frozen
    return Models([GammapySkyModel(spatial_model=spatial, spectral_model=spectral, name="source"), bkg])


@pytest.fixture(name="gammapy_point_models", scope="session")
def _gammapy_point_models_fixture():
    """The :func:`gammapy_point_models` factory."""
    return gammapy_point_models


@pytest.fixture(scope="session")
def simulated_observations(tmp_path_factory):
    """Two 10 s runs (no events to speak of) of `xgamma.simulate`'s analytic instrument, wobbling
    0.5 deg around (0, 0) galactic, with a 15 % migration biased by +5 % (the pull studies')."""
    import dataclasses

    from astropy.coordinates import SkyCoord

    from xgamma.io.datastore import DataStore
    from xgamma.simulate import AnalyticIRF, simulate_datastore, wobble_pointings

    irf = dataclasses.replace(AnalyticIRF(), edisp_sigma=0.15, edisp_bias=0.05)
    target = SkyCoord(0, 0, unit="deg", frame="galactic")
    store = simulate_datastore(tmp_path_factory.mktemp("simulated") / "store",
                               observations=wobble_pointings(target, n=2, offset=0.5 * u.deg), sources=[],
                               livetime=10 * u.s, irf=irf, energy_min=0.3 * u.TeV, energy_max=10 * u.TeV,
                               max_offset=2.5 * u.deg, seed=1)
    return DataStore(store).observations()
