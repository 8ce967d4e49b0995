"""Synthetic Galactic-plane surveys: many runs tiling the plane like the H.E.S.S. survey (HGPS).

`survey` writes a GADF DL3 data store of ``n_runs`` 28-min runs on a grid of pointings ~0.7 deg
apart over l = 250..65 deg, |b| < 3.5 deg, observed at varying zenith angles, with a catalogue
of point and extended sources and large-scale diffuse emission (`galactic_catalogue`, all
`xgamma.models.SkyModel` objects) on top of the hadronic background. Layout::

    PATH/hdu-index.fits.gz, PATH/obs-index.fits.gz
    PATH/irfs/irf_zd20.fits ...   one file per zenith band (aeff_2d, psf_3gauss, edisp_2d, bkg_3d),
                                  shared by reference: the HDU index points every run of the band
                                  at the same file
    PATH/data/run_000001.fits     EVENTS and GTI of each run
    PATH/models.yaml, diffuse.fits   the injected sky model (Gammapy-style model YAML)
    PATH/survey.json              the parameters of the simulation

Reproducible: run ``k`` draws its events from its own random stream ``(seed, k)``, so the first
runs of a 100-run and of a 1000-run survey with the same seed and tiling are the same files.

Choices: pointings fill the survey area column by column (10 rows of latitude at 0.7 deg, then
the next longitude), from the first longitude of ``l_range`` on; more runs than pointings revisit
the grid. Each run's hour angle is drawn within +-3 h, which gives its zenith angle at the
simulator's site (`xgamma.simulate.writer.SITE`); the zenith angle picks the nearest IRF band
(`ZENITH_BANDS`): the energy threshold grows as ``cos(z)**-2.5`` and the collection area as
``1 / cos(z)``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord

from xgamma.exceptions import SimulationError
from xgamma.geometry.spherical import (chord_separation, lonlat_from_vectors, rotation_matrix, transform_lonlat,
                                       unit_vectors)
from xgamma.simulate.events import (
    check_run_options,
    _true_energy_grid,
    detect_events,
    sample_background,
    true_energy_range,
)
from xgamma.simulate.irfs import AnalyticIRF
from xgamma.simulate.writer import (
    staged_folder,
    _HDU_ROWS,
    SITE,
    ObservationInfo,
    _write_fits,
    make_events_hdu,
    make_gti_hdu,
    make_irf_hdus,
    write_index_tables,
)

__all__ = ["survey", "survey_pointings", "survey_irf", "galactic_catalogue", "sample_model", "ZENITH_BANDS",
           "HESS_LIKE_IRF"]

#: Zenith angles (deg) of the IRF files of a survey; each run uses the band nearest its zenith angle.
ZENITH_BANDS = (20.0, 40.0, 55.0)

#: IRFs of a H.E.S.S.-like array at zenith: ~1e5 m2, threshold ~0.15 TeV, ~11 000 background
#: events per 28-min run within 3 deg (as in the H.E.S.S. DL3 DR1 runs).
HESS_LIKE_IRF = AnalyticIRF(
    aeff_max_m2=1.0e5, aeff_threshold_tev=0.12, aeff_offset_sigma_deg=1.8, psf_core_a_deg=0.05,
    psf_core_c_deg=0.03, bkg_norm=4.5e-5, bkg_offset_sigma_deg=1.8, lo_threshold_tev=0.2,
)

_NIGHT0_MJD = 59366.0  # 2021-06-01: the first night of a survey
_SEED_CATALOGUE = 1  # sub-stream of the catalogue: (seed, -1) must not collide with a run index


def survey_irf(zenith_deg: float, base: AnalyticIRF = HESS_LIKE_IRF) -> AnalyticIRF:
    """Analytic IRFs of ``base`` moved to zenith angle ``zenith_deg`` (deg).

    The threshold energies scale as ``cos(z)**-2.5`` and the plateau area as ``1 / cos(z)``
    (a larger light pool seen through more atmosphere); the background rate keeps its shape.
    """
    if not 0 <= zenith_deg < 70:
        raise SimulationError(f"zenith_deg: must be in [0, 70) deg, got {zenith_deg!r}")
    cos_z = np.cos(np.deg2rad(zenith_deg))
    scale = cos_z**-2.5
    return dataclasses.replace(
        base, aeff_max_m2=base.aeff_max_m2 / cos_z, aeff_threshold_tev=base.aeff_threshold_tev * scale,
        lo_threshold_tev=float(np.round(base.lo_threshold_tev * scale, 3)),
    )


def _l_span(l_range: Sequence[float]) -> tuple[float, float]:
    """First longitude (deg, in [0, 360)) and extent (deg) of a range that may wrap through 0."""
    if len(l_range) != 2:
        raise SimulationError(f"l_range: expected (l_first, l_last) in deg, got {l_range!r}")
    first, last = (float(v) for v in l_range)
    extent = (last - first) % 360.0
    if not extent > 0:
        raise SimulationError(f"l_range: empty longitude range {l_range!r}")
    return first % 360.0, extent


def survey_pointings(n_runs: int, *, l_range: Sequence[float] = (250.0, 65.0), b_max: float = 3.5,
                     spacing: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """Galactic pointings (deg) of ``n_runs`` runs tiling ``l_range`` x ``|b| < b_max``.

    The grid has rows ``spacing`` apart in latitude, centred on b = 0 and inside ``|b| < b_max``,
    and columns ``spacing`` apart in longitude from ``l_range[0] + spacing / 2`` towards
    ``l_range[1]`` (increasing longitude, through 0 when the range wraps). Runs fill the columns
    in order; more runs than grid points revisit the grid from the start.

    Returns
    -------
    glon, glat : numpy.ndarray
        Galactic longitude in [0, 360) and latitude of each run (deg).
    """
    if isinstance(n_runs, bool) or int(n_runs) != n_runs or n_runs < 1:
        raise SimulationError(f"n_runs: must be a positive integer, got {n_runs!r}")
    if not spacing > 0:
        raise SimulationError(f"spacing: must be positive, got {spacing!r}")
    first, extent = _l_span(l_range)
    n_rows = max(1, int(np.floor(2 * b_max / spacing)))
    if not b_max > 0 or (n_rows - 1) * spacing / 2 >= b_max:
        raise SimulationError(f"b_max: must leave room for one row of pointings, got {b_max!r}")
    rows = (np.arange(n_rows) - (n_rows - 1) / 2) * spacing
    n_cols = max(1, int(np.floor(extent / spacing)))
    cols = first + (np.arange(n_cols) + 0.5) * extent / n_cols
    k = np.arange(int(n_runs)) % (n_rows * n_cols)
    return np.round(cols[k // n_rows] % 360.0, 9), np.round(rows[k % n_rows], 9)


# --------------------------------------------------------------------------- sky model
def galactic_catalogue(*, seed: int = 0, l_range: Sequence[float] = (250.0, 65.0), b_sigma: float = 0.4,
                       sources_per_degree: float = 0.45, diffuse: bool = True,
                       diffuse_brightness: float = 1e-7) -> list:
    """A random HGPS-like catalogue: point and extended sources plus diffuse emission.

    Parameters
    ----------
    seed : int
        Random seed (the catalogue depends on ``seed`` and ``l_range`` only).
    l_range : (float, float)
        Longitude range (deg) to fill, as in `survey_pointings`.
    b_sigma : float
        Latitude spread of the sources and width of the diffuse band (Gaussian sigma, deg).
    sources_per_degree : float
        Mean number of sources per degree of longitude (HGPS: 78 sources over 175 deg).
    diffuse : bool
        Add the diffuse emission (a `~xgamma.models.Template` band). Default is True.
    diffuse_brightness : float
        Surface brightness of the diffuse band at b = 0 (cm-2 s-1 sr-1, 0.1-100 TeV); it falls
        off as a Gaussian of sigma 50 deg in longitude away from l = 0.

    Returns
    -------
    models : list of `~xgamma.models.SkyModel`
        Sources named ``src_000``, ... with ``PowerLaw2`` spectra: 0.1-100 TeV integral fluxes of
        1e-11 to 5e-10 cm-2 s-1 (1 % to 60 % of the Crab) from dN/dS ~ S**-1.8, indices from
        N(2.4, 0.2); 40 % point sources, 45 % Gaussians of sigma 0.03-0.5 deg, 15 % disks of radius
        0.05-0.4 deg. Then the diffuse band, named ``diffuse``.
    """
    from xgamma.models import Disk, Gaussian, Point, PowerLaw2, SkyModel

    first, extent = _l_span(l_range)
    rng = np.random.default_rng([int(seed), _SEED_CATALOGUE])
    n = rng.poisson(sources_per_degree * extent)
    glon = (first + rng.uniform(0, extent, n)) % 360.0
    glat = rng.normal(0.0, b_sigma, n)
    # Fluxes from a power-law logN-logS between s_min and s_max (inverse CDF).
    s_min, s_max, slope = 1e-11, 5e-10, 1.8
    g = 1.0 - slope
    flux = (s_min**g + rng.random(n) * (s_max**g - s_min**g)) ** (1.0 / g)
    index = rng.normal(2.4, 0.2, n)
    kind = rng.choice(3, n, p=[0.4, 0.45, 0.15])
    size = np.where(kind == 1, np.exp(rng.uniform(np.log(0.03), np.log(0.5), n)),
                    np.exp(rng.uniform(np.log(0.05), np.log(0.4), n)))
    models = []
    for i in range(n):
        position = {"lon_0": float(glon[i]), "lat_0": float(glat[i]), "frame": "galactic"}
        if kind[i] == 0:
            spatial = Point(**position)
        elif kind[i] == 1:
            spatial = Gaussian(sigma=float(size[i]), **position)
        else:
            spatial = Disk(r_0=float(size[i]), **position)
        spectral = PowerLaw2(amplitude=float(flux[i]), index=float(index[i]), emin=0.1, emax=100.0)
        models.append(SkyModel(spectral, spatial, name=f"src_{i:03d}"))
    if diffuse:
        models.append(_diffuse_model(first, extent, b_sigma, diffuse_brightness))
    return models


def _diffuse_model(first: float, extent: float, b_sigma: float, brightness: float) -> Any:
    """The diffuse band as a `Template` (0.05 deg CAR, galactic) x `PowerLaw2` (index 2.5)."""
    from astropy.wcs import WCS

    from xgamma.models import PowerLaw2, SkyModel, Template

    binsz = 0.05
    margin = 4.0  # the band must cover every field of view of the survey
    n_lon = int(np.ceil((extent + 2 * margin) / binsz))
    n_lat = int(np.ceil(2 * (4 * b_sigma + margin) / binsz))
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["GLON-CAR", "GLAT-CAR"]
    wcs.wcs.cdelt = [-binsz, binsz]
    centre = (first + extent / 2) % 360.0
    wcs.wcs.crval = [centre, 0.0]
    wcs.wcs.crpix = [(n_lon + 1) / 2, (n_lat + 1) / 2]
    x, y = np.meshgrid(np.arange(n_lon), np.arange(n_lat))
    lon, lat = wcs.wcs_pix2world(x, y, 0)
    lon = (lon + 180.0) % 360.0 - 180.0
    image = np.exp(-0.5 * (lat / b_sigma) ** 2 - 0.5 * (lon / 50.0) ** 2)  # peak 1 at (0, 0)
    # Total flux = brightness x integral of the (unit-peak) image over the sky.
    omega = (np.deg2rad(binsz) ** 2) * np.cos(np.deg2rad(lat))
    total = brightness * float((image * omega).sum())
    spatial = Template(image, wcs, frame="galactic", filename="diffuse.fits")
    return SkyModel(PowerLaw2(amplitude=total, index=2.5, emin=0.1, emax=100.0), spatial, name="diffuse")


@dataclass(frozen=True)
class _Emitter:
    """Where a sky model's photons come from: pixel centres (unit vectors, galactic) and the
    fraction of the model's flux in each, or one position for point sources."""

    vectors: np.ndarray  # (n, 3)
    fractions: np.ndarray  # (n,) flux fraction of each pixel
    pixel_deg: float  # pixel size of the grid (0 for a point source)
    centre: np.ndarray  # (3,) mean direction
    radius_deg: float  # all pixels lie within this angle of the centre


