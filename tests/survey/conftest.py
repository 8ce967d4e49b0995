"""A small simulated Galactic-plane survey shared by the survey tests (written once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mosaic_cases import SMALL_SURVEY, beyond_runs_config, in_memory_products, mosaic_config

from xgamma.simulate import survey


@pytest.fixture(scope="session")
def survey_store(tmp_path_factory) -> Path:
    return survey(tmp_path_factory.mktemp("survey") / "gps", **SMALL_SURVEY)


@pytest.fixture(scope="session")
def reference_products(survey_store) -> dict:
    """The mosaic of `mosaic_config` computed in memory as one chunk (120 x 120 pixels)."""
    return in_memory_products(mosaic_config(survey_store, chunks=120))


@pytest.fixture(scope="session")
def beyond_runs_products(survey_store) -> dict:
    """The mosaic of `beyond_runs_config` computed in memory as one chunk (360 x 120 pixels)."""
    return in_memory_products(beyond_runs_config(survey_store, chunks=360))
