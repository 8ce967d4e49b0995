"""Pull studies: simulate a source many times with `xgamma.simulate`, fit each realisation, and
summarise the pulls ``(fitted - true) / error`` of every fitted parameter.

An unbiased fit with correct errors gives pulls of mean 0 and width 1. Each realisation is a
complete DL3 data store written by `xgamma.simulate.simulate_datastore` (events of the source
and of the background drawn through the analytic IRFs), binned by `xgamma.makers.make_maps` and
fitted by `xgamma.fit.fit` in several ways (`FITS`), all from the true parameter values.

The PSF and migration kernels depend on the IRFs, the pointings and the source's start position
only, which every realisation shares: they are made once per process (`xgamma.fit.source_kernels`,
as ``xgamma run`` makes them) and reused.

Examples
--------
>>> from xgamma.testing.pulls import PullSetup, run_pull_study
>>> study = run_pull_study(PullSetup(source="gaussian"), n=200, processes=2)  # doctest: +SKIP
>>> study.summary()["images"]["sigma"]  # doctest: +SKIP
{'n': 200, 'mean': 0.03, 'mean_error': 0.07, 'width': 1.02, 'width_error': 0.05}
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = ["FITS", "PullSetup", "PullStudy", "run_pull_study", "simulate_and_fit"]

#: The fits of a realisation, by name.
FITS = {
    "images": "counts summed over energy, the source predicted per energy bin with its own spectrum, "
              "exposure and PSF (`MapDataset.to_image`, the workflow's `fit.on: images`)",
    "squashed": "images squashed with the source's spectrum as weighting (`squash_energy`, "
                "`MapDataset.from_maps`)",
    "squashed-index-2": "images squashed with a power law of index 2 as weighting, a source of another index",
    "cube": "the cube, without energy dispersion",
    "cube-edisp": "the cube with exposure in true energy and the migration kernel",
}
SIZE = {"point": None, "gaussian": "sigma", "disk": "r_0"}


@dataclass(frozen=True)
class PullSetup:
    """One simulated configuration: the source, the instrument, the observations and the fits.

    Parameters
    ----------
    source : {"point", "gaussian", "disk"}
        Morphology of the simulated (and fitted) source.
    flux : float
        Integral flux between 0.1 and 10 TeV (cm-2 s-1).
    index : float
        Power-law index of the source.
    size : float
        Gaussian sigma or disk radius (deg).
    fits : tuple of str
        Names of `FITS` to run on every realisation.
    edisp_sigma, edisp_bias : float
        Energy migration of the simulated instrument (`xgamma.simulate.AnalyticIRF`).
    n_observations, wobble, livetime
        Observations: ``n_observations`` pointings ``wobble`` deg from the source, each of
        ``livetime`` s.
    width, binsz : float
        Square map (deg) and pixel size (deg), centred on the source.
    energy, energy_true : (float, float, int)
        Reconstructed-energy axis and (for ``cube-edisp``) true-energy axis: min, max (TeV), bins.
    offset_max : float
        Offset cut of the maps (deg).
    free_index : bool
        Fit the index in cube fits (image fits keep it at the true value).
    spectral_exposure : bool
        Predict with each source's spectrum-weighted effective area over each bin instead of the
        area at the bin centre (`~xgamma.fit.source_kernels`).
    """

    # Defaults: a bright source (amplitude and size known to ~4-5 %, so that the pulls are in
    # the Gaussian regime; at 1e-11 size pulls are skewed) on a small map with few energy bins:
    # a few seconds per realisation and fit.
    source: Literal["point", "gaussian", "disk"] = "point"
    flux: float = 2e-10
    index: float = 2.3
    size: float = 0.15
    fits: tuple[str, ...] = ("images", "squashed", "squashed-index-2")
    edisp_sigma: float = 0.01
    edisp_bias: float = 0.0
    n_observations: int = 2
    wobble: float = 0.5
    livetime: float = 1800.0
    width: float = 1.6
    binsz: float = 0.04
    energy: tuple[float, float, int] = (0.3, 10.0, 6)
    energy_true: tuple[float, float, int] = (0.1, 30.0, 12)
    offset_max: float = 2.0
    free_index: bool = True
    spectral_exposure: bool = False

    def __post_init__(self) -> None:
        from xgamma.exceptions import ConfigError

        if self.source not in SIZE:
            raise ConfigError(f"source: expected one of {sorted(SIZE)}, got {self.source!r}")
        unknown = [name for name in self.fits if name not in FITS]
        if unknown:
            raise ConfigError(f"fits: unknown fit {unknown[0]!r}; known: {sorted(FITS)}")

    @property
    def label(self) -> str:
        return f"{self.source} (index {self.index:g}, edisp {self.edisp_sigma:.0%}/{self.edisp_bias:+.0%})"

    def truth(self):
        """The simulated source as an `xgamma.models.SkyModel` (named ``"src"``)."""
        import astropy.units as u
        from astropy.coordinates import SkyCoord

        from xgamma.simulate import disk_source, gaussian_source, point_source

        position = SkyCoord(0.0, 0.0, unit="deg", frame="galactic")
        common = dict(flux=self.flux * u.Unit("cm-2 s-1"), index=self.index, name="src")
        if self.source == "gaussian":
            return gaussian_source(position, sigma=self.size * u.deg, **common)
        if self.source == "disk":
            return disk_source(position, radius=self.size * u.deg, **common)
        return point_source(position, **common)

    def parameters(self, fit: str) -> list[str]:
        """The fitted parameters whose pulls are reported."""
        names = ["lon_0", "lat_0", "amplitude"]
        if SIZE[self.source]:
            names.append(SIZE[self.source])
        if fit.startswith("cube") and self.free_index:
            names.append("index")
        return names


@dataclass
class PullStudy:
    """The fits of every realisation of a `PullSetup`."""

    setup: PullSetup
    results: list[dict[str, Any]] = field(default_factory=list)

    def pulls(self, fit: str) -> dict[str, np.ndarray]:
        """``{parameter: pulls}`` over the successful fits of ``fit``."""
        truth = self.setup.truth()
        names = self.setup.parameters(fit)
        rows = [r[fit] for r in self.results if r[fit]["success"]]
        return {name: np.array([(row["values"][name] - truth.parameter(name).value) / row["errors"][name]
                                for row in rows]) for name in names}

    def failures(self, fit: str) -> list[str]:
        """Messages of the realisations whose ``fit`` failed."""
        return [r[fit]["message"] for r in self.results if not r[fit]["success"]]

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """Per fit and parameter: ``n``, ``mean`` and ``width`` (sample standard deviation) of the
        pulls with their standard errors (``width_error`` is the large-sample ``width / sqrt(2 (n - 1))``)."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for fit in self.setup.fits:
            out[fit] = {}
            for name, pulls in self.pulls(fit).items():
                n = pulls.size
                width = float(pulls.std(ddof=1)) if n > 1 else float("nan")
                out[fit][name] = {"n": n, "mean": float(pulls.mean()) if n else float("nan"),
                                  "mean_error": width / np.sqrt(n) if n else float("nan"),
                                  "width": width, "width_error": width / np.sqrt(2 * (n - 1)) if n > 1 else float("nan")}
        return out