def _emitter(model: Any) -> _Emitter:
    from xgamma.geometry import SkyGeometry
    from xgamma.models import Point, Template

    spatial = model.spatial
    if isinstance(spatial, Point):
        lon, lat = spatial.position_in("galactic")
        vector = unit_vectors(np.array([lon]), np.array([lat]))
        return _Emitter(vector, np.array([1.0]), 0.0, vector[0], 0.0)
    if isinstance(spatial, Template):
        ny, nx = spatial.data.shape
        x, y = np.meshgrid(np.arange(nx), np.arange(ny))
        lon, lat = spatial.wcs.wcs_pix2world(x.ravel(), y.ravel(), 0)
        lon, lat = transform_lonlat(lon, lat, spatial.frame, "galactic")
        omega = np.deg2rad(abs(spatial.wcs.wcs.cdelt[0])) * np.deg2rad(abs(spatial.wcs.wcs.cdelt[1]))
        fraction = np.nan_to_num(spatial.data.ravel()) * omega * np.cos(np.deg2rad(lat))
        pixel = float(abs(spatial.wcs.wcs.cdelt[1]))
    else:
        radius = float(spatial.evaluation_radius())
        binsz = float(np.clip(radius / 50.0, 0.002, 0.02))
        geometry = SkyGeometry.create(spatial.position_in("galactic"), width=2 * radius * u.deg + 4 * binsz * u.deg,
                                      binsz=binsz * u.deg, frame="galactic")
        fraction = np.asarray(spatial.integrate_geom(geometry), dtype=float).ravel()
        lon, lat = (c.ravel() for c in geometry.lonlat())
        pixel = binsz
    keep = fraction > 0
    vectors = unit_vectors(lon[keep], lat[keep])
    centre = vectors.mean(axis=0)
    centre /= np.linalg.norm(centre)
    radius = float(chord_separation(vectors, centre).max())
    return _Emitter(vectors, fraction[keep], pixel, centre, radius)


