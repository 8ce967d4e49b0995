"""Ring background of sky maps, lazy for dask-backed maps (the equations: `~xgamma.background.ring_blocks`).

Each observation gets its own ring and ``offset_max`` cut. `ring_background` keeps one map per
run (stack them with `~xgamma.background.stacking.stack_ring_maps`: off counts and ``alpha * off``
add, so that no correlation is counted twice), or, with ``stack=True``, gives the stacked maps
without making per-run maps. With dask, the offset cut, both ring sums and alpha of a block of
runs are one task (`~xgamma.blocks.overlap_apply`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from xgamma.background.inputs import OBS_DIM, ring_inputs, ring_radii
from xgamma.background.ring_blocks import RING_MAPS, ring_block
from xgamma.background.stacking import stack_sums
from xgamma.blocks import overlap_apply, split_channels
from xgamma.convolution import kernel_radius, ring_kernel
from xgamma.exceptions import EstimatorError
from xgamma.maps import dataset_from_arrays

if TYPE_CHECKING:
    from astropy.coordinates import SkyCoord

__all__ = ["ring_background"]


def ring_background(
    counts: xr.DataArray,
    acceptance: xr.DataArray,
    *,
    r_in: Any,
    width: Any,
    exclusion: xr.DataArray | np.ndarray | None = None,
    offset_max: Any = None,
    pointing: SkyCoord | Sequence[SkyCoord] | None = None,
    stack: bool = False,
) -> xr.Dataset:
    """Ring background of one set of maps (lazy for dask-backed maps).

    Parameters
    ----------
    counts : `xarray.DataArray`
        Counts map, dims (..., "lat", "lon"). A leading ``obs_id`` dim holds one map per
        observation (each gets its own ring).
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
    stack : bool
        With an ``obs_id`` dim: return the stacked maps, the same as
        ``stack_ring_maps(ring_background(...))``, without making per-run maps (each block of runs
        returns partial sums over its runs, added over blocks by a tree sum). Default is False.

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
        without ``pointing``, ``stack=True`` without an ``obs_id`` dim.
    """
    inputs = ring_inputs(counts, acceptance, exclusion=exclusion, offset_max=offset_max, pointing=pointing)
    if stack and not inputs.obs_axis:
        raise EstimatorError(f"ring_background(stack=True) needs maps with an {OBS_DIM!r} dim, got {inputs.dims}")
    r_in_px, width_px = ring_radii(inputs.geometry, r_in, width)
    kernel = ring_kernel(r_in_px, width_px)
    arrays, keywords = inputs.block_inputs()
    out = overlap_apply(ring_block, *arrays, depth=kernel_radius(kernel), n_out=5 if stack else 6, kernel=kernel,
                        stack=stack, reduce_first=stack, keep_chunks=False, name="ring_core", **keywords)
    attrs = {"r_in_px": float(r_in_px), "width_px": float(width_px), "background_method": "ring"}
    if stack:
        template = inputs.template.isel({OBS_DIM: 0}, drop=True)
        maps = split_channels(stack_sums(out, axis=1), RING_MAPS)
        dims = tuple(d for d in inputs.dims if d != OBS_DIM)
    else:
        template, maps, dims = inputs.template, split_channels(out, RING_MAPS), inputs.dims
        if inputs.limit is None:  # nothing cut: keep the inputs as they are (dtype included)
            maps["counts"], maps["acceptance"] = inputs.template.data, inputs.acceptance
    return dataset_from_arrays(template, maps, extra=inputs.exclusion_variable(), dims=dims, attrs=attrs)
