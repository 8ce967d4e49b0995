"""Running ``xgamma`` on a corpus case and judging the outcome.

Cases run in this process (``xgamma.cli.main.main``): a traceback is an exception escaping
``main``, which fails the test with its traceback; hangs are caught by the per-test timeout.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from corpus_stores import BaseStore

# kind -> (folder in $XGAMMA_DATA, runs, events kept per run or None for all)
BASE_RUNS = {
    "hess": ("hess-dl3-dr1", (23523, 23526), None),
    "cta": ("cta-1dc/index/gps", (110380,), 20_000),
}
#: Product files `xgamma run` may write; none may be left by a failed run.
PRODUCT_FILES = ("maps.fits", "images.fits", "fit.json", "models.yaml", "residuals.fits", "significance.fits",
                 "significance.json", "summary.json", "products.json", "config.yaml")

_CENTERS = {
    "hess": {"lon": "83.633 deg", "lat": "22.014 deg", "frame": "icrs"},
    "cta": {"lon": "0 deg", "lat": "0 deg", "frame": "galactic"},
}


def base_config(store: BaseStore, stages: str = "maps") -> dict:
    """A small, fast configuration on ``store``: 3 x 3 deg at 0.05 deg, 3 energy bins."""
    center = _CENTERS[store.kind]
    config: dict[str, Any] = {
        "data": {"datastore": str(store.path), "obs_ids": list(store.obs_ids)},
        "geometry": {"center": dict(center), "width": "3 deg", "binsz": "0.05 deg", "projection": "TAN",
                     "energy": {"min": "1 TeV", "max": "10 TeV", "nbins": 3}},
        "maps": {"offset_max": "2 deg"},
    }
    if stages == "full":
        lon, lat = (float(center[k].split()[0]) for k in ("lon", "lat"))
        config.update({
            "psf": {"position": dict(center)},
            "models": [{
                "name": "source",
                "spatial": {"type": "point", "lon_0": f"{lon + 0.01} deg", "lat_0": f"{lat + 0.01} deg",
                            "frame": center["frame"]},
                "spectral": {"type": "powerlaw2", "emin": "1 TeV", "emax": "10 TeV",
                             "index": {"value": 2.5, "frozen": True}, "amplitude": "2e-11 cm-2 s-1"},
            }],
            "background_model": {"norm": 1, "tilt": {"value": 0, "frozen": True}},
            "exclusion": {"regions": [f"{center['frame']}; circle({lon}, {lat}, 0.3)"]},
            "ring": {"r_in": "0.5 deg", "width": "0.3 deg"},
        })
    return config


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("xgamma: error:")]

    @property
    def warning_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("xgamma: warning:")]


def run_cli(argv: list[str]) -> Outcome:
    """``xgamma ARGV`` in this process, stdout and stderr captured."""
    from xgamma.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return Outcome(code, out.getvalue(), err.getvalue())


# -- expectations ------------------------------------------------------------------------------

Needle = str | Callable[[BaseStore], str]


@dataclass(frozen=True)
class Error:
    """The run fails with one ``xgamma: error:`` line containing every needle (case-insensitive)."""

    needles: tuple[Needle, ...] = ()

    def __init__(self, *needles: Needle) -> None:
        object.__setattr__(self, "needles", needles)


@dataclass(frozen=True)
class Same:
    """The run succeeds and its products equal those of the base run (``warns``: with these warnings)."""

    warns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Succeeds:
    """The run succeeds; ``check(output folder, base output folder, outcome)`` asserts what is special."""

    check: Callable[[Path, Path, Outcome], None] = field(default=lambda out, base, outcome: None)
    warns: tuple[str, ...] = ()


def assert_no_products(output: Path) -> None:
    """Nothing in ``output`` looks like a finished product (nor a leftover of the failed run)."""
    if not output.exists():
        return
    left = sorted(p.relative_to(output).as_posix() for p in output.rglob("*"))
    products = [name for name in left if name.split("/")[-1] in PRODUCT_FILES or name.endswith((".png", ".part"))]
    assert not products, f"a failed run left {products} in {output}"


def _images(path: Path) -> dict[str, np.ndarray]:
    from astropy.io import fits

    with fits.open(path) as hdulist:
        return {h.name: np.array(h.data) for h in hdulist if isinstance(h, fits.ImageHDU)}


def assert_same_products(output: Path, base: Path) -> None:
    """Images, cube and fit / significance summaries equal those of the base run."""
    for name in ("maps.fits", "images.fits"):
        got, expected = _images(output / name), _images(base / name)
        assert got.keys() == expected.keys()
        for hdu in expected:
            # Unit conversions in the damaged copy (GeV, cm2, rad) round in the last float32 bit.
            np.testing.assert_allclose(got[hdu], expected[hdu], rtol=1e-5, atol=0, err_msg=f"{name} {hdu}")
    summary, reference = (json.loads((p / "summary.json").read_text()) for p in (output, base))
    for stage in ("fit", "significance"):
        assert (stage in summary) == (stage in reference)
    if "fit" in reference:
        for key, value in reference["fit"]["values"].items():
            np.testing.assert_allclose(summary["fit"]["values"][key], value, rtol=1e-4, err_msg=key)
    if "significance" in reference:
        np.testing.assert_allclose(summary["significance"]["max_significance"],
                                   reference["significance"]["max_significance"], rtol=1e-5)