def _galactic_vector(position: SkyCoord) -> np.ndarray:
    icrs = position.icrs
    return unit_vectors(*transform_lonlat(icrs.ra.deg, icrs.dec.deg, "icrs", "galactic"))


def _reach_deg(max_offset: u.Quantity) -> float:
    """Distance from the pointing (deg) within which photons can be detected: PSF tails stay
    well inside 1 deg beyond the field of view's edge."""
    return min(u.Quantity(max_offset, "deg").value + 1.0, 180.0)


class _EnergyTable:
    """Cumulative photon rates ``spectral(E) x A_on_axis(E)`` (s-1) per (model, IRF), computed once."""

    def __init__(self) -> None:
        self._tables: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def get(self, model: Any, irf: AnalyticIRF, e_lo: float, e_hi: float) -> tuple[np.ndarray, np.ndarray]:
        key = (id(model), id(irf), e_lo, e_hi)
        if key not in self._tables:
            def dnde(energy_tev: np.ndarray) -> np.ndarray:
                return model.spectral(energy_tev * u.TeV).to_value("cm-2 s-1 TeV-1")

            self._tables[key] = _true_energy_grid(irf, dnde, *true_energy_range(irf, e_lo, e_hi))
        return self._tables[key]


class _SkySampler:
    """The photons of a list of sky models in many runs: emitters and energy tables are built
    once per model (emitters only for models some run sees), models out of reach are skipped."""

    def __init__(self, models: Sequence[Any]) -> None:
        from xgamma.models import Template

        self.models = list(models)
        self.energy_table = _EnergyTable()
        self._emitters: dict[int, _Emitter] = {}
        centres, radii = [], []
        for i, model in enumerate(self.models):
            if isinstance(model.spatial, Template):  # the template's pixels tell its extent
                emitter = self._emitters[i] = _emitter(model)
                centre, radius = emitter.centre, emitter.radius_deg
            else:  # a centre and an evaluation radius
                lon, lat = model.spatial.position_in("galactic")
                centre, radius = unit_vectors(np.array(lon), np.array(lat)), float(model.spatial.evaluation_radius())
            centres.append(centre)
            radii.append(radius + 0.05)  # + the emitter grid's margin
        self.centres = np.array(centres).reshape(-1, 3)
        self.radii = np.array(radii)

    def emitter(self, index: int) -> _Emitter:
        if index not in self._emitters:
            self._emitters[index] = _emitter(self.models[index])
        return self._emitters[index]

    def sample(self, rng: np.random.Generator, irf: AnalyticIRF, *, pointing: SkyCoord, livetime: u.Quantity,
               energy_min: u.Quantity, energy_max: u.Quantity, max_offset: u.Quantity) -> list[tuple]:
        """Events ``(ra, dec, energy)`` of every model within reach of ``pointing``."""
        reach = _reach_deg(max_offset)
        # A cut, not a distance: the cosine test costs one dot product per model.
        cos_distance = self.centres @ _galactic_vector(pointing)
        within = cos_distance >= np.cos(np.deg2rad(np.minimum(reach + self.radii, 180.0)))
        return [sample_model(rng, irf, self.models[i], pointing=pointing, livetime=livetime, energy_min=energy_min,
                             energy_max=energy_max, max_offset=max_offset, emitter=self.emitter(i),
                             energy_table=self.energy_table)
                for i in np.flatnonzero(within)]


