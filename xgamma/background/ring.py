"""Ring background: off counts and off acceptance summed over an annulus outside the exclusion mask.

Per pixel, with ``E`` the exclusion mask (True = usable) and ``R`` the ring kernel::

    off            = R (x) (counts * E)
    acceptance_off = R (x) (acceptance * E)
    alpha          = acceptance / acceptance_off
    background     = alpha * off

``acceptance`` is the background model map (predicted background counts). Each observation is
done separately, with its own ``offset_max`` cut, then stacked with `stack_ring_maps` (off counts
and ``alpha * off`` add), so that no correlation is counted twice.

With dask, the offset cut, both ring sums and alpha of a block of runs are one task
(`~xgamma.blocks.overlap_apply`); each run's sums are FFT'd only over the box
around its field of view, and the pixel positions are computed once per geometry.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import xarray as xr

from xgamma.blocks import overlap_apply, split_channels
from xgamma.convolution import convolve_padded, kernel_radius, padded_planes, ring_kernel
from xgamma.background.offset import (
    _geometry_key,
    _inside_block,
    _lonlat_in_frame,
    _pointing_lonlat,
    _offset_limit,
    offset_mask,
)
from xgamma.exceptions import EstimatorError
from xgamma.maps import computed_coords, in_order

if TYPE_CHECKING:
    from astropy.coordinates import SkyCoord

    from xgamma.geometry import SkyGeometry

__all__ = ["RingBackground", "ring_background", "stack_ring_maps", "offset_mask", "dataset_from_arrays", "OBS_DIM"]

#: Name of the dimension that holds per-observation maps.
OBS_DIM = "obs_id"


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
    return in_order(da_, (*other, "lat", "lon"))


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


def dataset_from_arrays(template: xr.DataArray, arrays: dict[str, Any], *,
                        extra: dict[str, Any] | None = None) -> xr.Dataset:
    """Dataset of arrays shaped like ``template`` (its dims and coords; units ``""``).

    ``extra`` adds variables of other shapes (name -> DataArray, Variable or (dims, data, attrs)).
    Built in one go: merging DataArrays one by one would re-compare the coordinates each time.
    """
    variables = {name: (template.dims, data, {"units": ""}) for name, data in arrays.items()}
    for name, value in (extra or {}).items():
        variables[name] = value.variable if isinstance(value, xr.DataArray) else value
    return xr.Dataset(variables, coords=template.coords)


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


def _ring_pointings(
    counts: xr.DataArray, geometry: SkyGeometry, offset_max: Any, pointing: Any
) -> tuple[np.ndarray | None, float | None]:
    """Pointings (n_obs, 2) as (lon, lat) deg in the geometry frame, and the cut in deg (or Nones)."""
    if offset_max is None:
        return None, None
    if pointing is None:
        raise EstimatorError("offset_max needs the pointing position(s) of the observation(s)")
    n = counts.sizes[OBS_DIM] if OBS_DIM in counts.dims else 1
    limit = _offset_limit(offset_max)
    from astropy.coordinates import SkyCoord

    if isinstance(pointing, SkyCoord) and not pointing.isscalar and pointing.ndim == 1 and len(pointing) == n:
        return _lonlat_in_frame(pointing, geometry.frame), limit  # one transform for all runs
    return np.array([_pointing_lonlat(geometry, p) for p in _pointing_list(pointing, n)]), limit


def zero_outside(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``values`` where ``mask`` is True, 0 elsewhere (NaN included), as a new float array.

    A product with the boolean mask, 3-5x faster than `numpy.where` or a ``where=`` ufunc on large
    maps; `numpy.where` only when a NaN would survive the product.
    """
    out = np.multiply(values, mask, dtype=float)
    if np.isnan(out).any():
        out = np.where(mask, values, 0.0).astype(float, copy=False)
    return out


