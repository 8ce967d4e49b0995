"""Simulated data stores shared by the simulator tests (written once per session)."""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import pytest
from astropy.coordinates import SkyCoord

from xgamma.simulate import point_source, demo_datastore, simulate_datastore, wobble_pointings

#: Target of the point-source fixture (ICRS deg) and its injected truth.
POINT_TARGET = SkyCoord(83.63, 22.01, unit="deg")
POINT_FLUX = 3e-11 * u.Unit("cm-2 s-1")  # integral 0.1-10 TeV
POINT_INDEX = 2.0


@pytest.fixture(scope="session")
def point_truth() -> dict:
    """Injected truth of `point_store` (position ICRS, flux 0.1-10 TeV, index)."""
    return {"position": POINT_TARGET, "flux": POINT_FLUX, "index": POINT_INDEX}


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory) -> Path:
    return demo_datastore(tmp_path_factory.mktemp("sim") / "demo", seed=0)


@pytest.fixture(scope="session")
def point_store(tmp_path_factory) -> Path:
    """Two 30-min wobble runs on a single point source with background."""
    src = point_source(position=POINT_TARGET, flux=POINT_FLUX, index=POINT_INDEX, name="pt")
    return simulate_datastore(
        tmp_path_factory.mktemp("sim") / "point",
        observations=wobble_pointings(POINT_TARGET, n=2, offset=0.7 * u.deg),
        sources=[src], livetime=30 * u.min, energy_min=0.1 * u.TeV, energy_max=20 * u.TeV, seed=3,
    )
