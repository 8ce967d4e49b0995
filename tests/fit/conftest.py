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
