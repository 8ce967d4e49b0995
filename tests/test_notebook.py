"""The tutorial notebook runs top to bottom on the CTA data and finds what it should.

``docs/tutorial.ipynb`` is stored without outputs; this test executes it with nbclient (kernel
``python3``) with ``XGAMMA_DATA`` from the environment and reads the JSON summary printed by its
last cell (tagged ``summary``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "docs" / "tutorial.ipynb"


def test_notebook_is_stored_without_outputs():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the tutorial has no code cells"
    with_outputs = [i for i, c in enumerate(code) if c.outputs or c.execution_count is not None]
    assert not with_outputs, f"code cells {with_outputs} store outputs: strip them before committing"
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.fixture(scope="module")
def summary(data_dir, tmp_path_factory) -> dict:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    env_before = os.environ.get("XGAMMA_DATA")
    os.environ["XGAMMA_DATA"] = str(data_dir)  # the kernel inherits it
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        workdir = tmp_path_factory.mktemp("notebook")
        NotebookClient(nb, kernel_name="python3", timeout=600,
                       resources={"metadata": {"path": str(workdir)}}).execute()
    finally:
        if env_before is None:
            os.environ.pop("XGAMMA_DATA", None)
        else:
            os.environ["XGAMMA_DATA"] = env_before
    cells = [c for c in nb.cells if "summary" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "the tutorial needs exactly one cell tagged 'summary'"
    text = "".join(o.get("text", "") for o in cells[0].outputs if o.output_type == "stream")
    return json.loads(text)


@pytest.mark.slow  # executes the tutorial notebook once (~15 s)
def test_notebook_point_source_fit(summary):
    assert summary["fit_success"]
    # The old Gammapy tutorial users know (same three runs, same model) found (-0.054, -0.051) deg;
    # the statistical error is 0.003 deg and PSF and background details differ between versions:
    # 0.01 deg (about 3 sigma) tolerance. The fit module's own tests cross-check Gammapy 2.1 closely.
    assert summary["gc_lon"] == pytest.approx(-0.05, abs=0.01)
    assert summary["gc_lat"] == pytest.approx(-0.05, abs=0.01)
    assert 0 < summary["gc_lon_err"] < 0.01 and 0 < summary["gc_lat_err"] < 0.01
    # Integral flux 0.1-10 TeV: 4.3e-11 cm-2 s-1 in the old tutorial (index frozen at 2), 3.1e-11
    # here; exposure weighting and background differ between versions, so only the order of
    # magnitude is pinned here (the fit tests compare with Gammapy 2.1).
    assert 1e-11 < summary["gc_amplitude"] < 1e-10


@pytest.mark.slow  # executes the tutorial notebook once (~15 s)
def test_notebook_significance_and_distribution(summary):
    # A > 20 sigma source in 1.5 h of CTA data; at least the detection threshold.
    assert summary["peak_significance"] > 5
    # Off pixels: mean ~0; the width is above 1 where diffuse emission is not excluded, and the
    # thresholded mask brings it closer to 1.
    assert abs(summary["distribution_mean"]) < 0.2
    assert 0.8 < summary["distribution_std"] < 1.5
    assert abs(summary["distribution_2_mean"]) < 0.2
    assert abs(summary["distribution_2_std"] - 1) <= abs(summary["distribution_std"] - 1)


@pytest.mark.slow  # executes the tutorial notebook once (~15 s)
def test_notebook_second_source(summary):
    assert summary["fit_2_success"]
    # The second source is G0.9+0.1 at (0.87, 0.08) deg; 0.05 deg covers its fit error (0.005 deg)
    # and the PSF-scale ambiguity of a start at the smoothed residual peak.
    assert summary["g09_lon"] == pytest.approx(0.87, abs=0.05)
    assert summary["g09_lat"] == pytest.approx(0.08, abs=0.05)
    assert summary["ts_second_source"] > 25  # a significant improvement (> 5 sigma)