# ----------------------------------------------------------------------------- one realisation
_KERNELS: dict[PullSetup, dict[str, Any]] = {}  # per process: the kernels of each setup


def _geometry(setup: PullSetup):
    import astropy.units as u

    from xgamma.geometry import SkyGeometry, energy_edges

    lo, hi, n = setup.energy
    return SkyGeometry.create((0.0, 0.0), frame="galactic", width=setup.width * u.deg, binsz=setup.binsz * u.deg,
                              energy_edges=energy_edges(lo * u.TeV, hi * u.TeV, n))


def _true_edges(setup: PullSetup):
    import astropy.units as u

    from xgamma.geometry import energy_edges

    lo, hi, n = setup.energy_true
    return energy_edges(lo * u.TeV, hi * u.TeV, n)


def _start_models(setup: PullSetup, fit: str) -> list:
    from xgamma.models import BackgroundModel

    source = setup.truth()
    source.spectral.index.frozen = not (fit.startswith("cube") and setup.free_index)
    return [source, BackgroundModel(norm={"value": 1.0, "frozen": False})]


def _kernels(setup: PullSetup, observations, geometry) -> dict[str, Any]:
    """PSF (and migration) kernels of each fit, made once per process and setup."""
    if setup not in _KERNELS:
        import astropy.units as u

        from xgamma.fit import source_kernels
        from xgamma.models import PowerLaw

        offset = setup.offset_max * u.deg
        common = dict(offset_max=offset, spectral_exposure=setup.spectral_exposure)
        kernels: dict[str, Any] = {}
        for fit in setup.fits:
            models = _start_models(setup, fit)
            if fit == "cube-edisp":
                kernels[fit] = source_kernels(observations, geometry, models, **common,
                                              energy_true=_true_edges(setup), edisp=True)
            elif fit.startswith("squashed"):
                index = 2.0 if fit == "squashed-index-2" else setup.index
                kernels[fit] = source_kernels(observations, geometry, models, **common,
                                              spectrum=PowerLaw(index=index), image=True)
            else:
                kernels[fit] = source_kernels(observations, geometry, models, **common)
        _KERNELS[setup] = kernels
    return _KERNELS[setup]