def _fov_box(inside: np.ndarray | None) -> tuple[slice, slice] | None:
    """Bounding box of a run's offset cut (everything without a cut; None when it is empty)."""
    if inside is None:
        return slice(None), slice(None)
    rows = np.flatnonzero(inside.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(inside.any(axis=0))
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def _run_ring_sums(
    counts: np.ndarray, acceptance: np.ndarray, inside: np.ndarray | None, excl: np.ndarray | None,
    kernel: np.ndarray,
) -> tuple | None:
    """One observation's ring sums over the box around its offset cut.

    Counts and acceptance are zero outside the cut, and a pixel outside it has no off measurement,
    so an FFT over the cut's bounding box (zero-padded) gives every sum that is kept: a wide map
    with small fields of view costs a field of view per run.

    Returns
    -------
    box, counts, acceptance, off, acceptance_off, valid
        ``box`` = (lat, lon) slices; the maps are on the box (counts and acceptance cut, NaN kept);
        ``valid``: the pixels with an off measurement (inside the cut, off acceptance > 0). None
        when the cut is empty.
    """
    box = _fov_box(inside)
    if box is None:
        return None
    counts, acceptance = counts[..., box[0], box[1]], acceptance[..., box[0], box[1]]
    cut = None if inside is None else inside[box]
    if cut is not None:
        counts, acceptance = zero_outside(counts, cut), zero_outside(acceptance, cut)
    plane = counts.shape[-2:]
    buffer = padded_planes((2, *counts.shape[:-2]), plane, kernel)  # the inputs are written in place
    inputs = buffer[..., : plane[0], : plane[1]]
    if excl is None:
        inputs[0], inputs[1] = counts, acceptance
    else:
        np.multiply(counts, excl[box], out=inputs[0])
        np.multiply(acceptance, excl[box], out=inputs[1])
    off, acc_off = convolve_padded(buffer, plane, kernel, rint=(True, False))
    valid = acc_off > 0
    if cut is not None:
        valid &= cut
    return box, counts, acceptance, off, acc_off, valid


def _zero_nan(values: np.ndarray) -> np.ndarray:
    """``values`` with NaN as 0 (copied only when there is a NaN)."""
    return np.nan_to_num(values, nan=0.0, posinf=np.inf, neginf=-np.inf) if np.isnan(values).any() else values


def _ring_core(
    counts: np.ndarray,
    acceptance: np.ndarray,
    *extra: np.ndarray,
    window: tuple[tuple[int, int], ...],
    core: tuple[slice, slice],
    kernel: np.ndarray,
    geometry: SkyGeometry,
    key: tuple,
    pointings: np.ndarray | None,
    limit: float | None,
    obs_axis: bool,
    exclusion: np.ndarray | None,
    stack: bool = False,
) -> np.ndarray:
    """Ring maps of one (overlapped) block of runs.

    Per run (``stack=False``): (counts, acceptance, off, acceptance_off, alpha, background), shape
    (6, *block core). Stacked (``stack=True``, runs on axis 0): the sums over the block's runs of
    (counts, acceptance, off, alpha * off, acceptance_off) with NaN as 0, shape (5, 1, *core[1:]),
    for `_stacked_maps` once summed over all blocks. No full-size per-run map is made then.
    """
    (y0, y1), (x0, x1) = window[-2:]
    if not obs_axis:  # a single map: one run
        counts, acceptance = counts[None], acceptance[None]
    inside = None
    if limit is not None:
        runs = pointings[slice(*window[0])] if obs_axis else pointings
        inside = _inside_block(geometry, runs, limit, slice(y0, y1), slice(x0, x1), key)
    excl = extra[0] if extra else (None if exclusion is None else exclusion[y0:y1, x0:x1])
    excl = None if excl is None else excl.astype(float)
    plane = counts.shape[1:]
    if stack:
        out = np.zeros((5, 1, *plane))
    else:
        out = np.zeros((6, *counts.shape))  # written in place: these maps are the bulk of the memory
        out[4:] = np.nan
    for o in range(counts.shape[0]):
        sums = _run_ring_sums(counts[o], acceptance[o], None if inside is None else inside[o], excl, kernel)
        if sums is None:
            continue  # nothing of this run in the block
        (ys, xs), run_counts, run_acceptance, off, acc_off, valid = sums
        # Products with the masks rather than ``where=`` ufuncs: several times faster on large maps.
        off = off * valid
        if stack:
            counts_sum, acceptance_sum, off_sum, bkg_sum, acc_off_sum = (
                channel[0][..., ys, xs] for channel in out)
            counts_sum += _zero_nan(run_counts)
            acceptance_sum += _zero_nan(run_acceptance)
            off_sum += off
            acc_off_sum += acc_off * valid
            with np.errstate(invalid="ignore"):
                alpha = run_acceptance / np.where(valid, acc_off, np.inf)  # 0 without an off measurement
            alpha *= off
            bkg_sum += _zero_nan(alpha)
        else:
            run_out = [channel[o][..., ys, xs] for channel in out]
            run_out[0][...], run_out[1][...], run_out[2][...] = run_counts, run_acceptance, off
            np.multiply(acc_off, valid, out=run_out[3])
            with np.errstate(invalid="ignore"):
                np.divide(run_acceptance, np.where(valid, acc_off, np.nan), out=run_out[4])  # alpha
            np.multiply(run_out[4], off, out=run_out[5])  # background
    out = out if obs_axis or stack else out[:, 0]
    return out[..., core[0], core[1]]


def _ring_inputs(
    counts: xr.DataArray, acceptance: xr.DataArray, *, r_in: Any, width: Any, exclusion: Any, offset_max: Any,
    pointing: Any,
) -> dict[str, Any]:
    """Checked inputs of the ring: maps (runs first, spatial last), kernel, mask, pointings."""
    from xgamma.maps import map_geometry

    counts = computed_coords(_spatial_last(counts, "counts"))
    acceptance = _spatial_last(acceptance, "acceptance")
    if counts.shape != acceptance.shape or counts.dims != acceptance.dims:
        raise EstimatorError(
            f"counts {dict(counts.sizes)} and acceptance {dict(acceptance.sizes)} maps do not match"
        )
    geometry = map_geometry(counts).to_image().with_energy(None)
    r_in_px, width_px = _ring_pixels(geometry, r_in, width)
    kernel = ring_kernel(r_in_px, width_px)
    exclusion_data = _exclusion_data(exclusion, geometry.shape)
    pointings, limit = _ring_pointings(counts, geometry, offset_max, pointing)
    # OBS_DIM first, so that a block's index range along axis 0 picks its pointings
    obs_first = counts.dims if OBS_DIM not in counts.dims else (
        OBS_DIM, *[d for d in counts.dims if d != OBS_DIM])
    lazy_mask = exclusion_data is not None and not isinstance(exclusion_data, np.ndarray)
    return dict(
        dims=counts.dims, template=in_order(counts, obs_first),
        acceptance=in_order(acceptance.variable, obs_first).data,
        geometry=geometry, kernel=kernel, exclusion=exclusion_data, lazy_mask=lazy_mask, pointings=pointings,
        limit=limit, obs_axis=OBS_DIM in counts.dims,
        attrs={"r_in_px": float(r_in_px), "width_px": float(width_px), "background_method": "ring"},
    )


def _apply_ring(inputs: dict[str, Any], *, stack: bool) -> Any:
    """`_ring_core` over the blocks of the maps (one task per block, offset cut and sums included)."""
    geometry = inputs["geometry"]
    lazy_mask = [inputs["exclusion"]] if inputs["lazy_mask"] else []
    return overlap_apply(
        _ring_core, inputs["template"].data, inputs["acceptance"], *lazy_mask,
        depth=kernel_radius(inputs["kernel"]), n_out=5 if stack else 6, kernel=inputs["kernel"], geometry=geometry,
        key=_geometry_key(geometry), pointings=inputs["pointings"], limit=inputs["limit"],
        obs_axis=inputs["obs_axis"], exclusion=None if inputs["lazy_mask"] else inputs["exclusion"],
        stack=stack, reduce_first=stack, keep_chunks=False,
    )


def _exclusion_variable(inputs: dict[str, Any]) -> dict[str, xr.Variable]:
    mask = inputs["exclusion"]
    mask = mask if mask is not None else np.ones(inputs["geometry"].shape, dtype=bool)
    return {"exclusion": xr.Variable(("lat", "lon"), mask, {"units": ""})}


def _ring_background(
    counts: xr.DataArray, acceptance: xr.DataArray, *, r_in: Any, width: Any, exclusion: Any, offset_max: Any,
    pointing: Any,
) -> xr.Dataset:
    """`ring_background`: per-run ring maps."""
    inputs = _ring_inputs(counts, acceptance, r_in=r_in, width=width, exclusion=exclusion, offset_max=offset_max,
                          pointing=pointing)
    out = _apply_ring(inputs, stack=False)
    names = ("counts", "acceptance", "off", "acceptance_off", "alpha", "background")
    arrays = split_channels(out, names)
    template = inputs["template"]
    if inputs["limit"] is None:  # nothing cut: keep the inputs as they are (dtype included)
        arrays["counts"], arrays["acceptance"] = template.data, inputs["acceptance"]
    ds = dataset_from_arrays(template, arrays, extra=_exclusion_variable(inputs))
    if template.dims != inputs["dims"]:
        ds = ds.transpose(*inputs["dims"])
    ds.attrs = inputs["attrs"]
    return ds


def _stacked_ring(
    counts: xr.DataArray, acceptance: xr.DataArray, *, r_in: Any, width: Any, exclusion: Any, offset_max: Any,
    pointing: Any,
) -> xr.Dataset:
    """Ring maps of each run along ``obs_id``, stacked (what `stack_ring_maps` gives of
    `ring_background`'s maps), without making the per-run maps."""
    import dask.array as da

    inputs = _ring_inputs(counts, acceptance, r_in=r_in, width=width, exclusion=exclusion, offset_max=offset_max,
                          pointing=pointing)
    partial = _apply_ring(inputs, stack=True)  # (5, n_blocks, ..., lat, lon)
    if isinstance(partial, da.Array):
        sums = partial.sum(axis=1) if partial.shape[1] > 1 else partial[:, 0]
        stacked = sums.map_blocks(_stacked_maps, chunks=((6,), *sums.chunks[1:]), dtype=float,
                                  meta=np.empty((0,) * sums.ndim, float))
    else:
        stacked = _stacked_maps(partial[:, 0])
    names = ("counts", "acceptance", "off", "acceptance_off", "alpha", "background")
    template = inputs["template"].isel({OBS_DIM: 0}, drop=True)
    ds = dataset_from_arrays(template, split_channels(stacked, names),
                             extra=_exclusion_variable(inputs))
    dims = tuple(d for d in inputs["dims"] if d != OBS_DIM)
    if template.dims != dims:
        ds = ds.transpose(*dims)
    ds.attrs = inputs["attrs"]
    return ds


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
    return _ring_background(
        counts, acceptance, r_in=r_in, width=width, exclusion=exclusion, offset_max=offset_max, pointing=pointing
    )


def _stack_arrays(arrays: list[Any]) -> Any:
    import dask.array as da

    if any(isinstance(a, da.Array) for a in arrays):
        return da.stack(arrays)
    return np.stack(arrays)


def _stacked_maps(sums: np.ndarray) -> np.ndarray:
    """Stacked (counts, acceptance, off, acceptance_off, alpha, background) from the sums over runs
    of (counts, acceptance, off, alpha * off, acceptance_off), channels first."""
    counts, acceptance, off, bkg, acc_off_sum = sums
    out = np.empty((6, *counts.shape))
    out[0], out[1], out[2] = counts, acceptance, off
    with np.errstate(divide="ignore", invalid="ignore"):
        # no off counts: the acceptance ratio; no off acceptance either: NaN
        alpha = np.where(off > 0, bkg / off, acceptance / np.where(acc_off_sum > 0, acc_off_sum, np.nan))
        # acceptance_off = acceptance / alpha keeps their ratio alpha
        out[3] = np.where(alpha > 0, acceptance / alpha, acc_off_sum)
    out[4] = alpha
    np.multiply(alpha, off, out=out[5])
    return out


def _partial_sums(counts: np.ndarray, acceptance: np.ndarray, off: np.ndarray, alpha: np.ndarray,
                  acc_off: np.ndarray, *, axis: int) -> np.ndarray:
    """NaN-as-zero sums over ``axis`` (kept, length 1) of counts, acceptance, off, alpha * off, acceptance_off."""
    with np.errstate(invalid="ignore"):
        bkg = alpha * off
    return np.stack([np.nansum(v, axis=axis, keepdims=True) for v in (counts, acceptance, off, bkg, acc_off)])


def _stack_arrays_over(arrays: list[Any], axis: int) -> Any:
    """`_stacked_maps` of NaN-as-zero sums over ``axis`` (numpy, or lazily for dask)."""
    import dask.array as da

    counts, acceptance, off, alpha, acc_off = arrays
    with np.errstate(invalid="ignore"):
        bkg = alpha * off
    if not any(isinstance(a, da.Array) for a in arrays):
        return _stacked_maps(np.stack([np.nansum(v, axis=axis) for v in (counts, acceptance, off, bkg, acc_off)]))
    # One task per block for the partial sums (all channels), a tree sum over the blocks along
    # ``axis``, one task per block for the ratios.
    arrays = [da.asarray(a) for a in arrays]
    chunks = list(arrays[0].chunks)
    chunks[axis] = (1,) * len(chunks[axis])
    partial = da.map_blocks(_partial_sums, *arrays, axis=axis, new_axis=0, chunks=((5,), *chunks), dtype=float,
                            meta=np.empty((0,) * (arrays[0].ndim + 1), float))
    sums = partial.sum(axis=axis + 1)
    return sums.map_blocks(_stacked_maps, chunks=((6,), *sums.chunks[1:]), dtype=float,
                           meta=np.empty((0,) * sums.ndim, float))


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
    # Sums on the bare arrays (numpy or dask), wrapped into DataArrays once: xarray's where /
    # fillna / sum with alignment cost more than the sums themselves.
    template = maps["counts"]
    axis = template.dims.index(dim)

    def data(name: str) -> Any:
        return in_order(maps.variables[name], template.dims).data

    names = ("counts", "acceptance", "off", "alpha", "acceptance_off")
    return _stacked_dataset(maps, dim, _stack_arrays_over([data(name) for name in names], axis))


def _stacked_dataset(maps: xr.Dataset, dim: str, stacked: Any) -> xr.Dataset:
    """Dataset of the stacked channels (counts, acceptance, off, acceptance_off, alpha, background)."""
    names = ("counts", "acceptance", "off", "acceptance_off", "alpha", "background")
    arrays = split_channels(stacked, names)
    out = dataset_from_arrays(maps["counts"].isel({dim: 0}, drop=True), arrays)
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
        dataset = computed_coords(dataset)
        if pointing is None:
            pointing = _pointings_from_dataset(dataset)
        method = _stacked_ring if OBS_DIM in dataset["counts"].dims else _ring_background
        ring = method(
            dataset["counts"],
            dataset["background"],
            r_in=self.r_in,
            width=self.width,
            exclusion=self.exclusion,
            offset_max=self.offset_max,
            pointing=pointing,
        )
        keep = dataset.drop_vars(["counts", "background"])
        if OBS_DIM in dataset.dims:
            keep = keep.drop_dims(OBS_DIM, errors="ignore")
        out = keep.merge(ring, compat="override", join="override")
        out.attrs = {**dataset.attrs, **ring.attrs}
        return out
