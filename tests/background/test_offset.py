"""Field-of-view offset cuts: exact pixel by pixel, and a bounded, read-only store of pixel vectors."""

from __future__ import annotations

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord

from xgamma.background import offset as offset_module
from xgamma.background.offset import inside_offset, offset_mask, pointing_lonlat
from xgamma.geometry import SkyGeometry


def test_cut_is_the_strict_separation_cut():
    geometry = SkyGeometry.create((83.6, 22.0), width=6 * u.deg, binsz=0.05 * u.deg, frame="icrs", projection="TAN")
    pointing = SkyCoord(84.1, 22.5, unit="deg")
    mask = offset_mask(geometry, pointing, offset_max="2.5 deg")
    np.testing.assert_array_equal(mask, geometry.separation(pointing) < 2.5)
    lazy = offset_mask(geometry, pointing, offset_max="2.5 deg", chunks=((50, 70), (30, 90)))
    np.testing.assert_array_equal(lazy.compute(scheduler="sync"), mask)


def test_pixel_vectors_are_kept_per_block_bounded_and_read_only():
    geometry = SkyGeometry.create((0, 0), width=4 * u.deg, binsz=0.05 * u.deg)
    pointings = np.array([pointing_lonlat(geometry, SkyCoord(0.3, 0.1, unit="deg", frame="galactic"))])
    offset_module._VECTORS.clear()
    blocks = [(slice(y, y + 20), slice(x, x + 20)) for y in range(0, 80, 20) for x in range(0, 80, 20)]
    for lat, lon in blocks:
        cut = inside_offset(geometry, pointings, 1.0, lat, lon)
        assert cut.shape == (1, 20, 20)
    # only the last few blocks are kept (memory of a few blocks, never of the map) ...
    assert len(offset_module._VECTORS) == offset_module._KEPT_BLOCKS
    assert all(v.shape == (20, 20, 3) for v in offset_module._VECTORS.values())
    # ... and what is kept cannot be written by one caller under the feet of another
    assert not any(v.flags.writeable for v in offset_module._VECTORS.values())
