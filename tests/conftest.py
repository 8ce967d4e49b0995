"""Shared fixtures. Data tests FAIL (never skip) when the DL3 data cannot be found."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Root of the shared DL3 data (``$XGAMMA_DATA``); fails loudly when it is unset or missing."""
    value = os.environ.get("XGAMMA_DATA")
    if not value:
        pytest.fail("XGAMMA_DATA is not set: export XGAMMA_DATA=/path/to/shared/data", pytrace=False)
    path = Path(value).expanduser().resolve()
    if not (path / "cta-1dc").is_dir() or not (path / "hess-dl3-dr1").is_dir():
        pytest.fail(f"XGAMMA_DATA={value} does not hold cta-1dc/ and hess-dl3-dr1/", pytrace=False)
    return path


@pytest.fixture(scope="session")
def cta_datastore_dir(data_dir: Path) -> Path:
    return data_dir / "cta-1dc" / "index" / "gps"


@pytest.fixture(scope="session")
def hess_datastore_dir(data_dir: Path) -> Path:
    return data_dir / "hess-dl3-dr1"


@pytest.fixture
def block_size(request):
    """Run a test with the default block size, or (0) with every chunk kept and overlapped.

    Small test maps fit in one block of ``xgamma.block_size`` values; 0 keeps the caller's chunks
    as blocks, so that chunk invariance is proven for the overlapped (``map_overlap``) path too.
    """
    import dask

    value = request.param
    if value is None:
        yield value
        return
    with dask.config.set({"xgamma.block_size": value}):
        yield value
