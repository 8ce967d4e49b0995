"""HDU class -> reader mapping and read_irf errors."""

from __future__ import annotations

import pytest

from irf_files import copy_hdu_without_column
from xgamma.exceptions import IRFError
from xgamma.irf.aeff import EffectiveArea2D
from xgamma.irf.background import Background2D, Background3D
from xgamma.irf.edisp import EnergyDispersion2D
from xgamma.irf.psf import PSF3Gauss, PSFKing, PSFTable
from xgamma.irf.readers import builtin_irf_readers, read_irf

EXPECTED = {
    "aeff_2d": EffectiveArea2D,
    "bkg_3d": Background3D,
    "bkg_2d": Background2D,
    "edisp_2d": EnergyDispersion2D,
    "psf_3gauss": PSF3Gauss,
    "psf_table": PSFTable,
    "psf_king": PSFKing,
}


def test_builtin_readers_cover_gadf_irf_classes():
    readers = builtin_irf_readers()
    assert set(readers) == set(EXPECTED)
    assert builtin_irf_readers() is not readers  # a fresh dict each call (no shared state)


@pytest.mark.parametrize(
    ("hdu", "hdu_class"),
    [("EFFECTIVE AREA", "aeff_2d"), ("BACKGROUND", "bkg_3d"), ("ENERGY DISPERSION", "edisp_2d"),
     ("POINT SPREAD FUNCTION", "psf_3gauss")],
)
def test_read_irf_dispatches_on_class(cta_irf_file, hdu, hdu_class):
    assert type(read_irf(cta_irf_file, hdu, hdu_class.upper())) is EXPECTED[hdu_class]


def test_cached_reads_share_no_mutable_state(cta_irf_file):
    # One read per file (cached), but each caller gets its own object: attributes and meta set on
    # one do not reach another, and the shared arrays are read-only.
    import numpy as np

    first = read_irf(cta_irf_file, "BACKGROUND", "bkg_3d")
    second = read_irf(cta_irf_file, "BACKGROUND", "bkg_3d")
    assert first is not second and first.data is second.data  # read once
    first.fov_alignment = "ALTAZ"
    first.meta["NOTE"] = "mine"
    assert second.fov_alignment != "ALTAZ" and "NOTE" not in second.meta
    with pytest.raises(ValueError, match="read-only"):
        first.data.value[0, 0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        np.asarray(first.axes[0].edges)[0] = 0.0


def test_read_psf_king_and_table(king_file, hess_run_file):
    king = read_irf(king_file, "PSF_2D_KING", "psf_king")
    assert isinstance(king, PSFKing) and king.axes[0].nbin == 18
    assert isinstance(read_irf(hess_run_file, "PSF", "psf_table"), PSFTable)


def test_unknown_class_lists_known_ones(cta_irf_file):
    with pytest.raises(IRFError, match=r"unknown IRF HDU class 'rad_max_2d' .*known IRF readers: aeff_2d, bkg_2d"):
        read_irf(cta_irf_file, "EFFECTIVE AREA", "rad_max_2d")


def test_custom_reader_mapping(cta_irf_file):
    calls = []
    readers = {"my_class": lambda path, hdu: calls.append((path.name, hdu)) or "ok"}
    assert read_irf(cta_irf_file, "X", "my_class", readers=readers) == "ok"
    assert calls == [("irf_file.fits", "X")]


def test_missing_file_hdu_column(tmp_path, cta_irf_file):
    with pytest.raises(IRFError, match="FITS file not found: .*nope.fits"):
        read_irf(tmp_path / "nope.fits", "EFFECTIVE AREA", "aeff_2d")
    match = r"HDU 'AEFF' not found in .*irf_file.fits \(available HDUs: \['PRIMARY', 'EFFECTIVE AREA'"
    with pytest.raises(IRFError, match=match):
        read_irf(cta_irf_file, "AEFF", "aeff_2d")
    broken = copy_hdu_without_column(cta_irf_file, "POINT SPREAD FUNCTION", "SIGMA_2", tmp_path / "psf.fits")
    with pytest.raises(IRFError, match=r"column 'SIGMA_2' missing in HDU 'POINT SPREAD FUNCTION' of .*psf.fits"):
        read_irf(broken, "POINT SPREAD FUNCTION", "psf_3gauss")
