"""Ring background of sky maps, lazy for dask-backed maps (the equations: `~xgamma.background.ring_blocks`).

Each observation gets its own ring and ``offset_max`` cut; `ring_background` keeps one map per run
(stack them with `~xgamma.background.stacking.stack_ring_maps`: off counts and ``alpha * off``
add, so that no correlation is counted twice), `stacked_ring_background` gives the stacked maps
without making per-run maps. With dask, the offset cut, both ring sums and alpha of a block of
runs are one task (`~xgamma.blocks.overlap_apply`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from xgamma.background.inputs import OBS_DIM, RingInputs, ring_inputs, ring_radii
from xgamma.background.ring_blocks import RING_MAPS, ring_block
from xgamma.background.stacking import stack_sums
from xgamma.blocks import overlap_apply, split_channels
from xgamma.convolution import kernel_radius, ring_kernel
from xgamma.maps import dataset_from_arrays

if TYPE_CHECKING:
    from astropy.coordinates import SkyCoord

__all__ = ["ring_background", "stacked_ring_background"]


def _ring(counts: xr.DataArray, acceptance: xr.DataArray, *, r_in: Any, width: Any, exclusion: Any, offset_max: Any,
          pointing: Any, stack: bool) -> tuple[RingInputs, dict[str, float], Any]:
    """Inputs, attributes and the `ring_block` graph (or numpy result) of a ring estimation."""
    inputs = ring_inputs(counts, acceptance, exclusion=exclusion, offset_max=offset_max, pointing=pointing)
    r_in_px, width_px = ring_radii(inputs.geometry, r_in, width)
    kernel = ring_kernel(r_in_px, width_px)
    arrays, keywords = inputs.block_inputs()
    out = overlap_apply(ring_block, *arrays, depth=kernel_radius(kernel), n_out=5 if stack else 6, kernel=kernel,
                        stack=stack, reduce_first=stack, keep_chunks=False, name="ring_core", **keywords)
    attrs = {"r_in_px": float(r_in_px), "width_px": float(width_px), "background_method": "ring"}
    return inputs, attrs, out


def _dataset(inputs: RingInputs, template: xr.DataArray, arrays: dict[str, Any], dims: tuple[str, ...],
             attrs: dict[str, Any]) -> xr.Dataset:
    ds = dataset_from_arrays(template, arrays, extra=inputs.exclusion_variable())
    if template.dims != dims:
        ds = ds.transpose(*dims)
    ds.attrs = attrs
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
    inputs, attrs, out = _ring(counts, acceptance, r_in=r_in, width=width, exclusion=exclusion,
                               offset_max=offset_max, pointing=pointing, stack=False)
    arrays = split_channels(out, RING_MAPS)
    if inputs.limit is None:  # nothing cut: keep the inputs as they are (dtype included)
        arrays["counts"], arrays["acceptance"] = inputs.template.data, inputs.acceptance
    return _dataset(inputs, inputs.template, arrays, inputs.dims, attrs)


def stacked_ring_background(
    counts: xr.DataArray,
    acceptance: xr.DataArray,
    *,
    r_in: Any,
    width: Any,
    exclusion: xr.DataArray | np.ndarray | None = None,
    offset_max: Any = None,
    pointing: SkyCoord | Sequence[SkyCoord] | None = None,
) -> xr.Dataset:
    """Ring background of each run along ``obs_id``, stacked, without making the per-run maps.

    The same maps as ``stack_ring_maps(ring_background(...))`` (same parameters, ``counts`` with
    an ``obs_id`` dim): each block of runs returns partial sums over its runs (counts,
    acceptance, off, alpha x off, off acceptance), added over blocks by a tree sum.
    """
    inputs, attrs, partial = _ring(counts, acceptance, r_in=r_in, width=width, exclusion=exclusion,
                                   offset_max=offset_max, pointing=pointing, stack=True)
    template = inputs.template.isel({OBS_DIM: 0}, drop=True)
    arrays = split_channels(stack_sums(partial, axis=1), RING_MAPS)
    return _dataset(inputs, template, arrays, tuple(d for d in inputs.dims if d != OBS_DIM), attrs)
