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
import itertools
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = ["FITS", "PULL_KINDS", "PullSetup", "PullStudy", "likelihood_ratio_pull", "likelihood_ratio_pulls",
           "run_pull_study", "simulate_and_fit"]

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
#: The pulls of a `PullStudy`: ``"hesse"`` (fitted - true) / HESSE error, ``"lr"`` the signed
#: likelihood-ratio pull (`likelihood_ratio_pulls`).
PULL_KINDS = ("hesse", "lr")


def likelihood_ratio_pull(fitted: Any, true: Any, delta: Any) -> np.ndarray:
    """Signed likelihood-ratio pull ``sign(fitted - true) sqrt(delta)`` from a profile's rise.

    Parameters
    ----------
    fitted, true : float or array
        Best-fit and true values of the parameter.
    delta : float or array
        ``C_profile(true) - C_min``: the rise of the Cash statistic (C = -2 ln L) from the
        minimum to the profile at the true value. Values between ``-STATISTIC_TOLERANCE`` and 0
        (the two minimisations' precision) count as 0; below that the fit was not at the
        minimum and the pull is NaN.

    Returns
    -------
    numpy.ndarray or float
        Dimensionless, N(0, 1) for an unbiased estimator in the asymptotic (Wilks) regime.

    Examples
    --------
    Counting experiment with n = 25 observed for a true mean of 16: C(mu) = 2 (mu - n ln mu)
    is smallest at mu = n, and C(16) - C(25) = 2 (n ln(n / 16) - (n - 16)):

    >>> import numpy as np
    >>> delta = 2 * (25 * np.log(25 / 16) - 9)
    >>> round(float(likelihood_ratio_pull(25.0, 16.0, delta)), 4)
    2.0771

    (the Hesse pull, (25 - 16) / sqrt(25) = 1.8, uses the curvature at the minimum only).
    """
    from xgamma.fit.fitter import STATISTIC_TOLERANCE

    fitted, true, delta = (np.asarray(x, dtype=float) for x in (fitted, true, delta))
    pull = np.sign(fitted - true) * np.sqrt(np.clip(delta, 0.0, None))
    out = np.where(delta >= -STATISTIC_TOLERANCE, pull, np.nan)
    return float(out) if out.ndim == 0 else out