def sample_model(rng: np.random.Generator, irf: AnalyticIRF, model: Any, *, pointing: SkyCoord,
                 livetime: u.Quantity, energy_min: u.Quantity, energy_max: u.Quantity, max_offset: u.Quantity,
                 emitter: _Emitter | None = None, energy_table: _EnergyTable | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw the events of one `~xgamma.models.SkyModel` in one observation.

    Photons come from the model's pixels within the field of view (the exact position for a
    `~xgamma.models.Point`; for other spatial models the flux fractions of
    ``integrate_geom`` on a grid of pixels of at most 0.02 deg, or the template's own pixels,
    uniformly within each pixel), with true energies from ``spectral(E) x A_on_axis(E)``; then
    `~xgamma.simulate.events.detect_events` applies the offset dependence of the area, the PSF
    and the energy migration. ``emitter`` and ``energy_table`` are caches for many runs.

    Returns
    -------
    ra, dec, energy : numpy.ndarray
        Reconstructed ICRS coordinates (deg) and energies (TeV).
    """
    emitter = _emitter(model) if emitter is None else emitter
    energy_table = _EnergyTable() if energy_table is None else energy_table
    empty = np.zeros(0)
    pointing_vector = _galactic_vector(pointing)
    reach = _reach_deg(max_offset)
    if emitter.centre @ pointing_vector < np.cos(np.deg2rad(min(reach + emitter.radius_deg, 180.0))):
        return empty, empty, empty
    near = np.flatnonzero(emitter.vectors @ pointing_vector > np.cos(np.deg2rad(reach)))
    if near.size == 0:
        return empty, empty, empty
    cumulative = np.cumsum(emitter.fractions[near])
    e_lo, e_hi = u.Quantity(energy_min, "TeV").value, u.Quantity(energy_max, "TeV").value
    energy_grid, cdf = energy_table.get(model, irf, e_lo, e_hi)
    n = rng.poisson(cdf[-1] * cumulative[-1] * u.Quantity(livetime, "s").value)
    e_true = np.exp(np.interp(rng.random(n) * cdf[-1], cdf, np.log(energy_grid)))
    pixel = near[np.minimum(np.searchsorted(cumulative, rng.random(n) * cumulative[-1], side="right"), near.size - 1)]
    lon, lat = lonlat_from_vectors(emitter.vectors[pixel])
    if emitter.pixel_deg > 0:  # uniform within the pixel
        lat = lat + (rng.random(n) - 0.5) * emitter.pixel_deg
        lon = lon + (rng.random(n) - 0.5) * emitter.pixel_deg / np.cos(np.deg2rad(lat))
    ra, dec = lonlat_from_vectors(unit_vectors(lon, lat) @ rotation_matrix("galactic", "icrs").T)
    return detect_events(rng, irf, e_true, ra % 360.0, dec, pointing=pointing, energy_min=energy_min,
                         energy_max=energy_max, max_offset=max_offset)


# --------------------------------------------------------------------------- scheduling
def _schedule(glon: np.ndarray, glat: np.ndarray, hour_angle_deg: np.ndarray, ontime: float
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ICRS pointings, start times (s since MJDREF) and alt/az (deg) of runs on successive nights.

    Run ``k`` is observed on night ``k`` with its mid-time at ``hour_angle_deg[k]`` from transit
    (mean sidereal time, no precession or refraction: header metadata good to a degree).
    """
    ra, dec = transform_lonlat(glon, glat, "galactic", "icrs")
    lon, lat = np.deg2rad(SITE["GEOLON"]), np.deg2rad(SITE["GEOLAT"])
    day = _NIGHT0_MJD + np.arange(glon.size)
    gmst0 = (280.46061837 + 360.98564736629 * (day - 51544.5)) % 360.0
    # Local sidereal time at the run's mid-time = ra + hour angle.
    fraction = ((ra + hour_angle_deg - np.rad2deg(lon) - gmst0) % 360.0) / 360.98564736629
    tstart = (day + fraction - 51544.5) * 86400.0 - ontime / 2
    ha, d = np.deg2rad(hour_angle_deg), np.deg2rad(dec)
    alt = np.arcsin(np.sin(d) * np.sin(lat) + np.cos(d) * np.cos(lat) * np.cos(ha))
    az = np.arctan2(-np.sin(ha) * np.cos(d), np.sin(d) * np.cos(lat) - np.cos(d) * np.sin(lat) * np.cos(ha))
    return ra % 360.0, dec, tstart, np.rad2deg(alt), np.rad2deg(az) % 360.0


