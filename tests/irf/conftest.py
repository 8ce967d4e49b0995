"""IRF file locations in the shared data (the ``data_dir`` fixture fails when the data are missing)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def cta_irf_file(data_dir: Path) -> Path:
    return data_dir / "cta-1dc" / "caldb" / "data" / "cta" / "1dc" / "bcf" / "South_z20_50h" / "irf_file.fits"


@pytest.fixture(scope="session")
def hess_run_file(data_dir: Path) -> Path:
    return data_dir / "hess-dl3-dr1" / "data" / "hess_dl3_dr1_obs_id_023523.fits.gz"


@pytest.fixture(scope="session")
def king_file(data_dir: Path) -> Path:
    return data_dir / "extra" / "hess_psf_king_023523.fits.gz"


@pytest.fixture(scope="session")
def gammapy_irf():
    """Gammapy's IRF module (reference implementation, imported only in tests)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import gammapy.irf

    return gammapy.irf
