"""Adaptive ring background (the H.E.S.S. Galactic plane survey method).

Around each pixel, rings of growing size are tried in turn (inner radius growing in steps at fixed
width, or width growing at fixed inner radius) up to ``r_out_max``; the first ring for which the
approximate on/off acceptance ratio ``alpha_approx = T_theta(acceptance) / acceptance_off`` is at
most ``threshold_alpha`` (and, optionally, whose unexcluded area fraction is at least
``min_area_fraction``) gives the pixel's off counts and off acceptance. ``T_theta`` sums over a
top-hat of radius ``theta`` (the on region the significance will use). Pixels where no ring
qualifies get off = 0 and NaN alpha (no background estimate).

Unlike Gammapy's ``AdaptiveRingBackgroundMaker`` (which stores the theta-correlated acceptance as
the on acceptance), the per-pixel ``alpha = acceptance / acceptance_off`` is returned, the same
convention as the plain ring, so that the result feeds `significance_maps` unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import xarray as xr

from xgamma.convolution import convolve_block, kernel_radius, ring_kernel, tophat_kernel
from xgamma.background.ring import (
    OBS_DIM,
    _exclusion_data,
    _offset_cut,
    _pointings_from_dataset,
    _spatial_last,
    dataset_from_arrays,
    stack_ring_maps,
)
from xgamma.exceptions import EstimatorError

__all__ = ["AdaptiveRingBackground", "adaptive_ring_background", "adaptive_ring_kernels"]


def adaptive_ring_kernels(
    r_in: float, width: float, r_out_max: float, stepsize: float, method: str
) -> list[np.ndarray]:
    """Ring kernels in the order they are tried (all sizes in pixels)."""
    if method == "fixed_width":
        pairs = [(r, width) for r in np.arange(r_in, r_out_max - width, stepsize)]
    elif method == "fixed_r_in":
        pairs = [(r_in, w) for w in np.arange(width, r_out_max - r_in, stepsize)]
    else:
        raise EstimatorError(f"adaptive ring method must be 'fixed_width' or 'fixed_r_in', got {method!r}")
    if not pairs:
        raise EstimatorError("adaptive ring: r_out_max leaves no ring between r_in + width and r_out_max")
    return [ring_kernel(r, w) for r, w in pairs]


def _pad_to(kernel: np.ndarray, size: int) -> np.ndarray:
    pad = (size - kernel.shape[0]) // 2
    return np.pad(kernel, pad) if pad > 0 else kernel


def _adaptive_block(
    block: np.ndarray,
    kernels: list[np.ndarray],
    tophat: np.ndarray,
    threshold: float,
    min_area_fraction: float,
) -> np.ndarray:
    counts_excl, acc_excl, excl, acc = block
    acc_on = convolve_block(acc, tophat)
    off = np.full(acc.shape, np.nan)
    acc_off = np.full(acc.shape, np.nan)
    index = np.full(acc.shape, -1.0)
    done = np.zeros(acc.shape, dtype=bool)
    for i, kernel in enumerate(kernels):
        a_off = convolve_block(acc_excl, kernel)
        with np.errstate(divide="ignore", invalid="ignore"):
            alpha_approx = np.where(a_off > 0, acc_on / a_off, np.inf)
        select = (alpha_approx <= threshold) & ~done
        if min_area_fraction > 0:
            select &= convolve_block(excl, kernel) >= min_area_fraction * kernel.sum()
        if select.any():
            c_off = convolve_block(counts_excl, kernel, rint=True)
            off[select] = c_off[select]
            acc_off[select] = a_off[select]
            index[select] = i
            done |= select
        if done.all():
            break
    return np.stack([off, acc_off, index, np.zeros_like(off)])


def adaptive_ring_background(
    counts: xr.DataArray,
    acceptance: xr.DataArray,
    *,
    r_in: Any = "0.7 deg",
    width: Any = "0.44 deg",
    r_out_max: Any = "1.7 deg",
    stepsize: Any = "0.02 deg",
    threshold_alpha: float = 0.1,
    theta: Any = "0.22 deg",
    min_area_fraction: float = 0.0,
    method: Literal["fixed_width", "fixed_r_in"] = "fixed_width",
    exclusion: xr.DataArray | np.ndarray | None = None,
    offset_max: Any = None,
    pointing: Any = None,
) -> xr.Dataset:
    """Adaptive ring background of one set of maps (lazy for dask-backed maps).

    Parameters
    ----------
    counts, acceptance, exclusion, offset_max, pointing :
        As in `~xgamma.background.ring_background`.
    r_in, width : str or `~astropy.units.Quantity`
        Smallest ring (angles). Defaults are the H.E.S.S. survey's 0.7 and 0.44 deg.
    r_out_max : str or `~astropy.units.Quantity`
        Largest outer radius tried (angle). Default is 1.7 deg.
    stepsize : str or `~astropy.units.Quantity`
        Growth step (angle). Default is 0.02 deg.
    threshold_alpha : float
        Largest acceptable ``alpha_approx``. Default is 0.1.
    theta : str or `~astropy.units.Quantity`
        Radius of the on region used for ``alpha_approx`` (angle). Default is 0.22 deg.
    min_area_fraction : float
        Smallest acceptable unexcluded fraction of the ring's pixels (0 to 1). Default is 0.
    method : {"fixed_width", "fixed_r_in"}
        Grow the inner radius (fixed width) or the width (fixed inner radius).

    Returns
    -------
    maps : `xarray.Dataset`
        As `~xgamma.background.ring_background`, plus ``ring_index`` (index of the ring used,
        -1 where none qualified).
    """
    import dask.array as dask_array

    from xgamma.maps import map_geometry
    from xgamma.units import parse_angle

    counts = _spatial_last(counts, "counts")
    acceptance = _spatial_last(acceptance, "acceptance")
    if counts.shape != acceptance.shape or counts.dims != acceptance.dims:
        raise EstimatorError(f"counts {dict(counts.sizes)} and acceptance {dict(acceptance.sizes)} maps do not match")
    geometry = map_geometry(counts).to_image().with_energy(None)
    scale = geometry.pixel_scale
    px = {}
    for key, value in dict(r_in=r_in, width=width, r_out_max=r_out_max, stepsize=stepsize, theta=theta).items():
        px[key] = parse_angle(value, name=key).to_value("deg") / scale
        if not px[key] > 0:
            raise EstimatorError(f"adaptive ring {key} must be positive, got {value!r}")
    if not px["r_out_max"] > px["r_in"] + px["width"]:
        raise EstimatorError(f"adaptive ring r_out_max={r_out_max!r} must exceed r_in + width")
    if 2 * px["r_out_max"] > max(geometry.shape):
        raise EstimatorError(f"adaptive ring r_out_max={r_out_max!r} is wider than the map")
    if not (threshold_alpha > 0 and np.isfinite(threshold_alpha)):
        raise EstimatorError(f"threshold_alpha must be positive, got {threshold_alpha!r}")
    if not 0 <= min_area_fraction <= 1:
        raise EstimatorError(f"min_area_fraction must be within [0, 1], got {min_area_fraction!r}")
    kernels = adaptive_ring_kernels(px["r_in"], px["width"], px["r_out_max"], px["stepsize"], method)
    size = max(k.shape[0] for k in kernels)
    kernels = [_pad_to(k, size) for k in kernels]
    tophat = _pad_to(tophat_kernel(px["theta"]), max(size, tophat_kernel(px["theta"]).shape[0]))
    exclusion_data = _exclusion_data(exclusion, geometry.shape)

    counts, acceptance, inside = _offset_cut(counts, acceptance, geometry, offset_max, pointing)

    lazy = isinstance(counts.data, dask_array.Array) or isinstance(acceptance.data, dask_array.Array)
    xp = dask_array if lazy else np
    c, a = counts.data, acceptance.data
    if lazy:
        chunks = counts.chunks if counts.chunks is not None else acceptance.chunks
        c, a = dask_array.asarray(c).rechunk(chunks), dask_array.asarray(a).rechunk(chunks)
    excl = np.ones(geometry.shape) if exclusion_data is None else exclusion_data.astype(float)
    excl = xp.broadcast_to(excl, c.shape)
    if lazy:
        excl = dask_array.asarray(excl).rechunk(c.chunks)
    stacked_in = xp.stack([c * excl, a * excl, excl, a])
    args = dict(kernels=kernels, tophat=tophat, threshold=float(threshold_alpha),
                min_area_fraction=float(min_area_fraction))
    if lazy:
        r = kernel_radius(kernels[0])
        depth = {0: 0, **{i + 1: 0 for i in range(c.ndim)}}
        for axis in (c.ndim - 1, c.ndim):
            if len(stacked_in.chunks[axis]) > 1:
                if stacked_in.shape[axis] <= 2 * r:
                    stacked_in = stacked_in.rechunk({axis: -1})
                else:
                    depth[axis] = r
        stacked_in = stacked_in.rechunk({0: -1})
        result = stacked_in.map_overlap(_adaptive_block, depth=depth, boundary=0, dtype=float, **args)
    else:
        result = _adaptive_block(stacked_in, **args)
    off, acc_off, index = result[0], result[1], result[2]
    valid = acc_off > 0  # False for NaN (no ring qualified) too
    if inside is not None:
        valid = valid & inside.data
    off = xp.where(valid, off, 0.0)
    acc_off = xp.where(valid, acc_off, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = xp.where(valid, a / xp.where(valid, acc_off, 1.0), np.nan)

    ds = dataset_from_arrays(
        counts,
        {
            "counts": c,
            "acceptance": a,
            "off": off,
            "acceptance_off": acc_off,
            "alpha": alpha,
            "background": alpha * off,
            "ring_index": index,
        },
    )
    mask = exclusion_data if exclusion_data is not None else np.ones(geometry.shape, dtype=bool)
    ds["exclusion"] = xr.DataArray(mask, dims=("lat", "lon"), attrs={"units": ""})
    ds.attrs = {"background_method": "adaptive_ring", "n_rings": len(kernels)}
    return ds


@dataclass(frozen=True, eq=False)
class AdaptiveRingBackground:
    """Adaptive ring background estimator (``name = "adaptive_ring"``); see `adaptive_ring_background`."""

    name: ClassVar[str] = "adaptive_ring"

    r_in: Any = "0.7 deg"
    width: Any = "0.44 deg"
    r_out_max: Any = "1.7 deg"
    stepsize: Any = "0.02 deg"
    threshold_alpha: float = 0.1
    theta: Any = "0.22 deg"
    min_area_fraction: float = 0.0
    method: Literal["fixed_width", "fixed_r_in"] = "fixed_width"
    exclusion: xr.DataArray | None = None
    offset_max: Any = None

    def run(self, dataset: xr.Dataset, *, pointing: Any = None) -> xr.Dataset:
        """Add ``off``, ``acceptance_off``, ``alpha``, ``background`` (and ``acceptance``) to ``dataset``.

        As `RingBackground.run` (per-observation rings along ``obs_id``, then stacked).
        """
        missing = {"counts", "background"} - set(dataset.data_vars)
        if missing:
            raise EstimatorError(f"adaptive ring background needs dataset variables {sorted(missing)}")
        if pointing is None:
            pointing = _pointings_from_dataset(dataset)
        ring = adaptive_ring_background(
            dataset["counts"], dataset["background"],
            r_in=self.r_in, width=self.width, r_out_max=self.r_out_max, stepsize=self.stepsize,
            threshold_alpha=self.threshold_alpha, theta=self.theta,
            min_area_fraction=self.min_area_fraction, method=self.method,
            exclusion=self.exclusion, offset_max=self.offset_max, pointing=pointing,
        )
        if OBS_DIM in ring.dims:
            ring = stack_ring_maps(ring.drop_vars("ring_index"))
        keep = dataset.drop_vars(["counts", "background"])
        if OBS_DIM in dataset.dims:
            keep = keep.drop_dims(OBS_DIM, errors="ignore")
        out = keep.merge(ring, compat="override", join="override")
        out.attrs = {**dataset.attrs, **ring.attrs}
        return out
