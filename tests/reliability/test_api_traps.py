"""API calls a newcomer tries: each either works or says what to do instead."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
import xarray as xr

from xgamma.background import RingBackground
from xgamma.exceptions import EstimatorError, FitError
from xgamma.fit.dataset import MapDataset
from xgamma.geometry import SkyGeometry, energy_edges
from xgamma.maps import make_map
from xgamma.models.io import sky_model_from_dict

GEOMETRY = SkyGeometry.create((0, 0), width=2 * u.deg, binsz=0.05 * u.deg,
                              energy_edges=energy_edges(1 * u.TeV, 10 * u.TeV, 1))


def _images() -> xr.Dataset:
    shape = GEOMETRY.data_shape
    return xr.Dataset({"counts": make_map(np.full(shape, 2.0), GEOMETRY, name="counts"),
                       "exposure": make_map(np.full(shape, 1e10), GEOMETRY, name="exposure", units="m2 s"),
                       "background": make_map(np.full(shape, 2.0), GEOMETRY, name="background")})


def test_sky_models_is_read_only_and_says_where_to_add():
    model = sky_model_from_dict({"name": "src", "spatial": {"type": "point", "lon_0": "0 deg", "lat_0": "0 deg",
                                                            "frame": "galactic"},
                                 "spectral": {"type": "powerlaw2", "amplitude": "1e-12 cm-2 s-1"}})
    dataset = MapDataset.from_maps(_images())
    with pytest.raises(FitError, match=r"dataset.models.append\(model\)"):
        dataset.sky_models.append(model)
    dataset.models.append(model)
    assert [m.name for m in dataset.sky_models] == ["src"]


def test_region_mask_takes_the_ds9_strings_configs_take():
    counts = _images().counts
    mask = counts.sky.region_mask("galactic; circle(0, 0, 0.3)")
    from regions import CircleSkyRegion
    from astropy.coordinates import SkyCoord

    same = counts.sky.region_mask(CircleSkyRegion(SkyCoord(0, 0, unit="deg", frame="galactic"), 0.3 * u.deg))
    assert mask.dtype == bool and 0 < int(mask.sum()) < mask.size
    xr.testing.assert_equal(mask, same)
    both = counts.sky.region_mask(["galactic; circle(0, 0, 0.3)", "galactic; circle(0.6, 0.6, 0.2)"])
    assert int(both.sum()) > int(mask.sum())


def test_ring_offset_cut_on_stacked_images_points_to_per_observation_maps():
    with pytest.raises(EstimatorError, match="make_observation_maps"):
        RingBackground(r_in="0.5 deg", width="0.3 deg", offset_max="2 deg").run(_images())