def survey(
    path: str | os.PathLike,
    *,
    n_runs: int,
    seed: int = 0,
    l_range: Sequence[float] = (250.0, 65.0),
    b_max: float = 3.5,
    spacing: float = 0.7,
    livetime: u.Quantity | float = 28 * u.min,
    deadc: float = 0.92,
    sources: Sequence[Any] | None = None,
    diffuse: bool = True,
    irf: AnalyticIRF = HESS_LIKE_IRF,
    energy_min: u.Quantity | float = 0.1 * u.TeV,
    energy_max: u.Quantity | float = 100 * u.TeV,
    max_offset: u.Quantity | float = 3.0 * u.deg,
    overwrite: bool = False,
) -> Path:
    """Simulate a Galactic-plane survey of ``n_runs`` runs as a GADF DL3 data store.

    Parameters
    ----------
    path : path-like
        Directory of the data store to create.
    n_runs : int
        Number of runs (>= 1); see `survey_pointings` for where they point.
    seed : int
        Random seed of the catalogue and of every run's events. Default is 0.
    l_range : (float, float)
        Longitude range (deg) of the survey, first to last through increasing longitude.
        Default is (250, 65), the H.E.S.S. survey's.
    b_max : float
        Latitude half-width of the pointing grid (deg). Default is 3.5.
    spacing : float
        Distance between neighbouring pointings (deg). Default is 0.7.
    livetime : `~astropy.units.Quantity`
        Livetime of each run. Default is 28 min; ONTIME is ``livetime / deadc``.
    deadc : float
        Dead-time correction factor in (0, 1]. Default is 0.92 (H.E.S.S.-like).
    sources : sequence of `~xgamma.models.SkyModel`, optional
        The sky model. Default: `galactic_catalogue` (with ``seed``, ``l_range`` and ``diffuse``).
    diffuse : bool
        Include the diffuse emission in the default catalogue. Default is True.
    irf : `~xgamma.simulate.AnalyticIRF`
        Response at zenith; `survey_irf` moves it to each of `ZENITH_BANDS`.
    energy_min, energy_max : `~astropy.units.Quantity`
        Reconstructed energy range of the events. Default is 0.1-100 TeV.
    max_offset : `~astropy.units.Quantity`
        Events are simulated out to this offset from the pointing. Default is 3 deg.
    overwrite : bool
        Replace an existing survey data store at ``path``.

    Returns
    -------
    path : Path
        The data store directory, with ``survey.json`` (the run grid) and the injected models.

    Raises
    ------
    SimulationError
        For bad parameters (naming the parameter) or an existing ``path``.

    Examples
    --------
    >>> from xgamma.simulate import survey
    >>> store = survey(tmp_path / "gps", n_runs=30, l_range=(359, 1), seed=1)  # doctest: +SKIP
    """
    from xgamma.models import write_models

    path = Path(path)
    glon, glat = survey_pointings(n_runs, l_range=l_range, b_max=b_max, spacing=spacing)
    livetime, e_min, e_max, max_offset = check_run_options(irf, livetime=livetime, deadc=deadc, energy_min=energy_min,
                                                           energy_max=energy_max, max_offset=max_offset)
    models = list(galactic_catalogue(seed=seed, l_range=l_range, diffuse=diffuse) if sources is None else sources)
    _prepare(path, overwrite)

    ontime = livetime.value / deadc
    band_irfs = [survey_irf(z, irf) for z in ZENITH_BANDS]
    hour_angle = np.array([np.random.default_rng([int(seed), k]).uniform(-45.0, 45.0) for k in range(len(glon))])
    ra, dec, tstart, alt, az = _schedule(glon, glat, hour_angle, ontime)
    band = np.argmin(np.abs((90.0 - alt)[:, None] - np.asarray(ZENITH_BANDS)[None, :]), axis=1)
    sky = _SkySampler(models)

    with staged_folder(path) as tmp:
        (tmp / "data").mkdir()
        (tmp / "irfs").mkdir()
        irf_files = []
        for z, band_irf in zip(ZENITH_BANDS, band_irfs):
            name = f"irf_zd{z:02.0f}.fits"
            hdus = make_irf_hdus(band_irf, obs_id=0)
            for hdu in hdus:  # shared by many runs: no OBS_ID
                del hdu.header["OBS_ID"]
            _write_fits(tmp / "irfs" / name, hdus)
            irf_files.append(name)
        infos, n_events = [], []
        for k in range(len(glon)):
            info = ObservationInfo(obs_id=k + 1, pointing=SkyCoord(ra[k], dec[k], unit="deg"), tstart=float(tstart[k]),
                                   ontime=ontime, deadc=float(deadc), alt=float(alt[k]), az=float(az[k]),
                                   object_name=f"GPS l={glon[k]:.2f} b={glat[k]:.2f}")
            events = _simulate_run(np.random.default_rng([int(seed), k]), band_irfs[band[k]], info, sky,
                                   livetime=livetime, energy_min=e_min, energy_max=e_max, max_offset=max_offset)
            _write_fits(tmp / "data" / f"run_{info.obs_id:06d}.fits", [events, make_gti_hdu(info)])
            infos.append(info)
            n_events.append(int(events.header["NAXIS2"]))
        write_index_tables(tmp, infos, n_events, files=_files(infos, band, irf_files))
        _write_truth(tmp, models, write_models)
        parameters = {"n_runs": int(n_runs), "seed": int(seed), "l_range": [float(v) for v in l_range],
                      "b_max": float(b_max), "spacing": float(spacing), "livetime_s": float(livetime.value),
                      "deadc": float(deadc), "energy_range_tev": [float(e_min.value), float(e_max.value)],
                      "max_offset_deg": float(max_offset.value), "zenith_bands_deg": list(ZENITH_BANDS),
                      "irf": dataclasses.asdict(irf), "n_sources": len(models)}
        (tmp / "survey.json").write_text(json.dumps(parameters, indent=2))
    return path


