"""A lean process: what `import xgamma`, `xgamma --help` and `xgamma run` import (module sets, not times).

Each case runs in a fresh interpreter with ``python -X importtime`` and reads the modules it imported
from that report. Import *times* are measured by ``benchmarks/bench_imports.py``, not here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parents[1] / "examples"
HEAVY = ("xarray", "pandas", "astropy", "dask", "scipy", "distributed", "matplotlib", "zarr")


def _imported(args: list[str], **kwargs) -> tuple[set[str], subprocess.CompletedProcess]:
    """Top-level packages imported by ``python -X importtime <args>``, and the process result."""
    result = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True, **kwargs)
    modules = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in result.stderr.splitlines()
               if line.startswith("import time:") and "|" in line}
    return modules, result


def test_import_xgamma_is_light_and_still_registers_the_accessor():
    code = ("import sys, xgamma; heavy = [m for m in %r if m in sys.modules]; assert not heavy, heavy; "
            "import xarray; assert hasattr(xarray.DataArray, 'sky') and hasattr(xarray.Dataset, 'sky'); "
            "assert xgamma.SkyGeometry.__name__ == 'SkyGeometry'; print('ok')" % (HEAVY,))
    modules, result = _imported(["-c", code])
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


def test_accessor_registered_whatever_the_import_order():
    for first in ("xarray, xgamma", "xgamma.maps", "xgamma.accessor", "xgamma.geometry.sky"):
        code = f"import {first}; import xarray; assert hasattr(xarray.DataArray, 'sky'); print('ok')"
        _, result = _imported(["-c", code])
        assert result.returncode == 0 and result.stdout.strip() == "ok", (first, result.stderr[-2000:])


def test_help_imports_no_scientific_stack():
    modules, result = _imported(["-m", "xgamma.cli.main", "--help"])
    assert result.returncode == 0 and "usage: xgamma" in result.stdout
    assert not modules & {"numpy", *HEAVY}, modules & {"numpy", *HEAVY}


def test_maps_run_imports_neither_distributed_nor_plotting_nor_zarr(data_dir, tmp_path):
    env = dict(os.environ, XGAMMA_DATA=str(data_dir))
    modules, result = _imported(["-m", "xgamma.cli.main", "run", str(EXAMPLES / "hess-crab-maps.yaml"),
                                 "--output", str(tmp_path), "--quiet"], env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "maps.fits").is_file() and (tmp_path / "images.fits").is_file()
    assert {"xarray", "dask", "astropy"} <= modules  # what a maps run uses
    assert not modules & {"distributed", "matplotlib", "zarr"}, modules & {"distributed", "matplotlib", "zarr"}
