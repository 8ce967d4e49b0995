"""A simulated field with five sources of known flux (one extended), for the detection tests and study."""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord

CENTER = SkyCoord(0, 0, unit="deg", frame="galactic")
BAND = (1 * u.TeV, 100 * u.TeV)  # the band of the injected integral fluxes
#: (name, l, b, flux 1-100 TeV in cm-2 s-1, index, Gaussian sigma in deg or None)
SOURCES = [
    ("t1", 0.0, 0.0, 1.0e-12, 2.3, None),
    ("t2", 0.6, 0.3, 6e-13, 2.5, None),
    ("t3", -0.5, -0.4, 5e-13, 2.0, None),
    ("t4", -0.6, 0.5, 1.5e-12, 2.4, 0.2),
    ("t5", 0.5, -0.6, 7e-13, 2.7, None),
]


def truth_models() -> list:
    """The injected sources as sky models."""
    from xgamma.simulate import gaussian_source, point_source

    models = []
    for name, lon, lat, flux, index, sigma in SOURCES:
        position = SkyCoord(lon, lat, unit="deg", frame="galactic")
        options = dict(index=index, name=name, flux_energy_min=BAND[0], flux_energy_max=BAND[1])
        if sigma is None:
            models.append(point_source(position, flux * u.Unit("cm-2 s-1"), **options))
        else:
            models.append(gaussian_source(position, flux * u.Unit("cm-2 s-1"), sigma=sigma * u.deg, **options))
    return models


def field_dataset(directory: Path, seed: int):
    """Simulate four 30-min wobble runs (xgamma.simulate), make the 0.5-100 TeV image and its MapDataset."""
    from xgamma.fit import MapDataset, psf_kernel_for_geometry
    from xgamma.geometry import SkyGeometry
    from xgamma.io.datastore import DataStore
    from xgamma.makers import make_maps, squash_energy
    from xgamma.models import BackgroundModel
    from xgamma.simulate import simulate_datastore, wobble_pointings

    store = simulate_datastore(directory / f"field_{seed}", observations=wobble_pointings(CENTER, n=4),
                               sources=truth_models(), livetime=30 * u.min, energy_min=0.5 * u.TeV,
                               max_offset=3 * u.deg, seed=seed, overwrite=True)
    observations = DataStore(store).observations()
    geometry = SkyGeometry.create(CENTER, width=2.6 * u.deg, binsz=0.02 * u.deg, frame="galactic",
                                  energy_edges=np.geomspace(0.5, 100, 9) * u.TeV)
    images = squash_energy(make_maps(observations, geometry, offset_max=2.5 * u.deg).compute())
    psf = psf_kernel_for_geometry(observations, geometry, CENTER, image=True, max_radius=0.25 * u.deg)
    return MapDataset.from_maps(images, psf=psf, models=[BackgroundModel()])


def match(sources, *, radius: float = 0.15) -> tuple[dict[str, str], list[str]]:
    """Injected name -> detected name (nearest within ``radius`` deg), and the unmatched detections."""
    from xgamma.geometry import angular_distance

    found, spurious = {}, []
    for row in sources:
        distances = {name: float(angular_distance(row["lon"], row["lat"], lon, lat))
                     for name, lon, lat, *_ in SOURCES}
        best = min(distances, key=distances.get)
        if distances[best] < radius and best not in found:
            found[best] = row["name"]
        else:
            spurious.append(row["name"])
    return found, spurious