def _dataset(setup: PullSetup, fit: str, maps, kernels):
    from xgamma.fit import MapDataset
    from xgamma.makers import squash_energy

    psf, edisp = kernels[fit]
    models = _start_models(setup, fit)
    if fit.startswith("squashed"):
        index = 2.0 if fit == "squashed-index-2" else setup.index
        images = squash_energy(maps, spectrum={"type": "powerlaw", "index": index})
        return MapDataset.from_maps(images, psf=psf, models=models)
    dataset = MapDataset.from_maps(maps, psf=psf, edisp=edisp, models=models)
    return dataset.to_image() if fit == "images" else dataset


def simulate_and_fit(setup: PullSetup, seed: int, workdir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Simulate one realisation of ``setup`` (``seed``) and run each of its fits.

    Returns
    -------
    result : dict
        ``{fit name: {"success", "message", "values", "errors"}}``: values and errors of the
        source's parameters (without the model-name prefix).
    """
    import dataclasses as dc

    import astropy.units as u
    from astropy.coordinates import SkyCoord

    from xgamma.fit import fit as run_fit
    from xgamma.io.datastore import DataStore
    from xgamma.makers import make_maps
    from xgamma.simulate import AnalyticIRF, simulate_datastore, wobble_pointings

    irf = dc.replace(AnalyticIRF(), edisp_sigma=setup.edisp_sigma, edisp_bias=setup.edisp_bias)
    target = SkyCoord(0.0, 0.0, unit="deg", frame="galactic")
    folder = Path(tempfile.mkdtemp(prefix=f"pulls-{seed}-", dir=workdir))
    try:
        store = simulate_datastore(
            folder / "store", observations=wobble_pointings(target, n=setup.n_observations, offset=setup.wobble * u.deg),
            sources=[setup.truth()], livetime=setup.livetime * u.s, irf=irf, energy_min=setup.energy[0] * u.TeV,
            energy_max=setup.energy[1] * u.TeV, max_offset=(setup.offset_max + 0.5) * u.deg, seed=seed)
        observations = DataStore(store).observations()
        geometry = _geometry(setup)
        energy_true = _true_edges(setup) if "cube-edisp" in setup.fits else None
        maps = make_maps(observations, geometry, offset_max=setup.offset_max * u.deg,
                         energy_true=energy_true).compute()
        kernels = _kernels(setup, observations, geometry)
        out = {}
        for name in setup.fits:
            result = run_fit(_dataset(setup, name, maps, kernels))
            out[name] = {"success": bool(result.success), "message": result.message,
                         "values": {k.split(".", 1)[1]: float(v) for k, v in result.values.items() if k.startswith("src.")},
                         "errors": {k.split(".", 1)[1]: float(v) for k, v in result.errors.items() if k.startswith("src.")}}
        return out
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _worker_init() -> None:
    import dask

    # One process per core: no threads inside a worker.
    dask.config.set(scheduler="synchronous")


def _task(args: tuple[PullSetup, int]) -> dict[str, Any]:
    return simulate_and_fit(*args)


def run_pull_study(setup: PullSetup, n: int, *, seed: int = 0, processes: int = 1,
                   seeds: Sequence[int] | None = None) -> PullStudy:
    """Simulate and fit ``n`` realisations of ``setup`` (seeds ``seed .. seed + n - 1``).

    Parameters
    ----------
    setup : PullSetup
        The configuration.
    n : int
        Number of realisations.
    seed : int
        First seed.
    processes : int
        Worker processes (``multiprocessing``, spawned); 1 runs in this process.
    seeds : sequence of int, optional
        Explicit seeds instead of ``seed .. seed + n - 1``.

    Returns
    -------
    PullStudy
    """
    seeds = list(seeds) if seeds is not None else list(range(seed, seed + n))
    tasks = [(setup, s) for s in seeds]
    if processes > 1:
        from multiprocessing import get_context

        with get_context("spawn").Pool(processes, initializer=_worker_init) as pool:
            results = pool.map(_task, tasks, chunksize=max(1, len(tasks) // (4 * processes)))
    else:
        results = [_task(t) for t in tasks]
    return PullStudy(dataclasses.replace(setup), results)
