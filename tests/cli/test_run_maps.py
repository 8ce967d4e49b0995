"""`xgamma run` maps stage on the issue's configurations, and its failure modes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xgamma.cli.main import main
from xgamma.io.fits_maps import read_maps

EXAMPLES = Path(__file__).parents[2] / "examples"


def test_run_cta_config_writes_cube_and_images(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("XGAMMA_DATA", str(data_dir))
    assert main(["run", str(EXAMPLES / "cta-gc-maps.yaml"), "--output", str(tmp_path), "--quiet"]) == 0
    cube = read_maps(tmp_path / "maps.fits")
    images = read_maps(tmp_path / "images.fits")
    assert set(cube.data_vars) == {"counts", "exposure", "background"}
    assert cube.counts.shape == (10, 400, 500) and images.counts.shape == (1, 400, 500)
    assert images.counts.sum() == cube.counts.sum() > 100_000
    # float32 maps: each image pixel is a float32 sum over 10 energy bins (<= 10 x 2**-24 relative)
    np.testing.assert_allclose(images.background.sum(dtype=float), cube.background.sum(dtype=float), rtol=1e-6)
    assert cube.background.dtype == np.float32
    assert images.exposure.attrs["units"] == "m2 s"


def test_run_hess_config(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("XGAMMA_DATA", str(data_dir))
    assert main(["run", str(EXAMPLES / "hess-crab-maps.yaml"), "--output", str(tmp_path), "--quiet"]) == 0
    images = read_maps(tmp_path / "images.fits")
    assert images.counts.shape == (1, 200, 200) and float(images.counts.sum()) > 1000


def test_failing_run_prints_one_line_and_leaves_no_product(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text((EXAMPLES / "cta-gc-maps.yaml").read_text().replace("offset_max: 4 deg", "offset_max: 4 TeV"))
    result = subprocess.run([sys.executable, "-m", "xgamma.cli.main", "run", str(config), "--output",
                             str(tmp_path / "out")], capture_output=True, text=True, env={"XGAMMA_DATA": "/nowhere",
                                                                                            "PATH": ""})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xgamma: error:")
    assert not (tmp_path / "out" / "maps.fits").exists()


@pytest.mark.slow
def test_run_on_a_local_cluster_gives_the_same_maps(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("XGAMMA_DATA", str(data_dir))
    config = EXAMPLES / "cta-gc-maps.yaml"
    assert main(["run", str(config), "--output", str(tmp_path / "local"), "--quiet"]) == 0
    assert main(["run", str(config), "--output", str(tmp_path / "cluster"), "--workers", "2"]) == 0
    local, cluster = read_maps(tmp_path / "local" / "images.fits"), read_maps(tmp_path / "cluster" / "images.fits")
    for name in ("counts", "exposure", "background"):
        np.testing.assert_allclose(cluster[name].values, local[name].values, rtol=1e-12, atol=0)
