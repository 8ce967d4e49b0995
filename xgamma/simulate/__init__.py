"""DL3 simulator: write a complete GADF data store from analytic IRFs and sky models.

The simulated store is both the data of ``xgamma demo`` and a test fixture: analyses run on it
must recover the injected sources (`DEMO_TRUTH`) within their errors.

Examples
--------
>>> from astropy.coordinates import SkyCoord
>>> import astropy.units as u
>>> from xgamma.simulate import point_source, simulate_datastore, wobble_pointings
>>> target = SkyCoord(83.63, 22.01, unit="deg")
>>> src = point_source(target, flux=2e-11 * u.Unit("cm-2 s-1"), index=2.5)
>>> path = simulate_datastore(tmp_path / "store", observations=wobble_pointings(target),
...                           sources=[src], seed=1)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord

from xgamma.exceptions import SimulationError
from xgamma.simulate.events import (
    _to_quantity,
    check_run_options,
    disk_source,
    expected_background_counts,
    gaussian_source,
    has_exact_sampler,
    point_source,
    sample_background,
    sample_source,
    source_from_dict,
)
from xgamma.simulate.irfs import AnalyticIRF
from xgamma.simulate.survey import galactic_catalogue, sample_model, survey, survey_pointings
from xgamma.simulate.writer import (
    SITE,
    ObservationInfo,
    make_events_hdu,
    make_irf_hdus,
    write_index_tables,
    staged_folder,
    write_observation,
)

__all__ = [
    "AnalyticIRF",
    "point_source",
    "gaussian_source",
    "disk_source",
    "source_from_dict",
    "wobble_pointings",
    "expected_background_counts",
    "simulate_datastore",
    "demo_datastore",
    "demo_sources",
    "DEMO_TRUTH",
    "DEMO_CONFIG",
    "survey",
    "survey_pointings",
    "galactic_catalogue",
]

#: Start of the first simulated observation: 2021-06-01 00:00 TT, in s since MJDREF (MJD 51544.5).
_T0 = (59366.0 - 51544.5) * 86400.0


def wobble_pointings(target: SkyCoord, *, n: int = 4, offset: u.Quantity | float = 0.7 * u.deg,
                     start_angle: u.Quantity | float = 0 * u.deg) -> list[SkyCoord]:
    """``n`` pointings at ``offset`` from ``target``, at evenly spaced position angles.

    Parameters
    ----------
    target : SkyCoord
        Centre of the pattern.
    n : int
        Number of pointings (>= 1).
    offset : Quantity
        Angular distance of each pointing from ``target`` (deg). Default 0.7 deg.
    start_angle : Quantity
        Position angle (east of north, in ``target``'s frame) of the first pointing.

    Returns
    -------
    pointings : list of SkyCoord
        In the frame of ``target``.
    """
    if not isinstance(target, SkyCoord) or not target.isscalar:
        raise SimulationError(f"target: expected a scalar SkyCoord, got {target!r}")
    if int(n) != n or n < 1:
        raise SimulationError(f"n: must be a positive integer, got {n!r}")
    offset = _to_quantity(offset, "deg", name="offset")
    if not 0 <= offset.value < 10:
        raise SimulationError(f"offset: must be in [0, 10) deg, got {offset}")
    start = _to_quantity(start_angle, "deg", name="start_angle")
    angles = start + np.arange(int(n)) * 360.0 / n * u.deg
    return [target.directional_offset_by(a, offset) for a in angles]


def _gmst_deg(mjd_ut: float) -> float:
    """Greenwich mean sidereal time (deg) of an MJD (UT), IAU 1982 linear term (< 1 s error)."""
    return (280.46061837 + 360.98564736629 * (mjd_ut - 51544.5)) % 360.0


def _schedule(pointings: list[SkyCoord], ontime: float) -> list[tuple[float, float, float]]:
    """Start times (s since MJDREF) and mean alt/az (deg) of back-to-back observations.

    The block is centred on the transit of the first pointing at the site. Alt/az come from
    the hour angle and mean sidereal time (no precession, nutation or refraction): they are
    header metadata only, correct to better than a degree.
    """
    lon, lat = np.deg2rad(SITE["GEOLON"]), np.deg2rad(SITE["GEOLAT"])
    ra0 = pointings[0].icrs.ra.deg
    # Sidereal day in solar seconds: shift _T0 to the transit of ra0.
    mjd0 = 59366.0
    ha0 = (_gmst_deg(mjd0) + np.rad2deg(lon) - ra0) % 360.0
    t_transit = _T0 + (360.0 - ha0) / 360.98564736629 * 86400.0
    gap = 60.0
    total = len(pointings) * (ontime + gap)
    out = []
    for k, p in enumerate(pointings):
        tstart = t_transit - total / 2 + k * (ontime + gap)
        mjd_mid = 51544.5 + (tstart + ontime / 2) / 86400.0
        c = p.icrs
        ha = np.deg2rad(_gmst_deg(mjd_mid)) + lon - c.ra.rad
        dec = c.dec.rad
        sin_alt = np.sin(dec) * np.sin(lat) + np.cos(dec) * np.cos(lat) * np.cos(ha)
        alt = np.arcsin(sin_alt)
        az = np.arctan2(-np.sin(ha) * np.cos(dec),
                        np.sin(dec) * np.cos(lat) - np.cos(dec) * np.sin(lat) * np.cos(ha))
        out.append((float(tstart), float(np.rad2deg(alt)), float(np.rad2deg(az) % 360.0)))
    return out


def _prepare_target(path: Path, overwrite: bool) -> None:
    if path.exists():
        if not overwrite:
            raise SimulationError(f"path: {path} already exists; pass overwrite=True to replace it")
        is_store = path.is_dir() and (path / "hdu-index.fits.gz").is_file()
        empty = path.is_dir() and not any(path.iterdir())
        if not (is_store or empty):
            raise SimulationError(
                f"path: {path} exists and is not a data store (no hdu-index.fits.gz); "
                "refusing to replace it even with overwrite=True"
            )


def simulate_datastore(
    path: str | os.PathLike,
    *,
    observations: Sequence[SkyCoord],
    sources: Sequence[Any] = (),
    livetime: u.Quantity | float = 30 * u.min,
    deadc: float = 0.98,
    irf: AnalyticIRF | None = None,
    energy_min: u.Quantity | float = 0.1 * u.TeV,
    energy_max: u.Quantity | float = 100 * u.TeV,
    max_offset: u.Quantity | float = 5 * u.deg,
    background: bool = True,
    background_norm: float = 1.0,
    seed: int = 0,
    first_obs_id: int = 1,
    object_name: str = "SIMULATED",
    target: SkyCoord | None = None,
    overwrite: bool = False,
) -> Path:
    """Simulate observations and write a GADF DL3 data store readable by xgamma and Gammapy.

    Parameters
    ----------
    path : str or PathLike
        Directory of the data store to create.
    observations : sequence of SkyCoord
        One pointing position per observation (see `wobble_pointings`).
    sources : sequence of `xgamma.models.SkyModel` or dicts
        Source models (e.g. from `point_source`, `gaussian_source`, `disk_source`, or any sky
        model: point, Gaussian and disk shapes are drawn exactly, others from pixels of at
        most 0.02 deg, see `xgamma.simulate.survey.sample_model`), or dicts for `source_from_dict`.
    livetime : Quantity
        Livetime of each observation (s). Default 30 min. ONTIME is ``livetime / deadc``.
        Source counts scale with the livetime, background counts with ONTIME (GADF).
    deadc : float
        Dead-time correction factor in (0, 1].
    irf : AnalyticIRF, optional
        Instrument response; default ``AnalyticIRF()`` (CTA-like). The background rate is
        its ``bkg_norm`` (scale it with ``dataclasses.replace``).
    energy_min, energy_max : Quantity
        Range of reconstructed energies of the events (TeV). Default 0.1-100 TeV.
    max_offset : Quantity
        Events are simulated out to this offset from the pointing (deg). Default 5 deg:
        analyses should cut at an offset a PSF width smaller.
    background : bool
        Simulate the hadronic background (from the ``bkg_3d`` IRF). Default True.
    background_norm : float
        Ratio of the simulated background rate to the ``bkg_3d`` IRF written in the files
        (default 1): a fit of the background normalisation should recover it.
    seed : int
        Seed of the `numpy.random.Generator`; the same inputs and seed write identical events.
    first_obs_id : int
        OBS_ID of the first observation; the others follow.
    object_name : str
        OBJECT written in the headers and the observation index.
    target : SkyCoord, optional
        Target position, written as RA_OBJ/DEC_OBJ (ICRS deg).
    overwrite : bool
        Replace an existing data store at ``path`` (only if it holds an ``hdu-index.fits.gz``
        or is empty).

    Returns
    -------
    path : Path
        The data store directory.

    Raises
    ------
    SimulationError
        For bad parameters (the message names the parameter) or an existing ``path``.
    """
    path = Path(path)
    obs = list(observations)
    if not obs:
        raise SimulationError("observations: need at least one pointing")
    for k, p in enumerate(obs):
        if not isinstance(p, SkyCoord) or not p.isscalar:
            raise SimulationError(f"observations[{k}]: expected a scalar SkyCoord, got {p!r}")
    irf = AnalyticIRF() if irf is None else irf
    if not isinstance(irf, AnalyticIRF):
        raise SimulationError(f"irf: expected an AnalyticIRF, got {type(irf).__name__}")
    specs = [source_from_dict(s) if isinstance(s, dict) else s for s in sources]
    for k, s in enumerate(specs):
        if not (hasattr(s, "spatial") and hasattr(s, "spectral")):
            raise SimulationError(
                f"sources[{k}]: unknown source type {type(s).__name__}; use an xgamma.models.SkyModel "
                "(e.g. point_source(...)) or a dict with 'type'"
            )
    livetime, e_min, e_max, max_offset = check_run_options(irf, livetime=livetime, deadc=deadc, energy_min=energy_min,
                                                           energy_max=energy_max, max_offset=max_offset)
    if target is not None and (not isinstance(target, SkyCoord) or not target.isscalar):
        raise SimulationError(f"target: expected a scalar SkyCoord, got {target!r}")
    if not (np.isfinite(background_norm) and background_norm >= 0):
        raise SimulationError(f"background_norm: must be >= 0, got {background_norm!r}")
    if int(first_obs_id) != first_obs_id or first_obs_id < 0:
        raise SimulationError(f"first_obs_id: must be a non-negative integer, got {first_obs_id!r}")
    _prepare_target(path, overwrite)

    rng = np.random.default_rng(seed)
    ontime = livetime.value / deadc
    infos: list[ObservationInfo] = []
    n_events: list[int] = []
    # Written into a hidden sibling folder, moved in place when complete (staged_folder).
    with staged_folder(path) as tmp:
        (tmp / "data").mkdir()
        for k, (pointing, (tstart, alt, az)) in enumerate(zip(obs, _schedule(obs, ontime))):
            info = ObservationInfo(obs_id=int(first_obs_id) + k, pointing=pointing, tstart=tstart,
                                   ontime=ontime, deadc=float(deadc), alt=alt, az=az,
                                   object_name=object_name, target=target)
            common = dict(pointing=pointing, energy_min=e_min,
                          energy_max=e_max, max_offset=max_offset)
            bkg_irf = dataclasses.replace(irf, bkg_norm=irf.bkg_norm * background_norm)
            parts = ([sample_background(rng, bkg_irf, ontime=ontime * u.s, **common)]
                     if background and background_norm > 0 else [])
            parts += [(sample_source if has_exact_sampler(s) else sample_model)(rng, irf, s, livetime=livetime,
                                                                                **common) for s in specs]
            ra, dec, energy = (np.concatenate([p[i] for p in parts]) if parts else np.zeros(0)
                               for i in range(3))
            time = np.sort(rng.uniform(info.tstart, info.tstop, ra.size))
            # Shuffle so that event order carries no trace of the component that made it.
            order = rng.permutation(ra.size)
            events = make_events_hdu(info, time=time, ra=ra[order], dec=dec[order],
                                     energy=energy[order])
            write_observation(tmp / "data", info, events, make_irf_hdus(irf, obs_id=info.obs_id))
            infos.append(info)
            n_events.append(int(ra.size))
        write_index_tables(tmp, infos, n_events)
    return path


# ---------------------------------------------------------------------------- the demo
_DEMO_TARGET = SkyCoord(0.5, 0.2, unit="deg", frame="galactic")

#: Configuration of the standard demo data store (see `demo_datastore`).
DEMO_CONFIG: dict[str, Any] = {
    "n_observations": 4,
    "wobble_offset_deg": 0.7,
    "livetime_s": 1800.0,
    "energy_min_tev": 0.1,
    "energy_max_tev": 100.0,
    "max_offset_deg": 5.0,
}

#: Injected truth of the demo store. Fluxes are integrated over the analysis range 0.1-10 TeV
#: (cm-2 s-1), spectra are power laws of the given index, positions are galactic (deg).
DEMO_TRUTH: dict[str, dict[str, Any]] = {
    "point": {
        "type": "point",
        "glon": 0.5,
        "glat": 0.2,
        "flux": 3.0e-11,
        "index": 2.0,
        "energy_min_tev": 0.1,
        "energy_max_tev": 10.0,
    },
    "extended": {
        "type": "gaussian",
        "glon": 1.4,
        "glat": -0.3,
        "sigma_deg": 0.2,
        "flux": 6.0e-11,
        "index": 2.3,
        "energy_min_tev": 0.1,
        "energy_max_tev": 10.0,
    },
}


def demo_sources() -> list[Any]:
    """The sources of `DEMO_TRUTH` as `xgamma.models.SkyModel` objects."""
    out: list[Any] = []
    for name, t in DEMO_TRUTH.items():
        common = dict(
            position=SkyCoord(t["glon"], t["glat"], unit="deg", frame="galactic"),
            flux=t["flux"] * u.Unit("cm-2 s-1"), index=t["index"],
            flux_energy_min=t["energy_min_tev"] * u.TeV, flux_energy_max=t["energy_max_tev"] * u.TeV,
            name=name,
        )
        if t["type"] == "gaussian":
            out.append(gaussian_source(sigma=t["sigma_deg"] * u.deg, **common))
        else:
            out.append(point_source(**common))
    return out


def demo_datastore(path: str | os.PathLike, *, seed: int = 0, overwrite: bool = False) -> Path:
    """Write the standard demo data store (see `DEMO_CONFIG` and `DEMO_TRUTH`).

    Four 30-min observations wobbling by 0.7 deg around a bright point source at
    (l, b) = (0.5, 0.2) deg, with a Gaussian source (sigma 0.2 deg) about 1 deg away, on the
    default CTA-like `AnalyticIRF` background; events of 0.1-100 TeV.
    """
    cfg = DEMO_CONFIG
    return simulate_datastore(
        path,
        observations=wobble_pointings(_DEMO_TARGET, n=cfg["n_observations"],
                                      offset=cfg["wobble_offset_deg"] * u.deg),
        sources=demo_sources(),
        livetime=cfg["livetime_s"] * u.s,
        energy_min=cfg["energy_min_tev"] * u.TeV,
        energy_max=cfg["energy_max_tev"] * u.TeV,
        max_offset=cfg["max_offset_deg"] * u.deg,
        seed=seed,
        object_name="XGAMMA DEMO",
        target=_DEMO_TARGET,
        overwrite=overwrite,
    )
