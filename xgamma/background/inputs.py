"""Checked inputs of the ring-type background estimators (ring and adaptive ring).

Everything here runs while the graph is built, on metadata only (dims, shapes, radii, masks,
pointings): errors name the parameter at fault, and nothing is computed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from xgamma.background.offset import lonlat_in_frame, offset_limit, pointing_lonlat
from xgamma.blocks import is_dask
from xgamma.exceptions import DataWarning, EstimatorError
from xgamma.maps import in_order

if TYPE_CHECKING:
    from astropy.coordinates import SkyCoord

    from xgamma.geometry import SkyGeometry

__all__ = ["OBS_DIM", "RingInputs", "ring_inputs", "ring_radii", "exclusion_data", "pointings_from_dataset", "to_pixels"]

#: Name of the dimension that holds per-observation maps.
OBS_DIM = "obs_id"


def to_pixels(geometry: SkyGeometry, what: str = "ring", **angles: Any) -> dict[str, float]:
    """Positive angles (str or Quantity, by parameter name) in pixels of ``geometry``.

    ``what`` names the estimator in error messages. Default is "ring".
    """
    from xgamma.units import parse_angle

    out = {}
    for name, value in angles.items():
        degrees = parse_angle(value, name=name).to_value("deg")
        if not degrees > 0:
            raise EstimatorError(f"{what} {name} must be positive, got {value!r}")
        out[name] = degrees / geometry.pixel_scale
    return out


def ring_radii(geometry: SkyGeometry, r_in: Any, width: Any) -> tuple[float, float]:
    """Inner radius and width of a ring in pixels, checked (positive, the ring inside the map)."""
    px = to_pixels(geometry, r_in=r_in, width=width)
    if 2 * (px["r_in"] + px["width"]) > max(geometry.shape):
        scale = geometry.pixel_scale
        raise EstimatorError(
            f"ring r_in={r_in!r} + width={width!r} (outer diameter {2 * (px['r_in'] + px['width']) * scale:g} deg) "
            f"is wider than the map ({geometry.shape[1] * scale:g} x {geometry.shape[0] * scale:g} deg)"
        )
    return px["r_in"], px["width"]


def _spatial_last(da_: xr.DataArray, name: str) -> xr.DataArray:
    if "lat" not in da_.dims or "lon" not in da_.dims:
        raise EstimatorError(f"map {name!r} needs dims 'lat' and 'lon', got {da_.dims}")
    other = [d for d in da_.dims if d not in ("lat", "lon")]
    return in_order(da_, (*other, "lat", "lon"))


def exclusion_data(exclusion: Any, shape: tuple[int, int]) -> Any:
    """The (lat, lon) array of an exclusion mask (DataArray or array; None stays None), checked."""
    if exclusion is None:
        return None
    data = exclusion.transpose("lat", "lon").data if isinstance(exclusion, xr.DataArray) else exclusion
    if not is_dask(data):
        data = np.asarray(data)
    if tuple(data.shape) != tuple(shape):
        raise EstimatorError(f"exclusion mask has shape {tuple(data.shape)}, the maps have (lat, lon) = {shape}")
    if not is_dask(data) and not np.any(data):
        # Checked only for in-memory masks (the usual case): never compute to warn.
        warnings.warn(
            "the exclusion mask excludes every pixel: no off counts, alpha is undefined (NaN) everywhere",
            DataWarning,
            stacklevel=4,
        )
    return data


def _pointing_list(pointing: Any, n: int) -> list[SkyCoord]:
    from astropy.coordinates import SkyCoord

    if isinstance(pointing, SkyCoord):
        items = [pointing] if pointing.isscalar else list(pointing)
    else:
        items = list(pointing)
    if len(items) != n:
        raise EstimatorError(f"got {len(items)} pointing(s) for {n} observation(s) along {OBS_DIM!r}")
    return items


def _run_pointings(n_runs: int, geometry: SkyGeometry, offset_max: Any,
                   pointing: Any) -> tuple[np.ndarray | None, float | None]:
    """Pointings (n_runs, 2) as (lon, lat) deg in the geometry frame, and the cut in deg (or Nones)."""
    if offset_max is None:
        return None, None
    if pointing is None:
        raise EstimatorError(
            "offset_max needs the pointing position(s) of the observation(s): stacked images have none. Estimate "
            "the background on per-observation images, which carry their pointings (`make_observation_maps` or "
            "`analysis.observation_maps()`, squashed with `squash_energy`), pass `pointing=`, or drop offset_max"
        )
    limit = offset_limit(offset_max)
    from astropy.coordinates import SkyCoord

    if isinstance(pointing, SkyCoord) and not pointing.isscalar and pointing.ndim == 1 and len(pointing) == n_runs:
        return lonlat_in_frame(pointing, geometry.frame), limit  # one transform for all runs
    return np.array([pointing_lonlat(geometry, p) for p in _pointing_list(pointing, n_runs)]), limit


def pointings_from_dataset(dataset: xr.Dataset) -> Any:
    """The ICRS pointings of the ``pointing_ra`` / ``pointing_dec`` coordinates (None without them)."""
    from astropy.coordinates import SkyCoord

    if "pointing_ra" in dataset.coords and "pointing_dec" in dataset.coords:
        return SkyCoord(
            np.atleast_1d(dataset.coords["pointing_ra"].values),
            np.atleast_1d(dataset.coords["pointing_dec"].values),
            unit="deg",
            frame="icrs",
        )
    return None


@dataclass(frozen=True, eq=False)
class RingInputs:
    """The checked inputs of a ring-type estimator, ready for its block function.

    Attributes
    ----------
    dims : tuple of str
        Dims of the counts map as given (the outputs get them back).
    template : `xarray.DataArray`
        Counts, ``obs_id`` first (if any) and spatial dims last: a block's index range along axis
        0 picks its pointings.
    acceptance : array
        Acceptance data (numpy or dask), in the order of ``template``.
    geometry : `~xgamma.geometry.SkyGeometry`
        The image geometry (no energy axis).
    exclusion : array or None
        Exclusion mask (lat, lon), True = usable.
    pointings : `numpy.ndarray` or None
        (n_runs, 2) (lon, lat) deg in the geometry frame, with ``limit``.
    limit : float or None
        Offset cut (deg).
    obs_axis : bool
        Whether axis 0 holds the runs.
    """

    dims: tuple[str, ...]
    template: xr.DataArray
    acceptance: Any
    geometry: SkyGeometry
    exclusion: Any
    pointings: np.ndarray | None
    limit: float | None
    obs_axis: bool

    @property
    def lazy_mask(self) -> bool:
        """The exclusion mask is a dask array (then it is an input of the blocks, not a keyword)."""
        return is_dask(self.exclusion)

    def block_inputs(self) -> tuple[list[Any], dict[str, Any]]:
        """Arrays and keywords of the block functions (`~xgamma.background.ring_blocks.ring_block`).

        With dask maps, an in-memory mask is chunked as the maps: each block then reads the mask's
        chunks it touches. As a keyword, the whole mask went with every block's task (the 1000-run
        survey: 2.6 MB for 300 x 8750 pixels, in each of 12 blocks), bytes growing with the number
        of blocks times the map's area.
        """
        mask = self.exclusion
        if mask is not None and not self.lazy_mask and is_dask(self.template.data):
            import dask.array as da

            mask = da.from_array(mask, chunks=self.template.data.chunks[-2:])
        lazy = is_dask(mask)
        arrays = [self.template.data, self.acceptance, *([mask] if lazy else [])]
        keywords = dict(geometry=self.geometry, pointings=self.pointings, limit=self.limit, obs_axis=self.obs_axis,
                        exclusion=None if lazy else mask)
        return arrays, keywords

    def exclusion_variable(self) -> dict[str, xr.Variable]:
        """The ``exclusion`` variable of the outputs (all True without a mask)."""
        mask = self.exclusion if self.exclusion is not None else np.ones(self.geometry.shape, dtype=bool)
        return {"exclusion": xr.Variable(("lat", "lon"), mask, {"units": ""})}


def ring_inputs(counts: xr.DataArray, acceptance: xr.DataArray, *, exclusion: Any, offset_max: Any,
                pointing: Any) -> RingInputs:
    """Check the maps, mask and pointings of a ring-type estimator.

    Raises
    ------
    EstimatorError
        Maps without (lat, lon) dims or of different shapes, a mask of another shape,
        ``offset_max`` without pointings (or with one per run missing).
    """
    from xgamma.maps import map_geometry

    counts = _spatial_last(counts, "counts")
    acceptance = _spatial_last(acceptance, "acceptance")
    if counts.shape != acceptance.shape or counts.dims != acceptance.dims:
        raise EstimatorError(
            f"counts {dict(counts.sizes)} and acceptance {dict(acceptance.sizes)} maps do not match"
        )
    geometry = map_geometry(counts).to_image().with_energy(None)
    obs_axis = OBS_DIM in counts.dims
    n_runs = counts.sizes[OBS_DIM] if obs_axis else 1
    pointings, limit = _run_pointings(n_runs, geometry, offset_max, pointing)
    order = counts.dims if not obs_axis else (OBS_DIM, *[d for d in counts.dims if d != OBS_DIM])
    return RingInputs(
        dims=counts.dims, template=in_order(counts, order), acceptance=in_order(acceptance.variable, order).data,
        geometry=geometry, exclusion=exclusion_data(exclusion, geometry.shape), pointings=pointings, limit=limit,
        obs_axis=obs_axis,
    )