def likelihood_ratio_pulls(dataset: Any, result: Any, truth: dict[str, float], *,
                           strategy: int = 1) -> dict[str, float]:
    """Signed likelihood-ratio pull of each parameter in ``truth``: one profile fit per parameter.

    For each parameter the others are refitted (MIGRAD from the best fit, as
    `xgamma.fit.stat_profile` does) with it held at its true value; the pull is
    `likelihood_ratio_pull` of the statistic's rise over ``result.statistic``.

    Parameters
    ----------
    dataset : MapDataset
        The fitted dataset, its models at the best fit (`xgamma.fit.fit` with ``update=True``,
        the default): the profile fits start there.
    result : FitResult
        The fit of ``dataset`` (its ``statistic`` is C_min, its ``values`` the best fit).
    truth : dict
        ``{"model.name": true value}`` (the parameter's unit) of free parameters.
    strategy : int
        iminuit strategy of the profile fits.

    Returns
    -------
    dict
        ``{"model.name": pull}``; NaN where the profile went more than
        `~xgamma.fit.fitter.STATISTIC_TOLERANCE` below ``result.statistic`` (the fit was not at
        the minimum).
    """
    from xgamma.fit import stat_profile

    out = {}
    for label, true in truth.items():
        profile = float(stat_profile(dataset, label, values=[true], strategy=strategy).values[0])
        out[label] = likelihood_ratio_pull(result.values[label], true, profile - result.statistic)
    return out


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
    flux_energy : (float, float)
        Energy range (TeV) of the fitted amplitude (the `PowerLaw2` integral flux). The source
        is the same whatever the range (``flux`` is always its flux over 0.1-10 TeV), so a seed
        draws the same events: only the parametrisation of the fit changes.
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
    flux_energy: tuple[float, float] = (0.1, 10.0)

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

        from xgamma.models.spectral import powerlaw_integral

        position = SkyCoord(0.0, 0.0, unit="deg", frame="galactic")
        lo, hi = self.flux_energy
        flux = self.flux * powerlaw_integral(lo, hi, self.index) / powerlaw_integral(0.1, 10.0, self.index)
        common = dict(flux=flux * u.Unit("cm-2 s-1"), index=self.index, name="src",
                      flux_energy_min=lo * u.TeV, flux_energy_max=hi * u.TeV)
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

    def pulls(self, fit: str, kind: str = "hesse") -> dict[str, np.ndarray]:
        """``{parameter: pulls}`` over the successful fits of ``fit``.

        ``kind`` is one of `PULL_KINDS`: ``"hesse"`` (fitted - true) / error, or ``"lr"`` the
        likelihood-ratio pull (realisations run with ``likelihood_ratio=True``; NaN where the
        profile fell below the minimum, see `likelihood_ratio_pull`).
        """
        from xgamma.exceptions import ConfigError

        if kind not in PULL_KINDS:
            raise ConfigError(f"kind: expected one of {PULL_KINDS}, got {kind!r}")
        truth = self.setup.truth()
        names = self.setup.parameters(fit)
        rows = [r[fit] for r in self.results if r[fit]["success"]]
        if kind == "lr":
            missing = sum("lr_pulls" not in row for row in rows)
            if missing:
                raise ConfigError(f"{missing} realisations of {fit!r} have no likelihood-ratio pulls "
                                 "(run them with likelihood_ratio=True)")
            return {name: np.array([row["lr_pulls"][name] for row in rows], dtype=float) for name in names}
        return {name: np.array([(row["values"][name] - truth.parameter(name).value) / row["errors"][name]
                                for row in rows]) for name in names}

    def failures(self, fit: str) -> list[str]:
        """Messages of the realisations whose ``fit`` failed."""
        return [r[fit]["message"] for r in self.results if not r[fit]["success"]]

    def summary(self, kind: str = "hesse") -> dict[str, dict[str, dict[str, float]]]:
        """Per fit and parameter: ``n``, ``mean`` and ``width`` (sample standard deviation) of the
        pulls of ``kind`` (`PULL_KINDS`) with their standard errors (``mean_error`` is
        ``width / sqrt(n)``, ``width_error`` the large-sample ``width / sqrt(2 (n - 1))``), and
        ``coverage``, the fraction of realisations whose 1-sigma interval (value +- error for
        Hesse pulls, the profile-likelihood interval for LR pulls) holds the true value, i.e.
        ``|pull| <= 1`` (0.683 for exact intervals), with its binomial ``coverage_error``.
        NaN likelihood-ratio pulls are left out of ``n`` and counted in ``undefined``."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for fit in self.setup.fits:
            out[fit] = {}
            for name, values in self.pulls(fit, kind).items():
                pulls = values[np.isfinite(values)]
                n = pulls.size
                width = float(pulls.std(ddof=1)) if n > 1 else float("nan")
                coverage = float(np.mean(np.abs(pulls) <= 1.0)) if n else float("nan")
                out[fit][name] = {"n": n, "mean": float(pulls.mean()) if n else float("nan"),
                                  "mean_error": width / np.sqrt(n) if n else float("nan"),
                                  "width": width, "width_error": width / np.sqrt(2 * (n - 1)) if n > 1 else float("nan"),
                                  "coverage": coverage,
                                  "coverage_error": float(np.sqrt(coverage * (1 - coverage) / n)) if n else float("nan"),
                                  "undefined": int(values.size - n)}
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


def simulate_and_fit(setup: PullSetup, seed: int, workdir: str | os.PathLike | None = None, *,
                     likelihood_ratio: bool = False, expected_background: bool = False,
                     mirror: bool = False) -> dict[str, Any]:
    """Simulate one realisation of ``setup`` (``seed``) and run each of its fits.

    Parameters
    ----------
    setup : PullSetup
        The configuration.
    seed : int
        Seed of the simulation (the same seed draws the same events).
    workdir : path, optional
        Where the temporary data store goes (removed afterwards).
    likelihood_ratio : bool
        Also compute the likelihood-ratio pull of every reported parameter of a successful fit
        (`likelihood_ratio_pulls`: one profile fit per parameter).
    expected_background : bool
        Simulate the source's events only; the counts get the expected background (the
        background map) instead of background events: the source's Poisson noise alone, which
        at a high livetime makes the fit nearly an Asimov fit of the simulator's expectation.
    mirror : bool
        Also fit the counts mirrored in latitude about the map centre (results under
        ``"<fit> mirrored"``). The studies' set-ups are mirror-symmetric (the source at the
        centre, the pointings at +-``wobble`` in latitude), so a symmetric prediction and fit
        give the mirrored latitude and the same other values.

    Returns
    -------
    result : dict
        ``{fit name: {"success", "message", "values", "errors"}}``: values and errors of the
        source's parameters (without the model-name prefix); with ``likelihood_ratio`` also
        ``"lr_pulls"`` (same keys).
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
            energy_max=setup.energy[1] * u.TeV, max_offset=(setup.offset_max + 0.5) * u.deg, seed=seed,
            background=not expected_background)
        observations = DataStore(store).observations()
        geometry = _geometry(setup)
        energy_true = _true_edges(setup) if "cube-edisp" in setup.fits else None
        maps = make_maps(observations, geometry, offset_max=setup.offset_max * u.deg,
                         energy_true=energy_true).compute()
        if expected_background:
            maps["counts"] = maps["counts"] + maps["background"]
        kernels = _kernels(setup, observations, geometry)
        versions = {"": maps}
        if mirror:
            counts = maps["counts"]
            versions[" mirrored"] = maps.assign(counts=counts.copy(data=counts.isel(lat=slice(None, None, -1)).values))
        out = {}
        truth = setup.truth()
        for (suffix, data), name in itertools.product(versions.items(), setup.fits):
            dataset = _dataset(setup, name, data, kernels)
            result = run_fit(dataset)
            out[name + suffix] = {
                "success": bool(result.success), "message": result.message,
                "values": {k.split(".", 1)[1]: float(v) for k, v in result.values.items() if k.startswith("src.")},
                "errors": {k.split(".", 1)[1]: float(v) for k, v in result.errors.items() if k.startswith("src.")}}
            if likelihood_ratio and result.success and not suffix:
                true = {f"src.{p}": truth.parameter(p).value for p in setup.parameters(name)}
                lr = likelihood_ratio_pulls(dataset, result, true)
                out[name]["lr_pulls"] = {k.split(".", 1)[1]: float(v) for k, v in lr.items()}
        return out
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _worker_init() -> None:
    import dask

    # One process per core: no threads inside a worker.
    dask.config.set(scheduler="synchronous")


def _task(args: tuple[PullSetup, int, bool]) -> dict[str, Any]:
    setup, seed, likelihood_ratio = args
    return simulate_and_fit(setup, seed, likelihood_ratio=likelihood_ratio)


def run_pull_study(setup: PullSetup, n: int, *, seed: int = 0, processes: int = 1,
                   seeds: Sequence[int] | None = None, likelihood_ratio: bool = False) -> PullStudy:
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
    likelihood_ratio : bool
        Also compute the likelihood-ratio pulls (``study.summary("lr")``; see `simulate_and_fit`).

    Returns
    -------
    PullStudy
    """
    seeds = list(seeds) if seeds is not None else list(range(seed, seed + n))
    tasks = [(setup, s, likelihood_ratio) for s in seeds]
    if processes > 1:
        from multiprocessing import get_context

        with get_context("spawn").Pool(processes, initializer=_worker_init) as pool:
            results = pool.map(_task, tasks, chunksize=max(1, len(tasks) // (4 * processes)))
    else:
        results = [_task(t) for t in tasks]
    return PullStudy(dataclasses.replace(setup), results)
