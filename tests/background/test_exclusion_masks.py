"""Exclusion masks from regions, DS9 strings and files, and from a significance threshold."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from regions import CircleSkyRegion

from xgamma.background import (
    make_exclusion_mask,
    parse_regions,
    threshold_exclusion_mask,
)
from xgamma.exceptions import EstimatorError
from xgamma.geometry import SkyGeometry
from xgamma.maps import make_map

BINSZ = 0.02


@pytest.fixture
def geometry() -> SkyGeometry:
    return SkyGeometry.create((0, 0), width=[3 * u.deg, 2 * u.deg], binsz=BINSZ * u.deg)


def test_region_string_object_and_file_agree(geometry, tmp_path):
    text = "galactic; circle(-0.054, -0.053, 0.3)"
    region = CircleSkyRegion(SkyCoord(-0.054, -0.053, unit="deg", frame="galactic"), 0.3 * u.deg)
    path = tmp_path / "excl.reg"
    path.write_text("# Region file format: DS9\ngalactic\ncircle(-0.054, -0.053, 0.3)\n")
    masks = [make_exclusion_mask(geometry, value).values for value in (text, region, path, str(path), [text])]
    for mask in masks[1:]:
        assert np.array_equal(mask, masks[0])
    # Excluded = pixel centres within 0.3 deg of the centre (independent check with separations).
    separation = geometry.separation(region.center)
    assert np.array_equal(~masks[0], separation < 0.3)
    assert masks[0].dtype == bool and masks[0].shape == geometry.shape


def test_no_regions_excludes_nothing(geometry):
    assert make_exclusion_mask(geometry).values.all()


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("galactic; circle(1, 2", "malformed DS9 region string 'galactic; circle\\(1, 2'"),
        ("galactic; circle(a, b, c)", "galactic; circle\\(a, b, c\\)"),
        ("circle(1, 2, 0.3)", "no sky region"),
        ("does/not/exist.reg", "region file 'does/not/exist.reg' does not exist"),
        (3.5, "cannot make exclusion regions from float"),
    ],
)
def test_bad_regions(value, match):
    with pytest.raises(EstimatorError, match=match):
        parse_regions(value)


def test_threshold_mask_dilation(geometry):
    sig = np.zeros(geometry.shape)
    sig[50, 75] = 7.0
    sig[10, 10] = 4.9  # below threshold
    sig[20, 20] = np.nan
    mask = threshold_exclusion_mask(make_map(sig, geometry), threshold=5, dilation=0.1 * u.deg)
    excluded = ~mask.values
    # A disk of radius 0.1 deg = 5 px around the hot pixel: 81 pixel centres.
    assert excluded.sum() == 81
    assert excluded[50, 75] and excluded[50, 80] and not excluded[50, 81]
    assert not excluded[10, 10] and not excluded[20, 20]
    base = make_exclusion_mask(geometry, "galactic; circle(1, 0, 0.2)")
    combined = threshold_exclusion_mask(make_map(sig, geometry), threshold=5, dilation="0.1 deg", base=base)
    assert np.array_equal(combined.values, mask.values & base.values)