def _prepare(path: Path, overwrite: bool) -> None:
    if not path.exists():
        return
    if not overwrite:
        raise SimulationError(f"path: {path} already exists; pass overwrite=True (--overwrite) to replace it")
    if not (path.is_dir() and ((path / "survey.json").is_file() or not any(path.iterdir()))):
        raise SimulationError(f"path: {path} exists and is not a simulated survey (no survey.json); "
                              "refusing to replace it even with overwrite=True")


def _simulate_run(rng: np.random.Generator, irf: AnalyticIRF, info: ObservationInfo, sky: _SkySampler,
                  **common: Any) -> Any:
    """EVENTS HDU of one run: background plus every model's photons in the field of view."""
    livetime = common.pop("livetime")
    parts = [sample_background(rng, irf, pointing=info.pointing, ontime=info.ontime * u.s, **common)]
    parts += sky.sample(rng, irf, pointing=info.pointing, livetime=livetime, **common)
    ra, dec, energy = (np.concatenate([p[i] for p in parts]) for i in range(3))
    time = np.sort(rng.uniform(info.tstart, info.tstop, ra.size))
    order = rng.permutation(ra.size)  # event order carries no trace of the component
    return make_events_hdu(info, time=time, ra=ra[order], dec=dec[order], energy=energy[order])


def _files(infos: list[ObservationInfo], band: np.ndarray, irf_files: list[str]) -> dict:
    """(obs_id, hdu_type) -> (FILE_DIR, FILE_NAME): events and GTI per run, IRFs per zenith band."""
    files = {}
    for info, b in zip(infos, band):
        for hdu_type, _, _ in _HDU_ROWS:
            own = hdu_type in ("events", "gti")
            files[info.obs_id, hdu_type] = ("data", f"run_{info.obs_id:06d}.fits") if own else ("irfs", irf_files[b])
    return files


def _write_truth(folder: Path, models: list, write_models: Any) -> None:
    """``models.yaml`` (+ the template FITS files it refers to) of the injected sky model."""
    from astropy.io import fits

    from xgamma.models import Template

    for model in models:
        spatial = model.spatial
        if isinstance(spatial, Template) and spatial.filename:
            fits.PrimaryHDU(spatial.data, header=spatial.wcs.to_header()).writeto(folder / spatial.filename)
    write_models(models, folder / "models.yaml")
