"""One observation's contribution to the maps: prepared once per run, evaluated per block of pixels.

`prepare_observation` reads a run (events, IRFs) and keeps what does not depend on the part of
the sky being computed: event pixel and energy-bin indices, the rotation to the field-of-view
frame, times and the safe energy bins (the IRF tables on the map's energy grid are cached on
the shared IRF objects, see `xgamma.irf._grid.GridInterpolator.cell_table`). `add_observation`
then adds the run's counts, exposure and background to a block of pixels (a `PixelBlock`,
shared by every run of the task), working on the pixels inside ``offset_max`` in slices of
`~xgamma.irf._grid.BLOCK` pixels so that no temporary grows with the map.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

import astropy.units as u
import numpy as np

from xgamma.geometry.spherical import rotate, rotation_matrix, transform_lonlat, unit_vectors
from xgamma.irf._grid import BLOCK
from xgamma.makers.safe_energy import SafeEnergy, safe_energy_mask, safe_offset_max

if TYPE_CHECKING:
    from xgamma.geometry import SkyGeometry
    from xgamma.io.datastore import Observation

__all__ = ["PreparedObservation", "PixelBlock", "prepare_observation", "prepare_observations", "pixel_block",
           "add_observation", "run_pixels", "window_of", "SafeEnergy"]

_M2 = u.Unit("m2")
#: Mean length of the runs of consecutive pixels from which `_scatter_add` adds slices.
_MIN_RUN = 32


@dataclass(frozen=True, eq=False)
class PreparedObservation:
    """What the block tasks need from one observation (picklable, a few arrays of events).

    Attributes
    ----------
    obs_id : int
        Observation id.
    pointing_vector : ndarray
        Unit vector (3,) of the pointing in the map frame.
    fov_matrix : ndarray or None
        3 x 3 rotation taking map-frame unit vectors to the RADEC field-of-view frame (x towards
        the pointing), or None for ALTAZ-aligned background models (evaluated over time steps).
    livetime_s, ontime_s : float
        Livetime (exposure) and ontime (background: the rate is per wall-clock second), s.
    energy_mask : ndarray
        Bool per energy bin: inside the safe energy range.
    offset_max_deg : float
        The safe range's ``offset-max`` (inf without it): pixels this far get nothing.
    event_ix, event_iy : ndarray
        0-based pixel column / row (int32) of the events inside the map, energy axis and safe range.
    event_energy_bin : ndarray
        Energy bin (int32) of these events.
    aeff, bkg : IRF objects
        Effective area and background model of the run.
    observation : Observation
        The handle (ALTAZ background models need its times and location).
    """

    obs_id: int
    pointing_vector: np.ndarray
    fov_matrix: np.ndarray | None
    livetime_s: float
    ontime_s: float
    energy_mask: np.ndarray
    offset_max_deg: float
    event_ix: np.ndarray
    event_iy: np.ndarray
    event_energy_bin: np.ndarray
    aeff: Any
    bkg: Any
    observation: Any


@dataclass(frozen=True, eq=False)
class PixelBlock:
    """Pixel geometry of one spatial block, computed once per task for all its runs.

    Attributes
    ----------
    lat, lon : slice
        Rows and columns of the block in the map.
    vectors : ndarray
        Unit vectors of the pixel centres in the map frame, (n_lat * n_lon, 3).
    solid_angle : ndarray
        Pixel solid angles (sr), (n_lat * n_lon,).
    """

    lat: slice
    lon: slice
    vectors: np.ndarray
    solid_angle: np.ndarray

    @property
    def columns(self) -> np.ndarray:
        """The unit vectors as (3, n) contiguous rows (x, y, z), made once per block."""
        columns = self.__dict__.get("_columns")
        if columns is None:
            columns = np.ascontiguousarray(self.vectors.T)
            columns.flags.writeable = False
            object.__setattr__(self, "_columns", columns)
        return columns

    @property
    def shape(self) -> tuple[int, int]:
        return self.lat.stop - self.lat.start, self.lon.stop - self.lon.start


def _fov_matrix(observation: Observation, frame: str) -> np.ndarray | None:
    """Rotation from map-frame vectors to the RADEC FoV frame of `xgamma.irf.background.fov_coordinates_radec`;
    None for a background aligned with ALTAZ (a plugin's too), unless it is the radial `Background2D`, for
    which the alignment does not matter."""
    from xgamma.irf.background import Background2D, fov_frame_matrix

    bkg = observation.bkg
    if bkg.fov_alignment == "ALTAZ" and not isinstance(bkg, Background2D):
        return None
    ra, dec = observation.pointing_radec
    return fov_frame_matrix(ra, dec) @ rotation_matrix(frame, "icrs")


def prepare_observation(observation: Observation, geometry: SkyGeometry, safe_energy: SafeEnergy | None,
                        energy_true: u.Quantity | None = None) -> PreparedObservation:
    """Read one observation's events and IRFs; place the events on the map's pixels and energy bins.

    Events are placed in float64 (fixed ICRS -> map-frame rotation, then the WCS); pixel i spans
    [i - 0.5, i + 0.5) in 0-based pixel coordinates. Events in energy bins outside the safe
    range (`~xgamma.makers.safe_energy`; ``energy_true`` is the axis of its ``aeff-max`` and
    ``edisp-bias`` methods) are dropped here.
    """
    events = observation.events
    edges = geometry.energy_edges.to_value("TeV")
    aeff = observation.aeff
    energy_mask = safe_energy_mask(observation, geometry, safe_energy, energy_true=energy_true)
    energy = np.asarray(events.energy, dtype=float)
    energy_bin = np.searchsorted(edges, energy, side="right") - 1
    in_range = (energy >= edges[0]) & (energy < edges[-1])
    if not energy_mask.all():
        in_range &= energy_mask[np.clip(energy_bin, 0, edges.size - 2)]
    # Events outside the energy axis or the safe range (half of a CTA run) are dropped before
    # their (elementwise) frame change and pixel placement: the same events kept, in order.
    selected = np.flatnonzero(in_range)
    lon, lat = transform_lonlat(np.asarray(events.ra[selected], float), np.asarray(events.dec[selected], float),
                                "icrs", geometry.frame)
    x, y = geometry.world_to_pixel(lon, lat)
    ix = np.floor(x + 0.5)
    iy = np.floor(y + 0.5)
    keep = (ix >= 0) & (ix < geometry.shape[1]) & (iy >= 0) & (iy < geometry.shape[0])
    energy_bin = energy_bin[selected]
    ra, dec = observation.pointing_radec
    return PreparedObservation(
        obs_id=int(observation.obs_id),
        pointing_vector=unit_vectors(*transform_lonlat(ra, dec, "icrs", geometry.frame)),
        fov_matrix=_fov_matrix(observation, geometry.frame),
        livetime_s=u.Quantity(observation.livetime).to_value("s"),
        ontime_s=u.Quantity(observation.ontime).to_value("s"),
        energy_mask=energy_mask,
        offset_max_deg=safe_offset_max(safe_energy, np.inf),
        event_ix=ix[keep].astype(np.int32),
        event_iy=iy[keep].astype(np.int32),
        event_energy_bin=energy_bin[keep].astype(np.int32),
        aeff=aeff,
        bkg=observation.bkg,
        observation=observation,
    )


def prepare_observations(observations: list[Observation], geometry: SkyGeometry, safe_energy: SafeEnergy | None,
                         energy_true: u.Quantity | None = None) -> list[PreparedObservation]:
    """`prepare_observation` of each of ``observations``: the load task of one run group of map making."""
    return [prepare_observation(o, geometry, safe_energy, energy_true) for o in observations]


def pixel_block(geometry: SkyGeometry, lat: slice, lon: slice) -> PixelBlock:
    """Unit vectors and solid angles of the pixel centres of one block.

    Kept for the last few blocks of this process (read-only arrays): every group of runs that
    reaches a chunk needs the same block, and computing it (WCS, trigonometry, pixel corners) costs
    as much as adding a run to it.
    """
    return _pixel_block(geometry, lat.start, lat.stop, lon.start, lon.stop)


@lru_cache(maxsize=16)  # 16 blocks of 256 x 256 pixels: 32 MB
def _pixel_block(geometry: SkyGeometry, lat0: int, lat1: int, lon0: int, lon1: int) -> PixelBlock:
    lat, lon = slice(lat0, lat1), slice(lon0, lon1)
    lon_deg, lat_deg = geometry.lonlat(lat, lon)
    vectors = unit_vectors(lon_deg, lat_deg).reshape(-1, 3)
    solid_angle = geometry.solid_angle(lat, lon).ravel()
    vectors.flags.writeable = solid_angle.flags.writeable = False
    return PixelBlock(lat, lon, vectors, solid_angle)


def offsets(block: PixelBlock, pointing_vector: np.ndarray) -> np.ndarray:
    """Angular distance (deg) of the block's pixel centres from a pointing (chord formula, ~1e-13 deg).

    In slices of `BLOCK` pixels: the (n, 3) difference vectors of a whole chunk would be a fresh
    1.5 MB temporary per run.
    """
    return _chord_offsets(block.vectors, pointing_vector)


def _chord_offsets(vectors: np.ndarray, pointing_vector: np.ndarray) -> np.ndarray:
    out = np.empty(vectors.shape[0])
    for start in range(0, out.size, BLOCK):
        d = vectors[start:start + BLOCK] - pointing_vector
        d *= d
        chord = out[start:start + BLOCK]
        np.sum(d, axis=1, out=chord)
        np.sqrt(chord, out=chord)
        chord *= 0.5
        np.minimum(chord, 1.0, out=chord)
        np.arcsin(chord, out=chord)
        chord *= 2 * 180 / np.pi
    return out


def inside_offsets(block: PixelBlock, pointing_vector: np.ndarray, offset_max_deg: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The block's pixels (flat indices, ascending) whose centre lies within ``offset_max_deg`` of a
    pointing, and their offsets (deg): `offsets` on those pixels only.

    A dot product with the block's pixel vectors first keeps the candidates (a margin of 1e-6 deg
    covers its rounding, ~1e-13 deg at these angles); the chord formula then gives the same
    offsets and the same cut as on the whole block. Most blocks a run reaches are only partly
    inside its field of view.
    """
    if not offset_max_deg < 179.0:  # no useful cut on the cosine (or offset_max infinite / NaN)
        offset = offsets(block, pointing_vector)
        pixels = np.flatnonzero(offset < offset_max_deg)
        return pixels, offset[pixels]
    columns = block.columns
    cosine = columns[0] * pointing_vector[0]
    cosine += columns[1] * pointing_vector[1]
    cosine += columns[2] * pointing_vector[2]
    candidates = np.flatnonzero(cosine > np.cos(np.radians(offset_max_deg + 1e-6)))
    # `_chord_offsets` on the candidates, component by component (the same sums: same values).
    chord = np.zeros(candidates.size)
    for component, coordinate in zip(columns, pointing_vector):
        d = component[candidates]
        d -= coordinate
        d *= d
        chord += d
    np.sqrt(chord, out=chord)
    chord *= 0.5
    np.minimum(chord, 1.0, out=chord)
    offset = np.arcsin(chord, out=chord)
    offset *= 2 * 180 / np.pi
    keep = offset < offset_max_deg
    return candidates[keep], offset[keep]


def _scatter_add(target: np.ndarray, pixels: np.ndarray, values: np.ndarray) -> None:
    """``target[..., pixels] += values`` for ascending, distinct ``pixels`` (the same sums).

    Runs of consecutive pixels (rows of a field of view crossing the block) are added as slices:
    a gather and a scatter of 24 x 8192 values cost about twice as much as a few slice adds.
    Short runs (a sliver of the field of view) keep the fancy index.
    """
    breaks = np.flatnonzero(np.diff(pixels) != 1) + 1
    if (breaks.size + 1) * _MIN_RUN > pixels.size:
        target[..., pixels] += values
        return
    starts = [0, *breaks.tolist()]
    stops = [*breaks.tolist(), pixels.size]
    for start, stop in zip(starts, stops):
        first = int(pixels[start])
        target[..., first:first + stop - start] += values[..., start:stop]


def _add_counts(counts: np.ndarray | None, image: np.ndarray | None, run: PreparedObservation, block: PixelBlock,
                inside: np.ndarray, window: tuple[int, int, int, int] | None = None) -> None:
    """Add the events whose pixel is in the block and inside offset_max to ``counts`` (n_energy, n_pixels
    of ``window``, see `add_observation`) and, energy-summed, to ``image`` (n_pixels of the block,).

    `numpy.add.at` into the output: a `numpy.bincount` would make a fresh cube-sized histogram
    per run and block (5 MB for 10 x 256 x 256), 7x slower here in page faults.
    """
    ny, nx = block.shape
    ix = run.event_ix - block.lon.start
    iy = run.event_iy - block.lat.start
    in_block = np.flatnonzero((ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny))
    pixel = iy[in_block] * nx + ix[in_block]
    keep = inside[pixel]
    pixel = pixel[keep]
    # The increment in the target's dtype: ufunc.at takes its fast loop only without casting
    # (a Python float costs 30x more on 10^5 events).
    if counts is not None:
        flat = run.event_energy_bin[in_block[keep]].astype(np.intp) * counts.shape[-1] + _in_window(pixel, block,
                                                                                                      window)
        np.add.at(counts.reshape(-1), flat, counts.dtype.type(1))
    if image is not None:
        np.add.at(image, pixel, image.dtype.type(1))


def _background_rate_altaz(run: PreparedObservation, edges: u.Quantity, vectors: np.ndarray,
                           frame: str, bins: slice) -> np.ndarray:
    """Rate (s-1 sr-1) of an ALTAZ-aligned model in ``bins`` (0 in the others), averaged over steps of
    < 1 deg field rotation."""
    from astropy.coordinates import SkyCoord

    from xgamma.geometry.spherical import lonlat_from_vectors
    from xgamma.irf.background import RATE_UNIT, fov_coordinates, fov_rotation_times, integrate_background

    ra, dec = lonlat_from_vectors(rotate(vectors, rotation_matrix(frame, "icrs")))
    times = fov_rotation_times(run.observation)
    mids = times[:-1] + 0.5 * (times[1:] - times[:-1])
    weights = (times[1:] - times[:-1]).to_value("s")
    pixels = SkyCoord(ra, dec, unit="deg", frame="icrs")
    rate = np.zeros((edges.size - 1, ra.size))
    for time, weight in zip(mids, weights / weights.sum()):
        fov_lon, fov_lat = fov_coordinates(run.observation, pixels, alignment="ALTAZ", time=time)
        rate += weight * integrate_background(run.bkg, edges, fov_lon, fov_lat, bins=bins).to_value(RATE_UNIT)
    return rate


def run_pixels(run: PreparedObservation, block: PixelBlock, offset_max_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """The block's pixels (flat indices, ascending) a run reaches, and their offsets (deg): those within
    ``offset_max_deg`` and the run's own safe-range ``offset-max`` (`inside_offsets`)."""
    return inside_offsets(block, run.pointing_vector, min(offset_max_deg, run.offset_max_deg))


def window_of(pixels: np.ndarray, block: PixelBlock) -> tuple[int, int, int, int] | None:
    """``(row, column, n_rows, n_columns)`` of the smallest rectangle of the block holding ``pixels``
    (flat indices), or None when there are none."""
    if pixels.size == 0:
        return None
    nx = block.shape[1]
    rows = pixels[[0, -1]] // nx  # ascending flat indices: first and last row
    columns = pixels % nx
    first, last = int(columns.min()), int(columns.max())
    return int(rows[0]), first, int(rows[1] - rows[0]) + 1, last - first + 1


def _in_window(pixels: np.ndarray, block: PixelBlock, window: tuple[int, int, int, int] | None) -> np.ndarray:
    """Flat block indices -> flat indices of the window (still ascending and distinct)."""
    ny, nx = block.shape
    if window is None or window == (0, 0, ny, nx):
        return pixels
    row, column, _, n_columns = window
    return (pixels // nx - row) * n_columns + (pixels % nx - column)


def add_observation(
    out: np.ndarray | None,
    run: PreparedObservation,
    block: PixelBlock,
    geometry: SkyGeometry,
    offset_max_deg: float,
    image: np.ndarray | None = None,
    *,
    reached: tuple[np.ndarray, np.ndarray] | None = None,
    window: tuple[int, int, int, int] | None = None,
) -> None:
    """Add one run's counts, exposure (m2 s) and background (counts) on a pixel block to ``out``.

    Parameters
    ----------
    out : ndarray or None
        (3, n_energy, n_lat_block * n_lon_block) float32 or float64 (C-contiguous), added to in
        place; each run's exposure and background are computed in float64 and rounded once to
        ``out``'s dtype before the addition. None when only ``image`` is wanted (the exposure is
        then not evaluated).
    run : PreparedObservation
        The run.
    block : PixelBlock
        The pixels.
    geometry : SkyGeometry
        The map geometry (energy edges, frame).
    offset_max_deg : float
        Pixels whose centre lies at or beyond this offset from the pointing (or the run's own
        safe-range ``offset-max``) get nothing.
    image : ndarray, optional
        (2, n_pixels) float64: the run's energy-summed counts and background are added here.
    reached : (ndarray, ndarray), optional
        `run_pixels` of this run and block, when already computed.
    window : (int, int, int, int), optional
        ``(row, column, n_rows, n_columns)``: ``out`` covers only this rectangle of the block
        (``n_rows * n_columns`` pixels; it must hold every pixel the run reaches, `window_of`).
        ``image`` always covers the whole block.
    """
    from xgamma.irf.background import RATE_UNIT, fov_coordinates_from_components, integrate_background

    if out is None and image is None:
        return
    pixels, offset = run_pixels(run, block, offset_max_deg) if reached is None else reached
    if pixels.size == 0:
        return
    inside = np.zeros(block.vectors.shape[0], dtype=bool)
    inside[pixels] = True
    _add_counts(None if out is None else out[0], None if image is None else image[0], run, block, inside, window)
    targets = _in_window(pixels, block, window)

    edges = geometry.energy_edges
    centers = np.sqrt(edges.value[:-1] * edges.value[1:])[:, None] * edges.unit
    energy_mask = run.energy_mask
    all_safe = energy_mask.all()
    # The bins from the first to the last safe one are evaluated, the others are zeroed below anyway
    # (3 of 24 on average in the survey of bench_survey.py). Each bin's values depend on that bin
    # only: bit for bit those of the whole axis (the ``bins`` of the background contract).
    safe = np.flatnonzero(energy_mask)
    bins = slice(int(safe[0]), int(safe[-1]) + 1) if safe.size else slice(0, energy_mask.size)
    for start in range(0, pixels.size, BLOCK):
        pix = pixels[start:start + BLOCK]
        # This slice's exposure and background in ``out``'s dtype, side by side: one scatter adds both.
        values = None if out is None else np.empty((2, out.shape[1], pix.size), out.dtype)
        if values is not None:
            exposure = run.aeff.evaluate(energy_true=centers[bins], offset=offset[start:start + BLOCK][None, :]
                                         ).to_value(_M2)
            np.multiply(exposure, run.livetime_s, out=values[0, bins], casting="same_kind")  # float64, rounded once
        if run.fov_matrix is None:
            rate = _background_rate_altaz(run, edges, block.vectors[pix], geometry.frame, bins)
        else:
            fov_lon, fov_lat = fov_coordinates_from_components(tuple(block.columns[:, pix]), run.fov_matrix)
            rate = integrate_background(run.bkg, edges, fov_lon, fov_lat, bins=bins).to_value(RATE_UNIT)
        # The background rate is per unit wall-clock time (dead time included), hence ontime.
        scale = block.solid_angle[pix] * run.ontime_s
        if image is not None:
            rate *= scale
            if not all_safe:
                rate[~energy_mask] = 0.0
            _scatter_add(image[1], pix, rate.sum(axis=0))
            if values is not None:
                np.copyto(values[1], rate, casting="same_kind")
        elif values is not None:
            np.multiply(rate[bins], scale, out=values[1, bins], casting="same_kind")  # float64, rounded once
        if values is not None:
            if not all_safe:
                values[:, ~energy_mask] = 0.0
            _scatter_add(out[1:], targets[start:start + BLOCK], values)
