"""The Galactic Centre TS-map case made by both tools: shared by the Gammapy cross-check test and benchmarks/bench_ts.py.

Both tools make a ``width`` x ``width`` deg image at 0.02 deg around (0, 0) galactic from the CTA
1DC runs 110380, 111140, 111159 (0.1-10 TeV, offset cut 4 deg) and a point-source kernel of
``kernel_width`` deg (Gammapy's square ``kernel_width``: 21 x 21 pixels for 0.4 deg). A fit mask
keeps the central ``fit_width`` x ``fit_width`` deg (both tools fit only there); the background is
the background map (a frozen background model).

Gammapy's PSF map is built with a fine radius axis (0.002 deg): with its default 0.01 deg axis the
linearly interpolated CTA PSF core is 1 % too low at the kernel peak (measured), which moves
sqrt(TS) by up to 0.11 sigma at the brightest pixels.
"""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import numpy as np
import xarray as xr
from astropy.coordinates import SkyCoord

OBS_IDS = [110380, 111140, 111159]
CENTER = SkyCoord(0, 0, unit="deg", frame="galactic")
BINSZ = 0.02  # deg


def xgamma_inputs(store: Path, *, width: float = 2.0, fit_width: float = 1.2, kernel_width: float = 0.4) -> dict:
    """xgamma's image (numpy-backed, with ``mask_fit``) and square PSF kernel of the GC case."""
    from xgamma.fit import psf_kernel_for_geometry
    from xgamma.geometry import SkyGeometry
    from xgamma.io.datastore import DataStore
    from xgamma.makers import make_maps, squash_energy

    observations = DataStore(store).observations(OBS_IDS)
    geometry = SkyGeometry.create((0, 0), width=width * u.deg, binsz=BINSZ * u.deg, frame="galactic",
                                  energy_edges=np.geomspace(0.1, 10, 11) * u.TeV)
    images = squash_energy(make_maps(observations, geometry, offset_max=4 * u.deg),
                           spectrum={"type": "powerlaw", "index": 2}).compute()
    psf = psf_kernel_for_geometry(observations, geometry, CENTER, image=True, max_radius=0.3 * u.deg)
    half, keep = psf.data.shape[-1] // 2, int(round(kernel_width / BINSZ)) // 2
    kernel = psf.data[:, half - keep:half + keep + 1, half - keep:half + keep + 1]  # Gammapy's square kernel
    lon, lat = geometry.lonlat()
    lon = (lon + 180) % 360 - 180  # lonlat() gives 0..360 deg: the centre is at l = 0
    inside = (np.abs(lon) < fit_width / 2) & (np.abs(lat) < fit_width / 2)
    images["mask_fit"] = xr.DataArray(inside, dims=("lat", "lon"))
    return {"images": images, "kernel": kernel}


def gammapy_inputs(store: Path, mask_fit: np.ndarray, *, width: float = 2.0, kernel_width: float = 0.4,
                   n_jobs: int | None = None) -> dict:
    """Gammapy 2.1's stacked image dataset and ``TSMapEstimator`` of the GC case.

    ``mask_fit`` is xgamma's (lat, lon) fit mask (`xgamma_inputs`), so that both fit the same pixels.
    """
    from gammapy.data import DataStore as GammapyDataStore
    from gammapy.datasets import MapDataset as GammapyMapDataset
    from gammapy.estimators import TSMapEstimator
    from gammapy.makers import MapDatasetMaker, SafeMaskMaker
    from gammapy.maps import Map, MapAxis, WcsGeom
    from gammapy.modeling.models import FoVBackgroundModel

    gp_observations = GammapyDataStore.from_dir(store).get_observations(OBS_IDS)
    e_reco = MapAxis.from_energy_bounds(0.1, 10, 10, unit="TeV", name="energy")
    e_true = MapAxis.from_energy_bounds(0.1, 10, 10, unit="TeV", name="energy_true")
    rad = MapAxis.from_bounds(0, 0.66, nbin=330, node_type="edges", name="rad", unit="deg")
    geom = WcsGeom.create(skydir=(0, 0), binsz=BINSZ, width=width, frame="galactic", proj="CAR", axes=[e_reco])
    stacked = GammapyMapDataset.create(geom, energy_axis_true=e_true, rad_axis=rad, name="stacked")
    maker = MapDatasetMaker(selection=["counts", "exposure", "background", "psf"])
    safe = SafeMaskMaker(methods=["offset-max"], offset_max=4 * u.deg)
    for obs in gp_observations:
        stacked.stack(safe.run(maker.run(stacked.copy(name="obs"), obs), obs))
    image = stacked.to_image()
    image.models = [FoVBackgroundModel(dataset_name=image.name)]
    image.mask_fit = Map.from_geom(image.counts.geom, data=np.asarray(mask_fit)[None])
    estimator = TSMapEstimator(kernel_width=f"{kernel_width} deg", selection_optional=["ul"], n_sigma_ul=2,
                               n_jobs=n_jobs)
    return {"dataset": image, "estimator": estimator}
