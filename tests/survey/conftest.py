"""A small simulated Galactic-plane survey shared by the survey tests (written once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from xgamma.simulate import survey

#: 30 runs: 3 columns of 10 pointings (0.7 deg apart) around l = 0, |b| < 3.5 deg.
SMALL_SURVEY = {"n_runs": 30, "l_range": (358.95, 1.05), "seed": 4}


@pytest.fixture(scope="session")
def survey_store(tmp_path_factory) -> Path:
    return survey(tmp_path_factory.mktemp("survey") / "gps", **SMALL_SURVEY)
