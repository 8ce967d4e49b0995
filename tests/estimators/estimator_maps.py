"""Synthetic maps with known sources for the estimator tests (analytic PSF, flat exposure and background)."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import xarray as xr

from xgamma.fit import PSFProfile, make_psf_kernel
from xgamma.geometry import SkyGeometry
from xgamma.maps import make_map

BINSZ = 0.02  # deg
PSF_SIGMA = 0.05  # deg: 2.5 pixels
EXPOSURE = 1e10  # m2 s = 1e14 cm2 s: a source of 1e-12 cm-2 s-1 gives 100 counts
BACKGROUND = 1.5  # counts per pixel and energy bin


def gaussian_psf(sigma: float | list[float], energy_edges: u.Quantity, *, max_radius: float = 0.2):
    """PSF kernel of a 2-D Gaussian (one width per energy bin, or one for all) on 0.02 deg pixels."""
    n = len(energy_edges) - 1
    sigmas = np.broadcast_to(np.atleast_1d(sigma), (n,))
    rad = np.linspace(0.0, 1.0, 4001)
    dens = np.array([np.exp(-0.5 * rad**2 / s**2) / (2 * np.pi * np.radians(s) ** 2) for s in sigmas])
    profile = PSFProfile(rad=rad, density=dens, energy_edges=energy_edges)
    return make_psf_kernel(profile, pixel_scale=BINSZ, max_radius=max_radius * u.deg)


def simulated_maps(*, sources=(), shape=(60, 80), energy_edges=(1, 10), psf_sigma=PSF_SIGMA, seed=0,
                   background=BACKGROUND) -> tuple[xr.Dataset, object]:
    """Poisson counts of a flat background plus point sources ``(x, y, flux cm-2 s-1)`` convolved with the PSF.

    The exposure of each bin is EXPOSURE; the flux of a source is shared between the bins as an
    index-2 power law would share it, so an index-2 reference spectrum recovers it.
    """
    from scipy.signal import fftconvolve

    edges = np.asarray(energy_edges, float) * u.TeV
    geometry = SkyGeometry.create((0, 0), width=(shape[1] * BINSZ * u.deg, shape[0] * BINSZ * u.deg),
                                  binsz=BINSZ * u.deg, frame="galactic", energy_edges=edges)
    psf = gaussian_psf(psf_sigma, edges)
    e = edges.to_value("TeV")
    share = (1 / e[:-1] - 1 / e[1:]) / (1 / e[0] - 1 / e[-1])
    expected = np.full(geometry.data_shape, float(background))
    for x, y, flux in sources:
        point = np.zeros(shape)
        point[y, x] = flux * EXPOSURE * 1e4
        for i in range(len(share)):
            expected[i] += share[i] * fftconvolve(point, psf.data[min(i, len(psf.data) - 1)], mode="same")
    counts = np.random.default_rng(seed).poisson(np.clip(expected, 0, None)).astype(float)
    maps = xr.Dataset({
        "counts": make_map(counts, geometry, name="counts"),
        "background": make_map(np.full(geometry.data_shape, float(background)), geometry, name="background"),
        "exposure": make_map(np.full(geometry.data_shape, EXPOSURE), geometry, name="exposure", units="m2 s"),
    })
    return maps, psf
