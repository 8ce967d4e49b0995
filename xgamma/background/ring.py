"""Ring background: off counts and off acceptance summed over an annulus outside the exclusion mask.

Per pixel, with ``E`` the exclusion mask (True = usable) and ``R`` the ring kernel::

    off            = R (x) (counts * E)
    acceptance_off = R (x) (acceptance * E)
    alpha          = acceptance / acceptance_off
    background     = alpha * off

``acceptance`` is the background model map (predicted background counts). Each observation is
done separately, with its own ``offset_max`` cut, then stacked with `stack_ring_maps` (off counts
and ``alpha * off`` add), so that no correlation is counted twice.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import xarray as xr

from xgamma.background.kernels import convolve_image, ring_kernel
from xgamma.exceptions import EstimatorError

if TYPE_CHECKING:
    from astropy.coordinates import SkyCoord

    from xgamma.geometry import SkyGeometry

__all__ = ["RingBackground", "ring_background", "stack_ring_maps", "offset_mask", "dataset_from_arrays", "OBS_DIM"]

#: Name of the dimension that holds per-observation maps.
OBS_DIM = "obs_id"


def _offset_block(
    geometry: SkyGeometry, lon: float, lat: float, frame: str, offset_max: float, block_info: Any = None
) -> np.ndarray:
    from astropy.coordinates import SkyCoord

    (y0, y1), (x0, x1) = block_info[None]["array-location"][-2:]
    position = SkyCoord(lon, lat, unit="deg", frame=frame)
    return geometry.separation(position, lat=slice(y0, y1), lon=slice(x0, x1)) < offset_max


def offset_mask(
    geometry: SkyGeometry, pointing: SkyCoord, *, offset_max: Any, chunks: Any = None
) -> Any:
    """Boolean image, True for pixel centres closer than ``offset_max`` to ``pointing``.

    Parameters
    ----------
    geometry : `~xgamma.geometry.SkyGeometry`
        Pixel grid.
    pointing : `~astropy.coordinates.SkyCoord`
        Pointing position (scalar).
    offset_max : str or `~astropy.units.Quantity`
        Maximum offset (angle); the cut is strict (``<``), as Gammapy's safe mask.
    chunks : tuple, optional
        Dask chunks ``(lat_chunks, lon_chunks)``; None returns a numpy array.

    Returns
    -------
    mask : `numpy.ndarray` or `dask.array.Array`
        Shape ``geometry.shape``.
    """
    from xgamma.units import parse_angle

    limit = parse_angle(offset_max, name="offset_max").to_value("deg")
    if not limit > 0:
        raise EstimatorError(f"offset_max must be positive, got {offset_max!r}")
    icrs = pointing.icrs
    args = (geometry, float(icrs.ra.deg), float(icrs.dec.deg), "icrs", limit)
    if chunks is None:
        n_lat, n_lon = geometry.shape
        return _offset_block(*args, block_info={None: {"array-location": [(0, n_lat), (0, n_lon)]}})
    import dask.array as da

    return da.map_blocks(_offset_block, *args, chunks=chunks, dtype=bool, meta=np.empty((0, 0), bool))


def _ring_pixels(geometry: SkyGeometry, r_in: Any, width: Any) -> tuple[float, float]:
    from xgamma.units import parse_angle

    r_in_deg = parse_angle(r_in, name="r_in").to_value("deg")
    width_deg = parse_angle(width, name="width").to_value("deg")
    if not r_in_deg > 0:
        raise EstimatorError(f"ring r_in must be positive, got {r_in!r}")
    if not width_deg > 0:
        raise EstimatorError(f"ring width must be positive, got {width!r}")
    scale = geometry.pixel_scale
    r_in_px, width_px = r_in_deg / scale, width_deg / scale
    if 2 * (r_in_px + width_px) > max(geometry.shape):
        raise EstimatorError(
            f"ring r_in={r_in!r} + width={width!r} (outer diameter {2 * (r_in_deg + width_deg):g} deg) "
            f"is wider than the map ({geometry.shape[1] * scale:g} x {geometry.shape[0] * scale:g} deg)"
        )
    return r_in_px, width_px


def _spatial_last(da_: xr.DataArray, name: str) -> xr.DataArray:
    if "lat" not in da_.dims or "lon" not in da_.dims:
        raise EstimatorError(f"map {name!r} needs dims 'lat' and 'lon', got {da_.dims}")
    other = [d for d in da_.dims if d not in ("lat", "lon")]
    return da_.transpose(*other, "lat", "lon")


def _exclusion_data(exclusion: Any, shape: tuple[int, int]) -> Any:
    import dask.array as dask_array

    if exclusion is None:
        return None
    data = exclusion.transpose("lat", "lon").data if isinstance(exclusion, xr.DataArray) else exclusion
    if not isinstance(data, dask_array.Array):
        data = np.asarray(data)
    if tuple(data.shape) != tuple(shape):
        raise EstimatorError(f"exclusion mask has shape {tuple(data.shape)}, the maps have (lat, lon) = {shape}")
    if not isinstance(data, dask_array.Array) and not np.any(data):
        # Checked only for in-memory masks (the usual case): never compute to warn.
        warnings.warn(
            "the exclusion mask excludes every pixel: no off counts, alpha is undefined (NaN) everywhere",
            RuntimeWarning,
            stacklevel=3,
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


def dataset_from_arrays(template: xr.DataArray, arrays: dict[str, Any]) -> xr.Dataset:
    """Dataset of arrays shaped like ``template`` (its dims and coords; units ``""``).

    Built in one go: merging DataArrays one by one would re-compare the coordinates each time.
    """
    return xr.Dataset(
        {name: (template.dims, data, {"units": ""}) for name, data in arrays.items()},
        coords=template.coords,
    )


def _offset_cut(
    counts: xr.DataArray, acceptance: xr.DataArray, geometry: SkyGeometry, offset_max: Any, pointing: Any
) -> tuple[xr.DataArray, xr.DataArray, xr.DataArray | None]:
    """Zero counts and acceptance at and beyond ``offset_max`` from each pointing; also return the cut."""
    if offset_max is None:
        return counts, acceptance, None
    if pointing is None:
        raise EstimatorError("offset_max needs the pointing position(s) of the observation(s)")
    chunks = counts.chunks[-2:] if counts.chunks is not None else None
    if OBS_DIM in counts.dims:
        masks = [
            offset_mask(geometry, p, offset_max=offset_max, chunks=chunks)
            for p in _pointing_list(pointing, counts.sizes[OBS_DIM])
        ]
        cut = xr.DataArray(_stack_arrays(masks), dims=(OBS_DIM, "lat", "lon"))
    else:
        mask = offset_mask(geometry, _pointing_list(pointing, 1)[0], offset_max=offset_max, chunks=chunks)
        cut = xr.DataArray(mask, dims=("lat", "lon"))
    counts = counts.where(cut, 0.0).transpose(*counts.dims)
    acceptance = acceptance.where(cut, 0.0).transpose(*acceptance.dims)
    inside = cut.broadcast_like(counts).transpose(*counts.dims)
    return counts, acceptance, inside


def ring_background(
    counts: xr.DataArray,
    acceptance: xr.DataArray,
    *,
    r_in: Any,
    width: Any,
    exclusion: xr.DataArray | np.ndarray | None = None,
    offset_max: Any = None,
    pointing: SkyCoord | Sequence[SkyCoord] | None = None,
) -> xr.Dataset:
    """Ring background of one set of maps (lazy for dask-backed maps).

    Parameters
    ----------
    counts : `xarray.DataArray`
        Counts map, dims (..., "lat", "lon"). A leading ``obs_id`` dim holds one map per
        observation (each gets its own ring; stack them with `stack_ring_maps`).
    acceptance : `xarray.DataArray`
        Background model map (predicted background counts), same dims as ``counts``.
    r_in : str or `~astropy.units.Quantity`
        Inner ring radius (angle).
    width : str or `~astropy.units.Quantity`
        Ring width (angle).
    exclusion : `xarray.DataArray` or array, optional
        Boolean image (lat, lon), True = usable for the background (see
        `~xgamma.background.make_exclusion_mask`). Default: nothing excluded.
    offset_max : str or `~astropy.units.Quantity`, optional
        Counts and acceptance are set to zero at and beyond this offset from ``pointing``.
    pointing : `~astropy.coordinates.SkyCoord` or sequence of them, optional
        Pointing position (one per ``obs_id`` entry); needed with ``offset_max``.

    Returns
    -------
    maps : `xarray.Dataset`
        ``counts`` and ``acceptance`` (after the offset cut), ``off``, ``acceptance_off``,
        ``alpha``, ``background`` = alpha x off (counts) and ``exclusion``; all dimensionless
        counts or ratios (``attrs["units"] = ""``). Where a pixel has no off measurement (no off
        acceptance, or beyond ``offset_max``) ``off`` and ``acceptance_off`` are 0 and ``alpha``
        and ``background`` are NaN.

    Raises
    ------
    EstimatorError
        Radii <= 0 or a ring wider than the map, mismatched maps or mask, ``offset_max``
        without ``pointing``.
    """
    from xgamma.maps import map_geometry

    counts = _spatial_last(counts, "counts")
    acceptance = _spatial_last(acceptance, "acceptance")
    if counts.shape != acceptance.shape or counts.dims != acceptance.dims:
        raise EstimatorError(
            f"counts {dict(counts.sizes)} and acceptance {dict(acceptance.sizes)} maps do not match"
        )
    geometry = map_geometry(counts).to_image().with_energy(None)
    r_in_px, width_px = _ring_pixels(geometry, r_in, width)
    kernel = ring_kernel(r_in_px, width_px)
    exclusion_data = _exclusion_data(exclusion, geometry.shape)

    counts, acceptance, inside = _offset_cut(counts, acceptance, geometry, offset_max, pointing)

    excl = 1.0 if exclusion_data is None else exclusion_data.astype(float)
    # one overlapped task per block for both sums
    sums = convolve_image(_stack_arrays([counts.data * excl, acceptance.data * excl]), kernel, rint=(True, False))
    off, acc_off = sums[0], sums[1]
    # A pixel has an off measurement only inside this observation's offset cut and with off
    # acceptance; elsewhere off = 0 so that stacking does not add unrelated off counts (as
    # Gammapy's safe mask does).
    valid = acc_off > 0
    if inside is not None:
        valid = valid & inside.data
    off = np.where(valid, off, 0.0)
    acc_off = np.where(valid, acc_off, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(valid, acceptance.data / np.where(valid, acc_off, 1.0), np.nan)
    background = alpha * off

    ds = dataset_from_arrays(
        counts,
        {
            "counts": counts.data,
            "acceptance": acceptance.data,
            "off": off,
            "acceptance_off": acc_off,
            "alpha": alpha,
            "background": background,
        },
    )
    mask = exclusion_data if exclusion_data is not None else np.ones(geometry.shape, dtype=bool)
    ds["exclusion"] = xr.DataArray(mask, dims=("lat", "lon"), attrs={"units": ""})
    ds.attrs = {"r_in_px": float(r_in_px), "width_px": float(width_px), "background_method": "ring"}
    return ds


def _stack_arrays(arrays: list[Any]) -> Any:
    import dask.array as da

    if any(isinstance(a, da.Array) for a in arrays):
        return da.stack(arrays)
    return np.stack(arrays)


def stack_ring_maps(maps: xr.Dataset | Sequence[xr.Dataset], *, dim: str = OBS_DIM) -> xr.Dataset:
    """Stack per-observation ring results: off counts and ``alpha * off`` add.

    The stacked ``alpha`` is ``sum(alpha_i * off_i) / sum(off_i)`` (Gammapy's on-off stacking rule);
    where the stacked off counts are 0 it falls back to ``sum(acceptance_i) / sum(acceptance_off_i)``.
    ``acceptance`` adds and ``acceptance_off`` is set to ``acceptance / alpha`` so that their
    ratio stays alpha. NaN entries (no off acceptance) count as 0.

    Parameters
    ----------
    maps : `xarray.Dataset` with an ``obs_id`` dim, or a sequence of Datasets
        Outputs of `ring_background`.
    dim : str
        Observation dimension. Default is "obs_id".

    Returns
    -------
    stacked : `xarray.Dataset`
        Same variables without the observation dimension (lazy for dask input).
    """
    if not isinstance(maps, xr.Dataset):
        maps = list(maps)
        if not maps:
            raise EstimatorError("nothing to stack: empty list of ring background maps")
        maps = xr.concat(maps, dim=dim, coords="minimal", compat="override", join="override")
    if dim not in maps.dims:
        return maps
    missing = {"counts", "acceptance", "off", "acceptance_off", "alpha"} - set(maps.data_vars)
    if missing:
        raise EstimatorError(f"cannot stack ring maps: missing variables {sorted(missing)}")
    zero = lambda v: v.fillna(0.0)  # noqa: E731
    counts = zero(maps["counts"]).sum(dim)
    acceptance = zero(maps["acceptance"]).sum(dim)
    off = zero(maps["off"]).sum(dim)
    bkg = zero(maps["alpha"] * maps["off"]).sum(dim)
    acc_off_sum = zero(maps["acceptance_off"]).sum(dim)
    alpha = xr.where(off > 0, bkg / off.where(off > 0), acceptance / acc_off_sum.where(acc_off_sum > 0))
    acc_off = xr.where(alpha > 0, acceptance / alpha.where(alpha > 0), acc_off_sum)
    out = xr.Dataset(
        {
            "counts": counts,
            "acceptance": acceptance,
            "off": off,
            "acceptance_off": acc_off,
            "alpha": alpha,
            "background": alpha * off,
        }
    )
    for name in out.data_vars:
        out[name].attrs = {"units": ""}
    out = out.transpose(*[d for d in maps["counts"].dims if d != dim])
    if "exclusion" in maps:
        excl = maps["exclusion"]
        out["exclusion"] = excl.isel({dim: 0}) if dim in excl.dims else excl
    for coord in ("wcs",):
        if coord in maps.coords and dim not in maps.coords[coord].dims:
            out = out.assign_coords({coord: maps.coords[coord]})
    out.attrs = dict(maps.attrs)
    return out


def _pointings_from_dataset(dataset: xr.Dataset) -> Any:
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
class RingBackground:
    """Ring background estimator (``name = "ring"``).

    Parameters
    ----------
    r_in : str or `~astropy.units.Quantity`
        Inner ring radius (angle). Default is "0.3 deg".
    width : str or `~astropy.units.Quantity`
        Ring width (angle). Default is "0.3 deg".
    exclusion : `xarray.DataArray`, optional
        Exclusion mask (True = usable). Default: nothing excluded.
    offset_max : str or `~astropy.units.Quantity`, optional
        Per-observation offset cut applied before the ring sums.

    Notes
    -----
    `run` takes a Dataset with ``counts`` and ``background`` (the background model, used as the
    acceptance). With an ``obs_id`` dim, each observation gets its own ring (and offset cut, with
    pointings from the ``pointing_ra`` / ``pointing_dec`` coords on ``obs_id`` or the ``pointing``
    argument) and the results are stacked with `stack_ring_maps`.
    """

    name: ClassVar[str] = "ring"

    r_in: Any = "0.3 deg"
    width: Any = "0.3 deg"
    exclusion: xr.DataArray | None = None
    offset_max: Any = None

    def run(self, dataset: xr.Dataset, *, pointing: Any = None) -> xr.Dataset:
        """Add ``off``, ``acceptance_off``, ``alpha`` and ``background`` (= alpha x off) to ``dataset``.

        The input ``background`` (model) becomes ``acceptance``. Other variables are kept.
        """
        missing = {"counts", "background"} - set(dataset.data_vars)
        if missing:
            raise EstimatorError(f"ring background needs dataset variables {sorted(missing)}")
        if pointing is None:
            pointing = _pointings_from_dataset(dataset)
        ring = ring_background(
            dataset["counts"],
            dataset["background"],
            r_in=self.r_in,
            width=self.width,
            exclusion=self.exclusion,
            offset_max=self.offset_max,
            pointing=pointing,
        )
        if OBS_DIM in ring.dims:
            ring = stack_ring_maps(ring)
        keep = dataset.drop_vars(["counts", "background"])
        if OBS_DIM in dataset.dims:
            keep = keep.drop_dims(OBS_DIM, errors="ignore")
        out = keep.merge(ring, compat="override", join="override")
        out.attrs = {**dataset.attrs, **ring.attrs}
        return out
