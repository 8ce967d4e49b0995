"""Session caches of the validation matrix."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def matrix_runs(data_dir):
    """The `matrix_runs.MatrixRuns` of the session: xgamma and Gammapy results, each made once."""
    from matrix_runs import MatrixRuns

    return MatrixRuns(data_dir)
